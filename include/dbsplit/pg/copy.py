"""Binary COPY streaming between PostgreSQL and staging files; rows are never decoded on this path."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterator, Sequence, cast

import psycopg
from psycopg import IsolationLevel, generators, pq, sql

from dbsplit.pg.conn import connect_source
from dbsplit.pg.rows import one_row

BUFFER = 1 << 20
JOIN_MESSAGES = 2048   # COPY TO messages (rows) joined per write
JOIN_BYTES = 4 << 20   # ... and no more once they hold this many bytes (big rows: fewer copies in memory)


@dataclass(frozen=True)
class CopyResult:
    rows: int
    bytes: int
    seconds: float


def source_connection(conninfo: str) -> psycopg.Connection:
    """A source connection whose every transaction is READ ONLY (the session's default too, see
    conn.connect_source) and REPEATABLE READ (one snapshot per transaction)."""
    conn = connect_source(conninfo, application_name="dbsplit-extract")
    conn.read_only = True
    conn.isolation_level = IsolationLevel.REPEATABLE_READ
    return conn


def select_sql(schema: str, table: str, columns: Sequence[str]) -> sql.Composed:
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    return sql.SQL("SELECT {} FROM {}").format(cols, sql.Identifier(schema, table))


def joined_messages(copy: psycopg.Copy) -> Iterator[bytes | memoryview]:
    """The data of a COPY TO STDOUT in blocks of up to JOIN_MESSAGES messages (fewer past JOIN_BYTES),
    each ending where a message ends; a message of JOIN_BYTES or more is a block of its own, passed
    on as psycopg gave it (a memoryview: a big row is not copied once more).

    The server sends one message per row, and psycopg's Copy.read() spends several Python frames on
    each (iterator, wait, generators). Here psycopg reads the first message of each block (it waits
    for the socket and finishes the copy), and the messages libpq has already received are taken
    straight from it with get_copy_data(async) and joined by bytes.join: about half the client CPU
    of an extract. When that loop meets the end of the copy, _finish_copy_out does what psycopg's
    read would have done (final result, error, rowcount)."""
    get = copy.connection.pgconn.get_copy_data
    # psycopg types read() as any buffer; a COPY TO gives a memoryview (bytes when it ends)
    while first := cast("bytes | memoryview", copy.read()):
        size = len(first)
        if size >= JOIN_BYTES:
            yield first
            continue
        messages = [first]
        while len(messages) < JOIN_MESSAGES and size < JOIN_BYTES:
            nbytes, data = get(1)
            if nbytes > 0:
                messages.append(data)
                size += nbytes
            elif nbytes == 0:   # nothing buffered: the next block starts with psycopg's waiting read
                break
            else:
                last = b"".join(messages)
                _finish_copy_out(copy)   # before the yield: a consumer that stops there leaves a clean connection
                yield last
                return
        yield b"".join(messages)


def _finish_copy_out(copy: psycopg.Copy) -> None:
    """After libpq reported the end of a COPY TO: fetch its final result (raising the server's error,
    if the copy failed midway) and mark the Copy finished, as psycopg's Copy.read() does (3.3)."""
    conn = copy.connection
    results = conn.wait(generators.fetch_many(conn.pgconn))
    copy._finished = True
    result = results[-1]
    if result.status != pq.ExecStatus.COMMAND_OK:
        raise psycopg.errors.error_from_result(result, encoding=conn.info.encoding)
    rows = result.command_tuples
    copy.cursor._rowcount = rows if rows is not None else -1


def extract_to_file(conn: psycopg.Connection, query: sql.Composable, path: Any) -> CopyResult:
    """Stream `COPY (query) TO STDOUT (FORMAT binary)` into path (anything with .open('wb'))."""
    start, size = time.perf_counter(), 0
    with conn.cursor() as cur, path.open("wb") as out:
        with cur.copy(sql.SQL("COPY ({}) TO STDOUT (FORMAT binary)").format(query)) as copy:
            for data in joined_messages(copy):
                out.write(data)
                size += len(data)
        rows = cur.rowcount
    return CopyResult(rows, size, time.perf_counter() - start)


def load_from_file(conn: psycopg.Connection, schema: str, table: str, columns: Sequence[str], path: Any) -> CopyResult:
    """Stream a binary COPY file into a table (inside the caller's transaction)."""
    start, size = time.perf_counter(), 0
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(sql.Identifier(schema, table), cols)
    with conn.cursor() as cur, path.open("rb") as src:
        with cur.copy(stmt) as copy:
            while data := src.read(BUFFER):
                copy.write(data)
                size += len(data)
        rows = cur.rowcount
    return CopyResult(rows, size, time.perf_counter() - start)


def export_snapshot(conn: psycopg.Connection) -> str:
    """Export the snapshot of conn's current transaction so that another session can see the same rows."""
    return one_row(conn.execute("SELECT pg_export_snapshot()"))[0]


def in_snapshot(conninfo: str, snapshot: str, work: Any) -> Any:
    """Run work(conn) in a new read-only session that sees exactly the exported snapshot."""
    with source_connection(conninfo) as conn, conn.transaction():
        conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
        return work(conn)
