"""`dbsplit plan check|show|init`: the command line of the plan layer (wired in dbsplit.local.cli)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from dbsplit.errors import ConnectionConfigError, PlanError, PlanProblem
from dbsplit.plan.document import Issue

if TYPE_CHECKING:
    from dbsplit.plan.document import PlanDocument
    from dbsplit.plan.fkedges import FkEdge
    from dbsplit.plan.models import Plan


SOURCE_HELP = ("libpq URL of the source database (default: the AIRFLOW_CONN_<ID> variable of the plan's source "
               "conn_id, else its database on the local environment's server, as `dbsplit env` defines it)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `plan` subcommands and their options."""
    actions = parser.add_subparsers(dest="action", required=True, metavar="{check,show,init}")
    check = actions.add_parser("check", help="validate plans; with a reachable source, check them against its catalog")
    check.add_argument("plans", nargs="+", metavar="plan", help="plan YAML files")
    check.add_argument("--source-url", help=SOURCE_HELP)
    show = actions.add_parser("show", help="services in migration order with their targets, tables and DAGs")
    show.add_argument("plan", help="the plan YAML file")
    show.add_argument("--source-url", help=SOURCE_HELP + "; its foreign keys count in the order")
    init = actions.add_parser("init", help="write a first plan from a source database's catalog")
    init.add_argument("--source", required=True, help="libpq URL of the source database")
    init.add_argument("--by", choices=["schema", "prefix"], default="schema",
                      help="one service per source schema, or per table name prefix (default: schema)")
    init.add_argument("--out", help="write the plan to this new file (default: print it)")


def run(args: argparse.Namespace) -> int:
    """Run `dbsplit plan <action>`; 0 when all is well, 2 when the plan or the source has problems."""
    return {"check": _check, "show": _show, "init": _init}[args.action](args)


def _check(args: argparse.Namespace) -> int:
    """Check each plan; report all of them; 2 when any has a problem."""
    codes = [_check_one(path, args.source_url) for path in args.plans]
    if len(codes) > 1:
        failed = sum(1 for c in codes if c)
        print(f"dbsplit: {failed} of {len(codes)} plans failed the check" if failed else
              f"dbsplit: {len(codes)} plans OK", file=sys.stderr)
    return 2 if any(codes) else 0


class Outcome(NamedTuple):
    """What checking against the source gave: problems, how it was checked, FK edges, or the error."""

    problems: list[PlanProblem]
    note: str
    edges: list[FkEdge]
    error: str | None = None


def _check_one(path: str, url: str | None) -> int:
    from dbsplit.engine.plan_check import file_issues, repo_root
    from dbsplit.plan.custom import custom_issues
    from dbsplit.plan.load import read_plan

    try:
        plan, doc = read_plan(path)
    except PlanError as exc:
        return _report(path, exc.problems)
    problems = file_issues(plan, doc) + doc.problems(custom_issues(plan, repo_root(doc.path)))
    outcome = against_source(plan, doc, url)
    if problems or outcome.problems:
        _report(path, problems + outcome.problems)
    if outcome.error:
        return _fail(f"{path}: {outcome.error}")
    if problems or outcome.problems:
        return 2
    print(f"{path}: OK, plan '{plan.name}': {_counts(plan, outcome.edges)}; {outcome.note}")
    return 0


def against_source(plan: Plan, doc: PlanDocument, url: str | None) -> Outcome:
    """Check the plan against its source, found as locate_source() says; a source given but failing is an error."""
    from dbsplit.engine.plan_check import check_source
    from dbsplit.local.locate import locate_source, targets_on_the_source

    unchecked = "not checked against a source"
    try:
        source = locate_source(plan, url)
    except ConnectionConfigError as exc:
        return Outcome([], unchecked, [], f"{exc}; correct it, or pass --source-url")
    if source is None:
        variable = f"AIRFLOW_CONN_{plan.source.conn_id.upper()}"
        _warn(f"no source to check against: pass --source-url, define {variable}, or set up the local environment "
              "(`dbsplit env`)")
        return Outcome([], unchecked, [])
    result = check_source(plan, doc, source.conninfo)
    if result.skipped and source.given:
        return Outcome([], unchecked, [], f"cannot check against the source ({source.origin}): {result.skipped}")
    if result.skipped:
        _warn(f"the local environment does not hold the source ({source.origin}): {result.skipped}")
        return Outcome([], unchecked, [])
    same = [Issue(("services", name, "target", "conn_id"),
                  f"the target of service '{name}' ({origin}) is the source database itself ({source.origin})",
                  "give the service a database of its own; dbsplit never writes to the source")
            for name, origin in targets_on_the_source(plan, source)]
    return Outcome(result.problems + doc.problems(same), f"checked against the source ({source.origin})",
                   result.edges)


def _counts(plan: Plan, edges: list[FkEdge]) -> str:
    from dbsplit.plan.order import migration_levels

    tables = sum(len(s.tables) for s in plan.services.values())
    schemas = sum(len(s.schemas) for s in plan.services.values())
    levels = len(migration_levels(plan, [e.edge for e in edges]))
    whole = f" and {_n(schemas, 'whole schema')}" if schemas else ""
    return f"{_n(len(plan.services), 'service')}, {_n(tables, 'table')}{whole}, {_n(levels, 'migration level')}"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' * (count != 1)}"


def _show(args: argparse.Namespace) -> int:
    """The plan in migration order; with a reachable source, its foreign keys between services count."""
    from dbsplit.plan.load import read_plan
    from dbsplit.plan.show import describe

    try:
        plan, doc = read_plan(args.plan)
    except PlanError as exc:
        return _report(args.plan, exc.problems)
    outcome = against_source(plan, doc, args.source_url)
    if outcome.error:
        return _fail(f"{args.plan}: {outcome.error}")
    cycles = [p for p in outcome.problems if "reference each other" in p.message]
    if cycles:
        return _report(args.plan, cycles)
    print("\n".join(describe(plan, outcome.edges, outcome.note)))
    return 0


def _init(args: argparse.Namespace) -> int:
    import psycopg

    try:
        from dbsplit.engine.plan_init import init_plan
    except ImportError as exc:
        return _fail(f"`plan init` is not available: dbsplit.engine.plan_init cannot be imported ({exc})")
    out = Path(args.out) if args.out else None
    if out is not None and out.exists():
        return _fail(f"{out} already exists; choose another --out, or move the file away first")
    try:
        text = init_plan(args.source, by=args.by)
    except psycopg.Error as exc:
        return _fail(f"cannot read the source database: {str(exc).strip() or type(exc).__name__}")
    if out is None:
        sys.stdout.write(text)
        return 0
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}; review its `# DECIDE:` lines, then: dbsplit plan check {out} --source-url <the source URL>; "
          f"dbsplit run --plan {out}")
    return 0


def _report(plan: str, problems: list[PlanProblem]) -> int:
    for problem in problems:
        print(problem)
    print(f"dbsplit: {_n(len(problems), 'problem')} in {plan}", file=sys.stderr)
    return 2


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _fail(message: str) -> int:
    print(f"dbsplit: {message}", file=sys.stderr)
    return 2
