"""The valid parts of an invalid plan, so that checks across parts still run (every problem at once)."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from dbsplit.plan.fields import PgName, ServiceName
from dbsplit.plan.models import Defaults, Plan, Resync, Service, SourceConfig, TableRoute, TargetConfig
from dbsplit.plan.semantic import Scope

M = TypeVar("M", bound=BaseModel)
_SERVICE_NAME: TypeAdapter[str] = TypeAdapter(ServiceName)
_SCHEMAS: TypeAdapter[list[str]] = TypeAdapter(list[PgName])


def partial_scope(data: dict[str, Any]) -> Scope:
    """A Scope holding every part of data that is valid on its own (source, defaults, services, routes)."""
    defaults = valid(Defaults, data.get("defaults", {}))
    raw = data.get("services")
    services: dict[str, Service] = {}
    incomplete, no_target = set(), set()
    positions: dict[tuple[str, int], int] = {}
    for name, body in (raw.items() if isinstance(raw, dict) else ()):
        whole = valid(Service, body) if _is_service_name(name) else None
        if whole is not None:
            services[name] = whole
            continue
        incomplete.add(str(name))
        if not (_is_service_name(name) and isinstance(body, dict)):
            continue
        services[name], kept = _partial_service(body)
        positions |= {(name, i): original for i, original in enumerate(kept)}
        if valid(TargetConfig, body.get("target")) is None:
            no_target.add(name)
    plan = Plan.model_construct(version=1, name="plan", namespace=None, source=_source(data.get("source")),
                                defaults=defaults or Defaults(), services=services)
    return Scope(plan, frozenset(incomplete), frozenset(no_target), positions, defaults_known=defaults is not None)


def valid(model: type[M], value: Any) -> M | None:
    """value as a model, or None when it is invalid."""
    try:
        return model.model_validate(value)
    except ValidationError:
        return None


def _source(raw: Any) -> SourceConfig:
    source = valid(SourceConfig, raw)
    if source is not None:
        return source
    schema = raw.get("schema") if isinstance(raw, dict) else None
    return SourceConfig.model_construct(conn_id="", schema_=schema if isinstance(schema, str) else "public")


def _partial_service(body: dict[str, Any]) -> tuple[Service, list[int]]:
    """The service's valid routes (and the indexes they had in the file) under a placeholder target."""
    raw_tables = body.get("tables")
    routes = [(i, valid(TableRoute, t)) for i, t in enumerate(raw_tables if isinstance(raw_tables, list) else [])]
    kept = [(i, r) for i, r in routes if r is not None]
    try:
        schemas = _SCHEMAS.validate_python(body.get("schemas", []))
    except ValidationError:
        schemas = []
    target = valid(TargetConfig, body.get("target")) or TargetConfig.model_construct(conn_id="", schema_="")
    service = Service.model_construct(target=target, schemas=schemas, resync=Resync(), tables=[r for _, r in kept])
    return service, [i for i, _ in kept]


def _is_service_name(name: Any) -> bool:
    try:
        _SERVICE_NAME.validate_python(name)
    except ValidationError:
        return False
    return True
