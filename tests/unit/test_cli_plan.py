"""`dbsplit plan check|show|init`: exit codes and output."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import psycopg
import pytest

from dbsplit.local.cli import main
from dbsplit.airflow.dagfactory import DEFAULT_PLAN

UNREACHABLE = "postgresql://nobody@127.0.0.1:1/nothing?connect_timeout=2"

PLAN = """\
version: 1
name: demo
source: {conn_id: demo_src}
services:
  users:
    target: {conn_id: users_db}
    tables: [users]
  apps:
    target: {conn_id: apps_db}
    tables:
      - source: applications
        references: {user_id: users.users}
        transforms: {note: drop}
  search:
    target: {conn_id: search_db}
    schemas: [search]
"""


@pytest.fixture(autouse=True)
def _no_source_connection(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No source variable, and a local environment without a server."""
    for name in ("AIRFLOW_CONN_DEMO_SRC", "AIRFLOW_CONN_JOBBOARD_MONOLITH", "DBSPLIT_PG_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DBSPLIT_HOME", str(tmp_path / "no-local-env"))


def write(tmp_path: Path, text: str = PLAN) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_check_ok_prints_one_summary_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path)
    assert main(["plan", "check", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == (f"{path}: OK, plan 'demo': 3 services, 2 tables and 1 whole schema, 2 migration levels; "
                   "not checked against a source\n")
    assert "warning: no source to check against: pass --source-url, define AIRFLOW_CONN_DEMO_SRC, or set up" in err


def test_check_example_plan(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "check", str(DEFAULT_PLAN)]) == 0
    assert "OK, plan 'jobboard': 6 services, 16 tables, 1 migration level" in capsys.readouterr().out


def test_check_prints_every_problem_one_per_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, PLAN.replace("users.users}", "users.user}") + "    resync: {on_conflict: stopp}\n")
    assert main(["plan", "check", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        f"{path}:12: services.apps.tables.0.references.user_id: service 'users' has no table `user` (in reference "
        "`users.user`). Fix: did you mean `users`? reference one of its target tables: users",
        f"{path}:17: services.search.resync.on_conflict: `on_conflict` must be one of source_wins, stop "
        "(not `stopp`). Fix: did you mean `stop`? use one of source_wins, stop",
    ]
    assert err == f"dbsplit: 2 problems in {path}\n"


def test_check_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "check", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml: (file): cannot read the plan" in capsys.readouterr().out


def test_check_fails_on_an_unreachable_source_with_the_whole_error(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path)
    assert main(["plan", "check", str(path), "--source-url", UNREACHABLE]) == 2
    out, err = capsys.readouterr()
    assert "OK" not in out
    assert err.startswith(f"dbsplit: {path}: cannot check against the source (--source-url): the source database is "
                          'not reachable: connection failed: connection to server at "127.0.0.1", port 1 failed:')


def test_check_uses_the_source_connection_variable(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_DEMO_SRC", '{"conn_type": "postgres", "host": "127.0.0.1", "port": 1, "login": '
                                                '"nobody", "schema": "nothing", "extra": {"connect_timeout": "2"}}')
    assert main(["plan", "check", str(write(tmp_path))]) == 2
    assert "cannot check against the source (AIRFLOW_CONN_DEMO_SRC): the source database is not reachable" in \
        capsys.readouterr().err


def test_check_finds_missing_expectation_suites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "plans").mkdir()
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "users.json").write_text("{}", encoding="utf-8")
    text = PLAN.replace("tables: [users]", "tables: [{source: users, expectations: suites/users.json}]")
    path = write(tmp_path / "plans", text)
    assert main(["plan", "check", str(path)]) == 0
    path.write_text(text.replace("suites/users.json", "suites/user.json"), encoding="utf-8")
    assert main(["plan", "check", str(path)]) == 2
    assert (f"{path}:7: services.users.tables.0.expectations: expectation suite suites/user.json does not exist "
            f"under {tmp_path}") in capsys.readouterr().out


def test_show_lists_levels_targets_tables_and_dags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "show", str(write(tmp_path))]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "DAG dbsplit_orchestrator migrates the levels in order"
    assert out[2] == "order from the plan's references only (not checked against a source)"
    assert out[3:] == [
        "level 1 (2 services, independent of each other):",
        "  users -> users_db/public",
        "    DAGs: dbsplit_migrate_users, dbsplit_resync_users (schedule 0 2 * * *, on_conflict source_wins)",
        "    public.users -> users",
        "  search -> search_db/public",
        "    DAGs: dbsplit_migrate_search, dbsplit_resync_search (schedule 0 2 * * *, on_conflict source_wins)",
        "    schema search.* -> every table, found at run time",
        "level 2 (1 service):",
        "  apps -> apps_db/public",
        "    DAGs: dbsplit_migrate_apps, dbsplit_resync_apps (schedule 0 2 * * *, on_conflict source_wins)",
        "    after: users",
        "    public.applications -> applications",
        "      transforms: note drop",
        "      references: user_id -> users.users",
    ]


def test_show_of_a_broken_plan_prints_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "show", str(write(tmp_path, PLAN.replace("version: 1", "version: 3")))]) == 2
    assert ":1: version: unsupported plan version 3" in capsys.readouterr().out


def fake_plan_init(monkeypatch: pytest.MonkeyPatch, init_plan: object) -> list[tuple[str, str]]:
    calls: list[tuple[str, str]] = []

    def record(source_conninfo: str, by: str = "schema") -> str:
        calls.append((source_conninfo, by))
        return init_plan(source_conninfo, by) if callable(init_plan) else str(init_plan)

    module = types.ModuleType("dbsplit.engine.plan_init")
    module.init_plan = record  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "dbsplit.engine.plan_init", module)
    return calls


def test_init_prints_the_plan(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    calls = fake_plan_init(monkeypatch, PLAN)
    assert main(["plan", "init", "--source", "postgresql://h/db", "--by", "prefix"]) == 0
    assert calls == [("postgresql://h/db", "prefix")]
    assert capsys.readouterr().out == PLAN


def test_init_writes_a_new_file_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    calls = fake_plan_init(monkeypatch, PLAN)
    out = tmp_path / "new.yaml"
    assert main(["plan", "init", "--source", "postgresql://h/db", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == PLAN and calls == [("postgresql://h/db", "schema")]
    assert f"wrote {out}" in capsys.readouterr().out
    assert main(["plan", "init", "--source", "postgresql://h/db", "--out", str(out)]) == 2
    assert f"{out} already exists" in capsys.readouterr().err


def test_init_reports_an_unreadable_source(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    def broken(source_conninfo: str, by: str) -> str:
        raise psycopg.OperationalError("connection refused")

    fake_plan_init(monkeypatch, broken)
    assert main(["plan", "init", "--source", UNREACHABLE]) == 2
    assert capsys.readouterr().err == "dbsplit: cannot read the source database: connection refused\n"


def test_init_without_plan_init_module_says_so(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "dbsplit.engine.plan_init", None)
    assert main(["plan", "init", "--source", "postgresql://h/db"]) == 2
    assert "dbsplit: `plan init` is not available: dbsplit.engine.plan_init cannot be imported" in capsys.readouterr().err


def test_init_needs_a_source(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["plan", "init"])
    assert info.value.code == 2
    assert "--source" in capsys.readouterr().err


def test_check_fails_on_an_invalid_connection_variable(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_DEMO_SRC", "{not json")
    assert main(["plan", "check", str(write(tmp_path))]) == 2
    out, err = capsys.readouterr()
    assert "OK" not in out
    assert "AIRFLOW_CONN_DEMO_SRC is not a valid connection JSON" in err
