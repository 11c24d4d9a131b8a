"""`dbsplit demo`: create the sample monolith if absent, run every service DAG, print one line per table."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
from psycopg import sql

from dbsplit import embedded, state
from dbsplit.localenv import PROJECT_ROOT, connection_conninfos, connection_env
from dbsplit.plan import load_plan
from dbsplit.provision import ensure_database
from dbsplit.specs import ServiceDagSpec, service_specs


def dbsplit_home() -> Path:
    return Path(os.environ.get("DBSPLIT_HOME") or PROJECT_ROOT / ".dbsplit").resolve()


def run_demo(plan_path: Path, rows: int) -> int:
    """Returns 0 when every DAG succeeded and every table's counts match, 1 otherwise."""
    from dbsplit.airflow_local import run_dags
    from dbsplit.samples import create_sample, sample_exists

    plan = load_plan(plan_path)
    server = embedded.pg_url()
    conninfos = connection_conninfos(plan, server)
    source = conninfos[plan.source.conn_id]
    ensure_database(source)
    if not sample_exists(source, plan.name):
        print(f"creating the {plan.name} monolith ({rows} rows) in database {plan.source.conn_id!r}", flush=True)
        create_sample(source, plan.name, rows=rows)
    specs = service_specs(plan)
    env = connection_env(plan, server) | {"DBSPLIT_PLANS": str(plan_path.resolve())}
    results = run_dags([s.dag_id for s in specs], home=dbsplit_home() / "airflow",
                       dags_folder=PROJECT_ROOT / "dags", env=env)
    ok = all(r.state == "success" for r in results)
    for r in results:
        for task_id, message in r.failed_tasks.items():
            print(f"FAILED {r.dag_id}.{task_id}: {message}")
    return 0 if (_print_tables(specs, conninfos, source) and ok) else 1


def _count(conninfo: str, schema: str, table: str) -> int | None:
    try:
        with psycopg.connect(conninfo) as conn:
            return conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))).fetchone()[0]
    except psycopg.Error:
        return None


def _print_tables(specs: list[ServiceDagSpec], conninfos: dict[str, str], source: str) -> bool:
    """One line per table: source rows, target rows, validation; True when all match and passed."""
    all_ok = True
    print(f"\n{'service':<14} {'table':<28} {'source rows':>12} {'target rows':>12}  validation")
    for spec in specs:
        target = conninfos[spec.target_conn_id]
        with psycopg.connect(target) as conn:
            verdicts = {e.target_table: e for e in state.latest_evidence(conn)}
        for t in spec.tables:
            src, tgt = _count(source, t.source_schema, t.source_table), _count(target, t.target_schema, t.target_table)
            ev = verdicts.get(f"{t.target_schema}.{t.target_table}")
            verdict = "missing" if ev is None else ("passed" if ev.success else "FAILED")
            ok = src is not None and src == tgt and verdict == "passed"
            all_ok &= ok
            print(f"{spec.service:<14} {t.target_table:<28} {src!s:>12} {tgt!s:>12}  {verdict}")
    print(f"\nevidence: table _dbsplit.table_evidence in each target database; result: {'OK' if all_ok else 'MISMATCH'}")
    return all_ok
