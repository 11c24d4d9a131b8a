"""What a local run gives back: one `DagRunResult` per DAG run, the timings, and the runner's own error.

The child and the pump write their results as JSON files (`write_json`) that the process which
started them reads back (`read_json`, `results_of`): the task logs stream on stdout, the results
travel on their own channel.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbsplit.errors import DbsplitError


class AirflowLocalError(DbsplitError):
    """The local Airflow runner itself failed (not a DAG): bad setup, crash, timeout."""

    def __init__(self, message: str, results: list[DagRunResult] | None = None) -> None:
        super().__init__(message)
        self.results = results or []  # the DAG runs that completed before the failure


@dataclass
class DagRunResult:
    """The outcome of one ``dag.test()`` run."""

    dag_id: str
    # "success" or "failed" (the DagRun's final state), or "error" when the DAG could not be run
    # at all (unknown dag_id, import error in the dags folder, exception out of dag.test()).
    state: str
    # task_id (``task_id[map_index]`` for a mapped task instance) -> "ExcType: message (file:line)",
    # or the last log lines of the task when Airflow did not hand over an exception.
    failed_tasks: dict[str, str] = field(default_factory=dict)
    duration_s: float = 0.0
    run_id: str | None = None
    error: str | None = None  # why state == "error"
    # Every task instance of the run -> its final state (success, failed, upstream_failed, ...).
    task_states: dict[str, str] = field(default_factory=dict)
    # The runs this run's tasks triggered and waited for (run by the pump), in the order they ran.
    triggered: list[DagRunResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.state == "success"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DagRunResult:
        return cls(**{**d, "triggered": [cls.from_dict(t) for t in d.get("triggered", [])]})


@dataclass
class LocalRunReport:
    """Everything one child run produced: the DAG results and where its time went."""

    results: list[DagRunResult]
    # import_airflow_s, migrate_s (0.0 when the database was reused), parse_s, api_warmup_s
    # (one-off start of the in-process Execution API), total_s (child wall time), wall_s (seen
    # from the parent, process start and exit included).
    timings: dict[str, float]
    migrated: bool  # whether this run had to create/upgrade the metadata database


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in the file, or None when it is missing or not (yet) complete."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write atomically: a reader sees the previous content or the new one, never half of it."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload))
    tmp.replace(path)


def results_of(payload: dict[str, Any] | None) -> list[DagRunResult]:
    """The results of a payload written by the child or the pump."""
    return [DagRunResult.from_dict(r) for r in (payload or {}).get("results", [])]


def format_results(results: Sequence[DagRunResult], indent: str = "") -> str:
    """The results as text for a terminal: state and duration, errors, failed tasks, triggered runs."""
    lines = []
    for r in results:
        lines.append(f"{indent}{r.dag_id}: {r.state} in {r.duration_s:.1f} s" + (f" ({r.run_id})" if r.run_id else ""))
        if r.error:
            lines.append(f"{indent}  error: {r.error}")
        for task, msg in r.failed_tasks.items():
            first, *rest = msg.splitlines() or [""]
            lines.append(f"{indent}  {task}: {first}")
            lines.extend(f"{indent}    {ln}" for ln in rest)
        if r.triggered:
            lines.append(f"{indent}  triggered runs:")
            lines.append(format_results(r.triggered, indent + "    "))
    return "\n".join(lines)
