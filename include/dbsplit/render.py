"""Render specs into Airflow DAGs: the only module that builds DAGs.

Importing this module imports the Airflow Task SDK only; task bodies import the rest of dbsplit
lazily, so DAG parsing stays cheap and opens no connection.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, TaskGroup, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from dbsplit.errors import DataCheckFailed, DbsplitError
from dbsplit.specs import ServiceDagSpec

START_DATE = datetime(2024, 1, 1)
ALL_DONE = "all_done"


def _run(fn_name: str, *args: Any) -> Any:
    """Call dbsplit.runtime.<fn_name>; data-check and configuration errors fail the task without retry."""
    from dbsplit import runtime

    try:
        return getattr(runtime, fn_name)(*args)
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
    from dbsplit.runtime import table_names

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
    """Fail the run, naming every failed check, unless every table passed."""
    _run("finish", service, run_id)


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


def render_migrate_dag(spec: ServiceDagSpec) -> DAG:
    """dbsplit_migrate_<service>: prepare; per table chunked extract, transform, load, then validate; checkpoint."""
    service = service_descriptor(spec)
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
    ) as dag:
        prepared = _prepare_target(service)
        decision = _checkpoint(service)
        for table in spec.tables:
            with TaskGroup(group_id=table.group_id, tooltip=f"{table.source_schema}.{table.source_table}"):
                chunks, loaded = _chunk_pipeline(service, table.target_table)
                validated = _validate.override(map_index_template=None)(table.target_table, service)
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
    return dag


def render_plan(specs: list[ServiceDagSpec]) -> dict[str, DAG]:
    """Every DAG of a plan, keyed by dag_id."""
    return {spec.dag_id: render_migrate_dag(spec) for spec in specs}
