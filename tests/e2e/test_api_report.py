"""The migration report through Airflow's REST API on a real `airflow standalone`.

A token from POST /auth/token, the DAG unpaused with PATCH and triggered with POST dagRuns
(logical_date null), then the run's report pages fetched with the token, without it, and with a bad
one; the files route must never leave the reports directory (the Airflow home, with its password
file, is right beside it).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import psycopg
import pytest

pytestmark = pytest.mark.e2e

# Not the DAG of test_ui_report.py: that test unpauses its DAG with the UI's toggle.
DAG_ID = "dbsplit_migrate_search"
TABLES = ["saved_searches", "search_history"]
REPORTS = "/dbsplit-reports"
HTTP_TIMEOUT_S = 120  # a deadline for a busy CI machine


@pytest.fixture(scope="module")
def run(airflow_server: Any) -> dict[str, Any]:
    """One successful run of DAG_ID started through the REST API."""
    server = airflow_server
    r = server.api("PATCH", f"/api/v2/dags/{DAG_ID}", json={"is_paused": False})
    assert r.status_code == 200 and r.json()["is_paused"] is False, r.text
    r = server.api("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None})
    assert r.status_code == 200, r.text
    run_id = r.json()["dag_run_id"]
    state = server.wait_for_run(DAG_ID, run_id)
    assert state == "success", server.task_states(DAG_ID, run_id)
    return {"run_id": run_id, "page": f"{REPORTS}/runs/{DAG_ID}/{quote(run_id, safe='')}/"}


def _get(server: Any, path: str, **headers: str) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", headers=headers, timeout=HTTP_TIMEOUT_S, follow_redirects=False)


def _source_count(server: Any, table: str) -> int:
    with psycopg.connect(server.source_conninfo) as conn:
        return conn.execute(f"SELECT count(*) FROM public.{table}").fetchone()[0]


def test_plugin_is_registered(airflow_server: Any) -> None:
    r = airflow_server.api("GET", "/api/v2/plugins")
    assert r.status_code == 200
    [plugin] = [p for p in r.json()["plugins"] if p["name"] == "dbsplit_reports"]
    assert [a["url_prefix"] for a in plugin["fastapi_apps"]] == [REPORTS]
    views = {v["destination"]: v for v in plugin["external_views"]}
    assert views["nav"]["name"] == "Migration reports" and views["nav"]["href"] == f"{REPORTS}/"
    assert views["dag_run"]["href"] == f"{REPORTS}/runs/{{DAG_ID}}/{{RUN_ID}}/"


def test_report_page_with_a_token(airflow_server: Any, run: dict[str, Any]) -> None:
    server = airflow_server
    r = _get(server, run["page"], Authorization=f"Bearer {server.token()}")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert run["run_id"] in r.text and "Service search" in r.text
    for table in TABLES:
        row = re.search(rf'<tr data-table="public\.{table}">(.*?)</tr>', r.text, re.S)
        assert row, f"no row for {table}"
        source = re.search(r'class="num source-rows">([\d,]+)<', row.group(1)).group(1)
        target = re.search(r'class="num target-rows">([\d,]+)<', row.group(1)).group(1)
        expected = _source_count(server, table)
        assert int(source.replace(",", "")) == expected and int(target.replace(",", "")) == expected
        assert "passed" in row.group(1)
    # a table page and the raw evidence it is made from
    table = _get(server, f"{run['page']}tables/public.search_history", Authorization=f"Bearer {server.token()}")
    assert table.status_code == 200 and "expect_table_row_count_to_equal" in table.text
    href = re.search(r'href="([^"]+\.json)"', table.text).group(1)
    doc = _get(server, href, Authorization=f"Bearer {server.token()}")
    assert doc.status_code == 200 and doc.json()["run_id"] == run["run_id"]
    assert doc.json()["target_rows"] == _source_count(server, "search_history")


def test_report_page_without_a_token(airflow_server: Any, run: dict[str, Any]) -> None:
    server = airflow_server
    r = _get(server, run["page"], Accept="application/json")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert run["run_id"] not in r.text
    # a browser is sent to Airflow's login page, which brings it back afterwards
    r = _get(server, run["page"], Accept="text/html")
    assert r.status_code == 307
    location = urlsplit(r.headers["location"])
    assert location.path == "/auth/login" and parse_qs(location.query)["next"] == [run["page"]]
    assert _get(server, r.headers["location"]).status_code == 200  # the login page is there
    # a malformed token, and a tampered one (its signature no longer matches)
    for token in ("garbage", server.token()[:-4] + "AAAA"):
        r = _get(server, run["page"], Authorization=f"Bearer {token}")
        assert r.status_code == 401, token
    # the UI's cookie is as good as the header
    r = httpx.get(f"{server.url}{run['page']}", cookies={"_token": server.token()}, timeout=HTTP_TIMEOUT_S)
    assert r.status_code == 200 and run["run_id"] in r.text


@pytest.mark.parametrize("path", [
    "/files/%2e%2e/airflow/simple_auth_manager_passwords.json.generated",
    "/files/runs/%2e%2e/%2e%2e/airflow/simple_auth_manager_passwords.json.generated",
    "/files/..%2fairflow%2fsimple_auth_manager_passwords.json.generated",
    "/files/%2F{home}/simple_auth_manager_passwords.json.generated",
    "/runs/%2e%2e/%2e%2e/",
])
def test_no_way_out_of_the_reports_dir(airflow_server: Any, path: str) -> None:
    server = airflow_server
    url = REPORTS + path.format(home=quote(str(server.home).lstrip("/")))
    r = _get(server, url, Authorization=f"Bearer {server.token()}")
    assert r.status_code == 404, (url, r.status_code)
    assert server.password not in r.text


def test_validate_task_links_to_its_report(airflow_server: Any, run: dict[str, Any]) -> None:
    server = airflow_server
    task = "search_history.validate"
    r = server.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run['run_id'], safe='')}/taskInstances/{task}/links")
    assert r.status_code == 200, r.text
    links = r.json()["extra_links"]
    if "Validation report" not in links:
        pytest.skip("the validate tasks have no 'Validation report' link (dbsplit.airflow.links."
                    "attach_report_link is not called in render.py)")
    url = links["Validation report"]
    assert url.startswith(f"{REPORTS}/runs/{DAG_ID}/"), url
    page = _get(server, url, Authorization=f"Bearer {server.token()}")
    assert page.status_code == 200 and "public.search_history" in page.text
