"""freeze: a guard trigger refuses every write to a source table, reversibly, without touching its data."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dbsplit.pg.freeze import GUARD_SCHEMA, FreezeError, freeze, is_frozen, unfreeze

pytestmark = pytest.mark.integration

SOURCE = '''
CREATE SCHEMA "Sales Ops";
CREATE TABLE "Sales Ops"."Order ""Items""" (id int PRIMARY KEY, v text);
INSERT INTO "Sales Ops"."Order ""Items""" SELECT g, 'row ' || g FROM generate_series(1, 500) g;
CREATE TABLE public.events (id int, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE public.events_2024 PARTITION OF public.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE public.events_2025 PARTITION OF public.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO public.events SELECT g, date '2024-06-01' + g FROM generate_series(1, 300) g;
CREATE TABLE public.untouched (id int);
CREATE VIEW public.v AS SELECT 1 AS one;
'''
ITEMS = ("Sales Ops", 'Order "Items"')
EVENTS = ("public", "events")
WRITES = [
    "INSERT INTO {} SELECT * FROM {} LIMIT 1",
    "UPDATE {} SET id = id",
    "DELETE FROM {}",
    "TRUNCATE {}",
]


def checksum(conn: psycopg.Connection, table: tuple[str, str]) -> str:
    t = sql.Identifier(*table)
    return conn.execute(sql.SQL("SELECT md5(string_agg(x::text, ',' ORDER BY x::text)) FROM {} x").format(t)).fetchone()[0]


@pytest.fixture
def source(make_db: Callable[[str], str]) -> str:
    db = make_db("freeze")
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(SOURCE)
    return db


def assert_refused(conn: psycopg.Connection, table: tuple[str, str], message: str) -> None:
    for stmt in WRITES:
        query = sql.SQL(stmt).format(sql.Identifier(*table), sql.Identifier(*table))
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as info:
            conn.execute(query)
        text = str(info.value)
        assert "dbsplit:" in text and "frozen for the migration" in text and message in text, text
        assert info.value.diag.message_hint and "unfreeze" in info.value.diag.message_hint


def test_freeze_refuses_every_write_and_unfreeze_restores(source: str) -> None:
    message = "jobboard run manual__2025-01-01"
    with psycopg.connect(source, autocommit=True) as conn:
        before = {t: checksum(conn, t) for t in (ITEMS, EVENTS)}

    state = freeze(source, [ITEMS, EVENTS], message)
    assert set(state.tables) == {ITEMS, EVENTS, ("public", "events_2024"), ("public", "events_2025")}
    assert set(state.newly_frozen) == set(state.tables) and state.message == message
    assert is_frozen(source, ITEMS) and is_frozen(source, ("public", "events_2025"))
    assert not is_frozen(source, ("public", "untouched"))

    with psycopg.connect(source, autocommit=True) as conn:
        for table in (ITEMS, EVENTS, ("public", "events_2024")):  # a partition addressed directly too
            assert_refused(conn, table, message)
        # a session in replica mode (logical replication apply, pg_restore --disable-triggers) is refused as well
        conn.execute("SET session_replication_role = replica")
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
            conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(*ITEMS)))
        conn.execute("RESET session_replication_role")
        conn.execute("INSERT INTO public.untouched VALUES (1)")  # other tables stay writable
        assert {t: checksum(conn, t) for t in (ITEMS, EVENTS)} == before

    # freezing twice is fine and changes nothing; a new message re-labels the guard
    again = freeze(source, [ITEMS, EVENTS], message)
    assert again.newly_frozen == () and set(again.tables) == set(state.tables)
    relabel = freeze(source, [ITEMS], "second run")
    assert relabel.newly_frozen == (ITEMS,)
    with psycopg.connect(source, autocommit=True) as conn:
        assert_refused(conn, ITEMS, "second run")

    assert set(unfreeze(source, [ITEMS, EVENTS])) == set(state.tables)
    assert unfreeze(source, [ITEMS, EVENTS]) == []
    assert not is_frozen(source, ITEMS) and not is_frozen(source, ("public", "events_2024"))
    with psycopg.connect(source, autocommit=True) as conn:
        assert checksum(conn, ITEMS) == before[ITEMS] and checksum(conn, EVENTS) == before[EVENTS]
        assert not conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (GUARD_SCHEMA,)).fetchone()
        with conn.transaction():  # writes work again (rolled back: the test leaves the data as it found it)
            conn.execute(sql.SQL("UPDATE {} SET v = v || '!'").format(sql.Identifier(*ITEMS)))
            conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(*EVENTS)))
            raise psycopg.Rollback()


def test_guard_message_reaches_an_application_role(source: str, pg_server_url: str) -> None:
    """A writer with table privileges only (no USAGE on _dbsplit_guard) gets dbsplit's message, not a permission error."""
    role = f"t_app_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL('GRANT USAGE ON SCHEMA "Sales Ops" TO {}').format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT ALL ON {} TO {}").format(sql.Identifier(*ITEMS), sql.Identifier(role)))
    try:
        freeze(source, [ITEMS], "app role test")
        params = conninfo_to_dict(source)
        params["user"] = role
        with psycopg.connect(make_conninfo(**params), autocommit=True) as app:
            assert_refused(app, ITEMS, "app role test")
            # the application cannot lift the freeze: it does not own the table
            with pytest.raises(FreezeError, match="owns the source tables"):
                freeze(make_conninfo(**params), [ITEMS], "hijack")
    finally:
        unfreeze(source, [ITEMS])
        with psycopg.connect(source, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_freeze_is_all_or_nothing(source: str) -> None:
    with pytest.raises(FreezeError, match="not a table"):
        freeze(source, [ITEMS, ("public", "v")], "m")
    with pytest.raises(FreezeError, match="missing"):
        freeze(source, [("public", "nope")], "m")
    assert not is_frozen(source, ITEMS)
    with psycopg.connect(source) as conn:
        assert not conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (GUARD_SCHEMA,)).fetchone()


def test_disabled_guard_is_not_frozen_and_freeze_repairs_it(source: str) -> None:
    freeze(source, [ITEMS], "m")
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER TABLE {} DISABLE TRIGGER dbsplit_freeze_guard").format(sql.Identifier(*ITEMS)))
    assert not is_frozen(source, ITEMS)
    assert freeze(source, [ITEMS], "m").newly_frozen == (ITEMS,)
    assert is_frozen(source, ITEMS)
    unfreeze(source, [ITEMS])
