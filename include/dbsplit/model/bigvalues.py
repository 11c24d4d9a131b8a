"""Values of any size on the transformed path (up to PostgreSQL's 1 GB), in memory bounded by the chunk's bytes.

  - The extract parses COPY's CSV output in blocks that end on row boundaries (COPY TO sends one
    message per row, and joined_messages joins whole messages), each parsed in one piece: a block
    holds at least COPY_BATCH_BYTES, or one row larger than that, never a fixed block size.
  - Arrow's string and binary arrays address at most 2 GB (32-bit offsets): a column holding more
    than WIDE_AT bytes in one chunk becomes large_string (64-bit offsets) when it is read, so it can
    be combined into one array; bytea decoding and wire conversion keep the width they need.
  - Rows are fingerprinted and sent to COPY FROM in batches of at most their row count and about
    BATCH_BYTES bytes (a larger row alone), narrowed back to 32-bit offsets, so that a batch of big
    values neither overflows nor holds many of them at once.
  - A reject records the start of a long value and its size, not the value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa  # noqa: TID253  (run time only, like row_text: DAG parsing never imports this module)
import pyarrow.compute as pc  # noqa: TID253  (as above)

OFFSET_LIMIT = 2**31 - 1     # bytes a string/binary array can address (32-bit offsets)
WIDE_AT = 1 << 30            # a column holding more bytes than this in a chunk is read as large_string
BATCH_BYTES = 32 << 20       # bytes of rows fingerprinted, or sent to COPY FROM, at a time (a larger row alone)
SHOWN = 1000                 # characters (bytes) of a rejected value recorded; the rest is only counted

_LARGE = {pa.string(): pa.large_string(), pa.binary(): pa.large_binary()}
_NARROW = {v: k for k, v in _LARGE.items()}


def row_blocks(pieces: Iterable[bytes | memoryview], size: int) -> Iterator[bytes | memoryview]:
    """Blocks of at least size bytes (the last may be smaller) joined from pieces that each end on a row boundary."""
    parts: list[bytes | memoryview] = []
    n = 0
    for piece in pieces:
        parts.append(piece)
        n += len(piece)
        if n >= size:
            yield parts[0] if len(parts) == 1 else b"".join(parts)
            parts, n = [], 0
    if parts:
        yield b"".join(parts)


def widen(table: pa.Table) -> pa.Table:
    """table with each string or binary column of more than WIDE_AT bytes cast to its large type."""
    for i, col in enumerate(table.columns):
        if col.type in _LARGE and col.nbytes > WIDE_AT:
            table = table.set_column(i, table.field(i).name, col.cast(_LARGE[col.type]))
    return table


def narrow(data: pa.RecordBatch) -> pa.RecordBatch:
    """A batch whose large_string/large_binary columns (of less than 2 GB each) are cast to string/binary."""
    if not any(f.type in _NARROW for f in data.schema):
        return data
    return data.cast(pa.schema([f.with_type(_NARROW.get(f.type, f.type)) for f in data.schema]))


def as_binary(values: pa.Array) -> pa.Array:
    """values (string, large_string, binary or large_binary) as binary of the same offset width."""
    if pa.types.is_large_string(values.type) or pa.types.is_large_binary(values.type):
        return values.cast(pa.large_binary())
    return values.cast(pa.binary())


def offsets_type(end: int) -> tuple[pa.DataType, type]:
    """(binary type, numpy offset dtype) able to address end bytes."""
    return (pa.large_binary(), np.int64) if end > OFFSET_LIMIT else (pa.binary(), np.int32)


def bounded_batches(table: pa.Table, rows: int) -> Iterator[pa.RecordBatch]:
    """table's rows in batches of at most rows rows and about BATCH_BYTES bytes (a larger row alone),
    with 32-bit offsets. Batches of ordinary rows are table.to_batches(rows), unchanged."""
    for batch in table.to_batches(max_chunksize=rows):
        if batch.nbytes <= BATCH_BYTES:
            yield narrow(batch)
            continue
        ends = np.cumsum(_row_bytes(batch))
        start = 0
        while start < batch.num_rows:
            base = int(ends[start - 1]) if start else 0
            end = max(int(np.searchsorted(ends, base + BATCH_BYTES, side="right")), start + 1)
            yield narrow(batch.slice(start, end - start))
            start = end


def _row_bytes(batch: pa.RecordBatch) -> np.ndarray:
    """Approximate bytes of each row: its variable-width values' lengths plus the fixed widths."""
    sizes = np.zeros(batch.num_rows, dtype=np.int64)
    for col in batch.columns:
        if col.type in _LARGE or col.type in _NARROW:
            sizes += pc.fill_null(pc.binary_length(col), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        else:
            sizes += col.nbytes // max(len(col), 1)
    return sizes


def shown(value: str | bytes | None, as_text: Callable[[bytes], str] | None = None) -> str | None:
    """A rejected value as recorded: whole up to SHOWN characters (bytes: as_text of them, default the
    bytea hex text), else its first SHOWN and its size."""
    if value is None:
        return None
    cut = value[:SHOWN]
    text = cut if isinstance(cut, str) else (as_text or (lambda b: "\\x" + b.hex()))(cut)
    if len(value) <= SHOWN:
        return text
    return f"{text}... ({len(value)} {'characters' if isinstance(value, str) else 'bytes'} in all)"
