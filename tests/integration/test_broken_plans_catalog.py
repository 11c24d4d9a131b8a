"""Broken plans that only the source catalog shows: `dbsplit plan check` refuses each with exit code 2 at its line.

The corpus is tests/fixtures/broken_plans/catalog/; the source database is created here. Also: the local
environment's server is checked by default, and `plan show` orders services by the catalog's foreign keys.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from dbsplit.local.cli import main
from dbsplit.pg.conn import dbname_of

from tests.unit.test_broken_plans import CORPUS, ROOT, corpus, expectation

pytestmark = pytest.mark.integration

SOURCE_DDL = """
CREATE SCHEMA app;
CREATE TABLE app.companies (id int PRIMARY KEY, name text, owner_id int);
CREATE TABLE app.users (id int PRIMARY KEY, email text, active boolean, note text,
                        company_id int REFERENCES app.companies);
ALTER TABLE app.companies ADD FOREIGN KEY (owner_id) REFERENCES app.users;
CREATE TABLE app.memberships (user_id int REFERENCES app.users, company_id int REFERENCES app.companies,
                              PRIMARY KEY (user_id, company_id));
CREATE TABLE app.events (at timestamptz, payload text);
"""


@pytest.fixture
def source(make_db: Callable[[str], str]) -> str:
    url = make_db("broken")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SOURCE_DDL)
    return url


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AIRFLOW_CONN_SRC", "DBSPLIT_PG_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DBSPLIT_HOME", str(tmp_path / "no-local-env"))
    monkeypatch.chdir(ROOT)


@pytest.mark.parametrize("path", corpus(CORPUS / "catalog"), ids=lambda p: p.stem)
def test_broken_plan_is_refused_against_the_source(path: Path, source: str, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SAME_AS_SOURCE", source)  # only target-resolves-to-source uses it
    expect, line = expectation(path)
    assert main(["plan", "check", str(path), "--source-url", source]) == 2
    out = capsys.readouterr().out
    found = [row for row in out.splitlines() if expect in row]
    assert found, out
    assert found[0].startswith(f"{path}:{line}: ") and ". Fix: " in found[0], out


def test_the_local_environment_is_the_default_source(source: str, pg_server_url: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """As `dbsplit env` sets it up: the source conn id is a database of that name on the local server."""
    plan = tmp_path / "plan.yaml"
    text = (CORPUS / "catalog" / "table-misspelt.yaml").read_text(encoding="utf-8")
    plan.write_text(text.replace("conn_id: src,", f"conn_id: {dbname_of(source)},"), encoding="utf-8")
    assert main(["plan", "check", str(plan)]) == 0          # no server in the local environment
    assert capsys.readouterr().out.endswith("; not checked against a source\n")
    monkeypatch.setenv("DBSPLIT_PG_URL", pg_server_url)
    assert main(["plan", "check", str(plan)]) == 2
    assert f"{plan}:{expectation(plan)[1]}: services.users.tables.0.source: source table app.usres does not exist" \
        in capsys.readouterr().out
    plan.write_text(text.replace("conn_id: src,", "conn_id: no_such_database,"), encoding="utf-8")
    assert main(["plan", "check", str(plan)]) == 0          # the local server does not hold this source
    out, err = capsys.readouterr()
    assert out.endswith("; not checked against a source\n") and "does not hold the source" in err


SHOW = """\
version: 1
name: fk
source: {conn_id: src, schema: app}
services:
  users:
    target: {conn_id: users_db}
    tables: [users]
  companies:
    target: {conn_id: companies_db}
    tables:
      - source: companies
        transforms: {owner_id: drop}
"""


def test_show_orders_services_by_the_catalogs_foreign_keys(source: str, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(SHOW, encoding="utf-8")
    assert main(["plan", "show", str(plan)]) == 0
    assert "level 1 (2 services, independent of each other):" in capsys.readouterr().out
    assert main(["plan", "show", str(plan), "--source-url", source]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2] == "order from the plan's references and the source's foreign keys (checked against the source " \
                     "(--source-url))"
    assert [row for row in out if row.startswith(("level", "  ", "    after"))][:6] == [
        "level 1 (1 service):",
        "  companies -> companies_db/public",
        "    DAGs: dbsplit_migrate_companies, dbsplit_resync_companies (schedule 0 2 * * *, on_conflict source_wins)",
        "    app.companies -> companies",
        "      transforms: owner_id drop",
        "level 2 (1 service):",
    ]
    assert "    after: companies" in out
    assert "      after companies: source foreign key app.users (company_id) -> app.companies" in out
    plan.write_text(SHOW.replace("        transforms: {owner_id: drop}\n", ""), encoding="utf-8")
    assert main(["plan", "show", str(plan), "--source-url", source]) == 2
    assert "services 'users' and 'companies' reference each other" in capsys.readouterr().out
