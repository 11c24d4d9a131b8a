"""The table's GX suite on the rows a resync writes: row-by-row expectations checked before the merge
writes anything; a failure changes nothing (target, sync state, source); table-wide expectations are
named as left to the full load's validation."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from dbsplit.errors import DataCheckFailed
from dbsplit.engine.resync.resync import install_change_tracking, resync_table

from tests.integration.test_resync import ITEMS_DDL, ITEMS_FILL, NS, SALT, full_load_passthrough, items_table, rows, versions

pytestmark = pytest.mark.integration

SUITE = {
    "name": "shop.items",
    "expectations": [
        {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "name", "regex": "^(item|new) [0-9]+"}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "qty", "min_value": 0, "max_value": 16}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "name"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "qty", "mostly": 0.5}},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
        {"type": "expect_column_values_to_be_increasing", "kwargs": {"column": "id"}},
    ],
}


@pytest.fixture
def shop(make_db, tmp_path: Path):
    source, target = make_db("ssrc"), make_db("sdst")
    with psycopg.connect(source) as c:
        c.execute(ITEMS_DDL)
        c.execute(ITEMS_FILL, (500,))
    full_load_passthrough(source, target, ITEMS_DDL, "items")
    install_change_tracking(target, items_table())
    suite = tmp_path / "items.json"
    suite.write_text(json.dumps(SUITE))
    resync_table(source, target, items_table(), namespace=NS, salt=SALT, run_id="first", suite=suite)
    return source, target, suite


def sync(source: str, target: str, suite: Path):
    return resync_table(source, target, items_table(), namespace=NS, salt=SALT, run_id="test", suite=suite)


def state(target: str) -> tuple:
    with psycopg.connect(target) as c:
        return c.execute("SELECT watermark, runs, last_run_id FROM _dbsplit.sync_state").fetchone()


def test_changed_rows_that_pass_the_suite_are_written_and_reported(shop) -> None:
    source, target, suite = shop
    with psycopg.connect(source) as c:
        c.execute("UPDATE items SET name = name || ' v2', updated_at = now() WHERE id % 10 = 0")
        c.execute("INSERT INTO items SELECT g, 'new ' || g, 3, 1, NULL, now() FROM generate_series(501, 520) g")
    r = sync(source, target, suite)
    assert r.upserted == r.checked == 70 < r.read_rows   # the overlap's re-reads equal the target: not written
    assert [(o["expectation"], o["success"]) for o in r.checks] == [
        ("expect_column_values_to_match_regex", True), ("expect_column_values_to_be_between", True)]
    assert r.checks_table_wide == ["expect_column_values_to_be_unique [name]",
                                   "expect_column_values_to_not_be_null [qty] (mostly 0.5)",
                                   "expect_table_row_count_to_be_between",
                                   "expect_column_values_to_be_increasing [id]"]
    assert rows(target, "items") == rows(source, "items")
    with psycopg.connect(target) as c:   # the check table is gone
        assert c.execute("SELECT count(*) FROM pg_tables WHERE schemaname = '_dbsplit' AND tablename LIKE 'check:%'"
                         ).fetchone()[0] == 0


def test_a_changed_row_failing_the_suite_fails_the_resync_and_changes_nothing(shop) -> None:
    source, target, suite = shop
    with psycopg.connect(source) as c:
        c.execute("UPDATE items SET name = name || ' v2', updated_at = now() WHERE id % 10 = 0")
        c.execute("UPDATE items SET qty = 99, updated_at = now() WHERE id IN (7, 8)")   # outside 0..16
        c.execute("DELETE FROM items WHERE id = 300")
    source_rows = rows(source, "items")
    before, before_state = versions(target, "items"), state(target)
    with pytest.raises(DataCheckFailed) as failed:
        sync(source, target, suite)
    message = str(failed.value)
    assert "public.items" in message and str(suite) in message
    assert "expect_column_values_to_be_between [qty]: 2 row(s) unexpected" in message
    assert "nothing was changed" in message and "Fix:" in message
    assert versions(target, "items") == before and state(target) == before_state
    assert rows(source, "items") == source_rows
    # fixed in the source: the next resync goes through and catches up with everything
    with psycopg.connect(source) as c:
        c.execute("UPDATE items SET qty = 5, updated_at = now() WHERE id IN (7, 8)")
    r = sync(source, target, suite)
    assert r.deleted == 1 and all(o["success"] for o in r.checks)
    assert rows(target, "items") == rows(source, "items")


def test_rows_already_in_the_target_are_not_what_a_resync_checks(shop) -> None:
    """Only the rows the resync writes are checked: an old row of the target that breaks the suite (the
    full load's validation is where it belongs), re-read by the overlap window but equal to the
    target's, does not fail a resync; a row without any change staged, nothing is checked at all."""
    source, target, suite = shop
    for conninfo in (source, target):
        with psycopg.connect(conninfo) as c:   # the same row in both, written before the tracking saw it
            c.execute("SET session_replication_role = replica")
            c.execute("UPDATE items SET qty = 50 WHERE id = 450")   # inside the overlap window
    idle = sync(source, target, suite)
    assert idle.read_rows > 0 and idle.checked == 0 and idle.upserted == 0
    with psycopg.connect(source) as c:
        c.execute("UPDATE items SET name = name || ' v3', updated_at = now() WHERE id = 2")
    r = sync(source, target, suite)
    assert r.upserted == r.checked == 1 and r.read_rows > 1
    assert rows(target, "items") == rows(source, "items")


@pytest.mark.parametrize("qty, passes", [(5, True), (99, False)], ids=["valid", "outside-the-range"])
def test_rows_the_key_diff_finds_are_checked_too(shop, qty: int, passes: bool) -> None:
    """A row inserted with an old clock is not read by watermark: the key diff finds it and the merge
    upserts it in a second pass, whose rows the suite checks as well."""
    source, target, suite = shop
    with psycopg.connect(source) as c:
        c.execute("UPDATE items SET name = name || ' v2', updated_at = now() WHERE id % 50 = 0")
        c.execute("INSERT INTO items VALUES (9001, 'new 9001', %s, 1, NULL, now() - interval '30 days')", (qty,))
    before = versions(target, "items")
    if not passes:
        with pytest.raises(DataCheckFailed, match=r"expect_column_values_to_be_between \[qty\]: 1 row\(s\) unexpected"):
            sync(source, target, suite)
        assert versions(target, "items") == before
        return
    r = sync(source, target, suite)
    assert r.diff["source_only"] == 1 and r.inserted == 1
    assert r.checked == r.upserted == 11
    assert all(o["success"] for o in r.checks) and r.checks[1]["observed"] == 0
    assert rows(target, "items") == rows(source, "items")
