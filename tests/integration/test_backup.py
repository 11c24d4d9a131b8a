"""backup: pg_dump (custom format) with a checksum beside it, verified, restored into a fresh database, same rows."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from dbsplit.pg.backup import BackupError, dump_database, dump_tables, find_pg_tool, load_backup, restore, verify

pytestmark = pytest.mark.integration

SOURCE = r'''
CREATE SCHEMA "Sales Ops";
CREATE TABLE "Sales Ops"."Order ""Items""" (
    "select" serial PRIMARY KEY,
    "Straße" text,
    payload jsonb,
    raw bytea,
    price numeric(12, 2)
);
INSERT INTO "Sales Ops"."Order ""Items""" ("Straße", payload, raw, price)
SELECT CASE WHEN g % 7 = 0 THEN NULL ELSE 'straße ' || g END, jsonb_build_object('g', g, 'tab', E'a\tb'),
       decode(md5(g::text), 'hex'), g * 1.25
FROM generate_series(1, 2000) g;
CREATE TABLE public.users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text UNIQUE NOT NULL);
INSERT INTO public.users (email) SELECT 'u' || g || '@example.org' FROM generate_series(1, 1000) g;
CREATE TABLE public.events (id int, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE public.events_2024 PARTITION OF public.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE public.events_2025 PARTITION OF public.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO public.events SELECT g, date '2024-06-01' + (g % 400) FROM generate_series(1, 3000) g;
CREATE TABLE public.not_dumped (id int);
INSERT INTO public.not_dumped VALUES (1);
'''
ITEMS = ("Sales Ops", 'Order "Items"')
USERS = ("public", "users")
EVENTS = ("public", "events")


def rows_md5(conninfo: str, table: tuple[str, str]) -> tuple[int, str]:
    """Row count and md5 of the rows in key order (whole-row text, ordered)."""
    with psycopg.connect(conninfo) as conn:
        return conn.execute(sql.SQL("SELECT count(*), md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')) "
                                    "FROM {} x").format(sql.Identifier(*table))).fetchone()


@pytest.fixture
def source(make_db: Callable[[str], str]) -> str:
    db = make_db("backup_src")
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(SOURCE)
    return db


def test_dump_tables_verify_restore(source: str, make_db: Callable[[str], str], tmp_path: Path) -> None:
    before = {t: rows_md5(source, t) for t in (ITEMS, USERS, EVENTS)}
    backup = dump_tables(source, [ITEMS, USERS, EVENTS], tmp_path)

    assert backup.kind == "tables" and backup.bytes == backup.path.stat().st_size > 0
    assert set(backup.tables) == {ITEMS, USERS, EVENTS, ("public", "events_2024"), ("public", "events_2025")}
    assert backup.checksum_path.read_text() == f"{backup.sha256}  {backup.path.name}\n"
    with psycopg.connect(source) as conn:
        assert backup.pg_dump_major >= conn.info.server_version // 10000
    verify(backup)
    assert load_backup(backup.path) == backup
    assert json.loads(backup.manifest_path.read_text())["kind"] == "tables"
    assert {t: rows_md5(source, t) for t in before} == before  # the source is as it was

    target = make_db("backup_dst")
    restore(backup, target)
    assert {t: rows_md5(target, t) for t in before} == before
    assert before[ITEMS][0] == 2000 and before[EVENTS][0] == 3000
    with psycopg.connect(target, autocommit=True) as conn:
        assert not conn.execute("SELECT to_regclass('public.not_dumped')").fetchone()[0]
        # owned sequences came along, positioned after the data
        conn.execute(sql.SQL("INSERT INTO {} (\"Straße\") VALUES ('new')").format(sql.Identifier(*ITEMS)))
        assert conn.execute(sql.SQL('SELECT max("select") FROM {}').format(sql.Identifier(*ITEMS))).fetchone()[0] == 2001


def test_dump_database_restore(source: str, make_db: Callable[[str], str], tmp_path: Path) -> None:
    tables = [ITEMS, USERS, EVENTS, ("public", "not_dumped")]
    before = {t: rows_md5(source, t) for t in tables}
    backup = dump_database(source, tmp_path / "nested" / "dir")
    assert backup.kind == "database" and backup.tables == ()
    target = make_db("backup_full")
    restore(backup, target)
    assert {t: rows_md5(target, t) for t in tables} == before


def test_corrupt_backup_is_refused(source: str, make_db: Callable[[str], str], tmp_path: Path) -> None:
    backup = dump_tables(source, [USERS], tmp_path)
    data = bytearray(backup.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    backup.path.write_bytes(bytes(data))
    with pytest.raises(BackupError, match="corrupt"):
        verify(backup)
    target = make_db("backup_never")
    with pytest.raises(BackupError, match="corrupt"):
        restore(backup, target)
    with psycopg.connect(target) as conn:
        assert not conn.execute("SELECT to_regclass('public.users')").fetchone()[0]


def test_restore_refuses_a_non_empty_database_or_an_older_server(source: str, make_db: Callable[[str], str],
                                                                 tmp_path: Path) -> None:
    backup = dump_tables(source, [USERS], tmp_path)
    with pytest.raises(BackupError, match="not empty"):
        restore(backup, source)
    # stands for a dump made by a newer pg_dump (pg_restore 18 into PostgreSQL 15 fails on transaction_timeout)
    with pytest.raises(BackupError, match="made by pg_dump 99.*not supported.*Fix:"):
        restore(dataclasses.replace(backup, pg_dump_major=99), make_db("backup_old"))


def test_missing_table_and_tool_messages(source: str, tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="does not exist"):
        dump_tables(source, [("public", "nope")], tmp_path)
    with pytest.raises(BackupError, match="no pg_dump of PostgreSQL 99 or newer found.*Fix:"):
        find_pg_tool("pg_dump", 99)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_tool_choice_fits_the_server(source: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with psycopg.connect(source) as conn:
        major = conn.info.server_version // 10000
    tool = find_pg_tool("pg_dump", major)
    assert tool.major >= major and tool.path.name == "pg_dump"
    monkeypatch.setenv("DBSPLIT_PG_BIN", str(tmp_path))  # configured: nowhere else is looked at
    with pytest.raises(BackupError, match="found: none"):
        find_pg_tool("pg_dump", major)
