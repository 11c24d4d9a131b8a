"""Report pages built from the evidence files: runs list, one run, one table (no Airflow, no FastAPI).

Everything read here comes from the reports directory (see dbsplit.model.evidence for its layout)
and every path is checked to stay inside it (`inside`), symlinks included. A damaged or half-written
evidence file does not break a page: it is listed as unreadable and the others are shown.

The pages are Jinja2 templates from templates/ beside this file, autoescaped, with their CSS inline:
they load nothing from the internet (the Airflow UI may run offline).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from dbsplit.model.evidence import run_dir, safe_part

TEMPLATES = Path(__file__).resolve().parent / "templates"

# The expectations dbsplit adds to the GX suite (see dbsplit.airflow.runtime): shown in their own sections.
CHECKSUM = "dbsplit_chunk_checksums_match"
REJECTS = "dbsplit_rejected_rows_within_limit"
ROW_COUNT = "expect_table_row_count_to_equal"

_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


# ------------------------------------------------------------------------------------------------
# Paths
# ------------------------------------------------------------------------------------------------


def inside(root: Path, candidate: Path) -> Path | None:
    """candidate with every symlink resolved, if it exists and is inside root; else None."""
    try:
        real_root = root.resolve(strict=True)
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError):  # missing, or a symlink loop
        return None
    return real if real == real_root or real.is_relative_to(real_root) else None


def report_file(root: Path, relative: str) -> Path | None:
    """The regular file at `relative` under root, or None: never anything outside root.

    Refused before touching the disk: empty paths, NUL bytes, absolute paths (/x, \\x, C:x),
    backslashes and any `.` or `..` component (the URL arrives percent-decoded: %2e%2e is `..`).
    Then the path is resolved, symlinks included, and must still be inside root.
    """
    if not relative or "\x00" in relative or "\\" in relative:
        return None
    if relative.startswith("/") or _WINDOWS_DRIVE.match(relative):
        return None
    parts = PurePosixPath(relative).parts
    if not parts or any(p in (".", "..") for p in relative.split("/")):
        return None
    real = inside(root, root.joinpath(*parts))
    return real if real is not None and real.is_file() else None


def relative_to_root(root: Path, path: Path) -> str:
    return path.resolve().relative_to(root.resolve()).as_posix()


# ------------------------------------------------------------------------------------------------
# Evidence documents
# ------------------------------------------------------------------------------------------------


@dataclass
class TableReport:
    """One table's evidence in one run, with what the pages show derived from it."""

    doc: dict[str, Any]
    file: str  # path of the evidence file relative to the reports dir

    def get(self, key: str, default: Any = None) -> Any:
        value = self.doc.get(key, default)
        return default if value is None else value

    @property
    def target_table(self) -> str:
        return str(self.get("target_table", PurePosixPath(self.file).stem))

    @property
    def slug(self) -> str:
        """The table's name in URLs: the evidence file's name without .json."""
        return PurePosixPath(self.file).name.removesuffix(".json")

    @property
    def success(self) -> bool:
        return bool(self.doc.get("success"))

    @property
    def source_rows(self) -> int | None:
        return _int(self.doc.get("source_rows"))

    @property
    def target_rows(self) -> int | None:
        return _int(self.doc.get("target_rows"))

    @property
    def rejected_rows(self) -> int:
        value = _int(self.doc.get("rejected_rows"))
        if value is None:  # older documents: the rejects check holds the count
            value = _int((self.check(REJECTS) or {}).get("observed"))
        return value or 0

    @property
    def rows_match(self) -> bool:
        """Target rows equal source rows less the rejected ones."""
        if self.source_rows is None or self.target_rows is None:
            return False
        return self.target_rows == self.source_rows - self.rejected_rows

    @property
    def rows_per_second(self) -> float | None:
        value = _float(self.doc.get("rows_per_second"))
        if value is None:
            seconds, rows = _float(self.doc.get("load_seconds")), self.target_rows
            if seconds and rows is not None:
                value = rows / seconds
        return value

    @property
    def checks(self) -> list[dict[str, Any]]:
        return [c for c in self.doc.get("checks") or [] if isinstance(c, dict)]

    def check(self, expectation: str) -> dict[str, Any] | None:
        return next((c for c in self.checks if c.get("expectation") == expectation), None)

    @property
    def failed_checks(self) -> list[dict[str, Any]]:
        return [c for c in self.checks if c.get("success") is not None and not c.get("success")]

    @property
    def unchecked(self) -> list[dict[str, Any]]:
        """Checks that could not run (success None): they read "not checked", never passed."""
        return [c for c in self.checks if "success" in c and c["success"] is None]

    @property
    def checksum(self) -> dict[str, Any] | None:
        """The content checksum result: status, chunk count, the chunks that differ and their keys."""
        check = self.check(CHECKSUM)
        if check is None:
            return None
        observed: dict[str, Any] = check["observed"] if isinstance(check.get("observed"), dict) else {}
        mismatched = observed.get("mismatched_chunks") or []
        differing = observed.get("differing_keys") or {}
        return {
            "success": bool(check.get("success")),
            "computed": check.get("observed") is not None,
            "chunks": observed.get("chunks"),
            "failed_chunks": [{"chunk": c, "keys": differing.get(str(c), [])} for c in mismatched],
            "details": check.get("details") or "",
        }

    @property
    def rejects_sample(self) -> list[dict[str, Any]]:
        return [r for r in self.doc.get("rejects_sample") or [] if isinstance(r, dict)]


@dataclass
class RunReport:
    """Every table's evidence of one DAG run."""

    dag_id: str
    run_id: str
    tables: list[TableReport]
    unreadable: list[str] = field(default_factory=list)  # evidence files that could not be read

    @property
    def services(self) -> list[tuple[str, list[TableReport]]]:
        """(service, its tables) in name order."""
        by_service: dict[str, list[TableReport]] = {}
        for t in self.tables:
            by_service.setdefault(str(t.get("service", "?")), []).append(t)
        return sorted(by_service.items())

    @property
    def success(self) -> bool:
        return bool(self.tables) and not self.unreadable and all(t.success for t in self.tables)

    @property
    def failed(self) -> int:
        return sum(not t.success for t in self.tables) + len(self.unreadable)

    @property
    def source_rows(self) -> int:
        return sum(t.source_rows or 0 for t in self.tables)

    @property
    def target_rows(self) -> int:
        return sum(t.target_rows or 0 for t in self.tables)

    @property
    def validated_at(self) -> str:
        return max((str(t.get("validated_at", "")) for t in self.tables), default="")

    def table(self, name: str) -> TableReport | None:
        """By file name (schema.table), target table name, or table name without schema if unique."""
        for t in self.tables:
            if name in (t.slug, t.target_table):
                return t
        matches = [t for t in self.tables if t.target_table.rpartition(".")[2] == name]
        return matches[0] if len(matches) == 1 else None


def _read_doc(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _read_folder(root: Path, folder: Path, dag_id: str, run_id: str) -> RunReport | None:
    real = inside(root, folder)
    if real is None or not real.is_dir():
        return None
    tables, unreadable = [], []
    for path in sorted(real.glob("*.json")):
        if inside(root, path) is None or not path.is_file():
            continue  # a symlink out of the reports dir is never read
        doc = _read_doc(path)
        if doc is None:
            unreadable.append(path.name)
        else:
            tables.append(TableReport(doc, relative_to_root(root, path)))
    if not tables and not unreadable:
        return None
    first = tables[0].doc if tables else {}
    tables.sort(key=lambda t: t.target_table)
    return RunReport(dag_id=str(first.get("dag_id") or dag_id), run_id=str(first.get("run_id") or run_id),
                     tables=tables, unreadable=unreadable)


def load_run(root: Path, dag_id: str, run_id: str) -> RunReport | None:
    """One run's report, or None when it has no evidence (yet)."""
    return _read_folder(root, run_dir(dag_id, run_id, root), dag_id, run_id)


def list_runs(root: Path, dag_id: str | None = None) -> list[RunReport]:
    """Every run with evidence, newest first (by the last validation time)."""
    runs_root = root / "runs"
    if inside(root, runs_root) is None:
        return []
    dag_dirs = [runs_root / safe_part(dag_id)] if dag_id else sorted(runs_root.iterdir())
    runs = []
    for dag_dir in dag_dirs:
        if inside(root, dag_dir) is None or not dag_dir.is_dir():
            continue
        for run_folder in dag_dir.iterdir():
            report = _read_folder(root, run_folder, dag_dir.name, run_folder.name)
            if report is not None:
                runs.append(report)
    runs.sort(key=lambda r: (r.validated_at, r.run_id), reverse=True)
    return runs


# ------------------------------------------------------------------------------------------------
# Rendering
# ------------------------------------------------------------------------------------------------


def _int(value: Any) -> int | None:
    try:
        return None if value is None or isinstance(value, bool) else int(value)
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def fmt_int(value: Any) -> str:
    number = _int(value)
    return "–" if number is None else f"{number:,}"


def fmt_float(value: Any, digits: int = 2) -> str:
    number = _float(value)
    return "–" if number is None else f"{number:,.{digits}f}"


def fmt_value(value: Any) -> str:
    """An observed value: numbers with separators, structures as compact JSON."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    return str(value)


def fmt_time(value: Any) -> str:
    """An ISO 8601 timestamp as 2026-11-21 22:03:04 UTC (as given when it cannot be parsed)."""
    if not value:
        return "–"
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    zone = moment.strftime("%Z") or ("UTC" if moment.utcoffset() is not None else "")
    return f"{moment:%Y-%m-%d %H:%M:%S} {'UTC' if zone in ('UTC', 'UTC+00:00') else zone}".strip()


def url_part(text: str) -> str:
    """One URL path segment (run ids contain ':' and '+')."""
    return quote(str(text), safe="")


@cache
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(int=fmt_int, float=fmt_float, value=fmt_value, time=fmt_time, url=url_part)
    return env


def render(template: str, **context: Any) -> str:
    """Render one of templates/*.html; `base` (the app's URL prefix with a trailing slash) is required."""
    return _environment().get_template(template).render(**context)


def run_href(base: str, dag_id: str, run_id: str) -> str:
    return f"{base}runs/{url_part(dag_id)}/{url_part(run_id)}/"


def table_href(base: str, dag_id: str, run_id: str, table: str) -> str:
    return f"{run_href(base, dag_id, run_id)}tables/{url_part(table)}"


def file_href(base: str, relative: str) -> str:
    return f"{base}files/" + "/".join(url_part(p) for p in PurePosixPath(relative).parts)


def data_docs_href(root: Path, base: str, table: TableReport) -> str | None:
    """Link to the table's GX Data Docs when the evidence names them and the file is there."""
    relative = table.get("data_docs")
    if not isinstance(relative, str) or report_file(root, relative) is None:
        return None
    return file_href(base, relative)


def runs_page(root: Path, base: str, runs: Iterable[RunReport], dag_id: str | None = None) -> str:
    return render("runs.html", base=base, runs=list(runs), dag_id=dag_id, root=str(root),
                  run_href=run_href)


def run_page(root: Path, base: str, run: RunReport) -> str:
    return render("run.html", base=base, run=run, run_href=run_href, table_href=table_href,
                  file_href=file_href, docs={t.slug: data_docs_href(root, base, t) for t in run.tables})


def table_page(root: Path, base: str, run: RunReport, table: TableReport) -> str:
    return render("table.html", base=base, run=run, t=table, run_href=run_href, file_href=file_href,
                  data_docs=data_docs_href(root, base, table), checksum=table.checksum,
                  CHECKSUM=CHECKSUM, REJECTS=REJECTS)


def message_page(base: str, title: str, message: str, status: int) -> str:
    return render("message.html", base=base, title=title, message=message, status=status)
