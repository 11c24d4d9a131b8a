"""SQL pieces shared by the resync steps: names, key-column lists and joins, the target session's settings."""

from __future__ import annotations

from typing import Any, Sequence

import psycopg
from psycopg import sql

from dbsplit.engine.migrate import arrow_io
from dbsplit.model.resolved import ResolvedTable
from dbsplit.pg.rows import one_row

MERGE_RETURNING_VERSION = 170000   # MERGE ... RETURNING merge_action()
# key texts and fingerprints are made under these settings on both sides (timestamptz text depends on TimeZone)
KEY_SETTINGS = {**arrow_io.TEXT_SETTINGS, "TimeZone": "UTC"}


def table_name(table: ResolvedTable) -> str:
    return f"{table.target_schema}.{table.target_table}"


def target_session(conn: psycopg.Connection) -> None:
    """Settings of the target session for its whole life (it is dbsplit's own connection)."""
    conn.execute(sql.SQL(" ").join(
        sql.SQL("SELECT set_config({}, {}, false);").format(sql.Literal(k), sql.Literal(v))
        for k, v in {**KEY_SETTINGS, "jit": "off"}.items()))


def scalar(conn: psycopg.Connection, query: str | sql.SQL | sql.Composed, params: Any = None) -> Any:
    """The first column of the one row query returns."""
    return one_row(conn.execute(query, params))[0]


def ident(cols: Sequence[str], alias: str | None = None) -> list[sql.Identifier]:
    return [sql.Identifier(alias, c) if alias else sql.Identifier(c) for c in cols]


def idents(cols: Sequence[str], alias: str | None = None) -> sql.Composed:
    """The columns, comma-separated."""
    return sql.SQL(", ").join(ident(cols, alias))


def eq(left: Sequence[str], lalias: str, right: Sequence[str], ralias: str) -> sql.Composed:
    return sql.SQL(" AND ").join(sql.SQL("{} = {}").format(a, b)
                                 for a, b in zip(ident(left, lalias), ident(right, ralias), strict=False))


def join_text(cols: Sequence[str], alias: str) -> sql.Composed:
    return sql.SQL("concat_ws(',', {})").format(texts(cols, alias))


def texts(cols: Sequence[str], alias: str) -> sql.Composed:
    """The columns as text, comma-separated."""
    return sql.SQL(", ").join(sql.SQL("{}::text").format(c) for c in ident(cols, alias))


def temp_table(conn: psycopg.Connection, name: str, cols: Sequence[str], types: Sequence[str]) -> None:
    """A fresh temp table of these columns."""
    conn.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(sql.Identifier(name)))
    conn.execute(sql.SQL("CREATE TEMP TABLE {} ({})").format(sql.Identifier(name), sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in zip(cols, types, strict=False))))


def fill(conn: psycopg.Connection, name: str, rows: Sequence[Sequence[str]]) -> None:
    """COPY key texts into a temp table (text format, parsed under the session's key settings)."""
    with conn.cursor() as cur, cur.copy(sql.SQL("COPY pg_temp.{} FROM STDIN").format(sql.Identifier(name))) as cp:
        for r in rows:
            cp.write_row(r)


def probe_joins(conn: psycopg.Connection) -> None:
    """Inside a transaction: join the small staged sets to the big key and target tables by index
    probes. A hash or merge join would read the whole big table: O(rows) where O(changes) is due."""
    conn.execute("SELECT set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)")
