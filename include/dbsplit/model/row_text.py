"""Row fingerprints computed in Python, equal to the ones PostgreSQL computes (checksums.fingerprint).

PostgreSQL's fingerprint of a row is the first 60 bits of md5(ROW(c1, c2, ...)::text). The record
text is what record_out (src/backend/utils/adt/rowtypes.c) prints from each column's output text:

  - a NULL column is an empty field;
  - a value is double-quoted when it is empty or contains '"', '\\', '(', ')', ',' or a character
    for which the server's isspace() is true (space, \\t, \\n, \\v, \\f, \\r: the C-locale set, which
    is what glibc's isspace gives for single bytes in the UTF-8 locales too); inside the quotes
    '"' and '\\' are doubled;
  - the fields are joined with ',' and wrapped in parentheses.

Given each column's output text (Arrow strings, exactly as the target server prints them with the
same settings), record_text builds the record text column-wise in Arrow, fingerprints hashes it
with one md5 call per row, and checksum_total sums the fingerprints exactly like SQL's
sum(bigint) (an exact integer, compared as decimal text). The server must use UTF-8 (md5 of text
hashes the server-encoded bytes).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dbsplit.model import bigvalues

try:   # CPython's own md5: about 40% faster than OpenSSL's for short messages (no EVP context per call)
    from _md5 import md5 as _md5
except ImportError:   # pragma: no cover - builds without it
    _md5 = hashlib.md5

# record_out quotes a value holding any of these (RE2 character class; \x0b is \v)
_NEEDS_QUOTES = '["\\\\(),\t\n\x0b\f\r ]'
BATCH_ROWS = 16_384                     # rows quoted, joined and hashed at a time
# the same fingerprint in SQL, of one text expression {} (checksums.fingerprint, resync key diffs):
# fingerprints() below computes exactly this, and checksum_total() the SQL sum of it
MD5_60_SQL = "('x' || substr(md5({}::text), 1, 15))::bit(60)::bigint"


def quote_field(values: pa.Array | pa.ChunkedArray, safe: bool = False) -> pa.Array:
    """record_out's rendering of one column's output text; NULL stays NULL (an empty field).

    safe=True skips the scan for values known never to need quotes (integers, booleans, floats,
    uuids, hex digests)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not pa.types.is_string(values.type):
        values = values.cast(pa.string())
    if safe or len(values) == 0:
        return values
    needs = pc.or_(pc.equal(pc.binary_length(values), 0), pc.match_substring_regex(values, _NEEDS_QUOTES))
    if not pc.any(needs).as_py():
        return values
    # (cheaper than scanning for them first)
    escaped = pc.replace_substring(pc.replace_substring(values, "\\", "\\\\"), '"', '""')
    quoted = pc.binary_join_element_wise('"', escaped, '"', "")
    return quoted if pc.all(pc.fill_null(needs, True)).as_py() else pc.if_else(needs, quoted, values)


def record_text(columns: Sequence[pa.Array | pa.ChunkedArray], safe: Sequence[bool] | None = None) -> pa.Array:
    """The text PostgreSQL prints for ROW(c1, c2, ...) of each row, from each column's output text."""
    if not columns:
        raise ValueError("a record needs at least one column")
    safe = list(safe) if safe is not None else [False] * len(columns)
    fields = [quote_field(c, s) for c, s in zip(columns, safe, strict=True)]
    inner = pc.binary_join_element_wise(*fields, ",", null_handling="replace", null_replacement="")
    return pc.binary_join_element_wise("(", inner, ")", "")


def fingerprints(texts: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """First 60 bits of md5 of each text (UTF-8), as int64: ('x' || substr(md5(t), 1, 15))::bit(60)::bigint."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if len(texts) == 0:
        return np.zeros(0, dtype=np.int64)
    md5 = _md5
    return _first_60_bits(b"".join([md5(t).digest() for t in texts.cast(pa.binary()).to_pylist()]))


def _first_60_bits(digests: bytes) -> np.ndarray:
    """The first 60 bits of each 16-byte digest, as int64."""
    first = np.frombuffer(digests, dtype=">u8").reshape(-1, 2)[:, 0]
    return (first >> np.uint64(4)).astype(np.int64)


def row_fingerprints(columns: Sequence[pa.Array | pa.ChunkedArray], safe: Sequence[bool] | None = None) -> np.ndarray:
    """checksums.fingerprint of each row, given the output text of each of its columns.

    The same as fingerprints(record_text(...)), in batches of BATCH_ROWS rows (Arrow kernels on
    large arrays spend most of their time allocating fresh memory: batches are 2-3 times faster)
    and of about bigvalues.BATCH_BYTES (big values: few at a time, in 32-bit offsets), with the
    parentheses added in the md5 loop."""
    if not columns:
        raise ValueError("a record needs at least one column")
    safe = list(safe) if safe is not None else [False] * len(columns)
    columns = [c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c for c in columns]
    table = pa.Table.from_arrays(columns, names=[f"c{i}" for i in range(len(columns))])
    n = table.num_rows
    md5 = _md5
    parts = []
    for rows in bigvalues.bounded_batches(table, BATCH_ROWS):
        batch = [quote_field(c, s) for c, s in zip(rows.columns, safe, strict=True)]
        inner = batch[0].fill_null("") if len(batch) == 1 else pc.binary_join_element_wise(
            *batch, ",", null_handling="replace", null_replacement="")
        inner = inner.cast(pa.binary())
        if len(inner) == 1:   # a big row has a batch of its own: hashed in place, not copied twice
            parts.append(_md5_in_place(inner))
        else:
            parts.append(b"".join([md5(b"(" + t + b")").digest() for t in inner.to_pylist()]))
    if not n:
        return np.zeros(0, dtype=np.int64)
    return _first_60_bits(b"".join(parts))


def _md5_in_place(one: pa.BinaryArray) -> bytes:
    """md5 digest of "(" + the one value of one + ")", read from the array's buffer."""
    start, end = (int(x) for x in np.frombuffer(one.buffers()[1], dtype=np.int32)[one.offset:one.offset + 2])
    h, data = _md5(b"("), one.buffers()[2]
    if data is not None:
        h.update(memoryview(data)[start:end])
    h.update(b")")
    return h.digest()


def checksum_total(fps: np.ndarray) -> str:
    """sum(fingerprint)::text as PostgreSQL computes it (exact; "0" for no rows, like coalesce(sum, 0))."""
    if len(fps) == 0:
        return "0"
    v = fps.astype(np.uint64)
    high = int(np.sum(v >> np.uint64(30), dtype=np.uint64))   # < 2^30 each: no overflow below 2^34 rows
    low = int(np.sum(v & np.uint64((1 << 30) - 1), dtype=np.uint64))
    return str((high << 30) + low)
