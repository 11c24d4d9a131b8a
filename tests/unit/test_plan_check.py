"""Checks of a plan against a real source database (schemas, tables, columns, casts, keys, watermarks)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from dbsplit.local.cli import main
from dbsplit.plan import read_plan
from dbsplit.engine.plan_check import check_source

pytestmark = pytest.mark.integration

SOURCE_DDL = """
CREATE SCHEMA app;
CREATE SCHEMA logs;
CREATE TYPE app.mood AS ENUM ('ok', 'sad');
CREATE DOMAIN app.stamp AS timestamptz;
CREATE TABLE app.companies (id int PRIMARY KEY, name text);
CREATE TABLE app.users (
    id int PRIMARY KEY, email text, age text, born date, mood app.mood, active boolean,
    updated_at app.stamp, note text, company_id int, version bigint);
CREATE TABLE app.events (at timestamptz, payload text);
CREATE TABLE logs.requests (id bigint PRIMARY KEY, path text);
"""

HEAD = """\
version: 1
name: demo
source: {conn_id: demo_src, schema: app}
defaults: {mask_salt: {variable: salt}}
services:
  jobs:
    target: {conn_id: jobs_db}
    tables: [companies]
  audit:
    target: {conn_id: audit_db}
    schemas: [logs]
  users:
    target: {conn_id: users_db}
    tables:
"""  # the users service's table entries start at line 15


@pytest.fixture
def source(make_db: Callable[[str], str]) -> str:
    url = make_db("plancheck")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SOURCE_DDL)
    return url


def check(tmp_path: Path, source: str, tables: str) -> list[tuple[int | None, str, str]]:
    path = tmp_path / "plan.yaml"
    path.write_text(HEAD + tables, encoding="utf-8")
    plan, doc = read_plan(path)
    result = check_source(plan, doc, source)
    assert result.skipped is None
    return [(p.line, p.field, f"{p.message}. Fix: {p.fix}") for p in result.problems]


def test_a_plan_that_matches_the_source_has_no_problems(tmp_path: Path, source: str) -> None:
    assert check(tmp_path, source, """\
      - source: users
        uuid_key: true
        transforms:
          age: {cast: integer}
          email: {mask: hash}
          mood: {cast: text}
          note: {rename: remark}
          born: {cast: timestamptz}
        add_columns: {origin: {type: "character varying(20)", default: "'monolith'"}}
        references: {company_id: jobs.companies}
        watermark: updated_at
      - source: users
        name: user_versions
        columns: [id, version, note]
        watermark: version
        references: {note: audit.requests}
""") == []


def test_every_mismatch_is_named_at_its_line(tmp_path: Path, source: str) -> None:
    problems = check(tmp_path, source, """\
      - source: nope.users
      - source: usres
      - source: users
        name: users_main
        transforms:
          active: {cast: date}
          mood: {cast: integer}
          age: {cast: intger}
        add_columns: {extra: {type: no_such_type}}
        references: {compny_id: jobs.companies}
        watermark: note
      - source: events
        uuid_key: true
        references: {payload: audit.responses}
      - source: companies
        name: company_names
        columns: [name]
      - source: users
        name: users_copy
        uuid_key: true
        transforms: {id: {cast: bigint}}
        watermark: born
      - source: users
        name: users_few
        columns: [id, emial]
""")
    cast_fix = "Fix: cast to a type PostgreSQL converts this type to, or convert the value in `custom`"
    type_fix = "Fix: use a PostgreSQL type such as integer, bigint, text, numeric(10,2) or timestamptz"
    columns = "its columns are: id, email, age, born, mood, active, updated_at, note, company_id, version"
    assert problems == [
        (15, "services.users.tables.0.source", "source schema `nope` does not exist. Fix: name an existing schema"),
        (16, "services.users.tables.1.source",
         "source table app.usres does not exist. Fix: did you mean `users`? name a table of schema app"),
        (20, "services.users.tables.2.transforms.active.cast",
         f"PostgreSQL cannot cast `active` from boolean to date. {cast_fix}"),
        (21, "services.users.tables.2.transforms.mood.cast",
         f"PostgreSQL cannot cast `mood` from app.mood to integer. {cast_fix}"),
        (22, "services.users.tables.2.transforms.age.cast",
         f"`intger` is not a type the source database knows. {type_fix}"),
        (23, "services.users.tables.2.add_columns.extra.type",
         f"`no_such_type` is not a type the source database knows. {type_fix}"),
        (24, "services.users.tables.2.references.compny_id",
         f"column `compny_id` does not exist in app.users. Fix: did you mean `company_id`? {columns}"),
        (25, "services.users.tables.2.watermark", "watermark `note` is text, not a timestamp or integer. Fix: "
         "choose a column of type timestamp, timestamptz, date, smallint, integer or bigint"),
        (27, "services.users.tables.3.uuid_key", "`uuid_key` needs a primary key, and app.events has none. "
         "Fix: add a primary key to the source table, or remove `uuid_key`"),
        (28, "services.users.tables.3.references.payload", "service 'audit' has no table `responses` (in reference "
         "`audit.responses`): none of its schemas logs has it. Fix: reference a table of service 'audit'"),
        (31, "services.users.tables.4.columns", "`columns` leaves out the primary key column `id`. Fix: add `id` "
         "to `columns`: each target table keeps the key that identifies its rows"),
        (35, "services.users.tables.5.transforms.id", "`id` becomes a UUID (uuid_key) and cannot be cast. "
         "Fix: remove the transform, or remove `uuid_key`"),
        (39, "services.users.tables.6.columns.1",
         f"column `emial` does not exist in app.users. Fix: did you mean `email`? {columns}"),
    ]


def test_renames_and_added_columns_are_checked_against_all_source_columns(tmp_path: Path, source: str) -> None:
    problems = check(tmp_path, source, """\
      - source: users
        transforms: {note: {rename: email}, id: drop}
        add_columns: {version: {type: text}}
""")
    assert [(line, field) for line, field, _ in problems] == [
        (16, "services.users.tables.0.transforms.id"),
        (16, "services.users.tables.0.transforms.note.rename"),
        (17, "services.users.tables.0.add_columns.version"),
    ]
    assert problems[1][2].startswith("renaming `note` to `email` collides with the kept column `email`")
    assert problems[2][2].startswith("added column `version` collides with the kept column `version`")


def test_missing_whole_schema(tmp_path: Path, source: str) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(HEAD.replace("schemas: [logs]", "schemas: [logs, log]") + "      - users\n", encoding="utf-8")
    plan, doc = read_plan(path)
    [problem] = check_source(plan, doc, source).problems
    assert (problem.line, problem.field) == (11, "services.audit.schemas.1")
    assert problem.message == "source schema `log` does not exist" and problem.fix.startswith("did you mean `logs`?")


def test_the_check_leaves_the_source_untouched_and_read_only(tmp_path: Path, source: str) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(HEAD + "      - source: users\n        transforms: {age: {cast: integer}}\n", encoding="utf-8")
    plan, doc = read_plan(path)
    with psycopg.connect(source) as conn:
        before = conn.execute("SELECT count(*) FROM pg_class").fetchone()
    assert check_source(plan, doc, source).problems == []
    with psycopg.connect(source) as conn:
        assert conn.execute("SELECT count(*) FROM pg_class").fetchone() == before


def test_cli_check_with_source_url(tmp_path: Path, source: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(HEAD + "      - users\n", encoding="utf-8")
    assert main(["plan", "check", str(path), "--source-url", source]) == 0
    assert capsys.readouterr().out == (f"{path}: OK, plan 'demo': 3 services, 2 tables and 1 whole schema, "
                                       "1 migration level; checked against the source (--source-url)\n")
    path.write_text(HEAD + "      - source: users\n        watermark: email\n", encoding="utf-8")
    assert main(["plan", "check", str(path), "--source-url", source]) == 2
    out, err = capsys.readouterr()
    assert out.startswith(f"{path}:16: services.users.tables.0.watermark: watermark `email` is text")
    assert err == f"dbsplit: 1 problem in {path}\n"


def test_the_catalog_is_read_in_a_read_only_transaction(tmp_path: Path, source: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import dbsplit.engine.plan_check as check_module

    seen: list[str] = []

    def spy(plan: object, cat: check_module.SourceCatalog) -> list[object]:
        seen.append(cat.conn.execute("SHOW transaction_read_only").fetchone()[0])
        return []

    monkeypatch.setattr(check_module, "source_issues", spy)
    path = tmp_path / "plan.yaml"
    path.write_text(HEAD + "      - users\n", encoding="utf-8")
    plan, doc = read_plan(path)
    assert check_source(plan, doc, source).problems == [] and seen == ["on"]
