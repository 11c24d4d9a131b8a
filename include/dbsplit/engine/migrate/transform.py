"""The transform stage of the transformed path: the table's ColumnMaps (then its custom function) on an
extracted chunk, and the fingerprint of every output row (stages.py describes the path).

This module also keeps the names of the whole path importable (extract_chunk, load_chunk, ...):
callers reach the three stages as `transform.extract_chunk`, `transform.transform_chunk`,
`transform.load_chunk`.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from dbsplit.engine.migrate import arrow_io, wire
from dbsplit.engine.migrate.custom import load_custom, run_custom, to_pandas
from dbsplit.engine.migrate.extract import extract_chunk
from dbsplit.engine.migrate.load import load_chunk
from dbsplit.engine.migrate.stages import (
    FORMAT_VERSION,
    FP_COLUMN,
    KEY_COLUMN,
    ChunkStats,
    LoadStats,
    Reject,
    TransformError,
    key_text,
)
from dbsplit.model import row_text
from dbsplit.model.resolved import ColumnMap, ResolvedTable

__all__ = ["FP_COLUMN", "KEY_COLUMN", "ChunkStats", "LoadStats", "Reject", "TransformError", "chunk_row_fingerprints",
           "extract_chunk", "load_chunk", "load_custom", "to_pandas", "transform_chunk"]

_SAFE_CLASSES = {"int2", "int4", "int8", "bool", "float4", "float8", "uuid"}   # text never quoted by record_out


def _column(data: pa.Table, meta: dict[str, Any], source: str) -> pa.Array:
    return data.column(meta["raw"][source]).combine_chunks()


def _joined(data: pa.Table, meta: dict[str, Any], sources: Sequence[str]) -> pa.Array:
    cols = [_column(data, meta, s) for s in sources]
    return cols[0] if len(cols) == 1 else pc.binary_join_element_wise(*cols, ",")   # any NULL part -> NULL


def _text(cm: ColumnMap, data: pa.Table, meta: dict[str, Any], table: ResolvedTable,
          salt: bytes | None) -> pa.Array | None:
    """The output text of a copy, cast or mask_hash/mask_redact column (None: read only as typsend bytes)."""
    if cm.op == "copy":
        return _column(data, meta, cm.source[0]) if cm.source[0] in meta["raw"] else None
    if cm.op == "cast":
        if meta["mode"] == "binary" and meta["wire"].get(cm.target, "text") == "send":
            name = meta.get("cast_text", {}).get(cm.target)
            return data.column(name).combine_chunks() if name else None
        return data.column(meta["cast"][cm.target]).combine_chunks()
    if cm.op == "mask_hash":
        if salt is None:
            raise TransformError(f"{table.target_table}.{cm.target}: mask_hash needs a salt (defaults.mask_salt)")
        return arrow_io.sha256_hex(_column(data, meta, cm.source[0]), salt)
    if cm.op == "mask_redact":
        col = _column(data, meta, cm.source[0])
        return pc.if_else(pc.is_null(col), pa.scalar(None, pa.string()), pa.scalar("REDACTED", pa.string()))
    raise TransformError(f"{table.target_table}.{cm.target}: unknown op {cm.op!r}")


def _apply_uuid(cm: ColumnMap, data: pa.Table, meta: dict[str, Any], table: ResolvedTable, namespace: uuid.UUID,
                binary: bool, cls: str, want_text: bool) -> tuple[pa.Array, pa.Array | None]:
    """uuid_key, uuid_ref: uuid5 of the joined source texts (see _apply)."""
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
    return (wire.text_to_wire(text, cls) if binary else text), text


def _apply_default(cm: ColumnMap, meta: dict[str, Any], n: int, binary: bool,
                   cls: str) -> tuple[pa.Array, pa.Array | None]:
    """default: the value evaluated once by the extract, repeated (see _apply)."""
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


def _apply(cm: ColumnMap, data: pa.Table, meta: dict[str, Any], table: ResolvedTable,
           namespace: uuid.UUID, salt: bytes | None, want_text: bool = False) -> tuple[pa.Array, pa.Array | None]:
    """The target column: PostgreSQL text (csv mode) or binary COPY field data (binary mode); with
    want_text also the column's output text as the target will print it (None when not known)."""
    n = data.num_rows
    binary = meta["mode"] == "binary"
    cls = meta["wire"].get(cm.target, "text")
    if cm.op == "mask_null":
        return pa.nulls(n, pa.binary() if binary else pa.string()), pa.nulls(n, pa.string())
    if cm.op in ("uuid_key", "uuid_ref"):
        return _apply_uuid(cm, data, meta, table, namespace, binary, cls, want_text)
    if cm.op == "default":
        return _apply_default(cm, meta, n, binary, cls)
    text = _text(cm, data, meta, table, salt)
    if cm.op == "copy" and cm.source[0] in meta["sent"] and binary and cls == "send":
        return wire.bytea_hex_to_binary(data.column(meta["sent"][cm.source[0]]).combine_chunks()), text
    sent = data.column(meta["cast"][cm.target]).combine_chunks() if cm.op == "cast" else text
    return (wire.text_to_wire(sent, cls) if binary else sent), text


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
    keys = key_text(data, meta["raw"], table.source_key)
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
        result, keys = run_custom(table, result, keys)
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
    return list(zip(t.keys.to_pylist(), target_keys, t.fps.tolist(), strict=True))


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

