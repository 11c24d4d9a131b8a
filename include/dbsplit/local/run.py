"""`dbsplit run`: any plan's DAGs, run locally through dag.test(), with progress lines and a result table.

Connections: each connection id of the plan is the user's AIRFLOW_CONN_<ID> variable when it is set,
else the database of the same name on the dbsplit server (what `dbsplit env` prints). Services run one
after another in dependency order (dbsplit.plan.order), so that a reference check finds the table it
references migrated; `--orchestrator` runs the orchestrator DAG instead, which triggers them itself.
Airflow's output goes to a log file under $DBSPLIT_HOME/logs; the terminal gets one line per table.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

import psycopg

from dbsplit.airflow.specs import migrate_dag_id, service_specs
from dbsplit.errors import DbsplitError
from dbsplit.local.env import PROJECT_ROOT, dbsplit_home
from dbsplit.pg.conn import airflow_conn_env, with_dbname
from dbsplit.plan import Plan, load_plan

ORCHESTRATOR = "dbsplit_orchestrator"


def connections(plan: Plan) -> tuple[dict[str, str], dict[str, str]]:
    """(conn id -> conninfo, the AIRFLOW_CONN_* variables to define): the user's own variable when set,
    else the database named after the id on the dbsplit server ($DBSPLIT_PG_URL or the embedded one)."""
    from dbsplit.pg.source_catalog import conninfo_from_env

    conninfos: dict[str, str] = {}
    env: dict[str, str] = {}
    server = None
    for conn_id in plan.conn_ids():
        info = conninfo_from_env(conn_id)
        if info is None:
            if server is None:
                from dbsplit.local.embedded import pg_url

                server = pg_url()
            info = with_dbname(server, conn_id)
            env.update([airflow_conn_env(conn_id, info)])
        conninfos[conn_id] = info
    return conninfos, env


def check_source(plan: Plan, conninfo: str) -> None:
    """Raise DbsplitError, with the whole error and the fix, when the source cannot be reached."""
    try:
        with psycopg.connect(conninfo, connect_timeout=10):
            pass
    except psycopg.Error as exc:
        variable = f"AIRFLOW_CONN_{plan.source.conn_id.upper()}"
        raise DbsplitError(
            f"the source {plan.source.conn_id!r} of plan {plan.name!r} cannot be reached: {str(exc).strip()}\n"
            f"Fix: define {variable} as your monolith's URL (export {variable}=postgresql://...), or create the "
            f"database {plan.source.conn_id!r} on the dbsplit server (`dbsplit pg url {plan.source.conn_id}`)") from exc


def catalog_edges(plan: Plan, conninfo: str) -> list[tuple[str, str]]:
    """(service, the service it follows) for each foreign key of the source between two services' tables."""
    from dbsplit.pg.conn import connect_source
    from dbsplit.pg.source_catalog import SourceCatalog
    from dbsplit.plan.fkedges import catalog_edges as fk_edges

    with connect_source(conninfo, connect_timeout=10) as conn:
        return [e.edge for e in fk_edges(plan, SourceCatalog(conn))]


def service_order(plan: Plan, services: list[str] | None = None,
                  edges: list[tuple[str, str]] | None = None) -> list[str]:
    """The services to run, in migration order: a service after the services it references, in the plan
    or through the source's foreign keys (edges)."""
    from dbsplit.plan.order import migration_levels

    order = [name for level in migration_levels(plan, edges or ()) for name in level]
    unknown = sorted(set(services or ()) - set(order))
    if unknown:
        raise DbsplitError(f"plan {plan.name!r} has no service {', '.join(unknown)}. "
                           f"Fix: choose among {', '.join(order)}")
    return [name for name in order if not services or name in services]


def plan_variables(plan: Plan) -> dict[str, str]:
    """Airflow variables a plan needs locally: a demo salt for `mask: hash` (never use it for real data)."""
    salt = plan.defaults.mask_salt
    if salt is None or not salt.variable:
        return {}
    name = f"AIRFLOW_VAR_{salt.variable.upper()}"
    return {name: os.environ.get(name, "dbsplit-demo-salt-not-secret")}


def new_log_file(plan: Plan) -> Path:
    """A new file for this run's Airflow output: $DBSPLIT_HOME/logs/<plan>-<UTC time>.log."""
    folder = dbsplit_home() / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{plan.name}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S.%fZ}.log"
    path.touch()
    return path


def run_plan(plan_path: Path, services: list[str] | None = None, orchestrator: bool = False,
             out: TextIO | None = None, rich: bool | None = None) -> int:
    """Run the plan's service DAGs (or its orchestrator) locally; 0 when every run succeeded, every table
    validated and its counts match, 1 otherwise."""
    from dbsplit.local.airflow_local import AirflowLocalError, run_dags
    from dbsplit.local.progress import Follower

    out = out or sys.stdout
    plan = load_plan(plan_path)
    conninfos, env = connections(plan)
    check_source(plan, conninfos[plan.source.conn_id])
    names = service_order(plan, services, catalog_edges(plan, conninfos[plan.source.conn_id]))
    os.environ.setdefault("DBSPLIT_REPORTS_DIR", str(dbsplit_home() / "reports"))
    env |= plan_variables(plan) | {"DBSPLIT_PLANS": str(Path(plan_path).resolve()),
                                   "DBSPLIT_REPORTS_DIR": os.environ["DBSPLIT_REPORTS_DIR"]}
    dag_ids = [ORCHESTRATOR] if orchestrator else [migrate_dag_id(s) for s in names]
    conf = {"services": names} if orchestrator and services else None
    log = new_log_file(plan)
    how = "the orchestrator runs" if orchestrator else "in dependency order:"
    print(f"plan {plan.name}: {how} {', '.join(names)}", file=out, flush=True)
    failed_runner = None
    with Follower(log, out, rich):
        try:
            results = run_dags(dag_ids, home=dbsplit_home() / "airflow", dags_folder=PROJECT_ROOT / "dags",
                               env=env, conf=conf, max_retry_delay_s=1, log_file=log)
        except AirflowLocalError as exc:
            results, failed_runner = exc.results, str(exc)
    return _report(plan, plan_path, names, conninfos, results, log, failed_runner, out)


def _report(plan: Plan, plan_path: Path, names: list[str], conninfos: dict[str, str], results: list,
            log: Path, failed_runner: str | None, out: TextIO) -> int:
    """Failed tasks, the result table, where the evidence and the logs are; the exit code."""
    from dbsplit.local.results import print_results, table_results
    from dbsplit.model.evidence import reports_dir

    runs = [t for r in results for t in [r, *r.triggered]]
    for r in runs:
        for task_id, message in r.failed_tasks.items():
            print(f"FAILED {r.dag_id}.{task_id}: {message.splitlines()[0] if message else ''}", file=out)
        if r.error:
            print(f"FAILED {r.dag_id}: {r.error.splitlines()[0]}", file=out)
    if failed_runner:
        print(f"dbsplit: {failed_runner.splitlines()[0]}", file=out)
    specs = [s for s in service_specs(plan, str(Path(plan_path).resolve())) if s.service in names]
    run_ids = {r.dag_id: r.run_id for r in runs if r.run_id}
    ok = print_results(table_results(specs, conninfos, run_ids), out)
    print(f"evidence: _dbsplit.table_evidence in each target database; reports under {reports_dir()}/runs/ "
          "(`make airflow` shows them under Migration reports)", file=out)
    print(f"full logs: {log}", file=out, flush=True)
    return 0 if ok and not failed_runner and all(r.ok for r in runs) else 1
