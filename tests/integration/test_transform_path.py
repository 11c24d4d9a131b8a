"""The transformed path on real databases: extract_chunk -> transform_chunk -> load_chunk, chunk by chunk,
compared with what SQL on the source computes for the same transforms; rejects isolated to their rows."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from dbsplit.pg.copy import source_connection
from dbsplit.engine.migrate.transform import TransformError, extract_chunk, load_chunk, transform_chunk
from dbsplit.model.resolved import ColumnMap, ResolvedTable, row_uuid

pytestmark = pytest.mark.integration

NS = uuid.UUID("0b4c2f9e-1111-4222-8333-444455556666")
SALT = b"pepper\x00\xff"
ROWS = 100

SOURCE_DDL = """
CREATE TABLE people (
  id bigint PRIMARY KEY, org_id bigint NOT NULL, manager_id bigint, name text NOT NULL, email text,
  age_text text, score numeric(10,3), flag boolean, created timestamptz, note text, phone text, secret text,
  deleted boolean NOT NULL DEFAULT false);
INSERT INTO people
SELECT g, g % 7, CASE WHEN g % 5 = 0 THEN NULL ELSE g - 1 END,
       CASE WHEN g % 3 = 0 THEN 'Zoë ' || g || ' "q", x' WHEN g % 3 = 1 THEN E'multi\\nline ' || g ELSE 'n' || g END,
       CASE WHEN g % 10 = 1 THEN NULL WHEN g % 10 = 2 THEN '' ELSE 'user' || g || '@exämple.com' END,
       CASE WHEN g = 13 THEN 'n/a' WHEN g = 44 THEN '-5' WHEN g % 9 = 0 THEN NULL ELSE (g * 3)::text END,
       g * 1.2345, g % 2 = 0, timestamptz '2024-02-29 23:59:59.123456+00' + g * interval '1 day 1 second',
       CASE WHEN g = 27 THEN NULL WHEN g % 4 = 0 THEN '' ELSE 'note ' || g END,
       CASE WHEN g % 6 = 0 THEN NULL ELSE '+49 ' || g END, 'secret ' || g, g % 25 = 0
FROM generate_series(1, 100) g;
"""

TARGET_DDL = """
CREATE TABLE people_v2 (
  id uuid PRIMARY KEY, org_id uuid NOT NULL, manager_id uuid, full_name text NOT NULL, email text,
  age integer CHECK (age >= 0), score numeric(8,1), flag boolean, created timestamptz, note text NOT NULL,
  phone text, secret text, migrated_from text NOT NULL, batch integer);
"""

COLUMNS = (
    ColumnMap("id", "uuid", True, "uuid_key", ("id",)),
    ColumnMap("org_id", "uuid", True, "uuid_ref", ("org_id",), "public.orgs"),
    ColumnMap("manager_id", "uuid", False, "uuid_ref", ("manager_id",), "public.people"),
    ColumnMap("full_name", "text", True, "copy", ("name",)),
    ColumnMap("email", "text", False, "mask_hash", ("email",)),
    ColumnMap("age", "integer", False, "cast", ("age_text",)),
    ColumnMap("score", "numeric(8,1)", False, "cast", ("score",)),
    ColumnMap("flag", "boolean", False, "copy", ("flag",)),
    ColumnMap("created", "timestamp with time zone", False, "copy", ("created",)),
    ColumnMap("note", "text", True, "copy", ("note",)),
    ColumnMap("phone", "text", False, "mask_redact", ("phone",)),
    ColumnMap("secret", "text", False, "mask_null", ("secret",)),
    ColumnMap("migrated_from", "text", True, "default", (), "'monolith'"),
    ColumnMap("batch", "integer", False, "default", (), "7"),
)


def resolved(**kw) -> ResolvedTable:
    return ResolvedTable("people", "public", "people", "public", "people_v2", COLUMNS, ("id",), ("id",), **kw)


def expected_rows(source: str, where: str = "TRUE") -> dict[str, tuple]:
    """Every expected target row, keyed by source key text, computed by SQL on the source."""
    with psycopg.connect(source) as conn:
        rows = conn.execute(sql.SQL(
            "SELECT id::text, org_id::text, manager_id::text, name, "
            " encode(sha256({salt} || convert_to(email, 'UTF8')), 'hex'),"
            " CASE WHEN age_text ~ '^-?[0-9]+$' THEN CAST(age_text AS integer)::text END,"
            " CAST(score AS numeric(8,1))::text, flag::text, created::text, note,"
            " CASE WHEN phone IS NOT NULL THEN 'REDACTED' END, NULL::text, 'monolith', '7'"
            " FROM people WHERE " + where).format(salt=sql.Literal(SALT))).fetchall()
    out = {}
    for r in rows:
        key = r[0]
        out[key] = (str(row_uuid(NS, "public.people", key)), str(row_uuid(NS, "public.orgs", r[1])),
                    None if r[2] is None else str(row_uuid(NS, "public.people", r[2])), *r[3:])
    return out


def target_rows(target: str) -> list[tuple]:
    with psycopg.connect(target) as conn:
        return conn.execute(
            "SELECT id::text, org_id::text, manager_id::text, full_name, email, age::text, score::text, flag::text,"
            " created::text, note, phone, secret, migrated_from, batch::text FROM people_v2").fetchall()


def move(source: str, target: str, table: ResolvedTable, tmp: Path, chunk: int = 40, salt: bytes | None = SALT):
    """Move the table in key-range chunks; returns (rows loaded, rejects, extract stats)."""
    loaded, rejects, extracts = 0, [], []
    with source_connection(source) as src, psycopg.connect(target) as dst:
        with src.transaction(), dst.transaction():
            for lo in range(1, ROWS + 1, chunk):
                where = sql.SQL("{} >= {} AND {} < {}").format(sql.Identifier("id"), lo, sql.Identifier("id"), lo + chunk)
                a, b = tmp / f"e{lo}.arrow", tmp / f"t{lo}.arrow"
                extracts.append(extract_chunk(src, table, where, a))
                transform_chunk(a, b, table, NS, salt)
                stats = load_chunk(dst, "public", "people_v2", table, b)
                loaded += stats.rows
                rejects += stats.rejects
            assert src.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS   # the snapshot survived
    return loaded, rejects, extracts


@pytest.fixture
def dbs(make_db):
    source, target = make_db("tsrc"), make_db("tdst")
    with psycopg.connect(source) as conn:
        conn.execute(SOURCE_DDL)
    with psycopg.connect(target) as conn:
        conn.execute(TARGET_DDL)
    return source, target


def check(source: str, target: str, loaded: int, rejects, filter_sql: str = "TRUE") -> None:
    by_key = {r.key: r for r in rejects}
    assert len(rejects) == 3 and set(by_key) == {"13", "27", "44"}
    assert by_key["13"].column == "age" and by_key["13"].value == "n/a"
    assert 'invalid input syntax for type integer: "n/a"' in by_key["13"].reason
    assert by_key["27"].column == "note" and "not-null" in by_key["27"].reason
    assert by_key["44"].column is None or by_key["44"].column == "age"
    assert "check constraint" in by_key["44"].reason
    expected = expected_rows(source, filter_sql)
    for key in by_key:
        expected.pop(key, None)
    got = sorted(target_rows(target))
    assert loaded == len(got) == len(expected)
    assert got == sorted(expected.values())


def test_transformed_path_matches_sql_on_source_with_rejects(dbs, tmp_path: Path) -> None:
    source, target = dbs
    loaded, rejects, extracts = move(source, target, resolved(), tmp_path)
    assert [len(e.rejects) for e in extracts] == [1, 0, 0]     # the cast failure is set aside by extract
    assert sum(e.source_rows for e in extracts) == ROWS
    assert loaded == ROWS - 3
    check(source, target, loaded, rejects)


def test_filter_is_anded_into_the_source_query(dbs, tmp_path: Path) -> None:
    source, target = dbs
    loaded, rejects, _ = move(source, target, resolved(filter="NOT deleted"), tmp_path)
    assert loaded == ROWS - 4 - 3
    check(source, target, loaded, rejects, "NOT deleted")


def test_custom_function_runs_last_and_takes_the_text_route(dbs, tmp_path: Path, monkeypatch) -> None:
    import sys
    import types

    mod = types.ModuleType("dbsplit_test_custom")

    def shout(df):
        df = df.copy()
        df["full_name"] = df["full_name"].str.upper()
        df["batch"] = df["batch"] + 1
        return df

    mod.shout = shout
    monkeypatch.setitem(sys.modules, "dbsplit_test_custom", mod)
    source, target = dbs
    loaded, rejects, extracts = move(source, target, resolved(custom="dbsplit_test_custom:shout"), tmp_path)
    assert loaded == ROWS - 3 and {r.key for r in rejects} == {"13", "27", "44"}
    expected = expected_rows(source)
    for key in ("13", "27", "44"):
        expected.pop(key)
    want = sorted((*r[:3], r[3].upper(), *r[4:13], "8") for r in expected.values())
    assert sorted(target_rows(target)) == want


def test_single_column_nulls_and_chunk_without_rows(make_db, tmp_path: Path) -> None:
    """A one-column target whose NULL rows are empty CSV lines; an empty chunk loads nothing."""
    source, target = make_db("s1"), make_db("d1")
    with psycopg.connect(source) as conn:
        conn.execute("CREATE TABLE one (id int PRIMARY KEY, v text);"
                     "INSERT INTO one VALUES (1, NULL), (2, ''), (3, 'x'), (4, NULL)")
    with psycopg.connect(target) as conn:
        conn.execute("CREATE TABLE one (w text)")
    table = ResolvedTable("s", "public", "one", "public", "one", (ColumnMap("w", "text", False, "mask_redact", ("v",)),),
                          (), ("id",))
    with source_connection(source) as src, psycopg.connect(target) as dst, src.transaction():
        for where in (None, sql.SQL("id > 100")):
            extract_chunk(src, table, where, tmp_path / "e")
            transform_chunk(tmp_path / "e", tmp_path / "t", table, NS, None)
            load_chunk(dst, "public", "one", table, tmp_path / "t")
        dst.commit()
    with psycopg.connect(target) as conn:
        assert sorted(conn.execute("SELECT w FROM one").fetchall(), key=str) == \
            sorted([(None,), ("REDACTED",), ("REDACTED",), (None,)], key=str)


def test_mask_hash_without_salt_is_a_clear_error(dbs, tmp_path: Path) -> None:
    source, target = dbs
    with pytest.raises(TransformError, match="salt"):
        move(source, target, resolved(), tmp_path, salt=None)


def test_expected_hash_matches_python(dbs) -> None:
    """The SQL used as the reference computes the documented hash."""
    source, _ = dbs
    with psycopg.connect(source) as conn:
        email, digest = conn.execute(sql.SQL(
            "SELECT email, encode(sha256({} || convert_to(email, 'UTF8')), 'hex') FROM people WHERE id = 3"
        ).format(sql.Literal(SALT))).fetchone()
    assert digest == hashlib.sha256(SALT + email.encode()).hexdigest()
