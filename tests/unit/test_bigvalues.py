"""Big values on the transformed path without a database: CSV blocks of whole rows, batches bounded in
bytes, and every step taking large_string/large_binary columns (forced here with tiny thresholds)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from dbsplit.engine.migrate import arrow_io, wire
from dbsplit.model import bigvalues
from dbsplit.engine.migrate.transform import transform_chunk
from dbsplit.model import row_text
from tests.unit.test_transform import NS, SALT, extract_file, table

BIG = "x" * (6 << 20)   # more than a 4 MB CSV block


def test_row_blocks_join_whole_pieces_to_at_least_the_size() -> None:
    pieces = [b"a\n", b"bb\nc\n", b"d" * 10 + b"\n", b"e\n"]
    blocks = list(bigvalues.row_blocks(iter(pieces), 6))
    assert blocks == [b"a\nbb\nc\n", b"d" * 10 + b"\n", b"e\n"]
    assert list(bigvalues.row_blocks(iter([]), 6)) == []


def test_a_row_larger_than_the_block_size_parses() -> None:
    """The extract's CSV parser takes a block as large as its row (a fixed 4 MB block failed: straddling)."""
    block = b'1,"' + BIG.encode() + b'"\n2,\n3,""\n'
    t = arrow_io._parse_csv(block, ["k", "v"])
    assert t.column("v").to_pylist() == [BIG, None, ""] and t.column("k").to_pylist() == ["1", "2", "3"]


def test_widen_makes_columns_over_the_threshold_large(monkeypatch) -> None:
    monkeypatch.setattr(bigvalues, "WIDE_AT", 10)
    t = bigvalues.widen(pa.table({"small": ["a", "b"], "big": ["0123456789", "x"]}))
    assert t.schema.field("small").type == pa.string() and t.schema.field("big").type == pa.large_string()
    assert t.column("big").to_pylist() == ["0123456789", "x"]


def test_bounded_batches_keep_rows_whole_and_bytes_bounded(monkeypatch) -> None:
    monkeypatch.setattr(bigvalues, "BATCH_BYTES", 100)
    values = ["a" * n for n in (10, 10, 500, 10, 10, 10, 10, 10, 10, 10, 10, 10)]
    t = pa.table({"v": pa.array(values, pa.large_string()), "n": list(range(len(values)))})
    batches = list(bigvalues.bounded_batches(t, 4))
    assert [b.num_rows for b in batches] == [2, 1, 1, 4, 4]   # the 500-byte row alone; then 4 rows a batch
    assert all(b.schema.field("v").type == pa.string() for b in batches)
    assert [v for b in batches for v in b.column("v").to_pylist()] == values
    ordinary = pa.table({"v": values[:2]})
    assert list(bigvalues.bounded_batches(ordinary, 4)) == ordinary.to_batches()


def test_shown_keeps_short_values_and_the_start_of_long_ones() -> None:
    assert bigvalues.shown(None) is None and bigvalues.shown("abc") == "abc"
    long = bigvalues.shown("y" * 5000)
    assert long.startswith("y" * bigvalues.SHOWN + "...") and "5000 characters" in long and len(long) < 1100
    assert bigvalues.shown(b"\x00" * 3000, lambda b: b.decode()).endswith("(3000 bytes in all)")


@pytest.mark.parametrize("cls,texts", [
    ("text", ["", "Zoë", None, BIG]),
    ("jsonb", ['{"a": 1}', None]),
    ("bytea", ["\\x", "\\x00ff", None, "\\x" + "ab" * 1000]),
    ("send", ["\\x0A1b", None]),
])
def test_wire_values_of_large_strings_equal_those_of_strings(cls: str, texts: list) -> None:
    small = wire.text_to_wire(pa.array(texts, pa.string()), cls)
    large = wire.text_to_wire(pa.array(texts, pa.large_string()), cls)
    assert large.to_pylist() == small.to_pylist()


def test_bytea_decoding_past_32_bit_offsets_gives_large_binary(monkeypatch) -> None:
    monkeypatch.setattr(bigvalues, "OFFSET_LIMIT", 3)
    out = wire.text_to_wire(pa.array(["\\x0001", None, "\\x0203"], pa.string()), "bytea")
    assert out.type == pa.large_binary() and out.to_pylist() == [b"\x00\x01", None, b"\x02\x03"]


def test_copy_pieces_and_fingerprints_of_large_columns_equal_those_of_ordinary_ones(monkeypatch) -> None:
    monkeypatch.setattr(bigvalues, "BATCH_BYTES", 1 << 20)
    texts = ["a", None, 'q "(,)"', "", BIG, "z"]
    small = pa.table({"t": pa.array(texts, pa.string()), "b": pa.array([t and t.encode() for t in texts])})
    large = small.cast(pa.schema([("t", pa.large_string()), ("b", pa.large_binary())]))
    as_wire = large.select(["b", "b"])   # wire columns are binary
    assert b"".join(d for _, d in wire.binary_pieces(as_wire)) == wire.binary_rows(small.select(["b", "b"]).to_batches()[0].columns)
    assert [n for n, _ in wire.binary_pieces(as_wire)] == [4, 1, 1]
    assert b"".join(d for _, d in arrow_io.csv_pieces(large)) == b"".join(d for _, d in arrow_io.csv_pieces(small))
    assert (row_text.row_fingerprints(large.columns) == row_text.fingerprints(row_text.record_text(small.columns))).all()
    assert arrow_io.sha256_hex(large.column("t"), SALT).equals(arrow_io.sha256_hex(small.column("t"), SALT))
    assert arrow_io.uuid5_text(large.column("t"), NS, "p:").equals(arrow_io.uuid5_text(small.column("t"), NS, "p:"))


@pytest.mark.parametrize("mode", ["csv", "binary"])
def test_transform_chunk_takes_large_string_columns(tmp_path: Path, mode: str) -> None:
    extract_file(tmp_path / "e", mode)
    data, meta = arrow_io.read_staging(tmp_path / "e")
    wide = data.cast(pa.schema([(n, pa.large_string()) for n in data.column_names]))
    arrow_io.write_staging(tmp_path / "w", wide, meta)
    s1 = transform_chunk(tmp_path / "e", tmp_path / "t1", table(), NS, SALT)
    s2 = transform_chunk(tmp_path / "w", tmp_path / "t2", table(), NS, SALT)
    (t1, _), (t2, _) = arrow_io.read_staging(tmp_path / "t1"), arrow_io.read_staging(tmp_path / "t2")
    assert s1.checksum == s2.checksum and t1.to_pylist() == t2.to_pylist()
    assert t2.schema.field("full_name").type == (pa.large_binary() if mode == "binary" else pa.large_string())


@pytest.mark.parametrize("values", [[""], [None], ["a b"], ["x" * 100]])
def test_a_one_row_batch_is_fingerprinted_like_any_other(values: list) -> None:
    cols = [pa.array(values, pa.string())]
    assert (row_text.row_fingerprints(cols) == row_text.fingerprints(row_text.record_text(cols))).all()
    sliced = [pa.array(["pad"] + values, pa.string()).slice(1)]
    assert (row_text.row_fingerprints(sliced) == row_text.fingerprints(row_text.record_text(cols))).all()
