"""The broken-plan corpus: `dbsplit plan check` refuses each file with exit code 2, its message and its line.

Each file in tests/fixtures/broken_plans/ starts with `# expect: <part of the message>` and `# line: N`.
Cases that need the source catalog are in its catalog/ folder (tests/integration/test_broken_plans_catalog.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dbsplit.local.cli import main

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "broken_plans"
ROOT = CORPUS.parents[2]


def expectation(path: Path) -> tuple[str, int]:
    """The `# expect:` text and `# line:` number of a corpus file."""
    head = path.read_text(encoding="utf-8").split("\n", 5)
    expect = next(m.group(1) for line in head if (m := re.match(r"# expect: (.+)", line)))
    number = next(int(m.group(1)) for line in head if (m := re.match(r"# line: (\d+)", line)))
    return expect, number


def corpus(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.yaml"))


@pytest.fixture(autouse=True)
def _no_source(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No source variable, no local environment, and the repository root as the current directory."""
    for name in ("AIRFLOW_CONN_SRC", "DBSPLIT_PG_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DBSPLIT_HOME", str(tmp_path / "no-local-env"))
    monkeypatch.chdir(ROOT)


def test_the_corpus_is_large_enough() -> None:
    assert len(corpus(CORPUS)) + len(corpus(CORPUS / "catalog")) >= 30


@pytest.mark.parametrize("path", corpus(CORPUS), ids=lambda p: p.stem)
def test_broken_plan_is_refused_at_its_line(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expect, line = expectation(path)
    assert main(["plan", "check", str(path)]) == 2
    out = capsys.readouterr().out
    found = [row for row in out.splitlines() if expect in row]
    assert found, out
    assert found[0].startswith(f"{path}:{line}: "), out
    assert ". Fix: " in found[0]


def test_the_alias_bomb_is_refused_naming_the_cap(capsys: pytest.CaptureFixture[str]) -> None:
    """Refused while reading, before the aliases expand (the time is a figure for bench/, not asserted)."""
    path = CORPUS / "yaml-alias-bomb.yaml"
    assert main(["plan", "check", str(path)]) == 2
    assert "more than 10000 values, the limit" in capsys.readouterr().out


def test_several_plans_are_all_checked_and_all_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("version: 1\nname: ok\nsource: {conn_id: src}\nservices:\n  users:\n"
                    "    target: {conn_id: users_db}\n    tables: [users]\n", encoding="utf-8")
    first, second = CORPUS / "version-true.yaml", CORPUS / "duplicate-key.yaml"
    assert main(["plan", "check", str(first), str(good), str(second)]) == 2
    out, err = capsys.readouterr()
    assert f"{first}:4: version: `version` must be a whole number, not the boolean true" in out
    assert f"{good}: OK, plan 'ok'" in out
    assert f"{second}:14: services.users.tables: key `tables` is given twice" in out
    assert "dbsplit: 2 of 3 plans failed the check" in err
    assert main(["plan", "check", str(good), str(good)]) == 0


def test_the_run_refuses_uuid_key_on_a_composite_key_with_plan_checks_message(tmp_path: Path) -> None:
    """resolve_table (run time, before any row moves) and plan check share the message and the fix."""
    from dbsplit.pg.catalog import TableInfo
    from dbsplit.errors import SourceSchemaError
    from dbsplit.plan import load_plan
    from dbsplit.engine.resolve import resolve_table

    path = tmp_path / "plan.yaml"
    path.write_text("version: 1\nname: k\nsource: {conn_id: src, schema: app}\nservices:\n  users:\n"
                    "    target: {conn_id: users_db}\n    tables: [{source: memberships, uuid_key: true}]\n",
                    encoding="utf-8")
    plan = load_plan(path)
    info = TableInfo("app", "memberships", (), ("user_id", "company_id"))
    with pytest.raises(SourceSchemaError) as error:
        resolve_table(plan, "users", plan.services["users"].tables[0], info, {}, None)  # type: ignore[arg-type]
    expect, _ = expectation(CORPUS / "catalog" / "uuid-key-composite.yaml")
    assert str(error.value).startswith(f"app.memberships: {expect} (user_id, company_id). Fix: remove `uuid_key`")
