"""Content checksums that compare source and target without moving rows.

A row's fingerprint is the first 60 bits of md5 of its record text (`ROW(...)::text`); a chunk's
checksum is the row count plus the sum of its rows' fingerprints. Sums are order-independent and
additive, so chunks add up to the table, and md5 and record text are the same on every supported
PostgreSQL version (unlike hashtext). A mismatch is located to its chunk, then to its rows by
comparing per-row fingerprints of that chunk only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import psycopg
from psycopg import sql

from dbsplit.move.chunks import Chunk, chunk_where


@dataclass(frozen=True)
class Checksum:
    rows: int
    total: str  # a decimal integer (numeric sum), compared as text

    def as_list(self) -> list:
        return [self.rows, self.total]


def fingerprint(exprs: Sequence[sql.Composable]) -> sql.Composable:
    """60-bit fingerprint of a row built from the given column expressions."""
    row = sql.SQL("ROW({})").format(sql.SQL(", ").join(exprs))
    return sql.SQL("('x' || substr(md5({}::text), 1, 15))::bit(60)::bigint").format(row)


def columns(names: Sequence[str]) -> list[sql.Composable]:
    return [sql.Identifier(n) for n in names]


def chunk_checksum(conn: psycopg.Connection, relation: sql.Composable, exprs: Sequence[sql.Composable],
                   where: sql.Composable | None = None) -> Checksum:
    """Checksum of the rows of relation (optionally restricted by where)."""
    query = sql.SQL("SELECT count(*), coalesce(sum({fp}), 0)::text FROM {rel}").format(fp=fingerprint(exprs), rel=relation)
    if where is not None:
        query = sql.SQL("{} WHERE {}").format(query, where)
    rows, total = conn.execute(query).fetchone()
    return Checksum(rows, total)


def _chunk_case(chunks: Sequence[Chunk], key: Sequence[str]) -> sql.Composable:
    """CASE expression giving each row's chunk index from the chunk boundaries."""
    if len(chunks) == 1:
        return sql.Literal(chunks[0].index)
    whens = [sql.SQL("WHEN {} THEN {}").format(chunk_where(Chunk(c.index, c.count, c.kind, None, c.hi), key),
                                               sql.Literal(c.index)) for c in chunks[:-1]]
    return sql.SQL("CASE {} ELSE {} END").format(sql.SQL(" ").join(whens), sql.Literal(chunks[-1].index))


def checksums_by_chunk(conn: psycopg.Connection, relation: sql.Composable, exprs: Sequence[sql.Composable],
                       chunks: Sequence[Chunk], key: Sequence[str]) -> dict[int, Checksum]:
    """Checksum of every chunk of a relation in one scan (the relation needs the chunks' key columns)."""
    query = sql.SQL(
        "SELECT c, count(*), sum(fp)::text FROM (SELECT {case} AS c, {fp} AS fp FROM {rel}) s GROUP BY c"
    ).format(case=_chunk_case(chunks, key), fp=fingerprint(exprs), rel=relation)
    found = {c: Checksum(n, total) for c, n, total in conn.execute(query)}
    return {c.index: found.get(c.index, Checksum(0, "0")) for c in chunks}


def row_fingerprints(conn: psycopg.Connection, relation: sql.Composable, exprs: Sequence[sql.Composable],
                     key: Sequence[str], where: sql.Composable | None = None) -> dict[str, int]:
    """Fingerprint per row, keyed by the row's key text (for locating differing rows in one chunk)."""
    key_text = sql.SQL("concat_ws(',', {})").format(sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(k)) for k in key))
    query = sql.SQL("SELECT {k}, {fp} FROM {rel}").format(k=key_text, fp=fingerprint(exprs), rel=relation)
    if where is not None:
        query = sql.SQL("{} WHERE {}").format(query, where)
    return dict(conn.execute(query).fetchall())


def differing_keys(source: dict[str, int], target: dict[str, int], limit: int = 10) -> list[str]:
    """Keys whose rows differ, are missing from the target, or are extra in it (a sample)."""
    keys = sorted(k for k in source.keys() | target.keys() if source.get(k) != target.get(k))
    return keys[:limit]
