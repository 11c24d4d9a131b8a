"""Cross-service references: every non-NULL value of a child column exists in a parent column that lives
in another database (possibly on another server), where no foreign key can check it.

check_reference() streams the child's distinct non-NULL values, in the column's sort order, from a
server-side cursor in batches (with the number of rows holding each value), and asks the parent,
per batch, which of them it lacks:

    SELECT count(*), sum(n), (array_agg(v ORDER BY i))[1:k]
    FROM unnest($values::text[], $counts::int8[]) WITH ORDINALITY AS u(v, n, i)
    WHERE NOT EXISTS (SELECT FROM parent p WHERE p.parent_column = u.v::<parent column type>)

so neither key set is ever held in memory (one batch of the child's values at a time, only counts
and the first few orphans come back from the parent); the parent's planner picks index probes or
one hash of the parent per batch. The arrays are sent as text literals built with one join (psycopg's
list dumper would cost more than the lookups). Values
travel as PostgreSQL text (DateStyle ISO, TimeZone UTC, IntervalStyle postgres and exact floats on
both sessions) and are cast to the parent column's base type (no typmod: numeric(10,2) would round
1.005 into a match), so uuid, bigint, text, dates, enums and domains all work without Python types.

Both sides run in one READ ONLY, REPEATABLE READ transaction each: the child's values come from one
snapshot, and every batch is compared with the same snapshot of the parent.

Counts are rows, as in GX (unexpected_count): `checked` = non-NULL child rows, `orphans` = child
rows whose value the parent lacks; the distinct values are counted in `distinct_values` and
`orphan_values`. `sample` = the first `sample` orphan values (as text) in the child column's order.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import IsolationLevel, sql

from dbsplit.errors import DataCheckFailed
from dbsplit.pg.conn import connect_source

log = logging.getLogger(__name__)

REFERENCES = "dbsplit_references_resolve"

# session settings that make ::text output of one server valid, unambiguous input on another
_TEXT_SETTINGS = {"datestyle": "ISO, YMD", "timezone": "UTC", "intervalstyle": "postgres",
                  "extra_float_digits": "3", "bytea_output": "hex"}


@dataclass(frozen=True)
class ReferenceResult:
    """The outcome of one cross-database reference check."""

    checked: int                 # non-NULL child rows checked
    orphans: int                 # child rows whose value is missing from the parent column
    sample: list[str]            # the first orphan values (text), in the child column's sort order
    seconds: float
    distinct_values: int = 0     # distinct non-NULL child values checked
    orphan_values: int = 0       # distinct child values missing from the parent
    batches: int = 0
    child_type: str = ""         # format_type of the child column
    parent_type: str = ""        # format_type of the parent column
    notes: list[str] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return self.orphans == 0


@dataclass(frozen=True)
class _Column:
    type_name: str        # format_type(), for messages
    type_ident: sql.Identifier  # schema-qualified base type, for the cast
    indexed: bool         # a btree/hash index starts with this column


@dataclass
class _Tally:
    """What the batches of check_reference have counted so far."""

    checked: int = 0
    distinct: int = 0
    orphans: int = 0
    orphan_values: int = 0
    batches: int = 0
    found: list[str] = field(default_factory=list)


def _queries(child_schema: str, child_table: str, column: str, parent_schema: str, parent_table: str,
             parent_column: str, parent_type: sql.Composable) -> tuple[sql.Composed, sql.Composed]:
    """The child's distinct values with their row counts in column order, and the probe of a batch of
    them against the parent (number and rows of orphan values, the first orphan values)."""
    col = sql.Identifier(column)
    # c.{col} qualified: an unqualified ORDER BY name would pick the text output column
    # (named like the column) and sort as text, e.g. -10 before -9 for bigint
    stream = sql.SQL(
        "SELECT c.{col}::text, count(*) FROM {table} AS c WHERE c.{col} IS NOT NULL "
        "GROUP BY c.{col} ORDER BY c.{col}"
    ).format(col=col, table=sql.Identifier(child_schema, child_table))
    probe = sql.SQL(
        "SELECT count(*), coalesce(sum(u.n), 0), (array_agg(u.v ORDER BY u.i))[1:%s] "
        "FROM unnest(%s::text[], %s::int8[]) WITH ORDINALITY AS u(v, n, i) "
        "WHERE NOT EXISTS (SELECT FROM {table} p WHERE p.{col} = u.v::{type})"
    ).format(table=sql.Identifier(parent_schema, parent_table), col=sql.Identifier(parent_column),
             type=parent_type)
    return stream, probe


def _probe_batches(values: psycopg.Cursor[Any], parent: psycopg.Connection, probe: sql.Composed, tally: _Tally,
                   batch: int, sample: int, type_error: str) -> None:
    """Probe the child's values against the parent, batch by batch, counting into tally."""
    while rows := values.fetchmany(batch):
        counts = [r[1] for r in rows]
        tally.batches += 1
        tally.distinct += len(rows)
        tally.checked += sum(counts)
        texts = _text_array(r[0] for r in rows)
        try:
            # prepare=False: a generic plan would not see the array's length
            n_values, n_rows, missing = parent.execute(
                probe, (sample - len(tally.found), texts, _int_array(counts)),
                prepare=False).fetchone()  # type: ignore[misc]
        except psycopg.DataError as exc:  # SQLSTATE class 22: a value the parent type rejects
            raise DataCheckFailed(f"{type_error}: {_first_line(exc)}") from exc
        tally.orphan_values += n_values
        tally.orphans += int(n_rows)
        tally.found.extend(missing or [])
        del rows, texts, counts  # so that two batches are never held at once


def check_reference(child_conninfo: str, child_schema: str, child_table: str, column: str,
                    parent_conninfo: str, parent_schema: str, parent_table: str, parent_column: str,
                    *, batch: int = 50_000, sample: int = 10) -> ReferenceResult:
    """Check that every non-NULL child_schema.child_table.column value exists in parent_column.

    The two conninfos may point at different databases or servers (or the same one). Memory is
    bounded by `batch` distinct values; `sample` orphan values are kept. Orphans are a result, not
    an error; a missing table or column, a connection failure, or child values that are not valid
    input for the parent column's type raise DataCheckFailed.
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if sample < 0:
        raise ValueError(f"sample must be >= 0, got {sample}")
    what = (f"reference {_qualified(child_schema, child_table, column)} -> "
            f"{_qualified(parent_schema, parent_table, parent_column)}")
    started = time.perf_counter()
    tally = _Tally()
    notes: list[str] = []
    try:
        with _reader(child_conninfo, "dbsplit-references-child") as child, \
                _reader(parent_conninfo, "dbsplit-references-parent") as parent:
            child_col = _column(child, child_schema, child_table, column, "child")
            parent_col = _column(parent, parent_schema, parent_table, parent_column, "parent")
            if child_col.type_name != parent_col.type_name:
                notes.append(f"types differ: child {child_col.type_name}, parent {parent_col.type_name}; "
                             f"child values are cast to {parent_col.type_name}")
            if not parent_col.indexed:
                notes.append(f"no index on the parent column: each batch scans {parent_schema}.{parent_table}")
                log.warning("%s: no index starts with the parent column; each batch scans the parent table", what)
            stream, probe = _queries(child_schema, child_table, column, parent_schema, parent_table, parent_column,
                                     parent_col.type_ident)
            with child.transaction(), parent.transaction(), \
                    child.cursor(name=f"dbsplit_refs_{uuid.uuid4().hex[:12]}") as values:
                if parent_col.indexed:
                    # index probes, in the child's sorted order: the planner otherwise often picks a
                    # hash anti join that reads the whole parent for every batch (measured: 100
                    # batches of 10,000 uuids against a 1M-row parent, 32 s instead of ~5 s)
                    parent.execute("SET LOCAL enable_hashjoin = off")
                    parent.execute("SET LOCAL enable_mergejoin = off")
                values.execute(stream)
                _probe_batches(values, parent, probe, tally, batch, sample,
                               f"{what}: child values ({child_col.type_name}) are not valid "
                               f"{parent_col.type_name} values of the parent column")
    except DataCheckFailed:
        raise
    except psycopg.Error as exc:
        raise DataCheckFailed(f"{what}: could not check: {type(exc).__name__}: {_first_line(exc)}") from exc

    result = ReferenceResult(checked=tally.checked, orphans=tally.orphans, sample=tally.found,
                             seconds=round(time.perf_counter() - started, 3), distinct_values=tally.distinct,
                             orphan_values=tally.orphan_values, batches=tally.batches,
                             child_type=child_col.type_name, parent_type=parent_col.type_name, notes=notes)
    log.info("%s: %d rows (%d distinct values) checked in %d batch(es), %d orphan rows (%d values), %.2f s",
             what, tally.checked, tally.distinct, tally.batches, tally.orphans, tally.orphan_values, result.seconds)
    return result


def reference_outcome(result: ReferenceResult, reference: Any) -> dict[str, Any]:
    """The evidence outcome {expectation, column, success, observed, details} of a checked SoftReference.

    observed = the number of orphan child rows; details name the referenced service, table and
    column and list the sample of orphan values.
    """
    target = f"{reference.referenced_service}: {reference.referenced_table}.{reference.referenced_column}"
    if result.success:
        details = (f"all {result.checked} non-NULL rows ({result.distinct_values} distinct values) "
                   f"found in {target}; NULLs are not checked")
    else:
        shown = ", ".join(_short(v) for v in result.sample)
        details = (f"{result.orphans} of {result.checked} non-NULL rows reference {result.orphan_values} "
                   f"value(s) missing from {target}" + (f", e.g. {shown}" if shown else ""))
    if result.notes:
        details += " (" + "; ".join(result.notes) + ")"
    return {"expectation": REFERENCES, "column": reference.column, "success": result.success,
            "observed": result.orphans, "details": details}


def not_checked_outcome(reference: Any, why: str) -> dict[str, Any]:
    """The evidence outcome of a SoftReference that could not be checked: success None ("not checked"),
    which neither passes nor fails its table; details say why and what checks it later."""
    return {"expectation": REFERENCES, "column": reference.column, "success": None, "observed": None,
            "details": f"not checked: {why}"}


@contextmanager
def _reader(conninfo: str, application_name: str) -> Iterator[psycopg.Connection]:
    """A connection whose transactions are READ ONLY and REPEATABLE READ, with portable text output."""
    conn = connect_source(conninfo, autocommit=True, application_name=application_name)
    try:
        for name, value in _TEXT_SETTINGS.items():
            conn.execute("SELECT pg_catalog.set_config(%s, %s, false)", (name, value))
        conn.autocommit = False
        conn.read_only = True
        conn.isolation_level = IsolationLevel.REPEATABLE_READ
        yield conn
    finally:
        conn.close()


def _column(conn: psycopg.Connection, schema: str, table: str, column: str, side: str) -> _Column:
    """The column's type and whether an index starts with it; DataCheckFailed when table or column is missing."""
    with conn.transaction():
        row = conn.execute(
            """
            SELECT pg_catalog.format_type(a.atttypid, a.atttypmod), tn.nspname, t.typname,
                   EXISTS (SELECT FROM pg_catalog.pg_index i
                           JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
                           JOIN pg_catalog.pg_am am ON am.oid = ic.relam
                           WHERE i.indrelid = c.oid AND i.indkey[0] = a.attnum AND i.indisvalid
                             AND i.indpred IS NULL AND am.amname IN ('btree', 'hash'))
            FROM pg_catalog.pg_class c
            JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
            JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
            JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace
            WHERE n.nspname = %s AND c.relname = %s AND a.attname = %s
            """, (schema, table, column)).fetchone()
        if row is None:
            exists = conn.execute(
                "SELECT EXISTS (SELECT FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
                "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s)", (schema, table)).fetchone()
    if row is None:
        where = _qualified(schema, table)
        problem = f"has no column {_quote(column)}" if exists and exists[0] else "does not exist"
        raise DataCheckFailed(f"{side} table {where} {problem} (database {conn.info.dbname})")
    type_name, type_schema, type_name_raw, indexed = row
    return _Column(type_name=type_name, type_ident=sql.Identifier(type_schema, type_name_raw), indexed=bool(indexed))


def _text_array(values: Iterable[str]) -> str:
    """A PostgreSQL text[] literal of the values (none is NULL).

    Built here rather than by psycopg's list dumper, which costs ~5 us per element in Python (0.25 s
    per 50,000 values, more than the parent's lookups): this join costs ~0.5 us.
    """
    return "{" + ",".join(['"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values]) + "}"


def _int_array(values: list[int]) -> str:
    return "{" + ",".join(map(str, values)) + "}"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _qualified(*names: str) -> str:
    return ".".join(_quote(n) for n in names)


def _short(value: str, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
