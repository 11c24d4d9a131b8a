"""Validation checkpoints: tampering in staging is caught, located and rolled back; live stays untouched."""

from __future__ import annotations

import psycopg
import pytest

from dbsplit import runtime
from dbsplit.conn import airflow_conn_env
from dbsplit.errors import DataCheckFailed
from dbsplit.plan import load_plan
from dbsplit.render import service_descriptor
from dbsplit.samples import create_sample
from dbsplit.specs import service_specs
from tests.integration.test_migrate_users import rows_of

pytestmark = pytest.mark.integration

PLAN = """\
version: 1
name: jobboard
source: {conn_id: jobboard_monolith}
defaults: {chunk_rows: 1000}
services:
  users:
    target: {conn_id: jobboard_users}
    tables: [users]
"""


@pytest.fixture
def service(make_db, tmp_path, monkeypatch):
    source, target = make_db("monolith"), make_db("users")
    create_sample(source, "jobboard", rows=40_000)
    for conn_id, info in (("jobboard_monolith", source), ("jobboard_users", target)):
        monkeypatch.setenv(*airflow_conn_env(conn_id, info))
    monkeypatch.setenv("DBSPLIT_STAGING_URL", f"file://{tmp_path}/staging")
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(PLAN)
    [spec] = service_specs(load_plan(plan_file), str(plan_file))
    return service_descriptor(spec), source, target


def load_all(service: dict, run_id: str) -> list[dict]:
    """Run prepare, plan_chunks, extract, transform and load as the DAG would (one table)."""
    [table] = service["tables"]
    runtime.prepare_target(service)
    chunks = runtime.plan_chunks(service, table["target_table"], run_id)
    for chunk in chunks:
        extracted = runtime.extract(service, chunk, run_id)
        runtime.load(service, runtime.transform(service, extracted, run_id), run_id)
    return chunks


def test_clean_run_promotes(service) -> None:
    svc, source, target = service
    chunks = load_all(svc, "run1")
    assert len(chunks) >= 2
    runtime.validate(svc, "users", "run1")
    assert runtime.checkpoint(svc, "run1") == "promote"
    runtime.promote(svc)
    runtime.finish(svc, "run1")
    assert rows_of(target, "public", "users", ["id"]) == rows_of(source, "public", "users", ["id"])


def test_tampered_value_fails_checksum_names_chunk_and_key_and_rolls_back(service) -> None:
    svc, source, target = service
    load_all(svc, "run1")
    runtime.validate(svc, "users", "run1")
    runtime.promote(svc)
    live_before = rows_of(target, "public", "users", ["id"])

    chunks = load_all(svc, "run2")
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("""UPDATE _dbsplit_staging."public.users" SET full_name = full_name || 'x' WHERE id = 1234""")
    with pytest.raises(DataCheckFailed) as failure:
        runtime.validate(svc, "users", "run2")
    message = str(failure.value)
    assert "dbsplit_chunk_checksums_match" in message and "rows with key 1234 differ" in message
    bad_chunk = next(c for c in chunks if (c["lo"] is None or int(c["lo"][0]) <= 1234)
                     and (c["hi"] is None or 1234 < int(c["hi"][0])))
    assert f"chunk {bad_chunk['index'] + 1}/{bad_chunk['count']}" in message

    assert runtime.checkpoint(svc, "run2") == "rollback"
    runtime.rollback(svc)
    with pytest.raises(DataCheckFailed, match="dbsplit_chunk_checksums_match"):
        runtime.finish(svc, "run2")
    assert rows_of(target, "public", "users", ["id"]) == live_before
    with psycopg.connect(target) as conn:
        assert conn.execute("""SELECT to_regclass('_dbsplit_staging."public.users"')""").fetchone()[0] is None
