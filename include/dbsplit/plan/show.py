"""A plan as text: services in migration order, their targets, tables and DAGs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from dbsplit.plan.models import Plan, Service, TableRoute
from dbsplit.plan.order import migration_levels

if TYPE_CHECKING:
    from dbsplit.plan.fkedges import FkEdge

ORCHESTRATOR_DAG_ID = "dbsplit_orchestrator"


def dag_ids(service: str) -> tuple[str, str]:
    """The migrate and resync DAG ids of a service."""
    return f"dbsplit_migrate_{service}", f"dbsplit_resync_{service}"


def describe(plan: Plan, edges: Sequence[FkEdge] = (), source_note: str | None = None) -> list[str]:
    """Lines describing the plan; levels follow the migration order (a level's services are independent).
    edges: dependencies from the source's foreign keys, counted in the order and shown with their keys."""
    lines = [f"plan '{plan.name}': source {plan.source.conn_id} (default schema {plan.source.schema_}), "
             f"UUID namespace {plan.namespace_uuid}",
             f"DAG {ORCHESTRATOR_DAG_ID} migrates the levels in order"]
    if source_note:
        lines.append("order from the plan's references and the source's foreign keys" if
                     source_note.startswith("checked") else "order from the plan's references only")
        lines[-1] += f" ({source_note})"
    for number, level in enumerate(migration_levels(plan, [e.edge for e in edges]), start=1):
        parallel = ", independent of each other" if len(level) > 1 else ""
        lines.append(f"level {number} ({len(level)} service{'s' if len(level) > 1 else ''}{parallel}):")
        for name in level:
            lines += _service(plan, name, plan.services[name], [e for e in edges if e.service == name])
    return lines


def _service(plan: Plan, name: str, service: Service, edges: Sequence[FkEdge] = ()) -> list[str]:
    migrate, resync = dag_ids(name)
    schedule = service.resync.schedule or "on demand"
    lines = [f"  {name} -> {service.target.conn_id}/{service.target.schema_}",
             f"    DAGs: {migrate}, {resync} (schedule {schedule}, on_conflict {service.resync.on_conflict})"]
    after = list(dict.fromkeys([s for s in service.depends_on if s != name] + [e.depends_on for e in edges]))
    if after:
        lines.append(f"    after: {', '.join(after)}")
    lines += [f"      after {e.depends_on}: source foreign key {e.foreign_key}" for e in edges]
    lines += [f"    schema {schema}.* -> every table, found at run time" for schema in service.schemas]
    for route in service.tables:
        lines += _route(plan, route)
    return lines


def _route(plan: Plan, route: TableRoute) -> list[str]:
    options = [f"columns {', '.join(route.columns)}" if route.columns else "",
               f"filter {route.filter}" if route.filter else "", "uuid_key" if route.uuid_key else "",
               f"watermark {route.watermark}" if route.watermark else "",
               f"custom {route.custom}" if route.custom else ""]
    shown = "; ".join(o for o in options if o)
    lines = [f"    {plan.qualified_source(route)} -> {route.target_name}" + (f" [{shown}]" if shown else "")]
    if route.transforms:
        lines.append("      transforms: " + "; ".join(f"{c} {t.describe()}" for c, t in route.transforms.items()))
    if route.add_columns:
        lines.append("      add_columns: " + "; ".join(
            f"{c} {a.type} = {a.default or 'NULL'}" for c, a in route.add_columns.items()))
    if route.references:
        lines.append("      references: " + "; ".join(f"{c} -> {r}" for c, r in route.references.items()))
    return lines
