"""Render specs into Airflow DAGs: the only module that builds DAGs.

Importing this module imports the Airflow Task SDK only; task bodies import the rest of dbsplit
lazily, so DAG parsing stays cheap and opens no connection.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, TaskGroup, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from dbsplit.errors import DataCheckFailed, DbsplitError
from dbsplit.airflow.failures import REASON_KEY, done_by_run, failed_tasks, reason_on_failure, run_reason, run_task_states
from dbsplit.airflow.links import attach_report_link
from dbsplit.airflow.specs import ServiceDagSpec, migrate_dag_id
from dbsplit.airflow.trigger import TRIGGER_RUN_ID_KEY, TriggerService as _TriggerService  # noqa: F401 (re-exported)

START_DATE = datetime(2024, 1, 1)
ALL_DONE = "all_done"


def _params() -> dict[str, Any]:
    try:
        return dict(get_current_context().get("params") or {})
    except Exception:  # outside a task (tests calling callables directly)
        return {}


def _run(fn_name: str, *args: Any, module: str = "runtime") -> Any:
    """Call dbsplit.airflow.<module>.<fn_name>; data-check and configuration errors fail the task without retry.

    A `chunk_rows` parameter (the service DAG's, set by the orchestrator's trigger) overrides the plan's chunk size.
    """
    import importlib

    params = _params()
    if args and isinstance(args[0], dict) and "service" in args[0] and params.get("chunk_rows"):
        args = ({**args[0], "chunk_rows_override": int(params["chunk_rows"])}, *args[1:])
    try:
        return getattr(importlib.import_module(f"dbsplit.airflow.{module}"), fn_name)(*args)
    except DataCheckFailed as exc:
        raise AirflowFailException(f"validation failed: {exc}") from exc
    except DbsplitError as exc:
        raise AirflowFailException(str(exc)) from exc


def _label(result: dict[str, Any]) -> dict[str, Any]:
    """Expose a mapped task's readable label ("users 3/10") to its map_index_template."""
    get_current_context()["chunk_label"] = result["label"]
    return result


@task(task_id="prepare_target")
def _prepare_target(service: dict[str, Any]) -> dict[str, Any]:
    """Create the target database and state schema; refuse tables dbsplit did not create."""
    return _run("prepare_target", service)


@task(task_id="plan_chunks")
def _plan_chunks(service: dict[str, Any], selector: str | None, run_id: str | None = None) -> list[dict[str, Any]]:
    """Split the table(s) into key-range chunks (or resume an unfinished load)."""
    return _run("plan_chunks", service, selector, run_id)


@task(task_id="extract", map_index_template="{{ chunk_label }}")
def _extract(chunk: dict[str, Any], service: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
    """Copy one chunk of the source table into staging."""
    return _label(_run("extract", service, chunk, run_id))


@task(task_id="transform", map_index_template="{{ chunk_label }}")
def _transform(extracted: dict[str, Any], service: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
    """Apply the plan's transforms to one chunk."""
    return _label(_run("transform", service, extracted, run_id))


@task(task_id="load", map_index_template="{{ chunk_label }}")
def _load(transformed: dict[str, Any], service: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
    """Load one chunk into the target's staging table."""
    return _label(_run("load", service, transformed, run_id))


@task(task_id="validate", map_index_template="{{ table_label }}")
def _validate(selector: str, service: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
    """Check the staged table against the source and record the evidence."""
    get_current_context()["table_label"] = selector
    return _run("validate", service, selector, run_id)


@task(task_id="tables")
def _tables(chunks: list[dict[str, Any]]) -> list[str]:
    """The tables found in the whole-schema routes."""
    from dbsplit.airflow.runtime import table_names

    return table_names(chunks)


@task.branch(task_id="checkpoint", trigger_rule=ALL_DONE)
def _checkpoint(service: dict[str, Any], run_id: str | None = None) -> str:
    """Go/no-go: promote when every table passed, roll back when a check failed, hold when a load failed."""
    return _run("checkpoint", service, run_id)


@task(task_id="promote")
def _promote(service: dict[str, Any]) -> dict[str, Any]:
    """Swap the validated staging tables into place, in one transaction."""
    return _run("promote", service)


@task(task_id="rollback")
def _rollback(service: dict[str, Any]) -> dict[str, Any]:
    """Drop the staging tables; the live tables stay as they were."""
    return _run("rollback", service)


@task(task_id="hold")
def _hold() -> None:
    """Keep the staged chunks so that the next run resumes where this one stopped."""


@task(task_id="finish", trigger_rule=ALL_DONE)
def _finish(service: dict[str, Any], run_id: str | None = None) -> None:
    """Fail the run, naming every failed check, unless every table passed (the reason also goes to XCom
    `reason`, for the orchestrator's trigger task)."""
    try:
        _run("finish", service, run_id)
    except AirflowFailException as exc:
        get_current_context()["ti"].xcom_push(key=REASON_KEY, value=str(exc))
        raise


def service_descriptor(spec: ServiceDagSpec) -> dict[str, Any]:
    """The JSON-able service description every task receives."""
    return {
        "dag_id": spec.dag_id, "service": spec.service, "plan": spec.plan_name, "plan_path": spec.plan_path,
        "source_conn_id": spec.source_conn_id, "target_conn_id": spec.target_conn_id,
        "chunk_rows": spec.chunk_rows, "tables": [t.as_dict() for t in spec.tables],
    }


def _chunk_pipeline(service: dict[str, Any], selector: str | None) -> tuple[Any, Any]:
    """plan_chunks -> extract -> transform -> load (mapped over chunks); returns (chunks, loaded)."""
    chunks = _plan_chunks(service, selector)
    extracted = _extract.partial(service=service).expand(chunk=chunks)
    transformed = _transform.partial(service=service).expand(extracted=extracted)
    return chunks, _load.partial(service=service).expand(transformed=transformed)


def service_pipeline(spec: ServiceDagSpec, service: dict[str, Any]) -> None:
    """prepare -> chunked tables -> validate -> checkpoint -> promote|rollback|hold -> finish, in the current DAG."""
    prepared = _prepare_target(service)
    decision = _checkpoint(service)
    for table in spec.tables:
        with TaskGroup(group_id=table.group_id, tooltip=f"{table.source_schema}.{table.source_table}"):
            chunks, loaded = _chunk_pipeline(service, table.target_table)
            validated = _validate.override(map_index_template=None)(table.target_table, service)
            attach_report_link(validated)
            loaded >> validated
        prepared >> chunks
        validated >> decision
    if spec.whole_schemas:
        with TaskGroup(group_id="whole_schemas", tooltip="tables of " + ", ".join(spec.whole_schemas)):
            chunks, loaded = _chunk_pipeline(service, None)
            validated = _validate.partial(service=service).expand(selector=_tables(chunks))
            loaded >> validated
        prepared >> chunks
        validated >> decision
    outcomes = [_promote(service), _rollback(service), _hold()]
    decision >> outcomes
    outcomes >> _finish(service)


def render_migrate_dag(spec: ServiceDagSpec) -> DAG:
    """dbsplit_migrate_<service>: prepare; per table chunked extract, transform, load, then validate; checkpoint."""
    from airflow.sdk import Param

    with DAG(
        dag_id=spec.dag_id,
        description=spec.description,
        schedule=None,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=["dbsplit", f"plan:{spec.plan_name}", f"service:{spec.service}"],
        default_args={"retries": spec.retries, "retry_delay": timedelta(seconds=30)},
        doc_md=spec.description,
        params={"chunk_rows": Param(None, type=["null", "integer"], minimum=1000,
                                    description="Override the plan's chunk size (rows per chunk).")},
    ) as dag:
        service_pipeline(spec, service_descriptor(spec))
    return dag


def render_plan(specs: list[ServiceDagSpec]) -> dict[str, DAG]:
    """Every DAG of a plan, keyed by dag_id."""
    return {spec.dag_id: render_migrate_dag(spec) for spec in specs}


# ----------------------------------------------------------------------------------------- orchestrator


def _orch(fn_name: str, orch: dict[str, Any], *args: Any) -> Any:
    """Run an orchestrator phase for the selected services (all by default); honour dry_run."""
    params = _params()
    services = list(params.get("services") or orch["services"])
    with reason_on_failure():   # the rollback names this task and why it failed
        return _run(fn_name, orch, services, *args, module="orchestrate")


@task(task_id="checks")
def _preflight(orch: dict[str, Any]) -> dict[str, Any]:
    """Connections, versions, source tables and columns, disk space, unmanaged target tables."""
    return _orch("preflight", orch)


@task(task_id="dumps")
def _backup(orch: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
    """pg_dump of the source tables and of every existing target database, verified; a restore is tested."""
    if _params().get("dry_run"):
        raise AirflowSkipException("dry run: no backup")
    return _orch("backup", orch, run_id)


@task(task_id="databases_and_roles")
def _provision(orch: dict[str, Any]) -> dict[str, Any]:
    """Create databases, schemas and least-privilege roles (idempotent)."""
    if _params().get("dry_run"):
        raise AirflowSkipException("dry run: nothing is created")
    return _orch("provision_targets", orch)


@task(task_id="references", trigger_rule="none_failed")
def _cross_validate(orch: dict[str, Any]) -> dict[str, Any]:
    """Every soft reference across all services resolves."""
    if _params().get("dry_run"):
        raise AirflowSkipException("dry run")
    return _orch("cross_validate", orch)


@task(task_id="freeze_source")
def _freeze(orch: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
    """Guard the migrated source tables against writes (reversible: dbsplit_unfreeze)."""
    if not _params().get("cut_over") or _params().get("dry_run"):
        raise AirflowSkipException("cut-over not requested")
    return _orch("freeze_source", orch, run_id)


@task(task_id="final_sync")
def _final_sync(orch: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
    """After the freeze: the rows the monolith took since each service's load, resynced into place."""
    return _orch("final_sync", orch, run_id)


@task(task_id="final_validation")
def _final_validation(orch: dict[str, Any]) -> dict[str, Any]:
    """After the freeze: the references resolve once more."""
    return _orch("cross_validate", orch)


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
        _run("rollback", orch, did, module="orchestrate")


def orchestrator_descriptor(plan_name: str, plan_path: str, services: list[str]) -> dict[str, Any]:
    return {"plan": plan_name, "plan_path": plan_path, "services": services}


def _services_param(services: list[str], description: str) -> Any:
    """A trigger-form parameter: some of these services, all by default."""
    from airflow.sdk import Param

    return Param(list(services), type="array", items={"type": "string", "enum": list(services)}, description=description)


def render_orchestrator(specs: list[ServiceDagSpec], levels: list[list[str]], dag_id: str = "dbsplit_orchestrator") -> DAG:
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
            "chunk_rows": Param(None, type=["null", "integer"], minimum=1000,
                                description="Override the plan's chunk size (rows per chunk)."),
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
                triggers = [_TriggerService(spec=by_name[name]) for name in level]
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
    return _orch("mark_cut_over", orch, service, run_id)


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
    return _run("unfreeze_source", orch, module="orchestrate")


def render_end_dual_write(plan_name: str, plan_path: str, services: list[str],
                          dag_id: str = "dbsplit_end_dual_write") -> DAG:
    """One task that ends the dual-write period of cut-over services: their resync tracking removed."""
    orch = orchestrator_descriptor(plan_name, plan_path, services)
    with DAG(dag_id=dag_id, schedule=None, start_date=START_DATE, catchup=False,
             description=f"dbsplit plan {plan_name!r}: after a final cut-over, stop tracking service writes "
                         "for the resync",
             tags=["dbsplit", f"plan:{plan_name}"],
             params={"services": _services_param(services, "Cut-over services whose resync tracking ends (default: all).")},
             ) as dag:
        _end_dual_write(orch)
    return dag


@task(task_id="end_dual_write")
def _end_dual_write(orch: dict[str, Any]) -> dict[str, Any]:
    """Drop the resync's change tracking (triggers, change log, key tables, sync state) of the selected
    services' tables; refuses services not cut over."""
    return _orch("end_dual_write", orch)


# ----------------------------------------------------------------------------------------- resync


@task(task_id="resync")
def _resync(service: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
    """Every table of the service with a watermark, together: upsert changed rows, delete removed ones,
    report target-side conflicts; one merge transaction in foreign-key order (logs and returns per table)."""
    return _run("resync", service, run_id)


def render_resync_dag(spec: ServiceDagSpec, schedule: str | None) -> DAG:
    """dbsplit_resync_<service>: keep the service's tables current during the dual-write period."""
    with DAG(
        dag_id=f"dbsplit_resync_{spec.service}", schedule=schedule, start_date=START_DATE, catchup=False,
        max_active_runs=1, description=f"dbsplit plan {spec.plan_name!r}: resync service {spec.service!r} "
                                       "from the monolith (incremental by watermark)",
        tags=["dbsplit", f"plan:{spec.plan_name}", f"service:{spec.service}", "resync"],
        default_args={"retries": spec.retries, "retry_delay": timedelta(seconds=30)},
    ) as dag:
        _resync(service_descriptor(spec))
    return dag
