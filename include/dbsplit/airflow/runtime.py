"""What each task of a migrate DAG does at run time. Called by render.py's task callables.

Every function takes small JSON-able descriptors and returns one (Airflow XCom carries only
these); rows move through staging files and the target's `_dbsplit_staging` schema, and the
state that makes loads resumable lives in the target's `_dbsplit` schema. The rules live in
engine/ (service_load: chunks, extract, verdicts; staged_checks: the checks of a staged table);
this module connects them to the deployment (connections, staging paths, the mask salt).
"""

from __future__ import annotations

import dataclasses
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

import psycopg

from dbsplit.airflow import connections as conn  # Airflow connections: resolve, service_role, grant_service
from dbsplit.airflow.context import conninfo_if_defined, mask_salt, open_path, safe, staging_file
from dbsplit.airflow.context import plan as _plan
from dbsplit.engine import resolve
from dbsplit.engine import service_load as sl
from dbsplit.engine import staged_checks as checks
from dbsplit.engine.migrate import load_errors
from dbsplit.engine.migrate.chunks import Chunk, chunk_where
from dbsplit.engine.payloads import ChunkTask, LoadedChunk, ServiceRef, StagedChunk
from dbsplit.engine.staged_checks import CHECKSUM, INDEXES, REJECTS, suite_path, table_suites
from dbsplit.engine.verify import checksums
from dbsplit.errors import DataCheckFailed, RejectLimitExceeded
from dbsplit.model import evidence
from dbsplit.model.resolved import ResolvedTable
from dbsplit.pg import access, copy, ddl, provision, staging, state

__all__ = ["CHECKSUM", "INDEXES", "REJECTS", "mask_salt", "suite_path", "table_suites"]   # re-exported

log = logging.getLogger(__name__)

Json = dict[str, Any]
Service = ServiceRef | Json   # a task receives the JSON form (the DAG's argument); tests may pass either


def prepare_target(service: Service) -> Json:
    """Create the target database and state schema; refuse live tables that dbsplit did not create."""
    svc = ServiceRef.of(service)
    target = conn.resolve(svc.target_conn_id)
    created_db = provision.ensure_database(target)
    with psycopg.connect(target) as tgt, tgt.transaction():
        state.ensure_state_schema(tgt)
        for t in svc.tables:
            staging.check_managed(tgt, t.target_schema, t.target_table)
        sl.refuse_cut_over(tgt, [t.name for t in svc.tables])
    log.info("target %s ready (database %s)", svc.target_conn_id, "created" if created_db else "existed")
    return {"database_created": created_db}


def _resolved(svc: ServiceRef, src: psycopg.Connection) -> list[ResolvedTable]:
    return resolve.resolve_service(_plan(svc.plan_path), svc.service, src)


def _selected(svc: ServiceRef, tables: list[ResolvedTable], selector: str | None) -> list[ResolvedTable]:
    """The table a static task group stands for, or (selector None) every table of whole-schema routes."""
    if selector is not None:
        return [t for t in tables if t.target_table == selector]
    static = {t.target_table for t in svc.tables}
    return [t for t in tables if t.target_table not in static]


def plan_chunks(service: Service, selector: str | None, run_id: str, chunk_rows: int | None = None) -> list[Json]:
    """Chunks of the selected table(s): those of an unfinished load (resume), or a new plan over fresh staging.
    chunk_rows: the run's override of the plan's chunk size (the DAG's `chunk_rows` parameter), if any."""
    svc = ServiceRef.of(service)
    out: list[ChunkTask] = []
    with copy.source_connection(conn.resolve(svc.source_conn_id)) as src, src.transaction():
        tables = _selected(svc, _resolved(svc, src), selector)
        if chunk_rows:
            tables = [dataclasses.replace(t, chunk_rows=chunk_rows) for t in tables]
        with psycopg.connect(conn.resolve(svc.target_conn_id)) as tgt:
            for rt in tables:
                with tgt.transaction():
                    out += [ChunkTask.of(c) for c in sl.table_chunks(src, tgt, rt, run_id)]
    return [c.dump() for c in out]


def extract(service: Service, chunk: Json, run_id: str) -> Json:
    """Copy one chunk of the source into a staging file, in one read-only snapshot.

    Pass-through tables are copied as raw binary COPY and checksummed by a second session on the
    exported snapshot, in parallel with the COPY; other tables take the transformed path.
    """
    svc, task = ServiceRef.of(service), ChunkTask.of(chunk)
    if task.done:
        log.info("%s: loaded by an earlier run, skipped", task.label)
        return StagedChunk(chunk=task, label=task.label, skipped=True).dump()
    rt = task.resolved()
    path = staging_file(svc.dag_id, run_id, f"{svc.service}/{safe(rt.target_table)}", f"chunk-{task.index:05d}.extract")
    source = conn.resolve(svc.source_conn_id)
    if rt.passthrough:
        done = sl.extract_passthrough(source, rt, task.chunk(), task.checksum_method or checksums.MD5, path, task.label)
        return StagedChunk(chunk=task, label=task.label, **done).dump()
    from dbsplit.engine.migrate import transform as tx

    with copy.source_connection(source) as src, src.transaction():
        stats = tx.extract_chunk(src, rt, chunk_where(task.chunk(), rt.source_key), path)
    log.info("extracted %s: %d rows in %.2f s", task.label, stats.rows, stats.seconds)
    return StagedChunk(chunk=task, label=task.label, skipped=False, path=str(path), rows=stats.rows,
                       source_rows=getattr(stats, "source_rows", None) or stats.rows).dump()


def transform(service: Service, extracted: Json, run_id: str) -> Json:
    """Apply the plan's column transforms; pass-through tables go on undecoded."""
    svc, staged = ServiceRef.of(service), StagedChunk.of(extracted)
    if staged.skipped:
        return staged.dump()
    rt = staged.chunk.resolved()
    if rt.passthrough:
        log.info("%s: no transforms; pass-through (%d rows)", staged.label, staged.rows)
        return staged.dump()
    from dbsplit.engine.migrate import transform as tx

    assert staged.path is not None, "an extracted chunk has a staging file"
    dst = staging_file(svc.dag_id, run_id, f"{svc.service}/{safe(rt.target_table)}",
                       f"chunk-{staged.chunk.index:05d}.load")
    plan = _plan(svc.plan_path)
    stats = tx.transform_chunk(open_path(staged.path), dst, rt, plan.namespace_uuid, mask_salt(plan))
    open_path(staged.path).unlink()
    log.info("transformed %s: %d rows in %.2f s", staged.label, stats.rows, stats.seconds)
    return staged.model_copy(update={"path": str(dst), "rows": stats.rows,
                                     "source_checksum": getattr(stats, "checksum", None)}).dump()


def load(service: Service, transformed: Json, run_id: str) -> Json:
    """Load one chunk into the staging table; the chunk's rows and its claim commit together (exactly once)."""
    svc, staged = ServiceRef.of(service), StagedChunk.of(transformed)
    task, label = staged.chunk, staged.label
    if staged.skipped:
        return LoadedChunk(label=label, skipped=True, rows=0).dump()
    assert staged.path is not None and staged.rows is not None, "an extracted chunk has a staging file"
    rt = task.resolved()
    path = open_path(staged.path)
    stg = staging.side_name(rt.target_schema, rt.target_table)
    with psycopg.connect(conn.resolve(svc.target_conn_id)) as tgt, tgt.transaction():
        source_rows = staged.source_rows if staged.source_rows is not None else staged.rows
        if not state.claim_chunk(tgt, task.load_id, task.index, source_rows, staged.source_checksum, run_id):
            log.info("%s: already loaded (a concurrent or earlier attempt), skipped", label)
            return LoadedChunk(label=label, skipped=True, rows=0).dump()
        try:
            rows, size, seconds, rejects = sl.copy_into_staging(tgt, rt, stg, path)
        except psycopg.Error as exc:   # a row the target refuses for good fails the task without a retry
            refused = load_errors.refused(exc, label)
            if refused is None:
                raise
            raise refused from exc
        except RejectLimitExceeded as exc:
            # this chunk alone rejects more rows than the table may: its checkpoint fails whatever the
            # other rows do, so isolating each further reject (a COPY retry each) is not worth hours
            log.warning("%s: %s; isolation stopped there and the chunk's rows were not loaded", label, exc)
            rows, size, seconds, rejects = 0, 0, 0.0, list(exc.rejects)
        state.complete_chunk(tgt, task.load_id, task.index, rows, size, seconds)
        state.record_rejects(tgt, task.load_id, task.index, rejects)
        sl.fault_point(f"load:{rt.target_table}:{sl.count_load(rt.target_table)}")
    log.info("loaded %s: %d rows (%d rejected) in %.2f s (%.0f rows/s)", label, rows, len(rejects),
             seconds, rows / seconds if seconds else 0)
    path.unlink()
    return LoadedChunk(label=label, skipped=False, rows=rows, rejects=len(rejects)).dump()


def validate(service: Service, selector: str, run_id: str) -> Json:
    """Check one staged table against what was extracted, record the evidence, raise DataCheckFailed on failure."""
    svc = ServiceRef.of(service)
    from dbsplit.engine.verify.gx_checks import ROW_COUNT, validate_table

    source, target = conn.resolve(svc.source_conn_id), conn.resolve(svc.target_conn_id)
    with copy.source_connection(source) as src, src.transaction():
        [rt] = _selected(svc, _resolved(svc, src), selector)
    name = f"{rt.target_schema}.{rt.target_table}"
    load_id, chunk_plan, source_rows, load_seconds, rejects = _finished_load(target, name)
    stg_name = staging.side_name(rt.target_schema, rt.target_table)
    index_outcomes = checks.build_indexes(target, rt)
    with ThreadPoolExecutor(1) as pool:   # the checksum scan and GX's queries run side by side
        checksum = pool.submit(checks.checksum_outcome, source, target, rt, load_id, chunk_plan,
                               _rows_of(svc, source, rt))
        result = validate_table(target, staging.STAGING, stg_name, expected_rows=source_rows - rejects,
                                key_columns=list(rt.key), not_null_columns=[m.target for m in rt.columns if m.not_null])
        outcomes = index_outcomes + [o.__dict__ for o in result.outcomes]
        outcomes += [checksum.result(), checks.rejects_outcome(rt, rejects)]
    plan = _plan(svc.plan_path)
    outcomes += checks.reference_outcomes(rt, target, lambda s: conninfo_if_defined(plan.services[s].target.conn_id))
    suite_outcomes, data_docs = checks.suite_outcomes(rt, target, stg_name, svc.plan_path, svc.dag_id,
                                                      run_id)
    outcomes += suite_outcomes
    success = all(o["success"] is not False for o in outcomes)   # None: not checked, neither passed nor failed
    rows_check = next((o for o in result.outcomes if o.expectation == ROW_COUNT), None)
    ev = state.Evidence(
        dag_id=svc.dag_id, run_id=run_id, service=svc.service,
        source_table=f"{rt.source_schema}.{rt.source_table}", target_table=name, source_rows=source_rows,
        target_rows=rows_check.observed if rows_check else None, success=success, checks=outcomes,
        load_seconds=load_seconds,
    )
    _record(target, ev, load_id, rejects, data_docs)
    if not success:
        raise DataCheckFailed("; ".join(f"{name}: {o['expectation']} failed: {o['details']}"
                                        for o in outcomes if o["success"] is False))
    log.info("%s: %d source rows, %s staged rows, %d rejected, %d checks passed", name, source_rows,
             ev.target_rows, rejects, len(outcomes))
    return {"source_rows": source_rows, "target_rows": ev.target_rows, "success": True}


def _finished_load(target: str, name: str) -> tuple[int, list[Chunk], int, float, int]:
    """(load id, chunk plan, source rows, load seconds, rejected rows) of the table's load, every chunk loaded."""
    with psycopg.connect(target) as tgt:
        load_id, _, _, chunk_plan, done = state.open_load(tgt, name) or (None, 0, [], [], set())
        if load_id is None or len(done) != len(chunk_plan):
            raise DataCheckFailed(f"{name}: only {len(done)} of {len(chunk_plan)} chunks are loaded. Fix: run the "
                                  "load tasks again (a new run resumes the load)")
        _, source_rows, _, load_seconds = state.chunk_totals(tgt, load_id)
        rejects = state.reject_count(tgt, load_id)
    return load_id, [Chunk.from_dict(c) for c in chunk_plan], source_rows, load_seconds, rejects


def _rows_of(svc: ServiceRef, source: str, rt: ResolvedTable) -> checks.RowsOf | None:
    """For a transformed table: its chunks' rows as made now; the salt is looked up only if a chunk needs it."""
    if rt.passthrough:
        return None
    plan = _plan(svc.plan_path)
    return checks.transformed_rows(source, rt, plan.namespace_uuid, lambda: mask_salt(plan))


def _record(target: str, ev: state.Evidence, load_id: int, rejects: int, data_docs: str | None) -> None:
    """The table's evidence, in the target's state schema and in the reports directory."""
    with psycopg.connect(target) as tgt, tgt.transaction():
        state.record_evidence(tgt, ev)
        sample = state.rejects_sample(tgt, load_id)
    evidence.write_evidence(ev.__dict__ | {
        "rejected_rows": rejects, "rejects_sample": sample, "validated_at": datetime.now(timezone.utc).isoformat(),
        "rows_per_second": round(int(ev.source_rows) / float(ev.load_seconds)) if ev.load_seconds else None,
        "data_docs": data_docs})


def _service_tables(svc: ServiceRef) -> list[ResolvedTable]:
    with copy.source_connection(conn.resolve(svc.source_conn_id)) as src, src.transaction():
        return _resolved(svc, src)


def checkpoint(service: Service, run_id: str) -> str:
    """The go/no-go decision from this run's evidence: "promote", "rollback" (a check failed) or "hold"."""
    svc = ServiceRef.of(service)
    with psycopg.connect(conn.resolve(svc.target_conn_id)) as tgt:
        verdicts = {e.target_table: e.success for e in state.latest_evidence(tgt) if e.run_id == run_id}
    tables = [f"{t.target_schema}.{t.target_table}" for t in _service_tables(svc)]
    return sl.checkpoint_decision(verdicts, tables)


def promote(service: Service) -> Json:
    """Swap every staged table of the service into place, then its internal foreign keys, in one transaction."""
    svc = ServiceRef.of(service)
    tables = _service_tables(svc)
    role = conn.service_role(svc.target_conn_id)
    with psycopg.connect(conn.resolve(svc.target_conn_id)) as tgt, tgt.transaction():
        for rt in tables:
            staging.promote(tgt, rt.target_schema, rt.target_table)
            sl.finish_open_load(tgt, f"{rt.target_schema}.{rt.target_table}", "promoted")
        for rt in tables:
            staging.add_foreign_keys(tgt, rt.target_schema, rt.target_table, rt.foreign_keys)
            ddl.set_sequences_past_max(tgt, rt.target_schema, rt.target_table)
        if role is not None:   # in the promotion's transaction: no moment without the service's privileges
            access.grant_tables(tgt, role[0], [(rt.target_schema, rt.target_table) for rt in tables])
    _track_changes(svc, tables)
    log.info("promoted %d table(s) of service %s", len(tables), svc.service)
    return {"promoted": [f"{t.target_schema}.{t.target_table}" for t in tables]}


def _track_changes(svc: ServiceRef, tables: list[ResolvedTable]) -> None:
    """Record writes made by others to freshly promoted tables that the resync will keep current."""
    from dbsplit.engine.resync.resync import install_change_tracking

    target = conn.resolve(svc.target_conn_id)
    for rt in tables:
        if rt.watermark:
            install_change_tracking(target, rt)


def resync(service: Service, run_id: str) -> Json:
    """Bring the service's tables up to date with the source together (one source snapshot, one merge
    transaction, children deleted before parents and parents upserted before children, the foreign keys
    between them checked at commit): changed rows upserted, deleted rows removed, target-side writes
    reported as conflicts (or stopping the run, as the plan says); the changed rows of a table with a GX
    suite checked against its row-by-row expectations before anything is written. Returns each table's
    result."""
    svc = ServiceRef.of(service)
    from dbsplit.engine.resync.resync import resync_service

    plan = _plan(svc.plan_path)
    tables = [t for t in _service_tables(svc) if t.watermark]
    if not tables:
        log.info("service %s: no table has a watermark; nothing to resync", svc.service)
        return {}
    results = resync_service(conn.resolve(svc.source_conn_id), conn.resolve(svc.target_conn_id), tables,
                             namespace=plan.namespace_uuid, salt=mask_salt(plan),
                             on_conflict=plan.services[svc.service].resync.on_conflict, run_id=run_id,
                             suites=table_suites(svc.plan_path, tables))
    conn.grant_service(conn.resolve(svc.target_conn_id), svc.target_conn_id,
                         [(t.target_schema, t.target_table) for t in tables])
    for name, result in results.items():
        log.info("%s: %d upserted, %d deleted, %d conflicts in %.2f s (watermark %s -> %s)", name, result.upserted,
                 result.deleted, len(result.conflicts), result.seconds, result.watermark_before, result.watermark_after)
        if result.conflicts:
            log.warning("%s: rows changed in the target since the last sync, overwritten by the source: %s",
                        name, ", ".join(result.conflicts[:20]))
        if result.checks_table_wide:
            log.info("%s: left to the service DAG's validation (they need the whole table): %s", name,
                     "; ".join(result.checks_table_wide))
    return {name: {k: v for k, v in r.as_dict().items() if k not in ("steps",)} for name, r in results.items()}


def rollback(service: Service) -> Json:
    """Drop the service's staging tables; live tables stay exactly as they were."""
    svc = ServiceRef.of(service)
    tables = _service_tables(svc)
    with psycopg.connect(conn.resolve(svc.target_conn_id)) as tgt, tgt.transaction():
        for rt in tables:
            staging.drop_staging_table(tgt, rt.target_schema, rt.target_table)
            sl.finish_open_load(tgt, f"{rt.target_schema}.{rt.target_table}", "rolled_back")
    log.warning("rolled back service %s: staging dropped, live tables untouched", svc.service)
    return {"rolled_back": [f"{t.target_schema}.{t.target_table}" for t in tables]}


def finish(service: Service, run_id: str) -> None:
    """End the run: raise DataCheckFailed naming every failed check unless every table was validated."""
    svc = ServiceRef.of(service)
    tables = [f"{t.target_schema}.{t.target_table}" for t in _service_tables(svc)]
    with psycopg.connect(conn.resolve(svc.target_conn_id)) as tgt:
        evidence = {e.target_table: e for e in state.latest_evidence(tgt) if e.run_id == run_id}
    problems = sl.finish_problems(tables, evidence)
    if problems:
        raise DataCheckFailed("; ".join(problems))


def table_names(chunks: list[Json]) -> list[str]:
    """The distinct target tables of a flat chunk list (the tables of whole-schema routes)."""
    return list(dict.fromkeys(c["table"]["target_table"] for c in chunks))
