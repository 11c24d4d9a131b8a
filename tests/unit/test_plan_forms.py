"""The full plan format loads; short forms mean what their long forms mean; every problem is reported at once."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from dbsplit.errors import PlanError
from dbsplit.plan import load_plan
from dbsplit.plan.models import Plan
from dbsplit.model.resolved import plan_namespace

FULL = """\
version: 1
name: freezone
namespace: 0b4c2f9e-5d1a-4e3b-9c7f-2a6d8e1b4c3f
source:
  conn_id: freezone_monolith
  schema: public
defaults:
  retries: 3
  chunk_rows: 200000
  max_rejected_rows: 5
  mask_salt: {variable: dbsplit_mask_salt}
services:
  users:
    target:
      conn_id: freezone_users
      schema: public
    schemas: [user_schema]
    resync: {schedule: "0 3 * * *", on_conflict: stop}
    tables:
      - users
      - source: public.users
        name: user_profiles
        columns: [id, bio, email, full_name, age, legacy_flag, phone, company_id, updated_at]
        filter: "deleted_at IS NULL"
        uuid_key: true
        transforms:
          email: {mask: hash}
          full_name: {rename: name}
          age: {cast: integer}
          legacy_flag: drop
          phone: {rename: phone_number, mask: redact}
          bio: {mask: null}
        add_columns:
          migrated_from: {type: text, default: "'monolith'"}
          batch: {type: integer, default: 7}
        custom: mypkg.transforms:normalise
        references:
          company_id: jobs.companies
        watermark: updated_at
        chunk_rows: 50000
        expectations: expectations/users/user_profiles.json
        max_rejected_rows: 10
  jobs:
    target: {conn_id: freezone_jobs}
    tables: [companies]
"""


def load(tmp_path: Path, text: str) -> Plan:
    path = tmp_path / "plan.yaml"
    path.write_text(text, encoding="utf-8")
    return load_plan(path)


def test_full_format_loads(tmp_path: Path) -> None:
    plan = load(tmp_path, FULL)
    users = plan.services["users"]
    profiles = users.tables[1]
    assert (users.schemas, users.resync.schedule, users.resync.on_conflict) == (["user_schema"], "0 3 * * *", "stop")
    assert (profiles.target_name, profiles.uuid_key, profiles.filter) == ("user_profiles", True, "deleted_at IS NULL")
    assert profiles.transforms["phone"].describe() == "rename phone_number, mask redact"
    assert profiles.add_columns["batch"].default == "7"
    assert plan.defaults.mask_salt is not None and plan.defaults.mask_salt.variable == "dbsplit_mask_salt"
    assert plan.namespace_uuid == uuid.UUID("0b4c2f9e-5d1a-4e3b-9c7f-2a6d8e1b4c3f")
    assert (plan.chunk_rows_for(profiles), plan.chunk_rows_for(users.tables[0])) == (50_000, 200_000)
    assert (plan.max_rejected_rows_for(profiles), plan.max_rejected_rows_for(users.tables[0])) == (10, 5)
    assert users.depends_on == ("jobs",) and plan.services["jobs"].depends_on == ()


def test_short_forms_equal_long_forms(tmp_path: Path) -> None:
    plan = load(tmp_path, FULL)
    long = load(tmp_path, FULL.replace("legacy_flag: drop", "legacy_flag: {drop: true}")
                .replace("      - users\n", "      - {source: users}\n"))
    assert plan == long
    assert plan.services["users"].tables[1].transforms["legacy_flag"].drop is True
    assert plan.services["users"].tables[1].transforms["bio"].mask == "null"


def test_defaults_fill_in(tmp_path: Path) -> None:
    plan = load(tmp_path, "version: 1\nname: p\nsource: {conn_id: src}\nservices:\n"
                          "  users: {target: {conn_id: u}, tables: [users]}\n")
    service = plan.services["users"]
    assert (plan.source.schema_, service.target.schema_, plan.defaults.retries) == ("public", "public", 2)
    assert (service.resync.schedule, service.resync.on_conflict, service.schemas) == ("0 2 * * *", "source_wins", [])
    assert plan.namespace_uuid == plan_namespace("p") == uuid.uuid5(uuid.NAMESPACE_URL, "dbsplit:p")
    assert plan.defaults.mask_salt is None and plan.defaults.max_rejected_rows == 0


def test_existing_api_is_kept(tmp_path: Path) -> None:
    plan = load(tmp_path, FULL)
    route = plan.services["users"].tables[1]
    assert (route.source_schema, route.source_table, route.target_name) == ("public", "users", "user_profiles")
    assert plan.qualified_source(plan.services["users"].tables[0]) == "public.users"
    assert plan.conn_ids() == ["freezone_monolith", "freezone_users", "freezone_jobs"]
    assert [(s, i) for s, i, _ in plan.routes()] == [("users", 0), ("users", 1), ("jobs", 0)]


def test_whole_schema_service_needs_no_tables(tmp_path: Path) -> None:
    plan = load(tmp_path, "version: 1\nname: p\nsource: {conn_id: src}\nservices:\n"
                          "  audit: {target: {conn_id: a}, schemas: [audit]}\n")
    assert plan.services["audit"].tables == [] and plan.services["audit"].schemas == ["audit"]


def test_split_of_one_table_across_services_is_allowed(tmp_path: Path) -> None:
    plan = load(tmp_path, """\
version: 1
name: p
source: {conn_id: src}
services:
  users:
    target: {conn_id: u}
    tables: [{source: users, columns: [id, email]}]
  profiles:
    target: {conn_id: p}
    tables: [{source: users, columns: [id, bio]}, {source: users, name: users_copy}]
""")
    assert [r.target_name for _, _, r in plan.routes()] == ["users", "users", "users_copy"]


def test_every_problem_is_reported_even_when_parts_are_invalid(tmp_path: Path) -> None:
    """A service with an invalid part still has its valid routes checked against the others."""
    text = """\
version: 1
name: p
source: {conn_id: src}
services:
  users:
    target: {conn_id: u}
    tables:
      - source: users
        nmae: x
      - source: accounts
        references: {company_id: jobs.companies}
  jobs:
    target: {conn_id: j}
    tables:
      - source: companies
        references: {owner_id: users.accounts}
        transforms: {email: {mask: hash}}
"""
    with pytest.raises(PlanError) as info:
        load(tmp_path, text)
    found = [(p.line, p.field, p.message.split(":")[0]) for p in info.value.problems]
    assert found == [
        (9, "services.users.tables.0.nmae", "unknown key `nmae`"),
        (11, "services.users.tables.1.references.company_id", "services 'users' and 'jobs' reference each other"),
        (17, "services.jobs.tables.0.transforms.email.mask", "`mask"),
    ]


def test_referenced_route(tmp_path: Path) -> None:
    plan = load(tmp_path, FULL)
    assert plan.referenced_route("jobs.companies") == plan.services["jobs"].tables[0]
    assert plan.referenced_route("jobs.nothing") is None and plan.referenced_route("nope.x") is None
