"""Run dbsplit's Airflow DAGs locally: no scheduler, no API server, a SQLite metadata database.

`run_dags` starts ONE child Python process (``python -m dbsplit.local.airflow_local _child``) with the
environment of `airflow_env` applied, because Airflow reads its configuration when it is first
imported and keeps it for the life of the process. The child:

1. creates the metadata database the first time (the equivalent of ``airflow db migrate``) and
   reuses it afterwards;
2. parses the dags folder once and writes the DAGs to the metadata database (``dag.test()`` only
   runs DAGs serialized there);
3. runs each requested DAG with ``dag.test()``, in the order given, every task in that process;
4. writes the results as JSON to a file the parent names, so that the task logs, which Airflow
   prints on stdout, stream to the user's terminal while the results travel on their own channel.

A DAG that triggers other DAGs and waits for them (the orchestrator's deferrable
TriggerDagRunOperator tasks) gets a *pump* for the length of its run: a second process
(``python -m dbsplit.local.airflow_local _pump``, same environment; the first such DAG's pump starts
right after parsing, so that its own start-up overlaps the child's) that runs every DagRun queued
by an operator since the pump started with ``dag.test()`` under the same run id, so that the
parent's deferred wait finds it finished. Nothing else schedules a triggered run under dag.test(); a
thread cannot do it (dag.test() installs signal handlers, main thread only). The pump runs the
queued runs one after another and stops at a stop file (dag.test() ignores SIGTERM); its results
come back as the parent result's ``triggered`` runs.

The pieces live in dbsplit.local.dagtest (settings, results, capture, metadata, dagrun, pump,
child); this module is the parent side, the command line and the names other modules import.

This module must not import airflow at module level: the parent process usually has no Airflow
configuration, and importing airflow there would configure it wrongly for the rest of its life.

Command line (for `make demo` and debugging; exit code 0 only if every DAG run succeeded)::

    python -m dbsplit.local.airflow_local run --home H --dags-folder D [--conf JSON] [--json] DAG_ID...
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, NoReturn

from dbsplit.local.dagtest.results import (
    AirflowLocalError,
    DagRunResult,
    LocalRunReport,
    format_results,
    read_json,
    results_of,
)
from dbsplit.local.dagtest.settings import airflow_env, child_environment

__all__ = [
    "AirflowLocalError",
    "DagRunResult",
    "LocalRunReport",
    "airflow_env",
    "run_dags",
    "run_local",
]


def run_dags(
    dag_ids: Sequence[str],
    *,
    home: Path,
    dags_folder: Path,
    env: Mapping[str, str] | None = None,
    conf: dict | None = None,
    plugins_folder: Path | None = None,
    timeout_s: float | None = None,
    max_retry_delay_s: float | None = None,
    log_file: Path | None = None,
) -> list[DagRunResult]:
    """Run the DAGs one after another in one local Airflow and return one result per dag_id.

    :param env: extra environment for the child (e.g. ``AIRFLOW_CONN_*``); applied last.
    :param conf: the DagRun conf of every run.
    :param timeout_s: kill the child and raise `AirflowLocalError` after this many seconds.
    :param max_retry_delay_s: cap every task's retry delay (dag.test() sleeps through it).
    :param log_file: append Airflow's output there instead of the parent's stdout/stderr.
    :raises AirflowLocalError: the runner failed; DAG failures are results, not exceptions.
    """
    return run_local(
        dag_ids, home=home, dags_folder=dags_folder, env=env, conf=conf,
        plugins_folder=plugins_folder, timeout_s=timeout_s,
        max_retry_delay_s=max_retry_delay_s, log_file=log_file,
    ).results


def run_local(
    dag_ids: Sequence[str],
    *,
    home: Path,
    dags_folder: Path,
    env: Mapping[str, str] | None = None,
    conf: dict | None = None,
    plugins_folder: Path | None = None,
    timeout_s: float | None = None,
    max_retry_delay_s: float | None = None,
    log_file: Path | None = None,
) -> LocalRunReport:
    """`run_dags`, also returning the timings of the child process."""
    if isinstance(dag_ids, str):
        raise TypeError("dag_ids must be a sequence of dag ids, not one string")
    if not Path(dags_folder).is_dir():
        raise AirflowLocalError(f"dags folder {dags_folder} does not exist")
    home = Path(home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    child_env = child_environment(home, Path(dags_folder), plugins_folder, env)

    with tempfile.TemporaryDirectory(prefix="dbsplit-airflow-") as tmp:
        request = Path(tmp) / "request.json"
        result = Path(tmp) / "result.json"
        request.write_text(json.dumps({
            "dag_ids": list(dag_ids), "conf": conf, "max_retry_delay_s": max_retry_delay_s,
        }))
        cmd = [sys.executable, "-m", "dbsplit.local.airflow_local", "_child",
               "--request", str(request), "--result", str(result)]
        started = time.monotonic()
        try:
            rc = _run_child(cmd, child_env, timeout_s, log_file)
        except subprocess.TimeoutExpired:
            raise AirflowLocalError(
                f"local Airflow run of {list(dag_ids)} did not finish within {timeout_s} s",
                results_of(read_json(result)),
            ) from None
        wall = time.monotonic() - started
        payload = read_json(result) or {}
    return _report(dag_ids, rc, payload, wall, log_file)


def _run_child(cmd: list[str], env: dict[str, str], timeout_s: float | None, log_file: Path | None) -> int:
    """Run the child to its end and return its exit code; raises subprocess.TimeoutExpired."""
    # Whatever the parent has buffered must come out before the child's output.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, ValueError):
            pass
    out = open(log_file, "ab") if log_file else None  # noqa: SIM115 - closed below
    try:
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT if out else None)
        try:
            return proc.wait(timeout=timeout_s)
        except BaseException:  # timeout, Ctrl-C: never leave the child behind
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise
    finally:
        if out:
            out.close()


def _report(dag_ids: Sequence[str], rc: int, payload: dict[str, Any], wall: float,
            log_file: Path | None) -> LocalRunReport:
    """The child's results and timings; raises AirflowLocalError unless it ran every DAG."""
    results = results_of(payload)
    fatal = payload.get("fatal")
    if rc != 0 or fatal or len(results) != len(dag_ids):
        where = f" (output in {log_file})" if log_file else ""
        raise AirflowLocalError(
            f"local Airflow runner exited with code {rc}{where}: "
            f"{fatal or 'no result for ' + ', '.join(list(dag_ids)[len(results):])}",
            results,
        )
    timings = dict(payload.get("timings", {}))
    timings["wall_s"] = round(wall, 3)
    return LocalRunReport(results=results, timings=timings, migrated=bool(payload.get("migrated")))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dbsplit.local.airflow_local")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run DAGs with dag.test() in a local Airflow")
    run.add_argument("dag_ids", nargs="+")
    run.add_argument("--home", type=Path, required=True, help="AIRFLOW_HOME to use (created)")
    run.add_argument("--dags-folder", type=Path, required=True)
    run.add_argument("--plugins-folder", type=Path)
    run.add_argument("--conf", type=json.loads, help="DagRun conf as JSON")
    run.add_argument("--timeout", type=float, help="seconds before the run is killed")
    run.add_argument("--max-retry-delay", type=float, help="cap task retry delays (seconds)")
    run.add_argument("--log-file", type=Path, help="Airflow output there, not on the terminal")
    run.add_argument("--json", action="store_true", help="print the results as JSON at the end")
    child = sub.add_parser("_child", help=argparse.SUPPRESS)
    child.add_argument("--request", type=Path, required=True)
    child.add_argument("--result", type=Path, required=True)
    pump = sub.add_parser("_pump", help=argparse.SUPPRESS)
    pump.add_argument("--since", required=True)
    pump.add_argument("--stop", type=Path, required=True)
    pump.add_argument("--result", type=Path, required=True)
    pump.add_argument("--max-retry-delay", type=float)
    return parser


def _run_process(args: argparse.Namespace) -> NoReturn:
    """The child or the pump process; never returns."""
    if args.command == "_child":
        from dbsplit.local.dagtest.child import run_child

        rc = run_child(args.request, args.result)
    else:
        from dbsplit.local.dagtest.pump import run_pump

        rc = run_pump(args.since, args.stop, args.result, args.max_retry_delay)
    # The results are on disk. A normal interpreter exit then spends ~2 s (measured) tearing
    # down Airflow's modules in C code; skip it. Flush what a normal exit would have flushed.
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(rc)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in ("_child", "_pump"):
        _run_process(args)
    report = run_local(args.dag_ids, home=args.home, dags_folder=args.dags_folder,
                       plugins_folder=args.plugins_folder, conf=args.conf, timeout_s=args.timeout,
                       max_retry_delay_s=args.max_retry_delay, log_file=args.log_file)
    print(format_results(report.results))
    print("timings: " + ", ".join(f"{k}={v:.2f}" for k, v in report.timings.items()))
    if args.json:
        print(json.dumps({"results": [asdict(r) for r in report.results], "timings": report.timings}))
    return 0 if all(r.ok for r in report.results) else 1


if __name__ == "__main__":
    sys.exit(main())
