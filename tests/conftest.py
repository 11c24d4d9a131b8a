"""Shared fixtures: a real PostgreSQL server and throwaway databases on it.

The server is $DBSPLIT_TEST_PG_URL when set, else an embedded PostgreSQL 18 started for the test
session in a temporary directory. Every database a test creates is dropped afterwards.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from dbsplit.local.airflow_local import airflow_env
from dbsplit.pg.conn import with_dbname

ROOT = Path(__file__).resolve().parents[1]
# Airflow reads its configuration once, at first import: give the test session its own home
# before any test module imports it.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="dbsplit-test-airflow-"))
os.environ.update(airflow_env(_AIRFLOW_HOME, ROOT / "dags"))


# Under pytest-xdist (`make test` runs two workers with --dist loadscope) each test is a unit of its own,
# except in these modules: their module- and session-scoped fixtures (an Airflow server, shared DAG
# runs, a parsed DagBag) are costly, so each runs whole on one worker and sets them up once.
# (xdist's xdist_group marks would say this, but xdist 3.8 cannot rename pytest 9's node ids.)
SHARED_FIXTURE_MODULES = (
    "tests/e2e/",
    "tests/dags/test_airflow_local.py",
    "tests/dags/test_dag_integrity.py",
    "tests/integration/test_references.py",
    "tests/integration/test_samples.py",
    "tests/integration/test_suites.py",
)


@pytest.hookimpl(optionalhook=True)   # the hook exists only with pytest-xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """--dist loadscope with SHARED_FIXTURE_MODULES as the only scopes wider than one test."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return next((m for m in SHARED_FIXTURE_MODULES if nodeid.startswith(m)), nodeid)

    return SharedFixtureScheduling(config, log)


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    """AIRFLOW_HOME of this test session (configured before Airflow was imported)."""
    return _AIRFLOW_HOME


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """Conninfo of a server on which tests may create and drop databases."""
    url = os.environ.get("DBSPLIT_TEST_PG_URL")
    if url:
        yield url
        return
    from dbsplit.local import embedded

    # Not under pytest's basetemp: pytest deletes older basetemps, which would pull the data
    # directory from under a server still used by a concurrent test session.
    root = Path(tempfile.mkdtemp(prefix="dbsplit-test-pg-"))
    url = embedded.start(root / "data")
    yield url
    embedded.stop(root / "data")
    shutil.rmtree(root, ignore_errors=True)


def create_database(server_url: str, name: str) -> str:
    """Create a database on the server and return its conninfo."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_dbname(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def make_db(pg_server_url: str) -> Iterator[Callable[[str], str]]:
    """Factory: make_db("label") creates a uniquely named database and returns its conninfo."""
    created: list[str] = []

    def _make(label: str = "db") -> str:
        name = f"t_{label}_{uuid.uuid4().hex[:8]}"
        created.append(name)
        return create_database(pg_server_url, name)

    yield _make
    for name in created:
        drop_database(pg_server_url, name)
