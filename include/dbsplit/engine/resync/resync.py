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
   (`_dbsplit."keys:<table>"`, the key set as of the last resync; see state.py) by key-range
   fingerprints, descending only into ranges that differ (diff.py, keydiff.py): keys only, and only the
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
   finishes before and the deletes come first (see transaction.merge).

Several tables of one target database (a service's) are resynced together by resync_service, all in one
source snapshot: step 1 of each table, then steps 3-4 of all in one merge transaction (every table's
conflicts before any change, parents' upserts before their children's, children's deletes before their
parents'; the foreign keys between the tables are deferred to the commit). resync_table is
resync_service for one table.

Where each step lives: window.py (1, the watermark window) and fetch.py (staging), keydiff.py with
diff.py (2) and keytable.py (the key table), conflicts.py (3), merge_rows.py and verify.py (4), each
working on one table's TableRun (context.py) in the order table_steps.TableResync calls them;
transaction.py is the merge transaction over all tables; tracking.py installs and removes tracking.

Tables whose key is a computed UUID (uuid_key) are compared in the SOURCE key space: the key table
keeps each source key with its target UUID (made by the transform path's own functions), so ranges
of source keys can be fingerprinted on the target side and deletions map to target rows.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import psycopg
from psycopg import sql

from dbsplit.engine.resync import check as resync_check
from dbsplit.engine.resync import state as resync_state
from dbsplit.engine.resync.context import open_run
from dbsplit.engine.resync.keydiff import ROOT_SESSIONS
from dbsplit.engine.resync.result import ResyncResult
from dbsplit.engine.resync.sql_parts import table_name, target_session
from dbsplit.engine.resync.state import ChangeTrackingMissing, lock_key
from dbsplit.engine.resync.table_steps import TableResync
from dbsplit.engine.resync.tracking import ensure_change_tracking, install_change_tracking, remove_change_tracking
from dbsplit.engine.resync.transaction import deferrable_foreign_keys, merge, merge_order, park, unpark
from dbsplit.errors import DbsplitError
from dbsplit.model.resolved import ResolvedTable
from dbsplit.pg import copy

ON_CONFLICT = ("source_wins", "stop")
OVERLAP_MAX_KEYS = 2_000_000       # larger tables finish the key diff before the merge (see transaction.merge)

__all__ = ["ResyncResult", "resync_table", "resync_service", "install_change_tracking", "ensure_change_tracking",
           "remove_change_tracking", "ChangeTrackingMissing"]


def resync_table(source_conninfo: str, target_conninfo: str, table: ResolvedTable, *, namespace: uuid.UUID,
                 salt: bytes | None, on_conflict: str = "source_wins", overlap: timedelta = timedelta(minutes=5),
                 run_id: str, suite: str | Path | None = None) -> ResyncResult:
    """Bring one target table up to date with the source (see the module docstring)."""
    suites = {table_name(table): suite} if suite is not None else None
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
    found missing (the foreign keys between the tables, as topological order; see transaction.merge for
    tables with other unique constraints). The foreign keys between the tables are made DEFERRABLE (INITIALLY
    IMMEDIATE, so other writers see no difference) and deferred for the merge: they are checked at its
    commit, whatever the order, cycles and self-references included. ON DELETE actions (CASCADE, SET
    NULL, ...) and RESTRICT act at once; the order makes plain parent/child deletes, and children
    moved off a deleted parent, pass RESTRICT.

    suites: GX suite files by target table name: the staged rows of that table are checked against the
    suite's row-by-row expectations inside the merge transaction, before they are written
    (check.py); a failure rolls the whole merge back."""
    start = time.perf_counter()
    by_name = _checked_tables(tables, on_conflict, suites)
    # read and split before anything is locked (imports GX: seconds, not inside the merge)
    checks = {name: resync_check.SuiteCheck.load(path) for name, path in (suites or {}).items()}
    with psycopg.connect(target_conninfo, autocommit=True, application_name="dbsplit-resync") as tgt, \
            copy.source_connection(source_conninfo) as src, \
            tempfile.TemporaryDirectory(prefix="dbsplit-resync-") as tmp:
        target_session(tgt)
        resync_state.ensure_schema(tgt)
        _refuse_after_cut_over(tgt, list(by_name))
        oids = _table_oids(tgt, by_name)
        with _advisory_locks(tgt, oids):
            states = {name: _tracked_state(tgt, name, oids[name]) for name in by_name}
            fks = deferrable_foreign_keys(tgt, list(oids.values()))
            with src.transaction():
                runs = []
                for i, name in enumerate(merge_order(tables)):
                    (Path(tmp) / str(i)).mkdir()
                    run = open_run(src, tgt, by_name[name], states[name], namespace=namespace, salt=salt,
                                   on_conflict=on_conflict, overlap=overlap, run_id=run_id, tmp=Path(tmp) / str(i),
                                   start=start)
                    run.suite, run.target_conninfo = checks.get(name), target_conninfo
                    runs.append(TableResync(run))
                _resync_runs(tgt, runs, fks, source_conninfo)
            return {run.name: run.finish() for run in runs}


def _checked_tables(tables: Sequence[ResolvedTable], on_conflict: str,
                    suites: Mapping[str, str | Path] | None) -> dict[str, ResolvedTable]:
    """The tables by target name, once the arguments are found consistent."""
    if on_conflict not in ON_CONFLICT:
        raise ValueError(f"on_conflict must be one of {ON_CONFLICT}, not {on_conflict!r}")
    by_name = {table_name(t): t for t in tables}
    if len(by_name) != len(tables):
        raise ValueError("resync_service: a target table is listed twice")
    unknown = sorted(set(suites or {}) - set(by_name))
    if unknown:
        raise ValueError(f"resync_service: suites for tables not in this resync: {unknown}")
    return by_name


def _resync_runs(tgt: psycopg.Connection, runs: list[TableResync], fks: list[sql.Identifier],
                 source_conninfo: str) -> None:
    """Inside the source snapshot: every table's step 1 (and step 2 unless it overlaps the merge), then
    the merge transaction."""
    alone = len(runs) == 1
    upsert_first = not any(run.other_unique() for run in runs)
    may_overlap = upsert_first and not any(run.key_count() > OVERLAP_MAX_KEYS for run in runs)
    with ThreadPoolExecutor(ROOT_SESSIONS) as pool:   # leaving it waits for the source sessions
        for i, run in enumerate(runs):
            run.prepare(source_conninfo, pool, may_overlap)
            park(tgt, i, alone)
        overlapped = may_overlap and not any(run.rebuild for run in runs)
        if not overlapped:
            for i, run in enumerate(runs):
                unpark(tgt, i, alone)
                run.diff()
                park(tgt, i, alone)
        merge(tgt, runs, fks, upsert_first, overlapped)


def _table_oids(tgt: psycopg.Connection, by_name: Mapping[str, ResolvedTable]) -> dict[str, int]:
    oids: dict[str, int] = {}
    for name in by_name:
        schema, rel = name.split(".", 1)
        oid = resync_state.table_oid(tgt, schema, rel)
        if oid is None:
            raise DbsplitError(f"target table {name} does not exist")
        oids[name] = oid
    return oids


@contextmanager
def _advisory_locks(tgt: psycopg.Connection, oids: Mapping[str, int]) -> Iterator[None]:
    """The tables' resync locks, taken in one order for every caller (no deadlock between resyncs);
    released unless a transaction failed (the session then ends, and they with it)."""
    locked: list[int] = []
    try:
        for oid in sorted(oids.values()):
            tgt.execute("SELECT pg_advisory_lock(%s)", (lock_key(oid),))
            locked.append(oid)
        yield
    finally:
        if tgt.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            for oid in reversed(locked):
                tgt.execute("SELECT pg_advisory_unlock(%s)", (lock_key(oid),))


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
