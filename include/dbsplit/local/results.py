"""The result table of a local run: one line per table, its rows, validation and reference checks.

A reference check that could not run (its referenced table was not migrated yet) reads "not checked",
never passed, in the table and in the list below it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TextIO

import psycopg
from psycopg import sql

from dbsplit.airflow.specs import ServiceDagSpec
from dbsplit.engine.verify.references import REFERENCES
from dbsplit.model.evidence import check_status
from dbsplit.pg import state


@dataclass(frozen=True)
class TableResult:
    """One table of the run as the result table shows it."""

    service: str
    table: str
    source_rows: int | None
    target_rows: int | None
    verdict: str                      # passed, FAILED or not run
    references: dict[str, list[dict[str, Any]]]   # status -> reference checks

    @property
    def ok(self) -> bool:
        return self.source_rows is not None and self.source_rows == self.target_rows and self.verdict == "passed"


def table_results(specs: list[ServiceDagSpec], conninfos: dict[str, str],
                  run_ids: dict[str, str | None]) -> list[TableResult]:
    """Each table of the services run (whole-schema tables included), from this run's evidence."""
    out = []
    for spec in specs:
        if spec.dag_id not in run_ids:
            continue
        target = conninfos[spec.target_conn_id]
        verdicts = _run_evidence(target, run_ids[spec.dag_id])
        expected = [f"{t.target_schema}.{t.target_table}" for t in spec.tables]
        for name in expected + sorted(set(verdicts) - set(expected)):
            ev = verdicts.get(name)
            schema, table = name.split(".", 1)
            refs: dict[str, list[dict[str, Any]]] = {}
            for check in (ev.checks if ev else []):
                if check.get("expectation") == REFERENCES:
                    refs.setdefault(check_status(check), []).append(check)
            out.append(TableResult(spec.service, name, None if ev is None else ev.source_rows,
                                   _count(target, schema, table),
                                   "not run" if ev is None else ("passed" if ev.success else "FAILED"), refs))
    return out


def print_results(results: list[TableResult], out: TextIO) -> bool:
    """Print the table, the reference checks that did not run, and the verdict; True when all is well."""
    print(f"\n{'service':<14} {'table':<34} {'source rows':>12} {'target rows':>12}  {'validation':<10}  references",
          file=out)
    for r in results:
        refs = ", ".join(f"{len(c)} {s}" for s, c in sorted(r.references.items())) or "-"
        print(f"{r.service:<14} {r.table:<34} {r.source_rows!s:>12} {r.target_rows!s:>12}  {r.verdict:<10}  {refs}",
              file=out)
    unchecked = [(r, c) for r in results for c in r.references.get("not checked", [])]
    for r, check in unchecked:
        print(f"not checked: {r.service} {r.table}.{check.get('column')}: "
              f"{str(check.get('details', '')).removeprefix('not checked: ')}", file=out)
    all_ok = bool(results) and all(r.ok for r in results)
    verdict = "OK" if all_ok else "MISMATCH"
    if all_ok and unchecked:
        verdict += f", but {len(unchecked)} reference check(s) did not run (listed above)"
    print(f"\nresult: {verdict}", file=out)
    return all_ok


def not_checked(results: Iterable[TableResult]) -> int:
    """How many reference checks did not run."""
    return sum(len(r.references.get("not checked", [])) for r in results)


def _count(conninfo: str, schema: str, table: str) -> int | None:
    try:
        with psycopg.connect(conninfo) as conn:
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))).fetchone()
            return None if row is None else int(row[0])
    except psycopg.Error:
        return None


def _run_evidence(target: str, run_id: str | None) -> dict[str, state.Evidence]:
    """This run's evidence per target table ({} when the target database does not exist)."""
    try:
        with psycopg.connect(target) as conn:
            return {e.target_table: e for e in state.latest_evidence(conn) if e.run_id == run_id}
    except psycopg.OperationalError:
        return {}
