"""Target DDL: recreate a source table's user types, columns, types, NOT NULL and primary key."""

from __future__ import annotations

import psycopg
from psycopg import sql

from dbsplit.catalog import TableInfo, UserType, table_oid
from dbsplit.errors import DbsplitError

MANAGED_COMMENT = "managed by dbsplit"


class TargetConflict(DbsplitError):
    """A target table exists that dbsplit did not create, or whose shape differs from the plan's."""


def ensure_user_type(conn: psycopg.Connection, t: UserType) -> None:
    """Create an enum or domain in the target unless a type of that name exists."""
    exists = conn.execute(
        "SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = %s AND t.typname = %s",
        (t.schema, t.name),
    ).fetchone()
    if exists:
        return
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(t.schema)))
    name = sql.Identifier(t.schema, t.name)
    if t.kind == "enum":
        labels = sql.SQL(", ").join(sql.Literal(label) for label in t.labels)
        conn.execute(sql.SQL("CREATE TYPE {} AS ENUM ({})").format(name, labels))
        return
    # base type and CHECK text come from the server's own catalog (format_type, pg_get_constraintdef)
    parts = [sql.SQL("CREATE DOMAIN {} AS {}").format(name, sql.SQL(t.base_type_sql))]
    if t.not_null:
        parts.append(sql.SQL("NOT NULL"))
    parts.extend(sql.SQL(check) for check in t.checks)
    conn.execute(sql.SQL(" ").join(parts))


def create_table_sql(info: TableInfo, schema: str, name: str) -> sql.Composed:
    """CREATE TABLE for the target, from source metadata (types are the server's format_type text)."""
    cols = []
    for c in info.columns:
        col = sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.type_sql))
        if c.generated_expr is not None:
            col = sql.SQL("{} GENERATED ALWAYS AS ({}) STORED").format(col, sql.SQL(c.generated_expr))
        if c.not_null:
            col = sql.SQL("{} NOT NULL").format(col)
        cols.append(col)
    if info.primary_key:
        cols.append(sql.SQL("PRIMARY KEY ({})").format(sql.SQL(", ").join(map(sql.Identifier, info.primary_key))))
    return sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(schema, name), sql.SQL(", ").join(cols))


def ensure_target_table(conn: psycopg.Connection, info: TableInfo, schema: str, name: str) -> bool:
    """Create the target table if absent; refuse a table dbsplit did not create or of another shape.

    Returns True when the table was created.
    """
    oid = table_oid(conn, schema, name)
    if oid is None:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        for t in info.user_types:
            ensure_user_type(conn, t)
        conn.execute(create_table_sql(info, schema, name))
        conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(sql.Identifier(schema, name), sql.Literal(MANAGED_COMMENT)))
        return True
    _check_existing(conn, oid, info, schema, name)
    return False


def _check_existing(conn: psycopg.Connection, oid: int, info: TableInfo, schema: str, name: str) -> None:
    comment = conn.execute("SELECT obj_description(%s::oid, 'pg_class')", (oid,)).fetchone()[0]
    where = f"{schema}.{name} in target database {conn.info.dbname!r}"
    if comment != MANAGED_COMMENT:
        raise TargetConflict(
            f"table {where} exists and was not created by dbsplit; dbsplit never overwrites it. "
            "Fix: drop or rename it, or route the source table to another target name in the plan."
        )
    have = conn.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        (oid,),
    ).fetchall()
    want = [(c.name, c.type_sql) for c in info.columns]
    if have != want:
        raise TargetConflict(
            f"table {where} has columns {have} but the source {info.schema}.{info.name} now implies {want}. "
            "Fix: drop the target table so that dbsplit recreates it."
        )
