"""Evidence files: one JSON document per validated table and run, beside the GX results and Data Docs.

Layout under the reports directory ($DBSPLIT_REPORTS_DIR, default $AIRFLOW_HOME/dbsplit/reports):

    runs/<dag_id>/<run_id>/<schema.table>.json     the evidence of one table in one run
    runs/<dag_id>/<run_id>/gx/<schema.table>/...    GX validation results and Data Docs of that table

Evidence document keys: dag_id, run_id, service, source_table, target_table, source_rows,
target_rows, rejected_rows, rejects_sample (list of {source_key, column, value, reason}), success,
checks (list of {expectation, column, success, observed, details}; success null: the check could not run,
"not checked", neither passed nor failed, e.g. a reference into a service not migrated yet), load_seconds,
rows_per_second, validated_at (ISO 8601), data_docs (path relative to the reports dir, or null).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

SAFE = re.compile(r"[^A-Za-z0-9_.=+-]+")


def reports_dir() -> Path:
    """$DBSPLIT_REPORTS_DIR, else $AIRFLOW_HOME/dbsplit/reports."""
    explicit = os.environ.get("DBSPLIT_REPORTS_DIR")
    if explicit:
        return Path(explicit).expanduser().resolve()
    return Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser().resolve() / "dbsplit" / "reports"


def safe_part(text: str) -> str:
    """A path component that cannot climb out of its folder (run ids contain ':' and '+')."""
    part = SAFE.sub("_", text).strip(".")
    return part or "_"


def run_dir(dag_id: str, run_id: str, root: Path | None = None) -> Path:
    return (root or reports_dir()) / "runs" / safe_part(dag_id) / safe_part(run_id)


def write_evidence(doc: dict[str, Any], root: Path | None = None) -> Path:
    """Write one table's evidence document; returns its path."""
    folder = run_dir(doc["dag_id"], doc["run_id"], root)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{safe_part(doc['target_table'])}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)
    return path


def read_run(dag_id: str, run_id: str, root: Path | None = None) -> list[dict[str, Any]]:
    """Every table's evidence of one run, by target table name."""
    folder = run_dir(dag_id, run_id, root)
    if not folder.is_dir():
        return []
    return sorted((json.loads(p.read_text(encoding="utf-8")) for p in folder.glob("*.json")),
                  key=lambda d: d["target_table"])


def check_status(check: dict[str, Any]) -> str:
    """"passed", "FAILED" or "not checked" (success null: the check could not run) of one evidence check."""
    success = check.get("success")
    return "not checked" if success is None else ("passed" if success else "FAILED")
