"""Specs are built from the plan alone and give valid, unique task-group ids."""

from __future__ import annotations

import re

from dbsplit.airflow.dagfactory import DEFAULT_PLAN
from dbsplit.plan import load_plan
from dbsplit.airflow.specs import group_id_for, service_specs


def test_one_dag_spec_per_service_with_plan_tables() -> None:
    specs = service_specs(load_plan(DEFAULT_PLAN))
    assert [s.dag_id for s in specs] == [f"dbsplit_migrate_{n}" for n in
                                         ["users", "jobs", "applications", "search", "notifications", "analytics"]]
    users = specs[0]
    assert users.source_conn_id == "jobboard_monolith" and users.target_conn_id == "jobboard_users"
    assert [t.target_table for t in users.tables] == ["users", "user_skills"]


def test_group_ids_are_valid_and_unique_for_awkward_names() -> None:
    taken: set[str] = set()
    names = ["users", "User Profiles", "user_profiles", "Straße", "select", 'we"ird']
    ids = [group_id_for(n, taken) for n in names]
    assert ids[0] == "users" and ids[4] == "select"
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[A-Za-z0-9_]+", i) for i in ids)
