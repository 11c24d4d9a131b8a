"""Great Expectations (GX Core 1.x) checks on one loaded table, run as SQL inside the target database.

validate_table() builds a throwaway in-memory GX context with a PostgreSQL data source, runs one
suite (row count, key uniqueness, NOT NULL columns) as one validation definition and returns plain
dataclasses. GX computes every metric with SQL (count(*), sum(CASE WHEN ... IS NULL ...), GROUP BY
... HAVING count(*) > 1); no rows are pulled into pandas.

great_expectations is imported inside validate_table() only: this module is imported while Airflow
parses DAG files, where the ~3 s GX import is not affordable.

table_batch() (the context, the data source and a whole-table batch definition, with every workaround
below) is shared with suites.py, which runs project suite files on a table; _outcome() turns any
GX expectation result into an ExpectationOutcome (unexpected_count for row-by-row expectations,
observed_value for aggregate ones).

GX 1.24 quirks handled here (details in the comments next to the code):
- PostgresDatasource validates connection_string as a pydantic PostgresDsn, which rejects the
  host-less URL of a unix-socket server (postgresql+psycopg://u@/db?host=/dir): the URL is handed
  over as a ${...} config variable through runtime_environment instead, which GX does not validate.
- Table names are lower-cased or mangled unless passed as sqlalchemy.quoted_name(quote=True); the
  schema argument of add_table_asset is deprecated and is lower-cased too, so the schema is set as
  the connection's search_path instead.
- On PostgreSQL GX reports column names as CaseInsensitiveString (hash and == fold case), which
  collides with SQLAlchemy's identifier-quoting cache: a column "Name" is rendered as the cached
  spelling of "name" (unquoted, so PostgreSQL folds it and fails). The cache of our own engine is
  replaced by one keyed on the exact spelling.
- Progress bars (tqdm "Calculating Metrics") are on by default; they are switched off in the
  context config. GX logs dozens of INFO lines on import; its logger is set to WARNING unless the
  application configured it.
- GX 1.24.1 has no usage-statistics code left (no analytics module, no posthog dependency; the
  GX_ANALYTICS_ENABLED variable is only mentioned in a docstring); analytics_enabled=False is still
  set in the context config for older 1.x releases. No network call other than PostgreSQL is made.
- With partial_unexpected_count > 0 (the BASIC default is 20) GX runs one more query per
  expectation to fetch unexpected values, a full scan when there are none: 1.7 s instead of
  0.75 s on 1M rows. The suite runs with 0; sample duplicate keys are fetched by a second run of
  the key expectation only when it failed.
- A metric that fails (missing table, missing column, SQL error) does not raise from GX: it marks
  the expectation unsuccessful with exception_info. Those are raised here as DataCheckFailed so that
  an internal error is never mistaken for (or hidden among) data failures.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from dbsplit.errors import DataCheckFailed

log = logging.getLogger(__name__)

ROW_COUNT = "expect_table_row_count_to_equal"
UNIQUE = "expect_column_values_to_be_unique"
COMPOUND_UNIQUE = "expect_compound_columns_to_be_unique"
NOT_NULL = "expect_column_values_to_not_be_null"

_URL_VARIABLE = "DBSPLIT_GX_SQLALCHEMY_URL"
_SAMPLE_VALUES = 5
_COUNTS_ONLY: dict[str, Any] = {"result_format": "BASIC", "partial_unexpected_count": 0}
_WITH_SAMPLES: dict[str, Any] = {"result_format": "BASIC", "partial_unexpected_count": 20}
# libpq parameters that sqlalchemy_url() puts into the URL; every other one goes to connect_args
_URL_PARAMS = {"host", "port", "user", "password", "dbname"}


@dataclass(frozen=True)
class ExpectationOutcome:
    """The result of one expectation on one table."""

    expectation: str  # e.g. "expect_table_row_count_to_equal"
    column: str | None  # the column, "a, b" for a compound key, None for table-level expectations
    success: bool
    observed: Any  # row count, or number of unexpected rows; JSON-serialisable
    details: str  # what was expected, what was seen, a few unexpected values


@dataclass(frozen=True)
class TableValidation:
    """Every expectation outcome on one table."""

    schema: str
    table: str
    success: bool
    outcomes: list[ExpectationOutcome]

    @property
    def qualified_name(self) -> str:
        return _qualified(self.schema, self.table)

    @property
    def failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]

    def summary(self) -> str:
        """One line per failed expectation (table, expectation, column, observed value, details)."""
        if self.success:
            return f"{self.qualified_name}: all {len(self.outcomes)} checks passed"
        lines = []
        for o in self.failures:
            column = f" [{o.column}]" if o.column is not None else ""
            lines.append(f"{self.qualified_name}: {o.expectation}{column} failed: observed {o.observed}; {o.details}")
        return "\n".join(lines)

    def raise_if_failed(self) -> None:
        """Raise DataCheckFailed carrying summary() when any expectation failed."""
        if not self.success:
            raise DataCheckFailed(self.summary())


def validate_table(conninfo: str, schema: str, table: str, *, expected_rows: int,
                   key_columns: Sequence[str], not_null_columns: Sequence[str] = (),
                   trust_primary_key: bool = True) -> TableValidation:
    """Check a loaded table with GX: row count == expected_rows, key unique and not null, columns not null.

    conninfo is a libpq conninfo string or URL of the database holding the table. Names are exact
    (case, spaces and quotes are kept; nothing is folded). An empty key_columns means the table has
    no key: the uniqueness check is left out. When the table's PRIMARY KEY is exactly the key columns
    (and trust_primary_key), the server already guarantees uniqueness: the outcome names the constraint
    and GX does not scan for duplicates (half of GX's time on a large table). Data failures are
    returned (success False, see summary()); an error of GX or the database (missing table or column,
    connection refused, SQL error) raises DataCheckFailed naming the table.
    """
    if isinstance(key_columns, str) or isinstance(not_null_columns, str):
        raise TypeError("key_columns and not_null_columns must be sequences of column names, not a string")
    if expected_rows < 0:
        raise ValueError(f"expected_rows must be >= 0, got {expected_rows}")
    keys = list(key_columns)
    not_null = list(dict.fromkeys([*keys, *not_null_columns]))
    where = _qualified(schema, table)
    started = time.perf_counter()

    try:
        enforced = primary_key_on(conninfo, schema, table, keys) if keys and trust_primary_key else None
        if enforced:
            keys = []
        with table_batch(conninfo, schema, table) as batch:
            results = _run(batch.gx, batch.context, batch.batch_definition, "checks",
                           _expectations(batch.gxe, expected_rows, keys, not_null), _COUNTS_ONLY)
            _raise_for_errors(where, results)
            samples: list[Any] = []
            if keys and any(not r.success and r.expectation_config.type in (UNIQUE, COMPOUND_UNIQUE)
                            for r in results):
                # only now pay for the rows: with partial_unexpected_count > 0 GX runs one more full
                # scan per expectation (LIMIT n over a filter), doubling the time of a passing table
                [again] = _run(batch.gx, batch.context, batch.batch_definition, "duplicates",
                               [_key_expectation(batch.gxe, keys)], _WITH_SAMPLES)
                _raise_for_errors(where, [again])
                samples = list((again.result or {}).get("partial_unexpected_list") or [])
    except DataCheckFailed:
        raise
    except Exception as exc:
        raise check_error(where, conninfo, schema, exc) from exc

    outcomes = []
    for r in results:
        config = r.expectation_config
        result = dict(r.result or {})
        if config.type in (UNIQUE, COMPOUND_UNIQUE) and samples:
            result["partial_unexpected_list"] = samples
        outcomes.append(_outcome(config.type, _column_label(config.kwargs), bool(r.success), result, config.kwargs))
    if enforced:
        outcomes.append(ExpectationOutcome(
            UNIQUE if len(key_columns) == 1 else COMPOUND_UNIQUE, ", ".join(key_columns), True, 0,
            f"guaranteed by the primary key {enforced} (a valid unique index on these columns): no duplicate can exist"))
    outcomes.sort(key=lambda o: _ORDER.get(o.expectation, len(_ORDER)))
    validation = TableValidation(schema=schema, table=table, success=all(o.success for o in outcomes),
                                 outcomes=outcomes)
    log.info("GX checked %s in %.2f s: %d of %d expectations passed", where, time.perf_counter() - started,
             sum(o.success for o in outcomes), len(outcomes))
    return validation


def primary_key_on(conninfo: str, schema: str, table: str, keys: Sequence[str]) -> str | None:
    """The name of the table's PRIMARY KEY constraint when its valid, immediate index covers exactly
    the key columns (in any order), else None (also when the table does not exist: GX reports that)."""
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(
            "SELECT k.conname, array_agg(a.attname::text ORDER BY a.attname) FROM pg_constraint k"
            " JOIN pg_index i ON i.indexrelid = k.conindid"
            " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)"
            " WHERE k.contype = 'p' AND k.conrelid = (SELECT c.oid FROM pg_class c JOIN pg_namespace n"
            "  ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s)"
            " AND i.indisvalid AND i.indimmediate AND i.indexprs IS NULL AND i.indpred IS NULL"
            " AND 0 <> ALL (i.indkey) GROUP BY k.conname", (schema, table)).fetchone()
    return row[0] if row and sorted(row[1]) == sorted(keys) else None


@dataclass
class TableBatch:
    """GX objects bound to one table: the context, its PostgreSQL data source and a whole-table batch."""

    gx: Any
    gxe: Any
    context: Any
    datasource: Any
    batch_definition: Any


@contextmanager
def table_batch(conninfo: str, schema: str, table: str, *, asset_name: str = "table",
                datasource_name: str = "target") -> Iterator[TableBatch]:
    """A throwaway in-memory GX context with a PostgreSQL data source on one table (shared by the checks
    here and by suites.py).

    Every workaround described in the module docstring is applied here (URL as a config variable,
    exact-case table name, search_path = schema, exact-spelling identifier cache). The SQLAlchemy
    engines are disposed on exit. Errors are not wrapped: callers turn them into DataCheckFailed
    (see check_error).
    """
    gx, gxe, sa = _import_gx()
    engines: list[Any] = []
    try:
        context = _context(gx, conninfo)
        datasource = context.data_sources.add_postgres(
            datasource_name, connection_string="${" + _URL_VARIABLE + "}",
            kwargs={
                # compiled-statement cache off: its keys compare column names with GX's
                # case-insensitive strings too, so "Name" could reuse a statement compiled for "name"
                "query_cache_size": 0,
                "connect_args": _connect_args(conninfo, schema),
            },
        )
        engines.append(datasource.get_engine())  # used by GX's connection tests
        execution_engine = datasource.get_execution_engine()  # used for the metrics
        engines.append(execution_engine.engine)
        preparer = execution_engine.engine.dialect.identifier_preparer
        preparer._strings = _ExactKeyDict(preparer._strings)

        # quoted_name(quote=True): GX keeps it as is; a plain str would be stripped of quotes
        # and case, e.g. 'Mixed Case "T"' would be sent unquoted
        asset = datasource.add_table_asset(asset_name, table_name=sa.quoted_name(table, quote=True))
        batch_definition = asset.add_batch_definition_whole_table("whole table")
        yield TableBatch(gx=gx, gxe=gxe, context=context, datasource=datasource, batch_definition=batch_definition)
        if datasource.get_execution_engine() is not execution_engine:
            raise RuntimeError("GX built a second SQLAlchemy engine; the identifier-case workaround did not apply")
    finally:
        for engine in engines:
            try:
                engine.dispose()
            except Exception:  # pragma: no cover - disposal errors must not hide the real outcome
                log.debug("disposing a GX engine failed", exc_info=True)


def check_error(where: str, conninfo: str, schema: str, exc: BaseException) -> DataCheckFailed:
    """The DataCheckFailed for an error of GX or the database while checking the table `where`."""
    hint = _schema_hint(conninfo, schema)
    return DataCheckFailed(f"{where}: Great Expectations could not check the table{hint}: {_root_message(exc)}")


def _run(gx: Any, context: Any, batch_definition: Any, name: str, expectations: list[Any],
         result_format: dict[str, Any]) -> list[Any]:
    """Run the expectations as one suite (one validation definition): GX bundles their metrics into
    few queries, e.g. all NOT NULL counts in one scan. Measured for 6 expectations on a 1M-row
    table: 12 statements and 0.58 s (embedded PG 18) / 0.66 s (PG 15), against 38 statements and
    1.45 s / 1.70 s with one validation per expectation."""
    suite = context.suites.add(gx.ExpectationSuite(name=name))
    for expectation in expectations:
        suite.add_expectation(expectation)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=name, data=batch_definition, suite=suite))
    return list(definition.run(result_format=result_format).results)


def _raise_for_errors(where: str, results: list[Any]) -> None:
    """A metric that raised inside GX (missing column, SQL error) becomes DataCheckFailed."""
    for r in results:
        errors = _exception_messages(r.exception_info)
        if errors:
            name = _column_label(r.expectation_config.kwargs)
            column = f" on {name}" if name else ""
            raise DataCheckFailed(f"{where}: Great Expectations could not evaluate {r.expectation_config.type}"
                                  f"{column}: " + "; ".join(errors))


_ORDER = {ROW_COUNT: 0, UNIQUE: 1, COMPOUND_UNIQUE: 1, NOT_NULL: 2}


def _import_gx() -> tuple[Any, Any, Any]:
    """Import GX quietly: its logger to WARNING unless configured, its import-time DeprecationWarnings off."""
    gx_logger = logging.getLogger("great_expectations")
    if gx_logger.level == logging.NOTSET:
        # GX logs ~80 INFO lines while importing (docs decorators) and a few per run
        gx_logger.setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # sre_constants/sre_parse from GX's file connectors
        import great_expectations as gx
        import great_expectations.expectations as gxe
        import sqlalchemy as sa
    return gx, gxe, sa


def ephemeral_context(gx: Any, runtime_environment: dict[str, str] | None = None) -> Any:
    """An in-memory GX context: no files, no docs site, no progress bars, no analytics."""
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config, runtime_environment=runtime_environment)


def _context(gx: Any, conninfo: str) -> Any:
    """ephemeral_context with the database URL as a config variable: PostgresDatasource would reject a
    socket URL without host as connection_string, and a variable's value is not searched for further
    ${...}/$VAR."""
    from dbsplit.pg.conn import sqlalchemy_url

    return ephemeral_context(gx, {_URL_VARIABLE: sqlalchemy_url(conninfo)})


def _connect_args(conninfo: str, schema: str) -> dict[str, str]:
    """psycopg connect() arguments: libpq options the URL does not carry, and search_path = the schema.

    GX nests these inside kwargs, where no ${...} substitution happens, so '$' in names is safe.
    """
    from psycopg.conninfo import conninfo_to_dict

    params = {k: str(v) for k, v in conninfo_to_dict(conninfo).items() if k not in _URL_PARAMS and v is not None}
    params.setdefault("connect_timeout", "10")
    params.setdefault("application_name", "dbsplit-gx")
    # libpq splits options on spaces unless escaped with a backslash; PostgreSQL then reads the
    # value as a list of identifiers, so the schema is double-quoted with "" for embedded quotes
    search_path = _quote_ident(schema).replace("\\", "\\\\").replace(" ", "\\ ")
    params["options"] = " ".join(filter(None, [params.get("options", ""), f"-c search_path={search_path}"]))
    return params


class _ExactKeyDict(dict):  # type: ignore[type-arg]
    """SQLAlchemy's identifier-quoting cache, keyed on the exact spelling.

    GX hands column names to SQLAlchemy as CaseInsensitiveString, which hashes and compares by its
    case-folded value; in the stock dict cache "Name" then finds the entry of "name" and is rendered
    unquoted. str.__str__ turns any str subclass into a plain str with the same characters.
    """

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, str.__str__(key)) if isinstance(key, str) else False

    def __getitem__(self, key: str) -> str:
        return dict.__getitem__(self, str.__str__(key))

    def __setitem__(self, key: str, value: str) -> None:
        dict.__setitem__(self, str.__str__(key), value)


def _expectations(gxe: Any, expected_rows: int, keys: list[str], not_null: list[str]) -> list[Any]:
    expectations = [gxe.ExpectTableRowCountToEqual(value=expected_rows)]
    if keys:
        expectations.append(_key_expectation(gxe, keys))
    expectations += [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in not_null]
    return expectations


def _key_expectation(gxe: Any, keys: list[str]) -> Any:
    if len(keys) == 1:
        return gxe.ExpectColumnValuesToBeUnique(column=keys[0])
    # rows whose key columns are all NULL are skipped by GX here; the NOT NULL checks catch them
    return gxe.ExpectCompoundColumnsToBeUnique(column_list=keys)


def _column_label(kwargs: Mapping[str, Any]) -> str | None:
    """The column an expectation is about: "a", "a, b" for a column list or pair, None for the table."""
    if kwargs.get("column") is not None:
        return str(kwargs["column"])
    if kwargs.get("column_list"):
        return ", ".join(str(c) for c in kwargs["column_list"])
    if kwargs.get("column_A") is not None and kwargs.get("column_B") is not None:
        return f"{kwargs['column_A']}, {kwargs['column_B']}"
    return None


# kwargs that say where or how an expectation runs, not what it expects
_NOT_EXPECTED_KWARGS = {"column", "column_list", "column_A", "column_B", "batch_id", "result_format",
                        "catch_exceptions", "include_config", "meta", "mostly", "condition_parser", "ignore_row_if"}


def _outcome(expectation: str, column: str | None, success: bool, result: Mapping[str, Any],
             kwargs: Mapping[str, Any]) -> ExpectationOutcome:
    """One outcome from a GX result: observed = unexpected rows for row-by-row expectations
    (unexpected_count), else GX's observed_value; details = what was expected, what was seen and a
    few unexpected values."""
    if expectation == ROW_COUNT:
        observed = _as_int(result.get("observed_value"))
        details = f"expected {kwargs.get('value')} rows, found {observed}"
        return ExpectationOutcome(expectation, column, success, observed, details)
    mostly = kwargs.get("mostly")
    at_least = f" (at least {_percent(mostly)} of the rows must pass)" if isinstance(mostly, (int, float)) else ""
    if "unexpected_count" not in result:  # an aggregate expectation (mean, row count, column list, ...)
        observed = result.get("observed_value")
        expected = _expected_text(kwargs)
        details = f"expected {expected}; observed {_short(observed, 200)}" if expected else f"observed {_short(observed, 200)}"
        return ExpectationOutcome(expectation, column, success, observed, details)
    unexpected = _as_int(result.get("unexpected_count"))
    total = _as_int(result.get("element_count"))
    sample = _sample(result.get("partial_unexpected_list") or [])
    if expectation == NOT_NULL:
        details = f"expected no NULL{at_least}; {unexpected} of {total} rows are NULL"
    elif expectation in (UNIQUE, COMPOUND_UNIQUE):
        details = f"expected unique values; {unexpected} of {total} rows share a value with another row"
        if sample:
            details += f", e.g. {sample}"
    else:
        expected = _expected_text(kwargs)
        details = (f"expected {expected}{at_least}; " if expected else "") + f"{unexpected} of {total} rows unexpected"
        missing = _as_int(result.get("missing_count"))
        if isinstance(missing, int) and missing and expectation != "expect_column_values_to_be_null":
            details += f" ({missing} NULL rows not checked)"
        if sample:
            details += f", e.g. {sample}"
    return ExpectationOutcome(expectation, column, success, unexpected, details)


def _expected_text(kwargs: Mapping[str, Any]) -> str:
    """The kwargs that define what is expected, e.g. "regex='^[a-z]+$'" or "min_value=0, max_value=10"."""
    parts = []
    for key, value in kwargs.items():
        if key in _NOT_EXPECTED_KWARGS or value is None:
            continue
        if isinstance(value, (list, tuple, set)):
            items = [_short(v, 40) for v in list(value)[:8]]
            text = "[" + ", ".join(items) + (", ..." if len(value) > 8 else "") + "]"
        elif isinstance(value, str):  # as written, not repr(): a regex keeps single backslashes
            text = "'" + (value if len(value) <= 100 else value[:97] + "...") + "'"
        else:
            text = _short(value, 100)
        parts.append(f"{key}={text}")
    return ", ".join(parts)


def _percent(fraction: float) -> str:
    return f"{fraction * 100:g}%"


def _sample(values: list[Any]) -> str:
    """A few distinct unexpected values, e.g. '7, 9' or '(a=1, b=2)'."""
    shown: list[str] = []
    for value in values:
        if isinstance(value, Mapping):
            text = "(" + ", ".join(f"{k}={_short(v)}" for k, v in value.items()) + ")"
        else:
            text = _short(value)
        if text not in shown:
            shown.append(text)
        if len(shown) == _SAMPLE_VALUES:
            break
    return ", ".join(shown)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _as_int(value: Any) -> Any:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return str(value)


def _exception_messages(info: Any) -> list[str]:
    """The messages of the metrics that raised, from an ExpectationValidationResult.exception_info.

    GX 1.x fills it either as {"raised_exception": bool, "exception_message": ...} or as a dict
    of such dicts keyed by metric configuration id.
    """
    if not isinstance(info, Mapping):
        return []
    entries = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, Mapping)]
    messages: list[str] = []
    for entry in entries:
        if entry.get("raised_exception"):
            message = _first_line(str(entry.get("exception_message") or "unknown error"))
            if message not in messages:
                messages.append(message)
    return messages


def _schema_hint(conninfo: str, schema: str) -> str:
    """' (schema "x" does not exist)' when that is why the table was not found, else ''."""
    import psycopg

    try:
        with psycopg.connect(conninfo, connect_timeout=5) as conn:
            row = conn.execute("SELECT EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = %s)",
                               (schema,)).fetchone()
    except Exception:
        return ""
    return "" if row and row[0] else f" (schema {_quote_ident(schema)} does not exist)"


def _root_message(exc: BaseException) -> str:
    """The deepest cause's first line (e.g. 'relation "x" does not exist'), with the outer GX error."""
    root = exc
    seen = {id(exc)}
    while (root.__cause__ or root.__context__) is not None and id(root.__cause__ or root.__context__) not in seen:
        root = root.__cause__ or root.__context__  # type: ignore[assignment]
        seen.add(id(root))
    outer = f"{type(exc).__name__}: {_first_line(str(exc))}"
    if root is exc:
        return outer
    return f"{type(root).__name__}: {_first_line(str(root))} (GX: {outer})"


def _first_line(text: str, limit: int = 300) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _qualified(schema: str, table: str) -> str:
    return f"{_quote_ident(schema)}.{_quote_ident(table)}"
