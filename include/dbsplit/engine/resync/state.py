"""Resync state in each target's `_dbsplit` schema: sync state, target-side change log, key tables.

    _dbsplit.sync_state      one row per target table: last successful watermark, run, counts, time,
                             the live table's OID (a new full load swaps in a new table) and the
                             cached root bounds of the key diff
    _dbsplit.target_changes  the key of every row that someone other than the resync inserted,
                             updated or deleted in a tracked target table (statement triggers with
                             transition tables; the resync sets `dbsplit.syncing` and is not logged)
    _dbsplit."sums:<table>"  (bucket, count, sum of h) of the key table per level-0 bucket of the key diff,
                             kept in step with it: the target side of level 0 reads these, not the keys
    _dbsplit."keys:<table>"  the table's key set as of the last successful resync, in the SOURCE key
                             space: source key columns (source types) s0..sn, the key's fingerprint h
                             as computed by the source server, and, when the target key is computed
                             from the source key (uuid_key, cast), the target key columns t0..tm. The
                             key diff compares the source with this table, never with the target
                             table itself: its fingerprints are stored (nothing is hashed on this
                             side), it can be range-queried in source key order even when the target
                             key is a UUID, and writes by services are handled as conflicts from
                             target_changes instead.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Sequence

import psycopg
from psycopg import sql

from dbsplit.engine.resync.sql_parts import scalar
from dbsplit.errors import DbsplitError

SCHEMA = "_dbsplit"
TRIGGER_PREFIX = "dbsplit_track_"
TRACKED_EVENTS = ("ins", "upd", "del", "trunc")   # trigger name suffixes
SYNCING_SETTING = "dbsplit.syncing"
_DDL_LOCK = 0x64627370   # advisory lock key ("dbsp") serialising this module's DDL across sessions
RESYNC_LOCK_CLASS = 0x64627372   # advisory lock class of one table's resync (objid = table OID)


def lock_key(oid: int) -> int:
    """The advisory lock of one table's resync."""
    return (RESYNC_LOCK_CLASS << 32) | int(oid)


AUTOVACUUM_YIELD_MS = 100        # deadlock_timeout of the merge transaction (see yield_autovacuum_sooner)

_DDL = """
CREATE SCHEMA IF NOT EXISTS _dbsplit;
CREATE TABLE IF NOT EXISTS _dbsplit.sync_state (
    target_table text PRIMARY KEY,         -- "schema.table" in the target
    table_oid oid NOT NULL,                -- the live table tracked; a promoted full load is another table
    key_mode text NOT NULL,                -- direct: target key = source key; mapped: computed (uuid_key, cast)
    key_table text NOT NULL,               -- its key table in _dbsplit
    keys_ready boolean NOT NULL DEFAULT false,   -- false: the next resync rebuilds the key table from the source
    key_hash text,                         -- the key fingerprint function and source major version the key table holds
    root_bounds jsonb,                     -- cached bucket bounds (key texts) of the key diff's first level
    watermark_column text,
    watermark text,                        -- last successful watermark (source text of the value)
    runs bigint NOT NULL DEFAULT 0,
    last_run_id text,
    last_upserted bigint,
    last_deleted bigint,
    last_conflicts jsonb,                  -- keys of the last run's conflicts (source_wins overwrote them)
    last_skipped_conflicts bigint,
    last_rejected bigint,
    last_verified bigint,                  -- staged rows checked in the target before the commit
    last_seconds double precision,
    installed_at timestamptz NOT NULL DEFAULT now(),
    synced_at timestamptz
);
CREATE TABLE IF NOT EXISTS _dbsplit.target_changes (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    target_table text NOT NULL,
    op text NOT NULL,                      -- INSERT, UPDATE, DELETE, TRUNCATE
    key jsonb,                             -- JSON array of the target key values; NULL for TRUNCATE
    changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS target_changes_by_table ON _dbsplit.target_changes (target_table, id);
CREATE OR REPLACE FUNCTION _dbsplit.record_target_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
-- TG_ARGV: the target table name, then its key columns. Statement level, with transition tables
-- old_rows / new_rows; JSON keeps key values re-parseable whatever the writer's DateStyle.
DECLARE
    keys text;
BEGIN
    IF coalesce(current_setting('dbsplit.syncing', true), '') = 'on' THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'TRUNCATE' THEN
        INSERT INTO _dbsplit.target_changes (target_table, op, key) VALUES (TG_ARGV[0], TG_OP, NULL);
        RETURN NULL;
    END IF;
    SELECT string_agg(format('r.%I', a), ', ') INTO keys FROM unnest(TG_ARGV[1:]) AS a;
    IF TG_OP = 'INSERT' THEN
        EXECUTE format('INSERT INTO _dbsplit.target_changes (target_table, op, key) '
                       'SELECT %L, %L, jsonb_build_array(%s) FROM new_rows r', TG_ARGV[0], TG_OP, keys);
    ELSIF TG_OP = 'DELETE' THEN
        EXECUTE format('INSERT INTO _dbsplit.target_changes (target_table, op, key) '
                       'SELECT %L, %L, jsonb_build_array(%s) FROM old_rows r', TG_ARGV[0], TG_OP, keys);
    ELSE
        EXECUTE format('INSERT INTO _dbsplit.target_changes (target_table, op, key) '
                       'SELECT %L, %L, k FROM (SELECT jsonb_build_array(%s) AS k FROM old_rows r '
                       'UNION SELECT jsonb_build_array(%s) FROM new_rows r) u', TG_ARGV[0], TG_OP, keys, keys);
    END IF;
    RETURN NULL;
END
$fn$;
"""


class ChangeTrackingMissing(DbsplitError):
    """resync_table was called for a table without (current) change tracking."""


@dataclass(frozen=True)
class SyncState:
    target_table: str
    table_oid: int
    key_mode: str
    key_table: str
    keys_ready: bool
    root_bounds: list[list[str]] | None
    key_hash: str | None
    watermark_column: str | None
    watermark: str | None
    runs: int


def ensure_schema(conn: psycopg.Connection) -> None:
    """Create the state tables and the trigger function (idempotent, safe against concurrent callers)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
        exists = scalar(conn, (
            "SELECT to_regclass('_dbsplit.sync_state') IS NOT NULL AND to_regclass('_dbsplit.target_changes')"
            " IS NOT NULL"
            " AND to_regprocedure('_dbsplit.record_target_change()') IS NOT NULL"))
        if not exists:
            conn.execute(_DDL)
        elif not scalar(conn, "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = '_dbsplit.sync_state'"
                        "::regclass AND attname = 'last_verified' AND NOT attisdropped)"):
            # state of an older dbsplit
            conn.execute("ALTER TABLE _dbsplit.sync_state ADD COLUMN last_verified bigint")


def key_table_name(target_schema: str, target_table: str) -> str:
    """Name of a table's key table in _dbsplit (at most 63 bytes, unique per target table)."""
    name = f"keys:{target_schema}.{target_table}"
    if len(name.encode()) <= 63:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{name.encode()[:50].decode(errors='ignore')}~{digest}"


def sums_table_name(key_table: str) -> str:
    """The key table's level-0 bucket summaries: (b, n, h) per bucket of sync_state.root_bounds."""
    return "sums:" + key_table[len("keys:"):]


def key_table_ident(name: str) -> sql.Identifier:
    return sql.Identifier(SCHEMA, name)


def table_oid(conn: psycopg.Connection, schema: str, table: str) -> int | None:
    row = conn.execute("SELECT to_regclass(%s)::oid::bigint",
                       (sql.Identifier(schema, table).as_string(conn),)).fetchone()
    return row[0] if row else None


def load(conn: psycopg.Connection, target_table: str) -> SyncState | None:
    row = conn.execute(
        "SELECT target_table, table_oid::bigint, key_mode, key_table, keys_ready, root_bounds, key_hash,"
        " watermark_column,"
        " watermark, runs FROM _dbsplit.sync_state WHERE target_table = %s", (target_table,)).fetchone()
    return SyncState(*row) if row else None


def triggers_present(conn: psycopg.Connection, oid: int) -> bool:
    n = scalar(conn, "SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::oid AND tgname LIKE %s AND tgenabled <> 'D'",
               (oid, TRIGGER_PREFIX + "%"))
    return n == 4


def install_triggers(conn: psycopg.Connection, schema: str, table: str, key: Sequence[str]) -> None:
    """(Re)create the four statement triggers that log target-side changes (inside the caller's transaction)."""
    rel = sql.Identifier(schema, table)
    args = sql.SQL(", ").join(sql.Literal(a) for a in [f"{schema}.{table}", *key])
    for suffix in TRACKED_EVENTS:
        conn.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(sql.Identifier(TRIGGER_PREFIX + suffix), rel))
    specs = [
        ("ins", "INSERT", "REFERENCING NEW TABLE AS new_rows"),
        ("upd", "UPDATE", "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"),
        ("del", "DELETE", "REFERENCING OLD TABLE AS old_rows"),
        ("trunc", "TRUNCATE", ""),
    ]
    for suffix, event, referencing in specs:
        conn.execute(sql.SQL("CREATE TRIGGER {} AFTER {} ON {} {} FOR EACH STATEMENT "
                             "EXECUTE FUNCTION _dbsplit.record_target_change({})").format(
            sql.Identifier(TRIGGER_PREFIX + suffix), sql.SQL(event), rel, sql.SQL(referencing), args))


def yield_autovacuum_sooner(conn: psycopg.Connection) -> bool:
    """Inside the merge transaction, before it locks the tables: lower its deadlock_timeout to
    AUTOVACUUM_YIELD_MS (never raise it). An autovacuum of a target table holds a lock the merge waits
    for; the server cancels it when the waiter's deadlock check runs, after deadlock_timeout (1 s by
    default, paid by a resync right after a load or a busy day). False, nothing changed, when the
    session's role may not set it (a superuser's setting, or GRANT SET ON PARAMETER deadlock_timeout)."""
    current = scalar(conn, "SELECT setting::int FROM pg_settings WHERE name = 'deadlock_timeout'")
    if current <= AUTOVACUUM_YIELD_MS:
        return True
    try:
        with conn.transaction():
            conn.execute("SELECT set_config('deadlock_timeout', %s, true)", (f"{AUTOVACUUM_YIELD_MS}ms",))
    except psycopg.errors.InsufficientPrivilege:
        return False
    return True


def set_triggers_enabled(conn: psycopg.Connection, rel: sql.Composable, enabled: bool) -> bool:
    """Inside the merge transaction, with the table locked SHARE ROW EXCLUSIVE (the lock ALTER TABLE ...
    TRIGGER takes): switch the change-tracking triggers off for the resync's own writes, which would
    otherwise fill their transition tables (old and new image of every row) only to be ignored, and back
    on before the commit, so that no other session ever sees them off. False, and nothing changed, when
    the session may not alter the table (not its owner): the triggers then stay on, quiet as before."""
    action = sql.SQL("ENABLE" if enabled else "DISABLE")
    try:
        with conn.transaction():
            for suffix in TRACKED_EVENTS:
                conn.execute(sql.SQL("ALTER TABLE {} {} TRIGGER {}").format(
                    rel, action, sql.Identifier(TRIGGER_PREFIX + suffix)))
    except psycopg.errors.InsufficientPrivilege:
        return False
    return True


def reset(conn: psycopg.Connection, target_table: str, oid: int, key_mode: str, key_table: str,
          watermark_column: str | None, watermark: str | None) -> None:
    """Start tracking a (newly promoted) table: forget its change log, key table and sync history."""
    conn.execute("DELETE FROM _dbsplit.target_changes WHERE target_table = %s", (target_table,))
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}, {}").format(key_table_ident(key_table),
                                                               key_table_ident(sums_table_name(key_table))))
    conn.execute(
        "INSERT INTO _dbsplit.sync_state (target_table, table_oid, key_mode, key_table, keys_ready, root_bounds,"
        " watermark_column, watermark) VALUES (%s, %s, %s, %s, false, NULL, %s, %s)"
        " ON CONFLICT (target_table) DO UPDATE SET table_oid = EXCLUDED.table_oid, key_mode = EXCLUDED.key_mode,"
        " key_table = EXCLUDED.key_table, keys_ready = false, root_bounds = NULL, key_hash = NULL,"
        " watermark_column = EXCLUDED.watermark_column, watermark = EXCLUDED.watermark, runs = 0, last_run_id = NULL,"
        " last_upserted = NULL, last_deleted = NULL, last_conflicts = NULL, last_skipped_conflicts = NULL,"
        " last_rejected = NULL, last_verified = NULL, last_seconds = NULL, installed_at = now(), synced_at = NULL",
        (target_table, oid, key_mode, key_table, watermark_column, watermark))


def remove(conn: psycopg.Connection, schema: str, table: str) -> None:
    """Stop tracking a table (inside the caller's transaction): triggers, change log, key tables, state."""
    rel = sql.Identifier(schema, table)
    for suffix in TRACKED_EVENTS:
        conn.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(sql.Identifier(TRIGGER_PREFIX + suffix), rel))
    name = f"{schema}.{table}"
    conn.execute("DELETE FROM _dbsplit.target_changes WHERE target_table = %s", (name,))
    st = load(conn, name)
    key_table = st.key_table if st is not None else key_table_name(schema, table)
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}, {}").format(key_table_ident(key_table),
                                                               key_table_ident(sums_table_name(key_table))))
    conn.execute("DELETE FROM _dbsplit.sync_state WHERE target_table = %s", (name,))


def mark_cut_over(conn: psycopg.Connection, target_tables: Sequence[str], run_id: str) -> None:
    """Record that these tables' database is the system of record now (a cut-over): resyncs refuse them."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
        conn.execute("CREATE SCHEMA IF NOT EXISTS _dbsplit")
        conn.execute("CREATE TABLE IF NOT EXISTS _dbsplit.cut_over (target_table text PRIMARY KEY, run_id text"
                     " NOT NULL,"
                     " cut_over_at timestamptz NOT NULL DEFAULT now())")
        for name in target_tables:
            conn.execute("INSERT INTO _dbsplit.cut_over (target_table, run_id) VALUES (%s, %s) ON CONFLICT"
                         " (target_table)"
                         " DO UPDATE SET run_id = EXCLUDED.run_id, cut_over_at = now()", (name, run_id))


def unmark_cut_over(conn: psycopg.Connection, run_id: str) -> list[str]:
    """Undo mark_cut_over of one run (its rollback): the tables it recorded, no longer recorded."""
    if scalar(conn, "SELECT to_regclass('_dbsplit.cut_over') IS NULL"):
        return []
    return [r[0] for r in conn.execute("DELETE FROM _dbsplit.cut_over WHERE run_id = %s RETURNING target_table",
                                       (run_id,))]


def cut_over(conn: psycopg.Connection, target_tables: Sequence[str]) -> dict[str, tuple[str, str]]:
    """{table: (run id, time)} of those tables a cut-over made the system of record."""
    if scalar(conn, "SELECT to_regclass('_dbsplit.cut_over') IS NULL"):
        return {}
    rows = conn.execute("SELECT target_table, run_id, cut_over_at::text FROM _dbsplit.cut_over"
                        " WHERE target_table = ANY(%s)", (list(target_tables),)).fetchall()
    return {t: (r, at) for t, r, at in rows}


class CutOverDone(DbsplitError):
    """A table a cut-over made the system of record would be overwritten with the monolith's rows."""


def refuse_cut_over(conn: psycopg.Connection, target_tables: Sequence[str], harm: str, fix: str) -> None:
    """Raise CutOverDone when a cut-over made any of these tables the system of record.
    harm: what the refused action would do to the service's rows; fix: what to do instead."""
    done = cut_over(conn, target_tables)
    if done:
        _, (run, at) = min(done.items())
        raise CutOverDone(
            f"{', '.join(sorted(done))}: cut over by orchestrator run {run} at {at}; the service database is the "
            f"system of record now and {harm} (nothing was changed). Fix: {fix}; only if the cut-over was undone and "
            "the monolith takes the writes again, delete those rows of _dbsplit.cut_over in the target database.")


def record_run(conn: psycopg.Connection, target_table: str, *, watermark: str | None, run_id: str, upserted: int,
               deleted: int, conflicts: list[str], skipped: int, rejected: int, verified: int | None, seconds: float,
               key_hash: str, root_bounds: list[list[str]] | None | bool) -> None:
    """Inside the merge transaction: the run's outcome. root_bounds False keeps the cached bounds."""
    bounds_sql = "root_bounds" if root_bounds is False else "%(bounds)s::jsonb"
    conn.execute(
        "UPDATE _dbsplit.sync_state SET watermark = %(wm)s, runs = runs + 1, last_run_id = %(run)s,"
        " last_upserted = %(up)s, last_deleted = %(del)s, last_conflicts = %(conf)s::jsonb,"
        " last_skipped_conflicts = %(skip)s, last_rejected = %(rej)s, last_verified = %(ver)s, last_seconds = %(sec)s,"
        " synced_at = now(),"
        f" keys_ready = true, key_hash = %(hash)s, root_bounds = {bounds_sql} WHERE target_table = %(t)s",
        {"wm": watermark, "run": run_id, "up": upserted, "del": deleted, "conf": json.dumps(conflicts),
         "skip": skipped, "rej": rejected, "ver": verified, "sec": seconds, "hash": key_hash,
         "bounds": None if root_bounds in (None, False) else json.dumps(root_bounds), "t": target_table})


def store_root_bounds(conn: psycopg.Connection, target_table: str, bounds: list[list[str]] | None) -> None:
    conn.execute("UPDATE _dbsplit.sync_state SET root_bounds = %s::jsonb WHERE target_table = %s",
                 (None if bounds is None else json.dumps(bounds), target_table))


def as_json(value: Any) -> str:
    return json.dumps(value, default=str)
