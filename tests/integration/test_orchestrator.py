"""The orchestrator: staged phases end to end (each service's DAG triggered level by level, run by
airflow_local's pump), rollback of every target on a failed service run, parameters reaching the
service runs, cut-over freeze and final sync."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest

from dbsplit.local.airflow_local import run_dags
from dbsplit.pg.conn import airflow_conn_env
from dbsplit.airflow.dagfactory import EXAMPLES
from dbsplit.plan import load_plan
from dbsplit.plan.order import migration_levels
from dbsplit.local.samples import create_sample
from dbsplit.model.evidence import read_run
from dbsplit.engine.resolve import resolve_service
from dbsplit.airflow.specs import migrate_dag_id
from tests.integration.oracle import actual_rows, expected_rows
from tests.integration.test_migrate_users import database_fingerprint

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def setup_example(example: str, make_db, tmp_path: Path, plan_text: str | None = None):
    plan_path = EXAMPLES / example / "plan.yaml"
    if plan_text is not None:
        plan_path = tmp_path / "plan.yaml"
        plan_path.write_text(plan_text)
    plan = load_plan(plan_path)
    source = make_db(f"{example}_src")
    create_sample(source, example, rows=5_000)
    targets = {s.target.conn_id: make_db(f"{example}_{n}") for n, s in plan.services.items()}
    env = dict(airflow_conn_env(cid, info) for cid, info in targets.items())
    env |= dict([airflow_conn_env(plan.source.conn_id, source)])
    env |= {"DBSPLIT_PLANS": str(plan_path), "AIRFLOW_VAR_DBSPLIT_MASK_SALT": "salt",
            "DBSPLIT_REPORTS_DIR": str(tmp_path / "reports"), "DBSPLIT_BACKUPS_DIR": str(tmp_path / "backups")}
    return plan, source, targets, env


def orchestrate(env: dict, tmp_path: Path, conf: dict | None = None):
    [result] = run_dags(["dbsplit_orchestrator"], home=tmp_path / "airflow", dags_folder=ROOT / "dags", env=env,
                        conf=conf, max_retry_delay_s=1)
    return result


def user_tables(conninfo: str) -> dict[str, str]:
    fp = database_fingerprint(conninfo)
    return {k: v for k, v in fp.items() if not k.startswith("_dbsplit") and k != "relations"}


@pytest.mark.parametrize("example", ["jobboard", "helpdesk"])
def test_orchestrator_migrates_example(example: str, make_db, tmp_path: Path) -> None:
    plan, source, targets, env = setup_example(example, make_db, tmp_path)
    before = database_fingerprint(source)
    result = orchestrate(env, tmp_path)
    assert result.state == "success", result.failed_tasks
    assert result.task_states["rollback"] == "skipped"
    levels = migration_levels(plan)
    assert {f"migrate.trigger_{s}": "success" for lv in levels for s in lv}.items() <= result.task_states.items()
    assert {r.state for r in result.triggered} == {"success"}
    ran = iter(r.dag_id for r in result.triggered)    # level by level; any order within a level
    assert [{next(ran) for _ in lv} for lv in levels] == [{migrate_dag_id(s) for s in lv} for lv in levels]
    for run in result.triggered:   # the evidence (and report pages) belong to the service runs
        assert run.task_states["promote"] == "success"
        assert read_run(run.dag_id, run.run_id, tmp_path / "reports"), f"no evidence for {run.dag_id}"
    assert database_fingerprint(source) == before
    assert any((tmp_path / "backups").rglob("*.dump")) or any((tmp_path / "backups").rglob("*"))
    for conn_id, info in targets.items():
        assert user_tables(info), f"{conn_id} holds no migrated table"
    assert_targets_equal_oracle(plan, source, targets)   # (test_examples_e2e.py leaves these two examples to us)


def test_parameters_reach_the_triggered_runs(make_db, tmp_path: Path) -> None:
    plan, source, targets, env = setup_example("jobboard", make_db, tmp_path)
    selected = ["users", "jobs", "analytics"]   # analytics_events: 1,164 rows; its references need users, then jobs
    result = orchestrate(env, tmp_path, conf={"services": selected, "chunk_rows": 1000})
    assert result.state == "success", result.failed_tasks
    assert {s: result.task_states[f"migrate.trigger_{s}"] for s in plan.services} == \
        {s: "success" if s in selected else "skipped" for s in plan.services}
    runs = {r.dag_id: r for r in result.triggered}
    assert set(runs) == {migrate_dag_id(s) for s in selected}
    run = runs["dbsplit_migrate_analytics"]
    chunks = [t for t in run.task_states if t.startswith("analytics_events.extract[")]
    assert len(chunks) == 2, run.task_states     # chunks of 1,000 rows, not one of the plan's 100,000

    dry = orchestrate(env, tmp_path, conf={"dry_run": True})
    assert dry.state == "success", dry.failed_tasks
    assert {v for k, v in dry.task_states.items() if k.startswith("migrate.")} == {"skipped"}
    assert dry.triggered == []


INSERT_USER = ("INSERT INTO users (id, public_id, email, full_name, locale, is_active, settings, created_at, updated_at) "
               "SELECT %s, gen_random_uuid(), %s, full_name, locale, is_active, settings, created_at, updated_at "
               "FROM users ORDER BY id LIMIT 1")

BAD_PLAN = """\
version: 1
name: jobboard
source: {conn_id: jobboard_monolith}
services:
  jobs:
    target: {conn_id: jobboard_jobs}
    tables: [companies, job_categories, skills, jobs, job_skills]
  users:
    target: {conn_id: jobboard_users}
    tables:
      - source: users
        transforms:
          id: {cast: integer}
"""


def test_failed_checkpoint_rolls_every_target_back(make_db, tmp_path: Path) -> None:
    plan, source, targets, env = setup_example("jobboard", make_db, tmp_path, BAD_PLAN)
    first = orchestrate(env, tmp_path)            # a clean run: both services promoted
    assert first.state == "success", first.failed_tasks
    with psycopg.connect(source, autocommit=True) as conn:   # a row whose id cannot become an integer
        conn.execute(INSERT_USER, (3_000_000_000, "big@example.com"))
        conn.execute("UPDATE companies SET name = name || ' (renamed)' WHERE id = 1")
    before_source = database_fingerprint(source)
    before_targets = {cid: user_tables(info) for cid, info in targets.items()}

    result = orchestrate(env, tmp_path)
    assert result.state == "failed"
    runs = {r.dag_id: r for r in result.triggered}
    assert runs["dbsplit_migrate_jobs"].state == "success"                # promoted, then swapped back below
    users = runs["dbsplit_migrate_users"]
    assert users.state == "failed" and users.task_states["rollback"] == "success"
    assert "dbsplit_rejected_rows_within_limit" in users.failed_tasks["finish"]
    # the failed service run failed its trigger task, naming the run and the reason
    assert f"dbsplit_migrate_users run {users.run_id} failed" in result.failed_tasks["migrate.trigger_users"]
    assert "dbsplit_rejected_rows_within_limit" in result.failed_tasks["migrate.trigger_users"]
    assert result.task_states["rollback"] == "failed"       # it ran, undid, and failed the run with the reason
    assert "jobs: public.companies swapped back" in result.failed_tasks["rollback"]   # from the jobs run's promote XCom
    assert database_fingerprint(source) == before_source
    for cid, info in targets.items():
        assert user_tables(info) == before_targets[cid], f"{cid} was not rolled back"

    # the cause fixed (the row that cannot be cast removed), a re-run promotes what a clean run would
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("DELETE FROM users WHERE id = 3000000000")
    again = orchestrate(env, tmp_path)
    assert again.state == "success", again.failed_tasks
    assert_targets_equal_oracle(plan, source, targets)


def assert_targets_equal_oracle(plan, source: str, targets: dict[str, str]) -> None:
    """Every target table holds its source rows passed through the plan (tests/integration/oracle.py)."""
    with psycopg.connect(source) as src:
        for name, service in plan.services.items():
            for rt in resolve_service(plan, name, src):
                assert actual_rows(targets[service.target.conn_id], rt) == \
                    expected_rows(source, rt, plan.namespace_uuid, b"salt"), f"{name}: {rt.target_table}"


def test_cut_over_freezes_syncs_and_unfreeze_restores(make_db, tmp_path: Path, monkeypatch) -> None:
    plan, source, targets, env = setup_example("jobboard", make_db, tmp_path)
    result = orchestrate(env, tmp_path, conf={"cut_over": True})
    assert result.state == "success", result.failed_tasks
    assert result.task_states["cut_over.freeze_source"] == "success"
    assert result.task_states["cut_over.final_sync"] == "success"
    assert {r.state for r in result.triggered} == {"success"}
    with psycopg.connect(source, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="frozen for the migration"):
            conn.execute(INSERT_USER, (99_999_999, "x@example.com"))
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="frozen for the migration"):
            conn.execute("UPDATE jobs SET title = title WHERE id = 1")
    # the DAG that ends the dual-write period accepts cut-over services (what it removes:
    # tests/integration/test_end_dual_write.py; jobboard's tables have no watermark, nothing tracks them)
    unfreeze, ended = run_dags(["dbsplit_unfreeze", "dbsplit_end_dual_write"], home=tmp_path / "airflow",
                               dags_folder=ROOT / "dags", env=env)
    assert unfreeze.state == "success", unfreeze.failed_tasks
    assert ended.state == "success", ended.failed_tasks
    for name in plan.services:
        with psycopg.connect(targets[plan.services[name].target.conn_id]) as conn:
            assert conn.execute("SELECT count(*) FROM _dbsplit.cut_over").fetchone()[0] == len(plan.services[name].tables)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("UPDATE users SET full_name = full_name WHERE id = 1")

    # the final sync brings every table level with the source, watermark or not: rows the monolith took
    # between a service's load and the freeze (here: after an unfreeze) reach the service databases
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(INSERT_USER, (99_999_998, "late@example.com"))
        conn.execute("UPDATE jobs SET title = title || ' (late edit)' WHERE id % 7 = 0")
        conn.execute("DELETE FROM job_skills WHERE job_id % 11 = 0")
    from dbsplit.airflow import orchestrate as orchestrate_module
    from dbsplit.errors import DbsplitError

    orch = {"plan": plan.name, "plan_path": str(EXAMPLES / "jobboard" / "plan.yaml"), "services": list(plan.services)}
    # the published services' databases are the system of record: a resync refuses them ...
    with pytest.raises(DbsplitError, match=re.escape(f"public.user_skills, public.users: cut over by orchestrator run "
                                                     f"{result.run_id} at ")):
        orchestrate_module.final_sync(orch, ["users"], "late")
    for name in ("users", "jobs"):   # ... until the cut-over is declared undone
        with psycopg.connect(targets[plan.services[name].target.conn_id], autocommit=True) as conn:
            assert conn.execute("DELETE FROM _dbsplit.cut_over").rowcount == len(plan.services[name].tables)
    synced = orchestrate_module.final_sync(orch, ["users", "jobs"], "late")["synced"]
    assert synced["users"]["public.users"]["upserted"] == 1
    assert synced["jobs"]["public.jobs"]["upserted"] > 0 and synced["jobs"]["public.job_skills"]["deleted"] > 0
    assert_targets_equal_oracle(plan, source, targets)
    for name in ("users", "jobs"):   # no watermark in jobboard: the tracking was for the final sync only
        with psycopg.connect(targets[plan.services[name].target.conn_id]) as conn:
            assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'dbsplit_track_%'").fetchone()[0] == 0
            assert conn.execute("SELECT count(*) FROM _dbsplit.sync_state").fetchone()[0] == 0
            assert conn.execute("SELECT count(*) FROM _dbsplit.target_changes").fetchone()[0] == 0
            assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = '_dbsplit'"
                                " AND tablename ~ '^(keys|sums):'").fetchone()[0] == 0
