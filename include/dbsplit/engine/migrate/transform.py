"""The transformed path: one chunk of rows whose target table differs from the source.

    extract_chunk   source --COPY (FORMAT csv)--> Arrow strings --> staging file (Arrow IPC stream)
    transform_chunk staging file --ColumnMaps (vectorised), custom function--> staging file
    load_chunk      staging file --COPY FROM STDIN (FORMAT binary, or csv)--> target table

Values leave the source as PostgreSQL's own text output (or, for types whose binary form is not a
simple function of their text: numeric, timestamps, intervals, arrays, ranges, money, inet, ...,
as the source's own typsend() bytes), in Arrow columns. The load sends binary COPY, built
column-wise with Arrow/numpy (wire.py): integers, booleans, floats, uuids, text-like types, enums
and jsonb are converted from their text exactly, everything else is the source's binary form,
never decoded. Binary COPY loads about twice as fast as CSV. Tables with a custom function (or
extra["transfer"] == "csv", or a type that needs_text_copy flags) take the CSV route instead: the
target parses the source's text with its own input functions. Either way every type arrives
exactly (tests/integration/test_type_roundtrip.py), and NULL stays apart from the empty string.
Rows of a random UUID primary key are sent in key order (index inserts 2-3x cheaper) when the
staging table has its key during the load, not when it builds it afterwards (keys_follow_source).
Only the transforms touch values, and they work on whole columns:

  copy         the source text, under the target name (a rename when the names differ)
  cast         CAST(source AS target_type) evaluated by the source server in the SELECT. When a value
               cannot be cast, the chunk is read again without the cast, the distinct values are
               cast in batches that are bisected down to the failing ones, and each row holding one
               becomes a Reject; the other rows go on.
  mask_hash    lowercase hex sha256(salt + value text, UTF-8)
  mask_redact  'REDACTED' for every non-null value
  mask_null    NULL
  uuid_key     row_uuid(namespace, "<source schema>.<source table>", key text): uuid5 computed with
  uuid_ref     hashlib once per distinct value (FKs repeat), formatted with numpy; ref tables from arg
  default      CAST(literal AS target_type), evaluated once per chunk by the source server

Rows the target refuses (a NOT NULL or CHECK violation, an unparsable value, a duplicate key) are
isolated one by one: the COPY error's line number names the row (else the range is bisected), the
rows before it are copied again, the row becomes a Reject, and loading resumes after it, each step
inside a savepoint of the caller's transaction.

Staging files carry a hidden column with each row's source key text (for rejects) and, in their
schema metadata, the rejects found so far: load_chunk reports every reject of its chunk.

Content checksum (validate/row_text.py): transform_chunk also computes, for every output row, the
fingerprint PostgreSQL will compute on the loaded row (checksums.fingerprint: md5 of the record
text of the TARGET row), from each target column's output text: the source text already read for
text-class columns, uuid/hash/mask texts it makes itself, and, for columns that travel as typsend
bytes in binary mode (copies, casts and defaults of class "send"), their text read by the extract
as extra SELECT items, for the fingerprint only (meta "raw", "cast_text", "default_text"). The
texts are printed under the extract's settings (meta "settings", TimeZone included); the target's
checksum query runs under the same ones. The chunk checksum (sum of fingerprints) is
ChunkStats.checksum; the per-row fingerprints ride in the hidden column FP_COLUMN of the load file,
and LoadStats.checksum is the checksum of the rows actually loaded (load rejects subtracted).
Tables with a custom function get no checksum: the function returns PostgreSQL input text, not
the text the target prints (ChunkStats.checksum None; validation records "not computed").
"""

from __future__ import annotations

import importlib
import re
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from dbsplit.errors import DbsplitError, RejectLimitExceeded
from dbsplit.engine.migrate import arrow_io, wire
from dbsplit.model import bigvalues
from dbsplit.model.sql_fragments import filter_sql
from dbsplit.model.resolved import ColumnMap, ResolvedTable
from dbsplit.model import row_text

KEY_COLUMN = "__dbsplit_key"   # hidden column of transformed staging files: the row's source key text
FP_COLUMN = "__dbsplit_fp"     # hidden column of load staging files: the row's fingerprint (int64)
_SAFE_CLASSES = {"int2", "int4", "int8", "bool", "float4", "float8", "uuid"}   # text never quoted by record_out
FORMAT_VERSION = 1
_ROW_ERRORS = (psycopg.errors.DataError, psycopg.errors.IntegrityError)   # SQLSTATE classes 22 and 23
_FATAL_STATES = {"22P04", "22P03"}   # bad COPY file format, invalid binary representation: our own data is wrong, never a row's fault


class TransformError(DbsplitError):
    """A chunk cannot be moved as planned (plan or custom-function error, not a row's fault)."""


@dataclass(frozen=True)
class Reject:
    """A row that could not be moved: its source key text, the target column at fault, its value, why."""

    key: str
    column: str | None
    value: str | None
    reason: str


@dataclass(frozen=True)
class ChunkStats:
    rows: int                       # rows written to the output staging file
    bytes: int                      # bytes of the output staging file
    seconds: float
    source_rows: int = 0            # rows read (extract: rows the source query returned; transform: rows in)
    source_bytes: int = 0           # extract: bytes of COPY output received
    rejects: tuple[Reject, ...] = ()   # rows this step set aside (they are not in the output file)
    checksum: str | None = None     # transform: sum of the output rows' fingerprints (None: not computed)


@dataclass(frozen=True)
class LoadStats:
    rows: int                       # rows inserted into the target
    rejects: list[Reject] = field(default_factory=list)   # every rejected row of the chunk, any step
    seconds: float = 0.0
    bytes: int = 0                  # CSV bytes sent
    checksum: str | None = None     # sum of the fingerprints of the rows loaded (None: file without them)


# --------------------------------------------------------------------------------------------
# extract


def _source_types(conn: psycopg.Connection, schema: str, table: str) -> dict[str, tuple[str, int]]:
    """{column: (format_type text, type OID)} of the source table."""
    rows = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.atttypid::int FROM pg_attribute a"
        " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        [sql.Identifier(schema, table).as_string(conn)]).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def _where(where: sql.Composable | None, table: ResolvedTable) -> sql.Composable:
    parts = [sql.SQL("({})").format(where)] if where is not None else []
    if table.filter:
        parts.append(filter_sql(table.filter))
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(parts) if parts else sql.SQL("")


def _select(table: ResolvedTable, items: Sequence[sql.Composable], where: sql.Composable) -> sql.Composed:
    return sql.SQL("SELECT {} FROM {}{}").format(
        sql.SQL(", ").join(items) if items else sql.SQL("NULL"),
        sql.Identifier(table.source_schema, table.source_table), where)


def _wrap(expr: sql.Composable, cls: str | None, send: str | None) -> sql.Composable:
    """expr as the extract reads it: its text, or for class "send" its binary form typsend(expr) (as bytea hex)."""
    return sql.SQL("{}({})").format(sql.SQL(send), expr) if cls == "send" and send else expr


@dataclass
class _Layout:
    """What the extract reads for each target column, and how the load sends it."""

    mode: str                                   # "binary" or "csv"
    wire: dict[str, str]                        # target column -> wire class (binary mode)
    send: dict[str, str | None]                 # target column -> send function (class "send")
    reason: str = ""                            # why csv


def _layout(conn: psycopg.Connection, table: ResolvedTable, types: dict[str, tuple[str, int]]) -> _Layout:
    oids: dict[str, int] = {}
    for cm in table.columns:
        if cm.op == "copy":
            oids[cm.target] = types[cm.source[0]][1]
        elif cm.op in ("cast", "default"):
            try:
                with conn.transaction():
                    oids[cm.target] = wire.type_oid(conn, cm.target_type)
            except psycopg.Error as exc:
                raise TransformError(
                    f"{table.target_schema}.{table.target_table}.{cm.target}: type {cm.target_type!r} is not known "
                    f"in the source database, where the {cm.op} is evaluated: {exc.diag.message_primary or exc}") from exc
    wts = wire.wire_types(conn, oids.values())
    classes: dict[str, str] = {}
    sends: dict[str, str | None] = {}
    for cm in table.columns:
        if cm.target in oids:
            wt = wts[oids[cm.target]]
            classes[cm.target], sends[cm.target] = wt.cls, wt.send
        elif cm.op in ("uuid_key", "uuid_ref"):
            classes[cm.target] = "uuid" if cm.target_type == "uuid" else "text"
        else:   # masks: text
            classes[cm.target] = "text"
    if table.custom:
        return _Layout("csv", {}, {}, "custom function")
    if table.extra.get("transfer") == "csv":
        return _Layout("csv", {}, {}, "extra.transfer = csv")
    text_only = [f"{t} ({wts[oids[t]].reason})" for t, c in classes.items() if c == "text_only"]
    if text_only:
        return _Layout("csv", {}, {}, "; ".join(text_only))
    return _Layout("binary", classes, sends)


def _defaults(conn: psycopg.Connection, table: ResolvedTable, layout: _Layout,
              only: Sequence[str] | None = None, text: bool = False) -> dict[str, str | None]:
    """Each default column's CAST(literal AS type), evaluated once by the source server: its text, or
    in binary mode for class "send" its binary form as bytea hex (text=True: always its text)."""
    defaults = [cm for cm in table.columns if cm.op == "default" and (only is None or cm.target in only)]
    if not defaults:
        return {}
    items = [_wrap(sql.SQL("CAST({} AS {})").format(sql.SQL(cm.arg or "NULL"), sql.SQL(cm.target_type)),
                   None if text else layout.wire.get(cm.target), layout.send.get(cm.target)) for cm in defaults]
    try:
        with conn.transaction():
            t, _ = arrow_io.copy_query_to_arrow(conn, sql.SQL("SELECT {}").format(sql.SQL(", ").join(items)),
                                                [f"d{i}" for i in range(len(defaults))])
    except psycopg.Error as exc:
        raise TransformError(
            f"{table.target_schema}.{table.target_table}: a default of "
            f"{', '.join(f'{cm.target} ({cm.arg!r} AS {cm.target_type})' for cm in defaults)} cannot be evaluated: "
            f"{exc.diag.message_primary or exc}. Fix: make each default a SQL literal valid for its type.") from exc
    return {cm.target: t.column(i)[0].as_py() for i, cm in enumerate(defaults)}


def _cast_batch(conn: psycopg.Connection, values: list[str], src_type: str, cm: ColumnMap,
                layout: _Layout, text: bool = False) -> list[str | None]:
    expr = sql.SQL("CAST(CAST(v AS {}) AS {})").format(sql.SQL(src_type), sql.SQL(cm.target_type))
    q = sql.SQL("SELECT {} FROM unnest({}::text[]) WITH ORDINALITY AS u(v, i) ORDER BY i").format(
        _wrap(expr, None if text else layout.wire.get(cm.target), layout.send.get(cm.target)), sql.Literal(values))
    with conn.transaction():
        t, _ = arrow_io.copy_query_to_arrow(conn, q, ["v"])
    return t.column(0).to_pylist()


def _cast_distinct(conn: psycopg.Connection, values: list[str], src_type: str, cm: ColumnMap, layout: _Layout,
                   out: dict[str, tuple[bool, str | None]], text: bool = False) -> None:
    """out[value] = (True, cast result as read) or (False, error message), bisecting batches that fail."""
    pending = [values]
    while pending:
        vals = pending.pop()
        if not vals:
            continue
        try:
            for v, r in zip(vals, _cast_batch(conn, vals, src_type, cm, layout, text)):
                out[v] = (True, r)
        except _ROW_ERRORS as exc:
            if len(vals) == 1:
                out[vals[0]] = (False, exc.diag.message_primary or str(exc))
            else:
                mid = len(vals) // 2
                pending += [vals[mid:], vals[:mid]]


def _key_text(data: pa.Table, raw: dict[str, str], key: Sequence[str]) -> pa.Array:
    """Source key text of each row: the key columns' texts joined with ","; row numbers without a key.

    raw maps source column names to the staging file's column names."""
    if not key:
        return pa.array([f"#{i + 1}" for i in range(data.num_rows)], pa.string())
    cols = [data.column(raw[n]).combine_chunks() for n in key]
    if len(cols) == 1:
        return cols[0]
    return pc.binary_join_element_wise(*cols, ",", null_handling="replace", null_replacement="")


def extract_chunk(conn: psycopg.Connection, table: ResolvedTable, where: sql.Composable | None, path: Any) -> ChunkStats:
    """Read one chunk of the source table (where AND table.filter) into a staging file at path.

    conn is a read-only source connection inside a transaction (the snapshot); this function only
    adds savepoints and transaction-local settings, which it restores.
    """
    start = time.perf_counter()
    types = _source_types(conn, table.source_schema, table.source_table)
    needed = list(table.source_key) + [s for cm in table.columns for s in cm.source]
    missing = sorted({c for c in needed if c not in types})
    if missing:
        raise TransformError(f"{table.source_schema}.{table.source_table} has no column(s) {missing}")
    layout = _layout(conn, table, types)
    binary = layout.mode == "binary"
    fingerprint = not table.custom   # the target rows' text is known (module docstring)
    # what to read: the text of every source column a transform needs (keys first), the binary form
    # of copied columns that need it (and then, for the fingerprint, their text too), and each cast
    raw = list(table.source_key)
    sent: list[str] = []
    for cm in table.columns:
        if cm.op == "copy" and binary and layout.wire[cm.target] == "send":
            sent.append(cm.source[0])
            if fingerprint:
                raw.append(cm.source[0])
        elif cm.op in ("copy", "mask_hash", "mask_redact", "uuid_key", "uuid_ref"):
            raw += list(cm.source)
    raw, sent = list(dict.fromkeys(raw)), list(dict.fromkeys(sent))
    casts = [cm for cm in table.columns if cm.op == "cast"]
    names = {c: f"c{i}" for i, c in enumerate(raw)}
    send_names = {c: f"s{i}" for i, c in enumerate(sent)}
    cast_names = {cm.target: f"x{i}" for i, cm in enumerate(casts)}
    # casts read as typsend bytes: their text as well, for the fingerprint only
    cast_text_names = {cm.target: f"y{i}" for i, cm in enumerate(casts)
                       if fingerprint and binary and layout.wire.get(cm.target) == "send"}
    file_names = [*names.values(), *send_names.values(), *cast_names.values(), *cast_text_names.values()]
    send_fn = {cm.source[0]: layout.send[cm.target] for cm in table.columns if cm.op == "copy" and cm.source[0] in sent}
    items = [sql.Identifier(c) for c in raw] + [_wrap(sql.Identifier(c), "send", send_fn[c]) for c in sent]

    def cast_expr(cm: ColumnMap) -> sql.Composable:
        return sql.SQL("CAST({} AS {})").format(sql.Identifier(cm.source[0]), sql.SQL(cm.target_type))

    cast_items = [_wrap(cast_expr(cm), layout.wire.get(cm.target), layout.send.get(cm.target)) for cm in casts]
    cast_items += [cast_expr(cm) for cm in casts if cm.target in cast_text_names]
    where_sql = _where(where, table)
    rejects: list[Reject] = []
    money = any("money" in cm.target_type for cm in table.columns)
    with arrow_io.text_settings(conn) as settings:
        # TimeZone is the session's own (casts to timestamptz depend on it); recorded for the checksum
        settings = {**settings, **arrow_io.current_settings(conn, ["TimeZone"] + (["lc_monetary"] if money else []))}
        defaults = _defaults(conn, table, layout)
        default_text = _defaults(conn, table, layout, text=True, only=[
            cm.target for cm in table.columns if cm.op == "default" and layout.wire.get(cm.target) == "send"]
        ) if fingerprint and binary else {}
        try:
            with conn.transaction():
                data, nbytes = arrow_io.copy_query_to_arrow(conn, _select(table, items + cast_items, where_sql),
                                                            file_names)
        except _ROW_ERRORS:
            if not casts:
                raise
            data, nbytes, rejects = _extract_with_failed_casts(
                conn, table, types, layout, items, names, cast_names, cast_text_names, file_names, where_sql)
    source_rows = data.num_rows + len(rejects)
    meta = {
        "version": FORMAT_VERSION, "kind": "extract", "table": f"{table.source_schema}.{table.source_table}",
        "mode": layout.mode, "csv_reason": layout.reason, "wire": layout.wire,
        "raw": names, "sent": send_names, "cast": cast_names, "defaults": defaults, "settings": settings,
        "rejects": [r.__dict__ for r in rejects], "source_rows": source_rows,
        "fingerprint": fingerprint, "cast_text": cast_text_names, "default_text": default_text,
    }
    size = arrow_io.write_staging(path, data, meta)
    return ChunkStats(data.num_rows, size, time.perf_counter() - start, source_rows, nbytes, tuple(rejects))


def _extract_with_failed_casts(conn: psycopg.Connection, table: ResolvedTable, types: dict[str, tuple[str, int]],
                               layout: _Layout, items: list[sql.Composable], names: dict[str, str],
                               cast_names: dict[str, str], cast_text_names: dict[str, str], file_names: list[str],
                               where_sql: sql.Composable) -> tuple[pa.Table, int, list[Reject]]:
    """A cast failed somewhere in the chunk: read the cast columns' source text, cast the distinct
    values in bisected batches, and set aside the rows whose value cannot be cast."""
    casts = [cm for cm in table.columns if cm.op == "cast"]
    sources = [sql.Identifier(cm.source[0]) for cm in casts]
    sources += [sql.Identifier(cm.source[0]) for cm in casts if cm.target in cast_text_names]
    data, nbytes = arrow_io.copy_query_to_arrow(conn, _select(table, items + sources, where_sql), file_names)
    keys = _key_text(data, names, table.source_key)
    bad = np.zeros(data.num_rows, dtype=bool)
    first: dict[int, Reject] = {}
    for cm in casts:
        name = cast_names[cm.target]
        col = data.column(name).combine_chunks()
        encoded = pc.dictionary_encode(col)
        distinct = encoded.dictionary.to_pylist()
        results: dict[str, tuple[bool, str | None]] = {}
        _cast_distinct(conn, distinct, types[cm.source[0]][0], cm, layout, results)
        ok = pa.array([results[v][0] for v in distinct], pa.bool_())
        text = pa.array([results[v][1] if results[v][0] else None for v in distinct], pa.string())
        row_ok = pc.fill_null(pc.take(ok, encoded.indices), True).to_numpy(zero_copy_only=False)
        for i in map(int, np.flatnonzero(~row_ok)):
            if i not in first:
                v = col[i].as_py()
                first[i] = Reject(keys[i].as_py() or "", cm.target, bigvalues.shown(v),
                                  bigvalues.shown(f"cannot cast to {cm.target_type}: {results[v][1]}") or "")
        bad |= ~row_ok
        data = data.set_column(data.schema.get_field_index(name), name, pc.take(text, encoded.indices))
        if cm.target in cast_text_names:   # the cast's text too (for the fingerprint); failing values are NULL
            texts: dict[str, tuple[bool, str | None]] = {}
            _cast_distinct(conn, [v for v in distinct if results[v][0]], types[cm.source[0]][0], cm, layout, texts,
                           text=True)
            as_text = pa.array([texts[v][1] if v in texts and texts[v][0] else None for v in distinct], pa.string())
            tname = cast_text_names[cm.target]
            data = data.set_column(data.schema.get_field_index(tname), tname, pc.take(as_text, encoded.indices))
    return data.filter(pa.array(~bad)), nbytes, [first[i] for i in sorted(first)]


# --------------------------------------------------------------------------------------------
# transform


def _column(data: pa.Table, meta: dict[str, Any], source: str) -> pa.Array:
    return data.column(meta["raw"][source]).combine_chunks()


def _joined(data: pa.Table, meta: dict[str, Any], sources: Sequence[str]) -> pa.Array:
    cols = [_column(data, meta, s) for s in sources]
    return cols[0] if len(cols) == 1 else pc.binary_join_element_wise(*cols, ",")   # any NULL part -> NULL


def _apply(cm: ColumnMap, data: pa.Table, meta: dict[str, Any], table: ResolvedTable,
           namespace: uuid.UUID, salt: bytes | None, want_text: bool = False) -> tuple[pa.Array, pa.Array | None]:
    """The target column: PostgreSQL text (csv mode) or binary COPY field data (binary mode); with
    want_text also the column's output text as the target will print it (None when not known)."""
    n = data.num_rows
    binary = meta["mode"] == "binary"
    cls = meta["wire"].get(cm.target, "text")
    to_wire: Callable[[pa.Array], pa.Array] = (lambda a: wire.text_to_wire(a, cls)) if binary else (lambda a: a)
    if cm.op == "copy":
        text = _column(data, meta, cm.source[0]) if cm.source[0] in meta["raw"] else None
        if cm.source[0] in meta["sent"] and binary and cls == "send":
            return wire.bytea_hex_to_binary(data.column(meta["sent"][cm.source[0]]).combine_chunks()), text
        return to_wire(text), text
    if cm.op == "cast":
        col = data.column(meta["cast"][cm.target]).combine_chunks()
        if binary and cls == "send":
            name = meta.get("cast_text", {}).get(cm.target)
            return to_wire(col), (data.column(name).combine_chunks() if name else None)
        return to_wire(col), col
    if cm.op == "mask_hash":
        if salt is None:
            raise TransformError(f"{table.target_table}.{cm.target}: mask_hash needs a salt (defaults.mask_salt)")
        text = arrow_io.sha256_hex(_column(data, meta, cm.source[0]), salt)
        return to_wire(text), text
    if cm.op == "mask_redact":
        col = _column(data, meta, cm.source[0])
        text = pc.if_else(pc.is_null(col), pa.scalar(None, pa.string()), pa.scalar("REDACTED", pa.string()))
        return to_wire(text), text
    if cm.op == "mask_null":
        return pa.nulls(n, pa.binary() if binary else pa.string()), pa.nulls(n, pa.string())
    if cm.op in ("uuid_key", "uuid_ref"):
        if cm.op == "uuid_key":
            values, prefix, distinct = _joined(data, meta, cm.source), f"{table.source_schema}.{table.source_table}:", False
        else:
            if not cm.arg:
                raise TransformError(f"{table.target_table}.{cm.target}: uuid_ref needs arg 'schema.table'")
            values, prefix, distinct = _joined(data, meta, cm.source), f"{cm.arg}:", True
        if binary and cls == "uuid":
            if want_text:
                text, raw16 = arrow_io.uuid5_text_and_binary(values, namespace, prefix, distinct)
                return raw16, text
            return arrow_io.uuid5_binary(values, namespace, prefix, distinct), None
        text = arrow_io.uuid5_text(values, namespace, prefix, distinct)
        return to_wire(text), text
    if cm.op == "default":
        value = meta["defaults"][cm.target]
        if binary and cls == "send":
            known = cm.target in meta.get("default_text", {})
            text = pa.repeat(pa.scalar(meta["default_text"][cm.target], pa.string()), n) if known else None
        else:
            text = pa.repeat(pa.scalar(value, pa.string()), n)
        if binary and value is not None:
            one = wire.text_to_wire(pa.array([value], pa.string()), cls)
            return pa.repeat(one[0], n), text
        return pa.repeat(pa.scalar(value, pa.binary() if binary else pa.string()), n), text
    raise TransformError(f"{table.target_table}.{cm.target}: unknown op {cm.op!r}")


def _safe_text(cm: ColumnMap, meta: dict[str, Any]) -> bool:
    """True when the column's output text never needs record_out's quotes (no scan needed)."""
    return cm.op in ("uuid_key", "uuid_ref", "mask_hash", "mask_redact", "mask_null") or (
        meta["mode"] == "binary" and meta["wire"].get(cm.target) in _SAFE_CLASSES)


@dataclass
class _Transformed:
    result: pa.Table                    # the target columns (wire or text), in table.columns order
    keys: pa.Array                      # each row's source key text
    texts: dict[str, pa.Array] | None   # each target column's output text (None: no fingerprint)
    fps: np.ndarray | None              # each row's fingerprint (None: not computed)


def _transform(data: pa.Table, meta: dict[str, Any], table: ResolvedTable, namespace: uuid.UUID,
               salt: bytes | None) -> _Transformed:
    keys = _key_text(data, meta["raw"], table.source_key)
    want_text = bool(meta.get("fingerprint")) and not table.custom and bool(table.columns)
    out: dict[str, pa.Array] = {}
    texts: dict[str, pa.Array] | None = {} if want_text else None
    for cm in table.columns:
        out[cm.target], text = _apply(cm, data, meta, table, namespace, salt, want_text)
        if texts is not None:
            if text is None:   # a file written before fingerprints existed
                texts = None
            else:
                texts[cm.target] = text
    result = pa.table(out) if out else pa.table({})
    fps = None
    if texts is not None:
        fps = row_text.row_fingerprints([texts[cm.target] for cm in table.columns],
                                        [_safe_text(cm, meta) for cm in table.columns])
    if table.custom:
        result, keys = _run_custom(table, result, keys)
    return _Transformed(result, keys, texts, fps)


def transform_chunk(src_path: Any, dst_path: Any, table: ResolvedTable, namespace: uuid.UUID,
                    salt: bytes | None) -> ChunkStats:
    """Apply the table's ColumnMaps (then its custom function) to an extracted chunk; write the target rows
    (with their fingerprints: ChunkStats.checksum is their sum, None for custom functions)."""
    start = time.perf_counter()
    data, meta = arrow_io.read_staging(src_path)
    if meta.get("kind") != "extract":
        raise TransformError(f"{src_path} is not an extract staging file (kind={meta.get('kind')!r})")
    t = _transform(data, meta, table, namespace, salt)
    t.texts = None   # free the texts made for the fingerprints (uuid texts: 36 bytes a value) before sorting
    result = t.result.append_column(KEY_COLUMN, t.keys.cast(pa.string()))
    checksum = None
    if t.fps is not None:
        result = result.append_column(FP_COLUMN, pa.array(t.fps, pa.int64()))
        checksum = row_text.checksum_total(t.fps)
    result = _sorted_for_index(result, table)
    out_meta = {"version": FORMAT_VERSION, "kind": "load", "table": meta["table"], "mode": meta["mode"],
                "wire": meta["wire"], "settings": meta["settings"], "rejects": meta["rejects"],
                "source_rows": meta["source_rows"], "checksum": checksum}
    size = arrow_io.write_staging(dst_path, result, out_meta)
    return ChunkStats(result.num_rows, size, time.perf_counter() - start, data.num_rows, 0, checksum=checksum)


def chunk_row_fingerprints(conn: psycopg.Connection, table: ResolvedTable, where: sql.Composable | None,
                           namespace: uuid.UUID, salt: bytes | None) -> list[tuple[str, str, int]] | None:
    """(source key text, target key text, fingerprint) of every row that extract_chunk + transform_chunk
    make of one chunk now (deterministic: the rows the load got, when the source did not change), for
    locating differing rows. The target key text is concat_ws(',', key::text) of the target key columns.
    None when the table has no fingerprint (custom function). conn: a read-only source transaction."""
    if table.custom:
        return None
    with tempfile.TemporaryDirectory(prefix="dbsplit-fp-") as tmp:
        from pathlib import Path

        path = Path(tmp) / "chunk.extract"
        extract_chunk(conn, table, where, path)
        data, meta = arrow_io.read_staging(path)
    t = _transform(data, meta, table, namespace, salt)
    if t.fps is None or t.texts is None:
        return None
    key_cols = [t.texts[k] for k in table.key] if table.key else []
    if key_cols:
        target_keys = pc.binary_join_element_wise(*key_cols, ",", null_handling="skip").to_pylist()
    else:
        target_keys = [None] * len(t.fps)
    return list(zip(t.keys.to_pylist(), target_keys, t.fps.tolist()))


def _sorted_for_index(result: pa.Table, table: ResolvedTable) -> pa.Table:
    """Rows in the order of a UUID primary key made by uuid_key/uuid_ref.

    Such keys are random: inserted in source order they hit random pages of the target's primary
    key index, which makes the load two to three times slower than inserting them in key order
    (measured: 1M rows, 9.2 s against 3.9 s). Byte order of the binary value (or of its hex text)
    is PostgreSQL's uuid order."""
    if not table.key or result.num_rows < 2 or table.keys_follow_source:   # keys built after the load: any order
        return result
    first = next((cm for cm in table.columns if cm.target == table.key[0]), None)
    if first is None or first.op not in ("uuid_key", "uuid_ref"):
        return result
    return result.take(pc.sort_indices(result.column(first.target)))


# custom functions ---------------------------------------------------------------------------

_INT_TYPES = {"smallint", "integer", "bigint"}
_FLOAT_TYPES = {"real", "double precision"}


def load_custom(spec: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Import "package.module:function"; a clear TransformError when it is not there."""
    module_name, sep, func_name = spec.partition(":")
    if not sep or not module_name or not func_name:
        raise TransformError(f"custom {spec!r}: expected 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TransformError(f"custom {spec!r}: cannot import module {module_name!r}: {exc}") from exc
    func = getattr(module, func_name, None)
    if not callable(func):
        raise TransformError(f"custom {spec!r}: module {module_name!r} has no function {func_name!r}")
    return func


def to_pandas(result: pa.Table, columns: Sequence[ColumnMap]) -> pd.DataFrame:
    """The chunk as a DataFrame for a custom function: integers Int64, booleans boolean, floats Float64,
    numeric decimal.Decimal objects; every other type as PostgreSQL's text (str)."""
    from decimal import Decimal

    frame: dict[str, Any] = {}
    for cm in columns:
        col = result.column(cm.target).combine_chunks()
        base = cm.target_type.split("(")[0].strip()
        if base in _INT_TYPES:
            frame[cm.target] = pd.array(col.cast(pa.int64()).to_pylist(), dtype="Int64")
        elif base == "boolean":
            frame[cm.target] = pd.array(pc.equal(col, "t").to_pylist(), dtype="boolean")
        elif base in _FLOAT_TYPES:
            frame[cm.target] = pd.array(col.cast(pa.float64()).to_pylist(), dtype="Float64")
        elif base == "numeric":
            frame[cm.target] = pd.Series([None if v is None else Decimal(v) for v in col.to_pylist()], dtype=object)
        else:
            frame[cm.target] = pd.Series(col.to_pylist(), dtype=object)
    return pd.DataFrame(frame, index=pd.RangeIndex(result.num_rows))


def _text_of(series: pd.Series) -> pa.Array:
    """PostgreSQL input text for each value of a column returned by a custom function (NULL for NA)."""
    from decimal import Decimal

    if pd.api.types.is_bool_dtype(series.dtype):
        arr = pa.array(series, type=pa.bool_(), from_pandas=True)
        return pc.if_else(arr, pa.scalar("t"), pa.scalar("f"))
    if pd.api.types.is_integer_dtype(series.dtype) or pd.api.types.is_float_dtype(series.dtype):
        masked = isinstance(series.dtype, pd.api.extensions.ExtensionDtype)   # Int64/Float64: NA is the mask, NaN a value
        return pa.array(series, from_pandas=not masked).cast(pa.string())
    out: list[str | None] = []
    for v in series.tolist():
        if isinstance(v, Decimal):
            out.append(str(v))      # Decimal('NaN') is numeric NaN, not NULL
        elif v is None or (not isinstance(v, (str, bytes, list, dict)) and pd.isna(v)):
            out.append(None)
        elif isinstance(v, bool):
            out.append("t" if v else "f")
        elif isinstance(v, float):
            out.append(repr(v))
        elif isinstance(v, pd.Timestamp):
            out.append(v.isoformat())
        elif hasattr(v, "isoformat"):
            out.append(v.isoformat())
        elif isinstance(v, bytes):
            out.append("\\x" + v.hex())
        else:
            out.append(str(v))
    return pa.array(out, pa.string())


def _run_custom(table: ResolvedTable, result: pa.Table, keys: pa.Array) -> tuple[pa.Table, pa.Array]:
    spec = table.custom or ""
    func = load_custom(spec)
    frame = to_pandas(result, table.columns)
    try:
        out = func(frame)
    except Exception as exc:
        raise TransformError(f"custom function {spec} failed on {table.target_schema}.{table.target_table}: "
                             f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(out, pd.DataFrame):
        raise TransformError(f"custom function {spec} must return a pandas DataFrame, got {type(out).__name__}")
    want = [cm.target for cm in table.columns]
    got = [str(c) for c in out.columns]
    if set(got) != set(want) or len(got) != len(want):
        missing = [c for c in want if c not in got]
        extra = [c for c in got if c not in want]
        dup = sorted({c for c in got if got.count(c) > 1})
        raise TransformError(
            f"custom function {spec} must return exactly the target columns of {table.target_schema}."
            f"{table.target_table} {want}; missing {missing}, unexpected {extra}" + (f", duplicated {dup}" if dup else ""))
    # rows may be dropped or reordered (never invented): keep each remaining row's source key
    try:
        positions = np.asarray(out.index, dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise TransformError(f"custom function {spec} must keep the DataFrame's integer row index") from exc
    if len(positions) and (positions.min() < 0 or positions.max() >= result.num_rows):
        raise TransformError(f"custom function {spec} returned rows whose index is not one of the input rows")
    arrays = [_text_of(out[c]) for c in want]
    return pa.table(dict(zip(want, arrays))), pc.take(keys, pa.array(positions))


# --------------------------------------------------------------------------------------------
# load

_LINE = re.compile(r"COPY .*?, line (\d+)(?:, column (.+?))?(?::|$)", re.M)


def _error_position(exc: psycopg.Error) -> tuple[int | None, str | None]:
    """The physical input line (1-based) and column name an error of COPY FROM names, if any."""
    context = exc.diag.context or ""
    matches = list(_LINE.finditer(context))
    if not matches:
        return None, exc.diag.column_name
    m = matches[-1]
    return int(m.group(1)), (m.group(2) or exc.diag.column_name)


def _newlines(data: pa.Table) -> np.ndarray:
    """Line feeds inside the values of each row (quoted in the CSV)."""
    newlines = np.zeros(data.num_rows, dtype=np.int64)
    for col in data.columns:
        counts = pc.count_substring(col.combine_chunks(), "\n")
        newlines += pc.fill_null(counts, 0).to_numpy(zero_copy_only=False).astype(np.int64)
    return newlines


def _csv_row_of_line(newlines: np.ndarray, line: int) -> int | None:
    """The row (0-based, within one COPY's rows) that a COPY FROM csv error line number names.

    PostgreSQL counts one line per record plus the line feeds inside quoted values read so far,
    except those of the first record (read before it knows the end-of-line style), and reports the
    line on which the failing record ends. A guess only: load_chunk retries the row alone before
    rejecting it."""
    if not len(newlines):
        return None
    ends = np.arange(1, len(newlines) + 1) + np.cumsum(newlines) - newlines[0]
    row = int(np.searchsorted(ends, line, side="left"))
    return row if row < len(ends) and ends[row] == line else None


def _reason(exc: psycopg.Error) -> str:
    d = exc.diag
    text = bigvalues.shown(d.message_primary or str(exc).splitlines()[0]) or ""
    return f"{text} (constraint {d.constraint_name})" if d.constraint_name and d.constraint_name not in text else text


def load_chunk(conn: psycopg.Connection, schema: str, name: str, table: ResolvedTable, path: Any,
               *, max_rejects: int | None = None) -> LoadStats:
    """COPY a transformed staging file into schema.name inside the caller's transaction.

    Rows the target refuses become Rejects and the other rows are loaded; the returned rejects also
    include those set aside by extract_chunk. With max_rejects, more rejects than that raise
    RejectLimitExceeded after rolling this chunk back to its savepoint.
    """
    start = time.perf_counter()
    data, meta = arrow_io.read_staging(path)
    if meta.get("kind") != "load":
        raise TransformError(f"{path} is not a transformed staging file (kind={meta.get('kind')!r})")
    keys = data.column(KEY_COLUMN).combine_chunks() if KEY_COLUMN in data.column_names else None
    data = data.drop_columns([KEY_COLUMN]) if keys is not None else data
    fps = data.column(FP_COLUMN).to_numpy() if FP_COLUMN in data.column_names else None
    data = data.drop_columns([FP_COLUMN]) if fps is not None else data
    refused: list[int] = []     # rows the target refused (their fingerprints leave the checksum)
    want = [cm.target for cm in table.columns]
    if data.column_names != want:
        raise TransformError(f"{path}: columns {data.column_names} differ from the table's {want}")
    rejects = [Reject(**r) for r in meta.get("rejects", [])]
    binary = meta.get("mode") == "binary"
    copy_in = wire.copy_wire_in if binary else arrow_io.copy_arrow_in
    extra = {"lc_monetary": meta["settings"]["lc_monetary"]} if "lc_monetary" in meta.get("settings", {}) else None
    loaded = size = 0
    with arrow_io.text_settings(conn, extra), conn.transaction():
        newlines: np.ndarray | None = None
        pending = [(0, data.num_rows)]
        while pending:
            s, e = pending.pop()
            if s >= e:
                continue
            try:
                with conn.transaction():
                    size += copy_in(conn, schema, name, data.slice(s, e - s))
                loaded += e - s
                continue
            except _ROW_ERRORS as exc:
                if exc.sqlstate in _FATAL_STATES:
                    raise
                failure = exc
            if e - s > 1:
                # the error's line names the row: load the rows before it, then try it alone, then the rest;
                # without a usable line number, bisect
                line, _ = _error_position(failure)
                bad: int | None = None
                if line is not None and binary:
                    bad = s + line - 1 if 1 <= line <= e - s else None
                elif line is not None:
                    if newlines is None:
                        newlines = _newlines(data)
                    row = _csv_row_of_line(newlines[s:e], line)
                    bad = None if row is None else s + row
                if bad is None:
                    mid = (s + e) // 2
                    pending += [(mid, e), (s, mid)]
                else:
                    pending += [(bad + 1, e), (bad, bad + 1), (s, bad)]
                continue
            # one row that the target refuses
            _, column = _error_position(failure)
            col = column if column in want else None
            value = bigvalues.shown(data.column(col)[s].as_py() if col else None,   # not 100 MB in a reject
                                    (lambda v: wire.wire_value_text(v, meta["wire"].get(col, "send"))) if binary else None)
            key = keys[s].as_py() if keys is not None else f"#{s + 1}"
            rejects.append(Reject(key or "", col, value, _reason(failure)))
            refused.append(s)
            if max_rejects is not None and len(rejects) > max_rejects:
                raise RejectLimitExceeded(
                    f"{schema}.{name}: more than {max_rejects} rejected rows in this chunk "
                    f"(first: key {rejects[0].key}: {rejects[0].reason})", rejects)
    checksum = None
    if fps is not None:
        kept = np.ones(len(fps), dtype=bool)
        kept[refused] = False
        checksum = row_text.checksum_total(fps[kept])
    return LoadStats(loaded, rejects, time.perf_counter() - start, size, checksum)
