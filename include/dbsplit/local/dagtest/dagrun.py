"""One ``dag.test()`` run inside the child or the pump, and what the child does before the first one."""

from __future__ import annotations

import sys
import time
from typing import Any

from dbsplit.local.dagtest.capture import TaskErrors
from dbsplit.local.dagtest.results import DagRunResult


def cap_retry_delays(dag: Any, cap_s: float) -> None:
    """Cap every task's retry delay (dag.test() sleeps through it)."""
    from datetime import timedelta

    cap = timedelta(seconds=cap_s)
    for task in dag.task_dict.values():
        if task.retries and task.retry_delay > cap:
            task.retry_delay = cap
        if task.retries:
            task.max_retry_delay = min(task.max_retry_delay or cap, cap)


def warm_up_execution_api() -> None:
    """Pay the one-off start-up of the in-process Execution API before the first DAG.

    dag.test() talks to tasks through an in-process Execution API (FastAPI + Cadwyn). Cadwyn
    builds its versioned routers on the first request (cadwyn/applications.py, __call__ ->
    _cadwyn_initialize): ~4 s measured on 2 cores, which would otherwise be charged to the first
    DAG's duration_s. A GET /health triggers it. Best effort: a failure here changes nothing.
    """
    try:
        from airflow.sdk.execution_time.supervisor import InProcessTestSupervisor

        InProcessTestSupervisor._api_client().get("health")
    except Exception as err:  # noqa: BLE001 - purely an optimisation of the timings
        print(f"dbsplit: Execution API warm-up skipped: {err!r}", file=sys.stderr)


def run_one(dag: Any, conf: dict | None, errors: TaskErrors, logical_date: Any = None) -> DagRunResult:
    """dag.test() one run; with logical_date, (re)create the run of that date (run id manual__<date>)."""
    started = time.monotonic()
    when = {"logical_date": logical_date, "run_after": logical_date} if logical_date is not None else {}
    dr = dag.test(run_conf=conf, **when)
    duration = time.monotonic() - started
    failed: dict[str, str] = {}
    states: dict[str, str] = {}
    for ti in sorted(dr.get_task_instances(), key=lambda t: (t.task_id, t.map_index)):
        name = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        state = str(getattr(ti.state, "value", ti.state))
        states[name] = state
        if state == "failed":
            failed[name] = errors.by_ti.get(
                (ti.dag_id, ti.run_id, ti.task_id, ti.map_index),
                "failed without running (no exception captured)",
            )
    return DagRunResult(
        dag_id=dag.dag_id, state=str(getattr(dr.state, "value", dr.state)), failed_tasks=failed,
        duration_s=round(duration, 3), run_id=dr.run_id, task_states=states,
    )
