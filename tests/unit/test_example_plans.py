"""The example plans (helpdesk, freezone, payments) load, route every table of their sample monolith, use
the plan features they exist to show, and name GX Core 1.x expectation suites that GX itself accepts.

No database: the data side (suites passing on the planned rows, soft references covering every
cross-service foreign key) is tested in tests/integration/test_samples.py.
"""

from __future__ import annotations

import copy
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import pytest

from dbsplit.local import samples
from dbsplit.plan import Plan, load_plan

ROOT = Path(__file__).resolve().parents[2]
EXPECTATIONS = ROOT / "expectations"
EXAMPLES = {
    "helpdesk": ["users", "tickets", "messaging", "attachments"],
    "freezone": ["user", "freezone", "document", "ai_research", "scraper"],
    "payments": ["user", "wallet", "payment", "ledger", "compliance", "analytics", "security", "notification"],
}
SUITE_KEYS = {"name", "expectations", "meta"}


def plan_of(name: str) -> Plan:
    return load_plan(samples.SAMPLES_DIR / name / "plan.yaml")


def qualified(table: str) -> str:
    return table if "." in table else f"public.{table}"


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_example_plan_loads(name: str) -> None:
    plan = plan_of(name)
    assert plan.name == name
    assert list(plan.services) == EXAMPLES[name]
    assert plan.conn_ids() == [f"{name}_monolith"] + [f"{name}_{s}" for s in EXAMPLES[name]]
    assert all(s.target.schema_ == "public" for s in plan.services.values())


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_example_plan_routes_every_sample_table(name: str) -> None:
    plan = plan_of(name)
    tables = {qualified(t) for t in samples.sample_tables(name)}
    routed = {plan.qualified_source(route) for _, _, route in plan.routes()}
    whole = {t for t in tables for s in plan.services.values() if t.split(".")[0] in s.schemas}
    assert routed <= tables
    assert routed | whole == tables
    targets = [(service, route.target_name) for service, _, route in plan.routes()]
    assert len(targets) == len(set(targets))


def test_helpdesk_turns_every_cross_service_reference_into_a_uuid() -> None:
    plan = plan_of("helpdesk")
    uuid_tables = {f"{s}.{r.target_name}" for s, _, r in plan.routes() if r.uuid_key}
    assert uuid_tables == {"users.users", "users.departments", "tickets.tickets", "messaging.chat_messages"}
    references = [(s, target) for s, _, r in plan.routes() for target in r.references.values()]
    assert len(references) == 14
    assert {target for _, target in references} == uuid_tables
    assert all(not target.startswith(f"{s}.") for s, target in references)


def test_freezone_splits_users_and_uses_every_kind_of_transform() -> None:
    plan = plan_of("freezone")
    user = plan.services["user"].tables
    assert [(r.source, r.target_name) for r in user] == [("users", "users"), ("users", "user_profiles"),
                                                         ("users", "roles")]
    assert all(r.columns and r.columns[0] == "id" and r.uuid_key for r in user)
    assert not set(user[0].columns or []) & set(user[1].columns or []) - {"id", "updated_at"}
    transforms = {(c, t.describe()) for _, _, r in plan.routes() for c, t in r.transforms.items()}
    assert {("national_id", "mask hash"), ("phone", "rename phone_number, mask redact"),
            ("passport_number", "mask null"), ("full_name", "rename display_name"),
            ("share_capital", "cast numeric(18,2)")} <= transforms
    assert [r.filter for _, _, r in plan.routes() if r.filter] == ["deleted_at IS NULL"]
    assert {c for _, _, r in plan.routes() for c in r.add_columns} == {"profile_source", "migrated_from"}
    assert plan.defaults.mask_salt is not None and plan.defaults.mask_salt.variable == "dbsplit_mask_salt"


def test_payments_moves_each_schema_to_its_own_database() -> None:
    plan = plan_of("payments")
    assert {name: s.schemas for name, s in plan.services.items()} == {
        name: [f"{name}_schema"] for name in EXAMPLES["payments"]}
    assert len({s.target.conn_id for s in plan.services.values()}) == len(plan.services)
    # tables listed besides their schema route only to carry per-table options
    assert all(r.expectations and plan.qualified_source(r).split(".")[0] in plan.services[s].schemas
               for s, _, r in plan.routes())


def suite_files() -> list[Path]:
    return sorted(EXPECTATIONS.rglob("*.json"))


def suite_routes() -> dict[str, tuple[str, str, str]]:
    """expectations path -> (plan, service, target table), over every example plan (jobboard included)."""
    out: dict[str, tuple[str, str, str]] = {}
    for name in ["jobboard", *EXAMPLES]:
        plan = plan_of(name)
        for service, _, route in plan.routes():
            if route.expectations:
                assert str(route.expectations) not in out, f"{route.expectations} is named twice"
                out[str(route.expectations)] = (name, service, route.target_name)
    return out


def test_every_suite_file_is_named_by_exactly_one_route_and_after_it() -> None:
    routes = suite_routes()
    assert sorted(routes) == [str(p.relative_to(ROOT)) for p in suite_files()]
    for path, (plan, service, table) in routes.items():
        assert path == f"expectations/{service}/{table}.json"
        data = json.loads((ROOT / path).read_text(encoding="utf-8"))
        assert data["name"] == f"{plan}.{service}.{table}"
        assert data["meta"] == {"plan": plan, "service": service, "table": table}


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_each_example_has_at_least_two_suites(name: str) -> None:
    assert sum(plan == name for plan, _, _ in suite_routes().values()) >= 2


@pytest.mark.parametrize("path", suite_files(), ids=lambda p: str(p.relative_to(EXPECTATIONS)))
def test_suite_is_gx_core_1_suite_json(path: Path) -> None:
    """The shape of ExpectationSuite.to_json_dict() in great_expectations 1.24, and GX builds the suite from it."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    assert set(data) == SUITE_KEYS and isinstance(data["name"], str) and isinstance(data["meta"], dict)
    assert data["expectations"], "an empty suite checks nothing"
    for expectation in data["expectations"]:
        assert set(expectation) == {"type", "kwargs", "meta"}
        assert expectation["type"].startswith("expect_") and isinstance(expectation["kwargs"], dict)
    gx = _gx()
    suite = gx.ExpectationSuite(**copy.deepcopy(data))   # GX adds its version to the meta dict it is given
    dumped = suite.to_json_dict()
    assert dumped["name"] == data["name"]
    assert [(e["type"], e["kwargs"]) for e in dumped["expectations"]] == [
        (e["type"], e["kwargs"]) for e in data["expectations"]]
    assert {k: v for k, v in dumped["meta"].items() if k != "great_expectations_version"} == data["meta"]


def _gx() -> Any:
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import great_expectations as gx
    return gx
