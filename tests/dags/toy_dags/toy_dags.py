"""Toy DAGs for tests/dags/test_airflow_local.py: one succeeds, one fails, one reads a connection, one
triggers two of them (one fails) and waits, one is paused and the orchestrator's trigger task meets it."""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import BaseHook, TaskGroup, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

START = pendulum.datetime(2024, 1, 1, tz="UTC")


@dag(dag_id="toy_ok", schedule=None, start_date=START, catchup=False)
def toy_ok():
    @task
    def items() -> list[int]:
        return [1, 2, 3]

    @task
    def double(x: int) -> int:
        return x * 2

    @task
    def total(values: list[int]) -> int:
        result = sum(values)
        if result != 12:
            raise ValueError(f"mapped results summed to {result}, expected 12")
        return result

    with TaskGroup("grp"):
        @task
        def first() -> str:
            return "a"

        @task
        def second(value: str) -> str:
            return value + "b"

        grouped = second(first())

    grouped >> total(double.expand(x=items()))


@dag(dag_id="toy_fail", schedule=None, start_date=START, catchup=False)
def toy_fail():
    @task
    def boom():
        raise ValueError("kaboom-distinctive-42")

    @task
    def after_boom():
        pass

    @task(retries=3)
    def hard_fail():
        raise AirflowFailException("no retries for this one")

    boom() >> after_boom()
    hard_fail()


@dag(dag_id="toy_conn", schedule=None, start_date=START, catchup=False)
def toy_conn():
    @task
    def read_conn() -> str:
        conn = BaseHook.get_connection("toy")
        if conn.host != "toy.example.invalid":
            raise ValueError(f"unexpected host {conn.host!r}")
        return conn.host

    read_conn()


@dag(dag_id="toy_echo", schedule=None, start_date=START, catchup=False)
def toy_echo():
    @task
    def echo() -> int:
        n = get_current_context()["dag_run"].conf["n"]
        if n != 7:
            raise ValueError(f"conf n = {n!r}, expected 7")
        return n

    echo()


@dag(dag_id="toy_trigger", schedule=None, start_date=START, catchup=False)
def toy_trigger():
    waits = {"deferrable": True, "wait_for_completion": True, "poke_interval": 1, "retries": 0}
    ok = TriggerDagRunOperator(task_id="trigger_echo", trigger_dag_id="toy_echo", conf={"n": 7}, **waits)
    bad = TriggerDagRunOperator(task_id="trigger_fail", trigger_dag_id="toy_fail", **waits)

    @task(trigger_rule="one_failed")
    def on_failure() -> None:  # like the orchestrator's rollback: runs, then fails the run
        raise AirflowFailException("rolled back")

    ok >> bad >> on_failure()


@dag(dag_id="toy_paused", schedule=None, start_date=START, catchup=False, is_paused_upon_creation=True)
def toy_paused():
    @task
    def never() -> None:
        raise AirflowFailException("a paused DAG ran")

    never()


@dag(dag_id="toy_trigger_paused", schedule=None, start_date=START, catchup=False)
def toy_trigger_paused():
    from dbsplit.airflow.render import _TriggerService
    from dbsplit.airflow.specs import ServiceDagSpec

    _TriggerService(spec=ServiceDagSpec("toy_paused", "toy", "paused", "src", "dst", 0, ()))


toy_ok()
toy_fail()
toy_conn()
toy_echo()
toy_trigger()
toy_paused()
toy_trigger_paused()
