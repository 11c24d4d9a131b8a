"""validate_table runs GX Core expectations as SQL on a real server and reports data failures as outcomes."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable, Sequence

import psycopg
import pytest
from psycopg import sql

from dbsplit.errors import DataCheckFailed
from dbsplit.engine.verify.gx_checks import (
    COMPOUND_UNIQUE,
    NOT_NULL,
    ROW_COUNT,
    UNIQUE,
    ExpectationOutcome,
    TableValidation,
    validate_table,
)

pytestmark = pytest.mark.integration

SCHEMA = "My Schema"
TABLE = 'Mixed Case "T"'


def make_table(conninfo: str, schema: str, table: str, columns: Sequence[tuple[str, str]],
               rows: Sequence[Sequence[object]]) -> None:
    """Create schema.table with the given (name, type) columns and rows; names are used verbatim."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("CREATE TABLE {} ({})").format(
            sql.Identifier(schema, table),
            sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in columns)))
        if rows:
            with conn.cursor() as cur:
                cur.executemany(sql.SQL("INSERT INTO {} VALUES ({})").format(
                    sql.Identifier(schema, table), sql.SQL(", ").join(sql.Placeholder() * len(columns))), rows)


# "Name" and "name" are two columns: GX 1.24 compares column names case-insensitively on
# PostgreSQL, so a check on "Name" must not read "name" (which holds NULLs) by mistake.
ORDER_LINES = [("Order Id", "int"), ("Line", "int"), ("Name", "text"), ("name", "text")]


def order_lines(n: int) -> list[tuple[object, ...]]:
    return [(i // 3, i % 3, f"item {i}", None) for i in range(n)]


def outcome(result: TableValidation, expectation: str, column: str | None = None) -> ExpectationOutcome:
    [found] = [o for o in result.outcomes if o.expectation == expectation and o.column == column]
    return found


@pytest.fixture
def db(make_db: Callable[[str], str]) -> str:
    return make_db("gx")


def test_good_table_with_awkward_names_passes(db: str) -> None:
    make_table(db, SCHEMA, TABLE, ORDER_LINES, order_lines(300))

    result = validate_table(db, SCHEMA, TABLE, expected_rows=300, key_columns=["Order Id", "Line"],
                            not_null_columns=["Name"])

    assert result.success, result.summary()
    assert (result.schema, result.table) == (SCHEMA, TABLE)
    assert all(o.success for o in result.outcomes)
    assert [(o.expectation, o.column) for o in result.outcomes] == [
        (ROW_COUNT, None), (COMPOUND_UNIQUE, "Order Id, Line"),
        (NOT_NULL, "Order Id"), (NOT_NULL, "Line"), (NOT_NULL, "Name"),
    ]
    assert outcome(result, ROW_COUNT).observed == 300
    assert outcome(result, NOT_NULL, "Name").observed == 0
    assert "all 5 checks passed" in result.summary()
    json.dumps([o.__dict__ for o in result.outcomes])  # evidence is stored as JSON


def test_single_key_and_plain_names(db: str) -> None:
    make_table(db, "public", "users", [("id", "bigint"), ("email", "text")],
               [(i, f"u{i}@example.org") for i in range(1, 51)])

    result = validate_table(db, "public", "users", expected_rows=50, key_columns=["id"], not_null_columns=["email"])

    assert result.success, result.summary()
    assert outcome(result, UNIQUE, "id").observed == 0
    assert outcome(result, ROW_COUNT).observed == 50


def test_wrong_row_count_fails_with_observed_count(db: str) -> None:
    make_table(db, SCHEMA, TABLE, ORDER_LINES, order_lines(30))

    result = validate_table(db, SCHEMA, TABLE, expected_rows=31, key_columns=["Order Id", "Line"])

    assert not result.success
    rows = outcome(result, ROW_COUNT)
    assert (rows.success, rows.observed) == (False, 30)
    assert "expected 31 rows, found 30" in rows.details
    summary = result.summary()
    assert summary.count("\n") == 0  # one line per failed expectation, only the count failed
    assert '"My Schema"."Mixed Case ""T"""' in summary
    assert ROW_COUNT in summary and "observed 30" in summary


def test_duplicate_single_key_fails(db: str) -> None:
    make_table(db, "public", "users", [("id", "int"), ("email", "text")],
               [(1, "a"), (2, "b"), (2, "c"), (3, "d"), (7, "e"), (7, "f"), (7, "g")])

    result = validate_table(db, "public", "users", expected_rows=7, key_columns=["id"])

    assert not result.success
    unique = outcome(result, UNIQUE, "id")
    assert not unique.success
    assert unique.observed == 5  # rows that share their key with another row: 2, 2, 7, 7, 7
    assert "2" in unique.details and "7" in unique.details
    assert outcome(result, ROW_COUNT).success
    assert "expect_column_values_to_be_unique [id] failed: observed 5" in result.summary()


def test_duplicate_compound_key_fails(db: str) -> None:
    rows = order_lines(12)
    rows.append((1, 1, "duplicate line", None))
    make_table(db, SCHEMA, TABLE, ORDER_LINES, rows)

    result = validate_table(db, SCHEMA, TABLE, expected_rows=13, key_columns=["Order Id", "Line"])

    assert not result.success
    unique = outcome(result, COMPOUND_UNIQUE, "Order Id, Line")
    assert (unique.success, unique.observed) == (False, 2)
    assert "Order Id=1" in unique.details and "Line=1" in unique.details
    assert [o.expectation for o in result.outcomes if not o.success] == [COMPOUND_UNIQUE]


def test_a_primary_key_on_the_key_columns_stands_for_the_duplicate_scan(db: str) -> None:
    columns = [("Order Id", "int"), ("Line", "int"), ("Name", "text"), ("name", "text")]
    make_table(db, SCHEMA, TABLE, columns, order_lines(12))
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY ({}, {})").format(
            sql.Identifier(SCHEMA, TABLE), sql.Identifier("lines Pk"), sql.Identifier("Line"), sql.Identifier("Order Id")))

    result = validate_table(db, SCHEMA, TABLE, expected_rows=12, key_columns=["Order Id", "Line"])

    unique = outcome(result, COMPOUND_UNIQUE, "Order Id, Line")
    assert (unique.success, unique.observed) == (True, 0)
    assert "guaranteed by the primary key lines Pk" in unique.details
    assert outcome(result, NOT_NULL, "Order Id").success and result.success
    # a primary key on other columns proves nothing about these: GX scans and finds the duplicates
    scanned = validate_table(db, SCHEMA, TABLE, expected_rows=12, key_columns=["Order Id"])
    assert outcome(scanned, UNIQUE, "Order Id").observed == 12 and not scanned.success
    assert "guaranteed" not in outcome(scanned, UNIQUE, "Order Id").details
    # and without trusting it, GX scans the key too
    again = validate_table(db, SCHEMA, TABLE, expected_rows=12, key_columns=["Order Id", "Line"], trust_primary_key=False)
    assert outcome(again, COMPOUND_UNIQUE, "Order Id, Line").success
    assert "guaranteed" not in outcome(again, COMPOUND_UNIQUE, "Order Id, Line").details


def test_null_in_not_null_column_fails(db: str) -> None:
    rows = order_lines(20)
    rows[5] = (rows[5][0], rows[5][1], None, "lower-case column is not checked")
    make_table(db, SCHEMA, TABLE, ORDER_LINES, rows)

    result = validate_table(db, SCHEMA, TABLE, expected_rows=20, key_columns=["Order Id", "Line"],
                            not_null_columns=["Name"])

    assert not result.success
    nulls = outcome(result, NOT_NULL, "Name")
    assert (nulls.success, nulls.observed) == (False, 1)
    assert "1 of 20 rows are NULL" in nulls.details
    assert [o for o in result.outcomes if not o.success] == [nulls]
    assert "expect_column_values_to_not_be_null [Name] failed: observed 1" in result.summary()


def test_null_in_key_column_fails(db: str) -> None:
    make_table(db, "public", "users", [("id", "int"), ("email", "text")], [(1, "a"), (None, "b"), (None, "c")])

    result = validate_table(db, "public", "users", expected_rows=3, key_columns=["id"])

    assert not result.success
    assert outcome(result, NOT_NULL, "id").observed == 2
    assert outcome(result, UNIQUE, "id").success  # GX ignores NULLs for uniqueness; the NOT NULL check catches them


def test_table_without_key_has_no_uniqueness_check(db: str) -> None:
    make_table(db, "public", "events", [("payload", "text")], [("x",), ("x",)])

    result = validate_table(db, "public", "events", expected_rows=2, key_columns=[])

    assert result.success
    assert [o.expectation for o in result.outcomes] == [ROW_COUNT]


def test_dollar_sign_in_names_is_not_a_gx_config_variable(db: str) -> None:
    make_table(db, "app$HOME", "t${X}", [("id$PATH", "int")], [(1,), (2,)])

    result = validate_table(db, "app$HOME", "t${X}", expected_rows=2, key_columns=["id$PATH"])

    assert result.success, result.summary()


def test_missing_table_raises(db: str) -> None:
    make_table(db, SCHEMA, TABLE, ORDER_LINES, [])

    with pytest.raises(DataCheckFailed) as raised:
        validate_table(db, SCHEMA, "No Such Table", expected_rows=0, key_columns=["id"])
    message = str(raised.value)
    assert message.startswith('"My Schema"."No Such Table": ')
    assert "does not exist" in message


def test_missing_schema_raises_and_says_so(db: str) -> None:
    with pytest.raises(DataCheckFailed, match=r'schema "Nowhere" does not exist'):
        validate_table(db, "Nowhere", "t", expected_rows=0, key_columns=["id"])


def test_a_database_that_does_not_answer_raises_naming_the_table(db: str) -> None:
    gone = psycopg.conninfo.make_conninfo(db, dbname="dbsplit_no_such_database")
    with pytest.raises(DataCheckFailed) as raised:
        validate_table(gone, "public", "t", expected_rows=0, key_columns=["id"])
    assert str(raised.value).startswith('"public"."t": ') and "dbsplit_no_such_database" in str(raised.value)


def test_missing_column_raises(db: str) -> None:
    make_table(db, SCHEMA, TABLE, ORDER_LINES, order_lines(3))

    with pytest.raises(DataCheckFailed, match=r'could not evaluate expect_column_values_to_not_be_null on '
                                              r'ORDER ID: .*"ORDER ID".*does not exist'):
        validate_table(db, SCHEMA, TABLE, expected_rows=3, key_columns=["Order Id", "Line"],
                       not_null_columns=["ORDER ID"])


def test_no_files_progress_bars_or_gx_info_logs(db: str, tmp_path, monkeypatch: pytest.MonkeyPatch,
                                                capfd: pytest.CaptureFixture[str],
                                                caplog: pytest.LogCaptureFixture) -> None:
    make_table(db, "public", "users", [("id", "int")], [(1,), (2,)])
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO)

    assert validate_table(db, "public", "users", expected_rows=2, key_columns=["id"]).success

    assert list(tmp_path.iterdir()) == []
    captured = capfd.readouterr()
    assert "Calculating Metrics" not in captured.err + captured.out
    assert [r.getMessage() for r in caplog.records if r.name.startswith("great_expectations")] == []


def test_module_import_does_not_import_great_expectations() -> None:
    code = ("import sys, dbsplit.engine.verify.gx_checks; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'great_expectations', 'sqlalchemy', 'pandas'}))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def test_summary_lists_every_failure() -> None:
    result = TableValidation("s", "t", False, [
        ExpectationOutcome(ROW_COUNT, None, False, 9, "expected 10 rows, found 9"),
        ExpectationOutcome(NOT_NULL, "a", True, 0, "expected no NULL; 0 of 9 rows are NULL"),
        ExpectationOutcome(NOT_NULL, "b", False, 2, "expected no NULL; 2 of 9 rows are NULL"),
    ])
    assert result.summary().splitlines() == [
        '"s"."t": expect_table_row_count_to_equal failed: observed 9; expected 10 rows, found 9',
        '"s"."t": expect_column_values_to_not_be_null [b] failed: observed 2; expected no NULL; 2 of 9 rows are NULL',
    ]
    with pytest.raises(DataCheckFailed, match="observed 9"):
        result.raise_if_failed()
