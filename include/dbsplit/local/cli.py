"""The `dbsplit` command: embedded PostgreSQL, plans, the sample monolith and the demo."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from dbsplit.errors import DbsplitError


def _cmd_pg(args: argparse.Namespace) -> int:
    from dbsplit.local import embedded

    if args.action == "stop":
        print("stopped" if embedded.stop() else "the embedded PostgreSQL was not running")
    else:  # url, start: the URL of the server (started if needed), of DBNAME when given
        from dbsplit.pg.conn import libpq_url

        print(libpq_url(embedded.pg_url(), args.dbname or ("" if args.action == "url" else None)))
    return 0


def _cmd_env(args: argparse.Namespace) -> int:
    from dbsplit.local.embedded import pg_url
    from dbsplit.local.env import connection_env
    from dbsplit.plan import load_plan

    for name, value in connection_env(load_plan(args.plan), pg_url()).items():
        print(f"export {name}={shlex.quote(value)}")
    print(f"export DBSPLIT_PLANS={shlex.quote(str(Path(args.plan).resolve()))}")
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from dbsplit.local.plan_commands import run

    return run(args)


def _cmd_sample(args: argparse.Namespace) -> int:
    from dbsplit.local.embedded import pg_url
    from dbsplit.local.samples import create_sample
    from dbsplit.pg.conn import with_dbname
    from dbsplit.pg.provision import ensure_database

    target = with_dbname(pg_url(), args.database)
    ensure_database(target)
    counts = create_sample(target, args.name, rows=args.rows)
    print(f"{args.name}: {sum(counts.values())} rows in {len(counts)} tables in database {args.database!r}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from dbsplit.local.demo import run_demo

    return run_demo(plan_path=Path(args.plan), rows=args.rows)


def _cmd_run(args: argparse.Namespace) -> int:
    from dbsplit.local.run import run_plan

    services = [s for item in args.services or [] for s in item.split(",") if s]
    return run_plan(Path(args.plan), services=services or None, orchestrator=args.orchestrator)


def _cmd_airflow(args: argparse.Namespace) -> int:
    """Exec `airflow standalone` on 127.0.0.1 with the dbsplit DAGs, plugins and connections."""
    import os

    from dbsplit.local.airflow_local import airflow_env
    from dbsplit.local.demo import dbsplit_home, prepare_source
    from dbsplit.local.embedded import pg_url
    from dbsplit.local.env import PROJECT_ROOT, connection_env
    from dbsplit.local.ports import require_free_port
    from dbsplit.plan import load_plan

    require_free_port("127.0.0.1", args.port)
    plan_path = Path(args.plan).resolve()
    plan = load_plan(plan_path)
    server = pg_url()
    prepare_source(plan, server, rows=args.rows)
    env = airflow_env(dbsplit_home() / "airflow", PROJECT_ROOT / "dags", PROJECT_ROOT / "plugins")
    from dbsplit.local.demo import demo_variables

    env |= connection_env(plan, server) | demo_variables(plan) | {"DBSPLIT_PLANS": str(plan_path)}
    env |= {"AIRFLOW__API__HOST": "127.0.0.1", "AIRFLOW__API__PORT": str(args.port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{args.port}/",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "DBSPLIT_REPORTS_DIR": os.environ.get("DBSPLIT_REPORTS_DIR", str(dbsplit_home() / "reports"))}
    print(f"Airflow UI on http://127.0.0.1:{args.port}/ (user admin; the password is printed below and kept in "
          f"{env['AIRFLOW_HOME']}/simple_auth_manager_passwords.json.generated)", flush=True)
    airflow = str(Path(sys.executable).with_name("airflow"))
    os.execve(airflow, [airflow, "standalone"], os.environ | env)
    return 0  # not reached


def build_parser() -> argparse.ArgumentParser:
    from dbsplit.airflow.dagfactory import DEFAULT_PLAN
    from dbsplit.local.plan_commands import add_arguments as add_plan_arguments

    parser = argparse.ArgumentParser(prog="dbsplit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    pg = sub.add_parser("pg", help="the embedded PostgreSQL (used when DBSPLIT_PG_URL is unset)")
    pg.add_argument("action", choices=["url", "start", "stop"],
                    help="url: print the server's URL (of DBNAME if given); start: start it; stop: stop it")
    pg.add_argument("dbname", nargs="?", help="with url: the database the URL points at (default: none, so that "
                                              "\"$(dbsplit pg url)/DBNAME\" works too)")
    pg.set_defaults(func=_cmd_pg)
    plan_help = "the plan YAML file (default: the jobboard example)"
    env = sub.add_parser("env", help="print AIRFLOW_CONN_* exports for a plan on the dbsplit server")
    env.add_argument("--plan", default=str(DEFAULT_PLAN), help=plan_help)
    env.set_defaults(func=_cmd_env)
    plan = sub.add_parser("plan", help="check, show or start a migration plan")
    add_plan_arguments(plan)
    plan.set_defaults(func=_cmd_plan)
    rows_help = "rows of the sample monolith when it is created (default: 50000)"
    sample = sub.add_parser("sample", help="create a sample monolith")
    sample.add_argument("--name", default="jobboard", help="the example: jobboard, helpdesk, freezone or payments")
    sample.add_argument("--database", default="jobboard_monolith", help="the database to create it in")
    sample.add_argument("--rows", type=int, default=50_000, help=rows_help)
    sample.set_defaults(func=_cmd_sample)
    demo = sub.add_parser("demo", help="create an example's sample monolith if absent, then `dbsplit run` its plan")
    demo.add_argument("--plan", default=str(DEFAULT_PLAN), help=plan_help)
    demo.add_argument("--rows", type=int, default=50_000, help=rows_help)
    demo.set_defaults(func=_cmd_demo)
    run = sub.add_parser("run", help="run a plan's DAGs locally through dag.test(), in dependency order")
    run.add_argument("--plan", required=True, help="the plan YAML file")
    run.add_argument("--services", nargs="+", metavar="SERVICE",
                     help="only these services (names separated by spaces or commas; default: all)")
    run.add_argument("--orchestrator", action="store_true",
                     help="run the orchestrator DAG (preflight, backups, every service, cross-service checks)")
    run.set_defaults(func=_cmd_run)
    airflow = sub.add_parser("airflow", help="airflow standalone with the dbsplit DAGs and connections")
    airflow.add_argument("--plan", default=str(DEFAULT_PLAN), help=plan_help)
    airflow.add_argument("--rows", type=int, default=50_000, help=rows_help)
    airflow.add_argument("--port", type=int, default=8080, help="the Airflow UI's port on 127.0.0.1 (default: 8080)")
    airflow.set_defaults(func=_cmd_airflow)
    return parser


def quiet_warnings() -> None:
    """No third-party warnings on the terminal (e.g. platformdirs' RuntimeDirWarning without XDG_RUNTIME_DIR)."""
    import warnings

    warnings.filterwarnings("ignore", module=r"(platformdirs|airflow|pydantic|great_expectations|pandas)(\..*)?$")
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def main(argv: list[str] | None = None) -> int:
    quiet_warnings()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DbsplitError as exc:
        print(f"dbsplit: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
