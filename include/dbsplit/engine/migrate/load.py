"""The load stage of the transformed path: COPY a transformed staging file into the target table.

Rows the target refuses (a NOT NULL or CHECK violation, an unparsable value, a duplicate key) are
isolated one by one: the COPY error's line number names the row (else the range is bisected), the
rows before it are copied again, the row becomes a Reject, and loading resumes after it, each step
inside a savepoint of the caller's transaction.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc

from dbsplit.engine.migrate import arrow_io, wire
from dbsplit.engine.migrate.stages import (
    FATAL_STATES,
    FP_COLUMN,
    KEY_COLUMN,
    ROW_ERRORS,
    LoadStats,
    Reject,
    TransformError,
)
from dbsplit.errors import RejectLimitExceeded
from dbsplit.model import bigvalues, row_text
from dbsplit.model.resolved import ResolvedTable

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


@dataclass
class _LoadFile:
    """A transformed staging file, its hidden columns taken apart."""

    data: pa.Table                 # the target columns, in table.columns order
    keys: pa.Array | None          # each row's source key text
    fps: np.ndarray | None         # each row's fingerprint
    meta: dict[str, Any]
    binary: bool                   # binary COPY (else csv)


def _read_load_file(path: Any, table: ResolvedTable) -> _LoadFile:
    data, meta = arrow_io.read_staging(path)
    if meta.get("kind") != "load":
        raise TransformError(f"{path} is not a transformed staging file (kind={meta.get('kind')!r})")
    keys = data.column(KEY_COLUMN).combine_chunks() if KEY_COLUMN in data.column_names else None
    data = data.drop_columns([KEY_COLUMN]) if keys is not None else data
    fps = data.column(FP_COLUMN).to_numpy() if FP_COLUMN in data.column_names else None
    data = data.drop_columns([FP_COLUMN]) if fps is not None else data
    want = [cm.target for cm in table.columns]
    if data.column_names != want:
        raise TransformError(f"{path}: columns {data.column_names} differ from the table's {want}")
    return _LoadFile(data, keys, fps, meta, meta.get("mode") == "binary")


@dataclass
class _Loader:
    """COPYs the rows of a load file, setting aside, one by one, the rows the target refuses."""

    conn: psycopg.Connection
    schema: str
    name: str
    file: _LoadFile
    rejects: list[Reject]
    max_rejects: int | None
    loaded: int = 0
    size: int = 0
    refused: list[int] = field(default_factory=list)   # rows the target refused (their fingerprints leave the checksum)
    newlines: np.ndarray | None = None

    def run(self) -> None:
        copy_in = wire.copy_wire_in if self.file.binary else arrow_io.copy_arrow_in
        pending = [(0, self.file.data.num_rows)]
        while pending:
            s, e = pending.pop()
            if s >= e:
                continue
            try:
                with self.conn.transaction():
                    self.size += copy_in(self.conn, self.schema, self.name, self.file.data.slice(s, e - s))
                self.loaded += e - s
                continue
            except ROW_ERRORS as exc:
                if exc.sqlstate in FATAL_STATES:
                    raise
                failure = exc
            if e - s > 1:
                pending += self._split(failure, s, e)
            else:
                self._reject(failure, s)

    def _split(self, failure: psycopg.Error, s: int, e: int) -> list[tuple[int, int]]:
        """The ranges to try next, last first: the error's line names the row: load the rows before it,
        then try it alone, then the rest; without a usable line number, bisect."""
        line, _ = _error_position(failure)
        bad: int | None = None
        if line is not None and self.file.binary:
            bad = s + line - 1 if 1 <= line <= e - s else None
        elif line is not None:
            if self.newlines is None:
                self.newlines = _newlines(self.file.data)
            row = _csv_row_of_line(self.newlines[s:e], line)
            bad = None if row is None else s + row
        if bad is None:
            mid = (s + e) // 2
            return [(mid, e), (s, mid)]
        return [(bad + 1, e), (bad, bad + 1), (s, bad)]

    def _reject(self, failure: psycopg.Error, s: int) -> None:
        """Row s alone is refused by the target: a Reject (RejectLimitExceeded past max_rejects)."""
        _, column = _error_position(failure)
        data, keys = self.file.data, self.file.keys
        col = column if column in data.column_names else None
        wire_class = self.file.meta["wire"].get(col, "send")

        def as_text(v: bytes) -> str:
            return wire.wire_value_text(v, wire_class)

        value = bigvalues.shown(data.column(col)[s].as_py() if col else None,   # not 100 MB in a reject
                                as_text if self.file.binary else None)
        key = keys[s].as_py() if keys is not None else f"#{s + 1}"
        self.rejects.append(Reject(key or "", col, value, _reason(failure)))
        self.refused.append(s)
        if self.max_rejects is not None and len(self.rejects) > self.max_rejects:
            raise RejectLimitExceeded(
                f"{self.schema}.{self.name}: more than {self.max_rejects} rejected rows in this chunk "
                f"(first: key {self.rejects[0].key}: {self.rejects[0].reason})", self.rejects)


def load_chunk(conn: psycopg.Connection, schema: str, name: str, table: ResolvedTable, path: Any,
               *, max_rejects: int | None = None) -> LoadStats:
    """COPY a transformed staging file into schema.name inside the caller's transaction.

    Rows the target refuses become Rejects and the other rows are loaded; the returned rejects also
    include those set aside by extract_chunk. With max_rejects, more rejects than that raise
    RejectLimitExceeded after rolling this chunk back to its savepoint.
    """
    start = time.perf_counter()
    file = _read_load_file(path, table)
    rejects = [Reject(**r) for r in file.meta.get("rejects", [])]
    settings = file.meta.get("settings", {})
    extra = {"lc_monetary": file.meta["settings"]["lc_monetary"]} if "lc_monetary" in settings else None
    loader = _Loader(conn, schema, name, file, rejects, max_rejects)
    with arrow_io.text_settings(conn, extra), conn.transaction():
        loader.run()
    checksum = None
    if file.fps is not None:
        kept = np.ones(len(file.fps), dtype=bool)
        kept[loader.refused] = False
        checksum = row_text.checksum_total(file.fps[kept])
    return LoadStats(loader.loaded, rejects, time.perf_counter() - start, loader.size, checksum)
