"""A local environment for a plan: one database per connection id on one server, and its Airflow variables."""

from __future__ import annotations

import os
from pathlib import Path

from dbsplit.pg.conn import airflow_conn_env, with_dbname
from dbsplit.plan.models import Plan

PROJECT_ROOT = Path(__file__).resolve().parents[3]


def dbsplit_home() -> Path:
    """Where dbsplit keeps its local state (Airflow home, logs, reports): $DBSPLIT_HOME, default ./.dbsplit
    of the project."""
    return Path(os.environ.get("DBSPLIT_HOME") or PROJECT_ROOT / ".dbsplit").resolve()


def connection_conninfos(plan: Plan, server_url: str) -> dict[str, str]:
    """Each connection id of the plan mapped to the database of the same name on the server."""
    return {conn_id: with_dbname(server_url, conn_id) for conn_id in plan.conn_ids()}


def connection_env(plan: Plan, server_url: str) -> dict[str, str]:
    """AIRFLOW_CONN_<ID> variables defining every connection of the plan on one server."""
    return dict(airflow_conn_env(cid, info) for cid, info in connection_conninfos(plan, server_url).items())
