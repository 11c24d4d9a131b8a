"""Incremental resync on real databases: source changes reach the target exactly, a second resync
writes nothing, target-side writes are reported as conflicts, the watermark overlap re-reads rows
written with an older clock; pass-through tables and transformed ones (rename, cast, mask, uuid_key)."""

from __future__ import annotations

import bisect
import random
import uuid
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Iterator

import psycopg
import pytest
from psycopg import sql

from dbsplit.errors import DataCheckFailed
from dbsplit.engine.resync import resync as resync_module
from dbsplit.engine.resync import diff as resync_diff
from dbsplit.engine.resync import keydiff as resync_keydiff
from dbsplit.pg.copy import source_connection
from dbsplit.engine.resync.resync import ChangeTrackingMissing, install_change_tracking, resync_table
from dbsplit.engine.resync.state import key_table_name, sums_table_name
from dbsplit.engine.migrate.transform import extract_chunk, load_chunk, transform_chunk
from dbsplit.model.resolved import ColumnMap, ResolvedTable

pytestmark = pytest.mark.integration

NS = uuid.UUID("0b4c2f9e-1111-4222-8333-444455556666")
SALT = b"resync-salt"
ROWS = 3000

ITEMS_DDL = """
CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL, qty integer, price numeric(10,2), tags text[],
                    updated_at timestamptz NOT NULL)
"""
ITEMS_FILL = """
INSERT INTO items SELECT g, 'item ' || g, g %% 17, g * 1.25, ARRAY['a', 'b' || g],
       now() - interval '2 days' + g * interval '1 second' FROM generate_series(1, %s) g
"""
ITEM_COLUMNS = (("id", "bigint", True), ("name", "text", True), ("qty", "integer", False),
                ("price", "numeric(10,2)", False), ("tags", "text[]", False),
                ("updated_at", "timestamp with time zone", True))

PEOPLE_DDL = """
CREATE TABLE people (id bigint PRIMARY KEY, full_name text NOT NULL, age_text text, email text, note text,
                     updated_at timestamptz NOT NULL);
INSERT INTO people SELECT g, 'Person ' || g || CASE WHEN g % 7 = 0 THEN E' "q",\\nx' ELSE '' END,
       (20 + g % 50)::text, CASE WHEN g % 5 = 0 THEN NULL ELSE 'p' || g || '@example.com' END,
       CASE WHEN g % 3 = 0 THEN '' ELSE 'note ' || g END, now() - interval '2 days' + g * interval '1 second'
FROM generate_series(1, 3000) g;
"""
PEOPLE_TARGET_DDL = """
CREATE TABLE people_v2 (id uuid PRIMARY KEY, name text NOT NULL, age integer, email text, note text,
                        updated_at timestamptz NOT NULL)
"""


def items_table(**kw) -> ResolvedTable:
    cols = tuple(ColumnMap(n, t, nn, "copy", (n,)) for n, t, nn in ITEM_COLUMNS)
    return ResolvedTable("shop", "public", "items", "public", "items", cols, ("id",), ("id",),
                         watermark="updated_at", **kw)


def people_table() -> ResolvedTable:
    cols = (
        ColumnMap("id", "uuid", True, "uuid_key", ("id",)),
        ColumnMap("name", "text", True, "copy", ("full_name",)),
        ColumnMap("age", "integer", False, "cast", ("age_text",)),
        ColumnMap("email", "text", False, "mask_hash", ("email",)),
        ColumnMap("note", "text", False, "copy", ("note",)),
        ColumnMap("updated_at", "timestamp with time zone", True, "copy", ("updated_at",)),
    )
    return ResolvedTable("people", "public", "people", "public", "people_v2", cols, ("id",), ("id",),
                         watermark="updated_at")


# ---------------------------------------------------------------------------------------------- helpers


def full_load_passthrough(source: str, target: str, ddl: str, table: str) -> None:
    """What a full load leaves: the target table with its key, filled by binary COPY from one snapshot."""
    with psycopg.connect(target) as t, source_connection(source) as s:
        t.execute(ddl)
        with s.cursor() as sc, t.cursor() as tc:
            with sc.copy(sql.SQL("COPY {} TO STDOUT (FORMAT binary)").format(sql.Identifier(table))) as cin, \
                    tc.copy(sql.SQL("COPY {} FROM STDIN (FORMAT binary)").format(sql.Identifier(table))) as cout:
                for block in cin:
                    cout.write(block)
        t.commit()


def full_load_transformed(source: str, target: str, table: ResolvedTable, tmp: Path, chunk: int = 1000) -> None:
    """A full load through the transformed path, in key-range chunks of one snapshot."""
    with psycopg.connect(target) as t, source_connection(source) as s:
        t.execute(PEOPLE_TARGET_DDL)
        with s.transaction():
            hi = s.execute("SELECT coalesce(max(id), 0) FROM people").fetchone()[0]
            for lo in range(0, hi + 1, chunk):
                where = sql.SQL("id >= {} AND id < {}").format(lo, lo + chunk)
                extract_chunk(s, table, where, tmp / "e.arrow")
                transform_chunk(tmp / "e.arrow", tmp / "t.arrow", table, NS, SALT)
                load_chunk(t, "public", table.target_table, table, tmp / "t.arrow")
        t.commit()


def rows(conninfo: str, table: str) -> list[str]:
    """Every row as PostgreSQL text, in key order."""
    with psycopg.connect(conninfo) as c:
        c.execute("SET TimeZone = 'UTC'")
        return [r[0] for r in c.execute(sql.SQL("SELECT t::text FROM {} t ORDER BY 1").format(sql.Identifier(table)))]


def versions(conninfo: str, table: str) -> list[tuple]:
    """(key, xmin, ctid) of every row: any write changes them."""
    with psycopg.connect(conninfo) as c:
        return c.execute(sql.SQL("SELECT id::text, xmin::text, ctid::text FROM {} ORDER BY 1").format(
            sql.Identifier(table))).fetchall()


def sync(source: str, target: str, table: ResolvedTable, **kw):
    kw.setdefault("run_id", "test")
    return resync_table(source, target, table, namespace=NS, salt=SALT, **kw)


def assert_key_table_consistent(source: str, target: str, table: ResolvedTable) -> None:
    """The key table holds exactly the source's keys, and its bucket sums match it."""
    kt = key_table_name(table.target_schema, table.target_table)
    with psycopg.connect(source) as s, psycopg.connect(target) as t:
        src_keys = {r[0] for r in s.execute(sql.SQL("SELECT {}::text FROM {}").format(
            sql.Identifier(table.source_key[0]), sql.Identifier(table.source_schema, table.source_table)))}
        keys = {r[0] for r in t.execute(sql.SQL("SELECT s0::text FROM {}").format(sql.Identifier("_dbsplit", kt)))}
        assert keys == src_keys
        bounds = t.execute("SELECT root_bounds FROM _dbsplit.sync_state WHERE target_table = %s",
                           (f"{table.target_schema}.{table.target_table}",)).fetchone()[0]
        side = resync_diff.KeySide(t, sql.Identifier("_dbsplit", kt), ("s0",), ("bigint",), sql.Identifier("h"))
        expected = t.execute(sql.SQL("SELECT {}, count(*), sum(h) FROM {} GROUP BY 1").format(
            resync_diff.bucket_expr(side, [tuple(b) for b in bounds]), sql.Identifier("_dbsplit", kt))).fetchall()
        kept = t.execute(sql.SQL("SELECT b, n, h FROM {} WHERE n <> 0").format(
            sql.Identifier("_dbsplit", sums_table_name(kt)))).fetchall()
        assert sorted(kept) == sorted(expected)


@pytest.fixture
def items(make_db):
    source, target = make_db("rsrc"), make_db("rdst")
    with psycopg.connect(source) as c:
        c.execute(ITEMS_DDL)
        c.execute(ITEMS_FILL, (ROWS,))
    full_load_passthrough(source, target, ITEMS_DDL, "items")
    install_change_tracking(target, items_table())
    return source, target


@pytest.fixture
def people(make_db, tmp_path: Path):
    """The people table fully loaded through the transformed path, tracked and resynced once."""
    source, target = make_db("jsrc"), make_db("jdst")
    table = people_table()
    with psycopg.connect(source) as c:
        c.execute(PEOPLE_DDL)
    full_load_transformed(source, target, table, tmp_path)
    install_change_tracking(target, table)
    sync(source, target, table)
    return source, target, table


def change_items(source: str, first_new: int, r: int) -> dict[str, int]:
    """Round r: updates, deletes (scattered and one block) and inserts, on distinct rows."""
    with psycopg.connect(source) as c:
        up = c.execute("UPDATE items SET name = name || ' v2', tags = tags || 'c'::text, updated_at = now()"
                       " WHERE id %% 50 = %s", (r,)).rowcount
        gone = c.execute("DELETE FROM items WHERE (id %% 97 = %s OR id BETWEEN %s AND %s) AND id %% 50 <> %s",
                         (r, 1500 + 100 * r, 1530 + 100 * r, r)).rowcount
        new = c.execute("INSERT INTO items SELECT g, 'new ' || g, NULL, NULL, NULL, now()"
                        " FROM generate_series(%s::int, %s::int) g", (first_new, first_new + 24)).rowcount
    return {"updated": up, "deleted": gone, "inserted": new}


# ---------------------------------------------------------------------------------------------- tests


def test_passthrough_resync_makes_target_equal_and_second_run_writes_nothing(items) -> None:
    source, target = items
    table = items_table()
    # changes between the full load and the first resync (which builds the key table)
    c1 = change_items(source, 10_001, 1)
    r1 = sync(source, target, table)
    assert r1.rebuilt_keys
    assert (r1.upserted, r1.deleted, r1.conflicts) == (c1["updated"] + c1["inserted"], c1["deleted"], [])
    assert rows(target, "items") == rows(source, "items")
    assert_key_table_consistent(source, target, table)
    # changes between two resyncs: found by watermark (updates, inserts) and by the key diff (deletes)
    c2 = change_items(source, 20_001, 2)
    r2 = sync(source, target, table)
    assert not r2.rebuilt_keys
    assert r2.inserted == c2["inserted"] and r2.updated == c2["updated"] and r2.deleted == c2["deleted"]
    assert r2.diff["target_only"] == c2["deleted"]
    assert r2.verified is None   # nothing but the merge writes the table: its rows are not looked up again
    assert rows(target, "items") == rows(source, "items")
    assert_key_table_consistent(source, target, table)
    # nothing changed in the source: nothing is written (same row versions), though the overlap re-reads rows
    before = versions(target, "items")
    r3 = sync(source, target, table)
    assert (r3.upserted, r3.deleted, r3.conflicts) == (0, 0, [])
    assert r3.read_rows > 0
    assert versions(target, "items") == before
    assert r3.watermark_before == r2.watermark_after == r3.watermark_after
    with psycopg.connect(target) as c:
        state = c.execute("SELECT watermark, last_run_id, runs, last_upserted, last_deleted, last_verified"
                          " FROM _dbsplit.sync_state WHERE target_table = 'public.items'").fetchone()
    assert state == (r3.watermark_after, "test", 3, 0, 0, None)


def test_rows_a_type_keeps_from_binary_copy_travel_as_text(items, monkeypatch) -> None:
    """A column type without a usable binary format (wire.table_needs_text_copy names it): the changed
    rows are copied as text, quotes, backslashes, newlines and NULLs included, and arrive exactly."""
    from dbsplit.engine.resync import fetch as resync_fetch

    source, target = items
    table = items_table()
    sync(source, target, table)
    asked: list[str] = []

    def needs_text(conn, schema, rel, version=None):
        asked.append(rel)
        return {"tags": "pretend: no binary format on the target"}

    monkeypatch.setattr(resync_fetch.wire, "table_needs_text_copy", needs_text)
    with psycopg.connect(source) as c:
        c.execute("UPDATE items SET name = E'a \"quoted\"\\\\ name\\nnext line\\ttab', tags = ARRAY['x,y', NULL, '{}'],"
                  " updated_at = now() WHERE id % 7 = 0")
        c.execute("INSERT INTO items SELECT g, E'new\\n' || g, NULL, NULL, NULL, now() FROM generate_series(5001, 5400) g")
    r = sync(source, target, table)
    assert asked == ["items"]
    assert r.inserted == 400 and r.updated == ROWS // 7
    assert rows(target, "items") == rows(source, "items")


def test_sync_state_of_an_older_dbsplit_gains_the_verified_count(items) -> None:
    source, target = items
    with psycopg.connect(target) as c:   # the state table as dbsplit created it before the column existed
        c.execute("ALTER TABLE _dbsplit.sync_state DROP COLUMN last_verified")
        # a service's trigger that writes nothing: the staged rows are looked up again all the same
        c.execute("CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$")
        c.execute("CREATE TRIGGER noop AFTER INSERT ON items EXECUTE FUNCTION noop()")
    r = sync(source, target, items_table())
    with psycopg.connect(target) as c:
        assert c.execute("SELECT last_verified FROM _dbsplit.sync_state").fetchone() == (r.verified,)
    assert r.verified == r.read_rows > 0   # the rows of the watermark overlap


@pytest.mark.parametrize("stripe", [None, 2], ids=["one-source-session", "two-sessions-in-stripes"])
def test_key_diff_differs_exactly_in_the_buckets_that_lost_keys(items, stripe, monkeypatch) -> None:
    """The source's level-0 summaries, one session or two taking stripes of buckets in turn, are put
    back in bucket order: only the buckets holding a deleted key differ (misplaced summaries would
    make others differ too, costing reads but no wrong result, so the count is what shows it)."""
    if stripe is not None:   # 3000 keys make 24 level-0 buckets: two sessions, stripes of 2 buckets
        monkeypatch.setattr(resync_keydiff, "ROOT_STRIPE", stripe)
    source, target = items
    table = items_table()
    sync(source, target, table)   # builds the key table and the level-0 bounds
    with psycopg.connect(source) as c:
        c.execute("DELETE FROM items WHERE id %% 211 = 5 OR id BETWEEN %s AND %s", (2400, 2410))
        c.execute("UPDATE items SET name = name || ' v2', updated_at = now() WHERE id % 10 = 3")
    with psycopg.connect(target) as t:
        gone = {r[0] for r in t.execute("SELECT id FROM items")}
        bounds = [int(b[0]) for b in t.execute("SELECT root_bounds FROM _dbsplit.sync_state"
                                               " WHERE target_table = 'public.items'").fetchone()[0]]
    with psycopg.connect(source) as s:
        gone -= {r[0] for r in s.execute("SELECT id FROM items")}
    assert len(bounds) >= 20
    r = sync(source, target, table)
    assert r.deleted == len(gone) and r.diff["target_only"] == len(gone)
    assert r.diff["differing_buckets"] == len({bisect.bisect_right(bounds, k) for k in gone})
    assert rows(target, "items") == rows(source, "items")


def test_level0_summaries_by_range_follow_the_buckets_asked_for(make_db) -> None:
    """root_summaries_by_range answers for the buckets asked, in their order, as the grouped scan does."""
    source = make_db("rsums")
    with psycopg.connect(source) as c:
        c.execute(ITEMS_DDL)
        c.execute(ITEMS_FILL, (ROWS,))
        c.execute("DELETE FROM items WHERE id % 7 = 0")
        fp = resync_diff.fingerprint(["id"])
        side = resync_diff.KeySide(c, sql.Identifier("public", "items"), ("id",), ("bigint",), fp)
        bounds = [(str(k),) for k in range(100, ROWS, 150)]
        expected = resync_diff.summaries(side, resync_diff.root_groups(bounds))
        assert len(set(expected)) == len(expected)   # every bucket's summary is its own
        order = list(range(len(bounds) + 1))
        random.Random(7).shuffle(order)
        assert resync_diff.root_summaries_by_range(side, bounds) == expected
        assert resync_diff.root_summaries_by_range(side, bounds, order) == [expected[i] for i in order]
        share = sorted(order[:5]) + [len(bounds), 0]
        assert resync_diff.root_summaries_by_range(side, bounds, share) == [expected[i] for i in share]


@pytest.mark.parametrize("overlap", [True, False], ids=["diff-inside-merge", "diff-before-merge"])
def test_insert_with_an_old_clock_is_found_by_the_key_diff(items, overlap, monkeypatch) -> None:
    if not overlap:
        monkeypatch.setattr(resync_module, "OVERLAP_MAX_KEYS", 0)
    source, target = items
    table = items_table()
    sync(source, target, table)
    with psycopg.connect(source) as c:   # outside any overlap: only the key diff can see it
        c.execute("INSERT INTO items VALUES (777777, 'backdated', 1, 1, NULL, now() - interval '30 days')")
        c.execute("DELETE FROM items WHERE id = 2000")
    r = sync(source, target, table)
    assert (r.inserted, r.deleted, r.diff["source_only"], r.diff["target_only"]) == (1, 1, 1, 1)
    assert rows(target, "items") == rows(source, "items")
    assert_key_table_consistent(source, target, table)   # the backdated key entered the key table
    again = sync(source, target, table)
    assert (again.upserted, again.deleted, again.diff["differing_buckets"]) == (0, 0, 0)


def test_target_write_is_a_conflict_that_source_wins_overwrites_and_reports(items) -> None:
    source, target = items
    table = items_table()
    sync(source, target, table)
    with psycopg.connect(target) as c:   # a service already writing to its database
        c.execute("UPDATE items SET name = 'changed by the service' WHERE id = 5")
        c.execute("DELETE FROM items WHERE id = 7")
        c.execute("INSERT INTO items VALUES (999999, 'service only', 1, 1, NULL, now())")
        c.execute("UPDATE items SET name = name WHERE id = 9")       # a write that leaves the row as the source has it
    with psycopg.connect(source) as c:
        c.execute("UPDATE items SET qty = -1, updated_at = now() WHERE id IN (5, 11)")   # both sides changed row 5
    r = sync(source, target, table, on_conflict="source_wins")
    assert r.conflicts == ["5", "7", "999999"]
    assert r.skipped_conflicts == 1
    assert rows(target, "items") == rows(source, "items")
    with psycopg.connect(target) as c:
        assert c.execute("SELECT count(*) FROM _dbsplit.target_changes").fetchone()[0] == 0
        assert c.execute("SELECT last_conflicts FROM _dbsplit.sync_state").fetchone()[0] == ["5", "7", "999999"]
    # the resync's own writes are not logged as target changes: the next run sees no conflict
    assert sync(source, target, table).conflicts == []


@pytest.mark.parametrize("overlap", [True, False], ids=["diff-inside-merge", "diff-before-merge"])
def test_key_a_service_inserted_first_enters_the_key_table(items, overlap, monkeypatch) -> None:
    """A service inserts key K in the target, the source then inserts K too: the upsert matches the
    service's row (it inserts nothing), yet K is new to the key table and must enter it."""
    if not overlap:
        monkeypatch.setattr(resync_module, "OVERLAP_MAX_KEYS", 0)
    source, target = items
    table = items_table()
    sync(source, target, table)
    with psycopg.connect(target) as c:
        c.execute("INSERT INTO items VALUES (888888, 'written by the service first', 1, 1, NULL, now())")
        c.execute("INSERT INTO items VALUES (888889, 'service only', 1, 1, NULL, now())")
    with psycopg.connect(source) as c:
        c.execute("INSERT INTO items VALUES (888888, 'from the monolith', 2, 2, NULL, now())")
        c.execute("UPDATE items SET qty = -2, updated_at = now() WHERE id = 12")
    r = sync(source, target, table)
    assert (r.conflicts, r.inserted, r.updated, r.deleted) == (["888888", "888889"], 0, 2, 1)
    assert r.diff["source_only"] == 0       # K was known as new before the diff (it did not have to find it)
    assert rows(target, "items") == rows(source, "items")
    assert_key_table_consistent(source, target, table)
    again = sync(source, target, table)
    assert (again.upserted, again.deleted, again.diff["differing_buckets"]) == (0, 0, 0)


def test_stop_raises_with_the_keys_and_changes_nothing(items) -> None:
    source, target = items
    table = items_table()
    first = sync(source, target, table)
    with psycopg.connect(target) as c:
        c.execute("UPDATE items SET qty = 1000 WHERE id IN (42, 43)")
    with psycopg.connect(source) as c:
        c.execute("UPDATE items SET name = 'source change', updated_at = now() WHERE id BETWEEN 100 AND 110")
        c.execute("DELETE FROM items WHERE id = 200")
    before = versions(target, "items")
    with pytest.raises(DataCheckFailed, match=r"2 row\(s\).*on_conflict=stop.*key 42, 43"):
        sync(source, target, table, on_conflict="stop")
    assert versions(target, "items") == before
    with psycopg.connect(target) as c:
        assert c.execute("SELECT watermark, runs FROM _dbsplit.sync_state").fetchone() == (first.watermark_after, 1)
        assert c.execute("SELECT count(*) FROM _dbsplit.target_changes").fetchone()[0] == 2
    # the operator decides the source wins: the same changes go through, the conflicts are reported
    r = sync(source, target, table, on_conflict="source_wins")
    assert r.conflicts == ["42", "43"] and r.deleted == 1
    assert rows(target, "items") == rows(source, "items")


def test_watermark_overlap_rereads_rows_written_with_an_older_clock(items) -> None:
    source, target = items
    table = items_table()
    with psycopg.connect(source) as c:
        c.execute("UPDATE items SET updated_at = now() WHERE id = 1")
    w = sync(source, target, table).watermark_after
    # another writer's clock runs 2 minutes behind: its update carries a time below the watermark
    with psycopg.connect(source) as c:
        c.execute("UPDATE items SET name = 'slow clock', updated_at = %s::timestamptz - interval '2 minutes'"
                  " WHERE id = 10", (w,))
    r = sync(source, target, table, overlap=timedelta(minutes=5))
    assert r.upserted == 1 and rows(target, "items") == rows(source, "items")
    # 10 minutes behind is beyond a 5-minute overlap: not seen (a watermark's limit) ...
    w = r.watermark_after
    with psycopg.connect(source) as c:
        c.execute("UPDATE items SET name = 'very slow clock', updated_at = %s::timestamptz - interval '10 minutes'"
                  " WHERE id = 20", (w,))
    assert sync(source, target, table, overlap=timedelta(minutes=5)).upserted == 0
    assert rows(target, "items") != rows(source, "items")
    # ... and seen with a larger overlap
    assert sync(source, target, table, overlap=timedelta(minutes=15)).upserted == 1
    assert rows(target, "items") == rows(source, "items")


@pytest.mark.parametrize("change", ["trigger", "cascade"])
def test_rows_the_target_changes_behind_the_merge_fail_it_and_change_nothing(items, change) -> None:
    """The merge checks, before it commits, that every staged row is in the target as staged: a target
    trigger that rewrites the rows it writes, or a cascade that removes one, fails the resync loudly,
    and nothing of it stays (target rows, sync state, change log); the source is never written."""
    source, target = items
    table = items_table()
    first = sync(source, target, table)
    with psycopg.connect(target) as c:
        if change == "trigger":   # a service's own trigger, added during the dual-write period
            c.execute("CREATE FUNCTION shout() RETURNS trigger LANGUAGE plpgsql AS"
                      " $$BEGIN NEW.name := upper(NEW.name); RETURN NEW; END$$")
            c.execute("CREATE TRIGGER shout BEFORE UPDATE ON items FOR EACH ROW WHEN (NEW.id = 101) EXECUTE FUNCTION shout()")
        else:                     # a service table whose rows go when an item is deleted, and take the item along
            c.execute("CREATE TABLE holds (item_id bigint PRIMARY KEY REFERENCES items ON DELETE CASCADE)")
            c.execute("INSERT INTO holds VALUES (105)")
            c.execute("CREATE FUNCTION drop_item() RETURNS trigger LANGUAGE plpgsql AS"
                      " $$BEGIN DELETE FROM items WHERE id = 102; RETURN OLD; END$$")
            c.execute("CREATE TRIGGER drop_item AFTER DELETE ON holds FOR EACH ROW EXECUTE FUNCTION drop_item()")
    with psycopg.connect(source) as c:
        c.execute("UPDATE items SET name = 'source change', updated_at = now() WHERE id BETWEEN 100 AND 110")
        c.execute("DELETE FROM items WHERE id = 105")
    before, source_before = versions(target, "items"), rows(source, "items")
    victim = 101 if change == "trigger" else 102
    with pytest.raises(DataCheckFailed, match=rf"after the merge 1 of the \d+ staged row\(s\) are not in the target"
                                              rf".*nothing was changed.*key {victim}\. "):
        sync(source, target, table)
    assert versions(target, "items") == before
    assert rows(source, "items") == source_before
    with psycopg.connect(target) as c:
        assert c.execute("SELECT watermark, runs FROM _dbsplit.sync_state").fetchone() == (first.watermark_after, 1)
        assert c.execute("SELECT count(*) FROM _dbsplit.target_changes").fetchone()[0] == 0
        c.execute("DROP TRIGGER shout ON items" if change == "trigger" else "DROP TRIGGER drop_item ON holds")
    r = sync(source, target, table)   # what changed them is gone: the same changes go through
    assert rows(target, "items") == rows(source, "items")
    assert r.verified is None   # no user trigger left: nothing but the merge writes items


@pytest.mark.parametrize("price_type, holds", [("numeric(14,2)", True), ("numeric(10,1)", False)])
def test_target_column_of_another_type_is_looked_up_again(items, price_type: str, holds: bool) -> None:
    """A service changed a target column's type during the dual-write period: the merge casts the staged
    rows into it, so they are looked up again. A wider type holds every source value (the resync goes
    through, every staged row verified); a narrower one would round them: the resync fails and nothing
    of it stays, instead of storing prices the source does not have."""
    source, target = items
    table = items_table()
    sync(source, target, table)
    with psycopg.connect(target) as c:
        c.execute(sql.SQL("ALTER TABLE items ALTER price TYPE {}").format(sql.SQL(price_type)))
    with psycopg.connect(source) as c:
        c.execute("UPDATE items SET price = 12.34, updated_at = now() WHERE id BETWEEN 200 AND 204")
    if holds:
        r = sync(source, target, table)
        assert r.verified == r.read_rows >= 5
        assert rows(target, "items") == rows(source, "items")
        return
    before, source_before = versions(target, "items"), rows(source, "items")
    with pytest.raises(DataCheckFailed, match=r"staged row\(s\) are not in the target as the source has them "
                                              r"\(looked up again for staged column types differ; nothing was changed\)"):
        sync(source, target, table)
    assert versions(target, "items") == before
    assert rows(source, "items") == source_before


def test_transformed_table_with_uuid_key_matches_a_fresh_full_load(make_db, tmp_path: Path) -> None:
    source, target, fresh = make_db("psrc"), make_db("pdst"), make_db("pnew")
    table = people_table()
    with psycopg.connect(source) as c:
        c.execute(PEOPLE_DDL)
    full_load_transformed(source, target, table, tmp_path)
    install_change_tracking(target, table)
    for round_no in range(2):
        with psycopg.connect(source) as c:
            c.execute("UPDATE people SET full_name = full_name || ' Jr.', age_text = '77', updated_at = now()"
                      " WHERE id %% 40 = %s", (round_no,))
            c.execute("DELETE FROM people WHERE id %% 61 = %s", (round_no,))
            c.execute("INSERT INTO people SELECT g, 'New ' || g, '30', 'n' || g || '@x.org', NULL, now()"
                      " FROM generate_series(%s::int, %s::int) g", (5000 + 100 * round_no, 5009 + 100 * round_no))
            c.execute("INSERT INTO people VALUES (%s, 'Backdated', '40', NULL, 'old', now() - interval '90 days')",
                      (9000 + round_no,))
        r = sync(source, target, table)
        assert r.rebuilt_keys == (round_no == 0)
        assert r.inserted == 11 and r.deleted > 0 and r.conflicts == []
        assert r.verified is None
    full_load_transformed(source, fresh, table, tmp_path)
    assert rows(target, "people_v2") == rows(fresh, "people_v2")
    before = rows(target, "people_v2")
    r = sync(source, target, table)
    assert (r.upserted, r.deleted) == (0, 0) and rows(target, "people_v2") == before
    # a service writes the UUID-keyed table: the conflict is reported by its UUID and overwritten
    with psycopg.connect(target) as c:
        victim = c.execute("SELECT id::text FROM people_v2 WHERE name = 'Person 2'").fetchone()[0]
        c.execute("UPDATE people_v2 SET name = 'renamed by service' WHERE id = %s", (victim,))
        c.execute("INSERT INTO people_v2 VALUES (gen_random_uuid(), 'service row', 1, NULL, NULL, now())")
    r = sync(source, target, table)
    assert victim in r.conflicts and len(r.conflicts) == 2 and r.deleted == 1
    assert rows(target, "people_v2") == rows(fresh, "people_v2")


def test_composite_text_key_and_filter(make_db) -> None:
    source, target = make_db("csrc"), make_db("cdst")
    ddl = ("CREATE TABLE lines (code text, line integer, qty integer, live boolean NOT NULL,"
           " updated_at timestamptz NOT NULL, PRIMARY KEY (code, line))")
    with psycopg.connect(source) as c:
        c.execute(ddl)
        c.execute("INSERT INTO lines SELECT (ARRAY['a,b', 'a', 'x\"y', 'Zz', 'é'])[1 + g % 5] || (g / 50)::text, g % 50,"
                  " g, g % 9 <> 0, now() - interval '1 day' FROM generate_series(1, 2000) g")
    cols = tuple(ColumnMap(n, t, nn, "copy", (n,)) for n, t, nn in [
        ("code", "text", True), ("line", "integer", True), ("qty", "integer", False), ("live", "boolean", True),
        ("updated_at", "timestamp with time zone", True)])
    table = ResolvedTable("s", "public", "lines", "public", "lines", cols, ("code", "line"), ("code", "line"),
                          filter="live", watermark="updated_at")
    with psycopg.connect(target) as t, psycopg.connect(source) as s:
        t.execute(ddl)
        with t.cursor().copy("COPY lines FROM STDIN") as cp:
            for r in s.execute("SELECT * FROM lines WHERE live"):
                cp.write_row(r)
    install_change_tracking(target, table)
    sync(source, target, table)
    with psycopg.connect(source) as c:
        c.execute("DELETE FROM lines WHERE line = 7")
        c.execute("UPDATE lines SET live = false, updated_at = now() WHERE line = 8")   # filtered out: deleted
        c.execute("INSERT INTO lines VALUES ('a,b', 999, 1, true, now() - interval '9 days')")
    r = sync(source, target, table)
    assert r.deleted > 0 and r.inserted == 1

    def live(conninfo: str) -> list:
        with psycopg.connect(conninfo) as c:
            return c.execute("SELECT * FROM lines WHERE live ORDER BY code, line").fetchall()
    assert live(target) == live(source)
    assert sync(source, target, table).upserted == 0


def test_key_diff_descends_and_splits_ranges_emptied_on_one_side(items, monkeypatch) -> None:
    monkeypatch.setattr(resync_diff, "ROOT_BUCKET_ROWS", 400)
    monkeypatch.setattr(resync_diff, "LEAF_ROWS", 10)
    monkeypatch.setattr(resync_diff, "FANOUT", 4)
    source, target = items
    table = items_table()
    sync(source, target, table)
    with psycopg.connect(source) as c:
        c.execute("DELETE FROM items WHERE id BETWEEN 801 AND 1199")           # one bucket emptied in the source
        c.execute("DELETE FROM items WHERE id IN (5, 2222)")
        c.execute("INSERT INTO items SELECT g, 'old clock', 1, 1, NULL, now() - interval '40 days'"
                  " FROM generate_series(100001, 100300) g")                   # a range only the source has
    r = sync(source, target, table)
    assert r.diff["levels"] >= 3
    assert (r.diff["target_only"], r.diff["source_only"], r.deleted, r.inserted) == (401, 300, 401, 300)
    assert r.diff["leaf_keys"] < 2 * 701 + 200
    assert rows(target, "items") == rows(source, "items")
    assert_key_table_consistent(source, target, table)


def test_truncated_target_is_restored_and_reported(items) -> None:
    source, target = items
    table = items_table()
    sync(source, target, table)
    with psycopg.connect(target) as c:
        c.execute("TRUNCATE items")
    with pytest.raises(DataCheckFailed, match="TRUNCATE"):
        sync(source, target, table, on_conflict="stop")
    r = sync(source, target, table)
    assert r.conflicts[0] == "(TRUNCATE)" and r.rebuilt_keys and r.inserted == ROWS
    assert rows(target, "items") == rows(source, "items")


def test_resync_needs_current_change_tracking(items) -> None:
    source, target = items
    table = items_table()
    sync(source, target, table)
    with psycopg.connect(target) as c:   # a new full load is promoted: another table under the same name
        c.execute("ALTER TABLE items RENAME TO items_old")
        c.execute(ITEMS_DDL)
        c.execute("INSERT INTO items SELECT * FROM items_old")
    with pytest.raises(ChangeTrackingMissing, match="replaced"):
        sync(source, target, table)
    install_change_tracking(target, table)
    r = sync(source, target, table)
    assert r.rebuilt_keys and (r.upserted, r.deleted) == (0, 0)


def test_table_without_watermark_is_read_whole_but_only_differences_are_written(items) -> None:
    from dataclasses import replace

    source, target = items
    table = replace(items_table(), watermark=None)
    install_change_tracking(target, table)
    sync(source, target, table)
    with psycopg.connect(source) as c:   # no clock changes: nothing marks these rows as changed
        c.execute("UPDATE items SET qty = 12345 WHERE id IN (3, 4)")
        c.execute("DELETE FROM items WHERE id = 6")
    r = sync(source, target, table)
    assert (r.upserted, r.deleted, r.read_rows, r.watermark_after) == (2, 1, ROWS - 1, None)
    assert rows(target, "items") == rows(source, "items")
    before = versions(target, "items")
    assert sync(source, target, table).upserted == 0 and versions(target, "items") == before


def test_rows_the_transforms_reject_are_limited_like_a_full_load(people) -> None:
    from dataclasses import replace

    source, target, table = people
    with psycopg.connect(source) as c:
        c.execute("UPDATE people SET age_text = 'n/a', full_name = 'Bad Age', updated_at = now() WHERE id = 12")
        c.execute("UPDATE people SET full_name = 'Good', updated_at = now() WHERE id = 13")
    before = rows(target, "people_v2")
    with pytest.raises(DataCheckFailed, match=r"1 source row\(s\) rejected.*12: age"):
        sync(source, target, table)
    assert rows(target, "people_v2") == before
    r = sync(source, target, replace(table, max_rejected_rows=1))
    assert r.upserted == 1 and len(r.rejected) == 1 and r.rejected[0].startswith("12: age: ")
    with psycopg.connect(target) as c:   # the rejected row keeps its previous version
        assert c.execute("SELECT count(*) FROM people_v2 WHERE name = 'Bad Age'").fetchone()[0] == 0
        assert c.execute("SELECT count(*) FROM people_v2 WHERE name = 'Good'").fetchone()[0] == 1


def test_rows_the_staging_table_refuses_stop_at_the_reject_limit(people, monkeypatch) -> None:
    """Changed rows that the staging table refuses (a value too long for the plan's type) count against
    the table's reject limit while they are staged: past it the resync stops with the first of them and
    changes nothing, without isolating every refused row (a COPY of the rest of the chunk each); within
    it, the refused rows are reported and the others go through."""
    from dataclasses import replace

    from dbsplit.engine.migrate import arrow_io, wire

    source, target, table = people
    narrow = replace(table, columns=tuple(replace(cm, target_type="character varying(30)") if cm.target == "name"
                                          else cm for cm in table.columns))
    with psycopg.connect(source) as c:
        c.execute("UPDATE people SET full_name = repeat('long name ', 5), updated_at = now() WHERE id BETWEEN 100 AND 139")
        c.execute("UPDATE people SET note = 'fits', updated_at = now() WHERE id = 150")
    copies = []
    for module, fn in ((wire, "copy_wire_in"), (arrow_io, "copy_arrow_in")):
        real = getattr(module, fn)
        monkeypatch.setattr(module, fn, lambda *a, _real=real, **k: copies.append(1) or _real(*a, **k))
    before = rows(target, "people_v2")
    with pytest.raises(DataCheckFailed, match=r"more than 2 source row\(s\) rejected .*at most 2 allowed "
                                              r"\(nothing was changed\); first: .*: name: value too long.*Fix: .*max_rejected_rows"):
        sync(source, target, replace(narrow, max_rejected_rows=2))
    assert len(copies) <= 10   # stopped at the third refused row; isolating all 40 takes more than 80 COPYs
    assert rows(target, "people_v2") == before
    r = sync(source, target, replace(narrow, max_rejected_rows=40))
    assert len(r.rejected) == 40 and all(": name: value too long" in x for x in r.rejected)
    with psycopg.connect(target) as c:
        assert c.execute("SELECT count(*) FROM people_v2 WHERE note = 'fits'").fetchone()[0] == 1
        assert c.execute("SELECT count(*) FROM people_v2 WHERE name LIKE 'long name%'").fetchone()[0] == 0


def test_key_without_a_hash_function_falls_back_to_md5_fingerprints(make_db) -> None:
    source, target = make_db("msrc"), make_db("mdst")
    ddl = "CREATE TABLE prices (amount money PRIMARY KEY, label text, updated_at timestamptz NOT NULL)"
    with psycopg.connect(source) as c:
        c.execute("SET lc_monetary = 'C'")
        c.execute(ddl)
        c.execute("INSERT INTO prices SELECT g::numeric::money, 'p' || g, now() - interval '1 day'"
                  " FROM generate_series(1, 500) g")
    full_load_passthrough(source, target, ddl, "prices")
    cols = tuple(ColumnMap(n, t, nn, "copy", (n,)) for n, t, nn in [
        ("amount", "money", True), ("label", "text", False), ("updated_at", "timestamp with time zone", True)])
    table = ResolvedTable("s", "public", "prices", "public", "prices", cols, ("amount",), ("amount",),
                          watermark="updated_at")
    install_change_tracking(target, table)
    sync(source, target, table)
    with psycopg.connect(source) as c:
        c.execute("DELETE FROM prices WHERE amount < 10::numeric::money")
    r = sync(source, target, table)
    assert r.deleted == 9 and rows(target, "prices") == rows(source, "prices")
    with psycopg.connect(target) as c:
        assert c.execute("SELECT key_hash FROM _dbsplit.sync_state").fetchone()[0].startswith("md5/")


def test_transformed_table_with_copied_key(items, make_db, tmp_path: Path) -> None:
    """Columns renamed, cast and masked, key copied: the diff runs on the key itself (no key map)."""
    source, _ = items
    target = make_db("tdst")
    cols = (ColumnMap("id", "bigint", True, "copy", ("id",)), ColumnMap("title", "text", True, "copy", ("name",)),
            ColumnMap("qty", "bigint", False, "cast", ("qty",)), ColumnMap("tags", "text", False, "mask_redact", ("tags",)),
            ColumnMap("updated_at", "timestamp with time zone", True, "copy", ("updated_at",)))
    table = ResolvedTable("shop", "public", "items", "public", "items_v2", cols, ("id",), ("id",), watermark="updated_at",
                          chunk_rows=1000)
    expected_sql = ("SELECT id, name, qty::bigint, CASE WHEN tags IS NOT NULL THEN 'REDACTED' END, updated_at"
                    " FROM items ORDER BY id")
    with psycopg.connect(target) as t, source_connection(source) as s:
        t.execute("CREATE TABLE items_v2 (id bigint PRIMARY KEY, title text NOT NULL, qty bigint, tags text,"
                  " updated_at timestamptz NOT NULL)")
        with s.transaction():
            extract_chunk(s, table, None, tmp_path / "e")
            transform_chunk(tmp_path / "e", tmp_path / "t", table, NS, SALT)
            load_chunk(t, "public", "items_v2", table, tmp_path / "t")
        t.commit()
    install_change_tracking(target, table)
    sync(source, target, table)
    change_items(source, 30_001, 3)
    r = sync(source, target, table)
    assert r.diff["target_only"] == r.deleted > 0 and r.inserted == 25
    with psycopg.connect(source) as s, psycopg.connect(target) as t:
        assert t.execute("SELECT * FROM items_v2 ORDER BY id").fetchall() == s.execute(expected_sql).fetchall()
    assert sync(source, target, table).upserted == 0


# ------------------------------------------------------------------------- a service's tables together

FAMILY_DDL = """
CREATE TABLE parents (id bigint PRIMARY KEY, name text NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE children (id bigint PRIMARY KEY, parent_id bigint NOT NULL REFERENCES parents (id),
                       prev_id bigint REFERENCES children (id), name text NOT NULL, updated_at timestamptz NOT NULL);
"""
FAMILY_FILL = """
INSERT INTO parents SELECT g, 'parent ' || g, now() - interval '1 day' FROM generate_series(1, 20) g;
INSERT INTO children SELECT g, 1 + g % 20, NULL, 'child ' || g, now() - interval '1 day' FROM generate_series(1, 100) g;
"""
# the target as promotions made it before: the same foreign keys, not deferrable
FAMILY_TARGET_FKS = """
ALTER TABLE children ADD FOREIGN KEY (parent_id) REFERENCES parents (id),
                     ADD FOREIGN KEY (prev_id) REFERENCES children (id);
"""
FAMILY_CHANGES = """
INSERT INTO parents VALUES (21, 'new parent', now());
INSERT INTO children VALUES (101, 21, NULL, 'first child of a new parent', now()),
                            (102, 21, 101, 'second child, after the first', now());
UPDATE children SET parent_id = 21, prev_id = 102, updated_at = now() WHERE id = 3;   -- moved to the new parent
UPDATE children SET parent_id = 21, updated_at = now() WHERE parent_id = 2;           -- every child of parent 2
DELETE FROM children WHERE parent_id = 5;
DELETE FROM parents WHERE id IN (2, 5);
"""


def family_tables() -> list[ResolvedTable]:
    parents = ResolvedTable("family", "public", "parents", "public", "parents", (
        ColumnMap("id", "bigint", True, "copy", ("id",)), ColumnMap("name", "text", True, "copy", ("name",)),
        ColumnMap("updated_at", "timestamp with time zone", True, "copy", ("updated_at",))), ("id",), ("id",),
        watermark="updated_at")
    children = ResolvedTable("family", "public", "children", "public", "children", (
        ColumnMap("id", "bigint", True, "copy", ("id",)), ColumnMap("parent_id", "bigint", True, "copy", ("parent_id",)),
        ColumnMap("prev_id", "bigint", False, "copy", ("prev_id",)), ColumnMap("name", "text", True, "copy", ("name",)),
        ColumnMap("updated_at", "timestamp with time zone", True, "copy", ("updated_at",))), ("id",), ("id",),
        watermark="updated_at", foreign_keys=(
            {"columns": ["parent_id"], "ref_table": "public.parents", "ref_columns": ["id"], "on_delete": "NO ACTION"},
            {"columns": ["prev_id"], "ref_table": "public.children", "ref_columns": ["id"], "on_delete": "NO ACTION"}))
    return [children, parents]   # children first: the order must come from the foreign keys


def family(make_db, target_fks: str) -> tuple[str, str]:
    """Source and target databases with the family tables loaded and tracked; target_fks made afterwards."""
    source, target = make_db("rs_fam_src"), make_db("rs_fam_dst")
    with psycopg.connect(source, autocommit=True) as c:
        c.execute(FAMILY_DDL)
        c.execute(FAMILY_FILL)
    with psycopg.connect(target, autocommit=True) as c:
        c.execute(FAMILY_DDL.replace("REFERENCES parents (id)", "").replace("REFERENCES children (id)", ""))
    for t in ("parents", "children"):
        full_load_passthrough(source, target, "SELECT 1", t)
    with psycopg.connect(target, autocommit=True) as c:
        c.execute(target_fks)
    for t in family_tables():
        install_change_tracking(target, t)
    return source, target


def test_service_resync_keeps_foreign_keys_between_its_tables(make_db) -> None:
    from dbsplit.engine.resync.resync import resync_service

    source, target = family(make_db, FAMILY_TARGET_FKS)
    tables = family_tables()

    def run(run_id: str, **kw):
        return resync_service(source, target, tables, namespace=NS, salt=SALT, run_id=run_id, **kw)

    first = run("r1")
    assert list(first) == ["public.parents", "public.children"]
    assert all(r.upserted == 0 and r.deleted == 0 for r in first.values())
    with psycopg.connect(target) as c:
        assert c.execute("SELECT bool_and(condeferrable AND NOT condeferred) FROM pg_constraint"
                         " WHERE contype = 'f' AND conrelid = 'children'::regclass").fetchone()[0]

    # a conflict in one table with on_conflict=stop: no table of the service changes
    with psycopg.connect(source, autocommit=True) as c:
        c.execute(FAMILY_CHANGES)
    with psycopg.connect(target, autocommit=True) as c:
        c.execute("UPDATE parents SET name = 'written by the service' WHERE id = 7")
    before = {t: rows(target, t) for t in ("parents", "children")}
    with pytest.raises(DataCheckFailed, match="on_conflict=stop"):
        run("r2", on_conflict="stop")
    assert {t: rows(target, t) for t in ("parents", "children")} == before

    second = run("r3")
    assert {t: rows(target, t) for t in ("parents", "children")} == {t: rows(source, t) for t in ("parents", "children")}
    assert second["public.parents"].deleted == 2 and second["public.parents"].conflicts == ["7"]
    assert second["public.children"].inserted == 2 and second["public.children"].deleted == 5
    third = run("r4")
    assert all(r.upserted == 0 and r.deleted == 0 and not r.conflicts for r in third.values())
    for t in tables:
        assert_key_table_consistent(source, target, t)


def test_rows_of_a_table_with_referential_actions_are_looked_up_again(make_db) -> None:
    """A table whose foreign key cascades (or sets null) can lose or change rows by the merge's deletes
    elsewhere: its staged rows are looked up after the merge; its parents' are not (nothing but the merge
    writes them)."""
    from dbsplit.engine.resync.resync import resync_service

    source, target = family(make_db, FAMILY_TARGET_FKS.replace("REFERENCES parents (id)", "REFERENCES parents (id) ON DELETE CASCADE")
                            .replace("REFERENCES children (id)", "REFERENCES children (id) ON DELETE SET NULL"))
    tables = family_tables()
    resync_service(source, target, tables, namespace=NS, salt=SALT, run_id="r1")
    with psycopg.connect(source, autocommit=True) as c:
        c.execute(FAMILY_CHANGES)
    second = resync_service(source, target, tables, namespace=NS, salt=SALT, run_id="r2")
    children, parents = second["public.children"], second["public.parents"]
    assert children.verified == children.read_rows > 0 and parents.verified is None
    assert children.deleted == 5 and parents.deleted == 2
    assert {t: rows(target, t) for t in ("parents", "children")} == {t: rows(source, t) for t in ("parents", "children")}


def tracking_triggers(conninfo: str) -> dict[str, tuple[str, str]]:
    """Tracking trigger name: (enabled, xmin of its catalog row: an ALTER TABLE ... TRIGGER changes it)."""
    with psycopg.connect(conninfo) as c:
        return {n: (e, x) for n, e, x in c.execute(
            "SELECT tgname, tgenabled, xmin::text FROM pg_trigger WHERE tgrelid = 'items'::regclass"
            " AND tgname LIKE 'dbsplit_track_%'")}


@contextmanager
def writer_role(pg_server_url: str, target: str) -> Iterator[str]:
    """A login role that may read and write the target's tables but owns none and is no superuser."""
    role = f"t_writer_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server_url, autocommit=True) as c:
        c.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        with psycopg.connect(target, autocommit=True) as c:
            for grant in ("GRANT USAGE ON SCHEMA public, _dbsplit TO {r}",
                          "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public, _dbsplit TO {r}",
                          "GRANT USAGE ON ALL SEQUENCES IN SCHEMA _dbsplit TO {r}"):
                c.execute(sql.SQL(grant).format(r=sql.Identifier(role)))
        yield role
    finally:
        with psycopg.connect(target, autocommit=True) as c:
            c.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        with psycopg.connect(pg_server_url, autocommit=True) as c:
            c.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_merge_switches_tracking_off_for_its_own_writes_only(items, pg_server_url: str) -> None:
    """The owner's merge turns the tracking triggers off inside its transaction only; a role that may
    write but not alter the table resyncs with the triggers on (quiet); either way a service's write
    after the resync is logged again, and the resync's own writes never are."""
    source, target = items
    table = items_table()
    sync(source, target, table)
    before = tracking_triggers(target)
    assert len(before) == 4 and {e for e, _ in before.values()} == {"O"}
    change_items(source, 30_001, 3)
    r = sync(source, target, table)
    assert r.upserted and r.deleted and rows(target, "items") == rows(source, "items")
    after = tracking_triggers(target)   # switched off and on again by the merge: enabled, new catalog rows
    assert {e for e, _ in after.values()} == {"O"} and all(after[n][1] != before[n][1] for n in before)
    with writer_role(pg_server_url, target) as role:
        change_items(source, 40_001, 4)
        r = sync(source, psycopg.conninfo.make_conninfo(target, user=role), table)
        assert r.upserted and r.deleted and rows(target, "items") == rows(source, "items")
        assert tracking_triggers(target) == after   # not its table to alter: left on, untouched
    with psycopg.connect(target) as c:
        assert c.execute("SELECT count(*) FROM _dbsplit.target_changes").fetchone()[0] == 0
        c.execute("UPDATE items SET name = 'by the service' WHERE id = 3")
        c.commit()
        assert c.execute("SELECT count(*) FROM _dbsplit.target_changes").fetchone()[0] == 1
    assert sync(source, target, table).conflicts == ["3"]


def test_merge_waits_for_an_autovacuum_briefly_where_its_role_may_set_it(items, pg_server_url: str, monkeypatch) -> None:
    """The merge transaction lowers its deadlock_timeout (the wait after which the server cancels an
    autovacuum holding a lock it needs) where its role may set it, for itself only; a role that may not
    resyncs all the same with the server's."""
    source, target = items
    table = items_table()
    sync(source, target, table)
    seen: list[str] = []
    switch = resync_module.resync_state.set_triggers_enabled

    def recording(conn, rel, enabled):   # runs inside the merge transaction, right after its table lock
        seen.append(conn.execute("SHOW deadlock_timeout").fetchone()[0])
        return switch(conn, rel, enabled)

    monkeypatch.setattr(resync_module.resync_state, "set_triggers_enabled", recording)
    change_items(source, 50_001, 2)
    assert sync(source, target, table).upserted
    with psycopg.connect(target) as c:
        default, default_ms = c.execute("SELECT current_setting('deadlock_timeout'), setting::int FROM pg_settings"
                                        " WHERE name = 'deadlock_timeout'").fetchone()
    assert seen and set(seen) == {"100ms" if default_ms > 100 else default}
    seen.clear()
    with writer_role(pg_server_url, target) as role:
        change_items(source, 60_001, 2)
        r = sync(source, psycopg.conninfo.make_conninfo(target, user=role), table)
        assert r.upserted and rows(target, "items") == rows(source, "items")
    assert seen and set(seen) == {default}


@pytest.mark.parametrize("overlap", [True, False], ids=["diff-inside-merge", "diff-before-merge"])
def test_restrict_key_holds_when_children_leave_a_deleted_parent(make_db, overlap, monkeypatch) -> None:
    """ON DELETE RESTRICT is checked at once, deferred or not: the children's upserts (they now point
    elsewhere) must come before the parent's delete."""
    from dbsplit.engine.resync.resync import resync_service

    if not overlap:
        monkeypatch.setattr(resync_module, "OVERLAP_MAX_KEYS", 0)
    source, target = family(make_db, FAMILY_TARGET_FKS.replace("REFERENCES parents (id)",
                                                               "REFERENCES parents (id) ON DELETE RESTRICT"))
    tables = family_tables()
    resync_service(source, target, tables, namespace=NS, salt=SALT, run_id="r1")
    with psycopg.connect(source, autocommit=True) as c:
        c.execute("UPDATE children SET parent_id = 3, updated_at = now() WHERE parent_id = 4")
        c.execute("DELETE FROM parents WHERE id = 4")
    result = resync_service(source, target, tables, namespace=NS, salt=SALT, run_id="r2")
    assert result["public.parents"].deleted == 1 and result["public.children"].updated == 5
    assert {t: rows(target, t) for t in ("parents", "children")} == {t: rows(source, t) for t in ("parents", "children")}


def tracked_three_columns(make_db, name: str, ddl: str, middle: tuple[str, bool]) -> tuple[str, str, ResolvedTable]:
    """A source table (id bigint key, one text column, updated_at) made and filled by ddl (statements
    separated by ';', the first creates it), loaded, tracked and resynced once."""
    source, target = make_db(f"rs_{name}_src"), make_db(f"rs_{name}_dst")
    with psycopg.connect(source, autocommit=True) as c:
        c.execute(ddl)
    full_load_passthrough(source, target, ddl.split(";")[0], name)
    cols = (ColumnMap("id", "bigint", True, "copy", ("id",)), ColumnMap(middle[0], "text", middle[1], "copy", (middle[0],)),
            ColumnMap("updated_at", "timestamp with time zone", True, "copy", ("updated_at",)))
    table = ResolvedTable(name, "public", name, "public", name, cols, ("id",), ("id",), watermark="updated_at")
    install_change_tracking(target, table)
    sync(source, target, table)
    return source, target, table


ACCOUNTS_DDL = """
CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL UNIQUE, updated_at timestamptz NOT NULL);
INSERT INTO accounts SELECT g, 'user' || g || '@example.com', now() - interval '1 day' FROM generate_series(1, 500) g;
"""


def test_unique_value_taken_over_from_a_deleted_row(make_db) -> None:
    """A new source row takes the unique email of a row deleted since the last resync: the target's
    delete must come before the upsert, or the unique index refuses the new row."""
    source, target, table = tracked_three_columns(make_db, "accounts", ACCOUNTS_DDL, ("email", True))
    with psycopg.connect(source, autocommit=True) as c:
        c.execute("DELETE FROM accounts WHERE id IN (7, 8)")
        c.execute("INSERT INTO accounts VALUES (501, 'user7@example.com', now())")
        c.execute("UPDATE accounts SET email = 'user8@example.com', updated_at = now() WHERE id = 9")
    r = sync(source, target, table)
    assert (r.inserted, r.updated, r.deleted) == (1, 1, 2)
    assert rows(target, "accounts") == rows(source, "accounts")


def test_column_named_like_the_staged_fingerprint(make_db) -> None:
    """Staged pass-through rows carry their key's fingerprint in one more column: a table column of that
    name is moved as it is, and the fingerprint column takes another name."""
    ddl = ("CREATE TABLE hashed (id bigint PRIMARY KEY, dbsplit_h text, updated_at timestamptz NOT NULL);"
           "INSERT INTO hashed SELECT g, 'h' || g, now() - interval '1 day' FROM generate_series(1, 400) g")
    source, target, table = tracked_three_columns(make_db, "hashed", ddl, ("dbsplit_h", False))
    with psycopg.connect(source, autocommit=True) as c:
        c.execute("UPDATE hashed SET dbsplit_h = 'changed', updated_at = now() WHERE id % 10 = 0")
        c.execute("DELETE FROM hashed WHERE id = 7")
        c.execute("INSERT INTO hashed VALUES (401, NULL, now()), (900, 'backdated', now() - interval '30 days')")
    r = sync(source, target, table)
    assert (r.inserted, r.updated, r.deleted) == (2, 40, 1)
    assert rows(target, "hashed") == rows(source, "hashed")
    assert_key_table_consistent(source, target, table)


def test_ensure_change_tracking_keeps_the_sync_state_and_puts_triggers_back(items) -> None:
    from dbsplit.engine.resync.resync import ensure_change_tracking, remove_change_tracking

    source, target = items
    table = items_table()
    sync(source, target, table)
    with psycopg.connect(target) as c:
        watermark = c.execute("SELECT watermark FROM _dbsplit.sync_state").fetchone()[0]
        c.execute("ALTER TABLE items DISABLE TRIGGER dbsplit_track_upd")
    assert ensure_change_tracking(target, table) is False
    with psycopg.connect(target) as c:
        assert c.execute("SELECT watermark, runs, keys_ready FROM _dbsplit.sync_state").fetchone() == (watermark, 1, False)
        assert c.execute("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'dbsplit_track_%' AND tgenabled <> 'D'"
                         ).fetchone()[0] == 4
    with psycopg.connect(target) as c:   # a write while tracked: in the change log
        c.execute("UPDATE items SET qty = 1 WHERE id = 1")
    remove_change_tracking(target, table)
    with psycopg.connect(target) as c:
        assert c.execute("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'dbsplit_track_%'").fetchone()[0] == 0
        assert c.execute("SELECT count(*) FROM _dbsplit.sync_state").fetchone()[0] == 0
        assert c.execute("SELECT count(*) FROM _dbsplit.target_changes").fetchone()[0] == 0
        assert c.execute("SELECT count(*) FROM pg_tables WHERE schemaname = '_dbsplit' AND tablename ~ '^(keys|sums):'"
                         ).fetchone()[0] == 0
    assert ensure_change_tracking(target, table) is True


def test_a_table_cut_over_is_refused_by_a_resync(items) -> None:
    """After a cut-over the service database is the system of record: a resync left scheduled would
    overwrite the service's writes with the monolith's rows and delete its new ones."""
    from dbsplit.errors import DbsplitError
    from dbsplit.engine.resync.state import mark_cut_over

    source, target = items
    table = items_table()
    sync(source, target, table)
    with psycopg.connect(target, autocommit=True) as c:
        mark_cut_over(c, ["public.items"], "orchestrator-run-1")
        c.execute("INSERT INTO items SELECT 900001, 'written by the service', 1, 1, NULL, now()")
    before = versions(target, "items")
    with pytest.raises(DbsplitError, match=r"public\.items: cut over by orchestrator run orchestrator-run-1 at .*Fix:"):
        sync(source, target, table)
    assert versions(target, "items") == before
