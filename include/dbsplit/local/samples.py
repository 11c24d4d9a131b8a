"""Sample monoliths: create, fill, count and fingerprint the example databases of include/examples/<name>/.

A sample is three SQL scripts run in one transaction: schema.sql (tables), generate.sql (data, made
server-side with generate_series from the counts in the settings dbsplit.<table>, with the helpers of
include/examples/generate_helpers.sql run just before it) and constraints.sql (foreign keys and indexes).
The data depends only on the requested row count, so the same count gives the same bytes on any server
and PostgreSQL version.

The size distribution of a sample (rows per table for a requested total) is JOBBOARD below for
jobboard, and the sizes.yaml next to the SQL scripts for every other example. A table is named
`table` (schema public) or `schema.table` (payments keeps one schema per service); its count setting
is dbsplit.<name in lower case>, e.g. dbsplit.payment_schema.order for payment_schema."Order".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, LiteralString

import psycopg
import yaml
from psycopg import sql

from dbsplit.errors import DbsplitError

SAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
SCRIPTS = ("schema.sql", "generate.sql", "constraints.sql")
GENERATE_HELPERS = SAMPLES_DIR / "generate_helpers.sql"   # pg_temp functions every generate.sql uses
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
SIZES_FILE = "sizes.yaml"

# session settings that make generation and text output independent of the server's defaults
_SESSION = {"client_encoding": "UTF8", "TimeZone": "UTC", "DateStyle": "ISO, YMD", "IntervalStyle": "postgres",
            "bytea_output": "hex", "search_path": "public", "work_mem": "64MB", "maintenance_work_mem": "256MB",
            # JIT stays on, but LLVM's inlining and optimisation passes over the generators' wide
            # expressions cost more than they save (1M-row samples: up to 40 % faster without them)
            "jit_inline_above_cost": "-1", "jit_optimize_above_cost": "-1"}


class SampleError(DbsplitError):
    """A sample cannot be created or read."""


def _load_sizes(path: Path) -> tuple[dict[str, tuple[float, int]], int]:
    """(shares, default rows) of an example's sizes.yaml: {default_rows: N, tables: {name: [share, minimum]}}."""
    data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    where = f"{path}: "
    if not isinstance(data, dict) or set(data) != {"default_rows", "tables"}:
        raise SampleError(where + "expected exactly the keys default_rows and tables. "
                          "Fix: see include/examples/helpdesk/sizes.yaml.")
    tables = data["tables"]
    if not isinstance(tables, dict) or len(tables) < 2:
        raise SampleError(where + "tables must map at least two table names to [share, minimum].")
    shares: dict[str, tuple[float, int]] = {}
    for table, value in tables.items():
        if (not isinstance(value, list) or len(value) != 2 or isinstance(value[0], bool)
                or not isinstance(value[0], (int, float)) or isinstance(value[1], bool)
                or not isinstance(value[1], int) or not 0 <= value[0] < 1 or value[1] < 1):
            raise SampleError(where + f"tables.{table}: expected [share in 0..1, minimum rows >= 1], got {value!r}.")
        shares[str(table)] = (float(value[0]), value[1])
    if sum(share for share, _ in shares.values()) >= 1:
        raise SampleError(where + "the shares add up to 1 or more; the last table needs the remainder.")
    default_rows = data["default_rows"]
    if not isinstance(default_rows, int) or isinstance(default_rows, bool) or default_rows < MIN_ROWS:
        raise SampleError(where + f"default_rows must be an integer >= {MIN_ROWS}.")
    return shares, default_rows


def _load_samples() -> tuple[dict[str, dict[str, tuple[float, int]]], dict[str, int]]:
    """jobboard from JOBBOARD, then every include/examples/<name>/ with sizes.yaml and the three scripts."""
    samples: dict[str, dict[str, tuple[float, int]]] = {"jobboard": JOBBOARD}
    defaults = {"jobboard": 50_000}
    for path in sorted(SAMPLES_DIR.glob(f"*/{SIZES_FILE}")):
        if path.parent.name not in samples and all((path.parent / s).is_file() for s in SCRIPTS):
            samples[path.parent.name], defaults[path.parent.name] = _load_sizes(path)
    return samples, defaults


# name -> table -> (share of all rows, minimum rows), in the order of sample_tables(); name -> default total
SAMPLES, DEFAULT_ROWS = _load_samples()


def sample_tables(name: str = "jobboard") -> list[str]:
    """The tables of a sample (`table`, or `schema.table` outside public), parents before children per service."""
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
            query = sql.SQL("SELECT EXISTS (SELECT FROM {})").format(table_identifier(table))
            if not _scalar(conn, query):
                return False
    return True


def create_sample(conninfo: str, name: str = "jobboard", rows: int | None = None) -> dict[str, int]:
    """Create and fill the sample's tables in an empty database, in one transaction; return rows per table.

    rows is the requested total (default: the sample's default, 50,000 for jobboard, 20,000 for the others).
    """
    sample_tables(name)
    counts = planned_counts(DEFAULT_ROWS[name] if rows is None else rows, name)
    with psycopg.connect(conninfo) as conn, conn.transaction():
        _check_target(conn, name)
        _set_session(conn)
        for table, count in counts.items():
            conn.execute("SELECT set_config(%s, %s, true)", (count_setting(table), str(count)))
        for script in SCRIPTS:
            if script == "generate.sql":
                conn.execute(GENERATE_HELPERS.read_bytes())
            conn.execute((SAMPLES_DIR / name / script).read_bytes())
        tables = sql.SQL(", ").join(table_identifier(t) for t in counts)
        conn.execute(sql.SQL("ANALYZE {}").format(tables))
        return _counts(conn, name)


def table_identifier(table: str) -> sql.Identifier:
    """The qualified identifier of a sample table name: `t` is public.t, `s.t` is s.t (case kept)."""
    schema, _, bare = table.rpartition(".")
    return sql.Identifier(schema or "public", bare)


def count_setting(table: str) -> str:
    """The custom setting that holds a table's row count for generate.sql (lower case, as PostgreSQL folds it)."""
    return f"dbsplit.{table.lower()}"


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
        order, table_identifier(table))
    return str(_scalar(conn, query))


def _primary_key(conn: psycopg.Connection, table: str) -> list[str]:
    rows = conn.execute(
        """SELECT a.attname FROM pg_index AS i
           CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
           JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
           WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY k.ord""",
        (table_identifier(table).as_string(conn),),
    ).fetchall()
    if not rows:
        raise SampleError(f"table {table!r} has no primary key. Fix: recreate the sample with create_sample.")
    return [r[0] for r in rows]


def _counts(conn: psycopg.Connection, name: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table in sample_tables(name):
        if not _table_exists(conn, table):
            raise SampleError(f"table {table_identifier(table).as_string(conn)} of sample {name!r} is missing. "
                              "Fix: run create_sample first.")
        query = sql.SQL("SELECT count(*) FROM {}").format(table_identifier(table))
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
    name = table_identifier(table).as_string(conn)
    return bool(_scalar(conn, "SELECT to_regclass(%s) IS NOT NULL", (name,)))


def _scalar(conn: psycopg.Connection, query: LiteralString | sql.SQL | sql.Composed,
            params: tuple[object, ...] = ()) -> object:
    """The first column of the first row, or None."""
    row = conn.execute(query, params or None).fetchone()
    return row[0] if row else None
