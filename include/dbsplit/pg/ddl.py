"""Target DDL: recreate a source table faithfully in a service's database.

ensure_target_table creates the user types, then the table with every column (types, collations,
defaults, identity, generated expressions, NOT NULL), its primary key, unique, check and exclusion
constraints, and its other indexes. Foreign keys come later, from add_foreign_keys, once every table
of the service is loaded; set_sequences_past_max moves identity and serial sequences past the data.

Names of index-backed objects (primary key, unique and exclusion constraints, indexes) are kept when
the target table has the source table's name and none of them is taken in the target schema;
otherwise PostgreSQL chooses them. Check constraint and foreign key names are always kept.

A target table that differs from its source (ensure_mapped_table) is described by ColumnMaps. The
rule: a target column is UNCHANGED when it copies the source column of the same name with the same
type text (op "copy"). Unchanged columns keep their default, identity, serial sequence, collation and
generation (a generated column only when every column it reads is unchanged too). A constraint,
index or foreign key is kept only when every column it names (for an index: also every column its
expressions and predicate read) is unchanged. The primary key is the `key` given (ResolvedTable.key)
or else the source's when it survives. NOT NULL comes from the ColumnMap. Added columns get no
DEFAULT (their value is set when rows move).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import psycopg
from psycopg import sql

from dbsplit.errors import DbsplitError
from dbsplit.model.resolved import ColumnMap, ResolvedTable
from dbsplit.pg.catalog import Column, TableInfo, UserType, table_oid
from dbsplit.pg.ddl_objects import (  # noqa: F401  (re-exported: the public DDL API lives here)
    add_foreign_keys,
    align_serial_sequences,
    column_sql,
    column_types,
    drop_foreign_keys,
    foreign_key_sql,
    index_sql,
    relation_names_taken,
    safe_type_sql,
    set_sequences_past_max,
)
from dbsplit.pg.rows import one_row

MANAGED_COMMENT = "managed by dbsplit"


class TargetConflict(DbsplitError):
    """A target table exists that dbsplit did not create, or whose shape differs from the plan's."""


def ensure_user_type(conn: psycopg.Connection, t: UserType) -> None:
    """Create an enum, domain or composite type in the target unless a type of that name exists."""
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
    if t.kind == "composite":
        atts = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(ty)) for n, ty in t.attributes)
        conn.execute(sql.SQL("CREATE TYPE {} AS ({})").format(name, atts))
        return
    # base type, default and CHECK text come from the server's own catalog
    parts: list[sql.Composable] = [sql.SQL("CREATE DOMAIN {} AS {}").format(name, sql.SQL(t.base_type_sql))]
    if t.default is not None:
        parts.append(sql.SQL("DEFAULT {}").format(sql.SQL(t.default)))
    if t.not_null:
        parts.append(sql.SQL("NOT NULL"))
    not_valid = [check for check in t.checks if check.endswith(" NOT VALID")]   # CREATE DOMAIN refuses those
    parts.extend(sql.SQL(check) for check in t.checks if check not in not_valid)
    conn.execute(sql.SQL(" ").join(parts))
    for check in not_valid:   # enforced on every new value, old ones unchecked: as in the source
        conn.execute(sql.SQL("ALTER DOMAIN {} ADD {}").format(name, sql.SQL(check)))


def create_table_sql(info: TableInfo, schema: str, name: str, keep_names: bool | None = None) -> sql.Composed:
    """CREATE TABLE for the target: columns, primary key, unique, check and exclusion constraints.

    keep_names (default: the target has the source's name) keeps index-backed constraint names.
    A partitioned source becomes an ordinary table (its rows arrive through the parent).
    """
    keep = name == info.name if keep_names is None else keep_names
    seqs = {s.column: s for s in info.sequences}
    items: list[sql.Composable] = [column_sql(c, seqs.get(c.name)) for c in info.columns]
    pk = next((c for c in info.constraints if c.kind == "p" and c.columns == info.primary_key), None)
    if info.primary_key and pk is None:
        items.append(sql.SQL("PRIMARY KEY ({})").format(sql.SQL(", ").join(map(sql.Identifier, info.primary_key))))
    for c in info.constraints:
        if (c.kind == "p" and c is not pk) or not c.validated:   # NOT VALID: add_not_valid_checks
            continue
        named = keep or c.kind == "c"
        items.append(sql.SQL("CONSTRAINT {} {}").format(sql.Identifier(c.name), sql.SQL(c.definition))
                     if named else sql.SQL(c.definition))
    return sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(schema, name), sql.SQL(", ").join(items))


def ensure_target_table(conn: psycopg.Connection, info: TableInfo, schema: str, name: str) -> bool:
    """Create the target table if absent; refuse a table dbsplit did not create or of another shape.

    Returns True when the table was created.
    """
    oid = table_oid(conn, schema, name)
    if oid is not None:
        _check_existing(conn, oid, info, schema, name)
        return False
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    for t in info.user_types:
        ensure_user_type(conn, t)
    index_backed = [c.name for c in info.constraints if c.kind != "c"] + [ix.name for ix in info.indexes]
    keep = name == info.name and not relation_names_taken(conn, schema, index_backed)
    conn.execute(create_table_sql(info, schema, name, keep))
    conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(sql.Identifier(schema, name),
                                                          sql.Literal(MANAGED_COMMENT)))
    for ix in info.indexes:
        conn.execute(index_sql(ix, schema, name, keep))
    add_not_valid_checks(conn, info, schema, name)
    align_serial_sequences(conn, schema, name, info.sequences)
    return True


def add_not_valid_checks(conn: psycopg.Connection, info: TableInfo, schema: str, name: str) -> None:
    """The source's NOT VALID CHECK constraints, added NOT VALID (CREATE TABLE would validate them).

    PostgreSQL checks every new row against them: a table that must take old rows breaking one gets it
    after its load (staging.create_staging_table defers it)."""
    for c in info.constraints:
        if c.kind == "c" and not c.validated:   # the definition, from pg_get_constraintdef, ends in NOT VALID
            conn.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                sql.Identifier(schema, name), sql.Identifier(c.name), sql.SQL(c.definition)))


def ensure_mapped_table(conn: psycopg.Connection, info: TableInfo, columns: Sequence[ColumnMap], schema: str,
                        name: str, key: Sequence[str] | None = None) -> bool:
    """Like ensure_target_table, for a target whose columns are given as ColumnMaps (see the module rule)."""
    for t in info.user_types:
        ensure_user_type(conn, t)
    for m in columns:
        if not _unchanged(info, m):
            safe_type_sql(conn, m.target_type)
    return ensure_target_table(conn, target_shape(info, columns, key), schema, name)


def ensure_resolved_table(conn: psycopg.Connection, info: TableInfo, table: ResolvedTable) -> bool:
    """ensure_mapped_table for a ResolvedTable: its columns, key, target schema and name."""
    return ensure_mapped_table(conn, info, table.columns, table.target_schema, table.target_table, table.key or None)


def target_shape(info: TableInfo, columns: Sequence[ColumnMap], key: Sequence[str] | None = None) -> TableInfo:
    """The TableInfo of a target described by ColumnMaps, keeping what the module rule keeps. Pure."""
    kept = {m.target for m in columns if _unchanged(info, m)}
    cols = tuple(_target_column(info, m, kept) for m in columns)
    pk = tuple(key) if key else (info.primary_key if set(info.primary_key) <= kept else ())

    def survives(names: Sequence[str]) -> bool:
        return set(names) <= kept

    return dataclasses.replace(
        info, columns=cols, primary_key=pk,
        constraints=tuple(c for c in info.constraints if survives(c.columns) and (c.kind != "p" or c.columns == pk)),
        indexes=tuple(ix for ix in info.indexes if survives(ix.columns)),
        foreign_keys=tuple(fk for fk in info.foreign_keys if survives(fk.columns)),
        sequences=tuple(s for s in info.sequences if s.column in kept),
    )


def _unchanged(info: TableInfo, m: ColumnMap) -> bool:
    src = next((c for c in info.columns if c.name == m.target), None)
    return m.op == "copy" and m.source == (m.target,) and src is not None and src.type_sql == m.target_type


def _target_column(info: TableInfo, m: ColumnMap, kept: set[str]) -> Column:
    if m.target not in kept:
        return Column(m.target, m.target_type, m.not_null, 0)
    c = dataclasses.replace(info.column(m.target), not_null=m.not_null)
    if c.generated_expr is not None and not set(c.generated_from) <= kept:
        c = dataclasses.replace(c, generated_expr=None, generated="", generated_from=())
    return c


def _check_existing(conn: psycopg.Connection, oid: int, info: TableInfo, schema: str, name: str) -> None:
    comment = one_row(conn.execute("SELECT obj_description(%s::oid, 'pg_class')", (oid,)))[0]
    where = f"{schema}.{name} in target database {conn.info.dbname!r}"
    if comment != MANAGED_COMMENT:
        raise TargetConflict(
            f"table {where} exists and was not created by dbsplit; dbsplit never overwrites it. "
            "Fix: drop or rename it, or route the source table to another target name in the plan."
        )
    have = column_types(conn, oid)
    want = [(c.name, c.type_sql) for c in info.columns]
    if not _same_columns(conn, have, want, {c.name for c in info.columns if c.type_oid == 0}):
        raise TargetConflict(
            f"table {where} has columns {have} but the source {info.schema}.{info.name} now implies {want}. "
            "Fix: drop the target table so that dbsplit recreates it."
        )


def _same_columns(conn: psycopg.Connection, have: list[tuple[str, str]], want: list[tuple[str, str]],
                  plan_typed: set[str]) -> bool:
    """Equal names and types; a type from a plan is compared by the type it names (modifiers aside)."""
    if [n for n, _ in have] != [n for n, _ in want]:
        return False
    for (n, have_type), (_, want_type) in zip(have, want, strict=True):
        if n in plan_typed:
            same = one_row(conn.execute("SELECT to_regtype(%s) = to_regtype(%s)", (have_type, want_type)))[0]
        else:
            same = have_type == want_type
        if not same:
            return False
    return True
