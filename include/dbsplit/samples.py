"""Sample monoliths: create, fill, count and fingerprint the example databases of include/examples/<name>/.

A sample is three SQL scripts run in one transaction: schema.sql (tables), generate.sql (data, made
server-side with generate_series from the counts in the settings dbsplit.<table>) and constraints.sql
(foreign keys and indexes). The data depends only on the requested row count, so the same count gives
the same bytes on any server and PostgreSQL version.
"""

from __future__ import annotations

from pathlib import Path
from typing import LiteralString

import psycopg
from psycopg import sql

from dbsplit.errors import DbsplitError

SAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = ("schema.sql", "generate.sql", "constraints.sql")
MIN_ROWS = 1_000

# Per table: (share of all rows, minimum rows). The last table takes what the others leave.
# The shares keep the generator's invariants for any rows >= MIN_ROWS: user_skills <= users * skills,
# job_skills <= jobs * skills, applications <= users * jobs, notification_preferences <= users.
JOBBOARD: dict[str, tuple[float, int]] = {
    "users": (0.04, 20),
    "user_skills": (0.06, 20),
    "companies": (0.005, 5),
    "job_categories": (0.0005, 8),
    "skills": (0.002, 20),
    "jobs": (0.03, 20),
    "job_skills": (0.05, 20),
    "applications": (0.17, 20),
    "application_attachments": (0.07, 10),
    "interviews": (0.04, 10),
    "search_history": (0.13, 10),
    "saved_searches": (0.015, 10),
    "notification_templates": (0.0003, 8),
    "notifications": (0.12, 10),
    "notification_preferences": (0.03, 10),
    "analytics_events": (0.0, 10),
}
SAMPLES: dict[str, dict[str, tuple[float, int]]] = {"jobboard": JOBBOARD}

# session settings that make generation and text output independent of the server's defaults
_SESSION = {"client_encoding": "UTF8", "TimeZone": "UTC", "DateStyle": "ISO, YMD", "IntervalStyle": "postgres",
            "bytea_output": "hex", "search_path": "public", "work_mem": "64MB", "maintenance_work_mem": "256MB"}


class SampleError(DbsplitError):
    """A sample cannot be created or read."""


def sample_tables(name: str = "jobboard") -> list[str]:
    """The tables of a sample, parents before children within each service."""
    if name not in SAMPLES:
        raise SampleError(f"unknown sample {name!r}. Fix: use one of {', '.join(sorted(SAMPLES))}.")
    return list(SAMPLES[name])


def planned_counts(rows: int, name: str = "jobboard") -> dict[str, int]:
    """Rows per table for a requested total: proportional shares, minimums, remainder to the last table."""
    if rows < MIN_ROWS:
        raise SampleError(f"rows={rows} is too small. Fix: ask for at least {MIN_ROWS} rows.")
    sample_tables(name)
    shares = SAMPLES[name]
    *first, last = shares
    counts = {t: max(shares[t][1], round(rows * shares[t][0])) for t in first}
    counts[last] = max(shares[last][1], rows - sum(counts.values()))
    return counts


def sample_exists(conninfo: str, name: str = "jobboard") -> bool:
    """True when every table of the sample exists in the database and holds rows."""
    with psycopg.connect(conninfo) as conn:
        for table in sample_tables(name):
            if not _table_exists(conn, table):
                return False
            query = sql.SQL("SELECT EXISTS (SELECT FROM {})").format(sql.Identifier("public", table))
            if not _scalar(conn, query):
                return False
    return True


def create_sample(conninfo: str, name: str = "jobboard", rows: int = 50_000) -> dict[str, int]:
    """Create and fill the sample's tables in an empty database, in one transaction; return rows per table."""
    counts = planned_counts(rows, name)
    with psycopg.connect(conninfo) as conn, conn.transaction():
        _check_target(conn, name)
        _set_session(conn)
        for table, count in counts.items():
            conn.execute("SELECT set_config(%s, %s, true)", (f"dbsplit.{table}", str(count)))
        for script in SCRIPTS:
            conn.execute((SAMPLES_DIR / name / script).read_bytes())
        tables = sql.SQL(", ").join(sql.Identifier("public", t) for t in counts)
        conn.execute(sql.SQL("ANALYZE {}").format(tables))
        return _counts(conn, name)


def table_counts(conninfo: str, name: str = "jobboard") -> dict[str, int]:
    """Exact rows per table of the sample."""
    with psycopg.connect(conninfo) as conn:
        return _counts(conn, name)


def table_checksums(conninfo: str, name: str = "jobboard") -> dict[str, str]:
    """Per table, md5 over the md5 of every row's text in primary-key order; equal checksums, equal data."""
    with psycopg.connect(conninfo) as conn, conn.transaction():
        _set_session(conn)
        return {table: _checksum(conn, table) for table in sample_tables(name)}


def _checksum(conn: psycopg.Connection, table: str) -> str:
    order = sql.SQL(", ").join(sql.Identifier("t", c) for c in _primary_key(conn, table))
    query = sql.SQL("SELECT md5(coalesce(string_agg(md5(t::text), '' ORDER BY {}), '')) FROM {} AS t").format(
        order, sql.Identifier("public", table))
    return str(_scalar(conn, query))


def _primary_key(conn: psycopg.Connection, table: str) -> list[str]:
    rows = conn.execute(
        """SELECT a.attname FROM pg_index AS i
           CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
           JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
           WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY k.ord""",
        (sql.Identifier("public", table).as_string(conn),),
    ).fetchall()
    if not rows:
        raise SampleError(f"table {table!r} has no primary key. Fix: recreate the sample with create_sample.")
    return [r[0] for r in rows]


def _counts(conn: psycopg.Connection, name: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table in sample_tables(name):
        if not _table_exists(conn, table):
            raise SampleError(f"table public.{table} of sample {name!r} is missing. Fix: run create_sample first.")
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("public", table))
        counts[table] = int(str(_scalar(conn, query)))
    return counts


def _check_target(conn: psycopg.Connection, name: str) -> None:
    """The database must be UTF8 and must not hold any table of the sample yet."""
    encoding = _scalar(conn, "SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()")
    if encoding != "UTF8":
        raise SampleError(f"the database has encoding {encoding}; the sample holds non-ASCII text. "
                          "Fix: create the database WITH ENCODING 'UTF8' TEMPLATE template0.")
    present = [t for t in sample_tables(name) if _table_exists(conn, t)]
    if present:
        raise SampleError(f"the database already has tables of sample {name!r}: {', '.join(present)}. "
                          "Fix: use an empty database, or drop them first.")


def _set_session(conn: psycopg.Connection) -> None:
    for setting, value in _SESSION.items():
        conn.execute("SELECT set_config(%s, %s, true)", (setting, value))


def _table_exists(conn: psycopg.Connection, table: str) -> bool:
    name = sql.Identifier("public", table).as_string(conn)
    return bool(_scalar(conn, "SELECT to_regclass(%s) IS NOT NULL", (name,)))


def _scalar(conn: psycopg.Connection, query: LiteralString | sql.Composable, params: tuple[object, ...] = ()) -> object:
    """The first column of the first row, or None."""
    row = conn.execute(query, params or None).fetchone()
    return row[0] if row else None
