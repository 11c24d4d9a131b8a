"""The pump: a second process that runs the DagRuns a parent run's TriggerDagRunOperator tasks queue.

Nothing else schedules a triggered run under dag.test(), and a thread cannot do it (dag.test()
installs signal handlers, main thread only). `Pump` is the child's handle on it: it starts
``python -m dbsplit.local.airflow_local _pump`` (same environment), which runs `run_pump`: every run
queued by an operator since the pump started, one after another, with ``dag.test()`` under the same
run id, so that the parent's deferred wait finds it finished. It stops at a stop file (dag.test()
ignores SIGTERM); its results come back as the parent result's ``triggered`` runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

from dbsplit.local.dagtest.capture import TaskErrors, TeeStdout, describe_exception
from dbsplit.local.dagtest.dagrun import cap_retry_delays, run_one, warm_up_execution_api
from dbsplit.local.dagtest.metadata import parse_and_sync
from dbsplit.local.dagtest.results import DagRunResult, read_json, results_of, write_json

_PUMP_POLL_S = 0.5
_PUMP_STOP_WAIT_S = 60.0

QueuedRun = tuple[str, str, Any, dict | None]  # dag_id, run_id, logical_date, conf


def waits_for_triggered_runs(dag: Any) -> bool:
    """Whether a task of the DAG triggers another DAG and waits for its run."""
    try:
        from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
    except ImportError:
        return False
    return any(isinstance(t, TriggerDagRunOperator) and t.wait_for_completion for t in dag.task_dict.values())


def _die_with_parent() -> None:
    """preexec_fn: the kernel SIGKILLs the pump when the child that started it dies (Linux)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Pump:
    """The pump process of one parent run, seen from the child that runs the parent."""

    def __init__(self, max_retry_delay_s: float | None) -> None:
        from datetime import datetime, timezone

        self._dir = Path(tempfile.mkdtemp(prefix="dbsplit-pump-"))
        self._stop, self._result = self._dir / "stop", self._dir / "result.json"
        since = datetime.now(timezone.utc).isoformat()  # runs queued earlier are stale: not ours
        cmd = [sys.executable, "-m", "dbsplit.local.airflow_local", "_pump", "--since", since,
               "--stop", str(self._stop), "--result", str(self._result)]
        if max_retry_delay_s is not None:
            cmd += ["--max-retry-delay", str(max_retry_delay_s)]
        sys.stdout.flush()
        self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)  # noqa: PLW1509

    def stop(self) -> list[DagRunResult]:
        """Ask the pump to stop once idle (SIGKILL after a while) and return the runs it ran."""
        self._stop.touch()
        try:
            self._proc.wait(timeout=_PUMP_STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        results = results_of(read_json(self._result))
        if self._proc.returncode != 0:
            results.append(DagRunResult(dag_id="(pump)", state="error", error=f"pump exited with code "
                                        f"{self._proc.returncode}; its output is above"))
        import shutil

        shutil.rmtree(self._dir, ignore_errors=True)
        return results


def _queued_runs(since: Any, seen: set[tuple[str, str]]) -> list[QueuedRun]:
    """(dag_id, run_id, logical_date, conf) of the runs an operator queued since `since`, oldest first."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(DagRun.dag_id, DagRun.run_id, DagRun.logical_date, DagRun.conf)
            .where(DagRun.state == DagRunState.QUEUED, DagRun.triggered_by == DagRunTriggeredByType.OPERATOR,
                   DagRun.queued_at >= since)
            .order_by(DagRun.queued_at)
        ).all()
    return [(d, r, ld, dict(c) if c else None) for d, r, ld, c in rows if (d, r) not in seen]


def _pump_one(dags: dict[str, Any], run: QueuedRun, errors: TaskErrors,
              max_retry_delay_s: float | None) -> DagRunResult:
    dag_id, run_id, logical_date, conf = run
    print(f"==> dbsplit pump: dag.test({dag_id}) for {run_id}", flush=True)
    dag = dags.get(dag_id)
    if dag is None:
        return DagRunResult(dag_id=dag_id, state="error", run_id=run_id, error=f"DAG {dag_id!r} not found")
    if max_retry_delay_s is not None:
        cap_retry_delays(dag, max_retry_delay_s)
    try:
        result = run_one(dag, conf, errors, logical_date=logical_date)
    except Exception as err:
        traceback.print_exc()
        result = DagRunResult(dag_id=dag_id, state="error", run_id=run_id, error=describe_exception(err))
    print(f"==> dbsplit pump: {dag_id}: {result.state} in {result.duration_s:.1f} s", flush=True)
    return result


def run_pump(since: str, stop: Path, result_path: Path, max_retry_delay_s: float | None) -> int:
    """The pump process: run each queued triggered run until the stop file appears while idle."""
    from datetime import datetime

    tee = TeeStdout(sys.stdout)
    sys.stdout = tee
    parent = os.getppid()
    results: list[dict[str, Any]] = []
    try:
        import airflow  # noqa: F401

        dags, _ = parse_and_sync(sync=False)  # the child synced them; dag.test() re-syncs anyway
        warm_up_execution_api()
        errors = TaskErrors(tee)
        errors.install()
        seen: set[tuple[str, str]] = set()
        while True:
            runs = _queued_runs(datetime.fromisoformat(since), seen)
            for run in runs:
                seen.add(run[:2])
                results.append(asdict(_pump_one(dags, run, errors, max_retry_delay_s)))
                write_json(result_path, {"results": results})
            if not runs:
                if stop.exists() or os.getppid() != parent:
                    return 0
                time.sleep(_PUMP_POLL_S)
    except BaseException:
        traceback.print_exc()
        return 1
    finally:
        write_json(result_path, {"results": results})
        tee.flush()
