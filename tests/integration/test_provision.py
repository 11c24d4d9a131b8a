"""provision: one least-privilege role per service, its database and schemas, idempotent, undoable.

Both test servers authenticate by trust, so a password is never checked at login here; what the
tests prove at login is the CONNECT privilege (checked after authentication, whatever the method),
and the password is proved by its stored SCRAM verifier.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dbsplit.pg.conn import with_dbname
from dbsplit.pg.provision import (
    ProvisionError,
    drop_if_created,
    ensure_schema,
    ensure_service_role,
    verifier_matches,
)

pytestmark = pytest.mark.integration


def as_user(conninfo: str, user: str, password: str | None = None) -> str:
    params = conninfo_to_dict(conninfo)
    params["user"] = user
    if password:
        params["password"] = password
    return make_conninfo(**params)


@pytest.fixture
def names(pg_server_url: str) -> Iterator[Callable[[str], tuple[str, str]]]:
    """names("users") -> (database, role), both unique; dropped after the test (databases first)."""
    made: list[tuple[str, str]] = []

    def _make(label: str) -> tuple[str, str]:
        suffix = uuid.uuid4().hex[:8]
        made.append((f"t_svc_{label}_{suffix}", f"t_role_{label}_{suffix}"))
        return made[-1]

    yield _make
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        for db, _ in made:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
        for _, role in made:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_service_role_least_privilege(pg_server_url: str, names: Callable[[str], tuple[str, str]]) -> None:
    db_a, role_a = names("users")
    db_b, role_b = names("jobs")
    res_a = ensure_service_role(pg_server_url, db_a, role_a, "pw-a", ["app"])
    res_b = ensure_service_role(pg_server_url, db_b, role_b, "pw-b", ["app", "Other Schema"])
    assert (res_a.created_role, res_a.created_database) == (True, True)
    assert (res_b.created_role, res_b.created_database) == (True, True)

    # the role connects to its own database and writes and reads the tables the admin (dbsplit) made there,
    # but may create, drop or alter nothing
    with psycopg.connect(with_dbname(pg_server_url, db_a), autocommit=True) as conn:
        conn.execute("CREATE TABLE app.t (id serial PRIMARY KEY, v text)")
    with psycopg.connect(as_user(with_dbname(pg_server_url, db_a), role_a, "pw-a"), autocommit=True) as conn:
        conn.execute("INSERT INTO app.t (v) VALUES ('x'), ('y')")
        conn.execute("UPDATE app.t SET v = 'z' WHERE id = 2")
        conn.execute("DELETE FROM app.t WHERE id = 1")
        assert conn.execute("SELECT count(*) FROM app.t").fetchone()[0] == 1
        for statement in ("DROP TABLE app.t", "ALTER TABLE app.t ADD COLUMN w int", "CREATE TABLE app.mine (id int)",
                          "TRUNCATE app.t", "CREATE DATABASE t_should_not_exist", "CREATE ROLE t_should_not_exist"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)

    # ... and cannot connect to another service's database, either way round
    for db, role in ((db_b, role_a), (db_a, role_b)):
        with pytest.raises(psycopg.OperationalError, match="CONNECT privilege|permission denied for database"):
            psycopg.connect(as_user(with_dbname(pg_server_url, db), role), connect_timeout=10).close()

    with psycopg.connect(pg_server_url) as conn:
        attrs = conn.execute("SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls "
                             "FROM pg_roles WHERE rolname = %s", (role_a,)).fetchone()
        assert attrs == (True, False, False, False, False, False)
        q = "SELECT has_database_privilege(%s, %s, 'CONNECT')"
        assert conn.execute(q, (role_a, db_a)).fetchone()[0]
        assert not conn.execute(q, (role_a, db_b)).fetchone()[0]
        assert not conn.execute(q, ("public", db_a)).fetchone()[0]
        # the password is stored hashed (SCRAM), and it is the one given
        stored = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role_a,)).fetchone()[0]
        assert stored.startswith("SCRAM-SHA-256$") and "pw-a" not in stored
        assert verifier_matches(stored, role_a, "pw-a") and not verifier_matches(stored, role_a, "pw-b")
    with psycopg.connect(with_dbname(pg_server_url, db_b)) as conn:
        owners = conn.execute("SELECT nspname, pg_get_userbyid(nspowner) FROM pg_namespace "
                              "WHERE nspname IN ('app', 'Other Schema') ORDER BY 1").fetchall()
        assert owners == [("Other Schema", conn.info.user), ("app", conn.info.user)]


def test_idempotent_and_takes_back_what_the_role_owned(pg_server_url: str, names: Callable[[str], tuple[str, str]],
                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    db, role = names("search")
    first = ensure_service_role(pg_server_url, db, role, "s3cret-Pässwörd", ["app"])
    assert first.created_role and first.created_database
    again = ensure_service_role(pg_server_url, db, role, "s3cret-Pässwörd", ["app"])
    assert again.changes == ()
    assert (again.created_role, again.created_database) == (False, False)

    # an older dbsplit made the role the owner of its schema and tables: it could DROP them. The next
    # ensure_service_role hands them to the admin and grants DML (nextval on the serial sequence) instead
    target = with_dbname(pg_server_url, db)
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute('CREATE TABLE app."Jobs" (id serial PRIMARY KEY, title text)')
        conn.execute("""COMMENT ON TABLE app."Jobs" IS 'managed by dbsplit'""")
        conn.execute(sql.SQL('ALTER TABLE app."Jobs" OWNER TO {}').format(sql.Identifier(role)))
        conn.execute(sql.SQL("ALTER SCHEMA app OWNER TO {}").format(sql.Identifier(role)))
    third = ensure_service_role(pg_server_url, db, role, "s3cret-Pässwörd", ["app"])
    assert {"schema app now owned by", "table app.Jobs now owned by"} <= {c.rsplit(" ", 1)[0] for c in third.changes}
    assert f"granted SELECT, INSERT, UPDATE, DELETE on table app.Jobs to {role}" in third.changes
    with psycopg.connect(target) as conn:
        owners = conn.execute("SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c "
                              "WHERE c.relnamespace = 'app'::regnamespace ORDER BY 1").fetchall()
        assert {o for _, o in owners} == {conn.info.user}, owners
    with psycopg.connect(as_user(target, role), autocommit=True) as conn:
        conn.execute("INSERT INTO app.\"Jobs\" (title) VALUES ('a')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute('DROP TABLE app."Jobs"')
    assert ensure_service_role(pg_server_url, db, role, "s3cret-Pässwörd", ["app"]).changes == ()
    # a new password is set; the old one no longer matches
    rotated = ensure_service_role(pg_server_url, db, role, "rotated", ["app"])
    assert rotated.changes == (f"set password of role {role}",)
    assert "s3cret" not in caplog.text and "rotated" not in caplog.text


def test_existing_privileged_role_is_refused(pg_server_url: str, names: Callable[[str], tuple[str, str]]) -> None:
    db, role = names("bad")
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB").format(sql.Identifier(role)))
    with pytest.raises(ProvisionError, match="createdb"):
        ensure_service_role(pg_server_url, db, role, None, ["app"])
    with pytest.raises(ProvisionError, match="admin user"):
        ensure_service_role(pg_server_url, db, str(conninfo_to_dict(pg_server_url).get("user")), None, [])


def test_drop_if_created(pg_server_url: str, names: Callable[[str], tuple[str, str]], make_db: Callable[[str], str]) -> None:
    db, role = names("notif")
    res = ensure_service_role(pg_server_url, db, role, None, ["app"])
    assert sorted(drop_if_created(pg_server_url, db, role, res)) == [f"database {db}", f"role {role}"]
    with psycopg.connect(pg_server_url) as conn:
        assert not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone()
        assert not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()

    # a database that existed stays; the role created for it goes, its objects back to the admin
    shared = make_db("shared")
    shared_db = conninfo_to_dict(shared)["dbname"]
    _, role2 = names("analytics")
    res2 = ensure_service_role(pg_server_url, shared_db, role2, None, ["analytics"])
    assert (res2.created_role, res2.created_database) == (True, False)
    assert drop_if_created(pg_server_url, shared_db, role2, res2) == [f"role {role2}"]
    with psycopg.connect(shared) as conn:
        owner = conn.execute("SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'analytics'").fetchone()
        assert owner[0] == conn.info.user
    assert drop_if_created(pg_server_url, shared_db, role2, res2) == []  # nothing left to undo


def test_ensure_schema(make_db: Callable[[str], str]) -> None:
    db = make_db("schema")
    assert ensure_schema(db, "Billing Ops") is True
    assert ensure_schema(db, "Billing Ops") is False
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'Billing Ops'").fetchone()


def test_drop_if_created_keeps_a_role_used_elsewhere(pg_server_url: str, names: Callable[[str], tuple[str, str]],
                                                     make_db: Callable[[str], str]) -> None:
    db, role = names("kept")
    res = ensure_service_role(pg_server_url, db, role, None, ["app"])
    other = make_db("other")  # torn down before `names`, which then drops the role
    with psycopg.connect(other, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int)")
        conn.execute(sql.SQL("GRANT SELECT ON t TO {}").format(sql.Identifier(role)))
    with pytest.raises(ProvisionError, match="it was kept"):
        drop_if_created(pg_server_url, db, role, res)
    with psycopg.connect(pg_server_url) as conn:
        assert not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone()
        assert conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
