"""Chunked loads: several chunks per table, and a worker killed mid-load resumes to an identical target."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from dbsplit.local.airflow_local import AirflowLocalError, run_dags
from dbsplit.pg.conn import airflow_conn_env
from dbsplit.local.samples import create_sample
from tests.integration.test_migrate_users import database_fingerprint, rows_of

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

PLAN = """\
version: 1
name: jobboard
source: {conn_id: jobboard_monolith}
defaults: {chunk_rows: 1000, retries: 0}
services:
  users:
    target: {conn_id: jobboard_users}
    tables: [users, user_skills]
  jobs:   # owns skills, which user_skills references (not run here: that reference reads "not checked")
    target: {conn_id: jobboard_jobs}
    tables: [skills]
"""


@pytest.fixture
def setup(make_db, tmp_path: Path):
    source, target = make_db("monolith"), make_db("users")
    create_sample(source, "jobboard", rows=40_000)
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    env = dict([airflow_conn_env("jobboard_monolith", source), airflow_conn_env("jobboard_users", target)])
    env["DBSPLIT_PLANS"] = str(plan)
    return source, target, env, tmp_path / "airflow"


def run(env: dict[str, str], home: Path):
    [result] = run_dags(["dbsplit_migrate_users"], home=home, dags_folder=ROOT / "dags", env=env, max_retry_delay_s=1)
    return result


def assert_identical(source: str, target: str) -> None:
    for table, key in [("users", ["id"]), ("user_skills", ["user_id", "skill_id"])]:
        assert rows_of(target, "public", table, key) == rows_of(source, "public", table, key)


def chunk_runs(target: str) -> list[tuple[str, int, str, int, str]]:
    """(table, chunk index, run that loaded it, load id, load status) of every loaded chunk."""
    with psycopg.connect(target) as conn:
        return conn.execute(
            "SELECT l.target_table, c.chunk_index, c.run_id, l.load_id, l.status FROM _dbsplit.chunks c"
            " JOIN _dbsplit.loads l USING (load_id) ORDER BY 4, 1, 2").fetchall()


def test_tables_load_in_several_chunks(setup) -> None:
    source, target, env, home = setup
    result = run(env, home)
    assert result.state == "success", result.failed_tasks
    assert {k for k in result.task_states if k.startswith("users.load[")} >= {"users.load[0]", "users.load[1]"}
    assert_identical(source, target)
    assert len([r for r in chunk_runs(target) if r[0] == "public.users"]) >= 2


def test_killed_worker_resumes_without_duplicates_or_gaps(setup) -> None:
    source, target, env, home = setup
    before = database_fingerprint(source)
    with pytest.raises(AirflowLocalError):
        run(env | {"DBSPLIT_FAULT": "load:users:1"}, home)   # dies inside the 2nd users chunk's transaction
    result = run(env, home)
    assert result.state == "success", result.failed_tasks
    assert_identical(source, target)
    loaded = chunk_runs(target)
    assert len({load for t, _, _, load, _ in loaded if t == "public.users"}) == 1, loaded  # resumed, not restarted
    assert {status for *_, status in loaded} == {"promoted"}, loaded
    users_runs = [r for t, _, r, *_ in loaded if t == "public.users"]
    assert len(set(users_runs)) == 2, loaded  # the chunk committed before the kill was kept, the rest loaded later
    assert database_fingerprint(source) == before
