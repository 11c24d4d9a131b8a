"""Each kind of failed check fails its table's checkpoint with a precise message and rolls back:
an orphan cross-service reference, a duplicate key, a user suite's failing expectation, too many rejects.
A reference into a service not migrated yet fails nothing, and reads "not checked", never passed."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from dbsplit.airflow import runtime
from dbsplit.pg.conn import airflow_conn_env
from dbsplit.errors import DataCheckFailed
from dbsplit.plan import load_plan
from dbsplit.airflow.render import service_descriptor
from dbsplit.local.samples import create_sample
from dbsplit.airflow.specs import service_specs

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def world(make_db, tmp_path, monkeypatch):
    """A jobboard monolith and two targets (jobs, users); plans are written per test."""
    source = make_db("monolith")
    create_sample(source, "jobboard", rows=5_000)
    dbs = {"jobboard_monolith": source, "jobboard_jobs": make_db("jobs"), "jobboard_users": make_db("users")}
    for conn_id, info in dbs.items():
        monkeypatch.setenv(*airflow_conn_env(conn_id, info))
    monkeypatch.setenv("DBSPLIT_STAGING_URL", f"file://{tmp_path}/staging")
    monkeypatch.setenv("DBSPLIT_REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.syspath_prepend(str(ROOT))
    return dbs, tmp_path


def services(tmp_path: Path, users_table: str, jobs: bool = False) -> dict[str, dict]:
    text = ("version: 1\nname: jobboard\nsource: {conn_id: jobboard_monolith}\nservices:\n"
            + ("  jobs:\n    target: {conn_id: jobboard_jobs}\n    tables: [skills]\n" if jobs else "")
            + "  users:\n    target: {conn_id: jobboard_users}\n    tables:\n" + users_table)
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    return {s.service: service_descriptor(s) for s in service_specs(load_plan(path), str(path))}


def migrate(svc: dict, run_id: str) -> None:
    """prepare, chunks, extract, transform, load and validate every table, as the DAG would."""
    runtime.prepare_target(svc)
    for table in svc["tables"]:
        for chunk in runtime.plan_chunks(svc, table["target_table"], run_id):
            runtime.load(svc, runtime.transform(svc, runtime.extract(svc, chunk, run_id), run_id), run_id)
    for table in svc["tables"]:
        runtime.validate(svc, table["target_table"], run_id)


def assert_fails_and_rolls_back(svc: dict, run_id: str, target: str, *fragments: str) -> None:
    with pytest.raises(DataCheckFailed) as failure:
        migrate(svc, run_id)
    for fragment in fragments:
        assert fragment in str(failure.value)
    assert runtime.checkpoint(svc, run_id) == "rollback"
    runtime.rollback(svc)
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname IN ('public', '_dbsplit_staging')"
                            ).fetchone()[0] == 0, "rollback left tables behind"


def test_orphan_reference_fails_with_a_sample_of_orphans(world) -> None:
    dbs, tmp = world
    svcs = services(tmp, "      - users\n      - user_skills\n", jobs=True)
    migrate(svcs["jobs"], "r1")
    runtime.promote(svcs["jobs"])
    with psycopg.connect(dbs["jobboard_jobs"], autocommit=True) as conn:
        conn.execute("DELETE FROM skills WHERE id = (SELECT min(id) FROM skills)")
        gone = conn.execute("SELECT min(id) - 1 FROM skills").fetchone()[0]
    assert_fails_and_rolls_back(svcs["users"], "r1", dbs["jobboard_users"],
                                "dbsplit_references_resolve failed", "missing from jobs: public.skills.id", str(gone))


def test_reference_into_a_service_not_migrated_yet_reads_not_checked(world) -> None:
    dbs, tmp = world
    svcs = services(tmp, "      - users\n      - user_skills\n", jobs=True)
    migrate(svcs["users"], "r1")          # jobs is not migrated: its database has no skills table yet
    with psycopg.connect(dbs["jobboard_users"]) as conn:
        [checks] = conn.execute("SELECT checks FROM _dbsplit.table_evidence "
                                "WHERE run_id = 'r1' AND target_table = 'public.user_skills'").fetchone()
    [ref] = [c for c in checks if c["expectation"] == "dbsplit_references_resolve"]
    assert ref["column"] == "skill_id" and ref["success"] is None and ref["observed"] is None, ref
    assert ref["details"].startswith("not checked: jobs: public.skills is not migrated yet"), ref
    assert runtime.checkpoint(svcs["users"], "r1") == "promote"


def test_duplicate_keys_are_rejected_and_fail_the_checkpoint(world) -> None:
    dbs, tmp = world
    svcs = services(tmp, "      - {source: users, custom: 'tests.fixtures.custom_transforms:collapse_ids'}\n")
    assert_fails_and_rolls_back(svcs["users"], "r1", dbs["jobboard_users"],
                                "dbsplit_rejected_rows_within_limit failed", "at most 0 allowed")
    with psycopg.connect(dbs["jobboard_users"]) as conn:
        reasons = [r[0] for r in conn.execute("SELECT DISTINCT reason FROM _dbsplit.rejects")]
        [ev] = [e for e in runtime.state.latest_evidence(conn) if e.run_id == "r1"]
    assert any("duplicate key" in r for r in reasons), reasons
    # every row after the first ten is a duplicate: with 0 rejects allowed, each chunk stops isolating
    # them after the first (one COPY retry per reject would take hours on a large chunk of bad rows)
    assert ev.target_rows == 0, ev.target_rows
    [limit] = [c for c in ev.checks if c["expectation"] == runtime.REJECTS]
    assert limit["observed"] == len(ev_chunks(dbs["jobboard_users"])) and "is not loaded" in limit["details"], limit
    # a custom function returns input text, not the target's output text: no content checksum, said so
    [check] = [c for c in ev.checks if c["expectation"] == runtime.CHECKSUM]
    assert check["success"] and check["details"].startswith("not computed: custom function"), check


def ev_chunks(target: str) -> list[int]:
    """The chunk indexes of the users table's load of run r1."""
    with psycopg.connect(target) as conn:
        return [r[0] for r in conn.execute("SELECT chunk_index FROM _dbsplit.chunks WHERE run_id = 'r1'")]


def test_user_suite_expectation_failure_names_expectation_and_observed_value(world) -> None:
    dbs, tmp = world
    (tmp / "expectations").mkdir()
    (tmp / "expectations" / "users.json").write_text(json.dumps({
        "name": "users_strict", "meta": {},
        "expectations": [{"type": "expect_column_values_to_match_regex",
                          "kwargs": {"column": "email", "regex": "^[a-z0-9.]+@example\\\\.com$"}}]}))
    svcs = services(tmp, "      - {source: users, expectations: expectations/users.json}\n")
    assert_fails_and_rolls_back(svcs["users"], "r1", dbs["jobboard_users"],
                                "public.users: expect_column_values_to_match_regex failed")


def test_reject_count_above_threshold_fails_and_within_threshold_passes(world) -> None:
    dbs, tmp = world
    with psycopg.connect(dbs["jobboard_monolith"], autocommit=True) as conn:
        conn.execute("INSERT INTO users (id, public_id, email, full_name, locale, is_active, settings, created_at,"
                     " updated_at) SELECT 3000000000, gen_random_uuid(), 'big@example.com', full_name, locale,"
                     " is_active, settings, created_at, updated_at FROM users ORDER BY id LIMIT 1")
    strict = services(tmp, "      - {source: users, transforms: {id: {cast: integer}}}\n")
    assert_fails_and_rolls_back(strict["users"], "r1", dbs["jobboard_users"],
                                "1 row(s) rejected", "at most 0 allowed")
    lenient = services(tmp, "      - {source: users, transforms: {id: {cast: integer}}, max_rejected_rows: 1}\n")
    migrate(lenient["users"], "r2")
    assert runtime.checkpoint(lenient["users"], "r2") == "promote"
    with psycopg.connect(dbs["jobboard_users"]) as conn:
        [(key, reason)] = conn.execute("SELECT source_key, reason FROM _dbsplit.rejects r JOIN _dbsplit.loads l "
                                       "USING (load_id) WHERE l.run_id = 'r2'").fetchall()
    assert key == "3000000000" and "integer" in reason
