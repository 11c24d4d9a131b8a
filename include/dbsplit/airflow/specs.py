"""A neutral graph of what the DAGs must do, built from the plan alone (no Airflow, no database)."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

from dbsplit.plan.models import Plan, slug


@dataclass(frozen=True)
class TableSpec:
    """One table's migration: where it comes from, where it goes, and its task group id."""

    group_id: str
    source_schema: str
    source_table: str
    target_schema: str
    target_table: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class ServiceDagSpec:
    """The migrate DAG of one service."""

    dag_id: str
    plan_name: str
    service: str
    source_conn_id: str
    target_conn_id: str
    retries: int
    tables: tuple[TableSpec, ...]
    plan_path: str = ""
    whole_schemas: tuple[str, ...] = ()   # source schemas routed whole: their tables are known at run time only

    @property
    def description(self) -> str:
        return f"dbsplit plan {self.plan_name!r}: migrate {len(self.tables)} table(s) into service {self.service!r}"


def group_id_for(name: str, taken: set[str]) -> str:
    """A task-group id for a table name: readable, valid for Airflow, unique within the DAG."""
    gid = slug(name)
    if gid != name or gid in taken:
        gid = f"{gid}_{hashlib.sha1(name.encode()).hexdigest()[:6]}"
    taken.add(gid)
    return gid


def migrate_dag_id(service: str) -> str:
    return f"dbsplit_migrate_{service}"


def service_specs(plan: Plan, plan_path: str = "") -> list[ServiceDagSpec]:
    """One migrate-DAG spec per service, tables in plan order (plan_path: where tasks re-read the plan)."""
    specs = []
    for name, service in plan.services.items():
        taken: set[str] = set()
        tables = tuple(
            TableSpec(
                group_id=group_id_for(route.target_name, taken),
                source_schema=route.source_schema or plan.source.schema_,
                source_table=route.source_table,
                target_schema=service.target.schema_,
                target_table=route.target_name,
            )
            for route in service.tables
        )
        specs.append(
            ServiceDagSpec(
                dag_id=migrate_dag_id(name),
                plan_name=plan.name,
                service=name,
                source_conn_id=plan.source.conn_id,
                target_conn_id=service.target.conn_id,
                retries=plan.defaults.retries,
                tables=tables,
                plan_path=plan_path,
                whole_schemas=tuple(service.schemas),
            )
        )
    return specs
