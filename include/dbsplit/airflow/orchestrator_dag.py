"""Render the plan-wide DAGs: the orchestrator (preflight, backup, provision, the service DAGs
triggered level by level, cross-service validation, optional cut-over, rollback), unfreeze and
end_dual_write. Task bodies import airflow/orchestrate.py lazily, so DAG parsing stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from types import ModuleType
from typing import Any

from airflow.sdk import DAG, TaskGroup, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException

from dbsplit.airflow.context import params as _params
from dbsplit.airflow.failures import done_by_run, failed_tasks, reason_on_failure, run_reason, run_task_states
from dbsplit.airflow.specs import ServiceDagSpec
from dbsplit.airflow.tasks import ALL_DONE, START_DATE, chunk_rows_form_param, run_task
from dbsplit.airflow.trigger import TriggerService


def _orchestrate() -> ModuleType:
    """airflow/orchestrate.py, imported when a task runs (it imports psycopg)."""
    from dbsplit.airflow import orchestrate

    return orchestrate


def _orch(phase: Callable[..., Any], orch: dict[str, Any], *args: Any) -> Any:
    """Run an orchestrator phase (a function of airflow/orchestrate.py) for the selected services (all by default)."""
    services = list(_params().get("services") or orch["services"])
    with reason_on_failure():   # the rollback names this task and why it failed
        return run_task(phase, orch, services, *args)


@task(task_id="checks")
def _preflight(orch: dict[str, Any]) -> dict[str, Any]:
    """Connections, versions, source tables and columns, disk space, unmanaged target tables."""
    return _orch(_orchestrate().preflight, orch)


@task(task_id="dumps")
def _backup(orch: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
    """pg_dump of the source tables and of every existing target database, verified; a restore is tested."""
    if _params().get("dry_run"):
        raise AirflowSkipException("dry run: no backup")
    return _orch(_orchestrate().backup, orch, run_id)


@task(task_id="databases_and_roles")
def _provision(orch: dict[str, Any]) -> dict[str, Any]:
    """Create databases, schemas and least-privilege roles (idempotent)."""
    if _params().get("dry_run"):
        raise AirflowSkipException("dry run: nothing is created")
    return _orch(_orchestrate().provision_targets, orch)


@task(task_id="references", trigger_rule="none_failed")
def _cross_validate(orch: dict[str, Any]) -> dict[str, Any]:
    """Every soft reference across all services resolves."""
    if _params().get("dry_run"):
        raise AirflowSkipException("dry run")
    return _orch(_orchestrate().cross_validate, orch)


@task(task_id="freeze_source")
def _freeze(orch: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
    """Guard the migrated source tables against writes (reversible: dbsplit_unfreeze)."""
    if not _params().get("cut_over") or _params().get("dry_run"):
        raise AirflowSkipException("cut-over not requested")
    return _orch(_orchestrate().freeze_source, orch, run_id)


@task(task_id="final_sync")
def _final_sync(orch: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
    """After the freeze: the rows the monolith took since each service's load, resynced into place."""
    return _orch(_orchestrate().final_sync, orch, run_id)


@task(task_id="final_validation")
def _final_validation(orch: dict[str, Any]) -> dict[str, Any]:
    """After the freeze: the references resolve once more."""
    return _orch(_orchestrate().cross_validate, orch)


@task(task_id="rollback", trigger_rule=ALL_DONE)
def _orch_rollback(orch: dict[str, Any]) -> None:
    """When any task of the run failed (every task is upstream): undo what the run did (cut-over
    records, freeze, promotions found from the triggered runs' promote XComs, what provision created)
    and fail the run, naming each failed task and its reason. Skipped when nothing failed."""
    ti = get_current_context()["ti"]
    states = run_task_states(ti)
    failed = failed_tasks(states, list(ti.task.dag.task_ids))
    if not failed:
        raise AirflowSkipException("no task failed: nothing to roll back")
    did = {"reason": run_reason(ti, failed)} | done_by_run(ti, orch["services"], states)
    with reason_on_failure(ti):
        run_task(_orchestrate().rollback, orch, did)


def orchestrator_descriptor(plan_name: str, plan_path: str, services: list[str]) -> dict[str, Any]:
    return {"plan": plan_name, "plan_path": plan_path, "services": services}


def _services_param(services: list[str], description: str) -> Any:
    """A trigger-form parameter: some of these services, all by default."""
    from airflow.sdk import Param

    return Param(list(services), type="array", items={"type": "string", "enum": list(services)},
                 description=description)


def render_orchestrator(specs: list[ServiceDagSpec], levels: list[list[str]],
                        dag_id: str = "dbsplit_orchestrator") -> DAG:
    """The parent DAG: preflight, backup, provision, migrate (levels in dependency order), cross-service
    validation, optional cut-over; any failure runs the rollback, which fails the run with the reason."""
    from airflow.sdk import Asset, Param

    by_name = {s.service: s for s in specs}
    orch = orchestrator_descriptor(specs[0].plan_name, specs[0].plan_path, list(by_name))
    with DAG(
        dag_id=dag_id, schedule=None, start_date=START_DATE, catchup=False, max_active_runs=1,
        description=f"dbsplit plan {specs[0].plan_name!r}: migrate every service in stages, with rollback",
        tags=["dbsplit", f"plan:{specs[0].plan_name}", "orchestrator"],
        default_args={"retries": specs[0].retries, "retry_delay": timedelta(seconds=30)},
        params={
            "services": _services_param(list(by_name), "Services to migrate (default: all)."),
            "dry_run": Param(False, type="boolean", description="Only run the preflight checks."),
            "chunk_rows": chunk_rows_form_param(),
            "cut_over": Param(False, type="boolean",
                              description="Freeze writes to the migrated source tables at the end."),
        },
    ) as dag:
        with TaskGroup("preflight"):
            phase = _preflight(orch)
        with TaskGroup("backup"):
            phase = phase >> _backup(orch)
        with TaskGroup("provision"):
            phase = phase >> _provision(orch)
        ends: list[Any] = [phase]
        with TaskGroup("migrate", tooltip="trigger the service DAGs level by level and wait for them"):
            for level in levels:
                triggers = [TriggerService(spec=by_name[name]) for name in level]
                for trigger in triggers:
                    ends >> trigger
                ends = triggers
        with TaskGroup("cross_service_validation"):
            checked = _cross_validate(orch)
        ends >> checked
        with TaskGroup("cut_over"):
            frozen = _freeze(orch)
            synced = _final_sync(orch)
            final = _final_validation(orch)
            published = [_publish.override(task_id=f"publish_{n}", outlets=[Asset(f"dbsplit://{orch['plan']}/{n}")])(
                orch, n) for n in by_name]
            checked >> frozen >> synced >> final >> published
        undo = _orch_rollback(orch)   # all_done over every task: it runs once all are done, acts if any failed
        [t for t in dag.tasks if t.task_id != "rollback"] >> undo
    return dag


@task(task_id="publish")
def _publish(orch: dict[str, Any], service: str, run_id: str | None = None) -> dict[str, Any]:
    """Record the cut-over in the service's database (a resync then refuses it) and emit its Asset
    event: its database is now the system of record. Skipped for a service not selected."""
    if service not in list(_params().get("services") or orch["services"]):
        raise AirflowSkipException(f"service {service} not selected for this run")
    return _orch(_orchestrate().mark_cut_over, orch, service, run_id)


def render_unfreeze(plan_name: str, plan_path: str, services: list[str], dag_id: str = "dbsplit_unfreeze") -> DAG:
    """One task that removes the cut-over write guards from the plan's source tables."""
    orch = orchestrator_descriptor(plan_name, plan_path, services)
    with DAG(dag_id=dag_id, schedule=None, start_date=START_DATE, catchup=False,
             description=f"dbsplit plan {plan_name!r}: allow writes to the source tables again",
             tags=["dbsplit", f"plan:{plan_name}"]) as dag:
        _unfreeze(orch)
    return dag


@task(task_id="unfreeze_source")
def _unfreeze(orch: dict[str, Any]) -> dict[str, Any]:
    """Remove the write guards from every source table of the plan."""
    return run_task(_orchestrate().unfreeze_source, orch)


def render_end_dual_write(plan_name: str, plan_path: str, services: list[str],
                          dag_id: str = "dbsplit_end_dual_write") -> DAG:
    """One task that ends the dual-write period of cut-over services: their resync tracking removed."""
    orch = orchestrator_descriptor(plan_name, plan_path, services)
    with DAG(dag_id=dag_id, schedule=None, start_date=START_DATE, catchup=False,
             description=f"dbsplit plan {plan_name!r}: after a final cut-over, stop tracking service writes "
                         "for the resync",
             tags=["dbsplit", f"plan:{plan_name}"],
             params={"services": _services_param(
                 services, "Cut-over services whose resync tracking ends (default: all).")},
             ) as dag:
        _end_dual_write(orch)
    return dag


@task(task_id="end_dual_write")
def _end_dual_write(orch: dict[str, Any]) -> dict[str, Any]:
    """Drop the resync's change tracking (triggers, change log, key tables, sync state) of the selected
    services' tables; refuses services not cut over."""
    return _orch(_orchestrate().end_dual_write, orch)
