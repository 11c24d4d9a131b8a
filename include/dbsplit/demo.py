"""`dbsplit demo`: create the sample monolith if absent, run every service DAG, print one line per table."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
from psycopg import sql

from dbsplit import embedded, state
from dbsplit.localenv import PROJECT_ROOT, connection_conninfos, connection_env
from dbsplit.plan import Plan, load_plan
from dbsplit.provision import ensure_database
from dbsplit.specs import ServiceDagSpec, service_specs


def dbsplit_home() -> Path:
    return Path(os.environ.get("DBSPLIT_HOME") or PROJECT_ROOT / ".dbsplit").resolve()


def prepare_source(plan: Plan, server: str, rows: int) -> str:
    """Create the plan's sample monolith in the source connection's database unless it exists; return its conninfo."""
    from dbsplit.samples import create_sample, sample_exists

    source = connection_conninfos(plan, server)[plan.source.conn_id]
    ensure_database(source)
    if not sample_exists(source, plan.name):
        print(f"creating the {plan.name} monolith ({rows} rows) in database {plan.source.conn_id!r}", flush=True)
        create_sample(source, plan.name, rows=rows)
    return source


def demo_variables(plan: Plan) -> dict[str, str]:
    """Airflow variables a plan needs locally: a demo salt for `mask: hash` (never use it for real data)."""
    salt = plan.defaults.mask_salt
    if salt is None or not salt.variable:
        return {}
    name = f"AIRFLOW_VAR_{salt.variable.upper()}"
    return {name: os.environ.get(name, "dbsplit-demo-salt-not-secret")}


def run_demo(plan_path: Path, rows: int) -> int:
    """Returns 0 when every DAG succeeded and every table's counts match, 1 otherwise."""
    from dbsplit.airflow_local import run_dags

    plan = load_plan(plan_path)
    server = embedded.pg_url()
    source = prepare_source(plan, server, rows)
    conninfos = connection_conninfos(plan, server)
    specs = service_specs(plan)
    env = connection_env(plan, server) | demo_variables(plan) | {"DBSPLIT_PLANS": str(plan_path.resolve())}
    os.environ.setdefault("DBSPLIT_REPORTS_DIR", str(dbsplit_home() / "reports"))
    env["DBSPLIT_REPORTS_DIR"] = os.environ["DBSPLIT_REPORTS_DIR"]
    results = run_dags([s.dag_id for s in specs], home=dbsplit_home() / "airflow",
                       dags_folder=PROJECT_ROOT / "dags", env=env, max_retry_delay_s=1)
    ok = all(r.state == "success" for r in results)
    for r in results:
        for task_id, message in r.failed_tasks.items():
            print(f"FAILED {r.dag_id}.{task_id}: {message}")
    run_ids = {r.dag_id: r.run_id for r in results}
    return 0 if (_print_tables(specs, conninfos, source, run_ids) and ok) else 1


def _count(conninfo: str, schema: str, table: str) -> int | None:
    try:
        with psycopg.connect(conninfo) as conn:
            return conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))).fetchone()[0]
    except psycopg.Error:
        return None


def _run_evidence(target: str, run_id: str | None) -> dict[str, state.Evidence]:
    """This run's evidence per target table ({} when the target database does not exist)."""
    try:
        with psycopg.connect(target) as conn:
            return {e.target_table: e for e in state.latest_evidence(conn) if e.run_id == run_id}
    except psycopg.OperationalError:
        return {}


def _print_tables(specs: list[ServiceDagSpec], conninfos: dict[str, str], source: str,
                  run_ids: dict[str, str | None]) -> bool:
    """One line per table of this run (whole-schema tables included): rows the source holds for the
    table (after the plan's filter), rows in the live target table, and the validation verdict."""
    all_ok = True
    print(f"\n{'service':<14} {'table':<34} {'source rows':>12} {'target rows':>12}  validation")
    for spec in specs:
        target = conninfos[spec.target_conn_id]
        verdicts = _run_evidence(target, run_ids.get(spec.dag_id))
        expected = [f"{t.target_schema}.{t.target_table}" for t in spec.tables]
        for name in expected + sorted(set(verdicts) - set(expected)):
            ev = verdicts.get(name)
            schema, table = name.split(".", 1)
            tgt = _count(target, schema, table)
            verdict = "not run" if ev is None else ("passed" if ev.success else "FAILED")
            src = None if ev is None else ev.source_rows
            all_ok &= src is not None and src == tgt and verdict == "passed"
            print(f"{spec.service:<14} {name:<34} {src!s:>12} {tgt!s:>12}  {verdict}")
    from dbsplit.reports.evidence import reports_dir

    print(f"\nresult: {'OK' if all_ok else 'MISMATCH'}")
    print("evidence: table _dbsplit.table_evidence in each target database, and JSON reports under "
          f"{reports_dir()}/runs/ (`make airflow` shows them in the Airflow UI under Migration reports)")
    return all_ok
