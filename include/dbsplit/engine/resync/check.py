"""The table's GX suite on the rows a resync is about to write, before anything is written.

A full load runs the plan's suite on the whole staged table; a resync writes only the changed rows,
so it runs the suite's row-by-row expectations (suites.rowwise_part) on exactly the staged rows it
is about to write (after the plan's transforms; not the overlap's re-reads that equal the target):
a value outside a set, a malformed email, a pair out of order fails the run and nothing is changed.
The other expectations (row counts, aggregates, uniqueness, order, `mostly` fractions) need the
whole table: they are named in the result as left to the service DAG's validation, not evaluated on
a part of the table where they would mean something else.

GX reads through its own connection, which cannot see the merge transaction's temp table: the staged
rows are copied (COPY through this process) into an unlogged table `_dbsplit."check:<table oid>"`
by a second session, checked there with the same SQL data source a full load uses, and the table is
dropped. Enum columns become text there, as in the full load's suite view (GX binds set values as
varchar). Work follows the changed rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import psycopg
from psycopg import sql

from dbsplit.engine.migrate import arrow_io
from dbsplit.engine.resync.sql_parts import scalar
from dbsplit.errors import DataCheckFailed
from dbsplit.pg.copy import joined_messages

log = logging.getLogger(__name__)

SCHEMA = "_dbsplit"


@dataclass
class SuiteCheck:
    """A table's suite, split once per run into what the changed rows can be checked against."""

    path: Path
    spec: dict[str, Any]
    table_wide: list[str]
    outcomes: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, path: str | Path) -> SuiteCheck:
        """Read and split the suite file (imports GX; a bad file raises DataCheckFailed at once)."""
        from dbsplit.engine.verify.suites import rowwise_part

        spec, table_wide = rowwise_part(path)
        return cls(Path(path), spec, table_wide)

    def run(self, tgt: psycopg.Connection, target_conninfo: str, stage: str, columns: Sequence[str],
            writes: sql.Composable, table_name: str, table_oid: int, run_name: str | None) -> int:
        """Check the staged rows (alias s of pg_temp.<stage>, columns: the target table's) that `writes`
        (a FROM ... WHERE clause) selects, in tgt's transaction; returns how many were checked.
        DataCheckFailed when an expectation fails, naming it and the fix."""
        if not self.spec["expectations"]:
            return 0
        if not scalar(tgt, sql.SQL("SELECT count(*) {}").format(writes)):
            return 0
        from dbsplit.engine.verify.suites import validate_suite

        check = f"check:{table_oid}"
        with psycopg.connect(target_conninfo, autocommit=True, application_name="dbsplit-resync-check") as side:
            rel = sql.Identifier(SCHEMA, check)
            side.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(rel))
            side.execute(sql.SQL("CREATE UNLOGGED TABLE {} ({})").format(rel, sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in _column_types(tgt, stage, columns))))
            try:
                rows = _copy_rows(tgt, side, writes, check, columns)
                run = validate_suite(target_conninfo, SCHEMA, check, self.path, run_name=run_name, spec=self.spec)
            except DataCheckFailed as exc:   # GX could not evaluate an expectation (a column, a type)
                raise DataCheckFailed(f"{table_name}: the suite check of the rows this resync would write could not "
                                      f"run (nothing was changed): {exc}") from exc
            finally:
                side.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(rel))
        self.outcomes = _combined(self.outcomes, [o.__dict__.copy() for o in run.outcomes])
        if not run.success:
            failed = "; ".join(f"{o.expectation}{' [' + o.column + ']' if o.column else ''}: {o.observed} row(s) "
                               f"unexpected ({o.details})" for o in run.failures)
            raise DataCheckFailed(
                f"{table_name}: the changed rows this resync would write fail the table's suite {self.path} "
                f"({len(run.failures)} of {len(run.outcomes)} row-by-row expectations; {rows} row(s) checked; nothing "
                f"was changed): {failed}. Fix: correct those rows in the source (or the plan's transforms), or the "
                "suite if it is wrong, then resync again.")
        log.info("%s: the %d row(s) to write pass the %d row-by-row expectations of %s", table_name, rows,
                 len(run.outcomes), self.path)
        return rows


def _combined(before: list[dict[str, Any]], now: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The outcomes of a second batch of rows (a merge upserting twice) added to the first's."""
    if not before:
        return now
    out = []
    for b, n in zip(before, now, strict=False):
        counts = isinstance(b["observed"], int) and isinstance(n["observed"], int)
        out.append({**n, "success": b["success"] and n["success"],
                    "observed": b["observed"] + n["observed"] if counts else n["observed"]})
    return out


def _column_types(tgt: psycopg.Connection, stage: str, columns: Sequence[str]) -> list[tuple[str, str]]:
    """The staged columns' types; enums as text (see the module docstring)."""
    found: dict[str, str] = dict(tgt.execute(
        "SELECT a.attname, CASE WHEN t.typtype = 'e' THEN 'text' ELSE format_type(a.atttypid, a.atttypmod) END"
        " FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
        " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
        (sql.Identifier("pg_temp", stage).as_string(tgt),)).fetchall())
    return [(c, found[c]) for c in columns]


def _copy_rows(tgt: psycopg.Connection, side: psycopg.Connection, writes: sql.Composable, check: str,
               columns: Sequence[str]) -> int:
    """The rows to check into the check table; text COPY, as enum labels become text values."""
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    scols = sql.SQL(", ").join(sql.Identifier("s", c) for c in columns)
    out = sql.SQL("COPY (SELECT {} {}) TO STDOUT").format(scols, writes)
    into = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(SCHEMA, check), cols)
    same = {"TimeZone": "UTC"}   # with arrow_io.TEXT_SETTINGS: both sessions write and read the same text
    with tgt.cursor() as tc, side.cursor() as sc, arrow_io.text_settings(tgt, same), side.transaction(), \
            arrow_io.text_settings(side, same):
        with tc.copy(out) as cin, sc.copy(into) as cout:
            for block in joined_messages(cin):
                cout.write(block)
        return sc.rowcount
