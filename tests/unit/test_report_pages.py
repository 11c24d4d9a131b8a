"""The migration reports app (dbsplit.airflow.reports_app) rendered from sample evidence files with TestClient.

Tokens are real Airflow JWTs made by the configured auth manager (SimpleAuthManager, see
tests/conftest.py) and checked by it, revocation included (its table is created in the test
session's metadata database). No Airflow server runs here.
"""

from __future__ import annotations

import importlib.util
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from dbsplit.model import evidence

fastapi = pytest.importorskip("fastapi")
from fastapi import FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DAG = "dbsplit_migrate_users"
RUN = "manual__2026-11-21T22:00:00.123456+00:00"
FAILED_RUN = "manual__2026-11-21T23:00:00+00:00"
SECRET = "top-secret-outside-the-reports-dir"
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def _doc(table: str, run_id: str = RUN, **changes: Any) -> dict[str, Any]:
    doc = {
        "dag_id": DAG, "run_id": run_id, "service": "users",
        "source_table": f"public.{table}", "target_table": f"public.{table}",
        "source_rows": 5000, "target_rows": 5000, "rejected_rows": 0, "rejects_sample": [],
        "success": True,
        "checks": [
            {"expectation": "expect_table_row_count_to_equal", "column": None, "success": True,
             "observed": 5000, "details": "expected 5000 rows, found 5000"},
            {"expectation": "expect_column_values_to_be_unique", "column": "id", "success": True,
             "observed": 0, "details": "no duplicate key"},
            {"expectation": "dbsplit_chunk_checksums_match", "column": None, "success": True,
             "observed": {"chunks": 2, "mismatched_chunks": [], "differing_keys": {}},
             "details": "all 2 chunk checksums match the source"},
            {"expectation": "dbsplit_rejected_rows_within_limit", "column": None, "success": True,
             "observed": 0, "details": "0 row(s) rejected, at most 0 allowed"},
        ],
        "load_seconds": 0.5, "rows_per_second": 10000.0,
        "validated_at": "2026-11-21T22:01:02.345678+00:00", "data_docs": None,
    }
    doc.update(changes)
    return doc


@pytest.fixture
def reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A reports dir with two runs (one passed, one failed) and a secret file beside it."""
    root = tmp_path / "reports"
    monkeypatch.setenv("DBSPLIT_REPORTS_DIR", str(root))
    (tmp_path / "secret.txt").write_text(SECRET)
    # passed run: users with Data Docs, user_skills without
    docs = evidence.run_dir(DAG, RUN, root) / "gx" / "public.users" / "data_docs"
    docs.mkdir(parents=True)
    (docs / "index.html").write_text("<html><body><h1>GX validation of public.users</h1></body></html>")
    evidence.write_evidence(_doc("users", data_docs=str((docs / "index.html").relative_to(root))), root)
    evidence.write_evidence(_doc("user_skills", source_rows=12000, target_rows=12000), root)
    # failed run: a checksum mismatch in chunk 1, two rejected rows, one of them with HTML in it
    checks = _doc("users")["checks"]
    checks[2] = {"expectation": "dbsplit_chunk_checksums_match", "column": None, "success": False,
                 "observed": {"chunks": 3, "mismatched_chunks": [1], "differing_keys": {"1": ["2042", "2043"]}},
                 "details": "chunk users 2/3 (key 1667 .. 3334): rows with key 2042, 2043 differ"}
    checks[3] = {"expectation": "dbsplit_rejected_rows_within_limit", "column": None, "success": False,
                 "observed": 2, "details": "2 row(s) rejected (see _dbsplit.rejects), at most 0 allowed"}
    evidence.write_evidence(_doc(
        "users", FAILED_RUN, success=False, target_rows=4998, rejected_rows=2, checks=checks,
        rejects_sample=[{"source_key": "17", "column": "email", "value": "<script>alert(1)</script>",
                         "reason": "value too long for type character varying(20)"},
                        {"source_key": "18", "column": "email", "value": None, "reason": "null value"}],
    ), root)
    return root


@pytest.fixture(scope="module")
def auth_manager() -> Any:
    from airflow import settings
    from airflow.api_fastapi.app import create_auth_manager
    from airflow.models.revoked_token import RevokedToken

    # get_user_from_token looks each token's jti up in revoked_token (the only table needed here)
    RevokedToken.__table__.create(settings.engine, checkfirst=True)
    return create_auth_manager()


def _token(auth_manager: Any, role: str | None = "admin", username: str = "admin") -> str:
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return auth_manager.generate_jwt(SimpleAuthManagerUser(username=username, role=role))


@pytest.fixture
def token(auth_manager: Any) -> str:
    return _token(auth_manager)


@pytest.fixture
def client(reports: Path) -> Iterator[TestClient]:
    from dbsplit.airflow.reports_app import create_app

    with TestClient(create_app(), follow_redirects=False) as c:
        yield c


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _text(html: str) -> str:
    """The page's text, tags dropped and spaces collapsed (to read it as a person would)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# --------------------------------------------------------------------------------------------
# Pages
# --------------------------------------------------------------------------------------------


def test_runs_list_shows_every_run_newest_first(client: TestClient, token: str) -> None:
    r = client.get("/", headers=_bearer(token))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    text = _text(r.text)
    assert text.index(FAILED_RUN) < text.index(RUN)  # newest first
    assert "1 failed" in text and "passed" in text
    assert "17,000" in text  # source rows of the passed run (5,000 + 12,000)
    assert 'href="/runs/dbsplit_migrate_users/manual__2026-11-21T22%3A00%3A00.123456%2B00%3A00/"' in r.text


def test_run_page_lists_services_and_tables_with_counts(client: TestClient, token: str) -> None:
    r = client.get(f"/runs/{DAG}/{RUN}/", headers=_bearer(token))
    assert r.status_code == 200, r.text
    text = _text(r.text)
    assert "Service users" in text
    assert "public.users" in text and "public.user_skills" in text
    assert "12,000" in text and "5,000" in text
    assert "Data Docs" in r.text
    row = re.search(r'<tr data-table="public.user_skills">(.*?)</tr>', r.text, re.S).group(1)
    assert re.search(r'class="num source-rows">12,000<', row) and re.search(r'class="num target-rows">12,000<', row)


def test_run_page_found_by_the_raw_or_encoded_run_id(client: TestClient, token: str) -> None:
    # the UI's tab fills {RUN_ID} with encodeURIComponent(run_id)
    encoded = RUN.replace(":", "%3A").replace("+", "%2B")
    assert client.get(f"/runs/{DAG}/{encoded}/", headers=_bearer(token)).status_code == 200
    # without the trailing slash: redirected to it
    r = client.get(f"/runs/{DAG}/{encoded}", headers=_bearer(token))
    assert r.status_code in (307, 308) and r.headers["location"].endswith("/")


def test_table_page_shows_counts_expectations_timings_and_data_docs(client: TestClient, token: str) -> None:
    r = client.get(f"/runs/{DAG}/{RUN}/tables/public.users", headers=_bearer(token))
    assert r.status_code == 200, r.text
    text = _text(r.text)
    assert re.search(r'id="source-rows">5,000<', r.text) and re.search(r'id="target-rows">5,000<', r.text)
    assert "all accounted for" in text
    assert "expect_column_values_to_be_unique" in text and "expected 5000 rows, found 5000" in text
    assert "all 2 chunk checksums match the source" in text
    assert "0.50 s" in text and "10,000 rows/s" in text
    assert "2026-11-21 22:01:02 UTC" in text
    docs = re.search(r'<a id="data-docs" href="([^"]+)"', r.text).group(1)
    page = client.get(docs, headers=_bearer(token))
    assert page.status_code == 200 and "GX validation of public.users" in page.text
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none': no script
    # the table is also found by its name without schema (what the validate task's link uses)
    assert client.get(f"/runs/{DAG}/{RUN}/tables/users", headers=_bearer(token)).status_code == 200


def test_failed_table_shows_the_chunk_the_checksum_failed_in_and_the_rejects(client: TestClient, token: str) -> None:
    r = client.get(f"/runs/{DAG}/{FAILED_RUN}/tables/public.users", headers=_bearer(token))
    assert r.status_code == 200, r.text
    text = _text(r.text)
    assert "mismatch" in text and "1 of 3 chunk(s) differ" in text
    failures = re.search(r'<table id="checksum-failures">(.*?)</table>', r.text, re.S).group(1)
    assert "2042, 2043" in failures and re.search(r">\s*1\s*<", failures)
    assert "chunk users 2/3 (key 1667 .. 3334)" in text
    rejects = re.search(r'<table id="rejects">(.*?)</table>', r.text, re.S).group(1)
    assert "value too long for type character varying(20)" in rejects
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rejects and "<script>" not in r.text  # escaped
    assert re.search(r'id="rejected-rows">2<', r.text) and re.search(r'id="target-rows">4,998<', r.text)
    assert "No Data Docs were recorded" in text


def test_pages_load_nothing_from_outside(client: TestClient, token: str) -> None:
    for path in ("/", f"/runs/{DAG}/", f"/runs/{DAG}/{RUN}/", f"/runs/{DAG}/{FAILED_RUN}/tables/public.users"):
        r = client.get(path, headers=_bearer(token))
        assert r.status_code == 200
        assert not re.search(r'(src|href)="(https?:)?//', r.text), path
        assert "<script" not in r.text and "<link" not in r.text
        assert "default-src 'none'" in r.headers["content-security-policy"]


def test_missing_run_and_table_are_404(client: TestClient, token: str) -> None:
    assert client.get(f"/runs/{DAG}/manual__nope/", headers=_bearer(token)).status_code == 404
    assert client.get(f"/runs/{DAG}/{RUN}/tables/public.nope", headers=_bearer(token)).status_code == 404
    r = client.get(f"/runs/{DAG}/manual__nope/", headers={**_bearer(token), **HTML})
    assert r.status_code == 404 and "No validation evidence for run manual__nope" in r.text


def test_unreadable_evidence_file_is_reported_not_fatal(client: TestClient, token: str, reports: Path) -> None:
    (evidence.run_dir(DAG, RUN, reports) / "public.broken.json").write_text("{not json")
    r = client.get(f"/runs/{DAG}/{RUN}/", headers=_bearer(token))
    assert r.status_code == 200 and "public.broken.json" in r.text and "public.user_skills" in r.text
    assert "1 failed" in _text(r.text)  # a run with an unreadable evidence file did not pass


def test_empty_reports_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, token: str) -> None:
    from dbsplit.airflow.reports_app import create_app

    monkeypatch.setenv("DBSPLIT_REPORTS_DIR", str(tmp_path / "none"))
    r = TestClient(create_app()).get("/", headers=_bearer(token))
    assert r.status_code == 200 and "No validation evidence yet" in r.text


# --------------------------------------------------------------------------------------------
# Authentication
# --------------------------------------------------------------------------------------------

ROUTES = ["/", f"/runs/{DAG}/", f"/runs/{DAG}/{RUN}/", f"/runs/{DAG}/{RUN}/tables/public.users",
          f"/files/runs/{DAG}/{evidence.safe_part(RUN)}/public.users.json"]


@pytest.mark.parametrize("path", ROUTES)
def test_every_route_needs_a_token(client: TestClient, token: str, path: str) -> None:
    r = client.get(path, headers={"Accept": "application/json"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert r.json() == {"detail": "Not authenticated"}
    assert client.get(path, headers=_bearer(token)).status_code == 200


def test_cookie_of_the_ui_is_accepted(client: TestClient, token: str) -> None:
    client.cookies.set("_token", token)
    assert client.get(f"/runs/{DAG}/{RUN}/", headers=HTML).status_code == 200


def test_browser_without_login_is_sent_to_the_login_page_and_back(client: TestClient) -> None:
    r = client.get(f"/runs/{DAG}/{RUN}/tables/users?x=1", headers=HTML)
    assert r.status_code == 307
    location = urlsplit(r.headers["location"])
    assert location.path == "/auth/login"
    assert parse_qs(location.query)["next"] == [f"/runs/{DAG}/{RUN}/tables/users?x=1"]
    # next= is the path as the browser sent it, still percent-encoded (the UI's tab encodes run ids)
    encoded = RUN.replace(":", "%3A").replace("+", "%2B")
    r = client.get(f"/runs/{DAG}/{encoded}/", headers=HTML)
    assert parse_qs(urlsplit(r.headers["location"]).query)["next"] == [f"/runs/{DAG}/{encoded}/"]


def test_next_is_never_another_site() -> None:
    from starlette.requests import Request

    from dbsplit.airflow.reports_app import _request_target

    scope = {"type": "http", "method": "GET", "path": "//evil.example/x", "raw_path": b"//evil.example/x",
             "query_string": b"", "headers": [], "root_path": ""}
    assert _request_target(Request(scope)) == "/evil.example/x"


def test_mounted_under_the_prefix_links_and_login_keep_it(reports: Path, token: str) -> None:
    from dbsplit.airflow.reports_app import PREFIX, create_app

    parent = FastAPI()
    parent.mount(PREFIX, create_app())
    with TestClient(parent, follow_redirects=False) as c:
        r = c.get(f"{PREFIX}/", headers=_bearer(token))
        assert r.status_code == 200
        assert f'href="{PREFIX}/runs/{DAG}/manual__2026-11-21T22%3A00%3A00.123456%2B00%3A00/"' in r.text
        assert f'href="{PREFIX}/"' in r.text  # breadcrumb back to the list
        login = c.get(f"{PREFIX}/runs/{DAG}/{RUN}/", headers=HTML)
        assert parse_qs(urlsplit(login.headers["location"]).query)["next"] == [f"{PREFIX}/runs/{DAG}/{RUN}/"]


@pytest.mark.parametrize("kind", ["garbage", "wrong secret", "expired", "other audience", "revoked"])
def test_invalid_tokens_are_refused(client: TestClient, auth_manager: Any, kind: str) -> None:
    from airflow.api_fastapi.auth.tokens import JWTGenerator, get_signing_args

    claims = auth_manager.serialize_user(_user())
    if kind == "garbage":
        bad = "not.a.jwt"
    elif kind == "wrong secret":
        bad = JWTGenerator(secret_key="not-the-configured-secret", valid_for=60,
                           audience=auth_manager._get_jwt_audience()).generate(claims)
    elif kind == "expired":
        bad = JWTGenerator(**get_signing_args(), valid_for=-3600,
                           audience=auth_manager._get_jwt_audience()).generate(claims)
    elif kind == "other audience":
        bad = JWTGenerator(**get_signing_args(), valid_for=60, audience="someone-else").generate(claims)
    else:
        bad = _token(auth_manager)
        assert client.get("/", headers=_bearer(bad)).status_code == 200
        auth_manager.revoke_token(bad)
    r = client.get(f"/runs/{DAG}/{RUN}/", headers=_bearer(bad))
    assert r.status_code == 401, r.text
    assert SECRET not in r.text and "public.users" not in r.text
    # the same token in the UI's cookie: the browser is sent to log in again
    client.cookies.set("_token", bad)
    assert client.get(f"/runs/{DAG}/{RUN}/", headers=HTML).status_code == 307


def _user(role: str | None = "admin") -> Any:
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return SimpleAuthManagerUser(username="someone", role=role)


def test_user_without_permission_gets_403(client: TestClient, auth_manager: Any) -> None:
    nobody = _token(auth_manager, role=None, username="nobody")
    assert client.get(f"/runs/{DAG}/{RUN}/", headers=_bearer(nobody)).status_code == 403
    files = f"/files/runs/{DAG}/{evidence.safe_part(RUN)}/public.users.json"
    assert client.get(files, headers=_bearer(nobody)).status_code == 403
    r = client.get("/", headers=_bearer(nobody))  # the list hides the runs it may not read
    assert r.status_code == 200 and RUN not in r.text
    viewer = _token(auth_manager, role="viewer", username="viewer")
    assert client.get(f"/runs/{DAG}/{RUN}/", headers=_bearer(viewer)).status_code == 200


# --------------------------------------------------------------------------------------------
# Files and path traversal
# --------------------------------------------------------------------------------------------


def test_evidence_file_is_served_as_json(client: TestClient, token: str) -> None:
    r = client.get(f"/files/runs/{DAG}/{evidence.safe_part(RUN)}/public.users.json", headers=_bearer(token))
    assert r.status_code == 200 and r.json()["target_table"] == "public.users"
    assert r.headers["x-content-type-options"] == "nosniff"


TRAVERSALS = [
    "/files/%2e%2e/secret.txt",
    "/files/%2E%2E/secret.txt",
    "/files/runs/%2e%2e/%2e%2e/secret.txt",
    "/files/runs/..%2f..%2fsecret.txt",
    "/files/%2e%2e%2fsecret.txt",
    "/files/..%5csecret.txt",
    "/files/%5c..%5csecret.txt",
    "/files//{tmp}/secret.txt",
    "/files/%2f{tmp}/secret.txt",
    "/files/{tmp}/secret.txt",
    "/files/runs/./../../secret.txt",
    "/files/link-out.txt",
    "/files/dir-out/secret.txt",
    "/files/runs/link-out.txt",
    "/files/secret.txt%00.json",
    "/files/",
    "/files/runs",
    f"/runs/%2e%2e/%2e%2e/",
    f"/runs/{DAG}/%2e%2e/tables/%2e%2e%2f%2e%2e%2fsecret.txt",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_traversal_is_impossible(client: TestClient, token: str, reports: Path, path: str) -> None:
    outside = reports.parent
    (reports / "link-out.txt").symlink_to(outside / "secret.txt")
    (reports / "runs" / "link-out.txt").symlink_to(outside / "secret.txt")
    (reports / "dir-out").symlink_to(outside, target_is_directory=True)
    url = path.format(tmp=str(outside).lstrip("/"))
    r = client.get(url, headers=_bearer(token))
    assert r.status_code in (400, 404), (url, r.status_code)
    assert SECRET not in r.text


def test_symlinked_run_folder_out_of_the_reports_dir_is_not_read(client: TestClient, token: str,
                                                                  reports: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    evidence.write_evidence(_doc("stolen", "manual__stolen"), elsewhere)
    (reports / "runs" / DAG / "manual__stolen").symlink_to(evidence.run_dir(DAG, "manual__stolen", elsewhere))
    assert client.get(f"/runs/{DAG}/manual__stolen/", headers=_bearer(token)).status_code == 404
    assert "manual__stolen" not in client.get("/", headers=_bearer(token)).text


def test_report_file_refuses_everything_outside(tmp_path: Path) -> None:
    from dbsplit.reports.pages import report_file

    root = tmp_path / "r"
    (root / "a").mkdir(parents=True)
    (root / "a" / "ok.html").write_text("ok")
    (tmp_path / "secret.txt").write_text(SECRET)
    (root / "a" / "out").symlink_to(tmp_path / "secret.txt")
    (root / "loop").symlink_to(root / "loop")
    assert report_file(root, "a/ok.html") == (root / "a" / "ok.html").resolve()
    for bad in ["", "a", "../secret.txt", "a/../../secret.txt", "a/./ok.html", "/etc/passwd",
                str(tmp_path / "secret.txt"), "a\\..\\..\\secret.txt", "C:secret.txt", "a/out",
                "loop", "a/ok.html\x00", "..", "."]:
        assert report_file(root, bad) is None, bad


# --------------------------------------------------------------------------------------------
# Plugin and link
# --------------------------------------------------------------------------------------------


def test_plugin_mounts_the_app_and_adds_the_views() -> None:
    from airflow.api_fastapi.app import RESERVED_URL_PREFIXES

    spec = importlib.util.spec_from_file_location("dbsplit_reports_plugin", ROOT / "plugins" / "dbsplit_reports.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plugin = module.DbsplitReportsPlugin
    [mounted] = plugin.fastapi_apps
    assert mounted["url_prefix"] == "/dbsplit-reports"
    assert not any(mounted["url_prefix"].startswith(p) for p in RESERVED_URL_PREFIXES)
    views = {v["destination"]: v for v in plugin.external_views}
    assert views["nav"]["name"] == "Migration reports" and views["nav"]["href"] == "/dbsplit-reports/"
    assert views["dag_run"]["href"] == "/dbsplit-reports/runs/{DAG_ID}/{RUN_ID}/"
    assert all(v["url_route"] for v in views.values())
    assert len({v["url_route"] for v in views.values()}) == 2


def test_validation_report_link_points_at_the_table_page(client: TestClient, token: str) -> None:
    from dbsplit.airflow.links import ValidationReportLink, attach_report_link

    class Operator:
        operator_extra_links = ()
        op_args = ["users", {"service": "users"}]
        op_kwargs: dict[str, Any] = {}

    class Key:
        dag_id, run_id = DAG, RUN

    op = attach_report_link(Operator())
    attach_report_link(op)  # idempotent
    [link] = op.operator_extra_links
    assert link.name == "Validation report"
    url = link.get_link(op, ti_key=Key())
    assert url == f"/dbsplit-reports/runs/{DAG}/manual__2026-11-21T22%3A00%3A00.123456%2B00%3A00/tables/users"
    # the app answers that URL (here without the mount prefix)
    assert client.get(url.removeprefix("/dbsplit-reports"), headers=_bearer(token)).status_code == 200
    op.op_args = []
    assert link.get_link(op, ti_key=Key()).endswith("%2B00%3A00/")  # no table known: the run's page


def test_token_lifetime_is_the_configured_one(auth_manager: Any) -> None:
    import jwt

    claims = jwt.decode(_token(auth_manager), options={"verify_signature": False})
    now = time.time()
    assert claims["exp"] > now and claims["sub"] == "admin"
