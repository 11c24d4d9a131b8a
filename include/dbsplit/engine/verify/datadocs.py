"""GX validation results on disk: the result JSON and GX's own Data Docs site for it.

Both go into one folder per table and run, e.g. the reports layout's runs/<dag>/<run>/gx/<schema.table>/:

    validation_result.json      GX's ExpectationSuiteValidationResult JSON (SuiteRun.result)
    index.html                  GX's Data Docs index (returned by build_data_docs)
    validations/<suite name, split on dots>/<run name>/<run time>/<data asset>.html
    expectations/<suite name, split on dots>.html
    static/images/favicon.ico

The site is built by GX's SiteBuilder (its section and index builders, renderers and Jinja views) from
an in-memory GX context holding only this result: no project folder, no file context, nothing
written outside out_dir, no network call while building (checked by the tests with sockets
blocked). All links inside the site are relative, so the folder can be moved or served as is.

Offline, the pages render unstyled: GX's templates load Bootstrap, jQuery, bootstrap-table, vega,
font-awesome and its logo from CDNs when a browser opens them, and the index's list of results is
filled by JavaScript (the validation page's content is plain HTML). GX's static folder is 4 MB
(fonts, animated GIFs for the how-to buttons) of which the pages reference only favicon.ico: only
that file is copied (GX's site builder would copy all of it for every table and run).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RESULT_FILE = "validation_result.json"
INDEX_FILE = "index.html"
_SITE_PARTS = ("index.html", "validations", "expectations", "static")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def write_results(result_json: dict[str, Any], out_dir: Path) -> Path:
    """Save GX's validation result JSON as out_dir/validation_result.json (atomically); return its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / RESULT_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result_json, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    tmp.replace(path)
    return path


def build_data_docs(result_json: dict[str, Any], out_dir: Path) -> Path:
    """Build GX's Data Docs site for one validation result into out_dir; return the index.html path.

    A site already in out_dir (a previous attempt of the same task) is replaced; other files in
    out_dir (the result JSON) are left alone. Errors of GX propagate: the caller decides whether
    missing Data Docs should fail anything (they are a view, the evidence is the JSON).
    """
    started = time.perf_counter()
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_site(out_dir)

    from dbsplit.engine.verify.gx_session import _import_gx, ephemeral_context

    gx, _, _ = _import_gx()
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResultSchema
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )
    from great_expectations.render.renderer.site_builder import SiteBuilder

    doc = _safe_names(result_json)
    result = ExpectationSuiteValidationResultSchema().load(doc)
    context = ephemeral_context(gx)   # the site builder above writes the only files
    run = doc.get("meta", {}).get("run_id") or {}
    key = ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(doc["suite_name"]),
        run_id=RunIdentifier(run_name=run.get("run_name"), run_time=run.get("run_time")),
        batch_identifier=_batch_identifier(doc),
    )
    context.validation_results_store.set(key, result)
    _add_suite_for_docs(gx, context, doc)

    builder = SiteBuilder(
        data_context=context,
        store_backend={"class_name": "TupleFilesystemStoreBackend", "base_directory": str(out_dir)},
        site_name="dbsplit",
        show_how_to_buttons=False,
        site_section_builders={"profiling": "None"},
        runtime_environment={"root_directory": str(out_dir)},
    )
    # SiteBuilder.build() minus copy_static_assets(): the pages link only the favicon of GX's 4 MB
    # static folder (their CSS is inlined, everything else comes from CDNs)
    for section in builder.site_section_builders.values():
        section.build()
    _copy_favicon(gx, out_dir)
    builder.site_index_builder.build()
    index = out_dir / INDEX_FILE
    if not index.is_file():  # pragma: no cover - GX changed where it writes the index
        raise RuntimeError(f"GX Data Docs built no {INDEX_FILE} in {out_dir}")
    log.info("GX Data Docs for %s built in %.2f s: %s", doc["suite_name"], time.perf_counter() - started, index)
    return index




def _remove_site(out_dir: Path) -> None:
    """Remove the site of a previous attempt from out_dir (other files stay)."""
    for part in _SITE_PARTS:
        target = out_dir / part
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def _copy_favicon(gx: Any, out_dir: Path) -> None:
    favicon = Path(gx.__file__).parent / "render" / "view" / "static" / "images" / "favicon.ico"
    if favicon.is_file():
        (out_dir / "static" / "images").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(favicon, out_dir / "static" / "images" / "favicon.ico")


def _add_suite_for_docs(gx: Any, context: Any, doc: dict[str, Any]) -> None:
    """The suite page (linked from the index and the validation page), rebuilt from the result's configs.

    Best effort: an expectation GX cannot rebuild (e.g. a custom one not importable here) leaves the
    site without a suite page rather than without docs.
    """
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    try:
        suite = context.suites.add(gx.ExpectationSuite(name=doc["suite_name"]))
        for r in doc.get("results", []):
            config = {k: v for k, v in r["expectation_config"].items() if k not in ("id", "rendered_content")}
            config["kwargs"] = {k: v for k, v in config.get("kwargs", {}).items() if k != "batch_id"}
            suite.add_expectation(ExpectationConfiguration(**config).to_domain_obj())
    except Exception:
        log.warning("GX Data Docs: no expectation suite page for %s", doc.get("suite_name"), exc_info=True)
        try:
            context.suites.delete(doc["suite_name"])
        except Exception:
            pass


def _batch_identifier(doc: dict[str, Any]) -> str:
    meta = doc.get("meta") or {}
    asset = (meta.get("active_batch_definition") or {}).get("data_asset_name") \
        or (meta.get("batch_spec") or {}).get("data_asset_name") or "table"
    return _safe(str(asset))


def _safe_names(result_json: dict[str, Any]) -> dict[str, Any]:
    """A copy whose suite name, run name and asset name are safe as path parts of the site.

    GX makes them into directories (the suite name split on dots): a suite named "a/../../b" or
    "/etc.x" would otherwise write outside out_dir.
    """
    doc = json.loads(json.dumps(result_json, default=str))
    doc["suite_name"] = ".".join(_safe(p) for p in str(doc.get("suite_name") or "suite").split("."))
    meta = doc.setdefault("meta", {})
    run = meta.get("run_id")
    if isinstance(run, dict) and run.get("run_name") is not None:
        meta["run_id"] = {**run, "run_name": _safe(str(run["run_name"]))}
    return doc


def _safe(text: str) -> str:
    """A path component: letters, digits and _.- only (GX URL-encodes others in links), no leading dot
    (so never "." or "..")."""
    part = _UNSAFE.sub("_", text).lstrip(".")
    return part or "_"
