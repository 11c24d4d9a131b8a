"""Every example monolith migrates end to end through the generated DAGs, and every target table equals
its source passed through the plan's transforms, row by row (computed by an independent oracle).

jobboard and helpdesk are not run here: test_orchestrator.py migrates them through the orchestrator, which
triggers the same service DAGs, and compares every target table with the same oracle."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest

from dbsplit.local.airflow_local import run_dags
from dbsplit.pg.conn import airflow_conn_env
from dbsplit.airflow.dagfactory import EXAMPLES
from dbsplit.plan import load_plan
from dbsplit.plan.order import migration_levels
from dbsplit.engine.resolve import resolve_service
from dbsplit.local.samples import create_sample
from dbsplit.airflow.specs import migrate_dag_id
from tests.conftest import create_database, drop_database
from tests.integration.oracle import actual_rows, expected_rows

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SALT = "e2e-test-salt"
PG15 = os.environ.get("DBSPLIT_SECOND_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def second_server() -> str | None:
    """A second PostgreSQL server for services behind their own connection (None when none answers)."""
    try:
        with psycopg.connect(PG15, connect_timeout=3):
            return PG15
    except psycopg.Error:
        return None


@pytest.mark.parametrize("example", ["freezone", "payments"])
def test_example_migrates_end_to_end(example: str, make_db, pg_server_url: str, tmp_path: Path) -> None:
    plan_path = EXAMPLES / example / "plan.yaml"
    plan = load_plan(plan_path)
    source = make_db(f"{example}_src")
    create_sample(source, example, rows=6_000)
    targets, elsewhere = {}, []
    remote = second_server() if example == "payments" else None
    for i, (name, svc) in enumerate(plan.services.items()):
        if remote and i < 2 and remote != pg_server_url:   # two services on a second server
            db = f"t_{example}_{name}_{os.getpid()}"
            drop_database(remote, db)
            targets[svc.target.conn_id] = create_database(remote, db)
            elsewhere.append(db)
        else:
            targets[svc.target.conn_id] = make_db(f"{example}_{name}")
    env = dict(airflow_conn_env(cid, info) for cid, info in targets.items())
    env |= dict([airflow_conn_env(plan.source.conn_id, source)])
    env |= {"DBSPLIT_PLANS": str(plan_path), "AIRFLOW_VAR_DBSPLIT_MASK_SALT": SALT,
            "DBSPLIT_REPORTS_DIR": str(tmp_path / "reports")}
    try:
        order = [migrate_dag_id(s) for level in migration_levels(plan) for s in level]
        results = run_dags(order, home=tmp_path / "airflow", dags_folder=ROOT / "dags", env=env, max_retry_delay_s=1)
        assert [(r.dag_id, r.state) for r in results] == [(d, "success") for d in order], \
            {r.dag_id: r.failed_tasks for r in results if r.state != "success"}
        with psycopg.connect(source) as src:
            for service, svc in plan.services.items():
                for rt in resolve_service(plan, service, src):
                    assert actual_rows(targets[svc.target.conn_id], rt) == \
                        expected_rows(source, rt, plan.namespace_uuid, SALT.encode()), f"{service}: {rt.target_table}"
    finally:
        for db in elsewhere:
            drop_database(remote, db)
