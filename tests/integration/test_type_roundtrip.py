"""Every value of every common type arrives exactly: `COPY t TO STDOUT` of source and target are byte-identical,
through the binary pass-through (copy.py), the text-format fallback, and the transformed path."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from dbsplit.pg.copy import extract_to_file, load_from_file, select_sql, source_connection
from dbsplit.engine.migrate.transform import extract_chunk, load_chunk, transform_chunk
from dbsplit.engine.migrate.wire import copy_text_from_file, copy_text_to_file, needs_text_copy, table_needs_text_copy
from dbsplit.model.resolved import ColumnMap, ResolvedTable

pytestmark = pytest.mark.integration

TYPES = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy ☺', 'with,comma "q"');
CREATE DOMAIN positive_amount AS numeric(12,2) CHECK (VALUE > 0);
"""
TABLE = """
CREATE TABLE everything (
  id int PRIMARY KEY,
  t text, n30 numeric(30,10), n numeric, tstz timestamptz, ts timestamp, d date, tm time, tmtz timetz,
  iv interval, jb jsonb, js json, u uuid, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, b bool, by bytea,
  ta text[], ia int[], m mood, pa positive_amount, ip inet, net cidr, mac macaddr, bv bit varying(16),
  tv tsvector, mo money, ch char(5), vc varchar(12), r int4range, ma mood[]
);
"""
ROWS = r"""
INSERT INTO everything VALUES
 (1, 'plain ümlaut 日本 "q" , ; tab	end', 12345678901234567890.0123456789, 3.14159265358979323846264338327950288419716939937510,
  '2024-02-29 13:14:15.123456+05:30', '2024-02-29 13:14:15.5', '2024-02-29', '13:14:15.000001', '13:14:15+02',
  '1 year 2 mons -3 days 04:05:06.789', '{"a": [1, 2.50, "ü"], "b": null, "c": {"d": true}}', '{"b": 1,  "a" : [ 1 ]}',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', -32768, 2147483647, -9223372036854775808, 3.4028235e+38,
  1.7976931348623157e+308, true, '\x00ff10', '{"a b",NULL,"c\"d","",e}', '{1,NULL,-3}', 'happy ☺', 12.34,
  '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', B'10101', 'a fat:2 cat:1B sat', '-1234.56', 'ab', 'x y',
  '[1,10)', '{sad,"happy ☺","with,comma \"q\""}'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, '', 'NaN', '-0.000000000000000000000000000000000000000000000000000000000001', 'infinity', '-infinity',
  '0044-03-15 BC', '24:00:00', '00:00:00-14', '-178956970 years -8 mons', '[]', '""', '00000000-0000-0000-0000-000000000000',
  0, -2147483648, 9223372036854775807, 'NaN', '-Infinity', false, '', '{}', '{}', 'sad', 0.01,
  '::1', '2001:db8::/32', 'ff:ff:ff:ff:ff:ff', B'', '', '0', '', '', 'empty', '{}'),
 (4, E'line1\nline2\r\nback\\slash \\N', '-99999999999999999999.9999999999', 1e-300::float8::numeric, '1999-12-31 23:59:59.999999-08',
  '294276-12-31 23:59:59.999999', 'infinity', '00:00', '23:59:59.999999+14',
  '-1 days +00:00:00.000001', '{"k": "\\u00e9\\n"}', 'null', 'ffffffff-ffff-ffff-ffff-ffffffffffff', 1, 1, 1,
  '-0', 'Infinity', NULL, '\x5c4e', '{"\\",NULL}', '{{1,2},{3,4}}', 'with,comma "q"', 99999999.99,
  '2001:db8::1/128', '192.168.1.0/24', '00:00:00:00:00:00', B'1111111111111111', $$'quote''s':1$$, '92233720368547758.07',
  'abcde', '', '(,)', NULL),
 (5, 'x', '-0.0000000001', 'NaN', '2000-01-01 00:00:00+00', '2000-01-01 00:00:00', '2000-01-01', '12:00', '12:00+00',
  '00:00:00', '{"a": 1e400}', '{"a": 1e400}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12', 7, 7, 7, 1e-45, 5e-324, true,
  '\x', '{NULL}', '{NULL}', 'ok', 1, '0.0.0.0/0', '0.0.0.0/0', '01:02:03:04:05:06', B'0', 'x', '-92233720368547758.08',
  ' ', 'é', 'empty', '{NULL,ok}');
"""


def ddl(conn: psycopg.Connection, extra_type_first: bool = False) -> None:
    if extra_type_first:   # shift the OIDs the target gives to the user types
        conn.execute("CREATE TYPE shift_oids AS ENUM ('x'); CREATE TYPE shift_oids2 AS (a int)")
    conn.execute(TYPES)
    conn.execute(TABLE)


def copy_out(conninfo: str, table: str = "everything", columns: list[str] | None = None) -> bytes:
    """`COPY t TO STDOUT` of the table in key order, in a session with default settings."""
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        cols = sql.SQL(", ").join(map(sql.Identifier, columns)) if columns else sql.SQL("*")
        q = sql.SQL("COPY (SELECT {} FROM {} ORDER BY id) TO STDOUT").format(cols, sql.Identifier(table))
        with cur.copy(q) as copy:
            return b"".join(bytes(b) for b in copy)


def columns_of(conninfo: str) -> list[str]:
    with psycopg.connect(conninfo) as conn:
        return [r[0] for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'everything'::regclass AND attnum > 0"
            " AND NOT attisdropped ORDER BY attnum")]


@pytest.fixture
def pair(make_db):
    source, target = make_db("types_src"), make_db("types_dst")
    with psycopg.connect(source) as conn:
        ddl(conn)
        conn.execute(ROWS)
    with psycopg.connect(target) as conn:
        ddl(conn, extra_type_first=True)
    out = copy_out(source)
    assert out.count(b"\n") == 5 and b"line1\\nline2\\r\\n" in out   # line feeds inside values are escaped
    return source, target


def test_needs_text_copy_names_the_types_binary_copy_cannot_carry(pair) -> None:
    source, _ = pair
    with psycopg.connect(source) as conn:
        # PostgreSQL 14+ accepts arrays and records of user-defined types whose OIDs differ: nothing to route
        assert table_needs_text_copy(conn, "public", "everything") == {}
        # a target before 14 refuses them: the enum array must take the text route
        old = table_needs_text_copy(conn, "public", "everything", target_server_version=130012)
        assert set(old) == {"ma"} and "element type" in old["ma"]
        mood, mood_array = conn.execute("SELECT 'mood'::regtype::oid::int, 'mood[]'::regtype::oid::int").fetchone()
        assert needs_text_copy(conn, [mood, 25, 1007], 130012) == {}          # enum, text, int4[]
        assert set(needs_text_copy(conn, [mood_array], 130012)) == {mood_array}
        conn.execute("CREATE TYPE pair AS (a int, m mood); CREATE TYPE plain AS (a int, b text);"
                     " CREATE DOMAIN short_text AS text")
        flagged = conn.execute("SELECT 'pair'::regtype::oid::int, 'pair[]'::regtype::oid::int,"
                               " 'short_text[]'::regtype::oid::int").fetchone()
        fine = conn.execute("SELECT 'short_text'::regtype::oid::int, 'plain'::regtype::oid::int,"
                            " 'int4range'::regtype::oid::int").fetchone()
        assert set(needs_text_copy(conn, flagged + fine, 130012)) == set(flagged)
        assert needs_text_copy(conn, flagged + fine) == {}


def test_binary_pass_through_and_text_fallback_are_exact(pair, tmp_path: Path) -> None:
    source, target = pair
    cols = columns_of(source)
    with source_connection(source) as src, psycopg.connect(target) as dst:
        extract_to_file(src, select_sql("public", "everything", cols), tmp_path / "all.bin")
        load_from_file(dst, "public", "everything", cols, tmp_path / "all.bin")
        dst.commit()
    assert copy_out(target) == copy_out(source)     # enum arrays included (the target's enum has another OID)
    with psycopg.connect(target) as conn:
        conn.execute("TRUNCATE everything")
    # the text-format route, for tables that needs_text_copy flags
    with source_connection(source) as src, psycopg.connect(target) as dst:
        copy_text_to_file(src, select_sql("public", "everything", cols), tmp_path / "all.txt")
        result = copy_text_from_file(dst, "public", "everything", cols, tmp_path / "all.txt")
        assert result.rows == 5
        dst.commit()
    assert copy_out(target) == copy_out(source)


def all_copy(columns: list[str], types: dict[str, str], route: str) -> ResolvedTable:
    maps = tuple(ColumnMap(c, types[c], c == "id", "copy", (c,)) for c in columns)
    extra = {"transfer": "csv"} if route == "csv" else {}
    return ResolvedTable("s", "public", "everything", "public", "everything", maps, ("id",), ("id",), extra=extra)


@pytest.mark.parametrize("route", ["csv", "binary"])
def test_transformed_path_with_all_copy_columns_is_exact(pair, tmp_path: Path, route: str) -> None:
    source, target = pair
    with psycopg.connect(source) as conn:
        types = dict(conn.execute("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
                                  " WHERE attrelid = 'everything'::regclass AND attnum > 0").fetchall())
    cols = columns_of(source)
    table = all_copy(cols, types, route)
    import json

    import pyarrow.ipc as ipc

    with source_connection(source) as src, psycopg.connect(target) as dst, src.transaction():
        for where in (sql.SQL("id <= 2"), sql.SQL("id > 2")):
            extract_chunk(src, table, where, tmp_path / "e.arrow")
            with ipc.open_stream(str(tmp_path / "e.arrow")) as r:
                meta = json.loads(r.schema.metadata[b"dbsplit"])
            assert meta["mode"] == route
            transform_chunk(tmp_path / "e.arrow", tmp_path / "t.arrow", table, __import__("uuid").uuid4(), None)
            stats = load_chunk(dst, "public", "everything", table, tmp_path / "t.arrow")
            assert stats.rejects == []
        dst.commit()
    assert copy_out(target, columns=cols) == copy_out(source, columns=cols)
