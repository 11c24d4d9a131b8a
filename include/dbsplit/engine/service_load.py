"""The rules of a service's chunked load, without Airflow: which chunks a table's load has (a new
plan over fresh staging, or those of an unfinished load to resume), the pass-through extract
(binary COPY checksummed in the same snapshot), the COPY into staging, and the run's verdicts
(checkpoint: promote, roll back or hold; finish: every failed check named).
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

import psycopg

from dbsplit.engine.migrate import passthrough
from dbsplit.engine.migrate.chunks import Chunk, chunk_where
from dbsplit.engine.migrate.chunks import plan_chunks as compute_chunks
from dbsplit.engine.verify import checksums
from dbsplit.errors import DataCheckFailed
from dbsplit.model.resolved import ResolvedTable
from dbsplit.pg import catalog, copy, staging, state

log = logging.getLogger(__name__)

PROMOTE, ROLLBACK, HOLD = "promote", "rollback", "hold"


def refuse_cut_over(tgt: psycopg.Connection, names: list[str]) -> None:
    """A table a cut-over made the system of record is never loaded again (a DAG triggered by hand
    would otherwise replace the service's rows with the frozen monolith's)."""
    from dbsplit.engine.resync.state import refuse_cut_over as refuse

    refuse(tgt, names, "a migration would replace the service's rows with the monolith's",
           "do not run this service's migration again (leave the service out of the orchestrator's run)")


def target_columns(rt: ResolvedTable) -> list[list[str]]:
    return [[m.target, m.target_type] for m in rt.columns]


def table_chunks(src: psycopg.Connection, tgt: psycopg.Connection, rt: ResolvedTable,
                 run_id: str) -> list[dict[str, Any]]:
    """The chunk descriptors of one table: an unfinished load's with the same chunk size and columns
    (resume), else a new load's over a fresh staging table."""
    name, columns = f"{rt.target_schema}.{rt.target_table}", target_columns(rt)
    refuse_cut_over(tgt, [name])   # whole-schema routes: tables prepare_target did not know
    resumable = state.open_load(tgt, name)
    if resumable and resumable[1] == rt.chunk_rows and resumable[2] == columns:
        load_id, _, _, chunks, done = resumable
        log.info("%s: resuming load %d: %d of %d chunks already loaded", name, load_id, len(done), len(chunks))
    else:
        info = catalog.read_table(src, rt.source_schema, rt.source_table)
        key_types = [next(c.type_sql for c in info.columns if c.name == k) for k in rt.source_key]
        chunks = [c.as_dict() for c in compute_chunks(src, rt.source_schema, rt.source_table, rt.source_key,
                                                       key_types, rt.chunk_rows, rt.filter)]
        staging.create_staging_table(tgt, info, rt, defer_indexes=rt.keys_follow_source)
        load_id, done = state.start_load(tgt, name, rt.chunk_rows, columns, chunks, run_id), set()
        log.info("%s: new load %d in %d chunk(s)", name, load_id, len(chunks))
    table, method = rt.as_dict(), checksums.method_for(src, tgt)
    return [{**c, "load_id": load_id, "done": c["index"] in done, "table": table, "checksum_method": method,
             "label": f"{rt.target_table} {c['index'] + 1}/{c['count']}"} for c in chunks]


def extract_passthrough(source: str, rt: ResolvedTable, chunk: Chunk, method: str, path: Any,
                        label: str) -> dict[str, Any]:
    """Raw binary COPY of one chunk into a staging file, checksummed by a second session on the
    exported snapshot, in parallel with the COPY."""
    with copy.source_connection(source) as src, src.transaction():
        result, source_checksum = passthrough.extract_passthrough(
            src, source, rt, chunk_where(chunk, rt.source_key), path, method)
    if source_checksum.rows != result.rows:
        raise DataCheckFailed(f"{label}: COPY read {result.rows} rows but the snapshot holds {source_checksum.rows}")
    log_rate("extracted", label, result)
    return {"skipped": False, "path": str(path), "rows": result.rows,
            "source_checksum": checksums.stored(method, source_checksum.total)}


def copy_into_staging(tgt: psycopg.Connection, rt: ResolvedTable, stg: str, path: Any) -> tuple[int, int, float, list]:
    """(rows, bytes, seconds, rejects) of one chunk's COPY into the staging table."""
    if rt.passthrough:
        result = copy.load_from_file(tgt, staging.STAGING, stg, [m.target for m in rt.columns], path)
        return result.rows, result.bytes, result.seconds, []
    from dbsplit.engine.migrate import transform as tx

    stats = tx.load_chunk(tgt, staging.STAGING, stg, rt, path, max_rejects=rt.max_rejected_rows)
    return stats.rows, getattr(stats, "bytes", 0), stats.seconds, list(stats.rejects)


def checkpoint_decision(verdicts: dict[str, bool], tables: list[str]) -> str:
    """Go/no-go from this run's verdicts by table: roll back when a check failed, promote when every
    table passed, hold (staging kept, a new run resumes) when a table was not validated."""
    if any(verdicts.get(t) is False for t in tables):
        return ROLLBACK
    if all(verdicts.get(t) for t in tables):
        return PROMOTE
    log.warning("not every table was validated (%s); staging kept so that a new run resumes",
                ", ".join(t for t in tables if t not in verdicts))
    return HOLD


def finish_problems(tables: list[str], evidence: dict[str, Any]) -> list[str]:
    """Every reason the run failed: a table not validated, or each failed check of a table."""
    problems = []
    for t in tables:
        ev = evidence.get(t)
        if ev is None:
            problems.append(f"{t}: not validated (a load step failed, see its error; staging is kept: "
                            "once its cause is fixed, a new run resumes)")
        elif not ev.success:
            problems.extend(f"{t}: {c['expectation']}{' on ' + c['column'] if c.get('column') else ''} failed, "
                            f"observed {c['observed']}" for c in ev.checks if c["success"] is False)
    return problems


def finish_open_load(tgt: psycopg.Connection, name: str, status: str) -> None:
    open_load = state.open_load(tgt, name)
    if open_load:
        state.finish_load(tgt, open_load[0], status)


def log_rate(verb: str, name: str, r: copy.CopyResult) -> None:
    rate = r.rows / r.seconds if r.seconds > 0 else float("inf")
    log.info("%s %s: %d rows, %.1f MB in %.2f s (%.0f rows/s)", verb, name, r.rows, r.bytes / 1e6, r.seconds, rate)


_LOADS_IN_THIS_PROCESS: dict[str, int] = {}


def count_load(table: str) -> int:
    """How many chunks of this table this process loaded before the current one (for fault points)."""
    n = _LOADS_IN_THIS_PROCESS.get(table, 0)
    _LOADS_IN_THIS_PROCESS[table] = n + 1
    return n


def fault_point(name: str) -> None:
    """Fault injection for the resume tests: DBSPLIT_FAULT=<name> kills this process here (SIGKILL)."""
    if os.environ.get("DBSPLIT_FAULT") == name:
        log.warning("DBSPLIT_FAULT=%s: killing the worker process", name)
        os.kill(os.getpid(), signal.SIGKILL)
