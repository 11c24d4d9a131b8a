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

from dbsplit.airflow_local import airflow_env
from dbsplit.conn import with_dbname

ROOT = Path(__file__).resolve().parents[1]
# Airflow reads its configuration once, at first import: give the test session its own home
# before any test module imports it.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="dbsplit-test-airflow-"))
os.environ.update(airflow_env(_AIRFLOW_HOME, ROOT / "dags"))


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
    from dbsplit import embedded

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
