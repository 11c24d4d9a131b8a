"""Cross-service references checked across databases (and servers) in bounded memory."""

from __future__ import annotations

import dataclasses

import shutil
import sys
import tempfile
import tracemalloc
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from dbsplit.pg.conn import with_dbname
from dbsplit.errors import DataCheckFailed
from dbsplit.model.resolved import SoftReference
from dbsplit.engine.verify import references
from dbsplit.engine.verify.references import REFERENCES, ReferenceResult, check_reference, reference_outcome
from tests.conftest import create_database, drop_database

pytestmark = pytest.mark.integration

CHILD_SCHEMA = "Orders Schema"
CHILD_TABLE = 'order "lines"'


def run_sql(conninfo: str, *statements: str | sql.Composable, params: Sequence[object] | None = None) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement, params)


def make_child(conninfo: str, column_type: str, values: Sequence[object]) -> None:
    """The child table (CHILD_SCHEMA.CHILD_TABLE: id, "User Id" <type>) with one row per value."""
    run_sql(conninfo, sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(CHILD_SCHEMA)),
            sql.SQL('CREATE TABLE {} (id bigserial PRIMARY KEY, "User Id" {})').format(
                sql.Identifier(CHILD_SCHEMA, CHILD_TABLE), sql.SQL(column_type)))
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        cur.executemany(sql.SQL('INSERT INTO {} ("User Id") VALUES (%s)').format(
            sql.Identifier(CHILD_SCHEMA, CHILD_TABLE)), [(v,) for v in values])


def make_parent(conninfo: str, column_type: str, values: Sequence[object], *, key: bool = True) -> None:
    run_sql(conninfo, sql.SQL("CREATE TABLE public.users (id {} {})").format(
        sql.SQL(column_type), sql.SQL("PRIMARY KEY" if key else "")))
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO public.users VALUES (%s)", [(v,) for v in values])


def check(child: str, parent: str, **kwargs: int) -> ReferenceResult:
    return check_reference(child, CHILD_SCHEMA, CHILD_TABLE, "User Id", parent, "public", "users", "id", **kwargs)


@pytest.fixture(scope="module")
def two_databases(pg_server_url: str) -> Iterator[tuple[str, str]]:
    names = [f"t_child_{uuid.uuid4().hex[:8]}", f"t_parent_{uuid.uuid4().hex[:8]}"]
    child, parent = (create_database(pg_server_url, name) for name in names)
    yield child, parent
    for name in names:
        drop_database(pg_server_url, name)


@pytest.fixture
def dbs(two_databases: tuple[str, str]) -> Iterator[tuple[str, str]]:
    """(child, parent): two databases, as two services have; emptied after each test (creating
    databases per test would cost ~2 s each)."""
    yield two_databases
    for conninfo in two_databases:
        run_sql(conninfo, sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(CHILD_SCHEMA)),
                "DROP TABLE IF EXISTS public.users",
                sql.SQL("ALTER DATABASE {} RESET ALL").format(sql.Identifier(conninfo_dbname(conninfo))))


def test_all_values_resolve_and_nulls_are_ignored(dbs: tuple[str, str]) -> None:
    child, parent = dbs
    make_parent(parent, "bigint", range(1, 101))
    make_child(child, "bigint", [1, 1, 2, None, 50, 100, None, 100, 100])

    result = check(child, parent, batch=2)

    expected = ReferenceResult(checked=7, orphans=0, sample=[], seconds=0.0, distinct_values=4,
                               orphan_values=0, batches=2, child_type="bigint", parent_type="bigint")
    counts_only = dataclasses.replace(result, seconds=0.0)  # everything but the measured time
    assert counts_only == expected
    assert result.success
    outcome = reference_outcome(result, SoftReference("User Id", "users", "public.users", "id"))
    assert outcome == {"expectation": REFERENCES, "column": "User Id", "success": True, "observed": 0,
                       "details": "all 7 non-NULL rows (4 distinct values) found in users: public.users.id; "
                                  "NULLs are not checked"}


def test_only_nulls_check_nothing(dbs: tuple[str, str]) -> None:
    child, parent = dbs
    make_parent(parent, "bigint", [])
    make_child(child, "bigint", [None, None])

    result = check(child, parent)

    assert (result.checked, result.orphans, result.batches, result.success) == (0, 0, 0, True)


def test_orphans_are_counted_exactly_with_a_sample_in_key_order(dbs: tuple[str, str]) -> None:
    child, parent = dbs
    make_parent(parent, "bigint", range(1, 1001))
    # orphans: -10 (2 rows), -9, 1001 (3 rows), 5000000000; bigint order, not text order (-10 < -9)
    values: list[object] = [*range(1, 1001, 7), -10, 5_000_000_000, 1001, -9, None, 1001, -10, 1001, 3, 3]
    make_child(child, "bigint", values)
    non_null = [v for v in values if v is not None]

    result = check(child, parent, batch=10, sample=3)

    assert (result.checked, result.orphans, result.orphan_values) == (len(non_null), 7, 4)
    assert result.distinct_values == len(set(non_null))
    assert result.batches == -(-len(set(non_null)) // 10)
    assert result.sample == ["-10", "-9", "1001"]  # the first 3 of 4, across batches
    assert not result.success
    outcome = reference_outcome(result, SoftReference("User Id", "users", "public.users", "id"))
    assert (outcome["success"], outcome["observed"], outcome["column"]) == (False, 7, "User Id")
    assert outcome["details"] == (f"7 of {len(non_null)} non-NULL rows reference 4 value(s) missing from "
                                  "users: public.users.id, e.g. '-10', '-9', '1001'")
    assert check(child, parent, sample=10).sample == ["-10", "-9", "1001", "5000000000"]
    assert check(child, parent, sample=0).sample == []


def test_uuid_columns(dbs: tuple[str, str]) -> None:
    child, parent = dbs
    known = sorted(uuid.uuid5(uuid.NAMESPACE_URL, f"user {i}") for i in range(200))
    missing = sorted(uuid.uuid5(uuid.NAMESPACE_URL, f"ghost {i}") for i in range(3))
    make_parent(parent, "uuid", known)
    make_child(child, "uuid", [*known[::3], *missing, missing[0], None])

    result = check(child, parent, batch=16)

    assert (result.orphans, result.orphan_values) == (4, 3)
    assert result.sample == [str(u) for u in missing]  # uuid order
    assert (result.child_type, result.parent_type) == ("uuid", "uuid")


def test_text_keys_with_quotes_backslashes_commas_braces_and_newlines(dbs: tuple[str, str]) -> None:
    child, parent = dbs
    awkward = ['a"b', "c\\d", "e,f", "{g}", "h\ni", "NULL", "", " j ", "ümlaut", "k'l"]
    make_parent(parent, "text", awkward)
    make_child(child, "text", [*awkward, "nope\\", 'no"pe'])

    result = check(child, parent, batch=3)

    assert (result.checked, result.orphans) == (12, 2)
    assert sorted(result.sample) == sorted(["nope\\", 'no"pe'])


def test_dates_and_timestamps_travel_exactly_whatever_the_session_settings(dbs: tuple[str, str]) -> None:
    child, parent = dbs
    for setting in ("datestyle = 'SQL, DMY'", "timezone = 'Asia/Tokyo'", "intervalstyle = 'sql_standard'"):
        run_sql(child, sql.SQL("ALTER DATABASE {} SET " + setting).format(sql.Identifier(conninfo_dbname(child))))
        run_sql(parent, sql.SQL("ALTER DATABASE {} SET " + setting.replace("DMY", "MDY")).format(
            sql.Identifier(conninfo_dbname(parent))))
    stamps = ["2024-02-29 23:59:59.123456+00", "1999-12-31 00:00:00+00", "2024-03-01 09:00:00+09"]
    make_parent(parent, "timestamptz", stamps)
    make_child(child, "timestamptz", [*stamps, "2024-03-01 09:00:00.000001+09"])

    result = check(child, parent)

    assert (result.checked, result.orphans) == (4, 1)
    assert result.sample == ["2024-03-01 00:00:00.000001+00"]


def test_child_int_against_parent_bigint_is_cast_and_noted(dbs: tuple[str, str]) -> None:
    child, parent = dbs
    make_parent(parent, "bigint", [1, 2, 3])
    make_child(child, "integer", [1, 2, 4])

    result = check(child, parent)

    assert (result.orphans, result.sample) == (1, ["4"])
    assert result.notes == ["types differ: child integer, parent bigint; child values are cast to bigint"]
    assert "types differ" in reference_outcome(result, SoftReference("User Id", "u", "public.users", "id"))["details"]


def test_parent_without_index_still_works_and_says_so(dbs: tuple[str, str]) -> None:
    child, parent = dbs
    make_parent(parent, "bigint", [1, 2, 3], key=False)
    make_child(child, "bigint", [1, 9])

    result = check(child, parent)

    assert (result.orphans, result.sample) == (1, ["9"])
    assert any("no index on the parent column" in n for n in result.notes)


def test_values_that_are_not_valid_in_the_parent_type_raise(dbs: tuple[str, str]) -> None:
    child, parent = dbs
    make_parent(parent, "uuid", [uuid.uuid4()])
    make_child(child, "text", ["not a uuid"])

    with pytest.raises(DataCheckFailed, match=r"child values \(text\) are not valid uuid values of the parent column"):
        check(child, parent)


def test_missing_table_or_column_raises_naming_the_side(dbs: tuple[str, str]) -> None:
    child, parent = dbs
    make_parent(parent, "bigint", [1])
    make_child(child, "bigint", [1])

    with pytest.raises(DataCheckFailed, match=r'parent table "public"."users" has no column "uid"'):
        check_reference(child, CHILD_SCHEMA, CHILD_TABLE, "User Id", parent, "public", "users", "uid")
    with pytest.raises(DataCheckFailed, match=r'child table "Orders Schema"."nope" does not exist'):
        check_reference(child, CHILD_SCHEMA, "nope", "User Id", parent, "public", "users", "id")


def test_unreachable_parent_raises(dbs: tuple[str, str]) -> None:
    child, _ = dbs
    make_child(child, "bigint", [1])
    with pytest.raises(DataCheckFailed, match=r"could not check: OperationalError"):
        check_reference(child, CHILD_SCHEMA, CHILD_TABLE, "User Id", with_dbname(child, "no_such_db_x"),
                        "public", "users", "id")


def test_both_sides_read_only_repeatable_read(dbs: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    child, parent = dbs
    make_parent(parent, "bigint", [1])
    make_child(child, "bigint", [1, 2])
    seen: list[tuple[object, ...]] = []
    connect = psycopg.connect

    def recording_connect(*args: object, **kwargs: object) -> psycopg.Connection:
        conn = connect(*args, **kwargs)  # type: ignore[arg-type]
        original = conn.execute

        def execute(query: object, params: object = None, **kw: object) -> psycopg.Cursor:
            cur = original(query, params, **kw)  # type: ignore[arg-type]
            if not conn.autocommit and conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS:
                row = original("SELECT current_setting('transaction_read_only'), "
                               "current_setting('transaction_isolation')").fetchone()
                seen.append((conn.info.dbname, *row))  # type: ignore[misc]
            return cur

        conn.execute = execute  # type: ignore[method-assign]
        return conn

    monkeypatch.setattr(references.psycopg, "connect", recording_connect)
    assert check(child, parent).orphans == 1
    assert {dbname for dbname, *_ in seen} == {conninfo_dbname(child), conninfo_dbname(parent)}
    assert {tuple(rest) for _, *rest in seen} == {("on", "repeatable read")}


def conninfo_dbname(conninfo: str) -> str:
    return str(psycopg.conninfo.conninfo_to_dict(conninfo)["dbname"])


def test_memory_stays_bounded_by_the_batch(dbs: tuple[str, str]) -> None:
    """250,000 child rows (125,000 distinct values) in batches of 1,000: Python allocations stay far
    below what the key set alone would take (measured: ~0.3 MB peak against ~9 MB for the values)."""
    child, parent = dbs
    run_sql(parent, "CREATE TABLE public.users (id uuid PRIMARY KEY)",
            "INSERT INTO public.users SELECT md5(g::text)::uuid FROM generate_series(1, 125000) g")
    run_sql(child, sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(CHILD_SCHEMA)),
            sql.SQL('CREATE TABLE {} (id bigserial PRIMARY KEY, "User Id" uuid)').format(
                sql.Identifier(CHILD_SCHEMA, CHILD_TABLE)),
            # every value twice, and 5 values (10 rows) the parent does not have
            sql.SQL('INSERT INTO {} ("User Id") SELECT md5((g % 125000 + CASE WHEN g % 125000 < 5 THEN 200000 '
                    "ELSE 1 END)::text)::uuid FROM generate_series(0, 249999) g").format(
                sql.Identifier(CHILD_SCHEMA, CHILD_TABLE)))
    with psycopg.connect(child) as conn:
        values = [r[0] for r in conn.execute(sql.SQL('SELECT DISTINCT "User Id"::text FROM {}').format(
            sql.Identifier(CHILD_SCHEMA, CHILD_TABLE)))]
    key_set_bytes = sys.getsizeof(values) + sum(sys.getsizeof(v) for v in values)  # the child's keys as str
    del values
    tracemalloc.start()
    try:
        result = check(child, parent, batch=1000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert (result.checked, result.distinct_values, result.orphans, result.orphan_values) == (250_000, 125_000, 10, 5)
    assert result.batches == 125
    print(f"references: 250,000 rows in {result.seconds:.2f} s, Python peak {peak / 1e6:.2f} MB "
          f"(key set {key_set_bytes / 1e6:.1f} MB)")
    assert peak < 2_000_000 < key_set_bytes


@pytest.fixture(scope="module")
def second_server() -> Iterator[str]:
    """Another PostgreSQL server: an embedded PostgreSQL 18 of this module (the session's server may be
    the embedded one too, or PostgreSQL 15 with DBSPLIT_TEST_PG_URL)."""
    from dbsplit.local import embedded

    root = Path(tempfile.mkdtemp(prefix="dbsplit-test-pg2-"))
    url = embedded.start(root / "data")
    yield url
    embedded.stop(root / "data")
    shutil.rmtree(root, ignore_errors=True)


def test_child_and_parent_on_two_servers(make_db: Callable[[str], str], second_server: str) -> None:
    child = make_db("child")
    parent_name = f"t_parent_{uuid.uuid4().hex[:8]}"
    run_sql(second_server, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(parent_name)))
    try:
        parent = with_dbname(second_server, parent_name)
        make_parent(parent, "bigint", range(0, 5000, 2))
        make_child(child, "bigint", [*range(0, 5000, 10), 7, 4999, None])

        result = check(child, parent, batch=100)

        assert (result.checked, result.orphans, result.sample) == (502, 2, ["7", "4999"])
    finally:
        run_sql(second_server, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(parent_name)))
