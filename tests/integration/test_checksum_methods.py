"""Both checksum methods agree between two databases holding the same rows, and each catches a
change that equality would hide: numeric or jsonb scale, -0, an interval's units, a case change."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from dbsplit.engine.verify import checksums

pytestmark = pytest.mark.integration

DDL = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE t (id int PRIMARY KEY, n numeric, j jsonb, f float8, i interval, m mood, s text, b bytea,
                ts timestamptz, arr int[], js json, d numeric(8,2));
INSERT INTO t VALUES
  (1, 1.0, '{"a": 1.0}', 0, '1 day', 'ok', 'Abc', '\\x00ff', '2024-01-01 10:00+00', '{1,2}', '{"x": 1}', 1.5),
  (2, NULL, NULL, NULL, NULL, NULL, '', NULL, NULL, NULL, NULL, NULL),
  (3, 2.50, '[1, "two"]', 'NaN', '-3 hours', 'happy', 'x, "y"', '\\x', '1999-12-31 23:59:59.5+01', '{}', '[]', -0.01);
"""
CHANGES = [
    "UPDATE t SET n = 1.00 WHERE id = 1",
    """UPDATE t SET j = '{"a": 1.00}' WHERE id = 1""",
    "UPDATE t SET f = '-0' WHERE id = 1",
    "UPDATE t SET i = '24 hours' WHERE id = 1",
    "UPDATE t SET m = 'sad' WHERE id = 1",
    "UPDATE t SET s = 'abc' WHERE id = 1",
    "UPDATE t SET s = NULL WHERE id = 2",
    """UPDATE t SET js = '{"x":1}' WHERE id = 1""",
    "UPDATE t SET d = 1.51 WHERE id = 1",
    "UPDATE t SET d = 0 WHERE id = 3",
]
COLS = ["id", "n", "j", "f", "i", "m", "s", "b", "ts", "arr", "js", "d"]
REL = sql.Identifier("public", "t")


def checksum(conninfo: str, method: str) -> checksums.Checksum:
    with psycopg.connect(conninfo) as conn:
        exprs = checksums.hash_columns(conn, REL, COLS) if method == checksums.HASH64 else checksums.columns(COLS)
        return checksums.chunk_checksum(conn, REL, exprs, None, method)


@pytest.fixture
def pair(make_db):
    a, b = make_db("ck_a"), make_db("ck_b")
    with psycopg.connect(b, autocommit=True) as conn:   # another enum OID in b than in a
        conn.execute("CREATE TYPE filler AS ENUM ('x')")
    for db in (a, b):
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(DDL)
    return a, b


@pytest.mark.parametrize("method", [checksums.MD5, checksums.HASH64])
def test_same_rows_same_checksum_and_every_change_is_seen(pair, method) -> None:
    a, b = pair
    if method == checksums.HASH64:
        with psycopg.connect(a) as conn:
            if checksums.method_for(conn) != checksums.HASH64:
                pytest.skip("hash_record_extended needs PostgreSQL 14")
    assert checksum(a, method) == checksum(b, method)
    assert checksum(a, method).rows == 3
    for change in CHANGES:
        with psycopg.connect(b, autocommit=True) as conn:
            conn.execute("BEGIN")
            conn.execute(change)
            assert checksum(a, method) != _in_transaction(conn, method), change
            conn.execute("ROLLBACK")
    assert checksum(a, method) == checksum(b, method)


def _in_transaction(conn: psycopg.Connection, method: str) -> checksums.Checksum:
    exprs = checksums.hash_columns(conn, REL, COLS) if method == checksums.HASH64 else checksums.columns(COLS)
    return checksums.chunk_checksum(conn, REL, exprs, None, method)


def test_numeric_with_a_declared_scale_is_hashed_as_is(pair) -> None:
    """numeric(p, s) stores every value at scale s, so its hash is exact: no text cast per row."""
    with psycopg.connect(pair[0]) as conn:
        exprs = dict(zip(COLS, (e.as_string(conn) for e in checksums.hash_columns(conn, REL, COLS))))
    assert exprs["d"] == '"d"' and exprs["n"] == '"n"::text' and exprs["j"] == '"j"::text'


def test_stored_form_names_the_method() -> None:
    assert checksums.parse_stored(checksums.stored(checksums.HASH64, "-42")) == (checksums.HASH64, "-42")
    assert checksums.parse_stored(checksums.stored(checksums.MD5, "42")) == (checksums.MD5, "42")
