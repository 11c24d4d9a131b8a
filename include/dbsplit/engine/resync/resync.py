"""Incremental resync of one table during the dual-write period: the target catches up with the source.

    install_change_tracking(target, table)   once after a table is promoted (a full load swaps in a
                                             new table: call it again after every promotion)
    resync_table(source, target, table, ...) on the plan's resync schedule

One resync, in one read-only REPEATABLE READ snapshot of the source:

1. Changed rows: every row whose watermark is above the last successful watermark minus `overlap`
   (clock skew and transactions that committed late) is read, transformed exactly as a full load
   (pass-through tables as binary COPY, others through engine/migrate/transform.py) and COPYed into a
   temporary staging table in the target. The highest watermark of the snapshot becomes the next
   starting point once the run commits.
2. Deleted (and missed) rows: the source's key set is compared with the target's key table
   (`_dbsplit."keys:<table>"`, the key set as of the last resync; see resync_state.py) by key-range
   fingerprints, descending only into ranges that differ (resync_diff.py): keys only, and only the
   differing ranges are read beyond the first level. Keys only in the source (inserted with an old
   clock, or rows rejected before) are staged too; keys only in the key table are deletions.
3. Target-side writes: `_dbsplit.target_changes` (filled by install_change_tracking's triggers)
   names every key a service changed since the last resync. Under a lock that keeps writers out
   for the merge, each such row is compared with the source's version; where they differ it is a
   conflict. on_conflict="source_wins" overwrites it with the source's version and reports its key;
   "stop" raises DataCheckFailed with the keys before anything is changed. A recorded change that
   left the row equal to the source (a service writing the same change to both databases) is
   counted in skipped_conflicts, not reported.
4. One target transaction (the tracking triggers switched off inside it when the session owns the
   table, else kept quiet by `SET LOCAL dbsplit.syncing = 'on'`): upsert the staged rows (a MERGE on
   PostgreSQL 17+, else INSERT then UPDATE) where the row differs (an unchanged row is not rewritten:
   a resync without source changes writes nothing), delete, update the key table, consume the change
   log, record the sync state. For tables of at most OVERLAP_MAX_KEYS keys step 2 finishes inside it,
   after the upsert (which so overlaps the pass over every source key), and the rows it found missing
   are upserted after the deletes; for tables with a unique constraint besides the key, step 2
   finishes before and the deletes come first (see _merge).

Several tables of one target database (a service's) are resynced together by resync_service, all in one
source snapshot: step 1 of each table, then steps 3-4 of all in one merge transaction (every table's
conflicts before any change, parents' upserts before their children's, children's deletes before their
parents'; the foreign keys between the tables are deferred to the commit). resync_table is
resync_service for one table.

Tables whose key is a computed UUID (uuid_key) are compared in the SOURCE key space: the key table
keeps each source key with its target UUID (made by the transform path's own functions), so ranges
of source keys can be fingerprinted on the target side and deletions map to target rows.
"""

from __future__ import annotations

import logging
import tempfile
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Mapping, Sequence

import psycopg
from psycopg import sql

from dbsplit.errors import DataCheckFailed, DbsplitError
from dbsplit.engine.migrate import arrow_io
from dbsplit.pg import copy
from dbsplit.engine.resync import check as resync_check, diff as resync_diff, state as resync_state
from dbsplit.engine.resync.fetch import (ALLKEYS, ALLMAP, KEYHASH, KEYHASH_LATE, KEYSTAGE, STAGE, STAGE_LATE, Fetcher,
                                      KeySpec, key_spec, source_column_types, too_many_rejects)
from dbsplit.engine.resync.state import ChangeTrackingMissing
from dbsplit.model.sql_fragments import filter_sql
from dbsplit.model.resolved import ResolvedTable

log = logging.getLogger(__name__)

ON_CONFLICT = ("source_wins", "stop")
NEWKEYS = "dbsplit_newkeys"
GONE = "dbsplit_gone"
CONFLICTS = "dbsplit_conflicts"
INSERTED = "dbsplit_inserted"
TRUNCATED = "(TRUNCATE)"
MERGE_RETURNING_VERSION = 170000   # MERGE ... RETURNING merge_action()
ROOT_SESSIONS = 2                  # source sessions sharing the pass over every key (level-0 summaries)
ROOT_STRIPE = 32                   # ... in turns, by stripes of this many buckets: the cost per key varies
                                   # along the key space (heap visits where updates cluster; the bench's
                                   # halves took 162 and 122 ms), stripes share it evenly
OVERLAP_MAX_KEYS = 2_000_000       # larger tables finish the key diff before the merge (see _merge)
_TIME_TYPES = ("timestamp", "date")
_INT_TYPES = ("smallint", "integer", "bigint")
# key texts and fingerprints are made under these settings on both sides (timestamptz text depends on TimeZone)
KEY_SETTINGS = {**arrow_io.TEXT_SETTINGS, "TimeZone": "UTC"}

__all__ = ["ResyncResult", "resync_table", "resync_service", "install_change_tracking", "ensure_change_tracking",
           "remove_change_tracking", "ChangeTrackingMissing"]


@dataclass(frozen=True)
class ResyncResult:
    upserted: int                    # target rows inserted or changed
    deleted: int                     # target rows deleted
    conflicts: list[str]             # target keys changed in the target that differed from the source
    skipped_conflicts: int           # recorded target changes whose rows already equalled the source
    seconds: float
    watermark_before: str | None     # text of the watermark the run started from (None: read every row)
    watermark_after: str | None      # text of the highest watermark of the run's snapshot
    inserted: int = 0
    updated: int = 0
    read_rows: int = 0               # source rows read and staged (changed rows, differing keys, conflicts)
    rejected: list[str] = field(default_factory=list)   # "key: column: reason" of rows the transforms refused
    rebuilt_keys: bool = False       # this run (re)built the key table from the whole source key set
    diff: dict[str, int] = field(default_factory=dict)  # key diff statistics
    verified: int | None = None      # staged rows looked up after the merge and found as staged (None: not
                                     # needed, nothing but the merge can have written them; see _Run.verify)
    steps: dict[str, float] = field(default_factory=dict)   # seconds per step
    checked: int | None = None       # rows checked against the table's suite before being written (None:
                                     # no suite, or no row-by-row expectation in it; see resync_check)
    checks: list[dict[str, Any]] = field(default_factory=list)   # their outcomes
    checks_table_wide: list[str] = field(default_factory=list)   # suite expectations left to the full load's
                                                                 # validation (they need the whole table)

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def _name(table: ResolvedTable) -> str:
    return f"{table.target_schema}.{table.target_table}"


def _lock_key(oid: int) -> int:
    return (resync_state.RESYNC_LOCK_CLASS << 32) | int(oid)


def _target_session(conn: psycopg.Connection) -> None:
    """Settings of the target session for its whole life (it is dbsplit's own connection)."""
    conn.execute(sql.SQL(" ").join(
        sql.SQL("SELECT set_config({}, {}, false);").format(sql.Literal(k), sql.Literal(v))
        for k, v in {**KEY_SETTINGS, "jit": "off"}.items()))


def _ident(cols: Sequence[str], alias: str | None = None) -> list[sql.Composable]:
    return [sql.Identifier(alias, c) if alias else sql.Identifier(c) for c in cols]


def _eq(left: Sequence[str], lalias: str, right: Sequence[str], ralias: str) -> sql.Composable:
    return sql.SQL(" AND ").join(sql.SQL("{} = {}").format(a, b) for a, b in zip(_ident(left, lalias), _ident(right, ralias)))


def _join_text(cols: Sequence[str], alias: str) -> sql.Composable:
    return sql.SQL("concat_ws(',', {})").format(sql.SQL(", ").join(sql.SQL("{}::text").format(c) for c in _ident(cols, alias)))


# ----------------------------------------------------------------------------------------------
# install


def install_change_tracking(target_conninfo: str, table: ResolvedTable) -> dict[str, Any]:
    """Start tracking a promoted target table: triggers that log every key written by anyone but the
    resync into _dbsplit.target_changes, and a fresh sync state.

    The starting watermark is the highest value of the watermark column in the target when the table
    copies it unchanged (the full load's snapshot); otherwise the first resync reads every source row
    (and writes only the rows that differ). The key table is built by the first resync."""
    spec = key_spec(table)
    name = _name(table)
    with psycopg.connect(target_conninfo, autocommit=True) as tgt:
        _target_session(tgt)
        resync_state.ensure_schema(tgt)
        with tgt.transaction():
            oid = resync_state.table_oid(tgt, table.target_schema, table.target_table)
            if oid is None:
                raise DbsplitError(f"target table {name} does not exist: install change tracking after the table is promoted")
            tgt.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(oid),))   # waits for a running resync
            resync_state.install_triggers(tgt, table.target_schema, table.target_table, table.key)
            wm_target = next((cm.target for cm in table.columns
                              if table.watermark and cm.op == "copy" and cm.source == (table.watermark,)), None)
            baseline = None
            if wm_target:
                baseline = tgt.execute(sql.SQL("SELECT max({})::text FROM {}").format(
                    sql.Identifier(wm_target), sql.Identifier(table.target_schema, table.target_table))).fetchone()[0]
            resync_state.reset(tgt, name, oid, spec.mode, resync_state.key_table_name(table.target_schema, table.target_table),
                               table.watermark, baseline)
    log.info("%s: change tracking installed (%s key, starting watermark %s)", name, spec.mode, baseline)
    return {"target_table": name, "key_mode": spec.mode, "watermark": baseline}


def ensure_change_tracking(target_conninfo: str, table: ResolvedTable) -> bool:
    """install_change_tracking unless the table already has sync state: an existing one keeps its
    watermark and change log. Missing or disabled triggers are put back and the key table is rebuilt by
    the next resync (rows the target lost while they were off are found again; rows changed in the
    target meanwhile cannot be told from the source's). True when this call installed it."""
    name = _name(table)
    with psycopg.connect(target_conninfo, autocommit=True) as tgt:
        oid = resync_state.table_oid(tgt, table.target_schema, table.target_table)
        if oid is not None and resync_state.table_oid(tgt, resync_state.SCHEMA, "sync_state") is not None:
            st = resync_state.load(tgt, name)
            if st is not None and st.table_oid == oid:
                if not resync_state.triggers_present(tgt, oid):
                    log.warning("%s: change-tracking triggers missing or disabled: put back", name)
                    with tgt.transaction():
                        tgt.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(oid),))
                        resync_state.install_triggers(tgt, table.target_schema, table.target_table, table.key)
                        tgt.execute("UPDATE _dbsplit.sync_state SET keys_ready = false WHERE target_table = %s", (name,))
                return False
    install_change_tracking(target_conninfo, table)
    return True


def remove_change_tracking(target_conninfo: str, table: ResolvedTable) -> None:
    """Stop tracking a target table: its triggers, change log, key tables and sync state dropped."""
    with psycopg.connect(target_conninfo, autocommit=True) as tgt, tgt.transaction():
        oid = resync_state.table_oid(tgt, table.target_schema, table.target_table)
        if oid is not None:
            tgt.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(oid),))   # waits for a running resync
        resync_state.remove(tgt, table.target_schema, table.target_table)


# ----------------------------------------------------------------------------------------------
# resync


def resync_table(source_conninfo: str, target_conninfo: str, table: ResolvedTable, *, namespace: uuid.UUID,
                 salt: bytes | None, on_conflict: str = "source_wins", overlap: timedelta = timedelta(minutes=5),
                 run_id: str, suite: str | Path | None = None) -> ResyncResult:
    """Bring one target table up to date with the source (see the module docstring)."""
    suites = {_name(table): suite} if suite is not None else None
    [result] = resync_service(source_conninfo, target_conninfo, [table], namespace=namespace, salt=salt,
                              on_conflict=on_conflict, overlap=overlap, run_id=run_id, suites=suites).values()
    return result


def resync_service(source_conninfo: str, target_conninfo: str, tables: Sequence[ResolvedTable], *,
                   namespace: uuid.UUID, salt: bytes | None, on_conflict: str = "source_wins",
                   overlap: timedelta = timedelta(minutes=5), run_id: str,
                   suites: Mapping[str, str | Path] | None = None) -> dict[str, ResyncResult]:
    """Bring several target tables of one database (a service's) up to date with the source together:
    one source snapshot for all, one target merge transaction for all, so that the foreign keys between
    them hold. Returns each table's result by target name, in merge order.

    Each table's changed rows are read on their own (step 1, outside the merge transaction; its temp
    tables are then set aside under a per-table name). The merge transaction locks every table, checks
    every table's conflicts and rejects before anything is changed, then upserts parents before
    children, finishes the key diffs, deletes children before parents and upserts the rows the diffs
    found missing (the foreign keys between the tables, as topological order; see _merge for tables
    with other unique constraints). The foreign keys between the tables are made DEFERRABLE (INITIALLY
    IMMEDIATE, so other writers see no difference) and deferred for the merge: they are checked at its
    commit, whatever the order, cycles and self-references included. ON DELETE actions (CASCADE, SET
    NULL, ...) and RESTRICT act at once; the order makes plain parent/child deletes, and children
    moved off a deleted parent, pass RESTRICT.

    suites: GX suite files by target table name: the staged rows of that table are checked against the
    suite's row-by-row expectations inside the merge transaction, before they are written
    (resync_check); a failure rolls the whole merge back."""
    if on_conflict not in ON_CONFLICT:
        raise ValueError(f"on_conflict must be one of {ON_CONFLICT}, not {on_conflict!r}")
    start = time.perf_counter()
    by_name = {_name(t): t for t in tables}
    if len(by_name) != len(tables):
        raise ValueError("resync_service: a target table is listed twice")
    unknown = sorted(set(suites or {}) - set(by_name))
    if unknown:
        raise ValueError(f"resync_service: suites for tables not in this resync: {unknown}")
    # read and split before anything is locked (imports GX: seconds, not inside the merge)
    checks = {name: resync_check.SuiteCheck.load(path) for name, path in (suites or {}).items()}
    with psycopg.connect(target_conninfo, autocommit=True, application_name="dbsplit-resync") as tgt, \
            copy.source_connection(source_conninfo) as src, \
            tempfile.TemporaryDirectory(prefix="dbsplit-resync-") as tmp:
        _target_session(tgt)
        resync_state.ensure_schema(tgt)
        _refuse_after_cut_over(tgt, list(by_name))
        oids: dict[str, int] = {}
        for name in by_name:
            schema, rel = name.split(".", 1)
            oid = resync_state.table_oid(tgt, schema, rel)
            if oid is None:
                raise DbsplitError(f"target table {name} does not exist")
            oids[name] = oid
        locked: list[int] = []
        try:
            for oid in sorted(oids.values()):   # one order for every caller: no deadlock between resyncs
                tgt.execute("SELECT pg_advisory_lock(%s)", (_lock_key(oid),))
                locked.append(oid)
            states = {name: _tracked_state(tgt, name, oids[name]) for name in by_name}
            fks = _deferrable_foreign_keys(tgt, list(oids.values()))
            order = _merge_order(tables)
            alone = len(order) == 1
            with src.transaction():
                runs = []
                for i, name in enumerate(order):
                    (Path(tmp) / str(i)).mkdir()
                    runs.append(_Run(src, tgt, by_name[name], states[name], namespace, salt, on_conflict, overlap,
                                     run_id, Path(tmp) / str(i), start))
                    runs[-1].suite, runs[-1].target_conninfo = checks.get(name), target_conninfo
                upsert_first = not any(run.other_unique() for run in runs)
                may_overlap = upsert_first and not any(run.key_count() > OVERLAP_MAX_KEYS for run in runs)
                with ThreadPoolExecutor(ROOT_SESSIONS) as pool:   # leaving it waits for the source sessions
                    for i, run in enumerate(runs):
                        run.prepare(source_conninfo, pool, may_overlap)
                        _park(tgt, i, alone)
                    overlap = may_overlap and not any(run.rebuild for run in runs)
                    if not overlap:
                        for i, run in enumerate(runs):
                            _unpark(tgt, i, alone)
                            run.diff()
                            _park(tgt, i, alone)
                    _merge(tgt, runs, fks, upsert_first, overlap)
            return {run.name: run.finish() for run in runs}
        finally:
            if tgt.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                for oid in reversed(locked):
                    tgt.execute("SELECT pg_advisory_unlock(%s)", (_lock_key(oid),))


def _refuse_after_cut_over(tgt: psycopg.Connection, names: list[str]) -> None:
    """After a cut-over the service database is the system of record: a resync would overwrite the
    service's writes with the frozen monolith's rows (conflicts, source wins) and delete its new rows."""
    resync_state.refuse_cut_over(tgt, names, "a resync would overwrite its writes with the monolith's rows",
                                 "pause or remove this resync")


def _tracked_state(tgt: psycopg.Connection, name: str, oid: int) -> resync_state.SyncState:
    st = resync_state.load(tgt, name)
    if st is None or st.table_oid != oid or not resync_state.triggers_present(tgt, oid):
        why = ("it was never installed" if st is None else
               "the table was replaced since (a new full load was promoted)" if st.table_oid != oid else
               "its triggers are missing or disabled")
        raise ChangeTrackingMissing(
            f"{name}: no change tracking ({why}). Fix: call install_change_tracking(target, table) after "
            "the table is promoted, then resync.")
    return st


def _merge_order(tables: Sequence[ResolvedTable]) -> list[str]:
    """Target names, every table after the tables it references by a kept foreign key (cycles broken
    anywhere: the deferred keys are checked at commit anyway)."""
    from dbsplit.plan.order import levels_breaking_cycles

    names = [_name(t) for t in tables]
    edges = [(_name(t), fk["ref_table"]) for t in tables for fk in t.foreign_keys if fk["ref_table"] in names]
    return [n for level in levels_breaking_cycles(names, edges) for n in level]


def _deferrable_foreign_keys(tgt: psycopg.Connection, oids: list[int]) -> list[sql.Composable]:
    """The foreign keys between these tables, made DEFERRABLE INITIALLY IMMEDIATE where they are not yet
    (targets promoted before keys were created so), as names for SET CONSTRAINTS."""
    rows = tgt.execute(
        "SELECT n.nspname, r.relname, c.conname, c.condeferrable FROM pg_constraint c"
        " JOIN pg_class r ON r.oid = c.conrelid JOIN pg_namespace n ON n.oid = c.connamespace"
        " WHERE c.contype = 'f' AND c.conrelid = ANY(%s) AND c.confrelid = ANY(%s) ORDER BY 1, 2, 3",
        (oids, oids)).fetchall()
    fixed = [(schema, rel, con) for schema, rel, con, deferrable in rows if not deferrable]
    if fixed:
        with tgt.transaction():
            for schema, rel, con in fixed:
                tgt.execute(sql.SQL("ALTER TABLE {} ALTER CONSTRAINT {} DEFERRABLE INITIALLY IMMEDIATE").format(
                    sql.Identifier(schema, rel), sql.Identifier(con)))
        log.info("foreign keys made deferrable (initially immediate) for the resync: %s",
                 ", ".join(f"{s}.{r}.{c}" for s, r, c in fixed))
    return [sql.Identifier(schema, con) for schema, _, con, _ in rows]


def _merge(tgt: psycopg.Connection, runs: list[_Run], fks: list[sql.Composable], upsert_first: bool,
           overlap: bool) -> None:
    """The merge transaction of every table (see resync_service); run i's temp tables are parked as i.

    upsert_first: the staged rows are upserted before the deletes (children moved off a deleted parent
    leave it before an ON DELETE RESTRICT key is checked). Only when no table has a unique constraint
    besides its key: a new row may take over the unique value of a deleted one, which must go first.
    overlap (with upsert_first): the key diffs are finished inside the transaction, after the upsert,
    which so overlaps the pass over every source key; then the deletes, then the rows the diffs found
    missing. Writers wait for the rest of that pass: only for tables of at most OVERLAP_MAX_KEYS keys
    (and not when a key table is rebuilt); otherwise the diffs are finished before the merge."""
    with tgt.transaction():
        tgt.execute(sql.SQL("SELECT set_config({}, 'on', true)").format(sql.Literal(resync_state.SYNCING_SETTING)))
        if fks:
            tgt.execute(sql.SQL("SET CONSTRAINTS {} DEFERRED").format(sql.SQL(", ").join(fks)))
        resync_state.yield_autovacuum_sooner(tgt)
        t = time.perf_counter()
        tgt.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(
            sql.SQL(", ").join(sorted((run.rel for run in runs), key=lambda r: r.as_string(tgt)))))
        waited = time.perf_counter() - t
        switched = [run.rel for run in runs if resync_state.set_triggers_enabled(tgt, run.rel, False)]
        indexed = list(enumerate(runs))
        if overlap:
            phases = [("check", indexed), ("upsert", indexed), ("diff", indexed), ("check_rejects", indexed),
                      ("delete", indexed[::-1]), ("upsert", indexed)]
        elif upsert_first:
            phases = [("check", indexed), ("upsert", indexed), ("delete", indexed[::-1])]
        else:
            phases = [("check", indexed), ("delete", indexed[::-1]), ("upsert", indexed)]
        phases += [("verify", indexed), ("record", indexed)]
        for phase, sequence in phases:
            for i, run in sequence:
                _unpark(tgt, i, len(runs) == 1)
                if phase == "check":
                    run.steps["lock"] = round(waited, 4)
                getattr(run, phase)()
                _park(tgt, i, len(runs) == 1)
        if fks and switched:   # their checks now, as at commit: ALTER TABLE refuses tables with pending events
            tgt.execute(sql.SQL("SET CONSTRAINTS {} IMMEDIATE").format(sql.SQL(", ").join(fks)))
        for rel in switched:
            resync_state.set_triggers_enabled(tgt, rel, True)


_TEMPS = (STAGE, KEYSTAGE, KEYHASH, KEYHASH_LATE, STAGE_LATE, ALLKEYS, ALLMAP, NEWKEYS, GONE, CONFLICTS, INSERTED)


def _rename_temps(tgt: psycopg.Connection, renames: dict[str, str]) -> None:
    rows = tgt.execute("SELECT relname, relkind FROM pg_class WHERE relnamespace = pg_my_temp_schema()"
                       " AND relname = ANY(%s) AND relkind IN ('r', 'v')", (list(renames),)).fetchall()
    for name, kind in rows:
        tgt.execute(sql.SQL("ALTER {} pg_temp.{} RENAME TO {}").format(
            sql.SQL("VIEW" if kind == "v" else "TABLE"), sql.Identifier(name), sql.Identifier(renames[name])))


def _park(tgt: psycopg.Connection, i: int, alone: bool = False) -> None:
    """Set a table's temp tables aside (renamed with the suffix #i) so that the next table can use the
    names; alone: the run has one table, nothing to set aside."""
    if not alone:
        _rename_temps(tgt, {n: f"{n}#{i}" for n in _TEMPS})


def _unpark(tgt: psycopg.Connection, i: int, alone: bool = False) -> None:
    if not alone:
        _rename_temps(tgt, {f"{n}#{i}": n for n in _TEMPS})


class _Run:
    """One resync of one table; the source connection is inside its snapshot transaction."""

    def __init__(self, src: psycopg.Connection, tgt: psycopg.Connection, table: ResolvedTable,
                 st: resync_state.SyncState, namespace: uuid.UUID, salt: bytes | None, on_conflict: str,
                 overlap: timedelta, run_id: str, tmp: Path, start: float) -> None:
        self.src, self.tgt, self.table, self.st = src, tgt, table, st
        self.on_conflict, self.overlap, self.run_id, self.start = on_conflict, overlap, run_id, start
        self.name = _name(table)
        self.rel = sql.Identifier(table.target_schema, table.target_table)
        self.ktab = resync_state.key_table_ident(st.key_table)
        self.stab = resync_state.key_table_ident(resync_state.sums_table_name(st.key_table))
        self.src.execute("SELECT set_config('jit', 'off', true)")
        self.types = source_column_types(src, table.source_schema, table.source_table)
        missing_cols = [c for c in table.source_key if c not in self.types]
        if missing_cols:
            raise DbsplitError(f"{self.name}: source key column(s) {missing_cols} are not in "
                               f"{table.source_schema}.{table.source_table}")
        self.spec: KeySpec = key_spec(table, [self.types[c] for c in table.source_key])
        if self.spec.mode != st.key_mode:
            raise ChangeTrackingMissing(f"{self.name}: the table's key mapping changed ({st.key_mode} -> "
                                        f"{self.spec.mode}). Fix: call install_change_tracking again.")
        absent = [t for t in self.spec.source_types
                  if tgt.execute("SELECT to_regtype(%s) IS NULL", (t,)).fetchone()[0]]
        if absent:
            raise DbsplitError(f"{self.name}: source key type(s) {absent} do not exist in the target database")
        self.hash_sql, self.hash_id = self._key_hash()
        self.fetch = Fetcher(src, tgt, table, self.spec, namespace, salt, tmp, self.hash_sql)
        self.steps: dict[str, float] = {}
        self._t = time.perf_counter()
        self._rebuild = False
        self._source_root: list[tuple[list[int], Future]] | None = None   # (buckets, their level-0 summaries)
        self._diff_args: tuple | None = None      # see _start_diff
        self._unmerged = True              # staged rows not upserted yet
        self._merged_once = False
        self._lazy_new_keys = False        # see prepare and _new_keys
        self.inserted = self.updated = 0
        self.verified: int | None = None
        self.suite: resync_check.SuiteCheck | None = None   # set by resync_service, with target_conninfo
        self.target_conninfo = ""
        self.checked: int | None = None

    def _step(self, label: str) -> None:
        now = time.perf_counter()
        self.steps[label] = round(self.steps.get(label, 0.0) + now - self._t, 4)
        self._t = now

    def _key_hash(self) -> tuple[sql.Composable, str]:
        """The key fingerprint, always evaluated by the source server (for the key table too, when keys
        enter it), so both sides of a comparison come from one implementation: PostgreSQL's own 64-bit
        extended hash (the hash-partitioning family, 0.1-0.3 us a key): the key type's default hash
        function for a one-column key, hash_record_extended for several columns; for key types without
        one, the md5-based 60-bit fingerprint of engine/verify/checksums.py (several microseconds a key). The
        function and the source's major version are recorded: a change rebuilds the key table."""
        major = self.src.info.server_version // 10000
        if len(self.spec.source_cols) == 1:
            row = self.src.execute(
                "SELECT p.amproc::regproc::text, c.opcintype::regtype::text FROM pg_opclass c"
                " JOIN pg_am a ON a.oid = c.opcmethod AND a.amname = 'hash'"
                " JOIN pg_amproc p ON p.amprocfamily = c.opcfamily AND p.amprocnum = 2"
                "  AND p.amproclefttype = c.opcintype AND p.amprocrighttype = c.opcintype"
                " WHERE c.opcdefault AND c.opcintype = %s::regtype", (self.spec.source_types[0],)).fetchone()
            if row:
                fn, argtype = row
                expr = sql.SQL("{}(CAST({} AS {}), 0)").format(
                    sql.SQL(fn), sql.Identifier(self.spec.source_cols[0]), sql.SQL(argtype))
                return expr, f"{fn}/{major}"
        nulls = sql.SQL(", ").join(sql.SQL("NULL::{}").format(sql.SQL(t)) for t in self.spec.source_types)
        try:
            with self.src.transaction():
                self.src.execute(sql.SQL("SELECT hash_record_extended(ROW({}), 0)").format(nulls))
        except psycopg.Error:
            return resync_diff.fingerprint(self.spec.source_cols), f"md5/{major}"
        ids = sql.SQL(", ").join(_ident(self.spec.source_cols))
        return sql.SQL("hash_record_extended(ROW({}), 0)").format(ids), f"hash_record_extended/{major}"

    @property
    def tkey(self) -> list[str]:
        """The target columns matching the s columns (direct) or t columns (mapped) of the key tables."""
        return self.spec.target_of_s() if self.spec.mode == "direct" else list(self.spec.target_cols)

    @property
    def kcols(self) -> list[str]:
        """Key-table columns holding the target key: s (direct) or t (mapped)."""
        return self.spec.s if self.spec.mode == "direct" else self.spec.t

    def _all_keys(self) -> sql.Composable:
        """FROM item `a` with every source key (s), its hash (h) and, for mapped keys, target key (t)."""
        if self.spec.mode == "direct":
            return sql.SQL("pg_temp.{} a").format(sql.Identifier(ALLKEYS))
        s = self.spec.s
        return sql.SQL("(SELECT {sel} FROM pg_temp.{a} x JOIN pg_temp.{m} y ON {on}) a").format(
            sel=sql.SQL(", ").join([*_ident(s, "x"), sql.SQL("x.h"), *_ident(self.spec.t, "y")]),
            a=sql.Identifier(ALLKEYS), m=sql.Identifier(ALLMAP), on=_eq(s, "x", s, "y"))

    def _staged_keys(self) -> sql.Composable:
        """FROM item `a` with the source key (s), hash (h) and target key (t, mapped) of every staged row
        the key table lacks (the run's new keys) that is in the staging table (rows the transforms
        rejected are not)."""
        s, t = self.spec.s, list(self.spec.target_cols)
        if self.spec.mode == "direct":
            return sql.SQL("(SELECT kh.* FROM pg_temp.{kh} kh WHERE EXISTS (SELECT 1 FROM pg_temp.{st} x WHERE {on})) a").format(
                kh=sql.Identifier(NEWKEYS), st=sql.Identifier(STAGE), on=_eq(self.tkey, "x", s, "kh"))
        return sql.SQL(
            "(SELECT {sel} FROM pg_temp.{kh} kh JOIN pg_temp.{ks} ks ON {on} WHERE EXISTS "
            "(SELECT 1 FROM pg_temp.{st} x WHERE {on_x})) a").format(
            sel=sql.SQL(", ").join([*_ident(s, "kh"), sql.SQL("kh.h"), *_ident(self.spec.t, "ks")]),
            kh=sql.Identifier(NEWKEYS), ks=sql.Identifier(KEYSTAGE), on=_eq(s, "kh", s, "ks"), st=sql.Identifier(STAGE),
            on_x=_eq(t, "x", self.spec.t, "ks"))

    # -- 1. watermark window -------------------------------------------------------------------

    def _window(self) -> tuple[sql.Composable | None, str | None, str | None]:
        """(condition on the source, watermark before, watermark after) of the rows changed since the
        last resync; condition None = every row."""
        wm = self.table.watermark
        before = self.st.watermark
        if not wm:
            return None, None, None
        wtype = self.types.get(wm)
        if wtype is None:
            raise DbsplitError(f"{self.name}: watermark column {wm!r} is not in the source table")
        base = wtype.split("(")[0].strip()
        is_time = base.startswith(_TIME_TYPES)
        if not is_time and base not in _INT_TYPES:
            raise DbsplitError(f"{self.name}: watermark column {wm} has type {wtype}; a timestamp, date or integer is needed")
        col = sql.Identifier(wm)
        src_rel = sql.Identifier(self.table.source_schema, self.table.source_table)
        with arrow_io.text_settings(self.src, {"TimeZone": "UTC"}):
            if before is None:
                after = self.src.execute(sql.SQL("SELECT max({})::text FROM {}").format(col, src_rel)).fetchone()[0]
            else:
                after = self.src.execute(sql.SQL("SELECT greatest(max({}), CAST({} AS {}))::text FROM {}").format(
                    col, sql.Literal(before), sql.SQL(wtype), src_rel)).fetchone()[0]
        if before is None:
            return None, None, after
        cutoff = sql.SQL("CAST({} AS {})").format(sql.Literal(before), sql.SQL(wtype))   # the text carries its offset
        if is_time and self.overlap:
            cutoff = sql.SQL("({} - CAST({} AS interval))").format(
                cutoff, sql.Literal(f"{self.overlap.total_seconds()} seconds"))
        return sql.SQL("{} > {}").format(col, cutoff), before, after

    # -- 2. key differences --------------------------------------------------------------------

    def _truncated(self) -> bool:
        return self.tgt.execute("SELECT EXISTS (SELECT 1 FROM _dbsplit.target_changes WHERE target_table = %s"
                                " AND op = 'TRUNCATE')", (self.name,)).fetchone()[0]

    def _temp(self, name: str, cols: Sequence[str], types: Sequence[str]) -> None:
        self.tgt.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(sql.Identifier(name)))
        self.tgt.execute(sql.SQL("CREATE TEMP TABLE {} ({})").format(sql.Identifier(name), sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in zip(cols, types))))

    def _fill(self, name: str, rows: Sequence[Sequence[str]]) -> None:
        """COPY key texts into a temp table (text format, parsed under the session's key settings)."""
        with self.tgt.cursor() as cur, cur.copy(sql.SQL("COPY pg_temp.{} FROM STDIN").format(sql.Identifier(name))) as cp:
            for r in rows:
                cp.write_row(r)

    def _diff_rebuild(self) -> list[tuple[str, ...]]:
        """The key table is rebuilt: read every source key (with its hash, and target key when mapped);
        return the source keys whose target row is missing and that are not staged already. Target
        rows whose key the source does not have are deleted at the merge."""
        self.fetch.load_all_keys()
        s = self.spec.s
        query = sql.SQL(
            "SELECT {texts} FROM {all} WHERE NOT EXISTS (SELECT 1 FROM {rel} d WHERE {on_target})"
            " AND NOT EXISTS (SELECT 1 FROM pg_temp.{kh} k WHERE {on_stage})").format(
            texts=sql.SQL(", ").join(sql.SQL("{}::text").format(c) for c in _ident(s, "a")), all=self._all_keys(),
            rel=self.rel, on_target=_eq(self.tkey, "d", self.kcols, "a"), kh=sql.Identifier(KEYHASH),
            on_stage=_eq(s, "k", s, "a"))
        return [tuple(r) for r in self.tgt.execute(query)]

    def _diff_incremental(self) -> resync_diff.DiffResult:
        """Source key set against (key table + keys staged by this run that it lacks), by fingerprints."""
        if self._diff_args is None:
            self._start_diff()
        with arrow_io.text_settings(self.src, {"TimeZone": "UTC"}):
            return resync_diff.diff_keys(*self._diff_args)

    def _start_diff(self) -> None:
        """The target's side of the key diff, as far as it goes without the source's level-0 summaries:
        the run's new keys (staged keys the key table lacks) and the target's level-0 summaries."""
        s = self.spec.s
        self._temp(NEWKEYS, [*s, "h"], [*self.spec.source_types, "bigint"])
        with self.tgt.transaction():
            self._probe_joins()
            self.tgt.execute(self._new_keys())
        self.tgt.execute(sql.SQL("CREATE INDEX ON pg_temp.{} ({})").format(sql.Identifier(NEWKEYS), sql.SQL(", ").join(_ident(s))))
        self.fetch.track_new_keys(NEWKEYS, self.ktab)
        cols = sql.SQL(", ").join(_ident(s))
        target_rel = sql.SQL("(SELECT {c}, h FROM {k} UNION ALL SELECT {c}, h FROM pg_temp.{n}) AS keyset").format(
            c=cols, k=self.ktab, n=sql.Identifier(NEWKEYS))
        source = self._source_side(self.src)
        target = resync_diff.KeySide(self.tgt, target_rel, tuple(s), self.spec.source_types, sql.Identifier("h"))
        bounds = [tuple(b) for b in self.st.root_bounds] if self.st.root_bounds is not None else None
        target_root = self._target_root(target, bounds) if bounds is not None else None
        source_root = None
        if self._source_root is not None:
            futures = self._source_root

            def source_root() -> list[tuple[int, str]]:
                try:
                    found: dict[int, tuple[int, str]] = {}
                    for share, f in futures:
                        found.update(zip(share, f.result()))
                    return [found[i] for i in range(len(bounds) + 1)]
                except psycopg.OperationalError as e:   # no second session (connection limit, ...): this one
                    log.warning("%s: level-0 key summaries in a second source session failed (%s); "
                                "computing them in the main session", self.name, e)
                    return resync_diff.summaries(source, resync_diff.root_groups(bounds))
        self._diff_args = (source, target, bounds, target_root, source_root)

    def _new_keys(self) -> sql.Composable:
        """INSERT into the new-key table the staged keys (with their hash) that the key table lacks.

        Every staged key is probed (in key order: neighbouring probes share the key index's pages, a
        quarter less time), unless the upsert already ran and recorded the keys it inserted (lazy):
        then only those and the keys the service changed in the target are probed. A staged key the
        key table lacks is a row the target lacked (inserted now) or one a service wrote there
        (a recorded change); a key missed all the same shows in the diff and enters as a late key."""
        s = self.spec.s
        candidates = sql.SQL("pg_temp.{}").format(sql.Identifier(KEYHASH))
        if self._lazy_new_keys and self._merged_once:
            t, tt = list(self.spec.target_cols), self.spec.t
            changed = sql.SQL(", ").join(sql.Identifier("c", tt[t.index(c)]) for c in self.spec.target_of_s())
            candidates = sql.SQL(
                "(SELECT kh.* FROM pg_temp.{kh} kh WHERE ({ks}) IN (SELECT {i} FROM pg_temp.{ins} UNION ALL"
                " SELECT {changed} FROM pg_temp.{c} c))").format(
                kh=sql.Identifier(KEYHASH), ks=sql.SQL(", ").join(_ident(s, "kh")), i=sql.SQL(", ").join(_ident(s)),
                ins=sql.Identifier(INSERTED), changed=changed, c=sql.Identifier(CONFLICTS))
        return sql.SQL(
            "INSERT INTO pg_temp.{nk} SELECT kh.* FROM (SELECT {sk} FROM {cand} x ORDER BY {sc}) kh"
            " WHERE NOT EXISTS (SELECT 1 FROM {ktab} k WHERE {on})").format(
            nk=sql.Identifier(NEWKEYS), sk=sql.SQL(", ").join(_ident([*s, "h"])), cand=candidates,
            sc=sql.SQL(", ").join(_ident(s)), ktab=self.ktab, on=_eq(s, "k", s, "kh"))

    def _source_side(self, conn: psycopg.Connection) -> resync_diff.KeySide:
        return resync_diff.KeySide(
            conn, sql.Identifier(self.table.source_schema, self.table.source_table), self.spec.source_cols,
            self.spec.source_types, self.hash_sql, filter_sql(self.table.filter) if self.table.filter else None)

    def _start_source_root(self, source_conninfo: str, pool: ThreadPoolExecutor) -> None:
        """Start the source's level-0 summaries (one pass over every source key: the largest single cost of
        an incremental run) in ROOT_SESSIONS more sessions on this run's snapshot (each over every
        ROOT_SESSIONS-th stripe of level-0 buckets), so that it runs while the target prepares its side
        of the diff and upserts the changed rows."""
        bounds = [tuple(b) for b in self.st.root_bounds]
        groups = resync_diff.root_groups(bounds)
        snapshot = copy.export_snapshot(self.src)

        by_range = len(self.spec.source_cols) == 1 and self.src.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " JOIN pg_am am ON am.oid = c.relam AND am.amname = 'btree' JOIN pg_attribute a ON a.attrelid = i.indrelid"
            " AND a.attnum = i.indkey[0] WHERE i.indrelid = %s::regclass AND a.attname = %s AND i.indpred IS NULL"
            " AND i.indexprs IS NULL)",
            (sql.Identifier(self.table.source_schema, self.table.source_table).as_string(self.src),
             self.spec.source_cols[0])).fetchone()[0]

        def work(buckets: list[int], conn: psycopg.Connection) -> list[tuple[int, str]]:
            conn.execute("SELECT set_config('jit', 'off', true)")
            with arrow_io.text_settings(conn, {"TimeZone": "UTC"}):
                if by_range:   # one index range scan per bucket
                    return resync_diff.root_summaries_by_range(self._source_side(conn), bounds, buckets)
                return resync_diff.summaries(self._source_side(conn), groups)

        n = len(bounds) + 1
        parts = ROOT_SESSIONS if by_range and n >= ROOT_STRIPE * ROOT_SESSIONS else 1
        shares = [[i for i in range(n) if (i // ROOT_STRIPE) % parts == j] for j in range(parts)]
        self._source_root = [(share, pool.submit(copy.in_snapshot, source_conninfo, snapshot, partial(work, share)))
                             for share in shares]

    def _sums_kept(self) -> bool:
        return resync_state.table_oid(self.tgt, resync_state.SCHEMA,
                                      resync_state.sums_table_name(self.st.key_table)) is not None

    def _target_root(self, target: resync_diff.KeySide, bounds: list[tuple[str, ...]]) -> list[tuple[int, str]] | None:
        """The target's level-0 summaries from the kept bucket sums plus this run's new keys."""
        if not self._sums_kept():
            return None
        rows = self.tgt.execute(sql.SQL(
            "SELECT b, sum(n)::bigint, sum(h)::text FROM (SELECT b, n, h FROM {sums} UNION ALL"
            " SELECT {bucket}, 1, h FROM pg_temp.{nk}) x GROUP BY b").format(
            sums=self.stab, bucket=resync_diff.bucket_expr(target, bounds), nk=sql.Identifier(NEWKEYS))).fetchall()
        found = {b: (n, h) for b, n, h in rows}
        return [found.get(i, (0, "0")) for i in range(len(bounds) + 1)]

    # -- 3. conflicts --------------------------------------------------------------------------

    def _conflicts(self, max_id: int) -> tuple[list[str], int]:
        """Under the merge lock: stage the source version of every key changed in the target, then
        split the keys into conflicts (row differs from the source's) and skipped ones (equal)."""
        t, tt = list(self.spec.target_cols), self.spec.t
        self._temp(CONFLICTS, tt, self.spec.target_types)
        self.tgt.execute(sql.SQL(
            "INSERT INTO pg_temp.{c} SELECT DISTINCT {vals} FROM _dbsplit.target_changes"
            " WHERE target_table = %s AND id <= %s AND key IS NOT NULL").format(
            c=sql.Identifier(CONFLICTS),
            vals=sql.SQL(", ").join(sql.SQL("CAST(key ->> {} AS {})").format(sql.Literal(i), sql.SQL(ty))
                                    for i, ty in enumerate(self.spec.target_types))), (self.name, max_id))
        not_staged = sql.SQL("NOT EXISTS (SELECT 1 FROM pg_temp.{} x WHERE {})").format(
            sql.Identifier(STAGE), _eq(t, "x", tt, "c"))
        if self.spec.mode == "direct":   # the source key is the target key
            t_of_s = [tt[t.index(c)] for c in self.spec.target_of_s()]
            fetch_q = sql.SQL("SELECT {} FROM pg_temp.{} c WHERE {}").format(
                sql.SQL(", ").join(sql.SQL("{}::text").format(x) for x in _ident(t_of_s, "c")),
                sql.Identifier(CONFLICTS), not_staged)
        else:                            # through the key table (or, while rebuilding it, the source's key map)
            mapping = (sql.SQL("pg_temp.{}").format(sql.Identifier(ALLMAP)) if self._rebuild else self.ktab)
            fetch_q = sql.SQL("SELECT {} FROM pg_temp.{} c JOIN {} k ON {} WHERE {}").format(
                sql.SQL(", ").join(sql.SQL("{}::text").format(x) for x in _ident(self.spec.s, "k")),
                sql.Identifier(CONFLICTS), mapping, _eq(tt, "k", tt, "c"), not_staged)
        missing = [tuple(r) for r in self.tgt.execute(fetch_q)]
        if missing:
            self.fetch.stage_keys(missing)
        cols = [cm.target for cm in self.table.columns]
        rows = self.tgt.execute(sql.SQL(
            "SELECT {key}, ROW({d})::text IS NOT DISTINCT FROM ROW({s})::text FROM pg_temp.{c} c"
            " LEFT JOIN pg_temp.{stage} s ON {on_s} LEFT JOIN {rel} d ON {on_d}").format(
            key=_join_text(tt, "c"), d=sql.SQL(", ").join(_ident(cols, "d")), s=sql.SQL(", ").join(_ident(cols, "s")),
            c=sql.Identifier(CONFLICTS), stage=sql.Identifier(STAGE), on_s=_eq(t, "s", tt, "c"), rel=self.rel,
            on_d=_eq(t, "d", tt, "c"))).fetchall()
        real = sorted(k for k, same in rows if not same)
        return real, len(rows) - len(real)

    # -- 4. merge ------------------------------------------------------------------------------

    def _delete(self, gone: list[tuple[str, ...]]) -> int:
        """Delete from the target: source-deleted keys (gone), changed keys the source does not have,
        and when rebuilding, target rows whose key the source does not have. Never a staged key."""
        t, tt, s = list(self.spec.target_cols), self.spec.t, self.spec.s
        not_staged = sql.SQL("NOT EXISTS (SELECT 1 FROM pg_temp.{} x WHERE {})").format(sql.Identifier(STAGE), _eq(t, "x", t, "d"))
        n = 0
        with self.tgt.cursor() as cur:
            if gone:
                self._temp(GONE, s, self.spec.source_types)
                self._fill(GONE, gone)
                if self.spec.mode == "direct":
                    q = sql.SQL("DELETE FROM {rel} d USING pg_temp.{g} g WHERE {on} AND {ns}").format(
                        rel=self.rel, g=sql.Identifier(GONE), on=_eq(self.tkey, "d", s, "g"), ns=not_staged)
                else:
                    q = sql.SQL("DELETE FROM {rel} d USING pg_temp.{g} g JOIN {k} k ON {gk} WHERE {on} AND {ns}").format(
                        rel=self.rel, g=sql.Identifier(GONE), k=self.ktab, gk=_eq(s, "k", s, "g"), on=_eq(t, "d", tt, "k"),
                        ns=not_staged)
                n += cur.execute(q).rowcount
            n += cur.execute(sql.SQL("DELETE FROM {rel} d USING pg_temp.{c} c WHERE {on} AND {ns}").format(
                rel=self.rel, c=sql.Identifier(CONFLICTS), on=_eq(t, "d", tt, "c"), ns=not_staged)).rowcount
            if self._rebuild:
                n += cur.execute(sql.SQL("DELETE FROM {rel} d WHERE NOT EXISTS (SELECT 1 FROM {a} WHERE {on}) AND {ns}").format(
                    rel=self.rel, a=self._all_keys(), on=_eq(self.tkey, "d", self.kcols, "a"), ns=not_staged)).rowcount
        return n

    def _same_types(self, cols: Sequence[str], modifiers: bool = False) -> bool:
        """True when the staging table's columns have exactly the target table's types (and type modifiers,
        with modifiers), so that rows can be compared by their binary images (record *=) instead of their text."""
        q = ("SELECT a.attname, a.atttypid::bigint, CASE WHEN %s THEN a.atttypmod END FROM pg_attribute a"
             " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped")

        def types(rel: sql.Composable) -> dict[str, tuple[int, int | None]]:
            return {n: (t, m) for n, t, m in self.tgt.execute(q, (modifiers, rel.as_string(self.tgt)))}

        stage, live = types(sql.Identifier("pg_temp", STAGE)), types(self.rel)
        return all(c in live and live[c] == stage.get(c) for c in cols)

    def _upsert(self) -> tuple[int, int]:
        """Staged rows into the target; returns (inserted, updated).

        A row equal to the staged one is neither rewritten nor locked. Rows are compared by their binary
        images (record *=, as REFRESH MATERIALIZED VIEW CONCURRENTLY does: cheaper than their text and at
        least as strict) when the staging table has the target's column types, else by their text. On
        PostgreSQL 17 and later one MERGE probes each staged key once (RETURNING merge_action() tells
        inserts from updates); before, an INSERT of the new keys, then an UPDATE of the rows that differ
        (the table lock keeps other writers out between the two)."""
        cols = [cm.target for cm in self.table.columns]
        key = list(self.table.key)
        other = [c for c in cols if c not in key]
        parts = {"rel": self.rel, "stage": sql.Identifier(STAGE), "on": _eq(key, "d", key, "s"),
                 "cols": sql.SQL(", ").join(_ident(cols)), "scols": sql.SQL(", ").join(_ident(cols, "s")),
                 "skey": sql.SQL(", ").join(_ident(key, "s")), "differs": self._differs(cols),
                 "sets": sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.Identifier(c), sql.Identifier("s", c))
                                            for c in other)}
        if self.tgt.info.server_version >= MERGE_RETURNING_VERSION:
            update = "WHEN MATCHED AND {differs} THEN UPDATE SET {sets} " if other else ""
            record = ""
            if self._lazy_new_keys:   # the source keys of the rows it inserts (see _new_keys)
                self._temp(INSERTED, self.spec.s, self.spec.source_types)
                parts["inserted"] = sql.Identifier(INSERTED)
                parts["ret"] = sql.SQL(", ").join(sql.SQL("s.{} AS {}").format(sql.Identifier(t), sql.Identifier(c))
                                                  for t, c in zip(self.spec.target_of_s(), self.spec.s))
                parts["keys"] = sql.SQL(", ").join(_ident(self.spec.s))
                record = ", i AS (INSERT INTO pg_temp.{inserted} SELECT {keys} FROM m WHERE a = 'INSERT')"
            inserted, updated = self.tgt.execute(sql.SQL(
                "WITH m AS (MERGE INTO {rel} AS d USING pg_temp.{stage} AS s ON {on} " + update +
                "WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({scols}) RETURNING merge_action() AS a" +
                (", {ret}" if record else "") + ")" + record +
                " SELECT count(*) FILTER (WHERE a = 'INSERT'), count(*) FILTER (WHERE a = 'UPDATE') FROM m").format(
                **parts)).fetchone()
            return inserted, updated
        inserted = self.tgt.execute(sql.SQL(
            "INSERT INTO {rel} ({cols}) SELECT {scols} FROM pg_temp.{stage} s WHERE NOT EXISTS"
            " (SELECT 1 FROM {rel} d WHERE {on}) ORDER BY {skey}").format(**parts)).rowcount
        if not other:
            return inserted, 0
        updated = self.tgt.execute(sql.SQL(
            "UPDATE {rel} AS d SET {sets} FROM pg_temp.{stage} s WHERE {on} AND {differs}").format(**parts)).rowcount
        return inserted, updated

    def _not_in_target(self) -> sql.Composable:
        """FROM ... WHERE: the staged rows (alias s) the target lacks or holds otherwise: before the
        upsert, the rows it writes; after it, the rows it failed to write."""
        cols, key = [cm.target for cm in self.table.columns], list(self.table.key)
        return sql.SQL("FROM pg_temp.{stage} s WHERE NOT EXISTS (SELECT 1 FROM {rel} d WHERE {on} AND NOT ({differs}))").format(
            stage=sql.Identifier(STAGE), rel=self.rel, on=_eq(key, "d", key, "s"), differs=self._differs(cols))

    def _differs(self, cols: Sequence[str]) -> sql.Composable:
        """Target row d differs from staged row s (see _upsert)."""
        # CAST: two bare ROW constructors would be compared column by column with the operator
        drow = sql.SQL("CAST(ROW({}) AS record)").format(sql.SQL(", ").join(_ident(cols, "d")))
        srow = sql.SQL("CAST(ROW({}) AS record)").format(sql.SQL(", ").join(_ident(cols, "s")))
        if self._same_types(cols):
            return sql.SQL("NOT ({} OPERATOR(pg_catalog.*=) {})").format(drow, srow)
        return sql.SQL("{}::text IS DISTINCT FROM {}::text").format(drow, srow)

    def _maintain_keys(self, gone: list[tuple[str, ...]]) -> None:
        """Key table = the source keys the target now holds (rebuilt, or updated by this run's changes)."""
        s = self.spec.s
        tcols = self.spec.t if self.spec.mode == "mapped" else []
        cols = sql.SQL(", ").join(_ident([*s, "h", *tcols]))
        sel = sql.SQL(", ").join(_ident([*s, "h", *tcols], "a"))
        if self._rebuild:
            self.tgt.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self.ktab))
            defs = [sql.SQL("{} {} NOT NULL").format(sql.Identifier(c), sql.SQL(ty)) for c, ty in zip(s, self.spec.source_types)]
            defs.append(sql.SQL("h bigint NOT NULL"))
            defs += [sql.SQL("{} {} NOT NULL").format(sql.Identifier(c), sql.SQL(ty)) for c, ty in zip(tcols, self.spec.target_types)]
            self.tgt.execute(sql.SQL("CREATE TABLE {} ({})").format(self.ktab, sql.SQL(", ").join(defs)))
            self.tgt.execute(sql.SQL(
                "INSERT INTO {k} ({cols}) SELECT {sel} FROM {a} WHERE EXISTS (SELECT 1 FROM {rel} d WHERE {on}) ORDER BY {s}").format(
                k=self.ktab, cols=cols, sel=sel, a=self._all_keys(), rel=self.rel,
                on=_eq(self.tkey, "d", self.kcols, "a"), s=sql.SQL(", ").join(_ident(s, "a"))))
            self.tgt.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({}) INCLUDE (h)").format(
                self.ktab, sql.SQL(", ").join(_ident(s))))
            if tcols:
                self.tgt.execute(sql.SQL("CREATE UNIQUE INDEX ON {} ({})").format(self.ktab, sql.SQL(", ").join(_ident(tcols))))
            self.tgt.execute(sql.SQL("ANALYZE {}").format(self.ktab))
            return
        keyside = resync_diff.KeySide(self.tgt, self.ktab, tuple(s), self.spec.source_types, sql.Identifier("h"))
        bounds = [tuple(b) for b in self.st.root_bounds] if self.st.root_bounds is not None else None
        have_sums = bounds is not None and resync_state.table_oid(
            self.tgt, resync_state.SCHEMA, resync_state.sums_table_name(self.st.key_table)) is not None

        def with_sums(change: sql.Composable, sign: str) -> sql.Composable:
            """change (a DELETE or INSERT ... RETURNING the keys and h) adding its keys to the bucket sums."""
            if not have_sums:
                return change
            return sql.SQL(
                "WITH c AS ({change}) INSERT INTO {sums} (b, n, h) SELECT {bucket}, {sign}count(*), {sign}sum(h) FROM c"
                " GROUP BY 1 ON CONFLICT (b) DO UPDATE SET n = {sums}.n + EXCLUDED.n, h = {sums}.h + EXCLUDED.h").format(
                change=change, sums=self.stab, bucket=resync_diff.bucket_expr(keyside, bounds), sign=sql.SQL(sign))

        returning = sql.SQL(" RETURNING {}, h").format(sql.SQL(", ").join(_ident(s)))
        if gone:
            self.tgt.execute(with_sums(sql.SQL("DELETE FROM {} k USING pg_temp.{} g WHERE {}{}").format(
                self.ktab, sql.Identifier(GONE), _eq(s, "k", s, "g"),
                sql.SQL(" RETURNING {}, k.h").format(sql.SQL(", ").join(_ident(s, "k")))), "-"))
        self.tgt.execute(with_sums(sql.SQL("INSERT INTO {k} ({cols}) SELECT {sel} FROM {a} ON CONFLICT ({s}) DO NOTHING{r}").format(
            k=self.ktab, cols=cols, sel=sel, a=self._staged_keys(), s=sql.SQL(", ").join(_ident(s)), r=returning), ""))

    def _root_bounds(self) -> list[list[str]]:
        """New level-0 bounds (quantiles of the key table) and the bucket sums that go with them."""
        side = resync_diff.KeySide(self.tgt, self.ktab, tuple(self.spec.s), self.spec.source_types, sql.Identifier("h"))
        bounds = resync_diff.quantiles(side, [(None, None)], [resync_diff.ROOT_BUCKET_ROWS])[0]
        self.tgt.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self.stab))
        self.tgt.execute(sql.SQL("CREATE TABLE {} (b integer PRIMARY KEY, n bigint NOT NULL, h numeric NOT NULL)").format(self.stab))
        self.tgt.execute(sql.SQL("INSERT INTO {} SELECT {}, count(*), sum(h) FROM {} GROUP BY 1").format(
            self.stab, resync_diff.bucket_expr(side, bounds), self.ktab))
        return [list(b) for b in bounds]

    def _analyze_stage(self) -> None:
        """Statistics of the key columns of the staging tables (row counts and key distinctness for the
        planner; the other columns are not needed)."""
        key = list(self.spec.target_cols)
        targets = [(STAGE, key)] if self.fetch.hashed_stage else [(STAGE, key), (KEYHASH, self.spec.s)]
        if self.spec.mode == "mapped":
            targets.append((KEYSTAGE, [*self.spec.s, *self.spec.t]))
        for name, cols in targets:
            self.tgt.execute(sql.SQL("ANALYZE pg_temp.{} ({})").format(sql.Identifier(name), sql.SQL(", ").join(_ident(cols))))

    def _probe_joins(self) -> None:
        """Inside a transaction: join the small staged sets to the big key and target tables by index
        probes. A hash or merge join would read the whole big table: O(rows) where O(changes) is due."""
        self.tgt.execute("SELECT set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)")

    # -- the run -------------------------------------------------------------------------------

    @property
    def rebuild(self) -> bool:
        """This run rebuilds the key table (it reads every source key)."""
        return self._rebuild

    def other_unique(self) -> bool:
        """The target table has a unique (or exclusion) index besides its primary key."""
        return self.tgt.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = %s::regclass"
            " AND (indisunique OR indisexclusion) AND NOT indisprimary)", (self.rel.as_string(self.tgt),)).fetchone()[0]

    def key_count(self) -> int:
        """About how many keys the key table holds (the planner's estimate: no scan; 0 before it exists)."""
        return self.tgt.execute("SELECT coalesce((SELECT greatest(reltuples, 0)::bigint FROM pg_class"
                                " WHERE oid = to_regclass(%s)), 0)", (self.ktab.as_string(self.tgt),)).fetchone()[0]

    def prepare(self, source_conninfo: str, pool: ThreadPoolExecutor, may_overlap: bool = False) -> None:
        """Step 1, outside the merge transaction: the changed rows staged; the source's level-0 key
        summaries started in more sessions. may_overlap: the merge will probably upsert before the
        diff finishes (see _merge): the target's side of the diff waits for the upsert, which tells
        the new keys (lazy, pass-through tables on PostgreSQL 17+)."""
        table = self.table
        self._t = time.perf_counter()
        self.truncated = truncated = self._truncated()
        self._rebuild = not self.st.keys_ready or truncated or self.st.key_hash != self.hash_id
        # the pass over the source keys starts after pass-through rows (a COPY of the source's pages on
        # the critical path, slowed by a second pass over the same pages), before transformed ones
        # (their time is spent in this process, which the pass can overlap)
        root = not self._rebuild and self.st.root_bounds is not None and self._sums_kept()
        if root and not self.fetch.hashed_stage:
            self._start_source_root(source_conninfo, pool)
        self.fetch.create_stage()
        window, self.before, self.after = self._window()
        if table.watermark and self.before is None:
            log.info("%s: no previous watermark: every source row is read (only differing rows are written)", self.name)
        self.fetch.stage_where(window)
        if root and self.fetch.hashed_stage:
            self._start_source_root(source_conninfo, pool)
        self._analyze_stage()
        self._step("read changed rows")
        self._lazy_new_keys = (may_overlap and not self._rebuild and self.fetch.hashed_stage
                               and self.tgt.info.server_version >= MERGE_RETURNING_VERSION)
        if not self._rebuild and not self._lazy_new_keys:
            self._start_diff()
            self._step("diff keys")

    def diff(self) -> None:
        """Step 2: deletions found, the rows of keys the target lacks staged (before the merge, or inside
        it after the first upsert: see _merge)."""
        self._t = time.perf_counter()
        self.gone: list[tuple[str, ...]] = []
        self.stale = False
        if self._rebuild:
            missing = self._diff_rebuild()
            diff = {"rebuilt_keys": 1, "source_keys": self.fetch.rows, "missing_in_target": len(missing)}
        else:
            res = self._diff_incremental()
            missing, self.gone = res.source_only, res.target_only
            diff = {"levels": res.levels, "buckets": res.buckets, "differing_buckets": res.differing_buckets,
                    "leaf_keys": res.leaf_keys, "source_only": len(missing), "target_only": len(self.gone)}
            self.stale = self.st.root_bounds is None or res.bounds_stale()
        self.diff_stats = diff
        self._step("diff keys")
        if missing:
            self.fetch.stage_keys(missing)
            self._analyze_stage()
            self._unmerged = True
        self._step("read differing keys")

    def _joins(self) -> None:
        """Inside the merge transaction, at the start of each of this table's phases: index probes for an
        incremental run (see _probe_joins), the session's planner settings for a rebuild."""
        if self._rebuild:
            self.tgt.execute("RESET enable_hashjoin")
            self.tgt.execute("RESET enable_mergejoin")
        else:
            self._probe_joins()

    def check(self) -> None:
        """Step 3, in the merge transaction with the table locked: conflicts and rejects, before anything
        of any table is changed (on_conflict=stop and too many rejects stop the whole merge)."""
        self._t = time.perf_counter()
        self._joins()
        table = self.table
        self.max_id, has_truncate = self.tgt.execute(
            "SELECT coalesce(max(id), 0), coalesce(bool_or(op = 'TRUNCATE'), false) FROM _dbsplit.target_changes"
            " WHERE target_table = %s", (self.name,)).fetchone()
        if has_truncate and not self.truncated:
            raise DbsplitError(f"{self.name} was truncated in the target during this resync; nothing was changed. "
                               "Fix: run the resync again.")
        conflicts, self.skipped = self._conflicts(self.max_id)
        if self.truncated:
            conflicts = [TRUNCATED, *conflicts]
        self.conflicts = conflicts
        self._step("conflicts")
        if conflicts and self.on_conflict == "stop":
            shown = ", ".join(conflicts[:20]) + (f" and {len(conflicts) - 20} more" if len(conflicts) > 20 else "")
            raise DataCheckFailed(
                f"{self.name}: {len(conflicts)} row(s) were changed in the target since the last resync and differ "
                f"from the source (on_conflict=stop, nothing was changed): key {shown}")
        self.check_rejects()

    def check_rejects(self) -> None:
        """Too many source rows rejected by the transforms stop the whole merge (it rolls back)."""
        table = self.table
        self.rejected = [f"{r.key}: {r.column or '-'}: {r.reason}" for r in self.fetch.rejects]
        if len(self.rejected) > table.max_rejected_rows:
            raise too_many_rejects(self.name, str(len(self.rejected)), table.max_rejected_rows, self.rejected[0])

    def delete(self) -> None:
        """Step 4a, in the merge transaction (children before parents)."""
        self._t = time.perf_counter()
        self._joins()
        self.deleted = self._delete(self.gone)
        self._step("delete")

    def upsert(self) -> None:
        """Step 4b, in the merge transaction (parents before children): the staged rows not merged yet
        (all of them, again, after the diff staged more: the merged ones are equal now, not rewritten)."""
        if not self._unmerged:
            return
        self._t = time.perf_counter()
        self._joins()
        if self.suite is not None and self.suite.spec["expectations"]:
            self.checked = (self.checked or 0) + self.suite.run(   # a second upsert checks the rows the diff added
                self.tgt, self.target_conninfo, STAGE, [cm.target for cm in self.table.columns], self._not_in_target(),
                self.name, self.st.table_oid, self.run_id)
            self._step("suite")
        inserted, updated = self._upsert()
        self.inserted += inserted
        self.updated += updated
        self._unmerged = False
        self._merged_once = True
        self._step("upsert")

    def _verify_needed(self) -> str | None:
        """Why the staged rows must be looked up again after the merge, or None when nothing else can have
        written them: no user trigger in the database, no rule on the table, no referential action of its
        foreign keys, and staging columns of exactly the table's types (modifiers included)."""
        if not self._same_types([cm.target for cm in self.table.columns], modifiers=True):
            return "staged column types differ"
        oid = self.st.table_oid
        q = ("SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_trigger WHERE NOT tgisinternal AND NOT starts_with(tgname, %(track)s))"
             "  THEN 'a user trigger in the target database'"
             " WHEN EXISTS (SELECT 1 FROM pg_rewrite WHERE ev_class = %(oid)s::oid AND rulename <> '_RETURN')"
             "  THEN 'a rule on the table'"
             " WHEN EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = %(oid)s::oid AND contype = 'f'"
             "  AND (confdeltype NOT IN ('a', 'r') OR confupdtype NOT IN ('a', 'r'))) THEN 'a foreign key with an action'"
             " END")
        return self.tgt.execute(q, {"track": resync_state.TRIGGER_PREFIX, "oid": oid}).fetchone()[0]

    def verify(self) -> None:
        """Step 4c, in the merge transaction: every staged row is in the target exactly as staged (as the
        source has it, through the plan's transforms), or the whole merge rolls back. Work follows the
        staged rows. What makes it fail: a trigger or cascade that changes or removes rows the resync
        wrote, a target column that cannot hold a source value exactly. Left out where nothing but the
        merge can have written them (see _verify_needed): verified stays None."""
        self._t = time.perf_counter()
        why = self._verify_needed()
        if why is None:   # nothing but the merge's own statements wrote the table, from rows of its types
            self._step("verify")
            return
        self._joins()
        key = list(self.table.key)
        stage = sql.Identifier(STAGE)
        off = self._not_in_target()
        total, wrong = self.tgt.execute(sql.SQL("SELECT (SELECT count(*) FROM pg_temp.{}), (SELECT count(*) {})").format(
            stage, off)).fetchone()
        shown: list[str] = []
        if wrong:
            keys = sql.SQL("concat_ws(',', {})").format(
                sql.SQL(", ").join(sql.SQL("{}::text").format(k) for k in _ident(key, "s")))
            shown = [r[0] for r in self.tgt.execute(sql.SQL("SELECT {} {} ORDER BY 1 LIMIT 20").format(keys, off))]
        self._step("verify")
        if wrong:
            more = " ..." if wrong > len(shown) else ""
            raise DataCheckFailed(
                f"{self.name}: after the merge {wrong} of the {total} staged row(s) are not in the target as the "
                f"source has them (looked up again for {why}; nothing was changed): key {', '.join(shown)}{more}. "
                "A trigger, rule or ON DELETE/UPDATE action of the target table changed or removed them, or a target "
                "column cannot hold the source's value exactly. Fix: drop or adapt what changes them (or the column "
                "type), then resync again.")
        self.verified = total

    def record(self) -> None:
        """Step 4d, in the merge transaction: key table, change log, sync state."""
        self._t = time.perf_counter()
        self._joins()
        self._maintain_keys(self.gone)
        self._step("key table")
        bounds: list[list[str]] | None | bool = False
        if self._rebuild:
            bounds = self._root_bounds()
            self.stale = False
        self.tgt.execute("DELETE FROM _dbsplit.target_changes WHERE target_table = %s AND id <= %s",
                         (self.name, self.max_id))
        resync_state.record_run(
            self.tgt, self.name, watermark=self.after, run_id=self.run_id, upserted=self.inserted + self.updated,
            deleted=self.deleted, conflicts=self.conflicts, skipped=self.skipped, rejected=len(self.rejected),
            verified=self.verified,
            seconds=time.perf_counter() - self.start, key_hash=self.hash_id, root_bounds=bounds)
        self._step("merge")

    def finish(self) -> ResyncResult:
        """After the merge committed: key table maintenance, the result."""
        self._t = time.perf_counter()
        if self._rebuild:   # sets its visibility map: the index probes of the next runs are index-only
            self.tgt.execute(sql.SQL("VACUUM (ANALYZE) {}").format(self.ktab))
            self._step("vacuum key table")
        if self.stale:
            with self.tgt.transaction():
                resync_state.store_root_bounds(self.tgt, self.name, self._root_bounds())
            self._step("refresh bounds")
        seconds = time.perf_counter() - self.start
        inserted, deleted, conflicts = self.inserted, self.deleted, self.conflicts
        result = ResyncResult(
            upserted=inserted + self.updated, deleted=deleted, conflicts=conflicts, skipped_conflicts=self.skipped,
            seconds=round(seconds, 4), watermark_before=self.before, watermark_after=self.after, inserted=inserted,
            updated=self.updated, read_rows=self.fetch.rows, rejected=self.rejected, rebuilt_keys=self._rebuild,
            diff=self.diff_stats, steps=self.steps, verified=self.verified, checked=self.checked,
            checks=self.suite.outcomes if self.suite else [], checks_table_wide=self.suite.table_wide if self.suite else [])
        log.info("%s: resync %s: %d upserted (%d new), %d deleted, %d conflict(s), %d skipped, %d read, %.2f s",
                 self.name, self.run_id, result.upserted, inserted, deleted, len(conflicts), self.skipped,
                 result.read_rows, seconds)
        if conflicts:
            log.warning("%s: target-side changes overwritten by the source: %s", self.name, ", ".join(conflicts[:50]))
        return result
