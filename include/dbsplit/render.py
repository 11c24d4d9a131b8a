"""Render specs into Airflow DAGs: the only module that builds DAGs.

Importing this module imports the Airflow Task SDK only; task bodies import the rest of dbsplit
lazily, so DAG parsing stays cheap and opens no connection.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, TaskGroup, task
from airflow.sdk.exceptions import AirflowFailException

from dbsplit.errors import DataCheckFailed, DbsplitError
from dbsplit.specs import ServiceDagSpec

START_DATE = datetime(2024, 1, 1)


def _run(fn_name: str, *args: Any) -> Any:
    """Call dbsplit.runtime.<fn_name>; data-check and configuration errors fail the task without retry."""
    from dbsplit import runtime

    try:
        return getattr(runtime, fn_name)(*args)
    except DataCheckFailed as exc:
        raise AirflowFailException(f"validation failed: {exc}") from exc
    except DbsplitError as exc:
        raise AirflowFailException(str(exc)) from exc


@task(task_id="prepare_target")
def _prepare_target(service: dict[str, Any]) -> dict[str, Any]:
    """Create the target database and tables."""
    return _run("prepare_target", service)


@task(task_id="extract")
def _extract(service: dict[str, Any], table: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
    """Copy the source table into staging."""
    return _run("extract", service, table, run_id)


@task(task_id="transform")
def _transform(service: dict[str, Any], table: dict[str, Any], extracted: dict[str, Any]) -> dict[str, Any]:
    """Apply the plan's transforms."""
    return _run("transform", service, table, extracted)


@task(task_id="load")
def _load(service: dict[str, Any], table: dict[str, Any], transformed: dict[str, Any]) -> dict[str, Any]:
    """Load staged rows into the target."""
    return _run("load", service, table, transformed)


@task(task_id="validate")
def _validate(service: dict[str, Any], table: dict[str, Any], extracted: dict[str, Any],
              loaded: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
    """Check the target against the source and record the evidence."""
    return _run("validate", service, table, extracted, loaded, run_id)


def service_descriptor(spec: ServiceDagSpec) -> dict[str, Any]:
    """The JSON-able service description every task receives."""
    return {
        "dag_id": spec.dag_id, "service": spec.service, "plan": spec.plan_name,
        "source_conn_id": spec.source_conn_id, "target_conn_id": spec.target_conn_id,
        "tables": [t.as_dict() for t in spec.tables],
    }


def render_migrate_dag(spec: ServiceDagSpec) -> DAG:
    """dbsplit_migrate_<service>: prepare the target, then per table extract, transform, load, validate."""
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
        for table in spec.tables:
            with TaskGroup(group_id=table.group_id, tooltip=f"{table.source_schema}.{table.source_table}"):
                t = table.as_dict()
                extracted = _extract(service, t, run_id="{{ run_id }}")
                loaded = _load(service, t, _transform(service, t, extracted))
                _validate(service, t, extracted, loaded, run_id="{{ run_id }}")
            prepared >> extracted
    return dag


def render_plan(specs: list[ServiceDagSpec]) -> dict[str, DAG]:
    """Every DAG of a plan, keyed by dag_id."""
    return {spec.dag_id: render_migrate_dag(spec) for spec in specs}
