"""What `dbsplit run` and `dbsplit demo` print: progress lines from the runner's log, the result table with
reference checks that did not run as "not checked", and `dbsplit airflow` refusing a busy port."""

from __future__ import annotations

import io
import socket

import pytest

from dbsplit.local.cli import main
from dbsplit.local.progress import PlainView, Tracker
from dbsplit.local.results import TableResult, print_results

LOG = """\
==> dbsplit: dag.test(dbsplit_migrate_users) [1/2]
2026-12-07T23:30:47.699427Z [info     ] public.users: new load 2 in 2 chunk(s) [dbsplit.airflow.runtime] loc=runtime.py:141
2026-12-07T23:30:48.817698Z [info     ] loaded users 1/2: 1000 rows (0 rejected) in 0.00 s (842727 rows/s) [dbsplit.airflow.runtime]
2026-12-07T23:30:48.817698Z [info     ] Pushing xcom  [task] loc=task_runner.py:2280 ti=RuntimeTaskInstance(...)
2026-12-07T23:30:48.998115Z [info     ] loaded users 2/2: 1000 rows (0 rejected) in 0.01 s (171544 rows/s) [dbsplit.airflow.runtime]
2026-12-07T23:30:53.175256Z [info     ] public.users: 2000 source rows, 2000 staged rows, 0 rejected, 14 checks passed
==> dbsplit: dbsplit_migrate_users: success in 7.5 s
"""


def test_progress_is_one_line_per_table_and_service() -> None:
    out = io.StringIO()
    tracker = Tracker(PlainView(out))
    for line in LOG.splitlines():
        tracker.feed(line)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].split()[:4] == ["users", "users", "2,000", "rows"] and lines[0].endswith("done")
    assert lines[1] == "users: success in 7.5 s"


def test_result_table_says_not_checked_and_never_counts_it_as_passed() -> None:
    ran = {"expectation": "dbsplit_references_resolve", "column": "user_id", "success": True, "observed": 0}
    skipped = {"expectation": "dbsplit_references_resolve", "column": "skill_id", "success": None, "observed": None,
               "details": "not checked: jobs: public.skills is not migrated yet"}
    results = [TableResult("users", "public.user_skills", 10, 10, "passed", {"passed": [ran], "not checked": [skipped]})]
    out = io.StringIO()
    assert print_results(results, out)
    text = out.getvalue()
    assert "1 not checked, 1 passed" in text
    assert "not checked: users public.user_skills.skill_id: jobs: public.skills is not migrated yet" in text
    assert "result: OK, but 1 reference check(s) did not run" in text


def test_airflow_refuses_a_busy_port(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["airflow", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"port {port} on 127.0.0.1 is in use" in err and f"--port {port + 1}" in err
