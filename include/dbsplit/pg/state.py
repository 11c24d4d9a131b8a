"""The `_dbsplit` schema in each target: evidence of every table migration, read by demo and reports."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import psycopg

from dbsplit.pg.rows import one_row

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
CREATE TABLE IF NOT EXISTS _dbsplit.loads (
    load_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    target_table text NOT NULL,
    status text NOT NULL,              -- loading, promoted, rolled_back, abandoned
    chunk_rows integer NOT NULL,
    columns jsonb NOT NULL,            -- the target columns the staging table was built with
    chunks jsonb NOT NULL,             -- the chunk plan, fixed for the life of the load
    run_id text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS loads_one_open ON _dbsplit.loads (target_table) WHERE status = 'loading';
CREATE TABLE IF NOT EXISTS _dbsplit.rejects (
    load_id bigint NOT NULL REFERENCES _dbsplit.loads,
    chunk_index integer NOT NULL,
    source_key text,
    column_name text,
    value text,
    reason text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS _dbsplit.chunks (
    load_id bigint NOT NULL REFERENCES _dbsplit.loads,
    chunk_index integer NOT NULL,
    source_rows bigint NOT NULL,
    source_checksum text,              -- checksum of the chunk's source rows, taken in the extract snapshot
    rows bigint NOT NULL,
    bytes bigint NOT NULL,
    seconds double precision NOT NULL,
    run_id text NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (load_id, chunk_index)
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
    exists = one_row(conn.execute("SELECT to_regclass('_dbsplit.table_evidence')"))[0]
    if exists is None:
        return []
    rows = conn.execute(
        "SELECT DISTINCT ON (target_table) dag_id, run_id, service, source_table, target_table, source_rows,"
        " target_rows, success, checks, load_seconds FROM _dbsplit.table_evidence"
        " ORDER BY target_table, id DESC"
    ).fetchall()
    return [Evidence(*r) for r in rows]


def open_load(conn: psycopg.Connection, target_table: str) -> tuple[int, int, list, list, set[int]] | None:
    """The unfinished load of a table: (load_id, chunk_rows, columns, chunks, indexes of loaded chunks)."""
    row = conn.execute(
        "SELECT load_id, chunk_rows, columns, chunks FROM _dbsplit.loads "
        "WHERE target_table = %s AND status = 'loading'",
        (target_table,)).fetchone()
    if row is None:
        return None
    done = {r[0] for r in conn.execute("SELECT chunk_index FROM _dbsplit.chunks WHERE load_id = %s", (row[0],))}
    return row[0], row[1], row[2], row[3], done


def start_load(conn: psycopg.Connection, target_table: str, chunk_rows: int, columns: list, chunks: list,
               run_id: str) -> int:
    """Abandon any unfinished load of the table and open a new one; return its id."""
    conn.execute("UPDATE _dbsplit.loads SET status = 'abandoned', finished_at = now() "
                 "WHERE target_table = %s AND status = 'loading'", (target_table,))
    return one_row(conn.execute(
        "INSERT INTO _dbsplit.loads (target_table, status, chunk_rows, columns, chunks, run_id) "
        "VALUES (%s, 'loading', %s, %s, %s, %s) RETURNING load_id",
        (target_table, chunk_rows, json.dumps(columns), json.dumps(chunks), run_id)))[0]


def claim_chunk(conn: psycopg.Connection, load_id: int, index: int, source_rows: int, source_checksum: str | None,
                run_id: str) -> bool:
    """Claim a chunk inside its loading transaction; False when it is loaded already (or being loaded).

    The claim and the chunk's rows commit together, so a chunk is in staging entirely or not at all.
    """
    return conn.execute(
        "INSERT INTO _dbsplit.chunks "
        "(load_id, chunk_index, source_rows, source_checksum, rows, bytes, seconds, run_id) "
        "VALUES (%s, %s, %s, %s, 0, 0, 0, %s) ON CONFLICT DO NOTHING RETURNING 1",
        (load_id, index, source_rows, source_checksum, run_id)).fetchone() is not None


def complete_chunk(conn: psycopg.Connection, load_id: int, index: int, rows: int, size: int, seconds: float) -> None:
    conn.execute("UPDATE _dbsplit.chunks SET rows = %s, bytes = %s, seconds = %s "
                 "WHERE load_id = %s AND chunk_index = %s", (rows, size, seconds, load_id, index))


def chunk_totals(conn: psycopg.Connection, load_id: int) -> tuple[int, int, int, float]:
    """(chunks loaded, source rows, loaded rows, load seconds) of a load."""
    return one_row(conn.execute(
        "SELECT count(*), coalesce(sum(source_rows), 0)::bigint, coalesce(sum(rows), 0)::bigint, "
        "coalesce(sum(seconds), 0)::float8 "
        "FROM _dbsplit.chunks WHERE load_id = %s", (load_id,)))[:4]


def finish_load(conn: psycopg.Connection, load_id: int, status: str) -> None:
    conn.execute("UPDATE _dbsplit.loads SET status = %s, finished_at = now() WHERE load_id = %s", (status, load_id))


def source_checksums(conn: psycopg.Connection, load_id: int) -> dict[int, tuple[int, str | None]]:
    """chunk index -> (source rows, source checksum) of a load."""
    return {i: (n, c) for i, n, c in conn.execute(
        "SELECT chunk_index, source_rows, source_checksum FROM _dbsplit.chunks WHERE load_id = %s", (load_id,))}


def record_rejects(conn: psycopg.Connection, load_id: int, index: int, rejects: list[Any]) -> None:
    """Rejected rows of a chunk (objects with key, column, value, reason), inside the chunk's transaction."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO _dbsplit.rejects (load_id, chunk_index, source_key, column_name, value, reason) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            [(load_id, index, r.key, r.column, r.value, r.reason) for r in rejects])


def reject_count(conn: psycopg.Connection, load_id: int) -> int:
    return one_row(conn.execute("SELECT count(*) FROM _dbsplit.rejects WHERE load_id = %s", (load_id,)))[0]


def rejects_sample(conn: psycopg.Connection, load_id: int, limit: int = 20) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT source_key, column_name, value, reason FROM _dbsplit.rejects WHERE load_id = %s "
                        "ORDER BY chunk_index, source_key LIMIT %s", (load_id, limit)).fetchall()
    return [{"source_key": k, "column": c, "value": v, "reason": r} for k, c, v, r in rows]
