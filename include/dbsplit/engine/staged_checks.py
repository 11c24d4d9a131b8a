"""The checks of one staged table beyond GX's table checks: keys and indexes built after the load,
rejected rows within the plan's limit, chunk checksums against the source, soft references and the
plan's GX suite. Each returns outcome dicts ({"expectation", "column", "success", "observed", "details"})
for the table's evidence. No Airflow: connections arrive as conninfo strings, the mask salt as a value
(looked up by the caller, lazily: only a re-transformed chunk needs it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from dbsplit.engine.migrate.chunks import Chunk, chunk_where
from dbsplit.engine.migrate.passthrough import with_filter
from dbsplit.engine.verify import checksums
from dbsplit.errors import SuiteFileMissing
from dbsplit.model import evidence
from dbsplit.model.resolved import ResolvedTable
from dbsplit.pg import catalog, copy, staging, state

log = logging.getLogger(__name__)

CHECKSUM = "dbsplit_chunk_checksums_match"
REJECTS = "dbsplit_rejected_rows_within_limit"
INDEXES = "dbsplit_keys_and_indexes_built"

Outcome = dict[str, Any]


def build_indexes(target: str, rt: ResolvedTable) -> list[Outcome]:
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
    log.info("%s.%s: %d key(s) and index(es) built after the load, then analysed, in %.2f s", rt.target_schema,
             rt.target_table, built, time.perf_counter() - start)
    return [{"expectation": INDEXES, "column": None, "success": True, "observed": built,
             "details": f"{built} key(s) and index(es) built after the load"}]


def rejects_outcome(rt: ResolvedTable, rejects: int) -> Outcome:
    ok = rejects <= rt.max_rejected_rows
    return {"expectation": REJECTS, "column": None, "success": ok, "observed": rejects,
            "details": f"{rejects} row(s) rejected (see _dbsplit.rejects), at most {rt.max_rejected_rows} allowed"
                       + ("" if ok else "; a chunk stops isolating rejects past that limit and is not loaded")}


def reference_outcomes(rt: ResolvedTable, target: str, parent_conninfo: Callable[[str], str | None]) -> list[Outcome]:
    """Soft references of the staged table that resolve in the referenced service's live table (another
    database). A referenced table not migrated yet reads "not checked" (success None), never passed: the
    orchestrator's cross-service validation checks it. parent_conninfo: a service's target database,
    None when this deployment does not define it (yet)."""
    from dbsplit.engine.verify.references import check_reference, not_checked_outcome, reference_outcome

    out = []
    for ref in rt.soft_references:
        parent = parent_conninfo(ref.referenced_service)
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


def _table_exists(conninfo: str, schema: str, table: str) -> bool:
    try:
        with psycopg.connect(conninfo) as c:
            return catalog.table_oid(c, schema, table) is not None
    except psycopg.OperationalError:
        return False


def suite_outcomes(rt: ResolvedTable, target: str, stg_name: str, plan_path: str, dag_id: str,
                   run_id: str) -> tuple[list[Outcome], str | None]:
    """The plan's GX suite for the table, run on staging; its results and Data Docs go to the reports dir."""
    if not rt.expectations:
        return [], None
    from dbsplit.engine.verify import datadocs
    from dbsplit.engine.verify.suites import validate_suite

    with staging.text_enum_view(target, stg_name) as view:
        run = validate_suite(target, staging.STAGING, view, suite_path(plan_path, rt.expectations), run_name=run_id)
    out_dir = evidence.run_dir(dag_id, run_id) / "gx" / evidence.safe_part(f"{rt.target_schema}.{rt.target_table}")
    datadocs.write_results(run.result, out_dir)
    docs: str | None
    try:
        index = datadocs.build_data_docs(run.result, out_dir)
        docs = str(index.relative_to(evidence.reports_dir()))
    except Exception as exc:  # the results JSON is kept; Data Docs are a convenience
        log.warning("Data Docs not built for %s: %s", rt.target_table, exc)
        docs = None
    return [o.__dict__ for o in run.outcomes], docs


def table_suites(plan_path: str, tables: list[ResolvedTable]) -> dict[str, Path]:
    """The suite file of each table that names one, by target table name."""
    return {f"{t.target_schema}.{t.target_table}": suite_path(plan_path, t.expectations)
            for t in tables if t.expectations}


def suite_path(plan_path: str, relative: str) -> Path:
    """A suite path of the plan, relative to the first folder above the plan file that holds it."""
    for folder in Path(plan_path).resolve().parents:
        if (folder / relative).is_file():
            return folder / relative
    raise SuiteFileMissing(f"{plan_path}: expectations file {relative} not found in any folder above the plan. "
                           "Fix: correct the path (relative to the project root) or add the suite file.")


RowsOf = Callable[[Chunk], Any]


def checksum_outcome(source: str, target: str, rt: ResolvedTable, load_id: int, plan: list[Chunk],
                     rows_of: RowsOf | None = None) -> Outcome:
    """Compare every chunk's source checksum with the staged rows'; locate differing rows of failed chunks.

    Both sides print values under the same settings: the target's checksum queries SET LOCAL those
    the source printed with (a source session's own for pass-through tables; the extract's text
    settings and the source session's TimeZone for transformed ones). Transformed tables carry the
    checksums transform_chunk computed (checksums.compare_transformed); custom functions have none.
    rows_of: for a transformed table, each chunk's rows as extract and transform make them now
    (transformed_rows())."""
    relation = staging.staging_ident(rt.target_schema, rt.target_table)
    exprs = checksums.columns([m.target for m in rt.columns])
    money = any("money" in m.target_type for m in rt.columns)
    with copy.source_connection(source) as src, src.transaction():
        settings = checksums.session_settings(src, money)
    if not rt.passthrough:
        from dbsplit.engine.migrate.arrow_io import TEXT_SETTINGS

        settings |= {k: v for k, v in TEXT_SETTINGS.items() if k in checksums.TEXT_OUTPUT_SETTINGS}
    with psycopg.connect(target) as tgt:
        expected = state.source_checksums(tgt, load_id)
        if any(c is None for _, c in expected.values()):
            why = (f"custom function {rt.custom} returns PostgreSQL input text, not the text the target prints"
                   if rt.custom else "a chunk was loaded without a source checksum")
            return {"expectation": CHECKSUM, "column": None, "success": True, "observed": None,
                    "details": f"not computed: {why} (row count, key and suite checks still apply)"}
        with tgt.transaction():
            checksums.set_local(tgt, settings)
            if not rt.passthrough:
                assert rows_of is not None, "a transformed table's checksums need rows_of"
                return _transformed_outcome(tgt, rt, relation, exprs, load_id, plan, expected, rows_of)
            stored = {i: (n, c) for i, (n, c) in expected.items() if c is not None}   # every one, as checked above
            bad = _passthrough_mismatches(tgt, rt, relation, plan, stored)
            located = {c.index: _differing_keys(source, rt, tgt, relation, exprs, c) for c in bad[:3]}
    details = "; ".join(f"chunk {c.label} (key {c.lo or '-inf'} .. {c.hi or '+inf'}): rows with key "
                        f"{', '.join(located.get(c.index, [])) or '(not located)'} differ" for c in bad)
    return {"expectation": CHECKSUM, "column": None, "success": not bad,
            "observed": {"chunks": len(plan), "mismatched_chunks": [c.index for c in bad],
                         "differing_keys": {str(i): keys for i, keys in located.items()}},
            "details": details or f"all {len(plan)} chunk checksums match the source"}


def _transformed_outcome(tgt: psycopg.Connection, rt: ResolvedTable, relation: sql.Composable, exprs: list,
                         load_id: int, plan: list[Chunk], expected: dict[int, tuple[int, str | None]],
                         rows_of: RowsOf) -> Outcome:
    rejected: dict[int, set[str]] = {}
    for index, key in tgt.execute("SELECT chunk_index, source_key FROM _dbsplit.rejects WHERE load_id = %s",
                                  (load_id,)):
        rejected.setdefault(index, set()).add(key)
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


def transformed_rows(source: str, rt: ResolvedTable, namespace: Any, salt: Callable[[], bytes | None]) -> RowsOf:
    """A function giving each chunk's rows of a transformed table as extract and transform make them now,
    (source key text, target key text, fingerprint), computed once per chunk; salt() is called only when
    a chunk must be re-transformed."""
    from dbsplit.engine.migrate import transform as tx

    cache: dict[Any, Any] = {}

    def rows_of(c: Chunk) -> Any:
        if "salt" not in cache:
            cache["salt"] = salt()
        if c.index not in cache:
            with copy.source_connection(source) as src, src.transaction():
                cache[c.index] = tx.chunk_row_fingerprints(src, rt, chunk_where(c, rt.source_key), namespace,
                                                           cache["salt"])
        return cache[c.index]
    return rows_of


def _differing_keys(source: str, rt: ResolvedTable, tgt: psycopg.Connection, relation: sql.Composable,
                    exprs: list, chunk: Chunk) -> list[str]:
    """Keys of the rows of one chunk that differ between the source (now) and staging (pass-through)."""
    key = list(rt.source_key)
    if not key:
        return []
    where = chunk_where(chunk, key)
    with copy.source_connection(source) as src, src.transaction():
        source_rows = checksums.row_fingerprints(
            src, sql.Identifier(rt.source_schema, rt.source_table), exprs, key, with_filter(where, rt.filter))
    return checksums.differing_keys(source_rows, checksums.row_fingerprints(tgt, relation, exprs, key, where))
