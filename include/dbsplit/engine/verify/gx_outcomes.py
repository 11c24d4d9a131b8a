"""What the GX checks report: ExpectationOutcome, TableValidation, and the text made from a GX result
(_outcome: observed = unexpected rows for row-by-row expectations, else GX's observed_value).

Plain Python: no GX import (suites.py and the checks of gx_checks.py share it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dbsplit.errors import DataCheckFailed

ROW_COUNT = "expect_table_row_count_to_equal"
UNIQUE = "expect_column_values_to_be_unique"
COMPOUND_UNIQUE = "expect_compound_columns_to_be_unique"
NOT_NULL = "expect_column_values_to_not_be_null"

_SAMPLE_VALUES = 5


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
        seen = f"observed {_short(observed, 200)}"
        details = f"expected {expected}; {seen}" if expected else seen
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


def _first_line(text: str, limit: int = 300) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _qualified(schema: str, table: str) -> str:
    return f"{_quote_ident(schema)}.{_quote_ident(table)}"
