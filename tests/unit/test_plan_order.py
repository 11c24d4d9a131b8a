"""Service migration order: levels from references (and extra edges), cycles named."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbsplit.airflow.dagfactory import DEFAULT_PLAN
from dbsplit.plan import ServiceCycleError, load_plan, migration_levels
from dbsplit.plan.models import Plan
from dbsplit.plan.order import describe_cycle, find_cycles, levels, reference_edges


def plan_with(tmp_path: Path, services: dict[str, list[str]]) -> Plan:
    """A plan whose service s has one table `s_t` referencing the `d_t` of each d in services[s]."""
    lines = ["version: 1", "name: p", "source: {conn_id: src}", "services:"]
    for name, deps in services.items():
        refs = ", ".join(f"{d}_id: {d}.{d}_t" for d in deps)
        lines += [f"  {name}:", f"    target: {{conn_id: {name}_db}}", f"    tables: [{{source: {name}_t, "
                  f"references: {{{refs}}}}}]"]
    path = tmp_path / "plan.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_plan(path)


def test_independent_services_share_one_level() -> None:
    assert migration_levels(load_plan(DEFAULT_PLAN)) == [
        ["users", "jobs", "applications", "search", "notifications", "analytics"]]


def test_levels_follow_references_in_plan_order(tmp_path: Path) -> None:
    plan = plan_with(tmp_path, {"apps": ["users", "jobs"], "jobs": ["users"], "users": [], "search": [],
                                "notify": ["apps"]})
    assert reference_edges(plan) == [("apps", "users"), ("apps", "jobs"), ("jobs", "users"), ("notify", "apps")]
    assert migration_levels(plan) == [["users", "search"], ["jobs"], ["apps"], ["notify"]]


def test_self_references_are_not_dependencies(tmp_path: Path) -> None:
    plan = plan_with(tmp_path, {"users": ["users"]})
    assert plan.services["users"].depends_on == ("users",)
    assert migration_levels(plan) == [["users"]]


def test_extra_edges_add_dependencies(tmp_path: Path) -> None:
    plan = plan_with(tmp_path, {"users": [], "jobs": [], "apps": []})
    edges = [("apps", "jobs"), ("jobs", "users")]
    assert migration_levels(plan, extra_edges=edges) == [["users"], ["jobs"], ["apps"]]


def test_extra_edges_may_close_a_cycle(tmp_path: Path) -> None:
    plan = plan_with(tmp_path, {"users": [], "jobs": ["users"]})
    with pytest.raises(ServiceCycleError) as info:
        migration_levels(plan, extra_edges=[("users", "jobs")])
    assert info.value.cycle == ["users", "jobs", "users"]
    assert "users -> jobs -> users" in str(info.value)


def test_extra_edges_must_name_known_services(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nope"):
        migration_levels(plan_with(tmp_path, {"users": []}), extra_edges=[("users", "nope")])


def test_find_cycles_names_each_cycle_from_its_earliest_service() -> None:
    nodes = ["a", "b", "c", "d", "e"]
    edges = [("b", "a"), ("a", "b"), ("c", "d"), ("d", "e"), ("e", "c"), ("c", "a")]
    assert find_cycles(nodes, edges) == [["a", "b", "a"], ["c", "d", "e", "c"]]
    assert find_cycles(["a", "b"], [("a", "b")]) == []


def test_levels_without_edges_is_one_level_in_order() -> None:
    assert levels(["b", "a"], []) == [["b", "a"]]


def test_describe_cycle() -> None:
    assert describe_cycle(["a", "b", "a"]) == "services 'a' and 'b' reference each other: a -> b -> a"
    assert describe_cycle(["a", "b", "c", "a"]) == ("services 'a', 'b' and 'c' reference each other: "
                                                    "a -> b -> c -> a")


def test_local_runner_orders_services_by_the_catalog_edges_too() -> None:
    """`dbsplit run` puts a service after the one its tables reference through a source foreign key."""
    from dbsplit.local.run import service_order

    plan = Plan.model_validate({
        "version": 1, "name": "p", "source": {"conn_id": "src"},
        "services": {"users": {"target": {"conn_id": "u"}, "tables": ["users"]},
                     "jobs": {"target": {"conn_id": "j"}, "tables": ["jobs"]}}})
    assert service_order(plan) == ["users", "jobs"]
    assert service_order(plan, edges=[("users", "jobs")]) == ["jobs", "users"]
    assert service_order(plan, ["users"], edges=[("users", "jobs")]) == ["users"]
