"""Read table metadata from a PostgreSQL catalog (columns, types, keys, user-defined types)."""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from dbsplit.errors import SourceSchemaError


@dataclass(frozen=True)
class Column:
    name: str
    type_sql: str          # format_type() text, valid in DDL
    not_null: bool
    type_oid: int
    generated_expr: str | None = None   # STORED generated column expression


@dataclass(frozen=True)
class UserType:
    """An enum or domain a table's columns use, to be recreated in the target before the table."""

    schema: str
    name: str
    kind: str                              # "enum" or "domain"
    labels: tuple[str, ...] = ()           # enum labels in order
    base_type_sql: str = ""                # domain base type
    not_null: bool = False
    checks: tuple[str, ...] = ()           # domain CHECK constraint definitions


@dataclass(frozen=True)
class TableInfo:
    schema: str
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    user_types: tuple[UserType, ...] = field(default=())

    @property
    def copy_columns(self) -> list[str]:
        """Columns that COPY moves (generated columns are recomputed by the target)."""
        return [c.name for c in self.columns if c.generated_expr is None]

    @property
    def not_null_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.not_null]


_COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.atttypid::int,
       CASE WHEN a.attgenerated = 's' THEN pg_get_expr(d.adbin, d.adrelid) END
FROM pg_attribute a
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %(oid)s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

_PRIMARY_KEY = """
SELECT a.attname
FROM pg_index i
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, pos)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = %(oid)s AND i.indisprimary
ORDER BY k.pos
"""

_USER_TYPES = """
WITH RECURSIVE used(oid) AS (
    SELECT DISTINCT atttypid FROM pg_attribute WHERE attrelid = %(oid)s AND attnum > 0 AND NOT attisdropped
  UNION
    SELECT x FROM pg_type t JOIN used u ON t.oid = u.oid, unnest(ARRAY[t.typelem, t.typbasetype]) AS x
    WHERE x <> 0
)
SELECT n.nspname, t.typname, t.typtype::text,
       ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder),
       CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END,
       t.typnotnull,
       ARRAY(SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c WHERE c.contypid = t.oid ORDER BY c.conname)
FROM used u JOIN pg_type t ON t.oid = u.oid JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE t.typtype IN ('e', 'd')
ORDER BY t.typtype = 'e' DESC, t.oid
"""


def table_oid(conn: psycopg.Connection, schema: str, table: str) -> int | None:
    row = conn.execute(
        "SELECT c.oid::int FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')",
        (schema, table),
    ).fetchone()
    return row[0] if row else None


def read_table(conn: psycopg.Connection, schema: str, table: str) -> TableInfo:
    """Metadata of one table; raises SourceSchemaError naming the table when it does not exist."""
    oid = table_oid(conn, schema, table)
    if oid is None:
        raise SourceSchemaError(
            f"table {schema}.{table} does not exist in database {conn.info.dbname!r}. "
            "Fix: correct the table name in the plan, or create the table."
        )
    columns = tuple(Column(n, t, nn, o, g) for n, t, nn, o, g in conn.execute(_COLUMNS, {"oid": oid}))
    pk = tuple(r[0] for r in conn.execute(_PRIMARY_KEY, {"oid": oid}))
    types = tuple(
        UserType(s, n, "enum" if k == "e" else "domain", tuple(labels), base or "", bool(nn), tuple(checks))
        for s, n, k, labels, base, nn, checks in conn.execute(_USER_TYPES, {"oid": oid})
    )
    return TableInfo(schema, table, columns, pk, types)
