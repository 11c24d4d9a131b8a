"""A real Airflow for the end-to-end tests: `airflow standalone` with dbsplit's DAGs and plugin.

One `airflow standalone` per test session (fixture `airflow_server`), as `dbsplit airflow` starts
it (include/dbsplit/local/cli.py), but everything in a temporary directory: AIRFLOW_HOME, DBSPLIT_HOME,
the reports dir, and an embedded PostgreSQL holding a small jobboard monolith. The API server
listens on 127.0.0.1 on a free port; the log servers too get free ports (their defaults, 8793 and
8794, listen on all interfaces and would clash with a `make airflow` running beside).

Standalone and its components run in their own process group, which is sent SIGTERM (then SIGKILL)
in a finally, whatever happened. Its output goes to standalone.log under the temporary directory;
a failure to start shows the end of it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dbsplit.local.airflow_local import airflow_env
from dbsplit.local.env import PROJECT_ROOT, connection_env

DAG_ID = "dbsplit_migrate_users"
SAMPLE_ROWS = 5_000  # the whole jobboard monolith; the users service gets a few hundred rows
# Deadlines, not expected durations: every wait polls a condition and returns as soon as it holds.
# They are generous because CI machines are sometimes busy (a load average of 10 on 2 cores).
START_TIMEOUT_S = 600
PARSE_TIMEOUT_S = 600
RUN_TIMEOUT_S = 1200
HTTP_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class AirflowServer:
    """A running `airflow standalone`: its URL, admin credentials and folders."""

    url: str
    home: Path
    reports: Path
    log: Path
    username: str
    password: str
    source_conninfo: str
    _token: str | None = field(default=None, repr=False)

    def token(self) -> str:
        """A JWT for the admin user from POST /auth/token (cached)."""
        if self._token is None:
            import httpx

            r = httpx.post(f"{self.url}/auth/token", json={"username": self.username, "password": self.password},
                           timeout=HTTP_TIMEOUT_S)
            assert r.status_code in (200, 201), f"POST /auth/token: {r.status_code} {r.text}"
            self._token = r.json()["access_token"]
        return self._token

    def api(self, method: str, path: str, *, token: str | None = None, **kwargs: Any) -> Any:
        """An authenticated REST call (httpx.Response)."""
        import httpx

        headers = {"Authorization": f"Bearer {token or self.token()}", **kwargs.pop("headers", {})}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=HTTP_TIMEOUT_S, **kwargs)

    def wait_for_run(self, dag_id: str, run_id: str, timeout_s: float = RUN_TIMEOUT_S) -> str:
        """Poll the DAG run until it ends; returns its final state ("success" or "failed")."""
        from urllib.parse import quote

        deadline = time.monotonic() + timeout_s
        state = "?"
        while time.monotonic() < deadline:
            r = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")
            if r.status_code == 200:
                state = r.json()["state"]
                if state in ("success", "failed"):
                    return state
            time.sleep(2)
        raise AssertionError(f"run {run_id} of {dag_id} still {state} after {timeout_s} s; tasks: "
                             f"{self.task_states(dag_id, run_id)}; log: {self.log}")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        from urllib.parse import quote

        r = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances")
        if r.status_code != 200:
            return {}
        return {f"{t['task_id']}[{t['map_index']}]": t["state"] for t in r.json()["task_instances"]}

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout_s: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"airflow standalone exited with code {proc.returncode}:\n{_tail(log)}")
        try:
            r = httpx.get(f"{url}/api/v2/monitor/health", timeout=HTTP_TIMEOUT_S)
            body = r.json() if r.status_code == 200 else {}
            parts = {k: (v or {}).get("status") for k, v in body.items()}
            last = f"{r.status_code} {parts}"
            if all(parts.get(k) == "healthy" for k in ("metadatabase", "scheduler", "dag_processor")):
                return
        except (httpx.HTTPError, ValueError) as err:
            last = repr(err)
        time.sleep(1)
    raise RuntimeError(f"airflow standalone not healthy after {timeout_s} s ({last}):\n{_tail(log)}")


def _tail(log: Path, lines: int = 60) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_parsed(server: AirflowServer, dag_id: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.api("GET", f"/api/v2/dags/{dag_id}").status_code == 200:
            return
        time.sleep(1)
    errors = server.api("GET", "/api/v2/importErrors").text
    raise RuntimeError(f"DAG {dag_id} not parsed after {timeout_s} s; import errors: {errors}\n{server.log_tail()}")


def _plan_variables(plan: Any) -> dict[str, str]:
    """AIRFLOW_VAR_* the plan needs locally, as `dbsplit airflow` sets them (dbsplit.local.demo)."""
    try:
        from dbsplit.local.demo import demo_variables
    except ImportError:  # a dbsplit whose plans need no variable
        return {}
    return demo_variables(plan)


def stop_process_group(proc: subprocess.Popen, timeout_s: float = 20) -> None:
    """SIGTERM to the process group of proc (standalone and its components), SIGKILL if it lingers."""
    if proc.poll() is None or _group_alive(proc.pid):
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _group_alive(proc.pid):
            proc.poll()
            time.sleep(0.3)
        if _group_alive(proc.pid):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session")
def airflow_server() -> Iterator[AirflowServer]:
    """`airflow standalone` serving the jobboard plan's DAGs and the reports plugin (see module doc)."""
    airflow = Path(sys.executable).with_name("airflow")
    if not airflow.exists():
        pytest.skip(f"no airflow executable beside {sys.executable}")
    from dbsplit.local import embedded
    from dbsplit.airflow.dagfactory import DEFAULT_PLAN
    from dbsplit.local.demo import prepare_source
    from dbsplit.local.env import connection_conninfos
    from dbsplit.plan import load_plan

    # Not under pytest's basetemp (pytest prunes old basetemps; the server's data must outlive them).
    root = Path(tempfile.mkdtemp(prefix="dbsplit-e2e-"))
    pgdata = root / "pg" / "data"
    home, reports, log = root / "airflow", root / "reports", root / "standalone.log"
    proc: subprocess.Popen | None = None
    try:
        server_url = embedded.start(pgdata)
        plan = load_plan(DEFAULT_PLAN)
        prepare_source(plan, server_url, rows=SAMPLE_ROWS)
        port = free_port()
        env = {k: v for k, v in os.environ.items()
               if not (k.startswith(("AIRFLOW__", "_AIRFLOW", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))
                       or k in ("AIRFLOW_HOME", "AIRFLOW_CONFIG"))}
        env |= airflow_env(home, PROJECT_ROOT / "dags", PROJECT_ROOT / "plugins")
        env |= connection_env(plan, server_url) | _plan_variables(plan) | {
            "DBSPLIT_PLANS": str(DEFAULT_PLAN),
            "DBSPLIT_HOME": str(root / "dbsplit"),
            "DBSPLIT_REPORTS_DIR": str(reports),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            # also where task processes find the Execution API ({base_url}/execution/; default :8080)
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}/",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "2",
            "NO_COLOR": "1",
            # standalone starts its components as `airflow ...` from PATH: this venv's first
            "PATH": os.pathsep.join([str(airflow.parent), os.environ.get("PATH", "")]),
        }
        env.pop("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", None)  # authentication is under test
        home.mkdir(parents=True)
        with open(log, "wb") as out:
            proc = subprocess.Popen([str(airflow), "standalone"], env=env, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                    cwd=root)
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, proc, log, START_TIMEOUT_S)
        passwords = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())
        server = AirflowServer(url=url, home=home, reports=reports, log=log, username="admin",
                               password=passwords["admin"],
                               source_conninfo=connection_conninfos(plan, server_url)[plan.source.conn_id])
        _wait_parsed(server, DAG_ID, PARSE_TIMEOUT_S)
        yield server
    finally:
        if proc is not None:
            stop_process_group(proc)
        try:
            embedded.stop(pgdata)
        except Exception as err:  # noqa: BLE001 - cleanup must not hide the test's outcome
            print(f"could not stop the embedded PostgreSQL in {pgdata}: {err!r}", file=sys.stderr)
        if os.environ.get("DBSPLIT_E2E_KEEP"):
            print(f"e2e files kept in {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
