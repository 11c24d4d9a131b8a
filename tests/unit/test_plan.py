"""Plan v1 loading: the example loads, and broken plans fail with file, line, field and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbsplit.airflow.dagfactory import DEFAULT_PLAN
from dbsplit.errors import PlanError
from dbsplit.plan import load_plan


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(text, encoding="utf-8")
    return path


GOOD = """\
version: 1
name: demo
source:
  conn_id: src
services:
  users:
    target: {conn_id: users_db}
    tables: [users, {source: audit.user_skills, name: skills}]
"""


def test_example_plan_loads() -> None:
    plan = load_plan(DEFAULT_PLAN)
    assert list(plan.services) == ["users", "jobs", "applications", "search", "notifications", "analytics"]
    assert plan.conn_ids()[0] == "jobboard_monolith"


def test_table_routes_accept_names_and_mappings(tmp_path: Path) -> None:
    plan = load_plan(write(tmp_path, GOOD))
    first, second = plan.services["users"].tables
    assert (first.source_table, first.target_name, plan.qualified_source(first)) == ("users", "users", "public.users")
    assert (second.source_schema, second.source_table, second.target_name) == ("audit", "user_skills", "skills")


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(PlanError) as info:
        load_plan(write(tmp_path, text))
    return [str(p) for p in info.value.problems]


def test_unknown_key_names_line_field_and_suggests_fix(tmp_path: Path) -> None:
    text = GOOD.replace("  conn_id: src\n", "  conn_id: src\n  shema: public\n")
    [msg] = problems(tmp_path, text)
    assert msg == (f"{tmp_path / 'plan.yaml'}:5: source.shema: unknown key `shema`. "
                   "Fix: did you mean `schema`? remove `shema`; allowed keys here: conn_id, schema")


def test_missing_target_reports_service_line(tmp_path: Path) -> None:
    text = GOOD.replace("    target: {conn_id: users_db}\n", "")
    [msg] = problems(tmp_path, text)
    assert msg.startswith(f"{tmp_path / 'plan.yaml'}:6: services.users.target: required key `target` is missing.")


def test_every_problem_is_reported(tmp_path: Path) -> None:
    text = GOOD.replace("version: 1", "version: 2").replace("name: demo", "name: 'no spaces please'")
    msgs = problems(tmp_path, text)
    assert [m.split(": ")[1] for m in msgs] == ["version", "name"]
    assert "unsupported plan version 2" in msgs[0]


def test_table_routed_twice_is_an_error(tmp_path: Path) -> None:
    text = GOOD + "  other:\n    target: {conn_id: other_db}\n    tables: [users]\n"
    [msg] = problems(tmp_path, text)
    assert "source table public.users is routed to both 'users' and 'other'" in msg


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    [msg] = problems(tmp_path, GOOD.replace("tables: [users,", "tables: [users,,"))
    assert msg.startswith(f"{tmp_path / 'plan.yaml'}:8: (syntax): invalid YAML")


def test_missing_file(tmp_path: Path) -> None:
    [msg] = problems_of_path(tmp_path / "nope.yaml")
    assert "cannot read the plan" in msg and "nope.yaml" in msg


def problems_of_path(path: Path) -> list[str]:
    with pytest.raises(PlanError) as info:
        load_plan(path)
    return [str(p) for p in info.value.problems]
