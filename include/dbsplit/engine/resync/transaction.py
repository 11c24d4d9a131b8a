"""The merge transaction of every table of one service's resync (steps 3-4 of all tables together), and
what it needs: the tables' merge order, their foreign keys made deferrable, their temp tables set aside."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import psycopg
from psycopg import sql

from dbsplit.engine.resync import state as resync_state
from dbsplit.engine.resync.names import TEMPS
from dbsplit.engine.resync.sql_parts import table_name
from dbsplit.engine.resync.table_steps import TableResync
from dbsplit.model.resolved import ResolvedTable

log = logging.getLogger(__name__)

Phases = list[tuple[str, list[tuple[int, TableResync]]]]


def merge_order(tables: Sequence[ResolvedTable]) -> list[str]:
    """Target names, every table after the tables it references by a kept foreign key (cycles broken
    anywhere: the deferred keys are checked at commit anyway)."""
    from dbsplit.plan.order import levels_breaking_cycles

    names = [table_name(t) for t in tables]
    edges = [(table_name(t), fk["ref_table"]) for t in tables for fk in t.foreign_keys if fk["ref_table"] in names]
    return [n for level in levels_breaking_cycles(names, edges) for n in level]


def deferrable_foreign_keys(tgt: psycopg.Connection, oids: list[int]) -> list[sql.Identifier]:
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


def _phases(runs: list[TableResync], upsert_first: bool, overlap: bool) -> Phases:
    """The merge's phases, each a method of TableResync and the tables in the order it visits them."""
    indexed = list(enumerate(runs))
    phases: Phases
    if overlap:
        phases = [("check", indexed), ("upsert", indexed), ("diff", indexed), ("check_rejects", indexed),
                  ("delete", indexed[::-1]), ("upsert", indexed)]
    elif upsert_first:
        phases = [("check", indexed), ("upsert", indexed), ("delete", indexed[::-1])]
    else:
        phases = [("check", indexed), ("delete", indexed[::-1]), ("upsert", indexed)]
    return phases + [("verify", indexed), ("record", indexed)]


def merge(tgt: psycopg.Connection, runs: list[TableResync], fks: list[sql.Identifier], upsert_first: bool,
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
        for phase, sequence in _phases(runs, upsert_first, overlap):
            for i, run in sequence:
                unpark(tgt, i, len(runs) == 1)
                if phase == "check":
                    run.steps["lock"] = round(waited, 4)
                getattr(run, phase)()
                park(tgt, i, len(runs) == 1)
        if fks and switched:   # their checks now, as at commit: ALTER TABLE refuses tables with pending events
            tgt.execute(sql.SQL("SET CONSTRAINTS {} IMMEDIATE").format(sql.SQL(", ").join(fks)))
        for rel in switched:
            resync_state.set_triggers_enabled(tgt, rel, True)


def _rename_temps(tgt: psycopg.Connection, renames: dict[str, str]) -> None:
    rows = tgt.execute("SELECT relname, relkind FROM pg_class WHERE relnamespace = pg_my_temp_schema()"
                       " AND relname = ANY(%s) AND relkind IN ('r', 'v')", (list(renames),)).fetchall()
    for name, kind in rows:
        tgt.execute(sql.SQL("ALTER {} pg_temp.{} RENAME TO {}").format(
            sql.SQL("VIEW" if kind == "v" else "TABLE"), sql.Identifier(name), sql.Identifier(renames[name])))


def park(tgt: psycopg.Connection, i: int, alone: bool = False) -> None:
    """Set a table's temp tables aside (renamed with the suffix #i) so that the next table can use the
    names; alone: the run has one table, nothing to set aside."""
    if not alone:
        _rename_temps(tgt, {n: f"{n}#{i}" for n in TEMPS})


def unpark(tgt: psycopg.Connection, i: int, alone: bool = False) -> None:
    if not alone:
        _rename_temps(tgt, {f"{n}#{i}": n for n in TEMPS})
