"""The environment of the child process: a quiet, offline, single-machine Airflow rooted at a home.

Airflow 3.3 writes no airflow.cfg under the home: everything comes from these variables.
[database] load_default_connections no longer exists in Airflow 3 (listed as removed in
airflow/cli/commands/config_command.py); `db migrate` creates no default connections.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import dbsplit

# One small machine (2 cores), no examples, no network lookups, lazy start.
SINGLE_MACHINE = {
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
}

# Patience for a cold, busy machine.
TIMEOUTS = {
    # A DAG file that imports heavy libraries (pandas, great_expectations) on a cold, small
    # machine can exceed the default 30 s parse timeout.
    "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
    "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": "300",
    # A task's calls to the Execution API time out after 5 s by default: on a busy 2-core machine
    # (a load average of 10) the API server answers later than that and the task fails.
    "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "120",
}

LOGGING = {
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
}

# No remote log storage, no error reporting, metrics or traces sent anywhere.
OFFLINE = {
    "AIRFLOW__LOGGING__REMOTE_LOGGING": "False",
    "AIRFLOW__SENTRY__SENTRY_ON": "False",
    "AIRFLOW__METRICS__STATSD_ON": "False",
    "AIRFLOW__TRACES__OTEL_ON": "False",
}

# Providers and plugins are loaded only when something needs them (faster start).
LAZY_LOADING = {
    "AIRFLOW__CORE__LAZY_DISCOVER_PROVIDERS": "True",
    "AIRFLOW__CORE__LAZY_LOAD_PLUGINS": "True",
}


def locations(home: Path, dags_folder: Path, plugins_folder: Path | None = None) -> dict[str, str]:
    """Where this Airflow keeps its state and finds its DAGs and plugins (absolute paths)."""
    home = Path(home).resolve()
    return {
        # Root of this Airflow: our SQLite file, logs/ (stays empty under dag.test(), see
        # DagRunResult.failed_tasks) and the API server's files if one is ever started here.
        "AIRFLOW_HOME": str(home),
        # Metadata database: one SQLite file under home (four slashes = absolute path).
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        # The folder scanned for DAG files; the default "dags-folder" bundle points at it.
        "AIRFLOW__CORE__DAGS_FOLDER": str(Path(dags_folder).resolve()),
        # Plugins live elsewhere than $AIRFLOW_HOME/plugins (or nowhere, see below).
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(Path(plugins_folder).resolve() if plugins_folder
                                             else home / "plugins"),
    }


def airflow_env(home: Path, dags_folder: Path, plugins_folder: Path | None = None) -> dict[str, str]:
    """Environment variables of a quiet, offline, single-machine Airflow rooted at ``home``."""
    return {**locations(home, dags_folder, plugins_folder), **SINGLE_MACHINE, **TIMEOUTS, **LOGGING,
            **OFFLINE, **LAZY_LOADING}


def child_environment(home: Path, dags_folder: Path, plugins_folder: Path | None,
                      extra: Mapping[str, str] | None) -> dict[str, str]:
    """The parent's environment without its Airflow configuration, plus ours, plus ``extra``."""
    # Drop the parent's Airflow configuration (another AIRFLOW_HOME, airflow.cfg, executor...):
    # the child must see only ours. AIRFLOW_CONN_*/AIRFLOW_VAR_* are kept; `extra` wins over all.
    base = {k: v for k, v in os.environ.items()
            if not (k.startswith(("AIRFLOW__", "_AIRFLOW")) or k in ("AIRFLOW_HOME", "AIRFLOW_CONFIG"))}
    base.update(airflow_env(home, dags_folder, plugins_folder))
    # The child imports dbsplit by name: make sure it finds the same dbsplit as the parent.
    pkg_root = str(Path(dbsplit.__file__).resolve().parents[1])
    base["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_root, base.get("PYTHONPATH")) if p)
    base["PYTHONUNBUFFERED"] = "1"  # task logs reach the terminal as they are written
    base.update(extra or {})
    return base
