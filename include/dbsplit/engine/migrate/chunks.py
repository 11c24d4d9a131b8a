"""Chunk plans: key ranges (or ctid page ranges) that split a table into units of parallelism, retry and proof.

Boundaries are PostgreSQL text values of the key; a chunk holds lo <= key < hi, where the first
chunk has no lower bound and the last no upper bound (so rows added above the old maximum are
still picked up).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import psycopg
from psycopg import sql

from dbsplit.model.sql_fragments import filter_sql
from dbsplit.pg.rows import one_row

INTEGER_TYPES = {"smallint", "integer", "bigint"}


@dataclass(frozen=True)
class Chunk:
    index: int
    count: int                    # chunks in the plan
    kind: str                     # "key", "ctid" or "all"
    lo: tuple[str, ...] | None    # inclusive lower bound (key texts, or a block number for ctid)
    hi: tuple[str, ...] | None    # exclusive upper bound

    @property
    def label(self) -> str:
        return f"{self.index + 1}/{self.count}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Chunk":
        lo, hi = d.get("lo"), d.get("hi")
        return cls(d["index"], d["count"], d["kind"], tuple(lo) if lo is not None else None,
                   tuple(hi) if hi is not None else None)


def _from(schema: str, table: str, row_filter: str | None) -> sql.Composable:
    base = sql.SQL("FROM {}").format(sql.Identifier(schema, table))
    return sql.SQL("{} WHERE {}").format(base, filter_sql(row_filter)) if row_filter else base


def _from_chunks(bounds: list[tuple[str, ...]], kind: str) -> list[Chunk]:
    edges: list[tuple[str, ...] | None] = [None, *bounds, None]
    n = len(edges) - 1
    return [Chunk(i, n, kind, edges[i], edges[i + 1]) for i in range(n)]


def plan_chunks(conn: psycopg.Connection, schema: str, table: str, key: Sequence[str], key_types: Sequence[str],
                chunk_rows: int, row_filter: str | None = None) -> list[Chunk]:
    """Split a table into chunks of about chunk_rows rows (the caller's transaction gives the snapshot)."""
    if not key:
        return _ctid_chunks(conn, schema, table, chunk_rows)
    src = _from(schema, table, row_filter)
    if len(key) == 1 and key_types[0] in INTEGER_TYPES:
        k = sql.Identifier(key[0])
        query = sql.SQL("SELECT min({k}), max({k}), count(*) {src}").format(k=k, src=src)
        lo, hi, n = one_row(conn.execute(query))
        if n <= chunk_rows:
            return [Chunk(0, 1, "all", None, None)]
        density = n / (hi - lo + 1)
        if density >= 0.5:  # dense enough: even ranges need no sort
            width = max(1, math.ceil(chunk_rows / density))
            return _from_chunks([(str(b),) for b in range(lo + width, hi + 1, width)], "key")
    return _quantile_chunks(conn, src, key, chunk_rows)


def _quantile_chunks(conn: psycopg.Connection, src: sql.Composable, key: Sequence[str], chunk_rows: int) -> list[Chunk]:
    """Boundaries every chunk_rows rows in key order: even row counts whatever the key's distribution."""
    cols = sql.SQL(", ").join(map(sql.Identifier, key))
    texts = sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(k)) for k in key)
    query = sql.SQL(
        "SELECT {texts} FROM (SELECT {cols}, row_number() OVER (ORDER BY {cols}) AS _rn {src}) s "
        "WHERE _rn % {n} = 1 AND _rn > 1 ORDER BY _rn"
    ).format(texts=texts, cols=cols, src=src, n=sql.Literal(chunk_rows))
    bounds = [tuple(row) for row in conn.execute(query)]
    return _from_chunks(bounds, "key") if bounds else [Chunk(0, 1, "all", None, None)]


def _ctid_chunks(conn: psycopg.Connection, schema: str, table: str, chunk_rows: int) -> list[Chunk]:
    """Page ranges for a table without a key (TID range scans, PostgreSQL 14+)."""
    pages, tuples = one_row(conn.execute(
        "SELECT pg_relation_size(c.oid) / current_setting('block_size')::int, greatest(c.reltuples, 0) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
        (schema, table)))
    if pages <= 1 or tuples <= chunk_rows:
        return [Chunk(0, 1, "all", None, None)]
    per_page = max(tuples / pages, 1)
    step = max(1, int(chunk_rows / per_page))
    return _from_chunks([(str(b),) for b in range(step, int(pages), step)], "ctid")


def chunk_where(chunk: Chunk, key: Sequence[str]) -> sql.Composable | None:
    """The WHERE condition selecting one chunk's rows (None for a whole-table chunk)."""
    if chunk.kind == "all":
        return None
    if chunk.kind == "ctid":
        parts = []
        if chunk.lo is not None:
            parts.append(sql.SQL("ctid >= {}::tid").format(sql.Literal(f"({chunk.lo[0]},0)")))
        if chunk.hi is not None:
            parts.append(sql.SQL("ctid < {}::tid").format(sql.Literal(f"({chunk.hi[0]},0)")))
        return sql.SQL(" AND ").join(parts)
    parts = []
    if chunk.lo is not None:
        parts.append(sql.SQL("{} >= {}").format(_row(key, sql.Identifier), _row(chunk.lo, sql.Literal)))
    if chunk.hi is not None:
        parts.append(sql.SQL("{} < {}").format(_row(key, sql.Identifier), _row(chunk.hi, sql.Literal)))
    return sql.SQL(" AND ").join(parts)


def _row(items: Sequence[str], wrap: Any) -> sql.Composable:
    """One value, or a row constructor for composite keys (text literals are typed by the comparison)."""
    if len(items) == 1:
        return wrap(items[0])
    return sql.SQL("ROW({})").format(sql.SQL(", ").join(map(wrap, items)))
