"""What every task callable shares: how it calls a runtime function (errors fail the task without
retry), the run's parameters, and the constants of the DAGs' arguments.

Task callables import their runtime module inside the task body (`from dbsplit.airflow import
runtime`), then pass the function itself to run_task: DAG parsing never imports psycopg, pandas or GX.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from airflow.sdk import get_current_context
from airflow.sdk.exceptions import AirflowFailException

from dbsplit.airflow.context import params
from dbsplit.errors import DataCheckFailed, DbsplitError
from dbsplit.plan.routes import MIN_CHUNK_ROWS

START_DATE = datetime(2024, 1, 1)
ALL_DONE = "all_done"

T = TypeVar("T")


def run_task(fn: Callable[..., T], *args: Any) -> T:
    """Call a runtime function; every DbsplitError fails the task without retry (a retry meets the same
    problem), a failed data check with "validation failed: " before its message."""
    try:
        return fn(*args)
    except DataCheckFailed as exc:
        raise AirflowFailException(f"validation failed: {exc}") from exc
    except DbsplitError as exc:
        raise AirflowFailException(str(exc)) from exc


def chunk_rows_param() -> int | None:
    """The run's `chunk_rows` parameter (the service DAG's, set by the orchestrator's trigger), overriding the
    plan's chunk size; None when not given."""
    value = params().get("chunk_rows")
    return int(value) if value else None


def chunk_rows_form_param() -> Any:
    """The trigger-form parameter that overrides the plan's chunk size."""
    from airflow.sdk import Param

    return Param(None, type=["null", "integer"], minimum=MIN_CHUNK_ROWS,
                 description="Override the plan's chunk size (rows per chunk).")


def label(result: dict[str, Any]) -> dict[str, Any]:
    """Expose a mapped task's readable label ("users 3/10") to its map_index_template."""
    context: Any = get_current_context()   # a key the Context TypedDict does not declare
    context["chunk_label"] = result["label"]
    return result
