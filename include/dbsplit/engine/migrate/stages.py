"""What the stages of the transformed path share: stats, Reject, staging-file columns, row errors.

The transformed path: one chunk of rows whose target table differs from the source.

    extract_chunk   (extract.py)   source --COPY (FORMAT csv)--> Arrow strings --> staging file (Arrow IPC stream)
    transform_chunk (transform.py) staging file --ColumnMaps (vectorised), custom function--> staging file
    load_chunk      (load.py)      staging file --COPY FROM STDIN (FORMAT binary, or csv)--> target table

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

Content checksum (model/row_text.py): transform_chunk also computes, for every output row, the
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

from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg
import pyarrow as pa
import pyarrow.compute as pc

from dbsplit.errors import DbsplitError

KEY_COLUMN = "__dbsplit_key"   # hidden column of transformed staging files: the row's source key text
FP_COLUMN = "__dbsplit_fp"     # hidden column of load staging files: the row's fingerprint (int64)
FORMAT_VERSION = 1
ROW_ERRORS = (psycopg.errors.DataError, psycopg.errors.IntegrityError)   # SQLSTATE classes 22 and 23
# bad COPY file format, invalid binary representation: our own data is wrong, never a row's fault
FATAL_STATES = {"22P04", "22P03"}


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


def key_text(data: pa.Table, raw: dict[str, str], key: Sequence[str]) -> pa.Array:
    """Source key text of each row: the key columns' texts joined with ","; row numbers without a key.

    raw maps source column names to the staging file's column names."""
    if not key:
        return pa.array([f"#{i + 1}" for i in range(data.num_rows)], pa.string())
    cols = [data.column(raw[n]).combine_chunks() for n in key]
    if len(cols) == 1:
        return cols[0]
    return pc.binary_join_element_wise(*cols, ",", null_handling="replace", null_replacement="")


