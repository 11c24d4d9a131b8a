"""copy.joined_messages reads COPY TO output partly below psycopg's Copy.read(): it must give the same
bytes, the same rowcount, the server's error, and a connection that works afterwards."""

from __future__ import annotations

import psycopg
import pytest

from dbsplit.pg.copy import JOIN_MESSAGES, joined_messages

pytestmark = pytest.mark.integration

ROWS = 150_000
QUERY = ("SELECT g, 'row ' || g || repeat(',\"x', g % 5), CASE WHEN g % 7 = 0 THEN NULL ELSE g * 1.5 END,"
         " now()::date FROM generate_series(1, {n}) g")


def _psycopg_bytes(conn: psycopg.Connection, stmt: str) -> tuple[bytes, int]:
    with conn.cursor() as cur:
        with cur.copy(stmt) as copy:
            data = b"".join(bytes(block) for block in copy)
        return data, cur.rowcount


def _joined_bytes(conn: psycopg.Connection, stmt: str) -> tuple[bytes, int, int]:
    with conn.cursor() as cur:
        with cur.copy(stmt) as copy:
            blocks = list(joined_messages(copy))
        return b"".join(blocks), cur.rowcount, len(blocks)


@pytest.mark.parametrize("fmt", ["csv", "binary", "text"])
@pytest.mark.parametrize("rows", [ROWS, 1, 0])
def test_same_bytes_and_rowcount_as_psycopg(make_db, fmt: str, rows: int) -> None:
    db = make_db("copyread")
    stmt = f"COPY ({QUERY.format(n=rows)}) TO STDOUT (FORMAT {fmt})"
    with psycopg.connect(db) as conn:
        expected, expected_rows = _psycopg_bytes(conn, stmt)
        got, got_rows, blocks = _joined_bytes(conn, stmt)
        assert got == expected
        assert got_rows == expected_rows == rows
        if rows == ROWS:
            # joined: at most JOIN_MESSAGES rows a block, and far fewer blocks than rows (a block also ends
            # where libpq's buffer runs dry: about 2,800 blocks per 100k rows were measured)
            assert ROWS // JOIN_MESSAGES <= blocks < ROWS // 10
        # the connection goes on in the same transaction
        assert conn.execute("SELECT 41 + 1").fetchone() == (42,)


def test_an_error_midway_is_raised_and_the_connection_recovers(make_db) -> None:
    db = make_db("copyread")
    stmt = "COPY (SELECT g, 1 / (g - 120000) FROM generate_series(1, 200000) g) TO STDOUT (FORMAT csv)"
    with psycopg.connect(db) as conn:
        received = 0
        with pytest.raises(psycopg.errors.DivisionByZero):
            with conn.cursor() as cur, cur.copy(stmt) as copy:
                for block in joined_messages(copy):
                    received += block.count(b"\n")
        assert 0 < received < 120000   # rows before the failing one arrived first
        conn.rollback()
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_consumer_that_stops_early_leaves_a_usable_connection(make_db) -> None:
    db = make_db("copyread")
    stmt = f"COPY ({QUERY.format(n=ROWS)}) TO STDOUT (FORMAT csv)"
    with psycopg.connect(db) as conn:
        with pytest.raises(RuntimeError, match="stop"):
            with conn.cursor() as cur, cur.copy(stmt) as copy:
                for _ in joined_messages(copy):
                    raise RuntimeError("stop")
        conn.rollback()
        assert conn.execute("SELECT 2").fetchone() == (2,)
