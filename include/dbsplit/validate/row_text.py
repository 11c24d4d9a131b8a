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

# record_out quotes a value holding any of these (RE2 character class; \x0b is \v)
_NEEDS_QUOTES = '["\\\\(),\t\n\x0b\f\r ]'


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
    escaped = pc.replace_substring(pc.replace_substring(values, "\\", "\\\\"), '"', '""')
    quoted = pc.binary_join_element_wise('"', escaped, '"', "")
    return pc.if_else(needs, quoted, values)


def record_text(columns: Sequence[pa.Array | pa.ChunkedArray], safe: Sequence[bool] | None = None) -> pa.Array:
    """The text PostgreSQL prints for ROW(c1, c2, ...) of each row, from each column's output text."""
    if not columns:
        raise ValueError("a record needs at least one column")
    safe = list(safe) if safe is not None else [False] * len(columns)
    fields = [quote_field(c, s) for c, s in zip(columns, safe)]
    inner = pc.binary_join_element_wise(*fields, ",", null_handling="replace", null_replacement="")
    return pc.binary_join_element_wise("(", inner, ")", "")


def fingerprints(texts: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """First 60 bits of md5 of each text (UTF-8), as int64: ('x' || substr(md5(t), 1, 15))::bit(60)::bigint."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if len(texts) == 0:
        return np.zeros(0, dtype=np.int64)
    md5 = hashlib.md5
    joined = b"".join([md5(t).digest()[:8] for t in texts.cast(pa.binary()).to_pylist()])
    return (np.frombuffer(joined, dtype=">u8") >> np.uint64(4)).astype(np.int64)


def row_fingerprints(columns: Sequence[pa.Array | pa.ChunkedArray], safe: Sequence[bool] | None = None) -> np.ndarray:
    """checksums.fingerprint of each row, given the output text of each of its columns."""
    return fingerprints(record_text(columns, safe))


def checksum_total(fps: np.ndarray) -> str:
    """sum(fingerprint)::text as PostgreSQL computes it (exact; "0" for no rows, like coalesce(sum, 0))."""
    if len(fps) == 0:
        return "0"
    v = fps.astype(np.uint64)
    high = int(np.sum(v >> np.uint64(30), dtype=np.uint64))   # < 2^30 each: no overflow below 2^34 rows
    low = int(np.sum(v & np.uint64((1 << 30) - 1), dtype=np.uint64))
    return str((high << 30) + low)
