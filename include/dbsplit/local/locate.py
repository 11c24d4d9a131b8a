"""Where `plan check` finds the databases of a plan: --source-url, AIRFLOW_CONN_<ID>, or the local environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from dbsplit.errors import ConnectionConfigError
from dbsplit.plan.models import Plan
from dbsplit.plan.naming import airflow_key


@dataclass(frozen=True)
class Located:
    """A connection's conninfo and where it came from; `given` when the user named it (URL or variable)."""

    conninfo: str
    origin: str
    given: bool


def locate_source(plan: Plan, url: str | None, environ: Mapping[str, str] = os.environ) -> Located | None:
    """The source of the plan: --source-url, its AIRFLOW_CONN_<ID>, or the local environment's server.
    Raises ConnectionConfigError for a variable that cannot be read."""
    if url:
        return Located(url, "--source-url", True)
    return locate(plan.source.conn_id, environ)


def locate(conn_id: str, environ: Mapping[str, str] = os.environ) -> Located | None:
    """A connection id as the run will resolve it (its variable), or as `dbsplit env` defines it locally."""
    from dbsplit.pg.source_catalog import conninfo_from_env

    variable = f"AIRFLOW_CONN_{airflow_key(conn_id)}"
    conninfo = conninfo_from_env(conn_id, environ)
    if conninfo is not None:
        return Located(conninfo, variable, True)
    server = local_server(environ)
    if server is None:
        return None
    from dbsplit.pg.conn import with_dbname

    return Located(with_dbname(server, conn_id), f"database {conn_id} of the local environment's server "
                                                 f"(as `dbsplit env` defines {variable})", False)


def local_server(environ: Mapping[str, str] = os.environ) -> str | None:
    """$DBSPLIT_PG_URL, or the embedded server when it runs (never started here)."""
    from dbsplit.local import embedded

    return environ.get("DBSPLIT_PG_URL") or embedded.running_url()


def same_database(a: str, b: str) -> bool:
    """Whether two conninfos name one database of one server (host aliases of this machine count as one)."""
    return _identity(a) == _identity(b)


def _identity(conninfo: str) -> tuple[frozenset[str], str, str]:
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(conninfo)
    hosts = str(params.get("host") or params.get("hostaddr") or "/run/postgresql").split(",")
    local = {"localhost", "127.0.0.1", "::1", ""}
    names = frozenset("localhost" if h.strip() in local else h.strip().rstrip("/") for h in hosts)
    port = str(params.get("port") or "5432")
    user = str(params.get("user") or "")
    return names, port, str(params.get("dbname") or user)


def targets_on_the_source(plan: Plan, source: Located,
                          environ: Mapping[str, str] = os.environ) -> list[tuple[str, str]]:
    """(service, origin of its target) for every target that resolves to the source's own database."""
    found = []
    for name, service in plan.services.items():
        try:
            target = locate(service.target.conn_id, environ)
        except ConnectionConfigError:
            continue
        if target is not None and same_database(target.conninfo, source.conninfo):
            found.append((name, target.origin))
    return found
