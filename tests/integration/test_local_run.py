"""`dbsplit plan init` on each example's monolith, then the local runner (`dbsplit demo --plan` and `dbsplit run
--plan`) with no edits: a green result, every reference check passed (and run) or "not checked", and a demo
that prints at most 60 lines on a non-terminal."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from dbsplit.local.cli import main
from dbsplit.pg.conn import airflow_conn_env, with_dbname
from dbsplit.plan import Plan, load_plan
from dbsplit.local.samples import create_sample
from tests.conftest import drop_database

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 60


def starter_plan(source: str, by: str, tmp_path: Path) -> Path:
    path = tmp_path / "plan.yaml"
    assert main(["plan", "init", "--source", source, "--by", by, "--out", str(path)]) == 0
    return path


def reference_checks(plan: Plan, conninfos: dict[str, str]) -> list[dict]:
    """Every reference check recorded by the targets' latest evidence."""
    checks = []
    for svc in plan.services.values():
        with psycopg.connect(conninfos[svc.target.conn_id]) as conn:
            rows = conn.execute("SELECT DISTINCT ON (target_table) target_table, checks FROM _dbsplit.table_evidence "
                                "ORDER BY target_table, id DESC").fetchall()
        checks += [c | {"table": t} for t, cs in rows for c in cs if c["expectation"] == "dbsplit_references_resolve"]
    return checks


def assert_references_honest(checks: list[dict]) -> None:
    """Each reference check passed after running (it counted orphans) or reads "not checked"; none failed."""
    assert checks, "the plan has cross-service references: some check must be recorded"
    for c in checks:
        if c["success"] is None:
            assert c["details"].startswith("not checked: ") and c["observed"] is None, c
        else:
            assert c["success"] is True, c
            assert c["observed"] == 0 and c["details"].startswith("all "), f"passed without having run: {c}"


def test_demo_of_a_starter_plan_is_short_green_and_honest(make_db, pg_server_url: str, tmp_path: Path) -> None:
    """`dbsplit demo --plan <a plan init plan>` runs it on its own source (no sample, no empty database), from a
    fresh DBSPLIT_HOME, its output captured as on a non-terminal."""
    source = make_db("jobboard_monolith")
    create_sample(source, "jobboard", rows=2_000)
    plan_path = starter_plan(source, "prefix", tmp_path)
    plan = load_plan(plan_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_"))}
    env |= {"DBSPLIT_PG_URL": pg_server_url, "DBSPLIT_HOME": str(tmp_path / "home"),
            "DBSPLIT_REPORTS_DIR": str(tmp_path / "reports"),
            "PYTHONPATH": os.pathsep.join([str(ROOT / "include"), str(ROOT), env.get("PYTHONPATH", "")])}
    targets = [svc.target.conn_id for svc in plan.services.values()]
    try:
        proc = subprocess.run([sys.executable, "-m", "dbsplit.local.cli", "demo", "--plan", str(plan_path)], env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=1800)
        output = proc.stdout + proc.stderr
        lines = output.splitlines()
        assert proc.returncode == 0, output
        assert len(lines) <= MAX_LINES, f"{len(lines)} lines:\n{output}"
        assert "result: OK" in output and "Warning" not in output and "Traceback" not in output, output
        assert f"full logs: {tmp_path / 'home' / 'logs'}" in output
        # services run in the order of the source's foreign keys: every reference finds its table migrated
        assert "not checked" not in output, output
        for line in lines:   # the result table's references column: passed or not checked, nothing else
            if line.startswith(tuple(plan.services)) and "public." in line:
                refs = line.rsplit("  ", 1)[-1].strip()
                assert refs == "-" or all(p.split(" ", 1)[1] in ("passed", "not checked")
                                          for p in refs.split(", ")), line
        assert_references_honest(reference_checks(plan, {t: with_dbname(pg_server_url, t) for t in targets}))
        with psycopg.connect(pg_server_url) as conn:
            names = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
        assert f"{plan.name}_monolith" not in names, "the demo created a database for a plan that is not an example"
    finally:
        for name in targets:
            drop_database(pg_server_url, name)


@pytest.mark.parametrize("example,by", [("helpdesk", "prefix"), ("freezone", "prefix"), ("payments", "schema")])
def test_run_of_a_starter_plan_on_your_own_connections(example: str, by: str, make_db, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """`dbsplit run --plan` of a plan init plan, the connections defined by the user's AIRFLOW_CONN_* variables."""
    from dbsplit.local.run import run_plan

    source = make_db(f"{example}_src")
    create_sample(source, example, rows=2_000)
    plan_path = starter_plan(source, by, tmp_path)
    plan = load_plan(plan_path)
    conninfos = {plan.source.conn_id: source} | {s.target.conn_id: make_db("t") for s in plan.services.values()}
    for conn_id, info in conninfos.items():
        monkeypatch.setenv(*airflow_conn_env(conn_id, info))
    monkeypatch.setenv("DBSPLIT_PG_URL", "postgresql://nobody@127.0.0.1:1/unused")   # every connection is defined
    monkeypatch.setenv("DBSPLIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DBSPLIT_REPORTS_DIR", str(tmp_path / "reports"))
    out = io.StringIO()
    assert run_plan(plan_path, out=out, rich=False) == 0, out.getvalue()
    assert "result: OK" in out.getvalue()
    assert_references_honest(reference_checks(plan, conninfos))
