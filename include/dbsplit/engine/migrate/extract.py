"""The extract stage of the transformed path: one chunk of the source table into an Arrow staging file.

What is read for each target column (its text, the source's typsend bytes, a cast evaluated by the
source server) and why: stages.py. A cast that fails on some values sets those rows aside as
Rejects (_extract_with_failed_casts); the other rows go on.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from dbsplit.engine.migrate import arrow_io, wire
from dbsplit.engine.migrate.stages import FORMAT_VERSION, ROW_ERRORS, ChunkStats, Reject, TransformError, key_text
from dbsplit.model import bigvalues
from dbsplit.model.resolved import ColumnMap, ResolvedTable
from dbsplit.model.sql_fragments import filter_sql


def _source_types(conn: psycopg.Connection, schema: str, table: str) -> dict[str, tuple[str, int]]:
    """{column: (format_type text, type OID)} of the source table."""
    rows = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.atttypid::int FROM pg_attribute a"
        " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        [sql.Identifier(schema, table).as_string(conn)]).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def _where(where: sql.Composable | None, table: ResolvedTable) -> sql.Composable:
    parts: list[sql.Composable] = [sql.SQL("({})").format(where)] if where is not None else []
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


def _type_oids(conn: psycopg.Connection, table: ResolvedTable, types: dict[str, tuple[str, int]]) -> dict[str, int]:
    """{target column: type OID} of the copies (the source column's type), casts and defaults (their target type)."""
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
                    f"in the source database, where the {cm.op} is evaluated: "
                    f"{exc.diag.message_primary or exc}") from exc
    return oids


def _layout(conn: psycopg.Connection, table: ResolvedTable, types: dict[str, tuple[str, int]]) -> _Layout:
    oids = _type_oids(conn, table, types)
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
            for v, r in zip(vals, _cast_batch(conn, vals, src_type, cm, layout, text), strict=True):
                out[v] = (True, r)
        except ROW_ERRORS as exc:
            if len(vals) == 1:
                out[vals[0]] = (False, exc.diag.message_primary or str(exc))
            else:
                mid = len(vals) // 2
                pending += [vals[mid:], vals[:mid]]


@dataclass
class _Reads:
    """What the extract SELECTs, and the staging file's column name for each item."""

    names: dict[str, str]             # source column -> "c<i>": its text
    send_names: dict[str, str]        # source column -> "s<i>": its typsend bytes (binary mode)
    cast_names: dict[str, str]        # target column -> "x<i>": the cast as the load sends it
    cast_text_names: dict[str, str]   # target column -> "y<i>": the cast's text, for the fingerprint only
    items: list[sql.Composable]       # the source columns' items (texts, then typsend bytes)
    cast_items: list[sql.Composable]  # the casts' items (as sent, then as text)

    @property
    def file_names(self) -> list[str]:
        return [*self.names.values(), *self.send_names.values(), *self.cast_names.values(),
                *self.cast_text_names.values()]


def _cast_expr(cm: ColumnMap) -> sql.Composable:
    return sql.SQL("CAST({} AS {})").format(sql.Identifier(cm.source[0]), sql.SQL(cm.target_type))


def _reads(table: ResolvedTable, layout: _Layout, fingerprint: bool) -> _Reads:
    """The text of every source column a transform needs (keys first), the binary form of copied
    columns that need it (and then, for the fingerprint, their text too), and each cast."""
    binary = layout.mode == "binary"
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
    # casts read as typsend bytes: their text as well, for the fingerprint only
    cast_text_names = {cm.target: f"y{i}" for i, cm in enumerate(casts)
                       if fingerprint and binary and layout.wire.get(cm.target) == "send"}
    send_fn = {cm.source[0]: layout.send[cm.target] for cm in table.columns if cm.op == "copy" and cm.source[0] in sent}
    items = [sql.Identifier(c) for c in raw] + [_wrap(sql.Identifier(c), "send", send_fn[c]) for c in sent]
    cast_items = [_wrap(_cast_expr(cm), layout.wire.get(cm.target), layout.send.get(cm.target)) for cm in casts]
    cast_items += [_cast_expr(cm) for cm in casts if cm.target in cast_text_names]
    return _Reads(names={c: f"c{i}" for i, c in enumerate(raw)}, send_names={c: f"s{i}" for i, c in enumerate(sent)},
                  cast_names={cm.target: f"x{i}" for i, cm in enumerate(casts)}, cast_text_names=cast_text_names,
                  items=items, cast_items=cast_items)


def extract_chunk(conn: psycopg.Connection, table: ResolvedTable, where: sql.Composable | None,
                  path: Any) -> ChunkStats:
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
    fingerprint = not table.custom   # the target rows' text is known (stages.py)
    reads = _reads(table, layout, fingerprint)
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
                data, nbytes = arrow_io.copy_query_to_arrow(
                    conn, _select(table, reads.items + reads.cast_items, where_sql), reads.file_names)
        except ROW_ERRORS:
            if not reads.cast_names:
                raise
            data, nbytes, rejects = _extract_with_failed_casts(conn, table, types, layout, reads, where_sql)
    source_rows = data.num_rows + len(rejects)
    meta = {
        "version": FORMAT_VERSION, "kind": "extract", "table": f"{table.source_schema}.{table.source_table}",
        "mode": layout.mode, "csv_reason": layout.reason, "wire": layout.wire,
        "raw": reads.names, "sent": reads.send_names, "cast": reads.cast_names, "defaults": defaults,
        "settings": settings, "rejects": [r.__dict__ for r in rejects], "source_rows": source_rows,
        "fingerprint": fingerprint, "cast_text": reads.cast_text_names, "default_text": default_text,
    }
    size = arrow_io.write_staging(path, data, meta)
    return ChunkStats(data.num_rows, size, time.perf_counter() - start, source_rows, nbytes, tuple(rejects))


def _extract_with_failed_casts(conn: psycopg.Connection, table: ResolvedTable, types: dict[str, tuple[str, int]],
                               layout: _Layout, reads: _Reads,
                               where_sql: sql.Composable) -> tuple[pa.Table, int, list[Reject]]:
    """A cast failed somewhere in the chunk: read the cast columns' source text, cast the distinct
    values in bisected batches, and set aside the rows whose value cannot be cast."""
    casts = [cm for cm in table.columns if cm.op == "cast"]
    sources: list[sql.Composable] = [sql.Identifier(cm.source[0]) for cm in casts]
    cast_names, cast_text_names = reads.cast_names, reads.cast_text_names
    sources += [sql.Identifier(cm.source[0]) for cm in casts if cm.target in cast_text_names]
    data, nbytes = arrow_io.copy_query_to_arrow(conn, _select(table, reads.items + sources, where_sql),
                                                reads.file_names)
    keys = key_text(data, reads.names, table.source_key)
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

