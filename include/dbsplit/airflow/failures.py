"""Why an orchestrator run failed: each task pushes its error (XCom `reason`) as it fails, and the
rollback reads the failed tasks of its run from the execution API and names them with their reasons.

Imported by DAG files: the Task SDK only, at call time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

REASON_KEY = "reason"   # XCom key: why a task (or a service run's `finish`) failed


def push_reason(exc: BaseException, ti: Any = None) -> None:
    """Record why the current task fails (a later try clears it); never hides the original error."""
    try:
        if ti is None:
            from airflow.sdk import get_current_context

            ti = get_current_context()["ti"]
        ti.xcom_push(key=REASON_KEY, value=str(exc) or type(exc).__name__)
    except Exception:  # outside a task (tests calling callables directly), or the API is gone
        log.debug("could not push the failure reason", exc_info=True)


@contextmanager
def reason_on_failure(ti: Any = None) -> Iterator[None]:
    """Push the reason of any exception raised in the block, then re-raise it (a skip, reschedule or
    deferral is no failure)."""
    from airflow.sdk.exceptions import (
        AirflowRescheduleException,
        AirflowSkipException,
        DownstreamTasksSkipped,
    )

    try:
        yield
    except (AirflowSkipException, AirflowRescheduleException, DownstreamTasksSkipped):
        raise
    except Exception as exc:
        push_reason(exc, ti)
        raise


def run_task_states(ti: Any) -> dict[str, str]:
    """{task id: state} of every task instance of the current run (mapped ones as `<task id>_<index>`)."""
    states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id])
    return {task: str(state) for task, state in (states.get(ti.run_id) or {}).items()}


def failed_tasks(states: dict[str, str], order: list[str]) -> list[str]:
    """The failed tasks, in the DAG's order (phase by phase), then any others. Pure."""
    failed = {t for t, s in states.items() if s == "failed"}
    return [t for t in order if t in failed] + sorted(failed - set(order))


def run_reason(ti: Any, failed: list[str]) -> str:
    """"<task id> failed: <its reason>" for each failed task, the phase being the task id's group."""
    parts = []
    for task_id in failed:
        why = ti.xcom_pull(task_ids=task_id, key=REASON_KEY)
        parts.append(f"{task_id} failed: {why or 'no reason was recorded, see its log'}")
    return "; ".join(parts)


def done_by_run(ti: Any, services: list[str], states: dict[str, str]) -> dict[str, Any]:
    """What the run did that a rollback undoes, from its XComs and task states: the services whose
    publish ran (their cut-over records carry this run id), the tables frozen, what provision created,
    and the tables each triggered service run promoted (its `promote` XCom)."""
    from airflow.providers.standard.operators.trigger_dagrun import XCOM_RUN_ID

    from dbsplit.airflow.specs import migrate_dag_id

    runs = {s: ti.xcom_pull(task_ids=f"migrate.trigger_{s}", key=XCOM_RUN_ID) for s in services}
    promoted = {s: (ti.xcom_pull(task_ids="promote", dag_id=migrate_dag_id(s), run_id=r) or {}).get("promoted")
                for s, r in runs.items() if r}
    return {
        "run_id": ti.run_id,
        "published": [s for s in services if states.get(f"cut_over.publish_{s}") in ("success", "failed")],
        "frozen": (ti.xcom_pull(task_ids="cut_over.freeze_source") or {}).get("frozen"),
        "provisioned": ti.xcom_pull(task_ids="provision.databases_and_roles") or {},
        "promoted": {s: t for s, t in promoted.items() if t},
    }
