"""What the plan checker asks the source catalog: schemas, tables, columns, types and casts (read only)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import cache
from types import SimpleNamespace

import psycopg
from psycopg import sql

from dbsplit.errors import ConnectionConfigError
from dbsplit.pg.catalog import TableInfo, read_table, table_oid
from dbsplit.pg.conn import conninfo_from_airflow

# Built-in type OIDs (fixed in PostgreSQL's catalog) a watermark may have, directly or as a domain's base.
WATERMARK_TYPES = {1114: "timestamp", 1184: "timestamptz", 1082: "date", 21: "smallint", 23: "integer", 20: "bigint"}


class SourceCatalog:
    """Cached catalog look-ups on a connection in a read-only transaction; failed probes roll back to a savepoint."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.table = cache(self._table)
        self.type_oid = cache(self._type_oid)
        self.can_cast = cache(self._can_cast)

    def schemas(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT nspname FROM pg_namespace ORDER BY nspname")]

    def tables(self, schema: str) -> list[str]:
        return [r[0] for r in self.conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY c.relname", (schema,))]

    def _table(self, schema: str, name: str) -> TableInfo | None:
        return read_table(self.conn, schema, name) if table_oid(self.conn, schema, name) is not None else None

    def _type_oid(self, type_text: str) -> int | None:
        """The OID of a type named in the plan, or None when PostgreSQL does not know it."""
        try:
            with self.conn.transaction():
                row = self.conn.execute("SELECT to_regtype(%s)::oid::int", (type_text,)).fetchone()
        except psycopg.Error:  # a syntax error in the type text
            return None
        return row[0] if row and row[0] else None

    def type_name(self, oid: int) -> str:
        row = self.conn.execute("SELECT format_type(%s, NULL)", (oid,)).fetchone()
        return str(row[0]) if row else str(oid)

    def base_type(self, oid: int) -> int:
        """The type itself, or a domain's base type."""
        row = self.conn.execute(
            "SELECT COALESCE(NULLIF(typbasetype, 0), oid)::int FROM pg_type WHERE oid = %s", (oid,)).fetchone()
        return row[0] if row else oid

    def _can_cast(self, source_oid: int, target_oid: int) -> bool:
        """Whether CAST(source AS target) exists; PostgreSQL itself decides, on a NULL value."""
        # The type names come from format_type() of catalog OIDs, PostgreSQL's own quoted spelling,
        # never from plan text, so composing them as SQL is safe.
        query = sql.SQL("SELECT CAST(NULL::{} AS {})").format(
            sql.SQL(self.type_name(source_oid)), sql.SQL(self.type_name(target_oid)))
        try:
            with self.conn.transaction():
                self.conn.execute(query)
        except psycopg.Error:
            return False
        return True


def conninfo_from_env(conn_id: str, environ: Mapping[str, str] = os.environ) -> str | None:
    """The conninfo of an AIRFLOW_CONN_<ID> variable (JSON or URI form), or None when it is not set."""
    value = environ.get(f"AIRFLOW_CONN_{conn_id.upper()}", "").strip()
    if not value:
        return None
    if not value.startswith("{"):
        return value
    try:
        body = json.loads(value)
        extra = body.get("extra") or {}
        extra = json.loads(extra) if isinstance(extra, str) else extra
    except (ValueError, AttributeError) as exc:
        raise ConnectionConfigError(f"AIRFLOW_CONN_{conn_id.upper()} is not a valid connection JSON ({exc})") from exc
    conn = SimpleNamespace(conn_id=conn_id, conn_type=body.get("conn_type"), host=body.get("host"),
                           port=body.get("port"), login=body.get("login"), password=body.get("password"),
                           schema=body.get("schema"), extra_dejson=extra)
    return conninfo_from_airflow(conn)
