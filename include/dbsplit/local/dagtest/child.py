"""The child process: ``python -m dbsplit.local.airflow_local _child`` runs `run_child`.

It imports airflow (configured by the environment of dbsplit.local.dagtest.settings), creates or
reuses the metadata database, parses and syncs the dags folder once, runs each requested DAG with
``dag.test()`` (with a pump beside it when the DAG waits for runs it triggers), and writes the
results after every DAG to the result file the parent names.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from dbsplit.local.dagtest.capture import TaskErrors, TeeStdout, describe_exception
from dbsplit.local.dagtest.dagrun import cap_retry_delays, run_one, warm_up_execution_api
from dbsplit.local.dagtest.metadata import ensure_db, parse_and_sync
from dbsplit.local.dagtest.pump import Pump, waits_for_triggered_runs
from dbsplit.local.dagtest.results import DagRunResult, write_json

_LOCK_FILE = ".dbsplit-airflow.lock"


def _elapsed(since: float) -> float:
    return round(time.monotonic() - since, 3)


def _lock_home(home: Path) -> IO[str]:
    """One runner per home (SQLite has a single writer); the lock lives as long as the returned file."""
    import fcntl

    lock = open(home / _LOCK_FILE, "w")  # noqa: SIM115 - held for the life of the process
    fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


def _start_airflow(payload: dict[str, Any], t0: float) -> tuple[dict[str, Any], dict[str, str]]:
    """Import airflow, create or reuse the metadata DB, parse and sync: (dags, import errors)."""
    import airflow  # noqa: F401 - configures settings, logging and the ORM

    timings = payload["timings"]
    timings["import_airflow_s"] = _elapsed(t0)
    migrated, migrate_s = ensure_db(Path(os.environ["AIRFLOW_HOME"]))
    payload["migrated"], timings["migrate_s"] = migrated, round(migrate_s, 3)
    started = time.monotonic()
    dags, import_errors = parse_and_sync()
    timings["parse_s"] = _elapsed(started)
    return dags, import_errors


def _early_pump(request: dict[str, Any], dags: dict[str, Any]) -> dict[str, Pump]:
    """The first DAG that waits for the runs it triggers gets its pump now: the pump's start-up
    (import, parse, Execution API warm-up: 10 s and more) runs beside this process's warm-up
    and the DAG's first tasks instead of delaying its first triggered run."""
    waiting = [d for d in request["dag_ids"] if d in dags and waits_for_triggered_runs(dags[d])]
    return {waiting[0]: Pump(request.get("max_retry_delay_s"))} if waiting else {}


def _not_found(dag_id: str, import_errors: dict[str, str]) -> DagRunResult:
    why = f"DAG {dag_id!r} not found in {os.environ['AIRFLOW__CORE__DAGS_FOLDER']}"
    if import_errors:
        why += "; import errors:\n" + "\n".join(f"{path}: {err.strip()}" for path, err in import_errors.items())
    return DagRunResult(dag_id=dag_id, state="error", error=why)


def _run_parent(dag: Any, request: dict[str, Any], errors: TaskErrors, pump: Pump | None = None) -> DagRunResult:
    """dag.test() one requested DAG, with a pump while it runs if it waits for runs it triggers (the
    one given, started earlier, or a new one)."""
    retry_cap = request.get("max_retry_delay_s")
    if retry_cap is not None:
        cap_retry_delays(dag, float(retry_cap))
    if pump is None and waits_for_triggered_runs(dag):
        pump = Pump(retry_cap)
    try:
        result = run_one(dag, request.get("conf"), errors)
    except Exception as err:  # dag.test() itself blew up (bad conf, DB, ...)
        traceback.print_exc()
        result = DagRunResult(dag_id=dag.dag_id, state="error", error=describe_exception(err))
    finally:
        triggered = pump.stop() if pump else []
    result.triggered = triggered
    return result


def run_child(request_path: Path, result_path: Path) -> int:
    """The child process: run the requested DAGs, results to result_path; 0 unless the runner failed."""
    t0 = time.monotonic()
    tee = TeeStdout(sys.stdout)
    sys.stdout = tee  # before airflow configures logging, see TeeStdout
    request = json.loads(request_path.read_text())
    payload: dict[str, Any] = {"results": [], "timings": {}, "migrated": False}
    early: dict[str, Pump] = {}   # dag id -> the pump started for it before its run

    def save() -> None:
        payload["timings"]["total_s"] = _elapsed(t0)
        write_json(result_path, payload)

    try:
        lock = _lock_home(Path(os.environ["AIRFLOW_HOME"]))  # noqa: F841 - held until the process exits
        dags, import_errors = _start_airflow(payload, t0)
        early = _early_pump(request, dags)
        started = time.monotonic()
        warm_up_execution_api()
        payload["timings"]["api_warmup_s"] = _elapsed(started)

        errors = TaskErrors(tee)
        errors.install()
        total = len(request["dag_ids"])
        for number, dag_id in enumerate(request["dag_ids"], 1):
            print(f"==> dbsplit: dag.test({dag_id}) [{number}/{total}]", flush=True)
            dag = dags.get(dag_id)
            result = (_not_found(dag_id, import_errors) if dag is None
                      else _run_parent(dag, request, errors, early.pop(dag_id, None)))
            print(f"==> dbsplit: {dag_id}: {result.state} in {result.duration_s:.1f} s", flush=True)
            payload["results"].append(asdict(result))
            save()  # after every DAG: a later crash keeps the finished results
        save()
        return 0
    except BaseException as err:
        traceback.print_exc()
        payload["fatal"] = "".join(traceback.format_exception_only(type(err), err)).strip()
        save()
        return 1
    finally:
        for pump in early.values():   # its DAG did not run
            pump.stop()
        tee.flush()
