"""Create what targets need before a load: the database, one least-privilege role per service, its schemas.

A service role can LOGIN and nothing more (no SUPERUSER, CREATEDB, CREATEROLE, REPLICATION,
BYPASSRLS). It may CONNECT to its own database only: CONNECT is revoked from PUBLIC on that
database and granted to the role. It may use its schemas (USAGE, not CREATE; the admin user owns
them) and holds SELECT, INSERT, UPDATE, DELETE on the tables dbsplit manages there and nextval on
their sequences (access.py, which promotion, the resync and the cut-over call again); default
privileges give it the same on tables and sequences the admin user creates there later. It owns
nothing, so it can DROP or ALTER none of them, and reads none of dbsplit's own schemas.

Every function is idempotent: a second call changes nothing and reports nothing created.

Passwords come from the caller (an Airflow connection). They are hashed on the client (libpq's
PQencryptPasswordConn, SCRAM-SHA-256 unless the server asks for md5), so neither the server's
statement log nor any message of dbsplit ever holds one; an existing role's password is left alone
when its stored verifier already matches (checked when the admin may read pg_authid).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

from dbsplit.errors import DbsplitError
from dbsplit.pg import access
from dbsplit.pg.conn import dbname_of, with_dbname
from dbsplit.pg.rows import one_row

# attributes a service role has; an existing role of another shape is refused, never altered
_ROLE_ATTRS = {"rolcanlogin": True, "rolsuper": False, "rolcreatedb": False, "rolcreaterole": False,
               "rolreplication": False, "rolbypassrls": False}
_ROLE_OPTIONS = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"


class ProvisionError(DbsplitError):
    """A role, database or schema cannot be provisioned as asked."""


@dataclass(frozen=True)
class ProvisionResult:
    created_role: bool
    created_database: bool
    changes: tuple[str, ...] = ()  # every change made, readable, never a password


def ensure_database(conninfo: str, maintenance_db: str = "postgres") -> bool:
    """Create the database a conninfo names when it does not exist; return True when created."""
    name = dbname_of(conninfo)
    with psycopg.connect(with_dbname(conninfo, maintenance_db), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.DuplicateDatabase:  # created concurrently by another task
            return False
    return True


def ensure_schema(conninfo: str, schema: str, owner: str | None = None) -> bool:
    """Create a schema in the conninfo's database (the "schema inside a shared database" placement).

    Returns True when created. With owner, the schema is created for (or handed to) that role.
    """
    with psycopg.connect(conninfo, autocommit=True) as conn:
        owner_now = conn.execute("SELECT nspowner FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
        if owner_now is None:
            auth = sql.SQL(" AUTHORIZATION {}").format(sql.Identifier(owner)) if owner else sql.SQL("")
            try:
                conn.execute(sql.SQL("CREATE SCHEMA {}{}").format(sql.Identifier(schema), auth))
                return True
            except psycopg.errors.DuplicateSchema:  # created concurrently
                pass
        if owner:
            _own_schema_itself(conn, schema, owner, [])
    return False


def ensure_service_role(admin_conninfo: str, database: str, role: str, password: str | None,
                        schemas: Sequence[str]) -> ProvisionResult:
    """Create (or check) the service's role and database, restrict CONNECT, grant the role its schemas' tables.

    admin_conninfo: a superuser (or a CREATEROLE + CREATEDB user that may SET ROLE to the service role)
    on the target server, any database. password None leaves the role without (or with its current) one.
    """
    changes: list[str] = []
    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        if conn.info.user == role:
            raise ProvisionError(f"the service role {role!r} is the admin user of admin_conninfo. "
                                 "Fix: give the service its own role name.")
        created_role = _ensure_role(conn, role, password, changes)
    admin_db = dbname_of(admin_conninfo)
    created_database = ensure_database(with_dbname(admin_conninfo, database),
                                       maintenance_db=admin_db if admin_db != database else "postgres")
    if created_database:
        changes.append(f"created database {database}")
    with psycopg.connect(with_dbname(admin_conninfo, database)) as conn, conn.transaction():
        _restrict_connect(conn, database, role, changes)
        for schema in schemas:
            _give_schema(conn, schema, role, changes)
    return ProvisionResult(created_role, created_database, tuple(changes))


def drop_if_created(admin_conninfo: str, database: str, role: str, result: ProvisionResult) -> list[str]:
    """Undo what ensure_service_role created (its result): drop the database, then the role.

    Only what that call created is dropped. A created role that owns objects in a database that
    stays gets them reassigned to the admin user first. Returns what was dropped.
    """
    dropped: list[str] = []
    admin_db = dbname_of(admin_conninfo)
    maintenance = with_dbname(admin_conninfo, admin_db if admin_db != database else "postgres")
    if result.created_database:
        with psycopg.connect(maintenance, autocommit=True) as conn:
            force = sql.SQL(" WITH (FORCE)") if conn.info.server_version >= 130000 else sql.SQL("")
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}{}").format(sql.Identifier(database), force))
        dropped.append(f"database {database}")
    if result.created_role:
        with psycopg.connect(maintenance, autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                return dropped
            db_left = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if db_left:
            with psycopg.connect(with_dbname(admin_conninfo, database)) as conn, conn.transaction():
                conn.execute(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(sql.Identifier(role)))
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        with psycopg.connect(maintenance, autocommit=True) as conn:
            try:
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
            except psycopg.errors.DependentObjectsStillExist as exc:
                raise ProvisionError(f"role {role!r} was created by this run but now holds objects or privileges "
                                     f"elsewhere ({exc.diag.message_detail}); it was kept. Fix: REASSIGN OWNED BY / "
                                     "DROP OWNED BY it in those databases, then DROP ROLE.") from exc
        dropped.append(f"role {role}")
    return dropped


def _ensure_role(conn: psycopg.Connection, role: str, password: str | None, changes: list[str]) -> bool:
    cols = sql.SQL(", ").join(map(sql.Identifier, _ROLE_ATTRS))
    row = conn.execute(sql.SQL("SELECT {} FROM pg_roles WHERE rolname = %s").format(cols), (role,)).fetchone()
    if row is None:
        pw = sql.SQL(" PASSWORD {}").format(sql.Literal(_verifier(conn, role, password))) if password else sql.SQL("")
        try:
            conn.execute(sql.SQL("CREATE ROLE {} WITH {}{}").format(sql.Identifier(role), sql.SQL(_ROLE_OPTIONS), pw))
            changes.append(f"created role {role}")
            return True
        except psycopg.errors.DuplicateObject:  # created concurrently: check it like any existing role
            row = one_row(conn.execute(sql.SQL("SELECT {} FROM pg_roles WHERE rolname = %s").format(cols), (role,)))
    wrong = [k[3:] for k, v in zip(_ROLE_ATTRS, row, strict=True) if _ROLE_ATTRS[k] != v]
    if wrong:
        raise ProvisionError(f"role {role!r} exists with attributes a service role does not have or lacks: "
                             f"{', '.join(wrong)}; dbsplit changes no privileges of an existing role. Fix: ALTER ROLE "
                             f"it {_ROLE_OPTIONS}, or choose another role name.")
    if password is not None and not _password_is(conn, role, password):
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role),
                                                                sql.Literal(_verifier(conn, role, password))))
        changes.append(f"set password of role {role}")
    return False


def _verifier(conn: psycopg.Connection, role: str, password: str) -> str:
    """The password hashed by libpq with the server's password_encryption: no clear text leaves the client."""
    return conn.pgconn.encrypt_password(password.encode(), role.encode()).decode()


def _password_is(conn: psycopg.Connection, role: str, password: str) -> bool:
    """Whether the role's stored verifier matches; False when it cannot be read (the password is then set)."""
    if not one_row(conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))[0]:
        return False
    row = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)).fetchone()
    return row is not None and bool(row[0]) and verifier_matches(row[0], role, password)


def verifier_matches(stored: str, role: str, password: str) -> bool:
    """Check a SCRAM-SHA-256 or md5 verifier as pg_authid stores it (RFC 5802, no SASLprep)."""
    if stored.startswith("SCRAM-SHA-256$"):
        try:
            params, keys = stored[len("SCRAM-SHA-256$"):].split("$", 1)
            iterations, salt = params.split(":", 1)
            stored_key = keys.split(":", 1)[0]
            salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
        except ValueError:
            return False
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        return hmac.compare_digest(base64.b64encode(hashlib.sha256(client_key).digest()).decode(), stored_key)
    if stored.startswith("md5"):
        return hmac.compare_digest(stored, "md5" + hashlib.md5((password + role).encode()).hexdigest())
    return False


def _restrict_connect(conn: psycopg.Connection, database: str, role: str, changes: list[str]) -> None:
    grantees = {r[0] for r in conn.execute(
        "SELECT a.grantee FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a "
        "WHERE d.datname = %s AND a.privilege_type = 'CONNECT'", (database,))}
    db = sql.Identifier(database)
    if 0 in grantees:  # grantee 0 is PUBLIC
        conn.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC").format(db))
        changes.append(f"revoked CONNECT on database {database} from PUBLIC")
    if _role_oid(conn, role) not in grantees:
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(db, sql.Identifier(role)))
        changes.append(f"granted CONNECT on database {database} to {role}")


def _role_oid(conn: psycopg.Connection, role: str) -> int:
    return int(one_row(conn.execute("SELECT oid FROM pg_roles WHERE rolname = %s", (role,)))[0])


def _own_schema_itself(conn: psycopg.Connection, schema: str, role: str, changes: list[str]) -> None:
    row = conn.execute("SELECT nspowner FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    if row is None:
        conn.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(sql.Identifier(schema), sql.Identifier(role)))
        changes.append(f"created schema {schema} owned by {role}")
    elif row[0] != _role_oid(conn, role):
        conn.execute(sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(sql.Identifier(schema), sql.Identifier(role)))
        changes.append(f"schema {schema} now owned by {role}")


def _give_schema(conn: psycopg.Connection, schema: str, role: str, changes: list[str]) -> None:
    """The schema exists (the admin's), the role may use it and DML every table dbsplit manages in it."""
    if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is None:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        changes.append(f"created schema {schema}")
    access.schema_usage(conn, schema, role, changes)
    access.default_privileges(conn, schema, role, changes)
    changes.extend(access.grant_tables(conn, role, access.managed_tables(conn, schema)))
