"""Dependencies between services that come from the source catalog's foreign keys (plan check and plan show)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING

from dbsplit.plan.document import Issue, Loc
from dbsplit.plan.models import Plan, TableRoute
from dbsplit.plan.order import describe_cycle, find_cycles, reference_edges

if TYPE_CHECKING:
    from dbsplit.pg.source_catalog import SourceCatalog


@dataclass(frozen=True)
class FkEdge:
    """Service `service` must follow `depends_on`: a kept foreign key of one of its tables points into it."""

    service: str
    depends_on: str
    loc: Loc
    foreign_key: str   # e.g. `app.orders (user_id) -> app.users`

    @property
    def edge(self) -> tuple[str, str]:
        """(service, the service it follows), as migration_levels() takes it."""
        return self.service, self.depends_on


def owned_routes(plan: Plan, cat: SourceCatalog) -> Iterator[tuple[str, str, Loc, TableRoute]]:
    """(service, qualified source table, location, route) for listed tables and the tables of whole schemas."""
    listed = {plan.qualified_source(r) for _, _, r in plan.routes()}
    for service, index, route in plan.routes():
        yield service, plan.qualified_source(route), ("services", service, "tables", index), route
    for name, svc in plan.services.items():
        for i, schema in enumerate(svc.schemas):
            for table in cat.tables(schema):
                if f"{schema}.{table}" not in listed:
                    yield name, f"{schema}.{table}", ("services", name, "schemas", i), TableRoute(
                        source=f"{schema}.{table}")


def catalog_edges(plan: Plan, cat: SourceCatalog) -> list[FkEdge]:
    """Foreign keys whose columns the plan keeps and whose referenced table another service owns."""
    routes = list(owned_routes(plan, cat))
    owner = {qualified: service for service, qualified, _, _ in reversed(routes)}
    edges = []
    for service, qualified, loc, route in routes:
        info = cat.table(*qualified.split(".", 1))
        for fk in info.foreign_keys if info is not None else ():
            referenced = f"{fk.ref_schema}.{fk.ref_table}"
            depends_on = owner.get(referenced)
            kept = all(route.target_column(c) and (route.columns is None or c in route.columns) for c in fk.columns)
            if depends_on and depends_on != service and kept:
                edges.append(FkEdge(service, depends_on, loc,
                                    f"{qualified} ({', '.join(fk.columns)}) -> {referenced}"))
    return edges


def cycle_issues(plan: Plan, edges: list[FkEdge]) -> list[Issue]:
    """Cycles between services that need at least one catalog foreign key (explicit cycles are found earlier)."""
    explicit = reference_edges(plan)
    issues = []
    for cycle in find_cycles(list(plan.services), explicit + [e.edge for e in edges]):
        pairs = list(pairwise(cycle))
        behind = [e for e in edges if e.edge in pairs]
        if not behind or all(pair in explicit for pair in pairs):
            continue
        keys = "; ".join(dict.fromkeys(e.foreign_key for e in behind))
        issues.append(Issue(behind[0].loc, f"{describe_cycle(cycle)} through the source's foreign keys ({keys})",
                            "move the tables that reference each other into one service, or drop the foreign-key "
                            "column (transforms: {column: drop}) on one side"))
    return issues
