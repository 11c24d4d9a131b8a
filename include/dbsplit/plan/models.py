"""The migration plan: which source tables go to which service database, and how (docs/PLAN-FORMAT.md)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from dbsplit.model.resolved import plan_namespace
from dbsplit.plan.fields import ConnId, PgName, PlanName, Schedule, ServiceName, Strict, fail
from dbsplit.plan.routes import MAX_CHUNK_ROWS, MAX_REJECTED_ROWS, MIN_CHUNK_ROWS, AddColumn, TableRoute, Transform

__all__ = ["AddColumn", "Defaults", "MaskSalt", "Plan", "Resync", "Service", "SourceConfig", "TableRoute",
           "TargetConfig", "Transform", "slug"]


class SourceConfig(Strict):
    """The monolith: an Airflow connection id and the default schema of its tables."""

    conn_id: ConnId
    schema_: PgName = Field("public", alias="schema")


class TargetConfig(Strict):
    """A service's target: an Airflow connection id (its database) and the schema to load into."""

    conn_id: ConnId
    schema_: PgName = Field("public", alias="schema")


class MaskSalt(Strict):
    """Where the salt of `mask: hash` is kept: an Airflow variable, or a field of an Airflow connection."""

    variable: str | None = Field(None, min_length=1)
    conn_id: ConnId | None = None
    field: str = Field("password", min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _not_the_secret(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise fail("mask_salt must say where the salt is kept, not hold the salt itself",
                       "write {variable: dbsplit_mask_salt} or {conn_id: some_conn, field: password}")
        return value

    @model_validator(mode="after")
    def _one_place(self) -> "MaskSalt":
        if (self.variable is None) == (self.conn_id is None):
            raise fail("mask_salt needs exactly one of `variable` or `conn_id`",
                       "write {variable: dbsplit_mask_salt} or {conn_id: some_conn, field: password}")
        if self.variable is not None and "field" in self.model_fields_set:
            raise fail("`field` goes with `conn_id`, not with `variable`", "remove `field`")
        return self


class Defaults(Strict):
    """Settings every table inherits."""

    retries: int = Field(2, ge=0, le=10)
    chunk_rows: int = Field(100_000, ge=MIN_CHUNK_ROWS, le=MAX_CHUNK_ROWS)
    max_rejected_rows: int = Field(0, ge=0, le=MAX_REJECTED_ROWS)
    mask_salt: MaskSalt | None = None


class Resync(Strict):
    """When and how a service's resync DAG runs."""

    schedule: Schedule | None = "0 2 * * *"
    on_conflict: Literal["source_wins", "stop"] = "source_wins"


class Service(Strict):
    """A service: its target database and the source tables (or whole schemas) it owns."""

    target: TargetConfig
    schemas: list[PgName] = Field(default_factory=list)
    resync: Resync = Resync()
    tables: list[TableRoute] = Field(default_factory=list)

    @model_validator(mode="after")
    def _owns_something(self) -> "Service":
        if not self.tables and not self.schemas:
            raise fail("the service has no tables",
                       "list its source tables under `tables`, or whole source schemas under `schemas`")
        return self

    @property
    def depends_on(self) -> tuple[str, ...]:
        """Services this one references, in plan order (may include itself; order.py ignores that)."""
        return tuple(dict.fromkeys(s for route in self.tables for s in route.referenced_services))


class Plan(Strict):
    """A whole migration plan."""

    version: int = Field(description="plan format version; this release reads version 1")
    name: PlanName
    namespace: uuid.UUID | None = Field(None, strict=False)  # YAML gives the UUID as text
    source: SourceConfig
    defaults: Defaults = Defaults()
    services: dict[ServiceName, Service] = Field(min_length=1)

    @field_validator("version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value != 1:
            raise fail(f"unsupported plan version {value}; this dbsplit reads version 1", "write `version: 1`")
        return value

    @property
    def namespace_uuid(self) -> uuid.UUID:
        """The UUID namespace of uuid_key columns: `namespace`, or derived from the plan name."""
        return plan_namespace(self.name, str(self.namespace) if self.namespace else None)

    def qualified_source(self, route: TableRoute) -> str:
        """`schema.table` of a route's source table, with the plan's default schema filled in."""
        return f"{route.source_schema or self.source.schema_}.{route.source_table}"

    def routes(self) -> Iterator[tuple[str, int, TableRoute]]:
        """(service, index in its `tables`, route) for every table route, in plan order."""
        for name, service in self.services.items():
            for index, route in enumerate(service.tables):
                yield name, index, route

    def referenced_route(self, reference: str) -> TableRoute | None:
        """The route a `<service>.<target table>` reference points at (None for whole-schema tables)."""
        service, table = reference.split(".", 1)
        owner = self.services.get(service)
        return next((r for r in owner.tables if r.target_name == table), None) if owner else None

    def chunk_rows_for(self, route: TableRoute) -> int:
        return route.chunk_rows or self.defaults.chunk_rows

    def max_rejected_rows_for(self, route: TableRoute) -> int:
        return self.defaults.max_rejected_rows if route.max_rejected_rows is None else route.max_rejected_rows

    def conn_ids(self) -> list[str]:
        """Every Airflow connection id the plan uses, source first."""
        ids = [self.source.conn_id] + [s.target.conn_id for s in self.services.values()]
        return list(dict.fromkeys(ids))


def slug(text: str) -> str:
    """An identifier-safe form of a name (for task and group ids)."""
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_").lower() or "t"
