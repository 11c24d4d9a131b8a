"""The outcome of one table's resync."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ResyncResult:
    upserted: int                    # target rows inserted or changed
    deleted: int                     # target rows deleted
    conflicts: list[str]             # target keys changed in the target that differed from the source
    skipped_conflicts: int           # recorded target changes whose rows already equalled the source
    seconds: float
    watermark_before: str | None     # text of the watermark the run started from (None: read every row)
    watermark_after: str | None      # text of the highest watermark of the run's snapshot
    inserted: int = 0
    updated: int = 0
    read_rows: int = 0               # source rows read and staged (changed rows, differing keys, conflicts)
    rejected: list[str] = field(default_factory=list)   # "key: column: reason" of rows the transforms refused
    rebuilt_keys: bool = False       # this run (re)built the key table from the whole source key set
    diff: dict[str, int] = field(default_factory=dict)  # key diff statistics
    verified: int | None = None      # staged rows looked up after the merge and found as staged (None: not
                                     # needed, nothing but the merge can have written them; see verify.py)
    steps: dict[str, float] = field(default_factory=dict)   # seconds per step
    checked: int | None = None       # rows checked against the table's suite before being written (None:
                                     # no suite, or no row-by-row expectation in it; see check.py)
    checks: list[dict[str, Any]] = field(default_factory=list)   # their outcomes
    checks_table_wide: list[str] = field(default_factory=list)   # suite expectations left to the full load's
                                                                 # validation (they need the whole table)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
