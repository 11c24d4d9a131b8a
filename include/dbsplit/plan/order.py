"""Service migration order: a service is migrated after the services it references."""

from __future__ import annotations

from collections.abc import Iterable
from graphlib import CycleError, TopologicalSorter

from dbsplit.errors import DbsplitError
from dbsplit.plan.models import Plan

Edge = tuple[str, str]  # (service, a service it depends on)


class ServiceCycleError(DbsplitError):
    """Services depend on each other in a cycle, so no migration order exists."""

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__(f"services reference each other in a cycle: {' -> '.join(cycle)}. "
                         "Fix: remove one of these references, or move the tables into one service")


def reference_edges(plan: Plan) -> list[Edge]:
    """(service, referenced service) for every explicit reference to another known service."""
    return [(name, dep) for name, service in plan.services.items()
            for dep in service.depends_on if dep != name and dep in plan.services]


def migration_levels(plan: Plan, extra_edges: Iterable[Edge] = ()) -> list[list[str]]:
    """Services in migration order as levels; the services of one level are independent of each other.

    extra_edges are more (service, dependency) pairs, e.g. derived from the source catalog's foreign
    keys. Raises ServiceCycleError naming a cycle, ValueError for an edge naming an unknown service.
    """
    edges = reference_edges(plan) + list(extra_edges)
    unknown = sorted({s for edge in edges for s in edge} - set(plan.services))
    if unknown:
        raise ValueError(f"dependency edges name services the plan does not have: {', '.join(unknown)}")
    return levels(list(plan.services), edges)


def levels(nodes: list[str], edges: Iterable[Edge]) -> list[list[str]]:
    """Topological levels of nodes (each level in the order of nodes); raises ServiceCycleError."""
    sorter = _sorter(nodes, edges)
    try:
        sorter.prepare()
    except CycleError as exc:
        raise ServiceCycleError(_as_references(exc.args[1], nodes)) from None
    rank = {n: i for i, n in enumerate(nodes)}
    result = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=rank.__getitem__)
        sorter.done(*ready)
        result.append(ready)
    return result


def levels_breaking_cycles(nodes: list[str], edges: Iterable[Edge]) -> list[list[str]]:
    """Topological levels like levels(), for callers that can live with cycles (e.g. deferred foreign
    keys): one edge of each cycle found is ignored instead of raising."""
    edges = list(edges)
    cut = {(cycle[0], cycle[1]) for cycle in find_cycles(nodes, edges)}
    return levels(nodes, [e for e in edges if e not in cut])


def find_cycles(nodes: list[str], edges: Iterable[Edge]) -> list[list[str]]:
    """Cycles as `a -> b -> a` node lists (a depends on b); one per independent cycle found."""
    remaining = [e for e in dict.fromkeys(edges) if e[0] != e[1]]
    cycles: list[list[str]] = []
    while True:
        try:
            _sorter(nodes, remaining).prepare()
            return cycles
        except CycleError as exc:
            cycle = _as_references(exc.args[1], nodes)
            cycles.append(cycle)
            remaining.remove((cycle[0], cycle[1]))


def describe_cycle(cycle: list[str]) -> str:
    """`services 'a' and 'b' reference each other: a -> b -> a` (longer cycles list every service)."""
    members = [f"'{s}'" for s in cycle[:-1]]
    names = " and ".join(members) if len(members) == 2 else ", ".join(members[:-1]) + f" and {members[-1]}"
    return f"services {names} reference each other: {' -> '.join(cycle)}"


def _sorter(nodes: list[str], edges: Iterable[Edge]) -> TopologicalSorter[str]:
    sorter: TopologicalSorter[str] = TopologicalSorter()
    for node in nodes:
        sorter.add(node)
    for service, dependency in edges:
        if service != dependency:
            sorter.add(service, dependency)
    return sorter


def _as_references(cycle: list[str], nodes: list[str]) -> list[str]:
    """graphlib's cycle (each node a predecessor of the next) as references, starting at the earliest node."""
    path = list(reversed(cycle))[:-1]
    rank = {n: i for i, n in enumerate(nodes)}
    start = min(range(len(path)), key=lambda i: rank.get(path[i], len(nodes)))
    path = path[start:] + path[:start]
    return path + [path[0]]
