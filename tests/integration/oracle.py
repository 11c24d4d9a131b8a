"""An independent oracle for migrated tables: what the target must hold, computed from the source.

It does not use dbsplit's transform code: casts and defaults are evaluated by the source server in
SQL, uuid5 by Python's uuid module, hashes by hashlib. Values are compared as PostgreSQL text (both
sessions in UTC), rows as sorted lists.
"""

from __future__ import annotations

import hashlib
import uuid

import psycopg
from psycopg import sql

from dbsplit.model.resolved import ColumnMap, ResolvedTable


def _source_expr(m: ColumnMap) -> sql.Composable:
    if m.op == "cast":
        return sql.SQL("CAST({} AS {})::text").format(sql.Identifier(m.source[0]), sql.SQL(m.target_type))
    if m.op == "default":
        if m.arg is None:
            return sql.SQL("NULL::text")
        return sql.SQL("CAST({} AS {})::text").format(sql.SQL(m.arg), sql.SQL(m.target_type))
    if m.op in ("uuid_key", "uuid_ref") and len(m.source) > 1:
        return sql.SQL("concat_ws(',', {})").format(sql.SQL(", ").join(
            sql.SQL("{}::text").format(sql.Identifier(s)) for s in m.source))
    return sql.SQL("{}::text").format(sql.Identifier(m.source[0]))


def _python_value(m: ColumnMap, text: str | None, namespace: uuid.UUID, salt: bytes | None) -> str | None:
    if m.op == "mask_null":
        return None
    if text is None:
        return None
    if m.op == "uuid_key":
        return str(uuid.uuid5(namespace, f"{m.arg}:{text}"))
    if m.op == "uuid_ref":
        return str(uuid.uuid5(namespace, f"{m.arg}:{text}"))
    if m.op == "mask_hash":
        return hashlib.sha256((salt or b"") + text.encode()).hexdigest()
    if m.op == "mask_redact":
        return "REDACTED"
    return text


def expected_rows(source: str, rt: ResolvedTable, namespace: uuid.UUID, salt: bytes | None) -> list[tuple]:
    """The target table's rows as text tuples, derived from the source."""
    query = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(_source_expr(m) for m in rt.columns), sql.Identifier(rt.source_schema, rt.source_table))
    if rt.filter:
        query = sql.SQL("{} WHERE {}").format(query, sql.SQL(rt.filter))
    with psycopg.connect(source) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        rows = conn.execute(query).fetchall()
    return sorted(tuple(_python_value(m, v, namespace, salt) for m, v in zip(rt.columns, row)) for row in rows)


def actual_rows(target: str, rt: ResolvedTable) -> list[tuple]:
    query = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(m.target)) for m in rt.columns),
        sql.Identifier(rt.target_schema, rt.target_table))
    with psycopg.connect(target) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        return sorted(conn.execute(query).fetchall())
