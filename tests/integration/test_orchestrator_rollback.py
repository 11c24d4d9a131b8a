"""Any failed orchestrator task runs the rollback, which names the task that failed and why: a backup
that cannot be written, and a publish that fails after the freeze, the final sync and the other
services' publish (their cut-over records are removed, the source is unfrozen, promotions undone)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from dbsplit.pg.freeze import TRIGGER

from tests.integration.test_migrate_users import database_fingerprint
from tests.integration.test_orchestrator import orchestrate, setup_example, user_tables

pytestmark = pytest.mark.integration

TWO_SERVICES = """\
version: 1
name: jobboard
source: {conn_id: jobboard_monolith}
services:
  jobs:
    target: {conn_id: jobboard_jobs}
    tables: [companies, job_categories, skills, jobs, job_skills]
  users:
    target: {conn_id: jobboard_users}
    tables: [users, user_skills]
"""

# a _dbsplit.cut_over of another shape left in the users database (a column publish does not fill)
CONFLICTING_CUT_OVER = ("CREATE SCHEMA _dbsplit; CREATE TABLE _dbsplit.cut_over (target_table text PRIMARY KEY,"
                        " run_id text NOT NULL, cut_over_at timestamptz NOT NULL DEFAULT now(), approved_by text NOT NULL)")


def cut_over_rows(conninfo: str) -> list[tuple]:
    with psycopg.connect(conninfo) as conn:
        if conn.execute("SELECT to_regclass('_dbsplit.cut_over') IS NULL").fetchone()[0]:
            return []
        return conn.execute("SELECT target_table, run_id FROM _dbsplit.cut_over").fetchall()


def freeze_triggers(conninfo: str) -> int:
    with psycopg.connect(conninfo) as conn:
        return conn.execute("SELECT count(*) FROM pg_trigger WHERE tgname = %s", (TRIGGER,)).fetchone()[0]


def test_backup_and_publish_failures_roll_back_and_name_the_task(make_db, tmp_path: Path) -> None:
    _, source, targets, env = setup_example("jobboard", make_db, tmp_path, TWO_SERVICES)
    before = {k: v for k, v in database_fingerprint(source).items() if k != "relations"}

    (tmp_path / "not_a_directory").write_text("")   # backups cannot be written below a file
    failed_backup = orchestrate(env | {"DBSPLIT_BACKUPS_DIR": str(tmp_path / "not_a_directory")}, tmp_path)
    assert failed_backup.state == "failed"
    assert failed_backup.task_states["backup.dumps"] == "failed"
    assert failed_backup.task_states["rollback"] == "failed", failed_backup.task_states
    reason = failed_backup.failed_tasks["rollback"]
    assert "backup.dumps failed: " in reason and "validation failed" not in reason, reason

    with psycopg.connect(targets["jobboard_users"], autocommit=True) as conn:
        conn.execute(CONFLICTING_CUT_OVER)
    result = orchestrate(env, tmp_path, conf={"cut_over": True})
    assert result.state == "failed"
    states = result.task_states
    assert (states["cut_over.final_sync"], states["cut_over.publish_jobs"]) == ("success", "success"), states
    assert states["cut_over.publish_users"] == "failed" and states["rollback"] == "failed", states
    reason = result.failed_tasks["rollback"]
    assert "cut_over.publish_users failed: " in reason and "approved_by" in reason, reason
    assert "validation failed" not in reason and "cut_over.publish_jobs failed" not in reason, reason
    assert "jobs: cut-over record of " in reason, reason
    assert freeze_triggers(source) == 0, "the source is still frozen"
    assert {k: v for k, v in database_fingerprint(source).items() if k != "relations"} == before
    for conn_id, info in targets.items():
        assert cut_over_rows(info) == [], f"{conn_id} is still recorded as cut over"
        assert user_tables(info) == {}, f"{conn_id}: promoted tables were not swapped back"
