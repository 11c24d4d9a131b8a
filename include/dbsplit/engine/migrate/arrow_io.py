"""Arrow building blocks of the transformed path: PostgreSQL text <-> Arrow, staging files, fast hashes.

Every value travels as PostgreSQL's own text output (COPY ... (FORMAT csv)) in Arrow string columns
and goes back in through COPY ... FROM STDIN (FORMAT csv), so the target parses exactly what the
source printed: no value is ever converted by Python or Arrow unless a transform asks for it. CSV
keeps NULL and the empty string apart: PostgreSQL writes NULL as an unquoted empty field and '' as
`""`; the reader keeps that distinction and the writer quotes every non-null string.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import pathlib
import queue
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.ipc as ipc
from psycopg import sql

from dbsplit.model import bigvalues
from dbsplit.pg.copy import joined_messages

COPY_BATCH_BYTES = 4 << 20      # least bytes of whole rows parsed at a time when reading CSV
WRITE_BATCH_ROWS = 16_384       # rows per CSV piece sent to COPY FROM (a piece is produced while the last is sent)
META_KEY = b"dbsplit"           # schema metadata key of the staging files (JSON)

# Session settings that make text output deterministic and re-parseable by any server of any version.
# They are set for the duration of one operation (transaction-local) and restored afterwards.
TEXT_SETTINGS: dict[str, str] = {
    "DateStyle": "ISO, YMD",
    "IntervalStyle": "postgres",
    "extra_float_digits": "1",       # PostgreSQL 12+: shortest exact representation of floats
    "bytea_output": "hex",
    "client_encoding": "UTF8",
}


# --------------------------------------------------------------------------------------------
# session settings


@contextlib.contextmanager
def text_settings(conn: psycopg.Connection, extra: dict[str, str] | None = None) -> Iterator[dict[str, str]]:
    """Set TEXT_SETTINGS (and extra) transaction-locally; yields the values in force; restores the old ones."""
    wanted = {**TEXT_SETTINGS, **(extra or {})}
    names = list(wanted)
    old = list(current_settings(conn, names).values())
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT {}").format(sql.SQL(", ").join(
            sql.SQL("set_config({}, {}, true)").format(sql.Literal(n), sql.Literal(wanted[n])) for n in names)))
    ok = False
    try:
        yield wanted
        ok = True
    finally:
        # after an error the transaction may be aborted: then the rollback restores the settings anyway
        if ok or conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS:
            with conn.cursor() as cur:
                cur.execute(sql.SQL("SELECT {}").format(sql.SQL(", ").join(
                    sql.SQL("set_config({}, {}, true)").format(sql.Literal(n), sql.Literal(v))
                    for n, v in zip(names, old, strict=True))))


def current_settings(conn: psycopg.Connection, names: Sequence[str]) -> dict[str, str]:
    with conn.cursor() as cur:
        row = cur.execute(sql.SQL("SELECT {}").format(sql.SQL(", ").join(
            sql.SQL("current_setting({})").format(sql.Literal(n)) for n in names))).fetchone()
    if row is None:   # a SELECT without FROM returns one row
        raise RuntimeError("SELECT current_setting(...) returned no row")
    return dict(zip(names, row, strict=True))


# --------------------------------------------------------------------------------------------
# COPY (FORMAT csv) -> Arrow


def _csv_options(names: Sequence[str], block_size: int) -> tuple[pcsv.ReadOptions, pcsv.ParseOptions,
                                                                   pcsv.ConvertOptions]:
    read = pcsv.ReadOptions(column_names=list(names), block_size=block_size, use_threads=False)
    parse = pcsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False, double_quote=True)
    convert = pcsv.ConvertOptions(
        column_types={n: pa.string() for n in names}, strings_can_be_null=True,
        quoted_strings_can_be_null=False, null_values=[""], check_utf8=False)
    return read, parse, convert


def _parse_csv(block: bytes | memoryview, names: Sequence[str]) -> pa.Table:
    """Whole CSV rows parsed in one block (a block size of the data's own: no row straddles two)."""
    read, parse, convert = _csv_options(names, len(block) + 1)
    return pcsv.read_csv(pa.BufferReader(block), read_options=read, parse_options=parse, convert_options=convert)


def copy_query_to_arrow(conn: psycopg.Connection, query: sql.Composable, names: Sequence[str]) -> tuple[pa.Table, int]:
    """Run COPY (query) TO STDOUT (FORMAT csv) and read the output as an all-string Arrow table.

    Returns (table, bytes received). Unquoted empty fields are NULL, quoted "" is the empty string.
    The output is parsed in blocks of whole rows (bigvalues.row_blocks): any value size, memory
    bounded by the rows' bytes; a column of more than bigvalues.WIDE_AT bytes is large_string.
    The caller sets the text settings (text_settings()).
    """
    stmt = sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(query)
    schema = pa.schema([(n, pa.string()) for n in names])
    batches: list[pa.RecordBatch] = []
    size = 0
    with conn.cursor() as cur, cur.copy(stmt) as copy:
        for block in bigvalues.row_blocks(joined_messages(copy), COPY_BATCH_BYTES):
            size += len(block)
            batches += _parse_csv(block, names).to_batches()
    table = pa.Table.from_batches(batches, schema=schema) if batches else schema.empty_table()
    return bigvalues.widen(table), size


# --------------------------------------------------------------------------------------------
# staging files (Arrow IPC stream format; any path object with .open())


def _local(path: Any) -> bool:
    """A plain local pathlib path (read and written natively by Arrow), not an ObjectStoragePath."""
    return isinstance(path, pathlib.PurePath) and type(path).__module__.startswith("pathlib")


@contextlib.contextmanager
def _arrow_file(path: Any, mode: str) -> Iterator[Any]:
    if _local(path):
        f = pa.OSFile(str(path), mode) if mode == "wb" else pa.memory_map(str(path), "r")
        with f:
            yield f
    else:
        with path.open(mode) as raw:
            yield pa.PythonFile(raw, mode="w" if mode == "wb" else "r")


def write_staging(path: Any, table: pa.Table, meta: dict[str, Any]) -> int:
    """Write table with meta (JSON) as an Arrow IPC stream; returns the bytes written."""
    schema = table.schema.with_metadata({META_KEY: json.dumps(meta).encode()})
    with _arrow_file(path, "wb") as sink:
        with ipc.new_stream(sink, schema) as writer:
            for batch in table.to_batches(max_chunksize=WRITE_BATCH_ROWS * 8):
                writer.write_batch(batch)
        size = sink.tell()
    return size


def read_staging(path: Any) -> tuple[pa.Table, dict[str, Any]]:
    """Read a staging file written by write_staging: (table without metadata, meta)."""
    with _arrow_file(path, "rb") as source:
        table = ipc.open_stream(source).read_all()
    meta = json.loads((table.schema.metadata or {}).get(META_KEY, b"{}"))
    return table.replace_schema_metadata(None), meta


# --------------------------------------------------------------------------------------------
# Arrow -> COPY FROM STDIN (FORMAT csv)


def csv_pieces(table: pa.Table, rows_per_piece: int = WRITE_BATCH_ROWS) -> Iterator[tuple[int, bytes]]:
    """(row count, CSV bytes) pieces of table: no header, every non-null value quoted, NULL unquoted empty;
    at most rows_per_piece rows and about bigvalues.BATCH_BYTES bytes (a larger row alone) each."""
    options = pcsv.WriteOptions(include_header=False, quoting_style="needed", batch_size=rows_per_piece)
    for batch in bigvalues.bounded_batches(table, rows_per_piece):
        out = io.BytesIO()
        pcsv.write_csv(batch, out, options)
        yield batch.num_rows, out.getvalue()


def _threaded(it: Iterator[Any], depth: int = 4) -> Iterator[Any]:
    """Run a producer iterator in a thread (its work releases the GIL), overlapping it with the consumer."""
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def run() -> None:
        try:
            for item in it:
                if stop.is_set():
                    return
                q.put(item)
            q.put(done)
        except BaseException as exc:  # handed to the consumer
            q.put(exc)

    t = threading.Thread(target=run, daemon=True, name="dbsplit-csv")
    t.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while t.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(0.01)


def copy_arrow_in(conn: psycopg.Connection, schema: str, name: str, table: pa.Table) -> int:
    """COPY every row of an all-string Arrow table into schema.name (columns = the table's names); bytes sent.

    Raises the server's error unchanged (the caller isolates rejected rows).
    """
    cols = sql.SQL(", ").join(map(sql.Identifier, table.column_names))
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(sql.Identifier(schema, name), cols)
    size = 0
    with conn.cursor() as cur, cur.copy(stmt) as copy:
        if table.num_rows:
            for _, data in _threaded(csv_pieces(table)):
                copy.write(data)
                size += len(data)
    return size


# --------------------------------------------------------------------------------------------
# vectorised helpers

try:   # CPython's own sha1: about 30% faster than OpenSSL's for short messages (no EVP context per call)
    from _sha1 import sha1 as _sha1
except ImportError:   # pragma: no cover - builds without it
    _sha1 = hashlib.sha1

_HEX_PAIRS = np.array([[ord(c) for c in f"{i:02x}"] for i in range(256)], dtype=np.uint8)  # byte -> 2 hex chars
_HEX_PAIRS16 = _HEX_PAIRS.copy().view(np.uint16).reshape(256)                             # the same, as one uint16


def _fixed_width_strings(data: np.ndarray) -> pa.StringArray:
    """An Arrow string array from an (n, width) uint8 array of ASCII."""
    n, width = data.shape
    offsets = np.arange(0, width * (n + 1), width, dtype=np.int64 if width * n >= 2**31 else np.int32)
    typ = pa.large_string() if offsets.dtype == np.int64 else pa.string()
    arr = pa.Array.from_buffers(typ, n, [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(data))])
    return arr.cast(pa.string()) if typ != pa.string() else arr


def hex_strings(digests: np.ndarray) -> pa.StringArray:
    """Lowercase hex text of each row of an (n, k) uint8 array."""
    n, k = digests.shape
    return _fixed_width_strings(_HEX_PAIRS16[digests].view(np.uint8).reshape(n, 2 * k))


def uuid_strings(raw16: np.ndarray) -> pa.StringArray:
    """Canonical 8-4-4-4-12 text of each row of an (n, 16) uint8 array."""
    n = raw16.shape[0]
    hx = _HEX_PAIRS16[raw16].view(np.uint8).reshape(n, 32)
    out = np.empty((n, 36), dtype=np.uint8)
    out[:, [8, 13, 18, 23]] = ord("-")
    out[:, 0:8], out[:, 9:13], out[:, 14:18], out[:, 19:23], out[:, 24:36] = (
        hx[:, 0:8], hx[:, 8:12], hx[:, 12:16], hx[:, 16:20], hx[:, 20:32])
    return _fixed_width_strings(out)


def _digests(values: pa.Array, prefix: bytes, algo: Callable[[bytes], Any], size: int) -> np.ndarray:
    """(n, size) digests of prefix + utf-8 value for a non-null string array (one hashlib call per value)."""
    values = bigvalues.as_binary(values)
    msgs = pc.binary_join_element_wise(pa.scalar(prefix, values.type), values, pa.scalar(b"", values.type))
    joined = b"".join([algo(m).digest() for m in msgs.to_pylist()])
    if not joined:
        return np.zeros((0, size), dtype=np.uint8)
    return np.frombuffer(joined, dtype=np.uint8).reshape(len(values), -1)[:, :size]


def _on_distinct(values: pa.Array | pa.ChunkedArray, fn: Callable[[pa.Array], pa.Array],
                 distinct: bool = True) -> pa.Array:
    """fn applied to the non-null values, once per distinct value with distinct=True; NULL stays NULL.

    Deduplicating costs one hash-table pass (about 0.1 s per 1M values), far less than the hashlib
    loop it saves when values repeat (foreign keys); pass distinct=False for unique values (keys)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if distinct:
        encoded = pc.dictionary_encode(values)
        return pc.take(fn(encoded.dictionary), encoded.indices)
    if values.null_count == 0:
        return fn(values)
    valid = values.is_valid()
    mapped = fn(values.filter(valid))
    positions = pc.subtract(pc.cumulative_sum(pc.cast(valid, pa.int64())), 1)
    return pc.if_else(valid, pc.take(mapped, pc.if_else(valid, positions, 0)), pa.scalar(None, mapped.type))


def uuid5_raw(distinct: pa.Array, namespace: uuid.UUID, name_prefix: str) -> np.ndarray:
    """(n, 16) bytes of uuid.uuid5(namespace, name_prefix + value) for a non-null string array."""
    d = _digests(distinct, namespace.bytes + name_prefix.encode("utf-8"), _sha1, 16).copy()
    d[:, 6] = (d[:, 6] & 0x0F) | 0x50   # version 5
    d[:, 8] = (d[:, 8] & 0x3F) | 0x80   # RFC 4122 variant
    return d


def uuid5_text(values: pa.Array | pa.ChunkedArray, namespace: uuid.UUID, name_prefix: str,
               distinct: bool = True) -> pa.Array:
    """Text of uuid.uuid5(namespace, name_prefix + value) for each non-null value; NULL stays NULL."""
    return _on_distinct(values, lambda d: uuid_strings(uuid5_raw(d, namespace, name_prefix)), distinct)


def uuid5_binary(values: pa.Array | pa.ChunkedArray, namespace: uuid.UUID, name_prefix: str,
                 distinct: bool = True) -> pa.Array:
    """The 16 bytes of uuid.uuid5(namespace, name_prefix + value) for each non-null value; NULL stays NULL."""
    def fn(d: pa.Array) -> pa.Array:
        raw = uuid5_raw(d, namespace, name_prefix)
        return pa.Array.from_buffers(pa.binary(16), len(d), [None, pa.py_buffer(raw)]).cast(pa.binary())
    return _on_distinct(values, fn, distinct)


def uuid5_text_and_binary(values: pa.Array | pa.ChunkedArray, namespace: uuid.UUID, name_prefix: str,
                          distinct: bool = True) -> tuple[pa.Array, pa.Array]:
    """uuid5_text and uuid5_binary of the same values with one sha1 per (distinct) value."""
    def fn(d: pa.Array) -> pa.Array:
        raw = uuid5_raw(d, namespace, name_prefix)
        binary = pa.Array.from_buffers(pa.binary(16), len(d), [None, pa.py_buffer(raw)]).cast(pa.binary())
        return pa.StructArray.from_arrays([uuid_strings(raw), binary], ["text", "binary"])
    both = _on_distinct(values, fn, distinct)
    if isinstance(both, pa.ChunkedArray):
        both = both.combine_chunks()
    text, binary = both.field("text"), both.field("binary")
    if both.null_count:   # a NULL struct keeps its children's slots: make them NULL too
        valid = both.is_valid()
        text = pc.if_else(valid, text, pa.scalar(None, pa.string()))
        binary = pc.if_else(valid, binary, pa.scalar(None, pa.binary()))
    return text, binary


def sha256_hex(values: pa.Array | pa.ChunkedArray, salt: bytes, distinct: bool = True) -> pa.Array:
    """Lowercase hex sha256(salt + utf-8 value) of each non-null value; NULL stays NULL."""
    return _on_distinct(values, lambda d: hex_strings(_digests(d, salt, hashlib.sha256, 32)), distinct)
