"""Checks across the plan that need no database: routing, targets, references, cycles, salts."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from dbsplit.plan.columns import route_column_issues
from dbsplit.plan.document import Issue, Loc
from dbsplit.plan.fields import did_you_mean
from dbsplit.plan.models import Plan, TableRoute
from dbsplit.plan.naming import airflow_key, connection_issues, schema_issues
from dbsplit.plan.order import describe_cycle, find_cycles, reference_edges


@dataclass(frozen=True)
class Scope:
    """A plan to check, possibly partial: parts that failed validation are left out (see partial.py)."""

    plan: Plan
    incomplete: frozenset[str] = frozenset()    # services with a part left out: absent tables are not errors
    no_target: frozenset[str] = frozenset()     # services whose target is invalid (a placeholder stands in)
    positions: Mapping[tuple[str, int], int] = field(default_factory=dict)  # kept route index -> index in file
    defaults_known: bool = True

    def route_loc(self, service: str, index: int) -> Loc:
        return ("services", service, "tables", self.positions.get((service, index), index))

    def targeted_routes(self) -> Iterator[tuple[str, int, TableRoute]]:
        """Routes of the services whose target is known."""
        return ((s, i, r) for s, i, r in self.plan.routes() if s not in self.no_target)


def semantic_issues(scope: Scope) -> list[Issue]:
    """Every problem the plan's parts have together (each part already valid on its own)."""
    checks = (connection_issues, schema_issues, _routed_twice, _target_names, _shared_targets, _whole_schemas,
              _references, _cycles, _salt)
    issues = [issue for check in checks for issue in check(scope)]
    for service, index, route in scope.plan.routes():
        issues += route_column_issues(route, scope.route_loc(service, index))
    return issues


def _routed_twice(scope: Scope) -> Iterator[Issue]:
    plan = scope.plan
    seen: dict[tuple[str, str, tuple[str, ...]], tuple[str, tuple[str, str]]] = {}
    for service, index, route in scope.targeted_routes():
        target = plan.services[service].target
        key = (plan.qualified_source(route), route.target_name, tuple(route.columns or ()))
        first = seen.setdefault(key, (service, (airflow_key(target.conn_id), target.schema_)))
        if first[0] != service and first[1] != (airflow_key(target.conn_id), target.schema_):
            yield Issue(scope.route_loc(service, index),
                        f"source table {key[0]} is routed to both '{first[0]}' and '{service}' "
                        f"under the same name `{route.target_name}`",
                        "give one route its own `name`, split the columns between them with `columns`, "
                        "or remove one route")


def _target_names(scope: Scope) -> Iterator[Issue]:
    plan = scope.plan
    seen: dict[tuple[str, str, str], tuple[str, int]] = {}
    for service, index, route in scope.targeted_routes():
        target = plan.services[service].target
        key = (airflow_key(target.conn_id), target.schema_, route.target_name)
        first = seen.setdefault(key, (service, index))
        if first != (service, index):
            who = f"service '{service}' loads" if first[0] == service else \
                f"services '{first[0]}' and '{service}' load"
            loc = scope.route_loc(service, index) + (("name",) if route.name else ())
            yield Issue(loc, f"{who} two tables named `{route.target_name}` into {target.conn_id} "
                             f"schema {target.schema_}", "give one of them another `name`")


def _shared_targets(scope: Scope) -> Iterator[Issue]:
    plan = scope.plan
    seen: dict[tuple[str, str], str] = {}
    for name, service in plan.services.items():
        if name in scope.no_target:
            continue
        key = (airflow_key(service.target.conn_id), service.target.schema_)
        first = seen.setdefault(key, name)
        if first != name:
            yield Issue(("services", name, "target"),
                        f"services '{first}' and '{name}' both load into {service.target.conn_id} schema {key[1]}",
                        "services may share a database only with distinct schemas: give one another `schema` "
                        "or another `conn_id`")


def _whole_schemas(scope: Scope) -> Iterator[Issue]:
    plan = scope.plan
    owner: dict[str, str] = {}
    for name, svc in plan.services.items():
        for index, schema in enumerate(svc.schemas):
            first = owner.setdefault(schema, name)
            if first != name or svc.schemas.index(schema) != index:
                yield Issue(("services", name, "schemas", index),
                            f"source schema {schema} is routed whole to both '{first}' and '{name}'"
                            if first != name else f"schema {schema} is listed twice", "list it once, in one service")
    for service, index, route in plan.routes():
        schema = plan.qualified_source(route).split(".", 1)[0]
        if owner.get(schema, service) != service:
            yield Issue(scope.route_loc(service, index),
                        f"table {plan.qualified_source(route)} is routed to '{service}', but service "
                        f"'{owner[schema]}' takes the whole schema {schema}",
                        f"remove this route, or remove {schema} from the `schemas` of '{owner[schema]}' "
                        "and list its tables instead")


def _owner_tables(plan: Plan) -> dict[str, dict[str, TableRoute]]:
    return {name: {r.target_name: r for r in s.tables} for name, s in plan.services.items()}


def _references(scope: Scope) -> Iterator[Issue]:
    plan, owned = scope.plan, _owner_tables(scope.plan)
    for service, index, route in plan.routes():
        for column, ref in route.references.items():
            loc = scope.route_loc(service, index) + ("references", column)
            ref_service, table = ref.split(".", 1)
            if ref_service in scope.incomplete:
                continue
            if ref_service not in owned:
                yield Issue(loc, f"no service `{ref_service}` (in reference `{ref}`)",
                            f"{did_you_mean(ref_service, list(owned))}name one of: {', '.join(owned)}")
            elif table not in owned[ref_service] and not plan.services[ref_service].schemas:
                yield Issue(loc, f"service '{ref_service}' has no table `{table}` (in reference `{ref}`)",
                            f"{did_you_mean(table, list(owned[ref_service]))}reference one of its target tables: "
                            f"{', '.join(owned[ref_service])}")
            else:
                yield from _reference_column(route, loc, column, owned[ref_service].get(table))


def _reference_column(route: TableRoute, loc: Loc, column: str, referenced: TableRoute | None) -> Iterator[Issue]:
    transform = route.transforms.get(column)
    if route.columns is not None and column not in route.columns:
        yield Issue(loc, f"column `{column}` holds a reference but is not in `columns`",
                    f"add `{column}` to `columns`, or remove the reference")
    elif transform and transform.drop:
        yield Issue(loc, f"column `{column}` holds a reference but is dropped", "remove the drop or the reference")
    elif transform and transform.mask:
        yield Issue(loc, f"column `{column}` holds a reference and cannot be masked",
                    "remove the mask or the reference")
    elif transform and transform.cast and referenced is not None and referenced.uuid_key:
        yield Issue(loc, f"column `{column}` will hold the UUID keys of `{referenced.target_name}` "
                         "and cannot be cast",
                    "remove the cast")


def _cycles(scope: Scope) -> Iterator[Issue]:
    plan = scope.plan
    for cycle in find_cycles(list(plan.services), reference_edges(plan)):
        yield Issue(_first_reference(scope, cycle[0], cycle[1]), describe_cycle(cycle),
                    "a service is migrated after the services it references: remove one of these references, "
                    "or move the tables that reference each other into one service")


def _first_reference(scope: Scope, service: str, referenced: str) -> Loc:
    for index, route in enumerate(scope.plan.services[service].tables):
        for column, ref in route.references.items():
            if ref.split(".", 1)[0] == referenced:
                return scope.route_loc(service, index) + ("references", column)
    return ("services", service)


def _salt(scope: Scope) -> Iterator[Issue]:
    if not scope.defaults_known or scope.plan.defaults.mask_salt is not None:
        return
    for service, index, route in scope.plan.routes():
        for column, transform in route.transforms.items():
            if transform.mask == "hash":
                yield Issue(scope.route_loc(service, index) + ("transforms", column, "mask"),
                            "`mask: hash` needs a salt, but `defaults.mask_salt` is not set",
                            "add `mask_salt: {variable: dbsplit_mask_salt}` (or {conn_id: ..., field: password}) "
                            "under `defaults`")
