"""The "Validation report" button of the validate tasks: a link to the table's page in the reports app.

Airflow 3 computes operator extra links in the worker when the task finishes (the task runner calls
`get_link` and stores the URL in XCom under `xcom_key`); the UI reads it from there. So the link must
be attached to the task's operator in the DAG file, not to a plugin:

    validated = _validate.override(map_index_template=None)(table.target_table, service)
    attach_report_link(validated)

For a mapped validate task (whole-schema routes) Airflow 3.3 rebuilds the operator of each map
index from its class (MappedOperator.unmap), which drops links set on the instance: the button is
listed but stays empty there; the run's tab and the navigation item still reach the report.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from airflow.sdk import BaseOperatorLink

PREFIX = "dbsplit-reports"  # dbsplit.airflow.reports_app.PREFIX without its slash (not imported: no FastAPI in workers)


def _root_path() -> str:
    """The path of [api] base_url, with a trailing slash ("/" unless Airflow is served under a path)."""
    try:
        from airflow.sdk import conf

        base_url = conf.get("api", "base_url", fallback="") or ""
    except Exception:  # noqa: BLE001 - no configuration: Airflow at the root
        base_url = ""
    path = urlsplit(base_url).path or "/"
    return path if path.endswith("/") else path + "/"


def report_url(dag_id: str, run_id: str, table: str | None = None) -> str:
    """The run's report page, or one table's (a target table name, with or without its schema)."""
    url = f"{_root_path()}{PREFIX}/runs/{quote(dag_id, safe='')}/{quote(run_id, safe='')}/"
    return f"{url}tables/{quote(table, safe='')}" if table else url


def _selector(operator: Any) -> str | None:
    """The table the validate task checks: its `selector` argument (keyword, or first positional)."""
    kwargs = getattr(operator, "op_kwargs", None) or {}
    value = kwargs.get("selector")
    if value is None:
        args = getattr(operator, "op_args", None) or ()
        value = args[0] if args else None
    return value if isinstance(value, str) and value else None


class ValidationReportLink(BaseOperatorLink):
    """Opens the validated table's report (the run's report when the table is not known)."""

    name = "Validation report"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return report_url(ti_key.dag_id, ti_key.run_id, _selector(operator))


def attach_report_link(task: Any) -> Any:
    """Add the link to a task (an operator or the XComArg a @task call returns); returns `task`."""
    operator = getattr(task, "operator", task)
    links = [link for link in operator.operator_extra_links if not isinstance(link, ValidationReportLink)]
    operator.operator_extra_links = [*links, ValidationReportLink()]
    return task
