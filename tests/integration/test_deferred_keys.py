"""Pass-through staging tables get their keys and indexes after the load, exactly as the source has them."""

from __future__ import annotations

import psycopg
import pytest

from dbsplit.airflow import runtime
from dbsplit.pg import staging
from dbsplit.errors import DataCheckFailed
from tests.integration.test_checkpoint import load_all, service  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration

STAGED = '_dbsplit_staging."public.users"'
SHAPE = """
SELECT (SELECT array_agg(pg_get_constraintdef(oid) ORDER BY pg_get_constraintdef(oid)) FROM pg_constraint
        WHERE conrelid = %(t)s::regclass AND contype IN ('p', 'u', 'x', 'c')),
       (SELECT array_agg(regexp_replace(pg_get_indexdef(indexrelid), ' ON \\S+ ', ' ON t ') ORDER BY 1)
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE indrelid = %(t)s::regclass)
"""


def shape(conninfo: str, table: str) -> tuple:
    with psycopg.connect(conninfo) as conn:
        constraints, indexes = conn.execute(SHAPE, {"t": table}).fetchone()
    return sorted(constraints or []), sorted(ix.split(" ON t ", 1)[1] for ix in indexes or [])


def test_keys_wait_for_the_load_then_match_the_source(service) -> None:
    svc, source, target = service
    load_all(svc, "run1")
    staged_constraints, staged_indexes = shape(target, STAGED)
    assert staged_indexes == [], "pass-through staging should load without indexes"
    assert not any(c.startswith(("PRIMARY KEY", "UNIQUE")) for c in staged_constraints)
    runtime.validate(svc, "users", "run1")
    assert shape(target, STAGED) == shape(source, "public.users")
    with psycopg.connect(target) as conn, conn.transaction():
        assert staging.build_deferred_indexes(conn, "public", "users") == 0, "built twice"
    runtime.promote(svc)
    assert shape(target, "public.users") == shape(source, "public.users")


def test_a_duplicate_key_in_staging_fails_the_key_build_and_rolls_back(service) -> None:
    svc, _, target = service
    load_all(svc, "run1")
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute(f"INSERT INTO {STAGED} SELECT * FROM {STAGED} WHERE id = 777")
    with pytest.raises(DataCheckFailed) as failure:
        runtime.validate(svc, "users", "run1")
    message = str(failure.value)
    assert "dbsplit_keys_and_indexes_built failed" in message and "(id)=(777)" in message, message
    assert "expect_column_values_to_be_unique failed" in message, message
    assert runtime.checkpoint(svc, "run1") == "rollback"
    runtime.rollback(svc)
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT to_regclass(%s)", (STAGED,)).fetchone()[0] is None
        assert conn.execute("SELECT to_regclass('public.users')").fetchone()[0] is None
