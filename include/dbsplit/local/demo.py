"""`dbsplit demo`: the sample monolith of an example plan (created when absent), then `dbsplit run`."""

from __future__ import annotations

import sys
from pathlib import Path

from dbsplit.local.env import connection_conninfos, dbsplit_home
from dbsplit.local.run import plan_variables as demo_variables
from dbsplit.pg.provision import ensure_database
from dbsplit.plan import Plan, load_plan

__all__ = ["dbsplit_home", "demo_variables", "prepare_sample", "prepare_source", "run_demo"]


def prepare_source(plan: Plan, server: str, rows: int) -> str:
    """Create the plan's sample monolith in the database of the source connection on the server unless it
    exists (nothing for a plan that is not an example); return the source's conninfo."""
    source = connection_conninfos(plan, server)[plan.source.conn_id]
    prepare_sample(plan, source, rows)
    return source


def prepare_sample(plan: Plan, source: str, rows: int) -> bool:
    """Create the plan's sample monolith in the source database unless it exists; False (and nothing
    created) when the plan is not one of the examples."""
    from dbsplit.local.samples import SAMPLES, create_sample, sample_exists

    if plan.name not in SAMPLES:
        return False
    ensure_database(source)
    if not sample_exists(source, plan.name):
        print(f"creating the {plan.name} monolith ({rows} rows) in database {plan.source.conn_id!r}", flush=True)
        create_sample(source, plan.name, rows=rows)
    return True


def run_demo(plan_path: Path, rows: int) -> int:
    """The sample of an example plan, then its services run locally (`dbsplit run`); a plan that is not
    an example runs on its own source, as `dbsplit run --plan` would. Returns run_plan's exit code."""
    from dbsplit.local.run import connections, run_plan

    plan = load_plan(plan_path)
    conninfos, _ = connections(plan)
    if not prepare_sample(plan, conninfos[plan.source.conn_id], rows):
        print(f"plan {plan.name!r} is not one of the examples, so there is no sample to create: running it on its "
              f"own source, as `dbsplit run --plan {plan_path}` does", file=sys.stderr, flush=True)
    return run_plan(plan_path)
