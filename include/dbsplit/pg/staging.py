"""Staging tables in the target: loads land in `_dbsplit_staging`, are validated there, then promoted.

Promotion swaps the staging table into place in one transaction and keeps the previous live table
in `_dbsplit_prev` until the next promotion, so a rollback after promotion is a swap back.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from typing import Iterator, Sequence

import psycopg
from psycopg import sql

from dbsplit.model.resolved import ResolvedTable
from dbsplit.pg.catalog import TableInfo, table_oid
from dbsplit.pg.ddl import MANAGED_COMMENT
from dbsplit.pg.rows import one_row

STAGING = "_dbsplit_staging"
PREVIOUS = "_dbsplit_prev"


def side_name(schema: str, table: str) -> str:
    """The name a target table has in the staging and previous schemas (unique across target schemas)."""
    name = f"{schema}.{table}"
    if len(name.encode()) <= 63:
        return name
    return f"{name.encode()[:50].decode(errors='ignore')}~{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def staging_ident(schema: str, table: str) -> sql.Identifier:
    return sql.Identifier(STAGING, side_name(schema, table))


def create_staging_table(conn: psycopg.Connection, info: TableInfo, table: ResolvedTable,
                         *, defer_indexes: bool = False) -> None:
    """(Re)create the empty staging table of a target table with its full target DDL except foreign keys.

    Types, defaults, NOT NULL, keys, unique and check constraints and indexes are those the target
    table will have (ddl.target_shape), so a row the target would refuse is refused at load time,
    where the transformed path turns it into a reject. Foreign keys are added at promotion.
    With defer_indexes (pass-through tables, whose rows the source's own constraints already keep
    unique) the primary key, unique and exclusion constraints and indexes are built once after the
    load by build_deferred_indexes: one sort per index instead of an index insert per row. CHECK
    constraints that are NOT VALID in the source always wait for the end of the load, as the source's
    old rows may break them: they are added NOT VALID then, as in the source.
    """
    from dbsplit.pg import ddl

    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(STAGING)))
    drop_staging_table(conn, table.target_schema, table.target_table)
    name = side_name(table.target_schema, table.target_table)
    ddl.ensure_mapped_table(conn, info, table.columns, STAGING, name, key=table.key or None)
    _defer_indexes(conn, name, defer_indexes)


_DEFERRED = "dbsplit:deferred-indexes "   # prefix of the staging table's comment while its indexes wait


def _defer_indexes(conn: psycopg.Connection, name: str, with_indexes: bool = True) -> None:
    """Drop the staging table's NOT VALID CHECK constraints and (with_indexes) its index-backed constraints
    and indexes, keeping their definitions (as the server prints them) in the table's comment for
    build_deferred_indexes."""
    ident = sql.Identifier(STAGING, name)
    oid = table_oid(conn, STAGING, name)
    constraints = conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s AND (contype IN ('p', 'u', 'x')"
        " AND %s OR contype = 'c' AND NOT convalidated) ORDER BY contype, conname", (oid, with_indexes)).fetchall()
    indexes = [] if not with_indexes else conn.execute(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE i.indrelid = %s AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)"
        " ORDER BY c.relname", (oid,)).fetchall()
    if not constraints and not indexes:
        return
    for index, _ in indexes:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(STAGING, index)))
    for constraint, _ in constraints:
        conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(ident, sql.Identifier(constraint)))
    deferred = {"constraints": constraints, "indexes": [definition for _, definition in indexes]}
    conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(ident, sql.Literal(_DEFERRED + json.dumps(deferred))))


def analyze(conninfo: str, schema: str, table: str) -> None:
    """ANALYZE a loaded staging table: planner statistics for the checks' queries and for the live
    table once promoted (a VACUUM as well costs 1.5 s per million rows, more than it saves the checks)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("ANALYZE {}").format(staging_ident(schema, table)))


def build_deferred_indexes(conn: psycopg.Connection, schema: str, table: str) -> int:
    """Inside the caller's transaction: build the staging table's deferred constraints and indexes.

    Returns how many were built (0 when none wait). A unique violation (two staged rows with one
    key) raises psycopg.errors.UniqueViolation naming the key, and the caller's transaction
    rolls back with nothing built.
    """
    name = side_name(schema, table)
    ident = sql.Identifier(STAGING, name)
    oid = table_oid(conn, STAGING, name)
    comment = one_row(conn.execute("SELECT obj_description(%s::oid, 'pg_class')", (oid,)))[0] if oid else None
    if not comment or not comment.startswith(_DEFERRED):
        return 0
    deferred = json.loads(comment[len(_DEFERRED):])
    for constraint, definition in deferred["constraints"]:
        # definitions come from pg_get_constraintdef / pg_get_indexdef of this very table
        conn.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
            ident, sql.Identifier(constraint), sql.SQL(definition)))
    for definition in deferred["indexes"]:
        conn.execute(sql.SQL(definition))
    conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(ident, sql.Literal(MANAGED_COMMENT)))
    return len(deferred["constraints"]) + len(deferred["indexes"])


def drop_staging_table(conn: psycopg.Connection, schema: str, table: str) -> None:
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(staging_ident(schema, table)))


def promote(conn: psycopg.Connection, schema: str, table: str) -> None:
    """Inside the caller's transaction: move the live table to the previous schema and the staged one into place."""
    stg = staging_ident(schema, table)
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(PREVIOUS)))
    prev = sql.Identifier(PREVIOUS, side_name(schema, table))
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(prev))
    if table_oid(conn, schema, table) is not None:
        live = sql.Identifier(schema, table)
        conn.execute(sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(live, sql.Identifier(PREVIOUS)))
        conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(sql.Identifier(PREVIOUS, table),
                                                                  sql.Identifier(side_name(schema, table))))
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    conn.execute(sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(stg, sql.Identifier(schema)))
    conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(sql.Identifier(schema, side_name(schema, table)),
                                                              sql.Identifier(table)))
    conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(sql.Identifier(schema, table),
                                                             sql.Literal(MANAGED_COMMENT)))


def check_managed(conn: psycopg.Connection, schema: str, table: str) -> None:
    """Raise TargetConflict when a live table of that name exists and dbsplit did not create it."""
    from dbsplit.pg.ddl import TargetConflict

    oid = table_oid(conn, schema, table)
    if oid is None:
        return
    comment = one_row(conn.execute("SELECT obj_description(%s::oid, 'pg_class')", (oid,)))[0]
    if comment != MANAGED_COMMENT:
        raise TargetConflict(
            f"table {schema}.{table} in target database {conn.info.dbname!r} exists and was not created by dbsplit; "
            "dbsplit never overwrites it. Fix: drop or rename it, or give the table another `name` in the plan."
        )


def add_foreign_keys(conn: psycopg.Connection, schema: str, table: str, fks: Sequence[dict]) -> None:
    """Recreate the foreign keys that stay inside a service ({"columns", "ref_table", "ref_columns", "on_delete"}).

    DEFERRABLE INITIALLY IMMEDIATE: checked per statement for everyone, but the resync (engine/resync/resync.py)
    defers them to the commit of its one merge transaction over the service's tables. A key NOT VALID
    in the source ("validated": False) is added NOT VALID: the old rows it does not check stay."""
    for fk in fks:
        ref_schema, ref_table = fk["ref_table"].split(".", 1)
        conn.execute(sql.SQL("ALTER TABLE {} ADD FOREIGN KEY ({}) REFERENCES {} ({}) ON DELETE {}"
                             " DEFERRABLE INITIALLY IMMEDIATE{}").format(
            sql.Identifier(schema, table), sql.SQL(", ").join(map(sql.Identifier, fk["columns"])),
            sql.Identifier(ref_schema, ref_table), sql.SQL(", ").join(map(sql.Identifier, fk["ref_columns"])),
            sql.SQL(_ON_DELETE[fk.get("on_delete", "NO ACTION")]),
            sql.SQL("" if fk.get("validated", True) else " NOT VALID")))


_ON_DELETE = {a: a for a in ("NO ACTION", "RESTRICT", "CASCADE", "SET NULL", "SET DEFAULT")}


def swap_back(conn: psycopg.Connection, schema: str, table: str) -> str:
    """Undo a promotion inside the caller's transaction: the previous table returns, or a table new in
    that promotion is dropped. Returns what was done."""
    prev_name = side_name(schema, table)
    live = sql.Identifier(schema, table)
    if table_oid(conn, PREVIOUS, prev_name) is None:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(live))
        return "dropped (it did not exist before)"
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(live))
    conn.execute(sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(sql.Identifier(PREVIOUS, prev_name),
                                                                sql.Identifier(schema)))
    conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(sql.Identifier(schema, prev_name),
                                                               sql.Identifier(table)))
    return "swapped back to its previous version"


@contextmanager
def text_enum_view(conninfo: str, name: str) -> Iterator[str]:
    """A view over a staging table with its enum columns cast to text, for the time of a GX suite.

    GX binds the values of set expectations as varchar, which PostgreSQL cannot compare with an
    enum; seen through this view, "status in set" works as the suite's author meant.
    """
    view = f"{name[:50]}~gx"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        cols = conn.execute(
            "SELECT a.attname, t.typtype = 'e' FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
            "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            (sql.Identifier(STAGING, name).as_string(conn),)).fetchall()
        items = sql.SQL(", ").join(sql.SQL("{}::text AS {}").format(sql.Identifier(c), sql.Identifier(c)) if enum
                                   else sql.Identifier(c) for c, enum in cols)
        conn.execute(sql.SQL("CREATE OR REPLACE VIEW {} AS SELECT {} FROM {}").format(
            sql.Identifier(STAGING, view), items, sql.Identifier(STAGING, name)))
        try:
            yield view
        finally:
            conn.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(sql.Identifier(STAGING, view)))
