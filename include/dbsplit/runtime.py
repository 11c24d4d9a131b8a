"""What each task of a migrate DAG does at run time. Called by render.py's task callables.

Every function takes small JSON-able descriptors and returns one (Airflow XCom carries only
these); rows move through staging files and the target's `_dbsplit_staging` schema, and the
state that makes loads resumable lives in the target's `_dbsplit` schema.
"""

from __future__ import annotations

import logging
import os
import re
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from dbsplit import catalog, conn, provision, staging, state
from dbsplit.errors import DataCheckFailed
from dbsplit.move import copy
from dbsplit.validate import checksums
from dbsplit.move.chunks import Chunk, chunk_where, plan_chunks as compute_chunks

log = logging.getLogger(__name__)


def staging_root() -> Any:
    """Where staging files live: $DBSPLIT_STAGING_URL (any ObjectStoragePath URL) or $AIRFLOW_HOME/dbsplit/staging."""
    from airflow.sdk import ObjectStoragePath

    url = os.environ.get("DBSPLIT_STAGING_URL")
    if not url:
        home = Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser().resolve()
        url = f"file://{home}/dbsplit/staging"
    return ObjectStoragePath(url)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def staging_file(dag_id: str, run_id: str, group_id: str, name: str) -> Any:
    path = staging_root() / _safe(dag_id) / _safe(run_id) / group_id / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _open_path(text: str) -> Any:
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(text) if "://" in text else Path(text)


def _qualified(table: dict[str, Any]) -> str:
    return f"{table['target_schema']}.{table['target_table']}"


def prepare_target(service: dict[str, Any]) -> dict[str, Any]:
    """Create the target database and state schema; refuse live tables that dbsplit did not create."""
    target = conn.resolve(service["target_conn_id"])
    created_db = provision.ensure_database(target)
    with psycopg.connect(target) as tgt, tgt.transaction():
        state.ensure_state_schema(tgt)
        for t in service["tables"]:
            staging.check_managed(tgt, t["target_schema"], t["target_table"])
    log.info("target %s ready (database %s)", service["target_conn_id"], "created" if created_db else "existed")
    return {"database_created": created_db}


def plan_chunks(service: dict[str, Any], table: dict[str, Any], run_id: str) -> list[dict[str, Any]]:
    """The table's chunks: those of its unfinished load (resume), or a new plan over a fresh staging table."""
    with copy.source_connection(conn.resolve(service["source_conn_id"])) as src, src.transaction():
        info = catalog.read_table(src, table["source_schema"], table["source_table"])
        columns = [[c.name, c.type_sql] for c in info.columns if c.generated_expr is None]
        with psycopg.connect(conn.resolve(service["target_conn_id"])) as tgt, tgt.transaction():
            resumable = state.open_load(tgt, _qualified(table))
            if resumable and resumable[1] == service["chunk_rows"] and resumable[2] == columns:
                load_id, _, _, chunks, done = resumable
                log.info("%s: resuming load %d: %d of %d chunks already loaded", _qualified(table), load_id,
                         len(done), len(chunks))
            else:
                key_types = [next(c.type_sql for c in info.columns if c.name == k) for k in info.primary_key]
                chunks = [c.as_dict() for c in compute_chunks(src, info.schema, info.name, info.primary_key, key_types,
                                                               service["chunk_rows"])]
                staging.create_staging_table(tgt, table["target_schema"], table["target_table"], columns)
                load_id = state.start_load(tgt, _qualified(table), service["chunk_rows"], columns, chunks, run_id)
                done = set()
                log.info("%s: new load %d in %d chunk(s)", _qualified(table), load_id, len(chunks))
    return [{**c, "load_id": load_id, "done": c["index"] in done, "key": list(info.primary_key)} for c in chunks]


def extract(service: dict[str, Any], table: dict[str, Any], chunk: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Copy one chunk of the source table into a staging file and checksum it, both in one read-only snapshot.

    The checksum runs in a second session on the exported snapshot, in parallel with the COPY.
    """
    out = {"chunk": chunk, "label": f"{table['target_table']} {chunk['index'] + 1}/{chunk['count']}"}
    if chunk["done"]:
        log.info("%s: loaded by an earlier run, skipped", out["label"])
        return out | {"skipped": True}
    path = staging_file(service["dag_id"], run_id, table["group_id"], f"chunk-{chunk['index']:05d}.pgcopy")
    source = conn.resolve(service["source_conn_id"])
    with copy.source_connection(source) as src, src.transaction():
        info = catalog.read_table(src, table["source_schema"], table["source_table"])
        relation = sql.Identifier(info.schema, info.name)
        where = chunk_where(Chunk.from_dict(chunk), chunk["key"])
        query = copy.select_sql(info.schema, info.name, info.copy_columns)
        if where is not None:
            query = sql.SQL("{} WHERE {}").format(query, where)
        snapshot = copy.export_snapshot(src)
        with ThreadPoolExecutor(1) as pool:
            checksum = pool.submit(copy.in_snapshot, source, snapshot, lambda c: checksums.chunk_checksum(
                c, relation, checksums.columns(info.copy_columns), where))
            result = copy.extract_to_file(src, query, path)
            source_checksum = checksum.result()
    if source_checksum.rows != result.rows:
        raise DataCheckFailed(f"{out['label']}: COPY read {result.rows} rows but the snapshot holds {source_checksum.rows}")
    _log_rate("extracted", out["label"], result)
    return out | {"skipped": False, "path": str(path), "rows": result.rows, "bytes": result.bytes,
                  "columns": info.copy_columns, "source_checksum": source_checksum.total}


def transform(service: dict[str, Any], table: dict[str, Any], extracted: dict[str, Any]) -> dict[str, Any]:
    """Apply the plan's column transforms; a plan without transforms passes the file through undecoded."""
    if not extracted["skipped"]:
        log.info("%s: no transforms in the plan; pass-through (%d rows)", extracted["label"], extracted["rows"])
    return extracted


def load(service: dict[str, Any], table: dict[str, Any], transformed: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Load one chunk into the staging table; the chunk's rows and its claim commit together (exactly once)."""
    chunk = transformed["chunk"]
    if transformed["skipped"]:
        return {"label": transformed["label"], "skipped": True, "rows": 0}
    path = _open_path(transformed["path"])
    with psycopg.connect(conn.resolve(service["target_conn_id"])) as tgt, tgt.transaction():
        if not state.claim_chunk(tgt, chunk["load_id"], chunk["index"], transformed["rows"],
                                 transformed.get("source_checksum"), run_id):
            log.info("%s: already loaded (a concurrent or earlier attempt), skipped", transformed["label"])
            return {"label": transformed["label"], "skipped": True, "rows": 0}
        result = copy.load_from_file(tgt, staging.STAGING, staging.side_name(table["target_schema"], table["target_table"]), transformed["columns"], path)
        if result.rows != transformed["rows"]:
            raise DataCheckFailed(f"{transformed['label']}: extracted {transformed['rows']} rows but loaded {result.rows}")
        state.complete_chunk(tgt, chunk["load_id"], chunk["index"], result.rows, result.bytes, result.seconds)
        _fault_point(f"load:{table['target_table']}:{_count_load(table['target_table'])}")
    _log_rate("loaded", transformed["label"], result)
    path.unlink()
    return {"label": transformed["label"], "skipped": False, "rows": result.rows}


def validate(service: dict[str, Any], table: dict[str, Any], chunks: list[dict[str, Any]], run_id: str) -> dict[str, Any]:
    """Check the staging table against what was extracted, record the evidence, raise DataCheckFailed on failure."""
    from dbsplit.validate.gx_checks import ROW_COUNT, validate_table

    target = conn.resolve(service["target_conn_id"])
    load_id = chunks[0]["load_id"]
    with psycopg.connect(target) as tgt:
        loaded_chunks, source_rows, _, load_seconds = state.chunk_totals(tgt, load_id)
    if loaded_chunks != len(chunks):
        raise DataCheckFailed(f"{_qualified(table)}: only {loaded_chunks} of {len(chunks)} chunks are loaded")
    with copy.source_connection(conn.resolve(service["source_conn_id"])) as src:
        info = catalog.read_table(src, table["source_schema"], table["source_table"])
    stg_name = staging.side_name(table["target_schema"], table["target_table"])
    result = validate_table(target, staging.STAGING, stg_name, expected_rows=source_rows,
                            key_columns=list(info.primary_key), not_null_columns=info.not_null_columns)
    outcomes = [o.__dict__ for o in result.outcomes] + [_checksum_outcome(service, table, chunks, info.copy_columns)]
    success = all(o["success"] for o in outcomes)
    rows_check = next((o for o in result.outcomes if o.expectation == ROW_COUNT), None)
    ev = state.Evidence(
        dag_id=service["dag_id"], run_id=run_id, service=service["service"],
        source_table=f"{table['source_schema']}.{table['source_table']}", target_table=_qualified(table),
        source_rows=source_rows, target_rows=rows_check.observed if rows_check else None, success=success,
        checks=outcomes, load_seconds=load_seconds,
    )
    with psycopg.connect(target) as tgt, tgt.transaction():
        state.record_evidence(tgt, ev)
    if not success:
        raise DataCheckFailed("; ".join(f"{_qualified(table)}: {o['expectation']} failed: {o['details']}"
                                        for o in outcomes if not o["success"]))
    log.info("%s: %d source rows, %s staged rows, %d checks passed", _qualified(table), source_rows,
             ev.target_rows, len(outcomes))
    return {"source_rows": source_rows, "target_rows": ev.target_rows, "success": True}


CHECKSUM = "dbsplit_chunk_checksums_match"


def _checksum_outcome(service: dict[str, Any], table: dict[str, Any], chunks: list[dict[str, Any]],
                      cols: list[str]) -> dict[str, Any]:
    """Compare every chunk's source checksum with the staged rows'; locate differing rows of failed chunks."""
    plan = [Chunk.from_dict(c) for c in chunks]
    key = chunks[0]["key"]
    relation = staging.staging_ident(table["target_schema"], table["target_table"])
    exprs = checksums.columns(cols)
    with psycopg.connect(conn.resolve(service["target_conn_id"])) as tgt:
        expected = state.source_checksums(tgt, chunks[0]["load_id"])
        actual = checksums.checksums_by_chunk(tgt, relation, exprs, plan, key)
        bad = [c for c in plan if [expected[c.index][0], expected[c.index][1]] != actual[c.index].as_list()]
        located = {c.index: _differing_rows(service, table, tgt, relation, exprs, c, key) for c in bad[:3]}
    details = "; ".join(f"chunk {c.label} (key {c.lo or '-inf'} .. {c.hi or '+inf'}): rows with key "
                        f"{', '.join(located.get(c.index, [])) or '(not located)'} differ" for c in bad)
    return {"expectation": CHECKSUM, "column": None, "success": not bad,
            "observed": {"chunks": len(plan), "mismatched_chunks": [c.index for c in bad],
                         "differing_keys": {str(i): keys for i, keys in located.items()}},
            "details": details or f"all {len(plan)} chunk checksums match the source"}


def _differing_rows(service: dict[str, Any], table: dict[str, Any], tgt: psycopg.Connection,
                    relation: sql.Composable, exprs: list, chunk: Chunk, key: list[str]) -> list[str]:
    """Keys of the rows of one chunk that differ between the source (now) and staging."""
    if not key:
        return []
    where = chunk_where(chunk, key)
    with copy.source_connection(conn.resolve(service["source_conn_id"])) as src, src.transaction():
        source_rows = checksums.row_fingerprints(
            src, sql.Identifier(table["source_schema"], table["source_table"]), exprs, key, where)
    return checksums.differing_keys(source_rows, checksums.row_fingerprints(tgt, relation, exprs, key, where))


def checkpoint(service: dict[str, Any], run_id: str) -> str:
    """The go/no-go decision from this run's evidence: "promote", "rollback" (a check failed) or "hold"."""
    with psycopg.connect(conn.resolve(service["target_conn_id"])) as tgt:
        verdicts = {e.target_table: e.success for e in state.latest_evidence(tgt) if e.run_id == run_id}
    tables = [_qualified(t) for t in service["tables"]]
    if any(verdicts.get(t) is False for t in tables):
        return "rollback"
    if all(verdicts.get(t) for t in tables):
        return "promote"
    log.warning("not every table was validated (%s); staging kept so that a new run resumes",
                ", ".join(t for t in tables if t not in verdicts))
    return "hold"


def promote(service: dict[str, Any]) -> dict[str, Any]:
    """Swap every staged table of the service into place in one transaction."""
    target = conn.resolve(service["target_conn_id"])
    with copy.source_connection(conn.resolve(service["source_conn_id"])) as src:
        infos = [catalog.read_table(src, t["source_schema"], t["source_table"]) for t in service["tables"]]
    with psycopg.connect(target) as tgt, tgt.transaction():
        for t, info in zip(service["tables"], infos):
            staging.promote(tgt, t["target_schema"], t["target_table"], info.primary_key, info.not_null_columns)
            _finish_open_load(tgt, t, "promoted")
    log.info("promoted %d table(s) of service %s", len(infos), service["service"])
    return {"promoted": [_qualified(t) for t in service["tables"]]}


def rollback(service: dict[str, Any]) -> dict[str, Any]:
    """Drop the service's staging tables; live tables stay exactly as they were."""
    with psycopg.connect(conn.resolve(service["target_conn_id"])) as tgt, tgt.transaction():
        for t in service["tables"]:
            staging.drop_staging_table(tgt, t["target_schema"], t["target_table"])
            _finish_open_load(tgt, t, "rolled_back")
    log.warning("rolled back service %s: staging dropped, live tables untouched", service["service"])
    return {"rolled_back": [_qualified(t) for t in service["tables"]]}


def finish(service: dict[str, Any], run_id: str) -> None:
    """End the run: raise DataCheckFailed naming every failed check unless every table was validated."""
    with psycopg.connect(conn.resolve(service["target_conn_id"])) as tgt:
        evidence = {e.target_table: e for e in state.latest_evidence(tgt) if e.run_id == run_id}
    problems = []
    for t in (_qualified(t) for t in service["tables"]):
        ev = evidence.get(t)
        if ev is None:
            problems.append(f"{t}: not validated (a load step failed; staging is kept, re-trigger to resume)")
        elif not ev.success:
            problems.extend(f"{t}: {c['expectation']}{' on ' + c['column'] if c.get('column') else ''} failed, "
                            f"observed {c['observed']}" for c in ev.checks if not c["success"])
    if problems:
        raise DataCheckFailed("; ".join(problems))


_LOADS_IN_THIS_PROCESS: dict[str, int] = {}


def _count_load(table: str) -> int:
    """How many chunks of this table this process loaded before the current one (for fault points)."""
    n = _LOADS_IN_THIS_PROCESS.get(table, 0)
    _LOADS_IN_THIS_PROCESS[table] = n + 1
    return n


def _fault_point(name: str) -> None:
    """Fault injection for the resume tests: DBSPLIT_FAULT=<name> kills this process here (SIGKILL)."""
    if os.environ.get("DBSPLIT_FAULT") == name:
        log.warning("DBSPLIT_FAULT=%s: killing the worker process", name)
        os.kill(os.getpid(), signal.SIGKILL)


def _finish_open_load(tgt: psycopg.Connection, table: dict[str, Any], status: str) -> None:
    open_load = state.open_load(tgt, _qualified(table))
    if open_load:
        state.finish_load(tgt, open_load[0], status)


def _log_rate(verb: str, name: str, r: copy.CopyResult) -> None:
    rate = r.rows / r.seconds if r.seconds > 0 else float("inf")
    log.info("%s %s: %d rows, %.1f MB in %.2f s (%.0f rows/s)", verb, name, r.rows, r.bytes / 1e6, r.seconds, rate)
