"""dbsplit.local.airflow_local: run DAGs with dag.test() in a child process on a SQLite metadata DB.

One child run, shared by the module, runs every toy DAG (tests/dags/toy_dags/toy_dags.py); a second
run on the same home checks that the database is reused and that `env` is what reaches the tasks.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dbsplit.local.airflow_local import LocalRunReport, airflow_env, run_local
from dbsplit.local.dagtest.settings import child_environment as _child_environment

TOY_DAGS = Path(__file__).parent / "toy_dags"
TOY_HOST = "toy.example.invalid"
# Generous: a regression that makes dag.test() wait for a retry (default delay 300 s) or hang must
# fail the test run instead of blocking it.
TIMEOUT_S = 1200  # a deadline for a busy CI machine, not an expected duration


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("airflow_home")


@pytest.fixture(scope="module")
def report(home: Path) -> LocalRunReport:
    return run_local(
        ["toy_ok", "toy_fail", "toy_conn", "toy_ok", "no_such_dag"],
        home=home,
        dags_folder=TOY_DAGS,
        env={"AIRFLOW_CONN_TOY": f"postgresql://someone@{TOY_HOST}:5432/toydb"},
        timeout_s=TIMEOUT_S,
        log_file=home / "run1.log",
    )


def test_results_come_back_in_the_order_asked(report: LocalRunReport) -> None:
    assert [r.dag_id for r in report.results] == ["toy_ok", "toy_fail", "toy_conn", "toy_ok", "no_such_dag"]


def test_success_with_mapped_task_and_task_group(report: LocalRunReport) -> None:
    ok = report.results[0]
    assert ok.state == "success", ok
    assert ok.failed_tasks == {}
    assert ok.task_states == {
        "items": "success",
        "double[0]": "success",
        "double[1]": "success",
        "double[2]": "success",
        "grp.first": "success",
        "grp.second": "success",
        "total": "success",  # asserts inside that the three mapped results summed to 12
    }
    assert ok.run_id


def test_failed_task_carries_its_exception_message(report: LocalRunReport) -> None:
    failed = report.results[1]
    assert failed.state == "failed"
    assert set(failed.failed_tasks) == {"boom", "hard_fail"}
    assert "ValueError: kaboom-distinctive-42" in failed.failed_tasks["boom"]
    assert "toy_dags.py" in failed.failed_tasks["boom"]  # where it was raised
    # Downstream of a failure: not run, not counted as failed.
    assert failed.task_states["after_boom"] == "upstream_failed"


def test_airflow_fail_exception_fails_without_retry(report: LocalRunReport) -> None:
    # hard_fail has retries=3 with the default 300 s delay: a retry would have blown the timeout.
    failed = report.results[1]
    assert failed.task_states["hard_fail"] == "failed"
    assert "AirflowFailException: no retries for this one" in failed.failed_tasks["hard_fail"]


def test_connection_from_env_reaches_the_task(report: LocalRunReport) -> None:
    conn = report.results[2]
    assert conn.state == "success", conn.failed_tasks


def test_same_dag_runs_twice(report: LocalRunReport) -> None:
    first, second = report.results[0], report.results[3]
    assert second.state == "success", second
    assert first.run_id and second.run_id and first.run_id != second.run_id


def test_unknown_dag_is_an_error_result(report: LocalRunReport) -> None:
    missing = report.results[4]
    assert missing.state == "error"
    assert "no_such_dag" in missing.error and "not found" in missing.error


def test_first_run_migrated_the_database(report: LocalRunReport, home: Path) -> None:
    assert report.migrated
    assert report.timings["migrate_s"] > 0
    assert (home / "airflow.db").exists()


def test_task_logs_go_to_the_output_not_the_results(report: LocalRunReport, home: Path) -> None:
    log = (home / "run1.log").read_text()
    assert "[DAG TEST] starting task_id=boom" in log
    assert "kaboom-distinctive-42" in log  # the traceback, as a user of `make demo` sees it


def test_second_run_reuses_the_db_and_only_sees_its_own_env(report: LocalRunReport, home: Path) -> None:
    # Same home, no AIRFLOW_CONN_TOY this time: the task must fail on the missing connection.
    again = run_local(["toy_conn"], home=home, dags_folder=TOY_DAGS, timeout_s=TIMEOUT_S,
                      log_file=home / "run2.log")
    assert not again.migrated
    assert again.timings["migrate_s"] == 0
    [conn] = again.results
    assert conn.state == "failed"
    assert "The conn_id `toy` isn't defined" in conn.failed_tasks["read_conn"]


@pytest.fixture(scope="module")
def triggered(home: Path, report: LocalRunReport) -> LocalRunReport:
    return run_local(["toy_trigger"], home=home, dags_folder=TOY_DAGS, timeout_s=TIMEOUT_S, max_retry_delay_s=1,
                     log_file=home / "run3.log")


def test_pump_runs_the_triggered_runs_and_a_failed_one_fails_its_trigger(triggered: LocalRunReport) -> None:
    [parent] = triggered.results
    assert parent.state == "failed"
    assert parent.task_states == {"trigger_echo": "success", "trigger_fail": "failed", "on_failure": "failed"}
    assert "toy_fail failed" in parent.failed_tasks["trigger_fail"]
    assert "rolled back" in parent.failed_tasks["on_failure"]
    assert [(r.dag_id, r.state) for r in parent.triggered] == [("toy_echo", "success"), ("toy_fail", "failed")]
    echo, fail = parent.triggered
    assert echo.task_states == {"echo": "success"}                    # it read conf {"n": 7}
    assert "kaboom-distinctive-42" in fail.failed_tasks["boom"]       # the triggered run's own task errors
    assert fail.run_id and fail.run_id.startswith("manual__")


def test_trigger_of_a_paused_service_dag_fails_at_once_with_the_fix(home: Path, triggered: LocalRunReport) -> None:
    run = run_local(["toy_trigger_paused"], home=home, dags_folder=TOY_DAGS, timeout_s=TIMEOUT_S,
                    max_retry_delay_s=1, log_file=home / "run4.log")
    [parent] = run.results
    assert parent.state == "failed" and parent.triggered == []
    assert "toy_paused is paused" in parent.failed_tasks["trigger_paused"]
    assert "airflow dags unpause toy_paused" in parent.failed_tasks["trigger_paused"]


def test_airflow_env_is_rooted_at_home(tmp_path: Path) -> None:
    env = airflow_env(tmp_path / "h", tmp_path / "dags")
    assert env["AIRFLOW_HOME"] == str((tmp_path / "h").resolve())
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{(tmp_path / 'h').resolve()}/airflow.db"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str((tmp_path / "dags").resolve())
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"


def test_child_environment_drops_the_parents_airflow_config(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    monkeypatch.setenv("AIRFLOW_CONFIG", "/etc/elsewhere.cfg")
    monkeypatch.setenv("AIRFLOW_HOME", "/elsewhere")
    env = _child_environment(tmp_path, TOY_DAGS, None, {"AIRFLOW_CONN_X": "postgresql://h/db"})
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert "AIRFLOW_CONFIG" not in env
    assert env["AIRFLOW_HOME"] == str(tmp_path.resolve())
    assert env["AIRFLOW_CONN_X"] == "postgresql://h/db"


def test_importing_the_module_does_not_import_airflow() -> None:
    code = "import sys, dbsplit.local.airflow_local; sys.exit('airflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_tee_keeps_the_running_tasks_lines_for_the_fallback_message() -> None:
    import io

    from dbsplit.local.dagtest.capture import TeeStdout as _TeeStdout
    from dbsplit.local.dagtest.capture import log_tail as _log_tail

    out = io.StringIO()
    tee = _TeeStdout(out)
    tee.write("before the task\n")
    tee.start()
    tee.write("\x1b[31m[error    ]\x1b[0m something broke\n::group::Post Execute\nlast words")
    lines = tee.stop()
    tee.write("after the task\n")
    assert out.getvalue().startswith("before the task\n") and out.getvalue().endswith("after the task\n")
    assert _log_tail(lines) == "[error    ] something broke\nlast words"
