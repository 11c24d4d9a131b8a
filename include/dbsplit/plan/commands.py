"""`dbsplit plan check|show|init`: the command line of the plan layer (wired in dbsplit.cli)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from typing import TYPE_CHECKING

from dbsplit.errors import ConnectionConfigError, PlanError, PlanProblem

if TYPE_CHECKING:
    from dbsplit.plan.document import PlanDocument
    from dbsplit.plan.models import Plan


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `plan` subcommands and their options."""
    actions = parser.add_subparsers(dest="action", required=True, metavar="{check,show,init}")
    check = actions.add_parser("check", help="validate a plan; with a reachable source, check it against the catalog")
    check.add_argument("plan", help="the plan YAML file")
    check.add_argument("--source-url", help="libpq URL of the source database "
                                            "(default: the AIRFLOW_CONN_<ID> variable of the plan's source conn_id)")
    show = actions.add_parser("show", help="services in migration order with their targets, tables and DAGs")
    show.add_argument("plan", help="the plan YAML file")
    init = actions.add_parser("init", help="write a first plan from a source database's catalog")
    init.add_argument("--source", required=True, help="libpq URL of the source database")
    init.add_argument("--by", choices=["schema", "prefix"], default="schema",
                      help="one service per source schema, or per table name prefix (default: schema)")
    init.add_argument("--out", help="write the plan to this new file (default: print it)")


def run(args: argparse.Namespace) -> int:
    """Run `dbsplit plan <action>`; 0 when all is well, 2 when the plan or the source has problems."""
    return {"check": _check, "show": _show, "init": _init}[args.action](args)


def _check(args: argparse.Namespace) -> int:
    from dbsplit.plan.check import file_issues
    from dbsplit.plan.load import read_plan

    try:
        plan, doc = read_plan(args.plan)
    except PlanError as exc:
        return _report(args.plan, exc.problems)
    source_problems, checked = _source_problems(plan, doc, args.source_url)
    problems = file_issues(plan, doc) + source_problems
    if problems:
        return _report(args.plan, problems)
    print(f"{args.plan}: OK, plan '{plan.name}': {_counts(plan)}; source {'' if checked else 'not '}checked")
    return 0


def _source_problems(plan: Plan, doc: PlanDocument, url: str | None) -> tuple[list[PlanProblem], bool]:
    """Problems found in the source and whether it was checked; warns when it was not."""
    from dbsplit.plan.check import check_source
    from dbsplit.plan.source import conninfo_from_env

    variable = f"AIRFLOW_CONN_{plan.source.conn_id.upper()}"
    try:
        conninfo = url or conninfo_from_env(plan.source.conn_id)
    except ConnectionConfigError as exc:
        _warn(f"{exc}; pass --source-url instead")
        return [], False
    if conninfo is None:
        _warn(f"no source to check against: pass --source-url or define {variable}")
        return [], False
    result = check_source(plan, doc, conninfo)
    if result.skipped:
        _warn(f"{result.skipped}; skipped the checks against the source")
    return result.problems, result.skipped is None


def _counts(plan: Plan) -> str:
    from dbsplit.plan.order import migration_levels

    tables = sum(len(s.tables) for s in plan.services.values())
    schemas = sum(len(s.schemas) for s in plan.services.values())
    levels = len(migration_levels(plan))
    whole = f" and {_n(schemas, 'whole schema')}" if schemas else ""
    return f"{_n(len(plan.services), 'service')}, {_n(tables, 'table')}{whole}, {_n(levels, 'migration level')}"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' * (count != 1)}"


def _show(args: argparse.Namespace) -> int:
    from dbsplit.plan.load import read_plan
    from dbsplit.plan.show import describe

    try:
        plan, _ = read_plan(args.plan)
    except PlanError as exc:
        return _report(args.plan, exc.problems)
    print("\n".join(describe(plan)))
    return 0


def _init(args: argparse.Namespace) -> int:
    import psycopg

    try:
        from dbsplit.plan_init import init_plan
    except ImportError as exc:
        return _fail(f"`plan init` is not available: dbsplit.plan_init cannot be imported ({exc})")
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
