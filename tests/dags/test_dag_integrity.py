"""The DAG file parses cleanly, yields the plan's DAGs, and parsing never touches a database."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dbsplit.airflow.dagfactory import DEFAULT_PLAN
from dbsplit.airflow.specs import service_specs
from dbsplit.plan import load_plan

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"


def _no_network(*args: object, **kwargs: object) -> None:
    raise AssertionError(f"DAG parsing opened a connection: {args}")


@pytest.fixture(scope="module")
def dagbag(airflow_home: Path):
    from airflow.dag_processing.dagbag import DagBag

    mp = pytest.MonkeyPatch()
    mp.setattr(socket.socket, "connect", _no_network)
    mp.setattr("psycopg.connect", _no_network)
    try:
        yield DagBag(dag_folder=str(DAGS))
    finally:
        mp.undo()


def test_no_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}


def test_one_migrate_dag_per_service(dagbag) -> None:
    expected = {s.dag_id for s in service_specs(load_plan(DEFAULT_PLAN))}
    resync = {s.dag_id.replace("migrate", "resync") for s in service_specs(load_plan(DEFAULT_PLAN))}
    assert set(dagbag.dag_ids) == expected | resync | {"dbsplit_orchestrator", "dbsplit_unfreeze", "dbsplit_end_dual_write"}


def test_end_dual_write_is_one_task_by_hand_for_chosen_services(dagbag) -> None:
    dag = dagbag.dags["dbsplit_end_dual_write"]
    assert type(dag.timetable).__name__ == "NullTimetable" and dag.task_ids == ["end_dual_write"]   # by hand only
    services = list(load_plan(DEFAULT_PLAN).services)
    assert dag.params["services"] == services


def test_resync_dags_are_scheduled_nightly_without_catchup(dagbag) -> None:
    dag = dagbag.dags["dbsplit_resync_users"]
    assert dag.catchup is False
    assert dag.timetable.expression == "0 2 * * *"
    assert dag.task_ids == ["resync"] and not dag.get_task("resync").is_mapped   # one task: one merge transaction


STEPS = ("plan_chunks", "extract", "transform", "load", "validate")
SERVICE_TASKS = {"prepare_target", "checkpoint", "promote", "rollback", "hold", "finish"}


def test_tasks_per_table_retries_and_no_cycles(dagbag) -> None:
    plan = load_plan(DEFAULT_PLAN)
    for spec in service_specs(plan):
        dag = dagbag.dags[spec.dag_id]
        dag.check_cycle()
        assert set(dag.task_ids) == SERVICE_TASKS | {f"{t.group_id}.{s}" for t in spec.tables for s in STEPS}
        assert {task.retries for task in dag.tasks} == {plan.defaults.retries}
        for t in spec.tables:
            chain = [dag.get_task(f"{t.group_id}.{s}") for s in STEPS]
            for upstream, downstream in zip(chain, chain[1:]):
                assert downstream.task_id in upstream.downstream_task_ids
            assert "prepare_target" in chain[0].upstream_task_ids
            assert "checkpoint" in chain[-1].downstream_task_ids


def test_chunk_steps_are_mapped_with_readable_labels(dagbag) -> None:
    dag = dagbag.dags["dbsplit_migrate_users"]
    for step in ("extract", "transform", "load"):
        task = dag.get_task(f"users.{step}")
        assert task.is_mapped and task.map_index_template == "{{ chunk_label }}"


def test_checkpoint_branches_and_finish_always_runs(dagbag) -> None:
    dag = dagbag.dags["dbsplit_migrate_users"]
    assert dag.get_task("checkpoint").downstream_task_ids == {"promote", "rollback", "hold"}
    assert dag.get_task("checkpoint").trigger_rule == "all_done"
    assert dag.get_task("finish").trigger_rule == "all_done"
    assert dag.get_task("finish").upstream_task_ids == {"promote", "rollback", "hold"}


@pytest.mark.parametrize("example", ["jobboard", "helpdesk"])   # one level of six; four levels of one
def test_orchestrator_triggers_the_service_dags_level_by_level(example: str) -> None:
    from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator

    from dbsplit.airflow.dagfactory import EXAMPLES, render_all
    from dbsplit.plan.order import migration_levels

    plan = load_plan(EXAMPLES / example / "plan.yaml")
    dag = render_all(plan, str(EXAMPLES / example / "plan.yaml"))["dbsplit_orchestrator"]
    dag.check_cycle()
    previous = {"provision.databases_and_roles"}
    for level in migration_levels(plan):
        for service in level:
            trigger = dag.get_task(f"migrate.trigger_{service}")
            assert isinstance(trigger, TriggerDagRunOperator)
            assert trigger.trigger_dag_id == f"dbsplit_migrate_{service}"
            assert (trigger.wait_for_completion, trigger.deferrable, trigger.retries) == (True, True, 0)
            assert trigger.upstream_task_ids == previous
            assert "rollback" in trigger.downstream_task_ids
        previous = {f"migrate.trigger_{s}" for s in level}
    assert not [t for t in dag.task_ids if t.endswith((".extract", ".promote"))]   # no embedded pipelines


@pytest.mark.parametrize("example", ["jobboard", "helpdesk"])
def test_every_orchestrator_task_failing_runs_the_rollback(example: str) -> None:
    """Rollback waits for every task (all_done over all of them) and is the run's only leaf: whichever
    task fails, publish included, it runs once the others are done, and its state is the run's."""
    from dbsplit.airflow.dagfactory import EXAMPLES, render_all

    plan = load_plan(EXAMPLES / example / "plan.yaml")
    dag = render_all(plan, str(EXAMPLES / example / "plan.yaml"))["dbsplit_orchestrator"]
    rollback = dag.get_task("rollback")
    assert rollback.trigger_rule == "all_done"
    others = set(dag.task_ids) - {"rollback"}
    assert rollback.upstream_task_ids == others
    assert {f"cut_over.publish_{s}" for s in plan.services} | {"backup.dumps", "cut_over.final_sync"} <= others
    assert [t.task_id for t in dag.tasks if not t.downstream_task_ids] == ["rollback"]


def test_rollback_names_each_failed_task_in_phase_order_with_its_reason() -> None:
    from dbsplit.airflow.failures import REASON_KEY, failed_tasks, run_reason

    class Ti:   # what the rollback reads of its run: the task states and the reasons the tasks pushed
        def xcom_pull(self, task_ids: str, key: str) -> str | None:
            return {"cut_over.publish_billing": "duplicate key"}.get(task_ids) if key == REASON_KEY else None

    order = ["preflight.checks", "backup.dumps", "cut_over.publish_billing", "cut_over.publish_users", "rollback"]
    states = {"preflight.checks": "success", "backup.dumps": "failed", "cut_over.publish_users": "success",
              "cut_over.publish_billing": "failed", "rollback": "running"}
    failed = failed_tasks(states, order)
    assert failed == ["backup.dumps", "cut_over.publish_billing"]
    assert run_reason(Ti(), failed) == ("backup.dumps failed: no reason was recorded, see its log; "
                                        "cut_over.publish_billing failed: duplicate key")
    assert failed_tasks({t: "success" for t in order} | {"rollback": "running"}, order) == []


def test_service_dags_take_chunk_rows_with_a_null_default(dagbag) -> None:
    for spec in service_specs(load_plan(DEFAULT_PLAN)):
        assert dagbag.dags[spec.dag_id].params["chunk_rows"] is None


def test_parsing_imports_no_heavy_or_database_modules() -> None:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import dbsplit_dags, json; "
        "print(json.dumps(sorted(m for m in ('pandas', 'great_expectations', 'psycopg', 'pyarrow')"
        " if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(DAGS)], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
