"""The `_dbsplit` schema in each target: evidence of every table migration, read by demo and reports."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import psycopg

STATE_SCHEMA = "_dbsplit"

_DDL = """
CREATE SCHEMA IF NOT EXISTS _dbsplit;
CREATE TABLE IF NOT EXISTS _dbsplit.table_evidence (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dag_id text NOT NULL,
    run_id text NOT NULL,
    service text NOT NULL,
    source_table text NOT NULL,
    target_table text NOT NULL,
    source_rows bigint NOT NULL,
    target_rows bigint,
    success boolean NOT NULL,
    checks jsonb NOT NULL,
    load_seconds double precision,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
"""


@dataclass(frozen=True)
class Evidence:
    dag_id: str
    run_id: str
    service: str
    source_table: str
    target_table: str
    source_rows: int
    target_rows: int | None
    success: bool
    checks: list[dict[str, Any]]
    load_seconds: float | None


def ensure_state_schema(conn: psycopg.Connection) -> None:
    conn.execute(_DDL)


def record_evidence(conn: psycopg.Connection, ev: Evidence) -> None:
    ensure_state_schema(conn)
    conn.execute(
        "INSERT INTO _dbsplit.table_evidence (dag_id, run_id, service, source_table, target_table, source_rows,"
        " target_rows, success, checks, load_seconds) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (ev.dag_id, ev.run_id, ev.service, ev.source_table, ev.target_table, ev.source_rows, ev.target_rows,
         ev.success, json.dumps(ev.checks, default=str), ev.load_seconds),
    )


def latest_evidence(conn: psycopg.Connection) -> list[Evidence]:
    """The most recent evidence record of each target table (empty when none was recorded)."""
    exists = conn.execute("SELECT to_regclass('_dbsplit.table_evidence')").fetchone()[0]
    if exists is None:
        return []
    rows = conn.execute(
        "SELECT DISTINCT ON (target_table) dag_id, run_id, service, source_table, target_table, source_rows,"
        " target_rows, success, checks, load_seconds FROM _dbsplit.table_evidence"
        " ORDER BY target_table, id DESC"
    ).fetchall()
    return [Evidence(*r) for r in rows]
