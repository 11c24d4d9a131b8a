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

This module must not import airflow at module level: the parent process usually has no Airflow
configuration, and importing airflow there would configure it wrongly for the rest of its life.

Command line (for `make demo` and debugging; exit code 0 only if every DAG run succeeded)::

    python -m dbsplit.local.airflow_local run --home H --dags-folder D [--conf JSON] [--json] DAG_ID...
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from dbsplit.errors import DbsplitError

__all__ = [
    "AirflowLocalError",
    "DagRunResult",
    "LocalRunReport",
    "airflow_env",
    "run_dags",
    "run_local",
]

# Marker written next to the SQLite file once the schema exists; holds the Airflow version.
_MIGRATED_MARKER = ".dbsplit-db-migrated"
_LOCK_FILE = ".dbsplit-airflow.lock"
# How many log lines of a failed task to keep when its exception object is not available.
_LOG_TAIL_LINES = 20
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class AirflowLocalError(DbsplitError):
    """The local Airflow runner itself failed (not a DAG): bad setup, crash, timeout."""

    def __init__(self, message: str, results: list[DagRunResult] | None = None) -> None:
        super().__init__(message)
        self.results = results or []  # the DAG runs that completed before the failure


@dataclass
class DagRunResult:
    """The outcome of one ``dag.test()`` run."""

    dag_id: str
    # "success" or "failed" (the DagRun's final state), or "error" when the DAG could not be run
    # at all (unknown dag_id, import error in the dags folder, exception out of dag.test()).
    state: str
    # task_id (``task_id[map_index]`` for a mapped task instance) -> "ExcType: message (file:line)",
    # or the last log lines of the task when Airflow did not hand over an exception.
    failed_tasks: dict[str, str] = field(default_factory=dict)
    duration_s: float = 0.0
    run_id: str | None = None
    error: str | None = None  # why state == "error"
    # Every task instance of the run -> its final state (success, failed, upstream_failed, ...).
    task_states: dict[str, str] = field(default_factory=dict)
    # The runs this run's tasks triggered and waited for (run by the pump), in the order they ran.
    triggered: list[DagRunResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.state == "success"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DagRunResult:
        return cls(**{**d, "triggered": [cls.from_dict(t) for t in d.get("triggered", [])]})


@dataclass
class LocalRunReport:
    """Everything one child run produced: the DAG results and where its time went."""

    results: list[DagRunResult]
    # import_airflow_s, migrate_s (0.0 when the database was reused), parse_s, api_warmup_s
    # (one-off start of the in-process Execution API), total_s (child wall time), wall_s (seen
    # from the parent, process start and exit included).
    timings: dict[str, float]
    migrated: bool  # whether this run had to create/upgrade the metadata database


def airflow_env(home: Path, dags_folder: Path, plugins_folder: Path | None = None) -> dict[str, str]:
    """Environment variables of a quiet, offline, single-machine Airflow rooted at ``home``."""
    home = Path(home).resolve()
    dags_folder = Path(dags_folder).resolve()
    env = {
        # Root of this Airflow: our SQLite file, logs/ (stays empty under dag.test(), see
        # DagRunResult.failed_tasks) and the API server's files if one is ever started here.
        # Airflow 3.3 writes no airflow.cfg there: everything comes from these variables.
        "AIRFLOW_HOME": str(home),
        # Metadata database: one SQLite file under home (four slashes = absolute path).
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        # The folder scanned for DAG files; the default "dags-folder" bundle points at it.
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        # Plugins live elsewhere than $AIRFLOW_HOME/plugins (or nowhere, see below).
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(Path(plugins_folder).resolve() if plugins_folder
                                             else home / "plugins"),
        # Do not parse/serialize the ~60 bundled example DAGs.
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # dag.test() runs tasks in-process and never uses an executor; LocalExecutor is the default
        # anyway and is what `airflow standalone` would use on the same home.
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # Small machine (2 cores): never more than 2 task processes if an executor is ever used.
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "2",
        # Built-in auth manager (no FAB): only matters if an API server is started on this home.
        "AIRFLOW__CORE__AUTH_MANAGER":
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        # The default (airflow.utils.net.getfqdn) does a resolver lookup of the host name, which
        # can hang for seconds on a machine without DNS; the plain host name needs no network.
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "socket.gethostname",
        # A DAG file that imports heavy libraries (pandas, great_expectations) on a cold, small
        # machine can exceed the default 30 s parse timeout.
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": "300",
        # A task's calls to the Execution API time out after 5 s by default: on a busy 2-core machine
        # (a load average of 10) the API server answers later than that and the task fails.
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "120",
        # INFO keeps the task logs ("[DAG TEST] starting task ...", task output, tracebacks).
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        # Quieter (names are dotted prefixes, matched per component):
        # - airflow.api_fastapi: the in-process Execution API logs every TI state change;
        # - airflow.dag_processing, airflow.serialization, airflow.models.dag: bundle sync and
        #   "next dagrun info" lines, repeated by every dag.test() call (import errors still show:
        #   they are logged at ERROR);
        # - airflow.sdk.api.client: logs "[error] XCom not found ... offset=N" each time a task
        #   iterates the results of a mapped task (the lazy sequence probes one past its end).
        #   Real client failures still fail the task with an exception, which we report.
        "AIRFLOW__LOGGING__NAMESPACE_LEVELS": (
            "airflow.api_fastapi=WARNING airflow.dag_processing=WARNING "
            "airflow.serialization=WARNING airflow.models.dag=WARNING "
            "airflow.sdk.api.client=CRITICAL alembic=WARNING sqlalchemy=WARNING httpx=WARNING"
        ),
        # No remote log storage, no error reporting, metrics or traces sent anywhere.
        "AIRFLOW__LOGGING__REMOTE_LOGGING": "False",
        "AIRFLOW__SENTRY__SENTRY_ON": "False",
        "AIRFLOW__METRICS__STATSD_ON": "False",
        "AIRFLOW__TRACES__OTEL_ON": "False",
        # Providers and plugins are loaded only when something needs them (faster start).
        "AIRFLOW__CORE__LAZY_DISCOVER_PROVIDERS": "True",
        "AIRFLOW__CORE__LAZY_LOAD_PLUGINS": "True",
        # [database] load_default_connections no longer exists in Airflow 3 (listed as removed in
        # airflow/cli/commands/config_command.py); `db migrate` creates no default connections.
    }
    return env


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
    child_env = _child_environment(home, Path(dags_folder), plugins_folder, env)

    with tempfile.TemporaryDirectory(prefix="dbsplit-airflow-") as tmp:
        request = Path(tmp) / "request.json"
        result = Path(tmp) / "result.json"
        request.write_text(json.dumps({
            "dag_ids": list(dag_ids), "conf": conf, "max_retry_delay_s": max_retry_delay_s,
        }))
        cmd = [sys.executable, "-m", "dbsplit.local.airflow_local", "_child",
               "--request", str(request), "--result", str(result)]
        # Whatever the parent has buffered must come out before the child's output.
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (AttributeError, ValueError):
                pass
        out = open(log_file, "ab") if log_file else None  # noqa: SIM115 - closed below
        started = time.monotonic()
        try:
            proc = subprocess.Popen(cmd, env=child_env, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT if out else None)
            try:
                rc = proc.wait(timeout=timeout_s)
            except BaseException:  # timeout, Ctrl-C: never leave the child behind
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                raise
        except subprocess.TimeoutExpired:
            payload = _read_json(result)
            raise AirflowLocalError(
                f"local Airflow run of {list(dag_ids)} did not finish within {timeout_s} s",
                _results(payload),
            ) from None
        finally:
            if out:
                out.close()
        wall = time.monotonic() - started
        payload = _read_json(result)

    results = _results(payload)
    fatal = (payload or {}).get("fatal")
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


def _child_environment(home: Path, dags_folder: Path, plugins_folder: Path | None,
                       extra: Mapping[str, str] | None) -> dict[str, str]:
    # Drop the parent's Airflow configuration (another AIRFLOW_HOME, airflow.cfg, executor...):
    # the child must see only ours. AIRFLOW_CONN_*/AIRFLOW_VAR_* are kept; `extra` wins over all.
    base = {k: v for k, v in os.environ.items()
            if not (k.startswith(("AIRFLOW__", "_AIRFLOW")) or k in ("AIRFLOW_HOME", "AIRFLOW_CONFIG"))}
    base.update(airflow_env(home, dags_folder, plugins_folder))
    # The child imports this module by name: make sure it finds the same dbsplit as the parent.
    pkg_root = str(Path(__file__).resolve().parents[2])
    base["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_root, base.get("PYTHONPATH")) if p)
    base["PYTHONUNBUFFERED"] = "1"  # task logs reach the terminal as they are written
    base.update(extra or {})
    return base


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _results(payload: dict | None) -> list[DagRunResult]:
    return [DagRunResult.from_dict(r) for r in (payload or {}).get("results", [])]


# --------------------------------------------------------------------------------------------
# Child side: everything below runs inside the process that imports airflow.
# --------------------------------------------------------------------------------------------


class _TeeStdout:
    """Stand-in for sys.stdout that forwards everything and keeps the lines of the running task.

    Installed before airflow is imported, so Airflow's log handlers (which bind sys.stdout when
    logging is configured) write through it; task code print()s go through it too.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lines: deque[str] | None = None
        self._partial = ""

    def start(self) -> None:
        self._lines, self._partial = deque(maxlen=_LOG_TAIL_LINES * 5), ""

    def stop(self) -> list[str]:
        lines = list(self._lines or ())
        if self._partial:
            lines.append(self._partial)
        self._lines, self._partial = None, ""
        return lines

    def write(self, s: str) -> int:
        n = self._stream.write(s)
        if self._lines is not None and s:
            *full, self._partial = (self._partial + s).split("\n")
            self._lines.extend(full)
        return n if n is not None else len(s)

    def __getattr__(self, name: str) -> Any:  # flush, fileno, isatty, encoding, buffer...
        return getattr(self._stream, name)


_LIBRARY_DIRS = tuple({os.path.dirname(os.__file__), *(p for p in sys.path if p.endswith("-packages"))})


def _describe_exception(err: BaseException) -> str:
    """"ExcType: message (at file:line in function)", the place being the innermost frame of
    project code (DAG file, dbsplit) rather than of the library that raised, when there is one."""
    text = "".join(traceback.format_exception_only(type(err), err)).strip()
    frames = traceback.extract_tb(err.__traceback__)
    ours = [f for f in frames if not f.filename.startswith(_LIBRARY_DIRS) and not f.filename.startswith("<")]
    where = (ours or frames)[-1:]
    if where:
        place = f"at {Path(where[0].filename).name}:{where[0].lineno} in {where[0].name}"
        text += f"\n({place})" if "\n" in text else f" ({place})"
    return text


def _log_tail(lines: list[str]) -> str:
    clean = [_ANSI.sub("", ln).rstrip() for ln in lines]
    clean = [ln for ln in clean if ln.strip() and "::group::" not in ln and "::endgroup::" not in ln]
    return "\n".join(clean[-_LOG_TAIL_LINES:])


class _TaskErrors:
    """Captures, per task try, the exception that dag.test() would otherwise throw away.

    dag.test() runs each task through supervisor.run_task_in_process(), whose TaskRunResult
    carries the exception (`error`), then drops that result (airflow/sdk/definitions/dag.py,
    _run_task). Nothing reaches $AIRFLOW_HOME/logs in this mode, and the database keeps only the
    state. So we wrap run_task_in_process (looked up at call time in _run_task) and remember the
    exception, or the task's last log lines when there is none (e.g. a templating error).
    """

    def __init__(self, tee: _TeeStdout) -> None:
        self.tee = tee
        self.by_ti: dict[tuple[str, str, str, int], str] = {}

    def install(self) -> None:
        from airflow.sdk.execution_time import supervisor

        original = supervisor.run_task_in_process

        def run_task_in_process(ti, task, *args, **kwargs):
            key = (ti.dag_id, ti.run_id, ti.task_id, ti.map_index)
            self.tee.start()
            try:
                result = original(ti, task, *args, **kwargs)
            except BaseException as err:
                self.by_ti[key] = _describe_exception(err)
                self.tee.stop()
                raise
            lines = self.tee.stop()
            if result.error is not None:
                self.by_ti[key] = _describe_exception(result.error)
            elif str(getattr(result.state, "value", result.state)) in ("failed", "up_for_retry"):
                self.by_ti[key] = _log_tail(lines) or "task failed without an exception or log"
            else:
                self.by_ti.pop(key, None)  # a later successful try clears an earlier failure
            return result

        supervisor.run_task_in_process = run_task_in_process


def _cap_retry_delays(dag: Any, cap_s: float) -> None:
    from datetime import timedelta

    cap = timedelta(seconds=cap_s)
    for task in dag.task_dict.values():
        if task.retries and task.retry_delay > cap:
            task.retry_delay = cap
        if task.retries:
            task.max_retry_delay = min(task.max_retry_delay or cap, cap)


def _ensure_db(home: Path) -> tuple[bool, float]:
    """Create/upgrade the metadata DB unless our marker says this Airflow version did it."""
    import airflow
    from airflow.utils import db

    marker = home / _MIGRATED_MARKER
    db_file = home / "airflow.db"
    stamp = f"apache-airflow {airflow.__version__}\n"
    if db_file.exists() and marker.exists() and marker.read_text() == stamp:
        return False, 0.0
    started = time.monotonic()
    db.upgradedb()  # == `airflow db migrate`: a new DB is created from the ORM (fast path)
    took = time.monotonic() - started
    marker.write_text(stamp)
    return True, took


def _parse_and_sync(sync: bool = True) -> tuple[dict[str, Any], dict[str, str]]:
    """Parse every configured bundle once and (unless sync is False) write its DAGs to the metadata DB."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db

    manager = DagBundlesManager()
    if sync:
        manager.sync_bundles_to_db()
    dags: dict[str, Any] = {}
    import_errors: dict[str, str] = {}
    for bundle in manager.get_all_dag_bundles():
        if not bundle.is_initialized:
            bundle.initialize()
        bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
        if sync:
            sync_bag_to_db(bag, bundle.name, bundle.version)
            _unpause([i for i, d in bag.dags.items() if getattr(d, "is_paused_upon_creation", None) is not True])
        dags.update(bag.dags)
        import_errors.update({f"{bundle.name}:{path}": err for path, err in bag.import_errors.items()})
    return dags, import_errors


def _unpause(dag_ids: list[str]) -> None:
    """Local runs are explicit: their DAGs are unpaused, as the orchestrator's trigger tasks require of the
    service DAGs (a DAG declared is_paused_upon_creation=True stays as it is)."""
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    with create_session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id.in_(dag_ids)).values(is_paused=False))


def _warm_up_execution_api() -> None:
    """Pay the one-off start-up of the in-process Execution API before the first DAG.

    dag.test() talks to tasks through an in-process Execution API (FastAPI + Cadwyn). Cadwyn
    builds its versioned routers on the first request (cadwyn/applications.py, __call__ ->
    _cadwyn_initialize): ~4 s measured on 2 cores, which would otherwise be charged to the first
    DAG's duration_s. A GET /health triggers it. Best effort: a failure here changes nothing.
    """
    try:
        from airflow.sdk.execution_time.supervisor import InProcessTestSupervisor

        InProcessTestSupervisor._api_client().get("health")
    except Exception as err:  # noqa: BLE001 - purely an optimisation of the timings
        print(f"dbsplit: Execution API warm-up skipped: {err!r}", file=sys.stderr)


def _run_one(dag: Any, conf: dict | None, errors: _TaskErrors, logical_date: Any = None) -> DagRunResult:
    """dag.test() one run; with logical_date, (re)create the run of that date (run id manual__<date>)."""
    started = time.monotonic()
    when = {"logical_date": logical_date, "run_after": logical_date} if logical_date is not None else {}
    dr = dag.test(run_conf=conf, **when)
    duration = time.monotonic() - started
    failed: dict[str, str] = {}
    states: dict[str, str] = {}
    for ti in sorted(dr.get_task_instances(), key=lambda t: (t.task_id, t.map_index)):
        name = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        state = str(getattr(ti.state, "value", ti.state))
        states[name] = state
        if state == "failed":
            failed[name] = errors.by_ti.get(
                (ti.dag_id, ti.run_id, ti.task_id, ti.map_index),
                "failed without running (no exception captured)",
            )
    return DagRunResult(
        dag_id=dag.dag_id, state=str(getattr(dr.state, "value", dr.state)), failed_tasks=failed,
        duration_s=round(duration, 3), run_id=dr.run_id, task_states=states,
    )



# --------------------------------------------------------------------------------------------
# The pump: runs the DagRuns that a parent's TriggerDagRunOperator tasks queue.
# --------------------------------------------------------------------------------------------

_PUMP_POLL_S = 0.5
_PUMP_STOP_WAIT_S = 60.0


def _waits_for_triggered_runs(dag: Any) -> bool:
    """Whether a task of the DAG triggers another DAG and waits for its run."""
    try:
        from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
    except ImportError:
        return False
    return any(isinstance(t, TriggerDagRunOperator) and t.wait_for_completion for t in dag.task_dict.values())


def _die_with_parent() -> None:
    """preexec_fn: the kernel SIGKILLs the pump when the child that started it dies (Linux)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class _Pump:
    """The pump process of one parent run, seen from the child that runs the parent."""

    def __init__(self, max_retry_delay_s: float | None) -> None:
        from datetime import datetime, timezone

        self._dir = Path(tempfile.mkdtemp(prefix="dbsplit-pump-"))
        self._stop, self._result = self._dir / "stop", self._dir / "result.json"
        since = datetime.now(timezone.utc).isoformat()  # runs queued earlier are stale: not ours
        cmd = [sys.executable, "-m", "dbsplit.local.airflow_local", "_pump", "--since", since,
               "--stop", str(self._stop), "--result", str(self._result)]
        if max_retry_delay_s is not None:
            cmd += ["--max-retry-delay", str(max_retry_delay_s)]
        sys.stdout.flush()
        self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)  # noqa: PLW1509

    def stop(self) -> list[DagRunResult]:
        """Ask the pump to stop once idle (SIGKILL after a while) and return the runs it ran."""
        self._stop.touch()
        try:
            self._proc.wait(timeout=_PUMP_STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        results = _results(_read_json(self._result))
        if self._proc.returncode != 0:
            results.append(DagRunResult(dag_id="(pump)", state="error", error=f"pump exited with code "
                                        f"{self._proc.returncode}; its output is above"))
        import shutil

        shutil.rmtree(self._dir, ignore_errors=True)
        return results


def _queued_runs(since: Any, seen: set[tuple[str, str]]) -> list[tuple[str, str, Any, dict | None]]:
    """(dag_id, run_id, logical_date, conf) of the runs an operator queued since `since`, oldest first."""
    from sqlalchemy import select

    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType

    with create_session() as session:
        rows = session.execute(
            select(DagRun.dag_id, DagRun.run_id, DagRun.logical_date, DagRun.conf)
            .where(DagRun.state == DagRunState.QUEUED, DagRun.triggered_by == DagRunTriggeredByType.OPERATOR,
                   DagRun.queued_at >= since)
            .order_by(DagRun.queued_at)
        ).all()
    return [(d, r, ld, dict(c) if c else None) for d, r, ld, c in rows if (d, r) not in seen]


def _pump_one(dags: dict[str, Any], run: tuple[str, str, Any, dict | None], errors: _TaskErrors,
              max_retry_delay_s: float | None) -> DagRunResult:
    dag_id, run_id, logical_date, conf = run
    print(f"==> dbsplit pump: dag.test({dag_id}) for {run_id}", flush=True)
    dag = dags.get(dag_id)
    if dag is None:
        return DagRunResult(dag_id=dag_id, state="error", run_id=run_id, error=f"DAG {dag_id!r} not found")
    if max_retry_delay_s is not None:
        _cap_retry_delays(dag, max_retry_delay_s)
    try:
        result = _run_one(dag, conf, errors, logical_date=logical_date)
    except Exception as err:
        traceback.print_exc()
        result = DagRunResult(dag_id=dag_id, state="error", run_id=run_id, error=_describe_exception(err))
    print(f"==> dbsplit pump: {dag_id}: {result.state} in {result.duration_s:.1f} s", flush=True)
    return result


def _pump(since: str, stop: Path, result_path: Path, max_retry_delay_s: float | None) -> int:
    """The pump process: run each queued triggered run until the stop file appears while idle."""
    from datetime import datetime

    tee = _TeeStdout(sys.stdout)
    sys.stdout = tee
    parent = os.getppid()
    results: list[dict[str, Any]] = []
    try:
        import airflow  # noqa: F401

        dags, _ = _parse_and_sync(sync=False)  # the child synced them; dag.test() re-syncs anyway
        _warm_up_execution_api()
        errors = _TaskErrors(tee)
        errors.install()
        seen: set[tuple[str, str]] = set()
        while True:
            runs = _queued_runs(datetime.fromisoformat(since), seen)
            for run in runs:
                seen.add(run[:2])
                results.append(asdict(_pump_one(dags, run, errors, max_retry_delay_s)))
                _write_json(result_path, {"results": results})
            if not runs:
                if stop.exists() or os.getppid() != parent:
                    return 0
                time.sleep(_PUMP_POLL_S)
    except BaseException:
        traceback.print_exc()
        return 1
    finally:
        _write_json(result_path, {"results": results})
        tee.flush()


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload))
    tmp.replace(path)


def _run_parent(dag: Any, request: dict[str, Any], errors: _TaskErrors, pump: _Pump | None = None) -> DagRunResult:
    """dag.test() one requested DAG, with a pump while it runs if it waits for runs it triggers (the
    one given, started earlier, or a new one)."""
    retry_cap = request.get("max_retry_delay_s")
    if retry_cap is not None:
        _cap_retry_delays(dag, float(retry_cap))
    if pump is None and _waits_for_triggered_runs(dag):
        pump = _Pump(retry_cap)
    try:
        result = _run_one(dag, request.get("conf"), errors)
    except Exception as err:  # dag.test() itself blew up (bad conf, DB, ...)
        traceback.print_exc()
        result = DagRunResult(dag_id=dag.dag_id, state="error", error=_describe_exception(err))
    finally:
        triggered = pump.stop() if pump else []
    result.triggered = triggered
    return result


def _child(request_path: Path, result_path: Path) -> int:
    t0 = time.monotonic()
    tee = _TeeStdout(sys.stdout)
    sys.stdout = tee  # before airflow configures logging, see _TeeStdout
    request = json.loads(request_path.read_text())
    payload: dict[str, Any] = {"results": [], "timings": {}, "migrated": False}
    early: dict[str, _Pump] = {}   # dag id -> the pump started for it before its run

    def save() -> None:
        payload["timings"]["total_s"] = round(time.monotonic() - t0, 3)
        _write_json(result_path, payload)

    try:
        import fcntl

        home = Path(os.environ["AIRFLOW_HOME"])
        lock = open(home / _LOCK_FILE, "w")  # noqa: SIM115 - held for the life of the process
        fcntl.flock(lock, fcntl.LOCK_EX)  # one runner per home: SQLite has a single writer

        import airflow  # noqa: F401 - configures settings, logging and the ORM

        payload["timings"]["import_airflow_s"] = round(time.monotonic() - t0, 3)
        migrated, migrate_s = _ensure_db(home)
        payload["migrated"], payload["timings"]["migrate_s"] = migrated, round(migrate_s, 3)

        started = time.monotonic()
        dags, import_errors = _parse_and_sync()
        payload["timings"]["parse_s"] = round(time.monotonic() - started, 3)

        # the first DAG that waits for the runs it triggers gets its pump now: the pump's start-up
        # (import, parse, Execution API warm-up: 10 s and more) runs beside this process's warm-up
        # and the DAG's first tasks instead of delaying its first triggered run
        waiting = [d for d in request["dag_ids"] if d in dags and _waits_for_triggered_runs(dags[d])]
        if waiting:
            early[waiting[0]] = _Pump(request.get("max_retry_delay_s"))

        started = time.monotonic()
        _warm_up_execution_api()
        payload["timings"]["api_warmup_s"] = round(time.monotonic() - started, 3)

        errors = _TaskErrors(tee)
        errors.install()
        total = len(request["dag_ids"])
        for number, dag_id in enumerate(request["dag_ids"], 1):
            print(f"==> dbsplit: dag.test({dag_id}) [{number}/{total}]", flush=True)
            dag = dags.get(dag_id)
            if dag is None:
                why = f"DAG {dag_id!r} not found in {os.environ['AIRFLOW__CORE__DAGS_FOLDER']}"
                if import_errors:
                    why += "; import errors:\n" + "\n".join(
                        f"{path}: {err.strip()}" for path, err in import_errors.items())
                result = DagRunResult(dag_id=dag_id, state="error", error=why)
            else:
                result = _run_parent(dag, request, errors, early.pop(dag_id, None))
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


def _format_results(results: Sequence[DagRunResult], indent: str = "") -> str:
    lines = []
    for r in results:
        lines.append(f"{indent}{r.dag_id}: {r.state} in {r.duration_s:.1f} s" + (f" ({r.run_id})" if r.run_id else ""))
        if r.error:
            lines.append(f"{indent}  error: {r.error}")
        for task, msg in r.failed_tasks.items():
            first, *rest = msg.splitlines() or [""]
            lines.append(f"{indent}  {task}: {first}")
            lines.extend(f"{indent}    {ln}" for ln in rest)
        if r.triggered:
            lines.append(f"{indent}  triggered runs:")
            lines.append(_format_results(r.triggered, indent + "    "))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
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
    args = parser.parse_args(argv)

    if args.command in ("_child", "_pump"):
        rc = (_child(args.request, args.result) if args.command == "_child"
              else _pump(args.since, args.stop, args.result, args.max_retry_delay))
        # The results are on disk. A normal interpreter exit then spends ~2 s (measured) tearing
        # down Airflow's modules in C code; skip it. Flush what a normal exit would have flushed.
        import logging

        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(rc)
    report = run_local(args.dag_ids, home=args.home, dags_folder=args.dags_folder,
                       plugins_folder=args.plugins_folder, conf=args.conf, timeout_s=args.timeout,
                       max_retry_delay_s=args.max_retry_delay, log_file=args.log_file)
    print(_format_results(report.results))
    print("timings: " + ", ".join(f"{k}={v:.2f}" for k, v in report.timings.items()))
    if args.json:
        print(json.dumps({"results": [asdict(r) for r in report.results], "timings": report.timings}))
    return 0 if all(r.ok for r in report.results) else 1


if __name__ == "__main__":
    sys.exit(main())
