"""preflight: every check passes on a ready migration, and each fails (or warns) on its own problem."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dbsplit.pg.conn import with_dbname
from dbsplit.engine.preflight import Check, PreflightReport, preflight

pytestmark = pytest.mark.integration

SOURCE = """
CREATE TABLE public.users (id int PRIMARY KEY, email text);
INSERT INTO public.users SELECT g, 'u' || g FROM generate_series(1, 5000) g;
CREATE TABLE public.jobs (id int PRIMARY KEY, title text);
CREATE TABLE public.events (id int, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE public.events_2024 PARTITION OF public.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
INSERT INTO public.events SELECT g, date '2024-01-01' + (g % 300) FROM generate_series(1, 5000) g;
"""


def check(report: PreflightReport, name: str) -> Check:
    found = [c for c in report.checks if c.name == name]
    assert len(found) == 1, f"{name!r} not in\n{report}"
    return found[0]


@pytest.fixture
def setup(make_db: Callable[[str], str]) -> tuple[str, str, str]:
    source, users, jobs = make_db("pf_src"), make_db("pf_users"), make_db("pf_jobs")
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(SOURCE)
    with psycopg.connect(users, autocommit=True) as conn:  # a table dbsplit made in an earlier run
        conn.execute("CREATE TABLE public.users (id int PRIMARY KEY, email text)")
        conn.execute("COMMENT ON TABLE public.users IS 'managed by dbsplit'")
    return source, users, jobs


ROUTES = [("public", "users", "public", "users", "users_db"),
          ("public", "events", "public", "events", "users_db"),
          ("public", "jobs", "public", "jobs", "jobs_db")]


@pytest.fixture
def plain_role(pg_server_url: str) -> Iterator[str]:
    role = f"t_pf_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    yield role
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def as_user(conninfo: str, user: str) -> str:
    params = conninfo_to_dict(conninfo)
    params["user"] = user
    return make_conninfo(**params)


def test_all_checks_pass(setup: tuple[str, str, str]) -> None:
    source, users, jobs = setup
    report = preflight(source, {"users_db": users, "jobs_db": jobs}, ROUTES)
    assert report.ok and not report.failures, str(report)
    assert check(report, "connect source").detail.startswith("PostgreSQL ")
    assert check(report, "version source").ok
    assert "managed by dbsplit" in check(report, "target table users_db:public.users").detail
    assert check(report, "target table jobs_db:public.jobs").detail.startswith("absent")
    disk = check(report, "disk users_db")  # both servers of the test suite run on this machine
    assert disk.ok and not disk.warning and "free at" in disk.detail, disk
    assert "same filesystem" in disk.detail  # both targets live on one server


def test_each_check_fails_on_its_problem(setup: tuple[str, str, str], pg_server_url: str) -> None:
    source, users, jobs = setup
    with psycopg.connect(jobs, autocommit=True) as conn:  # a table dbsplit did not create
        conn.execute("CREATE TABLE public.jobs (id int)")
    dead = "host=127.0.0.1 port=1 dbname=nothing user=postgres"
    routes = ROUTES + [("public", "gone", "public", "gone", "users_db"),
                       ("public", "users", "public", "users", "dead_db"),
                       ("public", "users", "public", "users", "undefined_db")]
    report = preflight(source, {"users_db": users, "jobs_db": jobs, "dead_db": dead}, routes,
                       min_source_version=990000, space_factor=1e12)
    assert not report.ok
    failed = {c.name for c in report.failures}
    assert failed == {
        "version source",                      # below the (raised) minimum
        "source table public.gone",            # missing in the source
        "connect dead_db",                     # does not answer
        "connect undefined_db",                # no conninfo at all
        "target table jobs_db:public.jobs",    # exists, not managed by dbsplit
        "disk users_db", "disk jobs_db",       # 1e12 x the source size does not fit
    }, str(report)
    assert "990000" not in check(report, "version source").detail
    assert "Fix:" in check(report, "target table jobs_db:public.jobs").detail
    assert "does not answer" in check(report, "connect dead_db").detail
    assert "Fix:" in check(report, "disk users_db").detail
    assert "dead_db" not in {c.name.split()[-1] for c in report.checks if c.name.startswith("disk")}


def test_missing_target_database(setup: tuple[str, str, str], pg_server_url: str, plain_role: str) -> None:
    source, _, _ = setup
    missing = with_dbname(pg_server_url, f"t_pf_absent_{uuid.uuid4().hex[:8]}")
    report = preflight(source, {"new_db": missing}, [("public", "users", "public", "users", "new_db")])
    assert report.ok, str(report)
    assert "will be created" in check(report, "connect new_db").detail
    assert "database will be created" in check(report, "target table new_db:public.users").detail
    # a user without CREATEDB cannot have it created
    report = preflight(source, {"new_db": as_user(missing, plain_role)}, [("public", "users", "public", "users", "new_db")])
    assert not check(report, "connect new_db").ok and "CREATEDB" in check(report, "connect new_db").detail


def test_unmeasurable_disk_is_a_warning(setup: tuple[str, str, str], plain_role: str) -> None:
    """A user without pg_read_all_settings cannot learn where the data lives: unknown, a warning only."""
    source, users, jobs = setup
    report = preflight(source, {"users_db": as_user(users, plain_role), "jobs_db": jobs}, ROUTES)
    disk = check(report, "disk users_db")
    assert disk.ok and disk.warning and "unknown" in disk.detail, disk
    assert report.ok and disk in report.warnings
    assert "WARN disk users_db" in str(report)


def test_a_table_cut_over_is_not_migrated_again(setup: tuple[str, str, str]) -> None:
    from dbsplit.engine.resync.state import mark_cut_over

    source, users, jobs = setup
    with psycopg.connect(users, autocommit=True) as conn:
        mark_cut_over(conn, ["public.users"], "orchestrator-run-7")
    report = preflight(source, {"users_db": users, "jobs_db": jobs}, ROUTES)
    assert {c.name for c in report.failures} == {"target table users_db:public.users"}, str(report)
    detail = check(report, "target table users_db:public.users").detail
    assert "cut over by orchestrator run orchestrator-run-7" in detail and "Fix:" in detail
