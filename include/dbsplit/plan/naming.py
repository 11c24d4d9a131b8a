"""Checks of the plan's names that need no database: connection ids as Airflow reads them, reserved schemas."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from dbsplit.plan.document import Issue, Loc

if TYPE_CHECKING:
    from dbsplit.plan.semantic import Scope

# Schemas dbsplit keeps for itself: state and change tracking, staging, the previous tables, the source's freeze guard.
RESERVED_SCHEMAS = ("_dbsplit", "_dbsplit_staging", "_dbsplit_prev", "_dbsplit_guard")
_SYSTEM = ("information_schema", "pg_catalog", "pg_toast")


def airflow_key(conn_id: str) -> str:
    """How Airflow finds a connection defined in the environment: AIRFLOW_CONN_<ID upper-cased>."""
    return conn_id.upper()


def reserved_schema(schema: str) -> str | None:
    """Why a schema name is not the plan's to use, or None."""
    if schema.lower().startswith("_dbsplit"):
        return f"schema `{schema}` is reserved for dbsplit's own tables ({', '.join(RESERVED_SCHEMAS)})"
    if schema in _SYSTEM or schema.lower().startswith("pg_"):
        return f"schema `{schema}` is a PostgreSQL system schema"
    return None


def conn_ids(scope: Scope) -> Iterator[tuple[Loc, str]]:
    """Every connection id of the plan with its location, source first."""
    plan = scope.plan
    if plan.source.conn_id:
        yield ("source", "conn_id"), plan.source.conn_id
    for name, service in plan.services.items():
        if name not in scope.no_target:
            yield ("services", name, "target", "conn_id"), service.target.conn_id
    salt = plan.defaults.mask_salt if scope.defaults_known else None
    if salt is not None and salt.conn_id:
        yield ("defaults", "mask_salt", "conn_id"), salt.conn_id


def connection_issues(scope: Scope) -> Iterator[Issue]:
    """Ids that differ only in case (one AIRFLOW_CONN_ variable for both), and targets that are the source."""
    first: dict[str, tuple[Loc, str]] = {}
    for loc, conn_id in conn_ids(scope):
        key = airflow_key(conn_id)
        seen = first.setdefault(key, (loc, conn_id))
        if seen[1] != conn_id:
            yield Issue(loc, f"connection id `{conn_id}` differs from `{seen[1]}` ({'.'.join(map(str, seen[0]))}) "
                             f"only in case: Airflow reads both from AIRFLOW_CONN_{key}, so they are one connection",
                        f"write `{seen[1]}` if it is the same database, or give this one a distinct id")
    source = scope.plan.source.conn_id
    for loc, conn_id in conn_ids(scope):
        if loc[0] == "services" and source and airflow_key(conn_id) == airflow_key(source):
            yield Issue(loc, f"service '{loc[1]}' would load into the source database (connection `{source}`)",
                        "give the service its own database: a `conn_id` of its own; dbsplit never writes to the source")


def schema_issues(scope: Scope) -> Iterator[Issue]:
    """Reserved and system schemas used as a target, the source's default schema or a routed source schema."""
    plan = scope.plan
    named: list[tuple[Loc, str]] = [(("source", "schema"), plan.source.schema_)]
    for name, svc in plan.services.items():
        if name not in scope.no_target:
            named.append((("services", name, "target", "schema"), svc.target.schema_))
        named += [(("services", name, "schemas", i), schema) for i, schema in enumerate(svc.schemas)]
    for service, index, route in plan.routes():
        if route.source_schema:
            named.append((scope.route_loc(service, index) + ("source",), route.source_schema))
    for loc, schema in named:
        if schema and (why := reserved_schema(schema)):
            where = "load into" if "target" in loc else "read"
            yield Issue(loc, f"{why}; a plan may not {where} it", "choose another schema name")
