"""Toy DAGs for tests/dags/test_airflow_local.py: one succeeds, one fails, one reads a connection."""

from __future__ import annotations

import pendulum
from airflow.sdk import BaseHook, TaskGroup, dag, task
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


toy_ok()
toy_fail()
toy_conn()
