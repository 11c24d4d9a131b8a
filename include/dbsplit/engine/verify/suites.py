"""Project expectation suites: GX Core 1.x suite JSON files run as is on a loaded (staging) table.

A plan table may name a suite file (ResolvedTable.expectations), e.g.

    {"name": "freezone.user.users",
     "expectations": [{"type": "expect_column_values_to_match_regex",
                       "kwargs": {"column": "email", "regex": "^[a-z0-9._+-]+@[a-z0-9.-]+\\\\.[a-z]{2,}$"}}]}

validate_suite() runs every expectation of the file, unchanged, against the table it is given (the
staging table, whose name differs from the one the suite was written for: a GX 1.x suite names no
data asset, so nothing in the file needs rewriting) through GX's SQL data source, with the same
setup as the built-in checks (gx_checks.table_batch: exact-case names, search_path, unix sockets).
It returns one ExpectationOutcome per expectation, in file order, and GX's own validation result
JSON (for write_results / build_data_docs in datadocs.py).

Observed value of an outcome: GX's unexpected_count for row-by-row expectations (regex, set,
between, not null, unique, column pairs, ...), GX's observed_value for aggregate ones (row count,
mean, column list, ...). Details: what was expected, what was seen and up to 5 unexpected values.

Errors raise DataCheckFailed naming the file: not JSON, not a GX 1.x suite (0.x keys are
recognised and named), unknown keys, unknown expectation type (with the closest known names), bad
kwargs (pydantic's message), a duplicated expectation (GX would silently drop it), and, at run time,
an expectation GX could not evaluate (missing column, SQL error) or a database error.

Cost: the suite runs once with no unexpected-value sampling (GX would otherwise run one more query
per expectation, a full scan when nothing is unexpected: 7.0 s instead of 2.9 s for the 5
expectations of expectations/user/users.json on 1M rows); only expectations that found unexpected
rows run a second time to fetch up to 20 of them, which are merged into the first result.
"""

from __future__ import annotations

import copy
import difflib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbsplit.engine.verify.gx_outcomes import (
    ExpectationOutcome,
    _column_label,
    _outcome,
    _qualified,
)
from dbsplit.engine.verify.gx_session import _import_gx, _raise_for_errors, check_error, table_batch
from dbsplit.errors import DataCheckFailed

log = logging.getLogger(__name__)

# what GX 1.x writes for a suite (ExpectationSuite.to_json_dict) and for each expectation
SUITE_KEYS = ("name", "expectations", "meta", "notes", "id", "suite_parameters")
EXPECTATION_KEYS = ("type", "kwargs", "meta", "notes", "description", "severity", "id", "rendered_content")
_IGNORED_EXPECTATION_KEYS = {"id", "rendered_content"}  # GX assigns ids and renders again itself

_NO_SAMPLES: dict[str, Any] = {"result_format": "BASIC", "partial_unexpected_count": 0}
_SAMPLES = 20  # unexpected values kept in the GX result (and shown in Data Docs); outcomes show 5


@dataclass(frozen=True)
class SuiteRun:
    """The outcome of one suite file on one table."""

    suite_path: str
    suite_name: str
    schema: str
    table: str
    outcomes: list[ExpectationOutcome]  # one per expectation of the file, in file order
    result: dict[str, Any] = field(repr=False)  # GX ExpectationSuiteValidationResult.to_json_dict()
    seconds: float = 0.0

    @property
    def success(self) -> bool:
        return all(o.success for o in self.outcomes)

    @property
    def failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]

    def outcome_dicts(self) -> list[dict[str, Any]]:
        """The outcomes as evidence dicts {expectation, column, success, observed, details}."""
        return [o.__dict__.copy() for o in self.outcomes]


def run_suite(conninfo: str, schema: str, table: str, suite_path: str | Path) -> list[ExpectationOutcome]:
    """Run the GX suite file as is on schema.table; one ExpectationOutcome per expectation, in file order.

    Use validate_suite() to get GX's validation result JSON as well (for the reports).
    """
    return validate_suite(conninfo, schema, table, suite_path).outcomes


def validate_suite(conninfo: str, schema: str, table: str, suite_path: str | Path, *,
                   run_name: str | None = None, spec: dict[str, Any] | None = None) -> SuiteRun:
    """Run the GX suite file as is on schema.table and return the outcomes and GX's result JSON.

    conninfo is a libpq conninfo string or URL of the database holding the table; names are exact.
    run_name (e.g. the Airflow run id) is recorded as GX's run name (shown in Data Docs). Data
    failures are outcomes with success False; a bad suite file, an expectation GX cannot evaluate or
    a database error raises DataCheckFailed naming the file. spec: the file's suite as load_suite
    returns it, or a part of it (see rowwise_part); default: the whole file.
    """
    path = str(suite_path)
    started = time.perf_counter()
    spec = load_suite(suite_path) if spec is None else spec
    _import_gx()
    expectations = _expectations(path, spec)  # a bad file fails here, before any connection
    where = _qualified(schema, table)
    try:
        with table_batch(conninfo, schema, table, asset_name=_asset_name(schema, table)) as batch:
            from great_expectations.core.run_identifier import RunIdentifier

            suite, added = _add_suite(batch, spec, expectations)
            definition = batch.context.validation_definitions.add(
                batch.gx.ValidationDefinition(name="suite", data=batch.batch_definition, suite=suite))
            validation = definition.run(result_format=_NO_SAMPLES, run_id=RunIdentifier(run_name=run_name))
            by_id = {r.expectation_config.id: r for r in validation.results}
            ordered = [by_id[e.id] for e in added]
            _raise_for_errors(f"{path}: {where}", ordered)
            to_sample = [i for i, r in enumerate(ordered) if _positive((r.result or {}).get("unexpected_count"))]
            if to_sample:
                _add_samples(batch, spec, path, where, [spec["expectations"][i] for i in to_sample],
                             [ordered[i] for i in to_sample])
            result = validation.to_json_dict()
    except DataCheckFailed:
        raise
    except Exception as exc:
        error = check_error(where, conninfo, schema, exc)
        raise DataCheckFailed(f"{path}: {error}") from exc

    # outcomes from the JSON form: every value in it is JSON-serialisable (dates, decimals converted)
    json_results = {r["expectation_config"]["id"]: r for r in result["results"]}
    outcomes = []
    for e in added:
        r = json_results[e.id]
        config = r["expectation_config"]
        outcomes.append(_outcome(config["type"], _column_label(config["kwargs"]), bool(r["success"]),
                                 r.get("result") or {}, config["kwargs"]))
    run = SuiteRun(suite_path=path, suite_name=spec["name"], schema=schema, table=table, outcomes=outcomes,
                   result=result, seconds=round(time.perf_counter() - started, 3))
    log.info("GX suite %s on %s in %.2f s: %d of %d expectations passed", path, where, run.seconds,
             sum(o.success for o in outcomes), len(outcomes))
    return run


# the expectations whose verdict on a row depends on that row alone (uniqueness, order, z-scores,
# outliers and column types are GX map expectations too, but judge a row against the others)
ROW_BY_ROW = frozenset({
    "expect_column_values_to_be_in_set", "expect_column_values_to_not_be_in_set",
    "expect_column_values_to_be_between", "expect_column_values_to_be_null", "expect_column_values_to_not_be_null",
    "expect_column_values_to_match_regex", "expect_column_values_to_not_match_regex",
    "expect_column_values_to_match_regex_list", "expect_column_values_to_not_match_regex_list",
    "expect_column_values_to_match_like_pattern", "expect_column_values_to_not_match_like_pattern",
    "expect_column_values_to_match_like_pattern_list", "expect_column_values_to_not_match_like_pattern_list",
    "expect_column_values_to_match_strftime_format", "expect_column_values_to_be_dateutil_parseable",
    "expect_column_values_to_be_json_parseable", "expect_column_values_to_match_json_schema",
    "expect_column_value_lengths_to_be_between", "expect_column_value_lengths_to_equal",
    "expect_column_pair_values_a_to_be_greater_than_b", "expect_column_pair_values_to_be_equal",
    "expect_column_pair_values_to_be_in_set", "expect_multicolumn_sum_to_equal",
    "expect_multicolumn_values_to_be_equal", "expect_select_column_values_to_be_unique_within_record",
})


def rowwise_part(suite_path: str | Path) -> tuple[dict[str, Any], list[str]]:
    """The suite split for checking some rows of a table (the rows a resync writes) instead of all: the
    expectations each row passes or fails on its own (ROW_BY_ROW, without a `mostly` fraction), as a
    suite, and a description of each other one (aggregates, row counts, uniqueness, order, fractions),
    whose verdict needs the whole table. Imports GX; a bad file raises DataCheckFailed."""
    spec = load_suite(suite_path)
    _import_gx()
    _expectations(str(suite_path), spec)   # a bad file fails here, as in validate_suite
    rowwise, table_wide = [], []
    for entry in spec["expectations"]:
        mostly = (entry.get("kwargs") or {}).get("mostly")
        fraction = mostly is not None and not (isinstance(mostly, (int, float)) and mostly >= 1)
        if entry["type"] in ROW_BY_ROW and not fraction:
            rowwise.append(entry)
        else:
            label = _column_label(entry.get("kwargs") or {})
            table_wide.append(entry["type"] + (f" [{label}]" if label else "")
                              + (f" (mostly {mostly})" if fraction else ""))
    return {**spec, "expectations": rowwise}, table_wide


def load_suite(suite_path: str | Path) -> dict[str, Any]:
    """Read a suite file and check its structure (no GX import); DataCheckFailed names file and problem."""
    path = str(suite_path)
    spec = _read_json(suite_path)
    if not isinstance(spec, dict):
        raise _bad(path, f"an expectation suite is a JSON object, found {type(spec).__name__}",
                   'write {"name": ..., "expectations": [...]}')
    if "expectation_suite_name" in spec or any(isinstance(e, dict) and "expectation_type" in e
                                               for e in spec.get("expectations") or []):
        raise _bad(path, "this is a GX 0.x suite (expectation_suite_name / expectation_type); dbsplit runs GX 1.x "
                   "suites", "rename expectation_suite_name to name and each expectation_type to type, "
                   "and drop data_asset_type and ge_cloud_id")
    unknown = [k for k in spec if k not in SUITE_KEYS]
    if unknown:
        raise _bad(path, f"unknown key(s) {', '.join(map(repr, unknown))} in the suite",
                   f"remove them; allowed keys: {', '.join(SUITE_KEYS)}")
    if not isinstance(spec.get("name"), str) or not spec["name"].strip():
        raise _bad(path, '"name" is missing or empty', 'give the suite a name, e.g. "plan.service.table"')
    expectations = spec.get("expectations")
    if not isinstance(expectations, list):
        raise _bad(path, '"expectations" is missing or not a list',
                   'add "expectations": [{"type": ..., "kwargs": {...}}]')
    for key in ("meta",):
        if spec.get(key) is not None and not isinstance(spec[key], dict):
            raise _bad(path, f'"{key}" must be an object', f'write "{key}": {{...}} or remove it')
    for i, e in enumerate(expectations):
        _check_expectation(path, f"expectations[{i}]", e)
    return spec


def _bad(path: str, problem: str, fix: str) -> DataCheckFailed:
    return DataCheckFailed(f"{path}: {problem}. Fix: {fix}")


def _read_json(suite_path: str | Path) -> Any:
    path = str(suite_path)
    try:
        text = Path(suite_path).read_text(encoding="utf-8")
    except OSError as exc:
        raise DataCheckFailed(f"{path}: cannot read the expectation suite: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise DataCheckFailed(f"{path}: the expectation suite is not UTF-8 text: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataCheckFailed(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from exc


def _check_expectation(path: str, at: str, e: Any) -> None:
    """The structure of one expectation of a suite file (see load_suite)."""
    if not isinstance(e, dict):
        raise _bad(path, f"{at} is not an object", 'write {"type": "expect_...", "kwargs": {...}}')
    if not isinstance(e.get("type"), str) or not e["type"]:
        raise _bad(path, f'{at} has no "type"',
                   'name the expectation, e.g. "type": "expect_column_values_to_not_be_null"')
    unknown = [k for k in e if k not in EXPECTATION_KEYS]
    if unknown:
        raise _bad(path, f"{at} ({e['type']}): unknown key(s) {', '.join(map(repr, unknown))}",
                   f"move arguments into kwargs; allowed keys: {', '.join(EXPECTATION_KEYS)}")
    if not isinstance(e.get("kwargs", {}), dict):
        raise _bad(path, f'{at} ({e["type"]}): "kwargs" must be an object', 'write "kwargs": {"column": ...}')
    if e.get("meta") is not None and not isinstance(e["meta"], dict):
        raise _bad(path, f'{at} ({e["type"]}): "meta" must be an object', 'write "meta": {...} or remove it')


def check_suite_file(suite_path: str | Path) -> list[str]:
    """Check a suite file without a database: structure, expectation types and kwargs (imports GX).

    Returns the expectation types in file order; raises DataCheckFailed like validate_suite().
    """
    spec = load_suite(suite_path)
    _import_gx()
    _expectations(str(suite_path), spec)
    return [e["type"] for e in spec["expectations"]]


def _expectations(path: str, spec: dict[str, Any]) -> list[Any]:
    """GX Expectation objects for the file's expectations; DataCheckFailed for unknown types and bad kwargs.

    Built one by one here: ExpectationSuite(expectations=[...]) would log and drop an invalid one.
    """
    from great_expectations.exceptions import ExpectationNotFoundError
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    built: list[Any] = []
    for i, e in enumerate(spec["expectations"]):
        at = f"{path}: expectations[{i}] ({e['type']})"
        config = {k: copy.deepcopy(v) for k, v in e.items() if k not in _IGNORED_EXPECTATION_KEYS}
        config.setdefault("kwargs", {})
        try:
            expectation = ExpectationConfiguration(**config).to_domain_obj()
        except ExpectationNotFoundError as exc:
            close = difflib.get_close_matches(e["type"], _known_types(), n=3, cutoff=0.6)
            fix = f"did you mean {' or '.join(close)}?" if close else "use an expectation type of GX Core 1.x"
            raise DataCheckFailed(f"{at}: unknown expectation type. Fix: {fix}") from exc
        except Exception as exc:  # pydantic ValidationError, InvalidExpectationConfigurationError
            raise DataCheckFailed(f"{at}: invalid expectation: {_one_line(exc)}") from exc
        for j, other in enumerate(built):
            if type(other) is type(expectation) and other.dict(exclude={"id", "rendered_content", "notes", "meta"}) \
                    == expectation.dict(exclude={"id", "rendered_content", "notes", "meta"}):
                raise DataCheckFailed(f"{at}: repeats expectations[{j}] (same type and kwargs); GX would run it "
                                      "once. Fix: remove one of them")
        built.append(expectation)
    return built


def _add_suite(batch: Any, spec: dict[str, Any], expectations: list[Any],
               name: str | None = None) -> tuple[Any, list[Any]]:
    """The suite in the context, and its expectations (with the ids GX gave them) in file order."""
    suite = batch.context.suites.add(batch.gx.ExpectationSuite(
        name=name or spec["name"], meta=copy.deepcopy(spec.get("meta")) or None, notes=spec.get("notes")))
    return suite, [suite.add_expectation(e) for e in expectations]


def _add_samples(batch: Any, spec: dict[str, Any], path: str, where: str, entries: list[dict[str, Any]],
                 results: list[Any]) -> None:
    """Run the expectations that found unexpected rows again, with samples, and put those into results."""
    sample_spec = {**spec, "expectations": entries}
    suite, added = _add_suite(batch, sample_spec, _expectations(path, sample_spec), name=f"{spec['name']} (samples)")
    definition = batch.context.validation_definitions.add(
        batch.gx.ValidationDefinition(name="samples", data=batch.batch_definition, suite=suite))
    again = definition.run(result_format={"result_format": "BASIC", "partial_unexpected_count": _SAMPLES})
    by_id = {r.expectation_config.id: r for r in again.results}
    rerun = [by_id[e.id] for e in added]
    _raise_for_errors(f"{path}: {where}", rerun)
    for first, second in zip(results, rerun, strict=True):
        values = (second.result or {}).get("partial_unexpected_list")
        if values is not None and first.result is not None:
            first.result["partial_unexpected_list"] = values



def _asset_name(schema: str, table: str) -> str:
    """The data asset name shown in GX results and Data Docs (GX substitutes no ${...} in it: checked)."""
    return f"{schema}.{table}"


def _known_types() -> list[str]:
    from great_expectations.expectations.registry import list_registered_expectation_implementations

    return list(list_registered_expectation_implementations())


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and value > 0


def _one_line(exc: BaseException) -> str:
    text = " ".join(line.strip() for line in str(exc).strip().splitlines() if line.strip())
    return text if len(text) <= 400 else text[:397] + "..."
