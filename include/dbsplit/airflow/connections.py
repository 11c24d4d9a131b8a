"""Airflow connections: a connection id resolved into a libpq conninfo, and a service's role connection.

Moved here from pg/conn.py (`resolve`) and pg/access.py (`service_role`, `grant_service`) so that pg/
never imports Airflow: the task callables (runtime, orchestrate) resolve ids here and hand conninfo
strings to the layers below.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from dbsplit.errors import ConnectionConfigError
from dbsplit.pg.access import grant_tables
from dbsplit.pg.conn import conninfo_from_airflow


def resolve(conn_id: str) -> str:
    """The conninfo of an Airflow connection id; call at task run time, never at DAG parse time."""
    from airflow.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception as exc:  # Airflow raises AirflowNotFoundException and runtime errors alike
        raise ConnectionConfigError(
            f"Airflow connection {conn_id!r} is not defined ({exc}). Fix: create it in the Airflow UI, "
            f"or export AIRFLOW_CONN_{conn_id.upper()} (dbsplit env prints them for the embedded server)."
        ) from exc
    return conninfo_from_airflow(conn)


def service_role(target_conn_id: str) -> tuple[str, str | None] | None:
    """(login, password) of the `<target conn id>_role` Airflow connection, None when it is not defined."""
    from airflow.sdk import BaseHook

    try:
        c = BaseHook.get_connection(f"{target_conn_id}_role")
    except Exception:  # noqa: BLE001  (not defined: no role to manage for this service)
        return None
    return (c.login, c.password) if c.login else None


def grant_service(target_conninfo: str, target_conn_id: str, tables: Sequence[tuple[str, str]]) -> list[str]:
    """grant_tables for the role of a service's target connection ((schema, table) pairs), own transaction.

    Nothing happens when the service has no role connection. Returns the changes made."""
    role = service_role(target_conn_id)
    if role is None:
        return []
    with psycopg.connect(target_conninfo) as conn, conn.transaction():
        return grant_tables(conn, role[0], tables)
