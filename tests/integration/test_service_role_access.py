"""Each service role can work in its own database and nowhere else (issue 22, item 2).

The services are provisioned (orchestrate.provision_targets), loaded and promoted through the
runtime functions the service DAG runs, resynced, and published (orchestrate.mark_cut_over); after
each step the test connects AS the service role and uses its tables. Preflight warns when a service
role could connect to the monolith.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from dbsplit.airflow import orchestrate, runtime
from dbsplit.pg.conn import airflow_conn_env, dbname_of
from dbsplit.plan import load_plan
from dbsplit.engine.preflight import preflight
from dbsplit.airflow.render import service_descriptor
from dbsplit.local.samples import create_sample
from dbsplit.airflow.specs import service_specs
from dbsplit.pg.staging import side_name
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tests.integration import test_checkpoint as checkpoint
from tests.integration import test_end_dual_write as dual

pytestmark = pytest.mark.integration

SERVICES = {"users": "jobboard_users", "companies": "jobboard_companies"}   # service -> target conn id


def as_user(conninfo: str, user: str, password: str) -> str:
    return make_conninfo(conninfo, user=user, password=password)


@pytest.fixture
def roles(pg_server_url: str) -> Iterator[dict[str, tuple[str, str]]]:
    """service -> (role, password): unique names; every privilege and the role dropped afterwards."""
    made = {s: (f"t_access_{s}_{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}") for s in SERVICES}
    yield made
    for role, _ in made.values():   # its privileges in the databases of this test (dropped after this fixture)
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            dbs = [r[0] for r in conn.execute(
                "SELECT DISTINCT coalesce(d.datname, current_database()) FROM pg_shdepend s JOIN pg_roles r ON "
                "r.oid = s.refobjid LEFT JOIN pg_database d ON d.oid = s.dbid WHERE r.rolname = %s", (role,))]
        for db in dbs:
            with psycopg.connect(make_conninfo(pg_server_url, dbname=db), autocommit=True) as conn:
                conn.execute(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(sql.Identifier(role)))
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture
def provisioned(make_db, tmp_path, monkeypatch, roles):
    """Two services with a `<conn id>_role` connection each, provisioned as the orchestrator does."""
    source = make_db("monolith")
    targets = {"users": make_db("users"), "companies": make_db("companies")}
    create_sample(source, "jobboard", rows=2_000)
    monkeypatch.setenv(*airflow_conn_env("jobboard_monolith", source))
    for service, conn_id in SERVICES.items():
        monkeypatch.setenv(*airflow_conn_env(conn_id, targets[service]))
        monkeypatch.setenv(*airflow_conn_env(f"{conn_id}_role", as_user(targets[service], *roles[service])))
    monkeypatch.setenv("DBSPLIT_STAGING_URL", f"file://{tmp_path}/staging")
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(dual.PLAN)
    orch = {"plan": "jobboard", "plan_path": str(plan_file), "services": list(SERVICES)}
    done = orchestrate.provision_targets(orch, list(SERVICES))
    assert {s: d["role"] for s, d in done.items()} == {s: r for s, (r, _) in roles.items()}
    services = {spec.service: service_descriptor(spec)
                for spec in service_specs(load_plan(plan_file), str(plan_file))}
    return orch, services, targets


def migrate(svc: dict, run_id: str) -> None:
    """Load, validate and promote one service's tables as its DAG does."""
    checkpoint.load_all(svc, run_id)
    runtime.validate(svc, svc["tables"][0]["target_table"], run_id)
    runtime.promote(svc)
    runtime.finish(svc, run_id)


def sequences(target: str, table: str) -> list[sql.Identifier]:
    """The sequences of a table (identity and serial)."""
    with psycopg.connect(target) as c:
        found = [sql.Identifier(*r) for r in c.execute(
            "SELECT n.nspname, s.relname FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' "
            "JOIN pg_namespace n ON n.oid = s.relnamespace WHERE d.refobjid = %s::regclass AND d.deptype IN ('a', 'i') "
            "ORDER BY 1, 2", (table,))]
    assert found, f"{table} has no sequence"
    return found


def assert_role_works(target: str, role: str, password: str, tables: list[str]) -> None:
    """As the role: SELECT, INSERT, UPDATE, DELETE on every table, nextval on every sequence; no DROP."""
    with psycopg.connect(as_user(target, role, password)) as c:
        assert c.info.user == role
        for table in tables:
            ident = sql.Identifier("public", table)
            with c.transaction(force_rollback=True):   # a real row in, changed, out (identity default: nextval)
                assert c.execute(sql.SQL("SELECT count(*) FROM {}").format(ident)).fetchone()[0] > 0
                copied = c.execute(sql.SQL("CREATE TEMP TABLE r ON COMMIT DROP AS SELECT * FROM {} LIMIT 1").format(ident))
                assert copied.rowcount == 1
                c.execute("ALTER TABLE r DROP COLUMN id")
                c.execute("UPDATE r SET " + ("email = 'access@example.com', public_id = gen_random_uuid()"
                                             if table == "users" else "slug = 'access-test'"))
                cols = sql.SQL(", ").join(sql.Identifier(r[0]) for r in c.execute(
                    "SELECT attname FROM pg_attribute WHERE attrelid = 'r'::regclass AND attnum > 0 AND NOT attisdropped"))
                [new_id] = c.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM r RETURNING id").format(
                    ident, cols, cols)).fetchone()
                assert c.execute(sql.SQL("UPDATE {} SET updated_at = now() WHERE id = %s").format(ident),
                                 (new_id,)).rowcount == 1
                assert c.execute(sql.SQL("DELETE FROM {} WHERE id = %s").format(ident), (new_id,)).rowcount == 1
            for seq in sequences(target, table):
                with c.transaction(force_rollback=True):
                    assert c.execute(sql.SQL("SELECT nextval({})").format(sql.Literal(seq.as_string(c)))).fetchone()[0] > 0
            with pytest.raises(psycopg.errors.InsufficientPrivilege), c.transaction():
                c.execute(sql.SQL("DROP TABLE {}").format(ident))


def assert_role_shut_out(target: str, role: str, password: str, other_target: str,
                         schemas: frozenset[str] = frozenset({"_dbsplit_staging", "_dbsplit_prev", "_dbsplit"})) -> None:
    """As the role: nothing of dbsplit's own schemas, and no connection to another service's database."""
    with psycopg.connect(as_user(target, role, password)) as c:
        with psycopg.connect(target) as admin:
            stage = admin.execute("SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = "
                                  "c.relnamespace WHERE n.nspname IN ('_dbsplit_staging', '_dbsplit_prev', '_dbsplit') "
                                  "AND c.relkind = 'r' ORDER BY n.nspname = '_dbsplit', 1, 2").fetchall()
        assert {s for s, _ in stage} >= schemas, stage
        for schema, table in stage:
            with pytest.raises(psycopg.errors.InsufficientPrivilege), c.transaction():
                c.execute(sql.SQL("SELECT 1 FROM {} LIMIT 1").format(sql.Identifier(schema, table)))
    with pytest.raises(psycopg.OperationalError, match="CONNECT privilege|permission denied for database"):
        psycopg.connect(as_user(other_target, role, password), connect_timeout=10).close()


def revoke_all(target: str, role: str, password: str, table: str) -> None:
    """What an older dbsplit left: the table without the role's privileges."""
    with psycopg.connect(target, autocommit=True) as c:
        c.execute(sql.SQL("REVOKE ALL ON {} FROM {}").format(sql.Identifier("public", table), sql.Identifier(role)))
        for seq in sequences(target, table):
            c.execute(sql.SQL("REVOKE ALL ON SEQUENCE {} FROM {}").format(seq, sql.Identifier(role)))
    with psycopg.connect(as_user(target, role, password)) as c, pytest.raises(psycopg.errors.InsufficientPrivilege):
        c.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("public", table)))


def test_service_role_uses_its_tables_after_promotion_resync_and_publish(provisioned, roles) -> None:
    orch, services, targets = provisioned
    for service, svc in services.items():
        migrate(svc, "run1")
        assert_role_works(targets[service], *roles[service], [service])

    # the next load stages (and then promotes) a new table: the role reads neither staging nor the
    # previous table, and the new live table carries its privileges again
    users, (role, password) = targets["users"], roles["users"]
    checkpoint.load_all(services["users"], "run2")
    with psycopg.connect(users) as c:
        assert c.execute("SELECT to_regclass(%s)", (f'_dbsplit_staging."{side_name("public", "users")}"',)).fetchone()[0]
    runtime.validate(services["users"], "users", "run2")
    runtime.promote(services["users"])
    checkpoint.load_all(services["users"], "run3")   # staged again, left there
    assert_role_works(users, role, password, ["users"])
    assert_role_shut_out(users, role, password, targets["companies"])
    assert_role_shut_out(targets["companies"], *roles["companies"], users, frozenset({"_dbsplit"}))

    revoke_all(users, role, password, "users")            # a table without the role's privileges ...
    runtime.resync(services["users"], "resync1")
    assert_role_works(users, role, password, ["users"])   # ... has them after a resync

    revoke_all(users, role, password, "users")
    out = orchestrate.mark_cut_over(orch, list(SERVICES), "users", "cutover-run")   # the publish step
    assert_role_works(users, role, password, ["users"])
    assert f"granted SELECT, INSERT, UPDATE, DELETE on table public.users to {role}" in out["granted"]


def test_preflight_warns_when_a_service_role_can_connect_to_the_monolith(make_db, roles, pg_server_url) -> None:
    source, target = make_db("monolith"), make_db("users")
    with psycopg.connect(source, autocommit=True) as c:
        c.execute("CREATE TABLE public.users (id int PRIMARY KEY)")
    (role, _), conn_id = roles["users"], "jobboard_users"
    routes = [("public", "users", "public", "users", conn_id)]
    db = dbname_of(source)
    with psycopg.connect(source) as c:
        acl_before = c.execute("SELECT datacl::text FROM pg_database WHERE datname = %s", (db,)).fetchone()[0]
        admin = c.info.user

    def access_check():
        report = preflight(source, {conn_id: target}, routes, roles={role: conn_id})
        assert report.ok, str(report)
        [found] = [c for c in report.checks if c.name == f"monolith access {role}"]
        return found

    # the role does not exist yet: PostgreSQL's default lets PUBLIC connect, so it will be able to
    found = access_check()
    assert found.warning and f"{role!r} will be able to CONNECT to the source database {db!r}" in found.detail
    assert f'REVOKE CONNECT ON DATABASE "{db}" FROM PUBLIC;' in found.detail
    assert f'GRANT CONNECT ON DATABASE "{db}" TO "{admin}";' in found.detail
    with psycopg.connect(source) as c:   # preflight changed nothing in the source
        assert c.execute("SELECT datacl::text FROM pg_database WHERE datname = %s", (db,)).fetchone()[0] == acl_before
    with psycopg.connect(pg_server_url, autocommit=True) as c:
        c.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    found = access_check()
    assert found.warning and f"{role!r} can CONNECT" in found.detail and "FROM PUBLIC;" in found.detail

    # what the DBA runs, as the warning says: PUBLIC no longer, the role granted directly is named
    with psycopg.connect(source, autocommit=True) as c:
        c.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC").format(sql.Identifier(db)))
        c.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(db), sql.Identifier(role)))
    found = access_check()
    assert found.warning and f'REVOKE CONNECT ON DATABASE "{db}" FROM "{role}";' in found.detail
    assert "FROM PUBLIC" not in found.detail
    with psycopg.connect(source, autocommit=True) as c:
        c.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM {}").format(sql.Identifier(db), sql.Identifier(role)))
    found = access_check()
    assert not found.warning and "cannot CONNECT" in found.detail
