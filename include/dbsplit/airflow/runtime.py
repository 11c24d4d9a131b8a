"""What each task of a migrate DAG does at run time. Called by render.py's task callables.

Every function takes small JSON-able descriptors and returns one (Airflow XCom carries only
these); rows move through staging files and the target's `_dbsplit_staging` schema, and the
state that makes loads resumable lives in the target's `_dbsplit` schema.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import signal
import time
from functools import lru_cache
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from dbsplit.airflow import connections as conn  # Airflow connections: resolve, service_role, grant_service
from dbsplit.pg import access, catalog, ddl, provision, staging, state
from dbsplit.engine import resolve
from dbsplit.errors import DataCheckFailed, RejectLimitExceeded
from dbsplit.model import evidence
from dbsplit.pg import copy
from dbsplit.engine.migrate import load_errors
from dbsplit.engine.verify import checksums
from dbsplit.plan import Plan, load_plan
from dbsplit.model.sql_fragments import filter_sql
from dbsplit.model.resolved import ResolvedTable
from dbsplit.engine.migrate.chunks import Chunk, chunk_where, plan_chunks as compute_chunks

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


def prepare_target(service: dict[str, Any]) -> dict[str, Any]:
    """Create the target database and state schema; refuse live tables that dbsplit did not create."""
    target = conn.resolve(service["target_conn_id"])
    created_db = provision.ensure_database(target)
    with psycopg.connect(target) as tgt, tgt.transaction():
        state.ensure_state_schema(tgt)
        for t in service["tables"]:
            staging.check_managed(tgt, t["target_schema"], t["target_table"])
        _refuse_cut_over(tgt, [f"{t['target_schema']}.{t['target_table']}" for t in service["tables"]])
    log.info("target %s ready (database %s)", service["target_conn_id"], "created" if created_db else "existed")
    return {"database_created": created_db}


def _refuse_cut_over(tgt: psycopg.Connection, names: list[str]) -> None:
    """A table a cut-over made the system of record is never loaded again (a DAG triggered by hand
    would otherwise replace the service's rows with the frozen monolith's)."""
    from dbsplit.engine.resync.state import refuse_cut_over

    refuse_cut_over(tgt, names, "a migration would replace the service's rows with the monolith's",
                    "do not run this service's migration again (leave the service out of the orchestrator's run)")


def _plan(path: str) -> Plan:
    """The plan file, re-read when it changed (workers are long-lived; plans are edited between runs)."""
    stat = os.stat(path)
    return _plan_version(path, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _plan_version(path: str, mtime_ns: int, size: int) -> Plan:
    return load_plan(path)


def _resolved(service: dict[str, Any], src: psycopg.Connection) -> list[ResolvedTable]:
    return resolve.resolve_service(_plan(service["plan_path"]), service["service"], src)


def _selected(service: dict[str, Any], tables: list[ResolvedTable], selector: str | None) -> list[ResolvedTable]:
    """The table a static task group stands for, or (selector None) every table of whole-schema routes."""
    if selector is not None:
        return [t for t in tables if t.target_table == selector]
    static = {t["target_table"] for t in service["tables"]}
    return [t for t in tables if t.target_table not in static]


def _target_columns(rt: ResolvedTable) -> list[list[str]]:
    return [[m.target, m.target_type] for m in rt.columns]


def plan_chunks(service: dict[str, Any], selector: str | None, run_id: str) -> list[dict[str, Any]]:
    """Chunks of the selected table(s): those of an unfinished load (resume), or a new plan over fresh staging."""
    out: list[dict[str, Any]] = []
    with copy.source_connection(conn.resolve(service["source_conn_id"])) as src, src.transaction():
        tables = _selected(service, _resolved(service, src), selector)
        if service.get("chunk_rows_override"):
            tables = [dataclasses.replace(t, chunk_rows=service["chunk_rows_override"]) for t in tables]
        with psycopg.connect(conn.resolve(service["target_conn_id"])) as tgt:
            for rt in tables:
                with tgt.transaction():
                    out += _table_chunks(src, tgt, rt, run_id)
    return out


def _table_chunks(src: psycopg.Connection, tgt: psycopg.Connection, rt: ResolvedTable, run_id: str) -> list[dict[str, Any]]:
    name, columns = f"{rt.target_schema}.{rt.target_table}", _target_columns(rt)
    _refuse_cut_over(tgt, [name])   # whole-schema routes: tables prepare_target did not know
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


def extract(service: dict[str, Any], chunk: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Copy one chunk of the source into a staging file, in one read-only snapshot.

    Pass-through tables are copied as raw binary COPY and checksummed by a second session on the
    exported snapshot, in parallel with the COPY; other tables take the transformed path.
    """
    out = {"chunk": chunk, "label": chunk["label"]}
    if chunk["done"]:
        log.info("%s: loaded by an earlier run, skipped", out["label"])
        return out | {"skipped": True}
    rt = ResolvedTable.from_dict(chunk["table"])
    path = staging_file(service["dag_id"], run_id, f"{service['service']}/{_safe(rt.target_table)}",
                        f"chunk-{chunk['index']:05d}.extract")
    source = conn.resolve(service["source_conn_id"])
    where = chunk_where(Chunk.from_dict(chunk), rt.source_key)
    with copy.source_connection(source) as src, src.transaction():
        if not rt.passthrough:
            from dbsplit.engine.migrate import transform as tx

            stats = tx.extract_chunk(src, rt, where, path)
            log.info("extracted %s: %d rows in %.2f s", out["label"], stats.rows, stats.seconds)
            return out | {"skipped": False, "path": str(path), "rows": stats.rows,
                          "source_rows": getattr(stats, "source_rows", None) or stats.rows}
        where = _and(where, rt.filter)
        cols = [m.target for m in rt.columns]
        query = copy.select_sql(rt.source_schema, rt.source_table, cols)
        if where is not None:
            query = sql.SQL("{} WHERE {}").format(query, where)
        relation = sql.Identifier(rt.source_schema, rt.source_table)
        method = chunk.get("checksum_method", checksums.MD5)
        exprs = checksums.hash_columns(src, relation, cols) if method == checksums.HASH64 else checksums.columns(cols)
        snapshot = copy.export_snapshot(src)
        with ThreadPoolExecutor(1) as pool:
            checksum = pool.submit(copy.in_snapshot, source, snapshot, lambda c: checksums.chunk_checksum(
                c, relation, exprs, where, method))
            result = copy.extract_to_file(src, query, path)
            source_checksum = checksum.result()
    if source_checksum.rows != result.rows:
        raise DataCheckFailed(f"{out['label']}: COPY read {result.rows} rows but the snapshot holds {source_checksum.rows}")
    _log_rate("extracted", out["label"], result)
    return out | {"skipped": False, "path": str(path), "rows": result.rows,
                  "source_checksum": checksums.stored(method, source_checksum.total)}


def _and(where: sql.Composable | None, row_filter: str | None) -> sql.Composable | None:
    """The chunk condition ANDed with the plan's row filter (one expression, once the parser accepted it)."""
    if not row_filter:
        return where
    flt = filter_sql(row_filter)
    return flt if where is None else sql.SQL("{} AND {}").format(where, flt)


def transform(service: dict[str, Any], extracted: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Apply the plan's column transforms; pass-through tables go on undecoded."""
    if extracted["skipped"]:
        return extracted
    rt = ResolvedTable.from_dict(extracted["chunk"]["table"])
    if rt.passthrough:
        log.info("%s: no transforms; pass-through (%d rows)", extracted["label"], extracted["rows"])
        return extracted
    from dbsplit.engine.migrate import transform as tx

    chunk = extracted["chunk"]
    dst = staging_file(service["dag_id"], run_id, f"{service['service']}/{_safe(rt.target_table)}",
                       f"chunk-{chunk['index']:05d}.load")
    plan = _plan(service["plan_path"])
    stats = tx.transform_chunk(_open_path(extracted["path"]), dst, rt, plan.namespace_uuid, mask_salt(plan))
    _open_path(extracted["path"]).unlink()
    log.info("transformed %s: %d rows in %.2f s", extracted["label"], stats.rows, stats.seconds)
    return extracted | {"path": str(dst), "rows": stats.rows, "source_checksum": getattr(stats, "checksum", None)}


def mask_salt(plan: Plan) -> bytes | None:
    """The secret salt of `mask: hash`, from the Airflow variable or connection the plan names."""
    salt = plan.defaults.mask_salt
    if salt is None:
        return None
    if salt.variable:
        from airflow.sdk import Variable

        return Variable.get(salt.variable).encode()
    from airflow.sdk import BaseHook

    value = getattr(BaseHook.get_connection(salt.conn_id), salt.field or "password")
    return str(value).encode()


def load(service: dict[str, Any], transformed: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Load one chunk into the staging table; the chunk's rows and its claim commit together (exactly once)."""
    chunk = transformed["chunk"]
    if transformed["skipped"]:
        return {"label": transformed["label"], "skipped": True, "rows": 0}
    rt = ResolvedTable.from_dict(chunk["table"])
    path = _open_path(transformed["path"])
    stg = staging.side_name(rt.target_schema, rt.target_table)
    with psycopg.connect(conn.resolve(service["target_conn_id"])) as tgt, tgt.transaction():
        if not state.claim_chunk(tgt, chunk["load_id"], chunk["index"], transformed.get("source_rows", transformed["rows"]),
                                 transformed.get("source_checksum"), run_id):
            log.info("%s: already loaded (a concurrent or earlier attempt), skipped", transformed["label"])
            return {"label": transformed["label"], "skipped": True, "rows": 0}
        try:
            rows, size, seconds, rejects = _copy_into_staging(tgt, rt, stg, path)
        except psycopg.Error as exc:   # a row the target refuses for good fails the task without a retry
            raise load_errors.refused(exc, transformed["label"]) or exc
        except RejectLimitExceeded as exc:
            # this chunk alone rejects more rows than the table may: its checkpoint fails whatever the
            # other rows do, so isolating each further reject (a COPY retry each) is not worth hours
            log.warning("%s: %s; isolation stopped there and the chunk's rows were not loaded", transformed["label"], exc)
            rows, size, seconds, rejects = 0, 0, 0.0, list(exc.rejects)
        state.complete_chunk(tgt, chunk["load_id"], chunk["index"], rows, size, seconds)
        state.record_rejects(tgt, chunk["load_id"], chunk["index"], rejects)
        _fault_point(f"load:{rt.target_table}:{_count_load(rt.target_table)}")
    log.info("loaded %s: %d rows (%d rejected) in %.2f s (%.0f rows/s)", transformed["label"], rows, len(rejects),
             seconds, rows / seconds if seconds else 0)
    path.unlink()
    return {"label": transformed["label"], "skipped": False, "rows": rows, "rejects": len(rejects)}


def _copy_into_staging(tgt: psycopg.Connection, rt: ResolvedTable, stg: str, path: Any) -> tuple[int, int, float, list]:
    """(rows, bytes, seconds, rejects) of one chunk's COPY into the staging table."""
    if rt.passthrough:
        result = copy.load_from_file(tgt, staging.STAGING, stg, [m.target for m in rt.columns], path)
        return result.rows, result.bytes, result.seconds, []
    from dbsplit.engine.migrate import transform as tx

    stats = tx.load_chunk(tgt, staging.STAGING, stg, rt, path, max_rejects=rt.max_rejected_rows)
    return stats.rows, getattr(stats, "bytes", 0), stats.seconds, list(stats.rejects)


def validate(service: dict[str, Any], selector: str, run_id: str) -> dict[str, Any]:
    """Check one staged table against what was extracted, record the evidence, raise DataCheckFailed on failure."""
    from dbsplit.engine.verify.gx_checks import ROW_COUNT, validate_table

    target = conn.resolve(service["target_conn_id"])
    with copy.source_connection(conn.resolve(service["source_conn_id"])) as src, src.transaction():
        [rt] = _selected(service, _resolved(service, src), selector)
    name = f"{rt.target_schema}.{rt.target_table}"
    with psycopg.connect(target) as tgt:
        load_id, _, _, chunk_plan, done = state.open_load(tgt, name) or (None, 0, [], [], set())
        if load_id is None or len(done) != len(chunk_plan):
            raise DataCheckFailed(f"{name}: only {len(done)} of {len(chunk_plan)} chunks are loaded")
        _, source_rows, _, load_seconds = state.chunk_totals(tgt, load_id)
        rejects = state.reject_count(tgt, load_id)
    stg_name = staging.side_name(rt.target_schema, rt.target_table)
    index_outcomes = _build_indexes(target, rt)
    with ThreadPoolExecutor(1) as pool:   # the checksum scan and GX's queries run side by side
        checksum = pool.submit(_checksum_outcome, service, rt, load_id, [Chunk.from_dict(c) for c in chunk_plan])
        result = validate_table(target, staging.STAGING, stg_name, expected_rows=source_rows - rejects,
                                key_columns=list(rt.key), not_null_columns=[m.target for m in rt.columns if m.not_null])
        outcomes = index_outcomes + [o.__dict__ for o in result.outcomes]
        outcomes += [checksum.result(), _rejects_outcome(rt, rejects)]
    outcomes += _reference_outcomes(service, rt, target)
    suite_outcomes, data_docs = _suite_outcomes(service, rt, target, stg_name, run_id)
    outcomes += suite_outcomes
    success = all(o["success"] is not False for o in outcomes)   # None: not checked, neither passed nor failed
    rows_check = next((o for o in result.outcomes if o.expectation == ROW_COUNT), None)
    ev = state.Evidence(
        dag_id=service["dag_id"], run_id=run_id, service=service["service"],
        source_table=f"{rt.source_schema}.{rt.source_table}", target_table=name, source_rows=source_rows,
        target_rows=rows_check.observed if rows_check else None, success=success, checks=outcomes,
        load_seconds=load_seconds,
    )
    with psycopg.connect(target) as tgt, tgt.transaction():
        state.record_evidence(tgt, ev)
        sample = state.rejects_sample(tgt, load_id)
    evidence.write_evidence(ev.__dict__ | {
        "rejected_rows": rejects, "rejects_sample": sample, "validated_at": datetime.now(timezone.utc).isoformat(),
        "rows_per_second": round(int(source_rows) / float(load_seconds)) if load_seconds else None,
        "data_docs": data_docs})
    if not success:
        raise DataCheckFailed("; ".join(f"{name}: {o['expectation']} failed: {o['details']}"
                                        for o in outcomes if o["success"] is False))
    log.info("%s: %d source rows, %s staged rows, %d rejected, %d checks passed", name, source_rows,
             ev.target_rows, rejects, len(outcomes))
    return {"source_rows": source_rows, "target_rows": ev.target_rows, "success": True}


CHECKSUM = "dbsplit_chunk_checksums_match"
REJECTS = "dbsplit_rejected_rows_within_limit"
INDEXES = "dbsplit_keys_and_indexes_built"


def _build_indexes(target: str, rt: ResolvedTable) -> list[dict[str, Any]]:
    """Build the keys and indexes a pass-through staging table deferred until after its load."""
    start = time.perf_counter()
    try:
        with psycopg.connect(target) as tgt, tgt.transaction():
            built = staging.build_deferred_indexes(tgt, rt.target_schema, rt.target_table)
    except (psycopg.errors.UniqueViolation, psycopg.errors.ExclusionViolation) as exc:
        detail = exc.diag.message_detail or ""
        return [{"expectation": INDEXES, "column": None, "success": False, "observed": detail,
                 "details": f"{exc.diag.message_primary} {detail}".strip()}]
    staging.analyze(target, rt.target_schema, rt.target_table)
    if not built:
        return []
    log.info("%s.%s: %d key(s) and index(es) built after the load, then analysed, in %.2f s", rt.target_schema, rt.target_table,
             built, time.perf_counter() - start)
    return [{"expectation": INDEXES, "column": None, "success": True, "observed": built,
             "details": f"{built} key(s) and index(es) built after the load"}]


def _reference_outcomes(service: dict[str, Any], rt: ResolvedTable, target: str) -> list[dict[str, Any]]:
    """Soft references of the staged table that resolve in the referenced service's live table (another
    database). A referenced table not migrated yet reads "not checked" (success None), never passed: the
    orchestrator's cross-service validation checks it."""
    from dbsplit.engine.verify.references import check_reference, not_checked_outcome, reference_outcome

    plan = _plan(service["plan_path"])
    out = []
    for ref in rt.soft_references:
        parent = _conninfo_if_defined(plan.services[ref.referenced_service].target.conn_id)
        ref_schema, ref_table = ref.referenced_table.split(".", 1)
        if parent is None or not _table_exists(parent, ref_schema, ref_table):
            out.append(not_checked_outcome(ref, f"{ref.referenced_service}: {ref.referenced_table} is not migrated "
                                           "yet; migrate that service first, or run the orchestrator, whose "
                                           "cross-service validation checks this reference"))
            continue
        result = check_reference(target, staging.STAGING, staging.side_name(rt.target_schema, rt.target_table),
                                 ref.column, parent, ref_schema, ref_table, ref.referenced_column)
        out.append(reference_outcome(result, ref))
    return out


def _conninfo_if_defined(conn_id: str) -> str | None:
    """The conninfo of a connection, or None when this deployment does not define it (yet)."""
    from dbsplit.errors import ConnectionConfigError

    try:
        return conn.resolve(conn_id)
    except ConnectionConfigError:
        return None


def _table_exists(conninfo: str, schema: str, table: str) -> bool:
    try:
        with psycopg.connect(conninfo) as c:
            return catalog.table_oid(c, schema, table) is not None
    except psycopg.OperationalError:
        return False


def _suite_outcomes(service: dict[str, Any], rt: ResolvedTable, target: str, stg_name: str,
                    run_id: str) -> tuple[list[dict[str, Any]], str | None]:
    """The plan's GX suite for the table, run on staging; its results and Data Docs go to the reports dir."""
    if not rt.expectations:
        return [], None
    from dbsplit.engine.verify import datadocs
    from dbsplit.engine.verify.suites import validate_suite

    with staging.text_enum_view(target, stg_name) as view:
        run = validate_suite(target, staging.STAGING, view, suite_path(service["plan_path"], rt.expectations),
                             run_name=run_id)
    out_dir = evidence.run_dir(service["dag_id"], run_id) / "gx" / evidence.safe_part(f"{rt.target_schema}.{rt.target_table}")
    datadocs.write_results(run.result, out_dir)
    try:
        index = datadocs.build_data_docs(run.result, out_dir)
        docs = str(index.relative_to(evidence.reports_dir()))
    except Exception as exc:  # the results JSON is kept; Data Docs are a convenience
        log.warning("Data Docs not built for %s: %s", rt.target_table, exc)
        docs = None
    return [o.__dict__ for o in run.outcomes], docs


def table_suites(plan_path: str, tables: list[ResolvedTable]) -> dict[str, Path]:
    """The suite file of each table that names one, by target table name."""
    return {f"{t.target_schema}.{t.target_table}": suite_path(plan_path, t.expectations) for t in tables if t.expectations}


def suite_path(plan_path: str, relative: str) -> Path:
    """A suite path of the plan, relative to the first folder above the plan file that holds it."""
    for folder in Path(plan_path).resolve().parents:
        if (folder / relative).is_file():
            return folder / relative
    raise DataCheckFailed(f"{plan_path}: expectations file {relative} not found in any folder above the plan. "
                          "Fix: correct the path (relative to the project root) or add the suite file.")


def _rejects_outcome(rt: ResolvedTable, rejects: int) -> dict[str, Any]:
    ok = rejects <= rt.max_rejected_rows
    return {"expectation": REJECTS, "column": None, "success": ok, "observed": rejects,
            "details": f"{rejects} row(s) rejected (see _dbsplit.rejects), at most {rt.max_rejected_rows} allowed"
                       + ("" if ok else "; a chunk stops isolating rejects past that limit and is not loaded")}


def _checksum_outcome(service: dict[str, Any], rt: ResolvedTable, load_id: int, plan: list[Chunk]) -> dict[str, Any]:
    """Compare every chunk's source checksum with the staged rows'; locate differing rows of failed chunks.

    Both sides print values under the same settings: the target's checksum queries SET LOCAL those
    the source printed with (a source session's own for pass-through tables; the extract's text
    settings and the source session's TimeZone for transformed ones). Transformed tables carry the
    checksums transform_chunk computed (checksums.compare_transformed); custom functions have none."""
    relation = staging.staging_ident(rt.target_schema, rt.target_table)
    exprs = checksums.columns([m.target for m in rt.columns])
    money = any("money" in m.target_type for m in rt.columns)
    with copy.source_connection(conn.resolve(service["source_conn_id"])) as src, src.transaction():
        settings = checksums.session_settings(src, money)
    if not rt.passthrough:
        from dbsplit.engine.migrate.arrow_io import TEXT_SETTINGS

        settings |= {k: v for k, v in TEXT_SETTINGS.items() if k in checksums.TEXT_OUTPUT_SETTINGS}
    with psycopg.connect(conn.resolve(service["target_conn_id"])) as tgt:
        expected = state.source_checksums(tgt, load_id)
        if any(c is None for _, c in expected.values()):
            why = (f"custom function {rt.custom} returns PostgreSQL input text, not the text the target prints"
                   if rt.custom else "a chunk was loaded without a source checksum")
            return {"expectation": CHECKSUM, "column": None, "success": True, "observed": None,
                    "details": f"not computed: {why} (row count, key and suite checks still apply)"}
        with tgt.transaction():
            checksums.set_local(tgt, settings)
            if not rt.passthrough:
                rejected: dict[int, set[str]] = {}
                for index, key in tgt.execute("SELECT chunk_index, source_key FROM _dbsplit.rejects WHERE load_id = %s",
                                              (load_id,)):
                    rejected.setdefault(index, set()).add(key)
                rows_of = _differing_rows(service, rt, tgt, relation, exprs, None)
                mismatches, how = checksums.compare_transformed(tgt, relation, exprs, rt, plan, expected, rejected, rows_of)
                located = {m.chunk.index if m.chunk else -1: m.keys for m in mismatches}
                details = "; ".join(
                    (f"chunk {m.chunk.label} (key {m.chunk.lo or '-inf'} .. {m.chunk.hi or '+inf'})" if m.chunk
                     else "staged rows from no source chunk") + f": rows with key {', '.join(m.keys) or '(not located)'} differ"
                    for m in mismatches)
                return {"expectation": CHECKSUM, "column": None, "success": not mismatches,
                        "observed": {"chunks": len(plan), "compared": how,
                                     "mismatched_chunks": [m.chunk.index for m in mismatches if m.chunk],
                                     "differing_keys": {str(i): keys for i, keys in located.items()}},
                        "details": details or f"all {len(plan)} chunk checksums match the transformed source ({how})"}
            bad = _passthrough_mismatches(tgt, rt, relation, plan, expected)
            located = {c.index: _differing_rows(service, rt, tgt, relation, exprs, c) for c in bad[:3]}
    details = "; ".join(f"chunk {c.label} (key {c.lo or '-inf'} .. {c.hi or '+inf'}): rows with key "
                        f"{', '.join(located.get(c.index, [])) or '(not located)'} differ" for c in bad)
    return {"expectation": CHECKSUM, "column": None, "success": not bad,
            "observed": {"chunks": len(plan), "mismatched_chunks": [c.index for c in bad],
                         "differing_keys": {str(i): keys for i, keys in located.items()}},
            "details": details or f"all {len(plan)} chunk checksums match the source"}


def _passthrough_mismatches(tgt: psycopg.Connection, rt: ResolvedTable, relation: sql.Composable,
                            plan: list[Chunk], expected: dict[int, tuple[int, str]]) -> list[Chunk]:
    """The chunks of a pass-through table whose staged rows differ from the source's checksum, each
    compared by the method its extract used (chunks of a resumed load may differ)."""
    cols = [m.target for m in rt.columns]
    by_method: dict[str, list[Chunk]] = {}
    for c in plan:
        by_method.setdefault(checksums.parse_stored(expected[c.index][1])[0], []).append(c)
    bad: list[Chunk] = []
    for method, chunks in by_method.items():
        exprs = checksums.hash_columns(tgt, relation, cols) if method == checksums.HASH64 else checksums.columns(cols)
        if len(by_method) == 1:
            actual = checksums.checksums_by_chunk(tgt, relation, exprs, chunks, list(rt.source_key), method)
        else:
            actual = {c.index: checksums.chunk_checksum(tgt, relation, exprs, chunk_where(c, rt.source_key), method)
                      for c in chunks}
        bad += [c for c in chunks if [expected[c.index][0], checksums.parse_stored(expected[c.index][1])[1]]
                != actual[c.index].as_list()]
    return sorted(bad, key=lambda c: c.index)


def _differing_rows(service: dict[str, Any], rt: ResolvedTable, tgt: psycopg.Connection,
                    relation: sql.Composable, exprs: list, chunk: Chunk | None) -> Any:
    """Keys of the rows of one chunk that differ between the source (now) and staging (pass-through).

    For a transformed table (chunk None): a function giving each chunk's rows as extract and transform
    make them now, (source key text, target key text, fingerprint), computed once per chunk."""
    if not rt.passthrough:
        from dbsplit.engine.migrate import transform as tx

        plan = _plan(service["plan_path"])
        cache: dict[Any, Any] = {}

        def rows_of(c: Chunk) -> Any:
            if "salt" not in cache:   # read only when a chunk must be re-transformed
                cache["salt"] = mask_salt(plan)
            if c.index not in cache:
                with copy.source_connection(conn.resolve(service["source_conn_id"])) as src, src.transaction():
                    cache[c.index] = tx.chunk_row_fingerprints(src, rt, chunk_where(c, rt.source_key),
                                                               plan.namespace_uuid, cache["salt"])
            return cache[c.index]
        return rows_of
    key = list(rt.source_key)
    if not key or chunk is None:
        return []
    where = chunk_where(chunk, key)
    with copy.source_connection(conn.resolve(service["source_conn_id"])) as src, src.transaction():
        source_rows = checksums.row_fingerprints(
            src, sql.Identifier(rt.source_schema, rt.source_table), exprs, key, _and(where, rt.filter))
    return checksums.differing_keys(source_rows, checksums.row_fingerprints(tgt, relation, exprs, key, where))


def _service_tables(service: dict[str, Any]) -> list[ResolvedTable]:
    with copy.source_connection(conn.resolve(service["source_conn_id"])) as src, src.transaction():
        return _resolved(service, src)


def checkpoint(service: dict[str, Any], run_id: str) -> str:
    """The go/no-go decision from this run's evidence: "promote", "rollback" (a check failed) or "hold"."""
    with psycopg.connect(conn.resolve(service["target_conn_id"])) as tgt:
        verdicts = {e.target_table: e.success for e in state.latest_evidence(tgt) if e.run_id == run_id}
    tables = [f"{t.target_schema}.{t.target_table}" for t in _service_tables(service)]
    if any(verdicts.get(t) is False for t in tables):
        return "rollback"
    if all(verdicts.get(t) for t in tables):
        return "promote"
    log.warning("not every table was validated (%s); staging kept so that a new run resumes",
                ", ".join(t for t in tables if t not in verdicts))
    return "hold"


def promote(service: dict[str, Any]) -> dict[str, Any]:
    """Swap every staged table of the service into place, then its internal foreign keys, in one transaction."""
    tables = _service_tables(service)
    role = conn.service_role(service["target_conn_id"])
    with psycopg.connect(conn.resolve(service["target_conn_id"])) as tgt, tgt.transaction():
        for rt in tables:
            staging.promote(tgt, rt.target_schema, rt.target_table)
            _finish_open_load(tgt, f"{rt.target_schema}.{rt.target_table}", "promoted")
        for rt in tables:
            staging.add_foreign_keys(tgt, rt.target_schema, rt.target_table, rt.foreign_keys)
            ddl.set_sequences_past_max(tgt, rt.target_schema, rt.target_table)
        if role is not None:   # in the promotion's transaction: no moment without the service's privileges
            access.grant_tables(tgt, role[0], [(rt.target_schema, rt.target_table) for rt in tables])
    _track_changes(service, tables)
    log.info("promoted %d table(s) of service %s", len(tables), service["service"])
    return {"promoted": [f"{t.target_schema}.{t.target_table}" for t in tables]}


def _track_changes(service: dict[str, Any], tables: list[ResolvedTable]) -> None:
    """Record writes made by others to freshly promoted tables that the resync will keep current."""
    from dbsplit.engine.resync.resync import install_change_tracking

    target = conn.resolve(service["target_conn_id"])
    for rt in tables:
        if rt.watermark:
            install_change_tracking(target, rt)


def resync(service: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Bring the service's tables up to date with the source together (one source snapshot, one merge
    transaction, children deleted before parents and parents upserted before children, the foreign keys
    between them checked at commit): changed rows upserted, deleted rows removed, target-side writes
    reported as conflicts (or stopping the run, as the plan says); the changed rows of a table with a GX
    suite checked against its row-by-row expectations before anything is written. Returns each table's
    result."""
    from dbsplit.engine.resync.resync import resync_service

    plan = _plan(service["plan_path"])
    tables = [t for t in _service_tables(service) if t.watermark]
    if not tables:
        log.info("service %s: no table has a watermark; nothing to resync", service["service"])
        return {}
    results = resync_service(conn.resolve(service["source_conn_id"]), conn.resolve(service["target_conn_id"]), tables,
                             namespace=plan.namespace_uuid, salt=mask_salt(plan),
                             on_conflict=plan.services[service["service"]].resync.on_conflict, run_id=run_id,
                             suites=table_suites(service["plan_path"], tables))
    conn.grant_service(conn.resolve(service["target_conn_id"]), service["target_conn_id"],
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


def rollback(service: dict[str, Any]) -> dict[str, Any]:
    """Drop the service's staging tables; live tables stay exactly as they were."""
    tables = _service_tables(service)
    with psycopg.connect(conn.resolve(service["target_conn_id"])) as tgt, tgt.transaction():
        for rt in tables:
            staging.drop_staging_table(tgt, rt.target_schema, rt.target_table)
            _finish_open_load(tgt, f"{rt.target_schema}.{rt.target_table}", "rolled_back")
    log.warning("rolled back service %s: staging dropped, live tables untouched", service["service"])
    return {"rolled_back": [f"{t.target_schema}.{t.target_table}" for t in tables]}


def finish(service: dict[str, Any], run_id: str) -> None:
    """End the run: raise DataCheckFailed naming every failed check unless every table was validated."""
    tables = [f"{t.target_schema}.{t.target_table}" for t in _service_tables(service)]
    with psycopg.connect(conn.resolve(service["target_conn_id"])) as tgt:
        evidence = {e.target_table: e for e in state.latest_evidence(tgt) if e.run_id == run_id}
    problems = []
    for t in tables:
        ev = evidence.get(t)
        if ev is None:
            problems.append(f"{t}: not validated (a load step failed, see its error; staging is kept: "
                            "once its cause is fixed, a new run resumes)")
        elif not ev.success:
            problems.extend(f"{t}: {c['expectation']}{' on ' + c['column'] if c.get('column') else ''} failed, "
                            f"observed {c['observed']}" for c in ev.checks if c["success"] is False)
    if problems:
        raise DataCheckFailed("; ".join(problems))


def table_names(chunks: list[dict[str, Any]]) -> list[str]:
    """The distinct target tables of a flat chunk list (the tables of whole-schema routes)."""
    return list(dict.fromkeys(c["table"]["target_table"] for c in chunks))


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


def _finish_open_load(tgt: psycopg.Connection, name: str, status: str) -> None:
    open_load = state.open_load(tgt, name)
    if open_load:
        state.finish_load(tgt, open_load[0], status)


def _log_rate(verb: str, name: str, r: copy.CopyResult) -> None:
    rate = r.rows / r.seconds if r.seconds > 0 else float("inf")
    log.info("%s %s: %d rows, %.1f MB in %.2f s (%.0f rows/s)", verb, name, r.rows, r.bytes / 1e6, r.seconds, rate)
