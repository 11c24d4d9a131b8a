"""PostgreSQL binary wire formats for the transformed path, and which types can travel in binary COPY.

COPY ... FROM STDIN (FORMAT binary) is about twice as fast for the server to load as CSV. The
transformed path builds binary COPY data in Arrow, whole columns at a time:
  - types whose binary format is a plain function of their text are converted from the source's
    text output with Arrow/numpy (integers, booleans, floats, uuid, text-like types, enums, json, jsonb);
  - every other type travels as the source server's own binary form, typsend(value), so it is never
    decoded by Python (numeric, timestamps, intervals, arrays, ranges, inet, money, ...);
  - a few types cannot travel in binary between two databases at all (see needs_text_copy): a table
    with one of them takes the CSV route, where the target parses the source's text.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from dbsplit.engine.migrate import arrow_io
from dbsplit.model import bigvalues
from dbsplit.pg.copy import joined_messages
from dbsplit.pg.rows import one_row

FIRST_NORMAL_OID = 16384   # OIDs below are built in: the same in every database of every server version

# built-in base types converted from text in Python: OID -> class
_TEXT_CONVERTIBLE = {
    21: "int2", 23: "int4", 20: "int8", 16: "bool", 700: "float4", 701: "float8", 2950: "uuid",
    25: "text", 1043: "text", 1042: "text", 19: "text", 114: "text", 3802: "jsonb",
    17: "bytea",   # its hex text is its binary form: read once, for the load and the fingerprint
}
BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
BINARY_TRAILER = struct.pack("!h", -1)


@dataclass(frozen=True)
class WireType:
    oid: int
    cls: str            # int2 int4 int8 bool float4 float8 uuid text jsonb bytea | send | text_only
    send: str | None    # the type's send function (SQL name), for cls "send"
    reason: str = ""    # why text_only


_TYPE_QUERY = """
SELECT t.oid::int, t.typtype::text, t.typsend::regproc::text, t.typsend::oid <> 0, t.typreceive::oid <> 0,
       t.typelem::int, t.typbasetype::int, t.typrelid::int, format_type(t.oid, NULL),
       t.typsubscript::oid = 'array_subscript_handler'::regproc::oid AS is_array,
       (SELECT r.rngsubtype::int FROM pg_range r WHERE r.rngtypid = t.oid),
       (SELECT r.rngtypid::int FROM pg_range r WHERE r.rngmultitypid = t.oid)
FROM pg_type t WHERE t.oid = ANY(%s::oid[])
"""


def _type_rows(conn: psycopg.Connection, oids: Iterable[int]) -> dict[int, tuple]:
    rows = conn.execute(_TYPE_QUERY, [list(oids)]).fetchall()
    return {r[0]: r for r in rows}


def _binary_problem(conn: psycopg.Connection, oid: int, cache: dict[int, str], strict_oids: bool) -> str:
    """Why values of this type cannot go through binary COPY into another database ('' when they can)."""
    if oid in cache:
        return cache[oid]
    cache[oid] = ""   # cycles (a composite referring to itself through an array) resolve as fine
    row = _type_rows(conn, [oid]).get(oid)
    if row is None:
        cache[oid] = f"type {oid} not found"
        return cache[oid]
    _, typtype, _, has_send, has_recv, elem, base, relid, name, is_array, rng_sub, multi_rng = row
    problem = ""
    if not has_send or not has_recv:
        problem = f"{name} has no binary send/receive functions"
    elif typtype == "d":
        problem = _binary_problem(conn, base, cache, strict_oids)
    elif is_array and elem:
        if strict_oids and elem >= FIRST_NORMAL_OID:
            problem = (f"{name}: binary arrays carry the element type's OID ({elem}), which differs between "
                       "databases, and a server before PostgreSQL 14 refuses the mismatch")
        else:
            problem = _binary_problem(conn, elem, cache, strict_oids)
    elif typtype == "c" and relid:
        problem = _composite_problem(conn, name, relid, cache, strict_oids)
    elif typtype == "r" and rng_sub:
        problem = _binary_problem(conn, rng_sub, cache, strict_oids)
    elif typtype == "m" and multi_rng:
        problem = _binary_problem(conn, multi_rng, cache, strict_oids)
    cache[oid] = problem
    return problem


def _composite_problem(conn: psycopg.Connection, name: str, relid: int, cache: dict[int, str],
                       strict_oids: bool) -> str:
    """_binary_problem of a composite type: the first problem of one of its fields ('' when none)."""
    attrs = conn.execute("SELECT atttypid::int FROM pg_attribute WHERE attrelid = %s AND attnum > 0"
                         " AND NOT attisdropped", [relid]).fetchall()
    problem = ""
    for (a,) in attrs:
        if strict_oids and a >= FIRST_NORMAL_OID:
            problem = (f"{name}: binary records carry their fields' type OIDs ({a}), which differ between "
                       "databases, and a server before PostgreSQL 14 refuses the mismatch")
        else:
            problem = _binary_problem(conn, a, cache, strict_oids)
        if problem:
            break
    return problem


def needs_text_copy(conn: psycopg.Connection, type_oids: Iterable[int],
                    target_server_version: int | None = None) -> dict[int, str]:
    """The types among type_oids (OIDs in conn's database) whose binary COPY data cannot be loaded
    into another database, with why; an empty result means binary COPY is safe.

    - types without binary send/receive functions (some extension types), always;
    - arrays and composites whose elements or fields are user-defined types (enums, domains,
      composites, extension types: their OIDs differ in every database), only when the target
      server is older than PostgreSQL 14 (target_server_version, e.g. 130012; default conn's own
      version). Binary arrays and records carry those OIDs; since PostgreSQL 14 array_recv and
      record_recv ignore a mismatch unless both OIDs are built-in (measured on 15 and 18: arrays of
      enums, of domains and of composites, and composites holding enums, all load).

    Route a table with any of these to a text-format path: copy_text_to_file / copy_text_from_file
    (pass-through) or the transformed path, which then takes its CSV route by itself.
    """
    version = target_server_version if target_server_version is not None else conn.info.server_version
    strict = version < 140000
    cache: dict[int, str] = {}
    out = {}
    for oid in dict.fromkeys(type_oids):
        problem = _binary_problem(conn, oid, cache, strict)
        if problem:
            out[oid] = problem
    return out


def table_needs_text_copy(conn: psycopg.Connection, schema: str, table: str,
                          target_server_version: int | None = None) -> dict[str, str]:
    """needs_text_copy for the columns of a table: {column: why}."""
    cols = conn.execute(
        "SELECT attname, atttypid::int FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
        " AND NOT attisdropped ORDER BY attnum", [sql.Identifier(schema, table).as_string(conn)]).fetchall()
    problems = needs_text_copy(conn, [oid for _, oid in cols], target_server_version)
    return {name: problems[oid] for name, oid in cols if oid in problems}


def wire_types(conn: psycopg.Connection, type_oids: Iterable[int]) -> dict[int, WireType]:
    """How values of each type reach the target in binary COPY."""
    oids = list(dict.fromkeys(type_oids))
    rows = _type_rows(conn, oids)
    problems = needs_text_copy(conn, oids)
    out = {}
    for oid in oids:
        row = rows[oid]
        typtype, send, base = row[1], row[2], row[6]
        if oid in problems:
            out[oid] = WireType(oid, "text_only", None, problems[oid])
            continue
        # domains: the base type's binary format (the target's domain_recv checks the constraints)
        base_oid = oid
        while typtype == "d":
            base_row = _type_rows(conn, [base])[base]
            base_oid, typtype, base = base_row[0], base_row[1], base_row[6]
        if typtype == "e":
            out[oid] = WireType(oid, "text", None)    # enum binary format = its label
        elif base_oid in _TEXT_CONVERTIBLE:
            out[oid] = WireType(oid, _TEXT_CONVERTIBLE[base_oid], None)
        else:
            out[oid] = WireType(oid, "send", send)
    return out


def type_oid(conn: psycopg.Connection, type_sql: str) -> int:
    """OID of a type given as SQL text (in the connection's database)."""
    query = sql.SQL("SELECT {}::regtype::oid::int").format(sql.Literal(type_sql))
    return int(one_row(conn.execute(query))[0])


# --------------------------------------------------------------------------------------------
# text -> binary, whole columns

_HEX_VALUES = np.full(256, 0, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX_VALUES[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX_VALUES[_c] = 10 + _i


def _flat(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets relative to the first value, data bytes) of a string/binary array (large or not)."""
    arr = bigvalues.as_binary(arr)
    width = np.int64 if pa.types.is_large_binary(arr.type) else np.int32
    offsets = np.frombuffer(arr.buffers()[1], dtype=width)[arr.offset:arr.offset + len(arr) + 1]
    data = arr.buffers()[2]
    base = int(offsets[0])
    raw = np.frombuffer(data, dtype=np.uint8)[base:int(offsets[-1])] if data is not None else np.zeros(0, np.uint8)
    return offsets - base, raw


def _binary_from(offsets: np.ndarray, data: np.ndarray, validity: pa.Array | None) -> pa.Array:
    n = len(offsets) - 1
    typ, width = bigvalues.offsets_type(int(offsets[-1]))   # large_binary past 2 GB
    valid = None   # validity's nulls as a bitmap (a fresh boolean array: offset 0), not a copy of the data
    if validity is not None and validity.null_count:
        valid = pc.is_valid(validity.combine_chunks() if isinstance(validity, pa.ChunkedArray) else validity)
    bitmap = valid.buffers()[1] if valid is not None else None
    return pa.Array.from_buffers(typ, n, [bitmap, pa.py_buffer(offsets.astype(width)),
                                          pa.py_buffer(np.ascontiguousarray(data))])


def bytea_hex_to_binary(arr: pa.Array) -> pa.Array:
    """Decode PostgreSQL bytea hex text ('\\x0a1b...') into bytes, vectorised; NULL stays NULL."""
    offsets, data = _flat(arr)
    decoded = _HEX_VALUES[data[0::2]]   # in place: one temporary array of the decoded size, not three
    decoded <<= 4
    decoded |= _HEX_VALUES[data[1::2]]
    # each non-empty value starts with "\x", which decoded into one junk byte: drop those
    half = offsets // 2
    nonempty = half[1:] > half[:-1]
    keep = np.ones(len(decoded), dtype=bool)
    keep[half[:-1][nonempty]] = False
    lengths = np.where(nonempty, half[1:] - half[:-1] - 1, 0)
    new_offsets = np.zeros(len(offsets), dtype=np.int64)
    np.cumsum(lengths, out=new_offsets[1:])
    return _binary_from(new_offsets, decoded[keep], arr)


def uuid_text_to_binary(arr: pa.Array) -> pa.Array:
    """16-byte values from canonical uuid text (PostgreSQL's output)."""
    return bytea_hex_to_binary(pc.binary_join_element_wise(
        pa.scalar("\\x"), pc.replace_substring(arr, "-", ""), pa.scalar("")))


def _fixed(values: np.ndarray, validity: pa.Array) -> pa.Array:
    width = values.dtype.itemsize
    fixed = pa.Array.from_buffers(pa.binary(width), len(values), [None, pa.py_buffer(values.tobytes())])
    out = fixed.cast(pa.binary())
    if validity.null_count:
        out = pc.if_else(pc.is_valid(validity), out, pa.scalar(None, pa.binary()))
    return out


def text_to_wire(arr: pa.Array, cls: str) -> pa.Array:
    """Binary COPY field data for PostgreSQL text output of a type of class cls."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if cls == "text":
        return bigvalues.as_binary(arr)
    if cls == "jsonb":
        arr = bigvalues.as_binary(arr)
        return pc.binary_join_element_wise(pa.scalar(b"\x01", arr.type), arr, pa.scalar(b"", arr.type))
    if cls == "bool":
        return pc.if_else(pc.equal(arr, "t"), pa.scalar(b"\x01", pa.binary()), pa.scalar(b"\x00", pa.binary()))
    if cls == "uuid":
        return uuid_text_to_binary(arr)
    if cls in ("int2", "int4", "int8"):
        ints = pc.cast(arr, pa.int64()).fill_null(0).to_numpy()
        return _fixed(ints.astype({"int2": ">i2", "int4": ">i4", "int8": ">i8"}[cls]), arr)
    if cls in ("float4", "float8"):
        typ = pa.float32() if cls == "float4" else pa.float64()
        floats = pc.cast(arr, typ).fill_null(0).to_numpy()
        return _fixed(floats.astype(">f4" if cls == "float4" else ">f8"), arr)
    if cls in ("send", "bytea"):
        return bytea_hex_to_binary(arr)
    raise ValueError(f"no binary conversion for class {cls!r}")


def uuid_wire(raw16: np.ndarray, validity: pa.Array | None = None) -> pa.Array:
    """Binary uuid fields from an (n, 16) uint8 array."""
    n = raw16.shape[0]
    offsets = np.arange(0, 16 * (n + 1), 16, dtype=np.int32)
    return _binary_from(offsets, raw16.reshape(-1), validity)


def wire_value_text(value: bytes, cls: str) -> str:
    """Readable text of one binary field (for reject reports)."""
    if cls == "text":
        return value.decode("utf-8", "replace")
    if cls == "jsonb":
        return value[1:].decode("utf-8", "replace")
    if cls == "bool":
        return "t" if value == b"\x01" else "f"
    if cls in ("int2", "int4", "int8"):
        return str(int.from_bytes(value, "big", signed=True))
    if cls in ("float4", "float8"):
        return repr(struct.unpack("!f" if cls == "float4" else "!d", value)[0])
    if cls == "uuid":
        import uuid

        return str(uuid.UUID(bytes=value))
    return "\\x" + value.hex()   # the binary form, as bytea text


# --------------------------------------------------------------------------------------------
# binary COPY data from wire columns

_MINUS_ONE = b"\xff\xff\xff\xff"


def binary_rows(columns: Sequence[pa.Array]) -> bytes:
    """The binary COPY tuples (no header/trailer) of equally long wire columns (NULL = SQL NULL)."""
    n = len(columns[0]) if columns else 0
    parts: list[Any] = [pa.scalar(struct.pack("!h", len(columns)), pa.binary())]
    for col in columns:
        lengths = pc.binary_length(col).fill_null(-1).to_numpy(zero_copy_only=False).astype(">i4")
        prefix = pa.Array.from_buffers(pa.binary(4), n, [None, pa.py_buffer(lengths.tobytes())]).cast(pa.binary())
        parts.append(pc.binary_join_element_wise(prefix, col.fill_null(b""), pa.scalar(b"", pa.binary())))
    rows = pc.binary_join_element_wise(*parts, pa.scalar(b"", pa.binary()))
    offsets, data = _flat(rows)
    return data.tobytes()


def binary_pieces(table: pa.Table, rows_per_piece: int = arrow_io.WRITE_BATCH_ROWS) -> Iterator[tuple[int, bytes]]:
    """(row count, binary COPY tuples) of at most rows_per_piece rows and about bigvalues.BATCH_BYTES each."""
    for batch in bigvalues.bounded_batches(table, rows_per_piece):
        yield batch.num_rows, binary_rows(batch.columns)


def copy_wire_in(conn: psycopg.Connection, schema: str, name: str, table: pa.Table) -> int:
    """COPY the rows of a table of wire columns into schema.name in binary format; bytes sent."""
    cols = sql.SQL(", ").join(map(sql.Identifier, table.column_names))
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(sql.Identifier(schema, name), cols)
    size = 0
    with conn.cursor() as cur, cur.copy(stmt) as copy:
        copy.write(BINARY_HEADER)
        if table.num_rows:
            for _, data in arrow_io._threaded(binary_pieces(table)):
                copy.write(data)
                size += len(data)
        copy.write(BINARY_TRAILER)
    return size + len(BINARY_HEADER) + len(BINARY_TRAILER)


# --------------------------------------------------------------------------------------------
# text-format pass-through, for tables that binary COPY cannot move (needs_text_copy)


@dataclass(frozen=True)
class TextCopyResult:
    rows: int
    bytes: int
    seconds: float


def copy_text_to_file(conn: psycopg.Connection, query: sql.Composable, path: Any) -> TextCopyResult:
    """Stream `COPY (query) TO STDOUT` (text format) into path, with deterministic text settings."""
    start, size = time.perf_counter(), 0
    with arrow_io.text_settings(conn), conn.cursor() as cur, path.open("wb") as out:
        with cur.copy(sql.SQL("COPY ({}) TO STDOUT").format(query)) as copy:
            for data in joined_messages(copy):
                out.write(data)
                size += len(data)
        rows = cur.rowcount
    return TextCopyResult(rows, size, time.perf_counter() - start)


def copy_text_from_file(conn: psycopg.Connection, schema: str, table: str, columns: Sequence[str],
                        path: Any) -> TextCopyResult:
    """Stream a text-format COPY file into a table (inside the caller's transaction)."""
    start, size = time.perf_counter(), 0
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(schema, table), cols)
    with arrow_io.text_settings(conn), conn.cursor() as cur, path.open("rb") as src:
        with cur.copy(stmt) as copy:
            while data := src.read(1 << 20):
                copy.write(data)
                size += len(data)
        rows = cur.rowcount
    return TextCopyResult(rows, size, time.perf_counter() - start)

