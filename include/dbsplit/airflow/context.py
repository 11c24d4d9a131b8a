"""What a task needs from its Airflow deployment: where staging files live, the plan file (re-read
when it changes), the mask salt (an Airflow Variable or connection field, looked up here only) and a
trigger-form parameter of the running DAG.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from dbsplit.errors import ConnectionConfigError
from dbsplit.plan import Plan, load_plan


def staging_root() -> Any:
    """Where staging files live: $DBSPLIT_STAGING_URL (any ObjectStoragePath URL) or $AIRFLOW_HOME/dbsplit/staging."""
    from airflow.sdk import ObjectStoragePath

    url = os.environ.get("DBSPLIT_STAGING_URL")
    if not url:
        home = Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser().resolve()
        url = f"file://{home}/dbsplit/staging"
    return ObjectStoragePath(url)


def safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def staging_file(dag_id: str, run_id: str, group_id: str, name: str) -> Any:
    path = staging_root() / safe(dag_id) / safe(run_id) / group_id / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def open_path(text: str) -> Any:
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(text) if "://" in text else Path(text)


def plan(path: str) -> Plan:
    """The plan file, re-read when it changed (workers are long-lived; plans are edited between runs).
    The DAGs pass tasks the plan's path only (a whole plan is too big for every task's arguments):
    this is the one place a task reads it."""
    stat = os.stat(path)
    return _plan_version(path, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _plan_version(path: str, mtime_ns: int, size: int) -> Plan:
    return load_plan(path)


def mask_salt(plan: Plan) -> bytes | None:
    """The secret salt of `mask: hash`, from the Airflow variable or connection the plan names."""
    salt = plan.defaults.mask_salt
    if salt is None:
        return None
    if salt.variable:
        from airflow.sdk import Variable

        return str(Variable.get(salt.variable)).encode()
    from airflow.sdk import BaseHook

    assert salt.conn_id is not None, "MaskSalt holds exactly one of variable and conn_id (plan validation)"
    value = getattr(BaseHook.get_connection(salt.conn_id), salt.field or "password")
    return str(value).encode()


def conninfo_if_defined(conn_id: str) -> str | None:
    """The conninfo of a connection, or None when this deployment does not define it (yet)."""
    from dbsplit.airflow import connections as conn  # imports psycopg: not at DAG parse time

    try:
        return conn.resolve(conn_id)
    except ConnectionConfigError:
        return None


def params() -> dict[str, Any]:
    """The running DAG's trigger-form parameters ({} outside a task, as when tests call callables directly)."""
    from airflow.sdk import get_current_context

    try:
        return dict(get_current_context().get("params") or {})
    except Exception:  # outside a task
        return {}
