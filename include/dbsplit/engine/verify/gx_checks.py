"""Great Expectations (GX Core 1.x) checks on one loaded table, run as SQL inside the target database.

validate_table() builds a throwaway in-memory GX context with a PostgreSQL data source, runs one
suite (row count, key uniqueness, NOT NULL columns) as one validation definition and returns plain
dataclasses. GX computes every metric with SQL (count(*), sum(CASE WHEN ... IS NULL ...), GROUP BY
... HAVING count(*) > 1); no rows are pulled into pandas.

great_expectations is imported inside the functions only (gx_session._import_gx): this module is
imported while Airflow parses DAG files, where the ~3 s GX import is not affordable.

The GX plumbing (context, data source, batch, quirks) is in gx_session.py; the outcomes and their
text in gx_outcomes.py.

With partial_unexpected_count > 0 (the BASIC default is 20) GX runs one more query per
expectation to fetch unexpected values, a full scan when there are none: 1.7 s instead of
0.75 s on 1M rows. The suite runs with 0; sample duplicate keys are fetched by a second run of
the key expectation only when it failed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from dbsplit.engine.verify.gx_outcomes import (
    COMPOUND_UNIQUE,
    NOT_NULL,
    ROW_COUNT,
    UNIQUE,
    ExpectationOutcome,
    TableValidation,
    _column_label,
    _outcome,
    _qualified,
)
from dbsplit.engine.verify.gx_session import _raise_for_errors, _run, check_error, table_batch
from dbsplit.errors import DataCheckFailed

__all__ = ["COMPOUND_UNIQUE", "NOT_NULL", "ROW_COUNT", "UNIQUE", "ExpectationOutcome", "TableValidation",
           "primary_key_on", "validate_table"]

log = logging.getLogger(__name__)

_COUNTS_ONLY: dict[str, Any] = {"result_format": "BASIC", "partial_unexpected_count": 0}
_WITH_SAMPLES: dict[str, Any] = {"result_format": "BASIC", "partial_unexpected_count": 20}
_ORDER = {ROW_COUNT: 0, UNIQUE: 1, COMPOUND_UNIQUE: 1, NOT_NULL: 2}


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

    outcomes = _outcomes(results, samples, enforced, key_columns)
    outcomes.sort(key=lambda o: _ORDER.get(o.expectation, len(_ORDER)))
    validation = TableValidation(schema=schema, table=table, success=all(o.success for o in outcomes),
                                 outcomes=outcomes)
    log.info("GX checked %s in %.2f s: %d of %d expectations passed", where, time.perf_counter() - started,
             sum(o.success for o in outcomes), len(outcomes))
    return validation


def _outcomes(results: list[Any], samples: list[Any], enforced: str | None,
              key_columns: Sequence[str]) -> list[ExpectationOutcome]:
    """The outcomes of the GX results (sample duplicate keys on the key expectation), and of a key whose
    uniqueness the primary key guarantees."""
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
            f"guaranteed by the primary key {enforced} (a valid unique index on these columns): "
            "no duplicate can exist"))
    return outcomes


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
