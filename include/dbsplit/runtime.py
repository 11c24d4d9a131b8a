"""What each task of a migrate DAG does at run time. Called by render.py's task callables.

Every function takes small JSON-able descriptors and returns one (Airflow XCom carries only
these); data itself moves through staging files.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from dbsplit import catalog, conn, ddl, provision, state
from dbsplit.errors import DataCheckFailed
from dbsplit.move import copy

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


def staging_file(dag_id: str, run_id: str, group_id: str, step: str) -> Any:
    path = staging_root() / _safe(dag_id) / _safe(run_id) / group_id / f"{step}.pgcopy"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def prepare_target(service: dict[str, Any]) -> dict[str, Any]:
    """Create the target database, the state schema and every target table the service needs."""
    source, target = conn.resolve(service["source_conn_id"]), conn.resolve(service["target_conn_id"])
    created_db = provision.ensure_database(target)
    with copy.source_connection(source) as src:
        infos = [catalog.read_table(src, t["source_schema"], t["source_table"]) for t in service["tables"]]
    created = []
    with psycopg.connect(target) as tgt, tgt.transaction():
        state.ensure_state_schema(tgt)
        for t, info in zip(service["tables"], infos):
            if ddl.ensure_target_table(tgt, info, t["target_schema"], t["target_table"]):
                created.append(t["target_table"])
    log.info("target %s ready: database %s, tables created: %s", service["target_conn_id"],
             "created" if created_db else "existed", created or "none")
    return {"database_created": created_db, "tables_created": created}


def extract(service: dict[str, Any], table: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Copy the source table into a staging file, in one read-only snapshot; return its descriptor."""
    path = staging_file(service["dag_id"], run_id, table["group_id"], "extract")
    with copy.source_connection(conn.resolve(service["source_conn_id"])) as src, src.transaction():
        info = catalog.read_table(src, table["source_schema"], table["source_table"])
        query = copy.select_sql(info.schema, info.name, info.copy_columns)
        result = copy.extract_to_file(src, query, path)
    _log_rate("extracted", table["source_table"], result)
    return {"path": str(path), "rows": result.rows, "bytes": result.bytes, "columns": info.copy_columns,
            "key": list(info.primary_key), "not_null": info.not_null_columns, "seconds": result.seconds}


def transform(service: dict[str, Any], table: dict[str, Any], extracted: dict[str, Any]) -> dict[str, Any]:
    """Apply the plan's column transforms; plan v1 has none, so the file passes through undecoded."""
    log.info("%s: no transforms in the plan; pass-through (%d rows)", table["source_table"], extracted["rows"])
    return extracted


def load(service: dict[str, Any], table: dict[str, Any], transformed: dict[str, Any]) -> dict[str, Any]:
    """Replace the target table's rows with the staged rows, in one transaction (a rerun gives the same result)."""
    from airflow.sdk import ObjectStoragePath

    path = ObjectStoragePath(transformed["path"]) if "://" in transformed["path"] else Path(transformed["path"])
    with psycopg.connect(conn.resolve(service["target_conn_id"])) as tgt, tgt.transaction():
        tgt.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(table["target_schema"], table["target_table"])))
        result = copy.load_from_file(tgt, table["target_schema"], table["target_table"], transformed["columns"], path)
    _log_rate("loaded", table["target_table"], result)
    if result.rows != transformed["rows"]:
        raise DataCheckFailed(f"{table['target_table']}: staged {transformed['rows']} rows but COPY loaded {result.rows}")
    path.unlink()
    return {"rows": result.rows, "seconds": result.seconds}


def validate(service: dict[str, Any], table: dict[str, Any], extracted: dict[str, Any],
             loaded: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Run the checks on the target table, record the evidence, and raise DataCheckFailed when any fails."""
    from dbsplit.validate.gx_checks import ROW_COUNT, validate_table

    target = conn.resolve(service["target_conn_id"])
    result = validate_table(target, table["target_schema"], table["target_table"], expected_rows=extracted["rows"],
                            key_columns=extracted["key"], not_null_columns=extracted["not_null"])
    rows_check = next((o for o in result.outcomes if o.expectation == ROW_COUNT), None)
    target_rows = rows_check.observed if rows_check else None
    ev = state.Evidence(
        dag_id=service["dag_id"], run_id=run_id, service=service["service"],
        source_table=f"{table['source_schema']}.{table['source_table']}",
        target_table=f"{table['target_schema']}.{table['target_table']}",
        source_rows=extracted["rows"], target_rows=target_rows, success=result.success,
        checks=[o.__dict__ for o in result.outcomes], load_seconds=loaded["seconds"],
    )
    with psycopg.connect(target) as tgt, tgt.transaction():
        state.record_evidence(tgt, ev)
    if not result.success:
        raise DataCheckFailed(result.summary())
    log.info("%s: %d source rows, %s target rows, %d checks passed", table["target_table"], extracted["rows"],
             target_rows, len(result.outcomes))
    return {"source_rows": extracted["rows"], "target_rows": target_rows, "success": True}


def _log_rate(verb: str, name: str, r: copy.CopyResult) -> None:
    rate = r.rows / r.seconds if r.seconds > 0 else float("inf")
    log.info("%s %s: %d rows, %.1f MB in %.2f s (%.0f rows/s)", verb, name, r.rows, r.bytes / 1e6, r.seconds, rate)

