"""The orchestrator's trigger task: start a service's migrate DAG and wait (deferred) for its run.

Imported by DAG files: the Task SDK and the standard provider only.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import (
    XCOM_RUN_ID,
    DagIsPaused,
    TriggerDagRunOperator,
)
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowSkipException,
)

from dbsplit.airflow.failures import REASON_KEY, reason_on_failure
from dbsplit.airflow.specs import ServiceDagSpec

POKE_S = 2                          # how often a trigger task checks its service run's state
TRIGGER_RUN_ID_KEY = XCOM_RUN_ID    # XCom of a trigger task: the run id of the service run it started


class TriggerService(TriggerDagRunOperator):
    """Trigger a service's migrate DAG with the run's chunk_rows and wait (deferred) for it to finish.

    Skipped for a service left out of the `services` parameter and on a dry run; a paused service DAG
    fails it at once (its run would stay queued); a failed service run fails it (no retry) with the
    reason its `finish` task gave.
    """

    def __init__(self, *, spec: ServiceDagSpec, **kwargs: Any) -> None:
        super().__init__(task_id=f"trigger_{spec.service}", trigger_dag_id=spec.dag_id, wait_for_completion=True,
                         deferrable=True, poke_interval=POKE_S, retries=0, trigger_rule="none_failed",
                         fail_when_dag_is_paused=True, openlineage_inject_parent_info=False, **kwargs)
        self.service = spec.service

    def execute(self, context: Any) -> None:
        with reason_on_failure(context["ti"]):   # the rollback names this task and why it failed
            self._start(context)

    def _start(self, context: Any) -> None:
        params = context["params"]
        if params.get("services") and self.service not in params["services"]:
            raise AirflowSkipException(f"service {self.service} not selected for this run")
        if params.get("dry_run"):
            raise AirflowSkipException("dry run: nothing is written")
        self.conf = {"chunk_rows": params.get("chunk_rows")}
        try:
            super().execute(context)
        except DagIsPaused as exc:   # its run would stay queued and this wait would never end
            raise AirflowFailException(
                f"{self.trigger_dag_id} is paused, so its run would never start. Fix: unpause it (the toggle in "
                f"the UI or `airflow dags unpause {self.trigger_dag_id}`) and trigger the orchestrator again") from exc

    def execute_complete(self, context: Any, event: Any) -> None:
        with reason_on_failure(context["ti"]):
            self._complete(context, event)

    def _complete(self, context: Any, event: Any) -> None:
        try:
            super().execute_complete(context, event)
        except AirflowException as exc:
            run_id = self.trigger_run_id
            reason = context["ti"].xcom_pull(task_ids="finish", dag_id=self.trigger_dag_id, run_id=run_id,
                                             key=REASON_KEY)
            raise AirflowFailException(f"{self.trigger_dag_id} run {run_id} failed: {reason or exc}") from exc
