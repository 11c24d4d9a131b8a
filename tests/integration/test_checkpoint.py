"""Validation checkpoints: tampering in staging is caught, located and rolled back; live stays untouched."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from dbsplit.airflow import runtime
from dbsplit.pg.conn import airflow_conn_env
from dbsplit.errors import DataCheckFailed
from dbsplit.plan import load_plan
from dbsplit.airflow.render import service_descriptor
from dbsplit.local.samples import create_sample
from dbsplit.airflow.specs import service_specs
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


def test_a_table_cut_over_is_not_loaded_again_by_the_service_dag(service) -> None:
    """After a cut-over the service database is the system of record: the service DAG triggered by hand
    (no orchestrator preflight) refuses before it stages anything, for static and whole-schema tables."""
    from dbsplit.engine.resync.state import CutOverDone, mark_cut_over

    svc, source, target = service
    load_all(svc, "run1")
    runtime.validate(svc, "users", "run1")
    runtime.promote(svc)
    runtime.finish(svc, "run1")
    with psycopg.connect(target, autocommit=True) as conn:
        mark_cut_over(conn, ["public.users"], "orchestrator-run-3")
        conn.execute("UPDATE users SET full_name = 'written by the service' WHERE id = 7")
    live = rows_of(target, "public", "users", ["id"])
    with pytest.raises(CutOverDone, match=r"public\.users: cut over by orchestrator run orchestrator-run-3 .*Fix: do not"):
        runtime.prepare_target(svc)
    with pytest.raises(CutOverDone, match="orchestrator-run-3"):   # the check whole-schema tables meet
        runtime.plan_chunks(svc, "users", "run2")
    assert rows_of(target, "public", "users", ["id"]) == live
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = '_dbsplit_staging'").fetchone()[0] == 0


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


TRANSFORMED = {
    # a uuid key: a staged row's chunk is not known from its key, the table total is compared
    "uuid_key": "    tables:\n      - {source: users, uuid_key: true}\n",
    # the key copied under a new name: compared per chunk by the renamed key
    "renamed key": "    tables:\n      - {source: users, transforms: {id: {rename: user_id}, full_name: {rename: name}}}\n",
}


@pytest.mark.parametrize("variant", list(TRANSFORMED))
def test_tampered_value_of_a_transformed_table_fails_checksum_names_chunk_and_key(service, tmp_path, variant) -> None:
    import uuid

    svc, source, target = service
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(PLAN.replace("    tables: [users]\n", TRANSFORMED[variant]))
    [spec] = service_specs(load_plan(plan_file), str(plan_file))
    svc = service_descriptor(spec)
    chunks = load_all(svc, "run1")
    runtime.validate(svc, "users", "run1")        # a clean transformed load passes its checksum
    with psycopg.connect(target) as conn:
        [ev] = [e for e in runtime.state.latest_evidence(conn) if e.run_id == "run1"]
    [check] = [c for c in ev.checks if c["expectation"] == runtime.CHECKSUM]
    assert check["success"] and "match the transformed source" in check["details"], check
    assert runtime.checkpoint(svc, "run1") == "promote"
    runtime.promote(svc)
    key_column = "id" if variant == "uuid_key" else "user_id"
    live_before = rows_of(target, "public", "users", [key_column])

    chunks = load_all(svc, "run2")
    if variant == "uuid_key":
        key = str(uuid.uuid5(load_plan(plan_file).namespace_uuid, "public.users:1234"))
        shown = f"{key} (source key 1234)"
    else:
        key, shown = 1234, "1234"
    column = sql.Identifier("full_name" if variant == "uuid_key" else "name")
    with psycopg.connect(target, autocommit=True) as conn:
        changed = conn.execute(sql.SQL("UPDATE {} SET {} = 'x' || {} WHERE {} = %s").format(
            sql.Identifier("_dbsplit_staging", "public.users"), column, column, sql.Identifier(key_column)), [key]).rowcount
    assert changed == 1
    with pytest.raises(DataCheckFailed) as failure:
        runtime.validate(svc, "users", "run2")
    message = str(failure.value)
    assert "dbsplit_chunk_checksums_match" in message and f"rows with key {shown} differ" in message, message
    bad_chunk = next(c for c in chunks if (c["lo"] is None or int(c["lo"][0]) <= 1234)
                     and (c["hi"] is None or 1234 < int(c["hi"][0])))
    assert f"chunk {bad_chunk['index'] + 1}/{bad_chunk['count']}" in message
    assert runtime.checkpoint(svc, "run2") == "rollback"
    runtime.rollback(svc)
    with psycopg.connect(target) as conn:
        assert conn.execute("""SELECT to_regclass('_dbsplit_staging."public.users"')""").fetchone()[0] is None
    assert rows_of(target, "public", "users", [key_column]) == live_before   # live untouched


@pytest.mark.parametrize("variant", list(TRANSFORMED))
def test_rows_refused_at_load_leave_the_transformed_checksum(service, tmp_path, variant) -> None:
    """A row the target refuses is a reject, not a checksum difference: its fingerprint leaves the chunk's."""
    svc, source, target = service
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(PLAN.replace("    tables: [users]\n", TRANSFORMED[variant].replace(
        "{source: users,", "{source: users, max_rejected_rows: 1,")))
    [spec] = service_specs(load_plan(plan_file), str(plan_file))
    svc = service_descriptor(spec)
    runtime.prepare_target(svc)
    chunks = runtime.plan_chunks(svc, "users", "run1")
    assert len(chunks) >= 2
    with psycopg.connect(source) as conn:
        [name] = conn.execute("SELECT full_name FROM users WHERE id = 1234").fetchone()
    column = "full_name" if variant == "uuid_key" else "name"
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT refuse_one CHECK ({} <> {})").format(
            sql.Identifier("_dbsplit_staging", "public.users"), sql.Identifier(column), sql.Literal(name)))
    for chunk in chunks:
        runtime.load(svc, runtime.transform(svc, runtime.extract(svc, chunk, "run1"), "run1"), "run1")
    runtime.validate(svc, "users", "run1")
    with psycopg.connect(target) as conn:
        [ev] = [e for e in runtime.state.latest_evidence(conn) if e.run_id == "run1"]
        [(key,)] = conn.execute("SELECT source_key FROM _dbsplit.rejects").fetchall()
    assert key == "1234"
    [check] = [c for c in ev.checks if c["expectation"] == runtime.CHECKSUM]
    assert check["success"] and "match the transformed source" in check["details"], check
    assert runtime.checkpoint(svc, "run1") == "promote"
