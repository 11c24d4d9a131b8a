"""`dbsplit plan init` on each example's monolith: the starter plan passes `plan check` against the
source and migrates (every service, in dependency order, through the task functions the DAGs run)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from dbsplit.airflow import runtime
from dbsplit.local.cli import main
from dbsplit.pg.conn import airflow_conn_env
from dbsplit.plan import load_plan
from dbsplit.plan.order import migration_levels
from dbsplit.airflow.render import service_descriptor
from dbsplit.local.samples import create_sample
from dbsplit.airflow.specs import service_specs

pytestmark = pytest.mark.integration


def run_service(svc: dict, run_id: str) -> str:
    runtime.prepare_target(svc)
    selectors = [t["target_table"] for t in svc["tables"]]
    for selector in selectors or [None]:
        for chunk in runtime.plan_chunks(svc, selector, run_id):
            runtime.load(svc, runtime.transform(svc, runtime.extract(svc, chunk, run_id), run_id), run_id)
    chunks = runtime.plan_chunks(svc, None, run_id) if not selectors else []
    for name in selectors + runtime.table_names(chunks):
        runtime.validate(svc, name, run_id)
    decision = runtime.checkpoint(svc, run_id)
    if decision == "promote":
        runtime.promote(svc)
    return decision


@pytest.mark.parametrize("example,by", [("jobboard", "prefix"), ("helpdesk", "prefix"),
                                        ("freezone", "prefix"), ("payments", "schema")])
def test_init_plan_checks_and_migrates(example: str, by: str, make_db, tmp_path: Path, monkeypatch, capsys) -> None:
    source = make_db(f"{example}_src")
    create_sample(source, example, rows=2_000)
    plan_path = tmp_path / "plan.yaml"
    assert main(["plan", "init", "--source", source, "--by", by, "--out", str(plan_path)]) == 0
    assert main(["plan", "check", str(plan_path), "--source-url", source]) == 0, capsys.readouterr()
    plan = load_plan(plan_path)
    monkeypatch.setenv(*airflow_conn_env(plan.source.conn_id, source))
    for svc in plan.services.values():
        monkeypatch.setenv(*airflow_conn_env(svc.target.conn_id, make_db("t")))
    monkeypatch.setenv("DBSPLIT_STAGING_URL", f"file://{tmp_path}/staging")
    monkeypatch.setenv("DBSPLIT_REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("AIRFLOW_VAR_DBSPLIT_MASK_SALT", "salt")
    specs = {s.service: service_descriptor(s) for s in service_specs(plan, str(plan_path))}
    for level in migration_levels(plan):
        for name in level:
            assert run_service(specs[name], "init-run") == "promote", name
    with psycopg.connect(source) as src:
        total = sum(src.execute(psycopg.sql.SQL("SELECT count(*) FROM {}").format(psycopg.sql.Identifier(s, t))
                                ).fetchone()[0] for s, t in src.execute(
            "SELECT schemaname, tablename FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"))
    migrated = 0
    for svc in plan.services.values():
        with psycopg.connect(_conninfo(svc.target.conn_id)) as tgt:
            migrated += sum(r[0] for r in tgt.execute(
                "SELECT source_rows FROM _dbsplit.table_evidence WHERE run_id = 'init-run' AND success"))
    assert migrated == total


def _conninfo(conn_id: str) -> str:
    from dbsplit.airflow.connections import resolve

    return resolve(conn_id)
