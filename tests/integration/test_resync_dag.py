"""The generated resync DAG through Airflow (dag.test): after a service is migrated by its DAG, inserts,
updates and deletes in the source reach the target through `dbsplit_resync_<service>`, and the target
then equals the source passed through the plan's transforms, row by row (the independent oracle of
the examples' end-to-end test). A second resync without source changes writes nothing, and the
source is never written.

The plan is the jobboard example's `jobs` service with watermarks on three tables: `companies`
(transformed: a uuid_key and a masked column, so the key table maps source keys to UUIDs), `jobs`
(transformed: company_id follows the companies' UUID as a uuid_ref) and `skills` (pass-through).

The foreign key jobs -> companies stays inside the service, so the target has it too: a last resync
brings a new company with a job referencing it (and an existing job moved to it), and a company deleted
together with its jobs (their job_skills rows going with them by ON DELETE CASCADE, in both databases).
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from dbsplit.local.airflow_local import DagRunResult, run_dags
from dbsplit.pg.conn import airflow_conn_env
from dbsplit.plan import load_plan
from dbsplit.engine.resolve import resolve_service
from dbsplit.local.samples import create_sample
from tests.integration.oracle import actual_rows, expected_rows
from tests.integration.test_migrate_users import database_fingerprint

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SALT = "resync-dag-salt"
SERVICE = "jobs"

PLAN = """\
version: 1
name: jobboard
source: {conn_id: jobboard_monolith, schema: public}
defaults:
  retries: 0
  chunk_rows: 1000
  mask_salt: {variable: dbsplit_mask_salt}
services:
  jobs:
    target: {conn_id: jobboard_jobs}
    resync: {on_conflict: source_wins}
    tables:
      - source: companies
        uuid_key: true
        watermark: updated_at
        transforms:
          website: {mask: hash}
      - job_categories
      - source: skills
        watermark: updated_at
      - source: jobs
        watermark: updated_at
      - job_skills
"""
SYNCED = {"public.companies", "public.skills", "public.jobs"}

# rows that nothing references, added to the monolith before the migration: the deletions after it
SPARE_ROWS = """
INSERT INTO companies (id, name, slug, website, country_code, created_at, updated_at)
SELECT m + g, 'Spare company ' || g, 'spare-company-' || g, 'https://spare' || g || '.example', 'DE',
       '2020-01-01', '2020-01-01' FROM generate_series(1, 3) g, (SELECT max(id) AS m FROM companies) x;
INSERT INTO skills (id, name, slug, created_at, updated_at)
SELECT m + g, 'Spare skill ' || g, 'spare-skill-' || g, '2020-01-01', '2020-01-01'
FROM generate_series(1, 3) g, (SELECT max(id) AS m FROM skills) x;
INSERT INTO jobs (id, company_id, category_id, title, status, employment_type, is_remote, posted_at, updated_at)
SELECT m + g, c, cat, 'Spare job ' || g, 'draft', 'contract', false, '2020-01-01', '2020-01-01'
FROM generate_series(1, 3) g, (SELECT max(id) AS m, min(company_id) AS c, min(category_id) AS cat FROM jobs) x;
"""

# a company with two jobs (each with a job_skills row) that the last resync sees deleted all together
DOOMED_ROWS = """
INSERT INTO companies (id, name, slug, website, country_code, created_at, updated_at)
SELECT max(id) + 1, 'Doomed company', 'doomed-company', 'https://doomed.example', 'NL', '2020-01-01', '2020-01-01'
FROM companies;
INSERT INTO jobs (id, company_id, category_id, title, status, employment_type, is_remote, posted_at, updated_at)
SELECT m + g, c.id, cat, 'Doomed job ' || g, 'open', 'contract', true, '2020-01-01', '2020-01-01'
FROM generate_series(1, 2) g, (SELECT max(id) AS m, min(category_id) AS cat FROM jobs) x,
     companies c WHERE c.slug = 'doomed-company';
INSERT INTO job_skills (job_id, skill_id, is_required, created_at)
SELECT j.id, s.id, true, '2020-01-01' FROM jobs j JOIN companies c ON c.id = j.company_id,
     (SELECT min(id) AS id FROM skills) s WHERE c.slug = 'doomed-company';
"""

# parents and children changed together: the target's foreign key jobs -> companies must hold throughout
FK_CHANGES = [
    ("public.companies", "insert",
     "INSERT INTO companies (id, name, slug, website, country_code, created_at, updated_at)"
     " SELECT max(id) + 1, 'Newborn company', 'newborn-company', 'https://newborn.example', 'SE', now(), now()"
     " FROM companies"),
    ("public.jobs", "insert",
     "INSERT INTO jobs (id, company_id, category_id, title, status, employment_type, is_remote, posted_at, updated_at)"
     " SELECT m + 1, c.id, cat, 'First job of a new company', 'open', 'full_time', false, now(), now()"
     " FROM (SELECT max(id) AS m, min(category_id) AS cat FROM jobs) x, companies c WHERE c.slug = 'newborn-company'"),
    ("public.jobs", "update",
     "UPDATE jobs SET company_id = (SELECT id FROM companies WHERE slug = 'newborn-company'), updated_at = now()"
     " WHERE id = (SELECT min(id) FROM jobs)"),
    ("public.jobs", "delete",      # job_skills rows go by ON DELETE CASCADE (in the target too)
     "DELETE FROM jobs WHERE company_id = (SELECT id FROM companies WHERE slug = 'doomed-company')"),
    ("public.companies", "delete", "DELETE FROM companies WHERE slug = 'doomed-company'"),
]

# the source changes between the resyncs; `now()` is after the full load's watermark, '2001-01-01' is
# an insert with an old clock (only the key diff finds it)
CHANGES = {
    "public.companies": [
        ("update", "UPDATE companies SET name = name || ' (renamed)', website = 'https://moved.example/' || id,"
                   " updated_at = now() WHERE id IN (SELECT id FROM companies ORDER BY id LIMIT 5)"),
        ("insert", "INSERT INTO companies (id, name, slug, website, country_code, founded_on, employee_count,"
                   " is_verified, description, created_at, updated_at)"
                   " SELECT m + g, 'New company ' || g, 'new-company-' || g, CASE WHEN g = 1 THEN NULL ELSE"
                   " 'https://new' || g || '.example' END, 'FR', '1999-12-31', 10 * g, g = 2, 'fresh', now(),"
                   " CASE WHEN g = 1 THEN timestamptz '2001-01-01' ELSE now() END"
                   " FROM generate_series(1, 2) g, (SELECT max(id) AS m FROM companies) x"),
        ("delete", "DELETE FROM companies WHERE id IN (SELECT id FROM companies c WHERE NOT EXISTS"
                   " (SELECT 1 FROM jobs j WHERE j.company_id = c.id) ORDER BY id DESC OFFSET 2 LIMIT 2)"),
    ],
    "public.skills": [
        ("update", "UPDATE skills SET name = name || ' v2', updated_at = now()"
                   " WHERE id IN (SELECT id FROM skills ORDER BY id LIMIT 3)"),
        ("insert", "INSERT INTO skills (id, name, slug, created_at, updated_at)"
                   " SELECT m + g, 'New skill ' || g, 'new-skill-' || g, now(),"
                   " CASE WHEN g = 1 THEN timestamptz '2001-01-01' ELSE now() END"
                   " FROM generate_series(1, 2) g, (SELECT max(id) AS m FROM skills) x"),
        ("delete", "DELETE FROM skills WHERE id IN (SELECT id FROM skills s WHERE NOT EXISTS"
                   " (SELECT 1 FROM job_skills j WHERE j.skill_id = s.id) AND NOT EXISTS"
                   " (SELECT 1 FROM user_skills u WHERE u.skill_id = s.id) ORDER BY id DESC OFFSET 2 LIMIT 2)"),
    ],
    "public.jobs": [
        # a new title and another (existing, kept) company: the uuid_ref company_id changes too
        ("update", "UPDATE jobs SET title = title || ' (updated)', salary_max = salary_max + 1,"
                   " company_id = (SELECT min(id) FROM companies), updated_at = now()"
                   " WHERE id IN (SELECT id FROM jobs ORDER BY id LIMIT 6)"),
        ("insert", "INSERT INTO jobs (id, company_id, category_id, title, description, status, employment_type,"
                   " is_remote, location, salary_min, salary_max, salary_currency, tags, expires_on, posted_at,"
                   " updated_at)"
                   " SELECT m + g, c, cat, 'New job ' || g, NULL, 'open', 'full_time', g = 1, 'Berlin', 1000, 2000,"
                   " 'EUR', ARRAY['new', 'x' || g], NULL, now(), CASE WHEN g = 1 THEN timestamptz '2001-01-01'"
                   " ELSE now() END FROM generate_series(1, 3) g, (SELECT max(id) AS m, max(company_id) AS c,"
                   " min(category_id) AS cat FROM jobs) x"),
        ("delete", "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs j WHERE NOT EXISTS"
                   " (SELECT 1 FROM applications a WHERE a.job_id = j.id) AND NOT EXISTS"
                   " (SELECT 1 FROM job_skills s WHERE s.job_id = j.id) ORDER BY id DESC OFFSET 3 LIMIT 2)"),
    ],
}


def change_source(source: str) -> dict[str, tuple[int, int]]:
    """Apply CHANGES; (rows upserted, rows deleted) that the resync must report per target table."""
    expect = {}
    with psycopg.connect(source, autocommit=True) as conn:
        for table, statements in CHANGES.items():
            counts = {op: conn.execute(q).rowcount for op, q in statements}
            assert all(n > 0 for n in counts.values()), (table, counts)
            expect[table] = (counts["update"] + counts["insert"], counts["delete"])
    return expect


def versions(target: str, tables: list[str]) -> dict[str, list[tuple]]:
    """(ctid, xmin, row text) of every row: a rewritten row changes its ctid and xmin."""
    out = {}
    with psycopg.connect(target) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        for name in tables:
            schema, table = name.split(".")
            out[name] = conn.execute(sql.SQL("SELECT ctid::text, xmin::text, t::text FROM {} t ORDER BY 1").format(
                sql.Identifier(schema, table))).fetchall()
    return out


def sync_state(target: str) -> dict[str, tuple]:
    with psycopg.connect(target) as conn:
        rows = conn.execute("SELECT target_table, runs, last_run_id, last_upserted, last_deleted, last_conflicts,"
                            " last_rejected, keys_ready FROM _dbsplit.sync_state").fetchall()
    return {r[0]: r[1:] for r in rows}


def assert_target_equals_oracle(plan, source: str, target: str) -> None:
    with psycopg.connect(source) as src:
        tables = resolve_service(plan, SERVICE, src)
    assert {f"{t.target_schema}.{t.target_table}" for t in tables if t.watermark} == SYNCED
    for rt in tables:
        expected = expected_rows(source, rt, plan.namespace_uuid, SALT.encode())
        assert expected, rt.target_table
        assert actual_rows(target, rt) == expected, rt.target_table


def test_resync_dag_brings_source_changes_to_the_target_and_then_writes_nothing(make_db, tmp_path: Path) -> None:
    plan_path = tmp_path / "plan.yaml"
    plan_path.write_text(PLAN)
    plan = load_plan(plan_path)
    source, target = make_db("resync_src"), make_db("resync_jobs")
    create_sample(source, "jobboard", rows=3000)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(SPARE_ROWS)
        conn.execute(DOOMED_ROWS)
    env = dict([airflow_conn_env(plan.source.conn_id, source), airflow_conn_env("jobboard_jobs", target)])
    env |= {"DBSPLIT_PLANS": str(plan_path), "AIRFLOW_VAR_DBSPLIT_MASK_SALT": SALT,
            "DBSPLIT_REPORTS_DIR": str(tmp_path / "reports")}

    def run(*dag_ids: str) -> list[DagRunResult]:
        results = run_dags(list(dag_ids), home=tmp_path / "airflow", dags_folder=ROOT / "dags", env=env,
                           max_retry_delay_s=1)
        assert [(r.dag_id, r.state) for r in results] == [(d, "success") for d in dag_ids], \
            {r.dag_id: r.failed_tasks or r.error for r in results}
        return results

    # the migration, then a first resync right after it (no change yet: it builds the key tables)
    _, first = run(f"dbsplit_migrate_{SERVICE}", f"dbsplit_resync_{SERVICE}")
    assert first.task_states and all(s == "success" for s in first.task_states.values()), first.task_states
    assert {t: (up, dl) for t, (_, _, up, dl, *_) in sync_state(target).items()} == {t: (0, 0) for t in SYNCED}
    assert_target_equals_oracle(plan, source, target)

    expect = change_source(source)
    before_target = versions(target, sorted(SYNCED))
    source_before = database_fingerprint(source)

    [second] = run(f"dbsplit_resync_{SERVICE}")
    state = sync_state(target)
    assert {t: (s[1], s[2], s[3]) for t, s in state.items()} == {t: (second.run_id, *expect[t]) for t in SYNCED}
    assert all(s[4] == [] and s[5] == 0 and s[6] for s in state.values()), state   # no conflicts, no rejects
    assert_target_equals_oracle(plan, source, target)
    assert versions(target, sorted(SYNCED)) != before_target

    # nothing changed in the source: the next resync writes nothing
    after_sync = versions(target, sorted(SYNCED))
    [third] = run(f"dbsplit_resync_{SERVICE}")
    state = sync_state(target)
    assert {t: s[:4] for t, s in state.items()} == {t: (3, third.run_id, 0, 0) for t in SYNCED}
    assert versions(target, sorted(SYNCED)) == after_sync
    assert_target_equals_oracle(plan, source, target)
    assert database_fingerprint(source) == source_before

    # a new parent with its children, children moved to it, a parent deleted with its children
    counts = {t: [0, 0] for t in SYNCED}
    with psycopg.connect(source, autocommit=True) as conn:
        for table, op, q in FK_CHANGES:
            n = conn.execute(q).rowcount
            assert n > 0, (table, op)
            counts[table][op == "delete"] += n
    assert counts["public.jobs"][1] >= 2 and counts["public.companies"] == [1, 1], counts
    [fourth] = run(f"dbsplit_resync_{SERVICE}")
    state = sync_state(target)
    assert {t: s[:4] for t, s in state.items()} == {t: (4, fourth.run_id, *counts[t]) for t in SYNCED}
    assert all(s[4] == [] and s[5] == 0 for s in state.values()), state
    assert_target_equals_oracle(plan, source, target)
