"""The end of the dual-write period: after a cut-over, the resync's change tracking leaves the service tables."""

from __future__ import annotations

import psycopg
import pytest

from dbsplit.airflow import orchestrate, runtime
from dbsplit.pg.conn import airflow_conn_env
from dbsplit.errors import DbsplitError
from dbsplit.engine.resync.state import CutOverDone, key_table_name, mark_cut_over, sums_table_name
from dbsplit.plan import load_plan
from dbsplit.airflow.render import service_descriptor
from dbsplit.local.samples import create_sample
from dbsplit.airflow.specs import service_specs
from tests.integration import test_checkpoint as checkpoint

pytestmark = pytest.mark.integration

# test_checkpoint's plan, its users tracked for the resync (a watermark), and a second service
PLAN = checkpoint.PLAN.replace("tables: [users]", "tables: [{source: users, watermark: updated_at}]") + """\
  companies:
    target: {conn_id: jobboard_companies}
    tables: [{source: companies, watermark: updated_at}]
"""


def tracking(conninfo: str, table: str) -> dict[str, object]:
    """What the resync keeps for one target table: its triggers, key tables, sync state and change log."""
    keys = key_table_name("public", table)
    with psycopg.connect(conninfo) as c:
        return {
            "triggers": c.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass"
                                  " AND tgname LIKE 'dbsplit_track_%%'", (table,)).fetchone()[0],
            "key tables": c.execute("SELECT count(*) FROM pg_tables WHERE schemaname = '_dbsplit' AND tablename = ANY(%s)",
                                    ([keys, sums_table_name(keys)],)).fetchone()[0],
            "sync state": c.execute("SELECT count(*) FROM _dbsplit.sync_state WHERE target_table = %s",
                                    (f"public.{table}",)).fetchone()[0],
            "changes": c.execute("SELECT count(*) FROM _dbsplit.target_changes WHERE target_table = %s",
                                 (f"public.{table}",)).fetchone()[0],
        }


@pytest.fixture
def migrated(make_db, tmp_path, monkeypatch):
    """Both services loaded, promoted (tracking installed) and resynced once (key tables built)."""
    source = make_db("monolith")
    targets = {"users": make_db("users"), "companies": make_db("companies")}
    create_sample(source, "jobboard", rows=3_000)
    for conn_id, info in (("jobboard_monolith", source), ("jobboard_users", targets["users"]),
                          ("jobboard_companies", targets["companies"])):
        monkeypatch.setenv(*airflow_conn_env(conn_id, info))
    monkeypatch.setenv("DBSPLIT_STAGING_URL", f"file://{tmp_path}/staging")
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(PLAN)
    services = {}
    for spec in service_specs(load_plan(plan_file), str(plan_file)):
        svc = services[spec.service] = service_descriptor(spec)
        checkpoint.load_all(svc, "run1")
        runtime.validate(svc, svc["tables"][0]["target_table"], "run1")
        runtime.promote(svc)
        runtime.finish(svc, "run1")
        runtime.resync(svc, "resync1")
    orch = {"plan": "jobboard", "plan_path": str(plan_file), "services": list(services)}
    return orch, services, targets


def test_end_dual_write_removes_tracking_of_cut_over_services_only(migrated) -> None:
    orch, services, targets = migrated
    kept = {"triggers": 4, "key tables": 2, "sync state": 1, "changes": 0}
    assert tracking(targets["users"], "users") == kept and tracking(targets["companies"], "companies") == kept
    with psycopg.connect(targets["users"], autocommit=True) as c:
        mark_cut_over(c, ["public.users"], "orchestrator-run-9")
        c.execute("UPDATE users SET full_name = 'written by the service' WHERE id = 5")   # the system of record now
    assert tracking(targets["users"], "users")["changes"] == 1

    with pytest.raises(DbsplitError, match=r"not cut over: companies: public\.companies \(nothing was changed\)\. Fix: "):
        orchestrate.end_dual_write(orch, ["users", "companies"])
    assert tracking(targets["users"], "users") == kept | {"changes": 1}

    assert orchestrate.end_dual_write(orch, ["users"]) == {"ended": {"users": ["public.users"]}}
    assert tracking(targets["users"], "users") == {"triggers": 0, "key tables": 0, "sync state": 0, "changes": 0}
    with psycopg.connect(targets["users"], autocommit=True) as c:
        c.execute("UPDATE users SET full_name = 'written again' WHERE id = 6")   # no longer logged
        assert c.execute("SELECT run_id FROM _dbsplit.cut_over").fetchall() == [("orchestrator-run-9",)]
    assert tracking(targets["users"], "users")["changes"] == 0
    with pytest.raises(CutOverDone, match="orchestrator-run-9"):   # still the system of record: refused
        runtime.resync(services["users"], "resync2")
    assert tracking(targets["companies"], "companies") == kept   # its dual-write period goes on
    runtime.resync(services["companies"], "resync2")
