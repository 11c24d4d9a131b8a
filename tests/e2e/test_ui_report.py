"""The migration report as a person sees it: headless Chromium on a real `airflow standalone`.

Log in through Airflow's login page (reached by opening the report unauthenticated), unpause
dbsplit_migrate_users with its toggle and start it with the UI's Trigger button, wait for the run,
then open "Migration reports" in the navigation and read the users table's row counts there, and
the run's "Migration report" tab. Screenshots are saved under the test's tmp dir (paths printed).

Needs Debian's chromium (/usr/bin/chromium, or $DBSPLIT_CHROMIUM) and Playwright for Python, which
drives it through executable_path: Playwright never downloads its own browser.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

pytestmark = pytest.mark.e2e

DAG_ID = "dbsplit_migrate_users"
AirflowServer = Any  # tests/e2e/conftest.py: the `airflow_server` fixture's value

CHROMIUM = os.environ.get("DBSPLIT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# Headless flags that avoid network calls which are blocked here (see shared STACK-FACTS).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Deadlines for a busy CI machine (every wait returns as soon as its condition holds); Playwright's
# `expect` has its own default of 5 s, set below.
TIMEOUT_MS = 180_000

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="Playwright for Python is not installed (pip install playwright; the browser is Debian's chromium)")
sync_api.expect.set_options(timeout=TIMEOUT_MS)
if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


@pytest.fixture
def page(tmp_path: Path):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            context.set_default_timeout(TIMEOUT_MS)
            yield context.new_page()
        finally:
            browser.close()


def _shot(page, tmp_path: Path, name: str, full_page: bool = False) -> Path:
    path = tmp_path / "screenshots" / f"{name}.png"
    path.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(path), full_page=full_page)
    print(f"screenshot: {path}")
    return path


def _source_count(server: AirflowServer, table: str) -> int:
    with psycopg.connect(server.source_conninfo) as conn:
        return conn.execute(f"SELECT count(*) FROM public.{table}").fetchone()[0]


def _wait(predicate, timeout_s: float = TIMEOUT_MS / 1000, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _number(text: str) -> int:
    return int(text.strip().replace(",", ""))


def test_trigger_from_the_ui_and_read_the_report(airflow_server: AirflowServer, page, tmp_path: Path) -> None:
    server = airflow_server
    expect = sync_api.expect

    # 1. The report, unauthenticated: Airflow's login page, then back to the report.
    page.goto(f"{server.url}/dbsplit-reports/")
    page.get_by_label("Username").wait_for()
    assert "/auth/login" in page.url and "next=%2Fdbsplit-reports%2F" in page.url, page.url
    _shot(page, tmp_path, "01-login")
    page.get_by_label("Username").fill(server.username)
    page.get_by_label("Password").fill(server.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{server.url}/dbsplit-reports/")
    expect(page.get_by_role("heading", name="Migration runs")).to_be_visible()

    # 2. Unpause the DAG with its toggle, start a run with the Trigger button.
    page.goto(f"{server.url}/dags/{DAG_ID}")
    trigger = page.get_by_role("button", name="Trigger Dag")
    trigger.wait_for()
    assert server.api("GET", f"/api/v2/dags/{DAG_ID}").json()["is_paused"] is True
    toggle = page.get_by_role("checkbox").first  # the pause switch beside the DAG's name
    expect(toggle).not_to_be_checked()
    toggle.click(force=True)  # the switch's input is visually hidden
    _wait(lambda: server.api("GET", f"/api/v2/dags/{DAG_ID}").json()["is_paused"] is False,
          what="the DAG to be unpaused")
    before = {r["dag_run_id"] for r in server.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns").json()["dag_runs"]}
    trigger.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Trigger Dag - {DAG_ID}")
    _shot(page, tmp_path, "02-trigger-dialog")
    dialog.get_by_role("button", name="Trigger", exact=True).click()
    expect(dialog).to_be_hidden()

    new_runs: list[dict] = []

    def _triggered() -> bool:
        runs = server.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns").json()["dag_runs"]
        new_runs[:] = [r for r in runs if r["dag_run_id"] not in before]
        return bool(new_runs)

    _wait(_triggered, what="the triggered run")
    [run] = new_runs
    run_id = run["dag_run_id"]
    assert run["triggered_by"] == "ui" and run["triggering_user_name"] == server.username
    state = server.wait_for_run(DAG_ID, run_id)
    assert state == "success", server.task_states(DAG_ID, run_id)

    # 3. "Migration reports" in the navigation: the runs list, inside the UI (iframe).
    page.goto(f"{server.url}/")
    page.get_by_role("link", name="Migration reports").click()
    page.wait_for_url("**/plugin/migration-reports**")
    frame = page.frame_locator("iframe[title='Migration reports']")
    runs_table = frame.locator("#runs")
    expect(runs_table).to_contain_text(run_id)
    _shot(page, tmp_path, "03-migration-reports")
    runs_table.get_by_role("link", name=run_id, exact=True).click()
    users = frame.locator('tr[data-table="public.users"]')
    expect(users).to_be_visible()
    expected = _source_count(server, "users")
    assert expected > 0
    assert _number(users.locator(".source-rows").inner_text()) == expected
    assert _number(users.locator(".target-rows").inner_text()) == expected
    expect(users).to_contain_text("passed")
    expect(frame.locator('tr[data-table="public.user_skills"]')).to_be_visible()
    _shot(page, tmp_path, "04-run-report")

    users.get_by_role("link", name="public.users").click()
    expect(frame.locator("#source-rows")).to_have_text(f"{expected:,}")
    expect(frame.locator("#target-rows")).to_have_text(f"{expected:,}")
    expect(frame.locator("#expectations")).to_contain_text("expect_table_row_count_to_equal")
    expect(frame.locator("body")).to_contain_text("all accounted for")
    _shot(page, tmp_path, "05-table-report", full_page=True)

    # 4. The run's own "Migration report" tab.
    page.goto(f"{server.url}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}")
    page.get_by_role("link", name="Migration report", exact=True).click()
    page.wait_for_url("**/plugin/migration-report**")
    tab = page.frame_locator("iframe[title='Migration report']")
    expect(tab.locator("h1")).to_contain_text(run_id)
    tab_users = tab.locator('tr[data-table="public.users"]')
    assert _number(tab_users.locator(".target-rows").inner_text()) == expected
    _shot(page, tmp_path, "06-run-tab")
