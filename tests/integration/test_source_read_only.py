"""Nothing from a plan writes to the source.

(a) Every helper that opens a session on the source opens it with default_transaction_read_only=on as a
connection option: a write fails even after a COMMIT sent over the simple protocol (the way a filter
that escapes its parentheses arrives). (b) The injection of issue 22, given as an attacker who edits a
manifest or an XCom would (no plan validation), to the chunk planner and to both extracts: the parser
refuses it, and with the parser taken out the read-only session still stops it. The source's catalog and
data are unchanged afterwards and no `pwned` table exists.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import pq

from dbsplit.pg import backup, conn, freeze
from dbsplit.engine import preflight
from dbsplit.airflow import runtime
from dbsplit.pg.conn import airflow_conn_env
from dbsplit.errors import SqlFragmentError
from dbsplit.engine.migrate import chunks, transform
from dbsplit.pg import copy
from dbsplit.plan import read_plan
from dbsplit.model import sql_fragments
from dbsplit.engine import plan_check
from dbsplit.model.resolved import ColumnMap, ResolvedTable
from dbsplit.engine.verify import references

pytestmark = pytest.mark.integration

INJECTION = "true); COMMIT; CREATE TABLE public.pwned AS SELECT 1; SELECT (1"
WRITE = b"COMMIT; CREATE TABLE pwned AS SELECT 1"


@pytest.fixture
def source(make_db) -> str:
    info = make_db("ro_source")
    with psycopg.connect(info, autocommit=True) as c:
        c.execute("CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL, deleted_at timestamptz)")
        c.execute("INSERT INTO users SELECT g, 'u' || g || '@example.com', CASE WHEN g % 7 = 0 THEN now() END "
                  "FROM generate_series(1, 3000) g")
        c.execute("ANALYZE users")
    return info


def assert_read_only(session: psycopg.Connection) -> None:
    """The session's transactions start READ ONLY, and a write after a COMMIT in one simple query fails."""
    raw = session.pgconn   # libpq itself: the simple protocol, several statements in one string
    assert raw.exec_(b"SHOW default_transaction_read_only").get_value(0, 0) == b"on"
    result = raw.exec_(WRITE)
    assert result.status == pq.ExecStatus.FATAL_ERROR, "the write after COMMIT was not refused"
    assert result.error_field(pq.DiagnosticField.SQLSTATE) == b"25006"   # read_only_sql_transaction


def has_pwned(info: str) -> bool:
    with psycopg.connect(info) as c:
        return c.execute("SELECT count(*) FROM pg_class WHERE relname = 'pwned'").fetchone()[0] > 0


# --- (a) every helper that opens a source session ------------------------------------------------


def _snapshot_session(info: str) -> None:
    """checksums and the resync's root summaries: a second session on the extract's exported snapshot."""
    with copy.source_connection(info) as src, src.transaction():
        copy.in_snapshot(info, copy.export_snapshot(src), assert_read_only)


def _plan_check_session(info: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text("version: 1\nname: ro\nsource: {conn_id: src}\nservices:\n"
                    "  users: {target: {conn_id: users_db}, tables: [users]}\n")
    seen: list[bool] = []
    def probe(plan: object, cat: Any) -> list:
        seen.append(True)
        assert_read_only(cat.conn)
        return []

    monkeypatch.setattr(plan_check, "source_issues", probe)
    result = plan_check.check_source(*read_plan(path), info)
    assert result.skipped is None and seen == [True]


def _backup_sessions(info: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The catalog reads before a dump, and the dump's own session (pg_dump gets this conninfo)."""
    class Stop(Exception):
        pass

    def probe_expand(session: psycopg.Connection, tables: list) -> list:
        assert_read_only(session)
        return tables

    def probe_dump(args: list[str], env: dict[str, str], what: str) -> None:
        dsn = next(a.removeprefix("--dbname=") for a in args if a.startswith("--dbname="))
        with psycopg.connect(dsn) as session:
            assert_read_only(session)
        raise Stop

    monkeypatch.setattr(backup, "_expand", probe_expand)
    monkeypatch.setattr(backup, "_run", probe_dump)
    with pytest.raises(Stop):
        backup.dump_tables(info, [("public", "users")], tmp_path / "backups")


def _is_frozen_session(info: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(freeze, "_trigger", lambda session, schema, table: assert_read_only(session))
    assert freeze.is_frozen(info, ("public", "users")) is False


def test_every_source_session_is_read_only_at_the_connection(source: str, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    with conn.connect_source(source) as session:
        assert_read_only(session)
    with copy.source_connection(source) as session:   # extract, chunk planning, plan init, orchestrator, resync
        assert_read_only(session)
    _snapshot_session(source)
    _plan_check_session(source, tmp_path, monkeypatch)
    session = preflight._connect("source", source, 10, None)
    assert session is not None
    with session:
        assert_read_only(session)
    with references._reader(source, "dbsplit-test") as session:
        assert_read_only(session)
    _backup_sessions(source, tmp_path, monkeypatch)
    _is_frozen_session(source, monkeypatch)
    assert not has_pwned(source)


def test_the_read_only_option_joins_the_options_already_given(source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with conn.connect_source(source + " options='-c search_path=pg_catalog'") as session:
        assert session.execute("SHOW search_path").fetchone()[0] == "pg_catalog"
        assert_read_only(session)
    monkeypatch.setenv("PGOPTIONS", "-c application_name=from_pgoptions")
    with conn.connect_source(source) as session:
        assert session.execute("SHOW application_name").fetchone()[0] == "from_pgoptions"
        assert_read_only(session)
    with conn.connect_source(source + " options='-c default_transaction_read_only=off'") as session:
        assert_read_only(session)   # dbsplit's option comes last and wins


# --- (b) the injection, past plan validation ---------------------------------------------------------


def fingerprint(info: str) -> tuple[Any, ...]:
    """Names in the catalog (relations, schemas, functions) and a checksum of every row of users."""
    with psycopg.connect(info) as c:
        return c.execute(
            "SELECT (SELECT array_agg(format('%s.%s:%s', n.nspname, r.relname, r.relkind)"
            "                         ORDER BY n.nspname, r.relname)"
            "        FROM pg_class r JOIN pg_namespace n ON n.oid = r.relnamespace),"
            "       (SELECT array_agg(nspname ORDER BY nspname) FROM pg_namespace),"
            "       (SELECT array_agg(p.oid::regprocedure::text ORDER BY p.oid::regprocedure::text) FROM pg_proc p),"
            "       (SELECT count(*) FROM users), (SELECT md5(string_agg(u::text, ',' ORDER BY u.id)) FROM users u)"
        ).fetchone()


def table(row_filter: str, masked: bool) -> ResolvedTable:
    """users, pass-through (masked False) or transformed, with a filter no plan validation has seen."""
    email = ColumnMap("email", "text", True, "mask_hash" if masked else "copy", ("email",))
    columns = (ColumnMap("id", "bigint", True, "copy", ("id",)), email,
               ColumnMap("deleted_at", "timestamp with time zone", False, "copy", ("deleted_at",)))
    return ResolvedTable("users", "public", "users", "public", "users", columns, ("id",), ("id",), filter=row_filter)


def attack(source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """The chunk planner, the transformed extract and the pass-through extract task, each with INJECTION."""
    monkeypatch.setenv(*airflow_conn_env("ro_source", source))
    monkeypatch.setenv("DBSPLIT_STAGING_URL", f"file://{tmp_path}/staging")
    errors: list[BaseException] = []

    def planner() -> object:
        with copy.source_connection(source) as src, src.transaction():
            return chunks.plan_chunks(src, "public", "users", ("id",), ("bigint",), 1000, INJECTION)

    def transformed_extract() -> object:
        with copy.source_connection(source) as src, src.transaction():
            return transform.extract_chunk(src, table(INJECTION, True), None, tmp_path / "t.extract")

    def passthrough_extract() -> object:
        chunk = {"index": 0, "count": 1, "kind": "all", "lo": None, "hi": None, "done": False, "label": "users 1/1",
                 "load_id": 1, "table": table(INJECTION, False).as_dict(), "checksum_method": "md5"}
        service = {"source_conn_id": "ro_source", "dag_id": "dbsplit_migrate_users", "service": "users",
                   "plan": "attack", "plan_path": str(tmp_path / "plan.yaml"), "target_conn_id": "ro_target",
                   "tables": []}   # the service payload (engine.payloads.ServiceRef); extract reads no plan
        return runtime.extract(service, chunk, "attack")

    for attempt in (planner, transformed_extract, passthrough_extract):
        with pytest.raises((SqlFragmentError, psycopg.Error)) as caught:
            attempt()
        errors.append(caught.value)
    return errors


def test_the_injection_is_refused_by_the_parser(source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = fingerprint(source)
    errors = attack(source, tmp_path, monkeypatch)
    assert [type(e) for e in errors] == [SqlFragmentError] * 3, errors
    assert all("Fix: write one SQL expression" in str(e) for e in errors)
    assert fingerprint(source) == before and not has_pwned(source)


def test_the_injection_fails_on_the_read_only_session_without_the_parser(
        source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Defence in depth: with the parser's verdict taken out, the filter reaches the server as written
    (the chunk planner sends it over the simple protocol, so its COMMIT runs), and the session refuses."""
    monkeypatch.setattr(sql_fragments, "problem", lambda kind, text: None)
    assert sql_fragments.filter_sql(INJECTION).as_string(None) == f"({INJECTION})"
    before = fingerprint(source)
    errors = attack(source, tmp_path, monkeypatch)
    # the planner's COMMIT ran and the CREATE did not
    assert isinstance(errors[0], psycopg.errors.ReadOnlySqlTransaction), errors[0]
    assert all(isinstance(e, psycopg.errors.SyntaxError) for e in errors[1:]), errors   # COPY (...): nothing runs
    assert fingerprint(source) == before and not has_pwned(source)


def test_a_cast_or_default_past_validation_never_reaches_the_source(source: str) -> None:
    before = fingerprint(source)
    base = table("deleted_at IS NULL", True)
    with pytest.raises(SqlFragmentError, match="the plan's type"):
        ColumnMap("n", "int) FROM users; COMMIT; CREATE TABLE public.pwned AS SELECT 1; SELECT CAST(1 AS int",
                  False, "cast", ("id",))
    with pytest.raises(SqlFragmentError, match="the plan's default"):
        ResolvedTable.from_dict({**base.as_dict(), "columns": [
            *[dataclasses.asdict(c) for c in base.columns],
            {"target": "origin", "target_type": "text", "not_null": False, "op": "default", "source": [],
             "arg": "'x' AS text); COMMIT; CREATE TABLE public.pwned AS SELECT 1; SELECT CAST(('x'"}]})
    assert fingerprint(source) == before and not has_pwned(source)
