"""Project GX suites run as is on a staging table, and GX's Data Docs built offline for the result."""

from __future__ import annotations

import json
import re
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from dbsplit.errors import DataCheckFailed
from dbsplit.engine.verify.datadocs import RESULT_FILE, build_data_docs, write_results
from dbsplit.engine.verify.suites import SuiteRun, check_suite_file, load_suite, run_suite, validate_suite
from tests.conftest import create_database, drop_database

pytestmark = pytest.mark.integration

# a staging schema and a table name unlike the one the suite was written for ("users")
SCHEMA = "Staging $HOME"
TABLE = 'users "next"'
REGEX = "expect_column_values_to_match_regex"
EMAIL_REGEX = r"^[a-z0-9._+-]+@[a-z0-9.-]+\.[a-z]{2,}$"
BAD_EMAILS = {7: "not-an-email", 19: "UPPER@Example.COM", 33: "two@@example.org"}

SUITE = {
    "name": "shop.users.users",
    "expectations": [
        {"type": REGEX, "kwargs": {"column": "Email", "regex": EMAIL_REGEX}, "meta": {"notes": "lower-case emails"}},
        {"type": "expect_column_values_to_be_in_set",
         "kwargs": {"column": "status", "value_set": ["active", "suspended"]}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "Email"}},
        {"type": "expect_column_pair_values_a_to_be_greater_than_b",
         "kwargs": {"column_A": "updated_at", "column_B": "created_at", "or_equal": True,
                    "ignore_row_if": "either_value_is_missing"}},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1, "max_value": 1000}},
    ],
    "meta": {"plan": "shop", "service": "users", "table": "users"},
}


def make_users(conninfo: str, n: int = 50, bad: dict[int, str] | None = None) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
        conn.execute(sql.SQL('CREATE TABLE {} (id bigint PRIMARY KEY, "Email" text, status text, '
                             "created_at timestamptz, updated_at timestamptz)").format(sql.Identifier(SCHEMA, TABLE)))
        conn.execute(sql.SQL("INSERT INTO {} SELECT g, 'user' || g || '@example.org', 'active', "
                             "timestamptz '2024-01-01' + g * interval '1 hour', "
                             "timestamptz '2024-01-02' + g * interval '1 hour' FROM generate_series(1, %s) g")
                     .format(sql.Identifier(SCHEMA, TABLE)), (n,))
        for row_id, email in (bad or {}).items():
            conn.execute(sql.SQL('UPDATE {} SET "Email" = %s WHERE id = %s').format(sql.Identifier(SCHEMA, TABLE)),
                         (email, row_id))


def write_suite(tmp_path: Path, suite: Any, name: str = "users.json") -> Path:
    path = tmp_path / name
    path.write_text(suite if isinstance(suite, str) else json.dumps(suite, indent=2), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def suite_database(pg_server_url: str) -> Iterator[str]:
    name = f"t_suite_{uuid.uuid4().hex[:8]}"
    yield create_database(pg_server_url, name)
    drop_database(pg_server_url, name)


@pytest.fixture
def db(suite_database: str) -> Iterator[str]:
    """One database for the module (creating one per test costs ~2 s), emptied after each test."""
    yield suite_database
    run_sql(suite_database, sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))


def run_sql(conninfo: str, statement: sql.Composable) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(statement)


def by_type(run: SuiteRun, expectation: str) -> Any:
    [found] = [o for o in run.outcomes if o.expectation == expectation]
    return found


def test_passing_suite_gives_one_outcome_per_expectation_in_file_order(db: str, tmp_path: Path) -> None:
    make_users(db)
    path = write_suite(tmp_path, SUITE)

    run = validate_suite(db, SCHEMA, TABLE, path)

    assert run.success, run.failures
    assert [(o.expectation, o.column) for o in run.outcomes] == [
        (REGEX, "Email"), ("expect_column_values_to_be_in_set", "status"),
        ("expect_column_values_to_not_be_null", "Email"),
        ("expect_column_pair_values_a_to_be_greater_than_b", "updated_at, created_at"),
        ("expect_table_row_count_to_be_between", None),
    ]
    assert [o.observed for o in run.outcomes] == [0, 0, 0, 0, 50]  # unexpected rows; row count for the table
    assert "0 of 50 rows unexpected" in run.outcomes[0].details
    assert "observed 50" in run.outcomes[4].details
    assert (run.suite_name, run.schema, run.table, run.suite_path) == ("shop.users.users", SCHEMA, TABLE, str(path))
    # GX's own result, JSON as is, for the reports
    assert run.result["success"] is True
    assert run.result["suite_name"] == "shop.users.users"
    assert run.result["statistics"]["evaluated_expectations"] == 5
    assert json.loads(json.dumps(run.result)) == run.result
    json.dumps(run.outcome_dicts())
    assert run_suite(db, SCHEMA, TABLE, path) == run.outcomes


def test_failing_regex_reports_unexpected_count_and_sample(db: str, tmp_path: Path) -> None:
    make_users(db, bad=BAD_EMAILS)
    path = write_suite(tmp_path, SUITE)

    run = validate_suite(db, SCHEMA, TABLE, path, run_name="manual__2026-11-21T10:00:00+00:00")

    assert not run.success
    regex = by_type(run, REGEX)
    assert (regex.success, regex.observed, regex.column) == (False, 3, "Email")
    assert "3 of 50 rows unexpected" in regex.details
    for email in BAD_EMAILS.values():
        assert repr(email) in regex.details
    assert EMAIL_REGEX in regex.details
    assert [o.expectation for o in run.failures] == [REGEX]
    [gx_regex] = [r for r in run.result["results"] if r["expectation_config"]["type"] == REGEX]
    assert gx_regex["result"]["unexpected_count"] == 3
    assert sorted(gx_regex["result"]["partial_unexpected_list"]) == sorted(BAD_EMAILS.values())
    assert run.result["statistics"]["unsuccessful_expectations"] == 1
    assert run.result["meta"]["run_id"]["run_name"] == "manual__2026-11-21T10:00:00+00:00"
    # the samples come from a second run of the failed expectation only: the others carry none
    others = [r for r in run.result["results"] if r is not gx_regex]
    assert all(not (r["result"].get("partial_unexpected_list") or []) for r in others)


def test_mostly_passes_with_unexpected_rows_and_aggregates_report_observed_value(db: str, tmp_path: Path) -> None:
    make_users(db, n=20)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(sql.SQL("UPDATE {} SET status = 'gone' WHERE id <= 2").format(sql.Identifier(SCHEMA, TABLE)))
    path = write_suite(tmp_path, {"name": "s", "expectations": [
        {"type": "expect_column_values_to_be_in_set",
         "kwargs": {"column": "status", "value_set": ["active"], "mostly": 0.9}},
        {"type": "expect_column_max_to_be_between", "kwargs": {"column": "id", "min_value": 1, "max_value": 10}},
    ]})

    [in_set, max_id] = run_suite(db, SCHEMA, TABLE, path)

    assert (in_set.success, in_set.observed) == (True, 2)
    assert "at least 90% of the rows must pass" in in_set.details and "'gone'" in in_set.details
    assert (max_id.success, max_id.observed) == (False, 20)
    assert "max_value=10" in max_id.details and "observed 20" in max_id.details


def test_suite_column_missing_from_the_table_raises_naming_file_and_column(db: str, tmp_path: Path) -> None:
    make_users(db)
    path = write_suite(tmp_path, {"name": "s", "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "email"}}]})  # the column is "Email"

    with pytest.raises(DataCheckFailed) as raised:
        run_suite(db, SCHEMA, TABLE, path)
    message = str(raised.value)
    assert message.startswith(f"{path}: ")
    assert "expect_column_values_to_not_be_null on email" in message


def test_missing_table_raises(db: str, tmp_path: Path) -> None:
    path = write_suite(tmp_path, SUITE)
    with pytest.raises(DataCheckFailed, match=r"does not exist"):
        run_suite(db, "public", "nope", path)


MALFORMED = [
    pytest.param('{"name": "s", "expectations": [', r":1:\d+: not valid JSON", id="not-json"),
    pytest.param([1, 2], r"an expectation suite is a JSON object, found list", id="not-an-object"),
    pytest.param({"expectation_suite_name": "s", "expectations": [
        {"expectation_type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}}]},
        r"GX 0\.x suite .*Fix: rename expectation_suite_name to name", id="gx-0.x"),
    pytest.param({"name": "s", "expectations": [], "data_asset_type": None},
                 r"unknown key\(s\) 'data_asset_type' in the suite", id="unknown-suite-key"),
    pytest.param({"expectations": []}, r'"name" is missing or empty', id="no-name"),
    pytest.param({"name": "s"}, r'"expectations" is missing or not a list', id="no-expectations"),
    pytest.param({"name": "s", "expectations": [{"kwargs": {"column": "id"}}]},
                 r'expectations\[0\] has no "type"', id="no-type"),
    pytest.param({"name": "s", "expectations": [{"type": "expect_column_values_to_not_be_null", "column": "id"}]},
                 r"expectations\[0\] \(expect_column_values_to_not_be_null\): unknown key\(s\) 'column'",
                 id="kwarg-outside-kwargs"),
    pytest.param({"name": "s", "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}},
        {"type": "expect_column_values_to_match_regexp", "kwargs": {"column": "Email", "regex": "x"}}]},
        r"expectations\[1\] \(expect_column_values_to_match_regexp\): unknown expectation type\. "
        r"Fix: did you mean expect_column_values_to_match_regex", id="unknown-type"),
    pytest.param({"name": "s", "expectations": [{"type": REGEX, "kwargs": {"colum": "Email", "regex": "x"}}]},
                 r"expectations\[0\] \(expect_column_values_to_match_regex\): invalid expectation: .*"
                 r"column field required.*colum extra fields not permitted", id="bad-kwargs"),
    pytest.param({"name": "s", "expectations": [
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "status", "value_set": ["a"], "mostly": 2}}]},
        r"invalid expectation: .*mostly", id="bad-mostly"),
    pytest.param({"name": "s", "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}, "meta": {"again": True}}]},
        r"expectations\[1\] \(expect_column_values_to_not_be_null\): repeats expectations\[0\]", id="duplicate"),
]


@pytest.mark.parametrize(("content", "problem"), MALFORMED)
def test_malformed_suite_raises_naming_file_and_problem(db: str, tmp_path: Path, content: Any, problem: str) -> None:
    make_users(db)
    path = write_suite(tmp_path, content)

    with pytest.raises(DataCheckFailed) as raised:
        run_suite(db, SCHEMA, TABLE, path)
    message = str(raised.value)
    assert message.startswith(str(path)), message
    assert re.search(problem, message), message
    # the same problems are found without a database
    with pytest.raises(DataCheckFailed, match=re.escape(str(path))):
        check_suite_file(path)


def test_missing_suite_file_raises(tmp_path: Path) -> None:
    with pytest.raises(DataCheckFailed, match=r"nope\.json: cannot read the expectation suite"):
        load_suite(tmp_path / "nope.json")


def test_suite_written_by_gx_itself_loads(tmp_path: Path) -> None:
    """What GX 1.x exports (ids, severity, notes, rendered_content, suite_parameters) is accepted."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name="exported", expectations=[
        gxe.ExpectColumnValuesToMatchRegex(column="Email", regex=EMAIL_REGEX, notes="n", severity="warning")])
    exported = suite.to_json_dict()
    exported["expectations"][0]["id"] = "6f1d2f1e-0000-4000-8000-000000000000"
    path = write_suite(tmp_path, exported)

    assert check_suite_file(path) == [REGEX]


# --- Data Docs ---------------------------------------------------------------------------------


def visible_text(html: str) -> str:
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#34;", '"').replace("&#39;", "'")


def test_results_and_data_docs_are_written_offline_inside_out_dir(db: str, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    make_users(db, bad=BAD_EMAILS)
    run = validate_suite(db, SCHEMA, TABLE, write_suite(tmp_path, SUITE), run_name="scheduled__2026-11-21T00:00:00+00:00")
    out_dir = tmp_path / "reports" / "gx" / "Staging $HOME.users"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)

    def no_network(self: socket.socket, address: Any) -> None:
        raise AssertionError(f"network call while building Data Docs: {address}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)

    results = write_results(run.result, out_dir)
    started = time.perf_counter()
    index = build_data_docs(run.result, out_dir)
    seconds = time.perf_counter() - started

    assert results == out_dir / RESULT_FILE
    assert json.loads(results.read_text(encoding="utf-8")) == run.result
    assert index == out_dir.resolve() / "index.html"
    assert list(cwd.iterdir()) == []  # nothing written outside out_dir
    print(f"Data Docs built in {seconds:.2f} s")

    index_html = index.read_text(encoding="utf-8")
    assert "shop.users.users" in index_html
    # the index lists the validation (filled in by JavaScript from this data) with a relative link
    [link] = re.findall(r"'_table_row_link_path': '(validations/[^']+\.html)'", index_html)
    page = out_dir / link.replace("%2B", "+")
    assert page.is_file(), link
    assert link.startswith("validations/shop/users/users/scheduled__2026-11-21T00_00_00_00_00/")
    text = visible_text(page.read_text(encoding="utf-8"))
    # GX renders each expectation as a sentence, with its column and the unexpected values
    for phrase in ("values must match this regular expression", "values must belong to this set",
                   "values must never be null", "must always be greater than or equal to",
                   "Must have greater than or equal to 1 and less than or equal to 1000 rows",
                   "Email", "status", "3 unexpected values found", *BAD_EMAILS.values()):
        assert phrase in text, phrase
    assert "Status: Failed" in text
    suite_page = out_dir / "expectations" / "shop" / "users" / "users.html"
    assert "values must match this regular expression" in visible_text(suite_page.read_text(encoding="utf-8"))
    # every file link is relative and stays inside out_dir
    for html_file in out_dir.rglob("*.html"):
        for href in re.findall(r'href="([^"#][^"]*)"', html_file.read_text(encoding="utf-8")):
            if not href.startswith("http"):
                assert not href.startswith("/") and "file:" not in href, (html_file, href)
    assert str(tmp_path) not in index_html
    # GX's 4 MB static folder is not copied; the favicon is
    assert sorted(p.relative_to(out_dir).as_posix() for p in (out_dir / "static").rglob("*") if p.is_file()) \
        == ["static/images/favicon.ico"]


def test_rebuilding_data_docs_replaces_the_previous_site(db: str, tmp_path: Path) -> None:
    make_users(db)
    path = write_suite(tmp_path, SUITE)
    out_dir = tmp_path / "gx"
    build_data_docs(validate_suite(db, SCHEMA, TABLE, path).result, out_dir)
    build_data_docs(validate_suite(db, SCHEMA, TABLE, path).result, out_dir)

    assert len(list((out_dir / "validations").rglob("*.html"))) == 1


def test_hostile_suite_and_run_names_stay_inside_out_dir(tmp_path: Path) -> None:
    result = {
        "success": True, "results": [], "suite_name": "../../../escape./etc/x", "suite_parameters": {},
        "statistics": {"evaluated_expectations": 0, "successful_expectations": 0,
                       "unsuccessful_expectations": 0, "success_percent": None},
        "meta": {"great_expectations_version": "1.24.1",
                 "active_batch_definition": {"datasource_name": "target", "data_connector_name": "fluent",
                                             "data_asset_name": "../../asset", "batch_identifiers": {}},
                 "run_id": {"run_name": "../../run", "run_time": "2026-11-21T00:00:00+00:00"}},
    }
    out_dir = tmp_path / "site" / "gx"

    index = build_data_docs(result, out_dir)

    assert index.is_file()
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file() and out_dir.resolve() not in p.resolve().parents) == []


def test_module_imports_do_not_import_great_expectations() -> None:
    import subprocess
    import sys

    code = ("import sys, dbsplit.engine.verify.suites, dbsplit.engine.verify.datadocs, dbsplit.engine.verify.references; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'great_expectations', 'sqlalchemy', 'pandas'}))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"
