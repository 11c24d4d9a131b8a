"""The DAG file parses cleanly, yields the plan's DAGs, and parsing never touches a database."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dbsplit.dagfactory import DEFAULT_PLAN
from dbsplit.plan import load_plan
from dbsplit.specs import service_specs

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
    assert set(dagbag.dag_ids) == expected


def test_tasks_per_table_retries_and_no_cycles(dagbag) -> None:
    plan = load_plan(DEFAULT_PLAN)
    for spec in service_specs(plan):
        dag = dagbag.dags[spec.dag_id]
        dag.check_cycle()
        expected = {"prepare_target"} | {f"{t.group_id}.{step}" for t in spec.tables
                                         for step in ("extract", "transform", "load", "validate")}
        assert set(dag.task_ids) == expected
        assert {task.retries for task in dag.tasks} == {plan.defaults.retries}
        for t in spec.tables:
            chain = [dag.get_task(f"{t.group_id}.{s}") for s in ("extract", "transform", "load", "validate")]
            for upstream, downstream in zip(chain, chain[1:]):
                assert downstream.task_id in upstream.downstream_task_ids
            assert "prepare_target" in chain[0].upstream_task_ids


def test_parsing_imports_no_heavy_or_database_modules() -> None:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import dbsplit_dags, json; "
        "print(json.dumps(sorted(m for m in ('pandas', 'great_expectations', 'psycopg', 'pyarrow')"
        " if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(DAGS)], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
