"""The migration plan: which source tables go to which service database."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

ConnId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", max_length=250)]
ServiceName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=60)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Strict):
    """The monolith: an Airflow connection id and the default schema of its tables."""

    conn_id: ConnId
    schema_: str = Field("public", alias="schema", min_length=1)


class TargetConfig(_Strict):
    """A service's target: an Airflow connection id (its database) and the schema to load into."""

    conn_id: ConnId
    schema_: str = Field("public", alias="schema", min_length=1)


class TableRoute(_Strict):
    """One source table moved to a service, optionally under another name."""

    source: str = Field(min_length=1, description="source table, `table` or `schema.table`")
    name: str | None = Field(None, min_length=1, description="target table name (default: the source name)")

    @property
    def source_schema(self) -> str | None:
        return self.source.split(".", 1)[0] if "." in self.source else None

    @property
    def source_table(self) -> str:
        return self.source.split(".", 1)[1] if "." in self.source else self.source

    @property
    def target_name(self) -> str:
        return self.name or self.source_table


class Service(_Strict):
    """A service: its target database and the source tables it owns."""

    target: TargetConfig
    tables: list[TableRoute] = Field(min_length=1)

    @field_validator("tables", mode="before")
    @classmethod
    def _tables_from_names(cls, value: object) -> object:
        if isinstance(value, list):
            return [{"source": item} if isinstance(item, str) else item for item in value]
        return value


class Defaults(_Strict):
    """Settings every table inherits."""

    retries: int = Field(2, ge=0, le=10)
    chunk_rows: int = Field(100_000, ge=1_000)


class Plan(_Strict):
    """A whole migration plan."""

    version: int = Field(description="plan format version; this release reads version 1")
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+$")]
    source: SourceConfig
    defaults: Defaults = Defaults()
    services: dict[ServiceName, Service] = Field(min_length=1)

    @field_validator("version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value != 1:
            raise ValueError(f"unsupported plan version {value}; this dbsplit reads version 1")
        return value

    @model_validator(mode="after")
    def _each_table_owned_once(self) -> "Plan":
        owners: dict[str, str] = {}
        for service_name, service in self.services.items():
            for route in service.tables:
                key = self.qualified_source(route)
                if key in owners:
                    raise ValueError(
                        f"source table {key} is routed to both {owners[key]!r} and {service_name!r}"
                    )
                owners[key] = service_name
            names = [t.target_name for t in service.tables]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"service {service_name!r} has two target tables named {', '.join(dupes)}")
        return self

    def qualified_source(self, route: TableRoute) -> str:
        """`schema.table` of a route's source table, with the plan's default schema filled in."""
        return f"{route.source_schema or self.source.schema_}.{route.source_table}"

    def conn_ids(self) -> list[str]:
        """Every Airflow connection id the plan uses, source first."""
        ids = [self.source.conn_id] + [s.target.conn_id for s in self.services.values()]
        return list(dict.fromkeys(ids))


def slug(text: str) -> str:
    """An identifier-safe form of a name (for task and group ids)."""
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_").lower() or "t"
