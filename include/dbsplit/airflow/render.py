"""Render specs into Airflow DAGs: the only module that builds DAGs.

Importing this module imports the Airflow Task SDK only; task bodies import the rest of dbsplit
lazily, so DAG parsing stays cheap and opens no connection.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, TaskGroup, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from dbsplit.airflow.failures import REASON_KEY
from dbsplit.airflow.links import attach_report_link
from dbsplit.airflow.orchestrator_dag import render_end_dual_write, render_orchestrator, render_unfreeze
from dbsplit.airflow.specs import ServiceDagSpec
from dbsplit.airflow.tasks import ALL_DONE, START_DATE, chunk_rows_form_param, chunk_rows_param, label
from dbsplit.airflow.tasks import run_task as _run
from dbsplit.airflow.trigger import TriggerService as _TriggerService
from dbsplit.engine.payloads import ServiceRef, TableRef

__all__ = ["_TriggerService", "_run", "render_end_dual_write", "render_orchestrator", "render_unfreeze"]   # re-exported


@task(task_id="prepare_target")
def _prepare_target(service: dict[str, Any]) -> dict[str, Any]:
    """Create the target database and state schema; refuse tables dbsplit did not create."""
    from dbsplit.airflow import runtime

    return _run(runtime.prepare_target, service)


@task(task_id="plan_chunks")
def _plan_chunks(service: dict[str, Any], selector: str | None, run_id: str | None = None) -> list[dict[str, Any]]:
    """Split the table(s) into key-range chunks (or resume an unfinished load)."""
    from dbsplit.airflow import runtime

    return _run(runtime.plan_chunks, service, selector, run_id, chunk_rows_param())


@task(task_id="extract", map_index_template="{{ chunk_label }}")
def _extract(chunk: dict[str, Any], service: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
    """Copy one chunk of the source table into staging."""
    from dbsplit.airflow import runtime

    return label(_run(runtime.extract, service, chunk, run_id))


@task(task_id="transform", map_index_template="{{ chunk_label }}")
def _transform(extracted: dict[str, Any], service: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
    """Apply the plan's transforms to one chunk."""
    from dbsplit.airflow import runtime

    return label(_run(runtime.transform, service, extracted, run_id))


@task(task_id="load", map_index_template="{{ chunk_label }}")
def _load(transformed: dict[str, Any], service: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
    """Load one chunk into the target's staging table."""
    from dbsplit.airflow import runtime

    return label(_run(runtime.load, service, transformed, run_id))


@task(task_id="validate", map_index_template="{{ table_label }}")
def _validate(selector: str, service: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
    """Check the staged table against the source and record the evidence."""
    context: Any = get_current_context()   # a key the Context TypedDict does not declare, for map_index_template
    context["table_label"] = selector
    from dbsplit.airflow import runtime

    return _run(runtime.validate, service, selector, run_id)


@task(task_id="tables")
def _tables(chunks: list[dict[str, Any]]) -> list[str]:
    """The tables found in the whole-schema routes."""
    from dbsplit.airflow.runtime import table_names

    return table_names(chunks)


@task.branch(task_id="checkpoint", trigger_rule=ALL_DONE)
def _checkpoint(service: dict[str, Any], run_id: str | None = None) -> str:
    """Go/no-go: promote when every table passed, roll back when a check failed, hold when a load failed."""
    from dbsplit.airflow import runtime

    return _run(runtime.checkpoint, service, run_id)


@task(task_id="promote")
def _promote(service: dict[str, Any]) -> dict[str, Any]:
    """Swap the validated staging tables into place, in one transaction."""
    from dbsplit.airflow import runtime

    return _run(runtime.promote, service)


@task(task_id="rollback")
def _rollback(service: dict[str, Any]) -> dict[str, Any]:
    """Drop the staging tables; the live tables stay as they were."""
    from dbsplit.airflow import runtime

    return _run(runtime.rollback, service)


@task(task_id="hold")
def _hold() -> None:
    """Keep the staged chunks so that the next run resumes where this one stopped."""


@task(task_id="finish", trigger_rule=ALL_DONE)
def _finish(service: dict[str, Any], run_id: str | None = None) -> None:
    """Fail the run, naming every failed check, unless every table passed (the reason also goes to XCom
    `reason`, for the orchestrator's trigger task)."""
    from dbsplit.airflow import runtime

    try:
        _run(runtime.finish, service, run_id)
    except AirflowFailException as exc:
        get_current_context()["ti"].xcom_push(key=REASON_KEY, value=str(exc))
        raise


def service_descriptor(spec: ServiceDagSpec) -> dict[str, Any]:
    """The service every task receives: a ServiceRef (engine/payloads.py) in its JSON form, which the DAG's
    task arguments carry."""
    return ServiceRef(dag_id=spec.dag_id, service=spec.service, plan=spec.plan_name, plan_path=spec.plan_path,
                      source_conn_id=spec.source_conn_id, target_conn_id=spec.target_conn_id,
                      tables=[TableRef(**t.as_dict()) for t in spec.tables]).dump()


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
        params={"chunk_rows": chunk_rows_form_param()},
    ) as dag:
        service_pipeline(spec, service_descriptor(spec))
    return dag


def render_plan(specs: list[ServiceDagSpec]) -> dict[str, DAG]:
    """Every DAG of a plan, keyed by dag_id."""
    return {spec.dag_id: render_migrate_dag(spec) for spec in specs}


# ----------------------------------------------------------------------------------------- resync


@task(task_id="resync")
def _resync(service: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
    """Every table of the service with a watermark, together: upsert changed rows, delete removed ones,
    report target-side conflicts; one merge transaction in foreign-key order (logs and returns per table)."""
    from dbsplit.airflow import runtime

    return _run(runtime.resync, service, run_id)


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
