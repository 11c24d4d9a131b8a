"""Values of 5 MB and 100 MB (text and bytea) move exactly on the transformed path, in binary and CSV modes,
with their checksums validated; a row refused at load keeps a short value in its reject; the pass-through
path moves the same rows for comparison. Values are made by the server: the test process holds few copies."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from dbsplit.pg import copy
from dbsplit.engine.migrate.arrow_io import TEXT_SETTINGS
from dbsplit.engine.migrate.chunks import Chunk, chunk_where, plan_chunks
from dbsplit.engine.migrate.transform import chunk_row_fingerprints, extract_chunk, load_chunk, transform_chunk
from dbsplit.model.resolved import ColumnMap, ResolvedTable
from dbsplit.engine.verify import checksums
from tests.conftest import create_database, drop_database

pytestmark = pytest.mark.integration

NS = uuid.UUID("9d3e1f7a-5b2c-4d11-8e0f-1a2b3c4d5e6f")
SALT = b"big-salt"
MB5, MB100 = 5 << 20, 100 << 20
PREFIX = 'a "quoted", (odd)\\ line\nbreak '   # characters CSV and record_out quote, ahead of each big text

# 40 small rows in 4 chunks of 10; big values at ids 5 (5 MB text), 12 (100 MB text), 18 (5 MB bytea),
# 25 (100 MB bytea), 33 (5 MB text and bytea), 38 (5 MB text the target refuses: a load reject)
SOURCE_DDL = """
CREATE TABLE blobs (id integer PRIMARY KEY, label text, body text, data bytea, email text, n_text text);
INSERT INTO blobs SELECT g, 'row ' || g, CASE WHEN g % 7 = 0 THEN NULL WHEN g % 7 = 1 THEN '' ELSE 'b' || g END,
  CASE WHEN g % 5 = 0 THEN NULL ELSE decode(lpad(to_hex(g), 4, '0'), 'hex') END, 'u' || g || '@x.org', g::text
FROM generate_series(1, 40) g;
"""
TARGET_DDL = """
CREATE DOMAIN checked_text AS text CHECK (left(VALUE, 6) IS DISTINCT FROM 'reject');
CREATE TABLE blobs_v2 (id integer PRIMARY KEY, title text, content checked_text, payload bytea, email text,
  n integer, origin text NOT NULL);
"""
COLUMNS = (
    ColumnMap("id", "integer", True, "copy", ("id",)),
    ColumnMap("title", "text", False, "copy", ("label",)),          # renames
    ColumnMap("content", "text", False, "copy", ("body",)),
    ColumnMap("payload", "bytea", False, "copy", ("data",)),
    ColumnMap("email", "text", False, "mask_hash", ("email",)),     # a mask on another column
    ColumnMap("n", "integer", False, "cast", ("n_text",)),          # a cast
    ColumnMap("origin", "text", True, "default", (), "'monolith'"),
)


def _text(size: int) -> sql.Composable:
    """size bytes of hex text after PREFIX: md5s of a series, made by the server."""
    rounds = (size - len(PREFIX.encode())) // 32
    return sql.SQL("(SELECT {} || string_agg(md5(i::text), '' ORDER BY i) FROM generate_series(1, {}) i)").format(
        sql.Literal(PREFIX), sql.Literal(rounds))


def _bytes(size: int) -> sql.Composable:
    return sql.SQL("(SELECT decode(string_agg(md5(i::text), '' ORDER BY i), 'hex') FROM generate_series(1, {}) i)"
                   ).format(sql.Literal(size // 16))


@pytest.fixture(scope="module")
def source(pg_server_url: str) -> Iterator[str]:
    name = f"t_big_src_{uuid.uuid4().hex[:8]}"
    url = create_database(pg_server_url, name)
    with psycopg.connect(url) as conn:
        conn.execute(SOURCE_DDL)
        for key, column, value in ((5, "body", _text(MB5)), (12, "body", _text(MB100)), (18, "data", _bytes(MB5)),
                                   (25, "data", _bytes(MB100)), (33, "body", _text(MB5)), (33, "data", _bytes(MB5)),
                                   (38, "body", sql.SQL("'reject ' || {}").format(_text(MB5)))):
            conn.execute(sql.SQL("UPDATE blobs SET {} = {} WHERE id = {}").format(
                sql.Identifier(column), value, sql.Literal(key)))
    yield url
    drop_database(pg_server_url, name)


def digests(url: str, table: str, columns: tuple[str, ...]) -> dict[int, tuple]:
    """id -> (octet_length, md5) of each column, computed by the server."""
    items = sql.SQL(", ").join(sql.SQL("octet_length({c}), md5({c})").format(c=sql.Identifier(c)) for c in columns)
    with psycopg.connect(url) as conn:
        rows = conn.execute(sql.SQL("SELECT id, {} FROM {}").format(items, sql.Identifier(table))).fetchall()
    return {r[0]: r[1:] for r in rows}


def move(src_url: str, dst_url: str, table: ResolvedTable, tmp: Path) -> tuple[list[Chunk], dict, list]:
    """Plan chunks, then extract, transform and load each one (as the service DAG's tasks do)."""
    expected, rejects = {}, []
    with copy.source_connection(src_url) as src, src.transaction():
        plan = plan_chunks(src, "public", "blobs", ["id"], ["integer"], 10)
    for chunk in plan:
        with copy.source_connection(src_url) as src, src.transaction():
            extracted = extract_chunk(src, table, chunk_where(chunk, ["id"]), tmp / "e.arrow")
        stats = transform_chunk(tmp / "e.arrow", tmp / "t.arrow", table, NS, SALT)
        with psycopg.connect(dst_url) as dst, dst.transaction():
            loaded = load_chunk(dst, "public", "blobs_v2", table, tmp / "t.arrow")
        expected[chunk.index] = (extracted.source_rows, stats.checksum)
        rejects += loaded.rejects
    return plan, expected, rejects


def validate(src_url: str, dst_url: str, table: ResolvedTable, plan: list[Chunk], expected: dict,
             rejects: list) -> list:
    """The checksum validation of a transformed table (runtime._checksum_outcome): its mismatches."""
    with copy.source_connection(src_url) as src, src.transaction():
        settings = checksums.session_settings(src) | {
            k: v for k, v in TEXT_SETTINGS.items() if k in checksums.TEXT_OUTPUT_SETTINGS}
    rejected = {_chunk_of(plan, int(r.key)): {r.key} for r in rejects}

    def rows_of(chunk: Chunk) -> list[tuple[str, str, int]] | None:
        with copy.source_connection(src_url) as src, src.transaction():
            return chunk_row_fingerprints(src, table, chunk_where(chunk, ["id"]), NS, SALT)

    relation = sql.Identifier("public", "blobs_v2")
    with psycopg.connect(dst_url) as tgt, tgt.transaction():
        checksums.set_local(tgt, settings)
        mismatches, how = checksums.compare_transformed(
            tgt, relation, checksums.columns([c.target for c in table.columns]), table, plan, expected,
            rejected, rows_of)
    assert how == "per chunk"
    return mismatches


def _chunk_of(plan: list[Chunk], key: int) -> int:
    return next(c.index for c in plan if (c.lo is None or int(c.lo[0]) <= key) and (c.hi is None or key < int(c.hi[0])))


@pytest.mark.parametrize("route", ["binary", "csv"])
def test_big_text_and_bytea_move_exactly_on_the_transformed_path(source: str, make_db, tmp_path: Path,
                                                                   route: str) -> None:
    target = make_db("big_dst")
    with psycopg.connect(target) as conn:
        conn.execute(TARGET_DDL)
    table = ResolvedTable("s", "public", "blobs", "public", "blobs_v2", COLUMNS, ("id",), ("id",),
                          extra={"transfer": "csv"} if route == "csv" else {})
    plan, expected, rejects = move(source, target, table, tmp_path)
    assert len(plan) == 4
    assert [(r.key, r.column) for r in rejects] == [("38", "content")]
    assert "violates check constraint" in rejects[0].reason
    assert rejects[0].value.startswith("reject " + PREFIX) and len(rejects[0].value) < 10_000   # not 5 MB
    src = digests(source, "blobs", ("label", "body", "data"))
    dst = digests(target, "blobs_v2", ("title", "content", "payload"))
    del src[38]
    assert dst == src
    assert MB100 - 32 < dst[12][2] <= MB100 and MB5 - 32 < dst[5][2] <= MB5
    assert (dst[25][4], dst[18][4], dst[33][4]) == (MB100, MB5, MB5)
    assert validate(source, target, table, plan, expected, rejects) == []
    if route == "binary":   # the check can fail: one byte changed in the middle of a 5 MB text is found
        with psycopg.connect(target) as conn:
            conn.execute("UPDATE blobs_v2 SET content = overlay(content PLACING 'Z' FROM 2500000 FOR 1) WHERE id = 5")
        [mismatch] = validate(source, target, table, plan, expected, rejects)
        assert (mismatch.chunk.index, mismatch.keys) == (0, ["5"])


def test_big_values_on_the_pass_through_path(source: str, make_db, tmp_path: Path) -> None:
    """For comparison: raw binary COPY (extract_to_file, load_from_file) moves the same rows exactly."""
    target = make_db("big_pt")
    with psycopg.connect(target) as conn:
        conn.execute("CREATE TABLE blobs (id integer PRIMARY KEY, label text, body text, data bytea, email text,"
                     " n_text text)")
    cols = ["id", "label", "body", "data", "email", "n_text"]
    with copy.source_connection(source) as src, src.transaction():
        copy.extract_to_file(src, copy.select_sql("public", "blobs", cols), tmp_path / "pt.bin")
    with psycopg.connect(target) as dst, dst.transaction():
        copy.load_from_file(dst, "public", "blobs", cols, tmp_path / "pt.bin")
    assert digests(target, "blobs", ("body", "data")) == digests(source, "blobs", ("body", "data"))
