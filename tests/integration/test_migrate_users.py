"""The users service DAG migrates its tables through Airflow; every row matches and the source is untouched."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from dbsplit.local.airflow_local import run_dags
from dbsplit.pg.conn import airflow_conn_env
from dbsplit.airflow.dagfactory import DEFAULT_PLAN
from dbsplit.plan import load_plan
from dbsplit.local.samples import create_sample

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def rows_of(conninfo: str, schema: str, table: str, key: list[str]) -> list[str]:
    """Every row as text, in key order."""
    with psycopg.connect(conninfo) as conn:
        query = sql.SQL("SELECT t::text FROM {} AS t ORDER BY {}").format(
            sql.Identifier(schema, table), sql.SQL(", ").join(map(sql.Identifier, key)))
        return [r[0] for r in conn.execute(query)]


def database_fingerprint(conninfo: str) -> dict[str, str]:
    """md5 of every table's full content plus the list of schemas and relations: any write changes it."""
    with psycopg.connect(conninfo) as conn:
        tables = conn.execute(
            "SELECT schemaname, tablename FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
            " ORDER BY 1, 2").fetchall()
        out = {"relations": repr(conn.execute(
            "SELECT n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') ORDER BY 1, 2").fetchall())}
        for schema, table in tables:
            out[f"{schema}.{table}"] = conn.execute(sql.SQL(
                "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {} AS t"
            ).format(sql.Identifier(schema, table))).fetchone()[0]
        return out


def test_users_service_migrates_every_row_and_leaves_source_untouched(make_db, tmp_path: Path) -> None:
    plan = load_plan(DEFAULT_PLAN)
    source = make_db("monolith")
    create_sample(source, "jobboard", rows=3000)
    target = make_db("users")  # the DAG must also work when the database already exists (empty)
    before = database_fingerprint(source)
    env = dict([airflow_conn_env(plan.source.conn_id, source), airflow_conn_env("jobboard_users", target)])
    env["DBSPLIT_PLANS"] = str(DEFAULT_PLAN)

    [result] = run_dags(["dbsplit_migrate_users"], home=tmp_path / "airflow", dags_folder=ROOT / "dags", env=env,
                        max_retry_delay_s=1)

    assert result.state == "success", result.failed_tasks
    for table, key in [("users", ["id"]), ("user_skills", ["user_id", "skill_id"])]:
        source_rows = rows_of(source, "public", table, key)
        assert len(source_rows) > 0
        assert rows_of(target, "public", table, key) == source_rows
    assert database_fingerprint(source) == before
    with psycopg.connect(target) as conn:
        evidence = conn.execute(
            "SELECT target_table, source_rows, target_rows, success FROM _dbsplit.table_evidence ORDER BY 1").fetchall()
    assert [(t, s == n, ok) for t, s, n, ok in evidence] == [("public.user_skills", True, True), ("public.users", True, True)]
