"""What a service's role may do in its target database: DML on its tables, nextval on their sequences.

dbsplit's admin connection creates and owns every table it loads (in `_dbsplit_staging`, renamed
into place by promotion); the service role is given explicit privileges, never ownership:

- tables: SELECT, INSERT, UPDATE, DELETE (no TRUNCATE, REFERENCES, TRIGGER, MAINTAIN);
- sequences they use (identity, serial, and those named by a column default): USAGE, SELECT, UPDATE;
- the schemas of its tables: USAGE only (no CREATE: an object it created could capture a name the
  admin session resolves), the schema handed back to the admin user when the role owned it (an owner
  of a schema may DROP every table in it);
- dbsplit's own schemas (`_dbsplit`, `_dbsplit_staging`, `_dbsplit_prev`): nothing. The change-tracking
  triggers reach `_dbsplit` through a SECURITY DEFINER function, so the role needs no privilege there.

grant_tables runs wherever a table may have been (re)created: after promotion (in its transaction),
after a resync and after a cut-over's publish step, and from provision.ensure_service_role for the
tables dbsplit already manages. It converges: missing privileges are granted, extra ones revoked, and
a second call changes nothing. See ARCHITECTURE.md ("Service roles") for why grants, not ownership.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import psycopg
from psycopg import sql

from dbsplit.errors import DbsplitError

log = logging.getLogger(__name__)

TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")
SEQUENCE_PRIVILEGES = ("USAGE", "SELECT", "UPDATE")
INTERNAL_SCHEMAS = ("_dbsplit", "_dbsplit_staging", "_dbsplit_prev")
# every privilege a table or sequence ACL can hold, as SQL keywords (aclexplode's privilege_type)
_KEYWORDS = {p: sql.SQL(p) for p in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER",
                                     "MAINTAIN", "USAGE")}
_DEFAULT_OBJTYPES = {"r": ("TABLES", TABLE_PRIVILEGES), "S": ("SEQUENCES", SEQUENCE_PRIVILEGES)}

# the sequences a table uses: owned by one of its columns (serial, identity) or named by a column default
_SEQUENCES = """
SELECT DISTINCT n.nspname, s.relname, s.oid, s.relowner = %(role)s AND d.deptype IS NULL
FROM pg_class s JOIN pg_namespace n ON n.oid = s.relnamespace
    LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid
    AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
WHERE s.relkind = 'S' AND (d.refobjid = %(table)s OR s.oid IN (
    SELECT x.refobjid FROM pg_attrdef a JOIN pg_depend x ON x.classid = 'pg_attrdef'::regclass
    AND x.objid = a.oid AND x.refclassid = 'pg_class'::regclass WHERE a.adrelid = %(table)s))
ORDER BY 1, 2
"""


class AccessError(DbsplitError):
    """A service role's privileges cannot be set as dbsplit needs them."""


def grant_tables(conn: psycopg.Connection, role: str, tables: Sequence[tuple[str, str]]) -> list[str]:
    """Inside the caller's transaction: the role holds exactly the DML privileges on these tables and
    their sequences, USAGE on their schemas, nothing on dbsplit's schemas. Returns the changes made.

    A role that does not exist (its service never provisioned) is skipped with a warning: provisioning
    it later grants the same (provision.ensure_service_role)."""
    oid = role_oid(conn, role)
    if oid is None:
        log.warning("service role %r does not exist in %s: no privileges granted. Fix: run dbsplit_orchestrator "
                    "(its provision step creates the role and grants them).", role, conn.info.dbname)
        return []
    changes: list[str] = []
    for schema in dict.fromkeys(s for s, _ in tables):
        schema_usage(conn, schema, role, changes)
    for schema, table in tables:
        rel = sql.Identifier(schema, table)
        row = conn.execute("SELECT oid, relowner = %s FROM pg_class WHERE oid = to_regclass(%s)",
                           (oid, rel.as_string(conn))).fetchone()
        if row is None:
            raise AccessError(f"table {schema}.{table} does not exist in database {conn.info.dbname!r}; its "
                              "privileges cannot be granted. Fix: load and promote the service again.")
        if row[1]:   # made the owner by an older dbsplit: an owner may DROP or ALTER it
            conn.execute(sql.SQL("ALTER TABLE {} OWNER TO CURRENT_USER").format(rel))
            changes.append(f"table {schema}.{table} now owned by {conn.info.user}")
        _exact(conn, "TABLE", rel, f"{schema}.{table}", row[0], oid, role, TABLE_PRIVILEGES, changes)
        sequences = conn.execute(_SEQUENCES, {"role": oid, "table": row[0]}).fetchall()
        for seq_schema, seq, seq_oid, owned_by_role in sequences:
            seq_rel = sql.Identifier(seq_schema, seq)
            if owned_by_role:   # a sequence of its own, not linked to a table: the admin takes it too
                conn.execute(sql.SQL("ALTER SEQUENCE {} OWNER TO CURRENT_USER").format(seq_rel))
            _exact(conn, "SEQUENCE", seq_rel, f"{seq_schema}.{seq}", seq_oid, oid, role, SEQUENCE_PRIVILEGES, changes)
    shut_internal_schemas(conn, role, changes)
    return changes


def _exact(conn: psycopg.Connection, kind: str, rel: sql.Composable, label: str, rel_oid: int, role_oid_: int,
           role: str, wanted: Sequence[str], changes: list[str]) -> None:
    """GRANT the missing and REVOKE the extra privileges the role holds directly on one relation."""
    have = {r[0] for r in conn.execute(
        "SELECT a.privilege_type FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = %s AND a.grantee = %s",
        (rel_oid, role_oid_))}
    missing, extra = [p for p in wanted if p not in have], sorted((have - set(wanted)) & _KEYWORDS.keys())
    grantee = sql.Identifier(role)
    if extra:
        conn.execute(sql.SQL("REVOKE {} ON {} {} FROM {}").format(
            sql.SQL(", ").join(_KEYWORDS[p] for p in extra), sql.SQL(kind), rel, grantee))
        changes.append(f"revoked {', '.join(extra)} on {kind.lower()} {label} from {role}")
    if missing:
        conn.execute(sql.SQL("GRANT {} ON {} {} TO {}").format(
            sql.SQL(", ").join(_KEYWORDS[p] for p in missing), sql.SQL(kind), rel, grantee))
        changes.append(f"granted {', '.join(missing)} on {kind.lower()} {label} to {role}")


def schema_usage(conn: psycopg.Connection, schema: str, role: str, changes: list[str]) -> None:
    """The role may use the schema and create nothing in it; a schema the role owns goes to the admin user."""
    ident, grantee = sql.Identifier(schema), sql.Identifier(role)
    row = conn.execute("SELECT n.nspowner = r.oid, has_schema_privilege(r.oid, n.oid, 'USAGE'), "
                       "EXISTS (SELECT 1 FROM aclexplode(n.nspacl) a WHERE a.grantee = r.oid AND a.privilege_type = "
                       "'CREATE') FROM pg_namespace n, pg_roles r WHERE n.nspname = %s AND r.rolname = %s",
                       (schema, role)).fetchone()
    if row is None:
        return
    owned, usage, create = row
    if owned:
        conn.execute(sql.SQL("ALTER SCHEMA {} OWNER TO CURRENT_USER").format(ident))
        changes.append(f"schema {schema} now owned by {conn.info.user}")
        usage = False
    if create:
        conn.execute(sql.SQL("REVOKE CREATE ON SCHEMA {} FROM {}").format(ident, grantee))
        changes.append(f"revoked CREATE on schema {schema} from {role}")
    if not usage:
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(ident, grantee))
        changes.append(f"granted USAGE on schema {schema} to {role}")


def default_privileges(conn: psycopg.Connection, schema: str, role: str, changes: list[str]) -> None:
    """Tables and sequences the admin user creates in the schema later carry the role's privileges."""
    oid = role_oid(conn, role)
    for objtype, (keyword, wanted) in _DEFAULT_OBJTYPES.items():
        have = {r[0] for r in conn.execute(
            "SELECT a.privilege_type FROM pg_default_acl d JOIN pg_namespace n ON n.oid = d.defaclnamespace, "
            "aclexplode(d.defaclacl) a WHERE n.nspname = %s AND d.defaclobjtype = %s AND a.grantee = %s "
            "AND d.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = current_user)", (schema, objtype, oid))}
        if have == set(wanted):
            continue
        head = sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} ").format(sql.Identifier(schema))
        if have:
            conn.execute(head + sql.SQL("REVOKE ALL ON {} FROM {}").format(sql.SQL(keyword), sql.Identifier(role)))
        conn.execute(head + sql.SQL("GRANT {} ON {} TO {}").format(
            sql.SQL(", ").join(_KEYWORDS[p] for p in wanted), sql.SQL(keyword), sql.Identifier(role)))
        changes.append(f"default privileges: {', '.join(wanted)} on new {keyword.lower()} in {schema} to {role}")


def shut_internal_schemas(conn: psycopg.Connection, role: str, changes: list[str]) -> None:
    """The role can use none of dbsplit's own schemas (staging, previous tables, state)."""
    for schema, public in conn.execute(
            "SELECT n.nspname, has_schema_privilege('public', n.oid, 'USAGE') FROM pg_namespace n "
            "WHERE n.nspname = ANY(%s) AND has_schema_privilege(%s, n.oid, 'USAGE') ORDER BY 1",
            (list(INTERNAL_SCHEMAS), role)).fetchall():
        who = sql.SQL("PUBLIC, {}" if public else "{}").format(sql.Identifier(role))
        conn.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM {}").format(sql.Identifier(schema), who))
        changes.append(f"revoked every privilege on schema {schema} from {role}" + (" and PUBLIC" if public else ""))


def managed_tables(conn: psycopg.Connection, schema: str) -> list[tuple[str, str]]:
    """The tables dbsplit promoted into a schema (commented as managed)."""
    from dbsplit.pg.ddl import MANAGED_COMMENT

    return [(schema, r[0]) for r in conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s "
        "AND c.relkind IN ('r', 'p') AND obj_description(c.oid, 'pg_class') = %s ORDER BY 1",
        (schema, MANAGED_COMMENT))]


def role_oid(conn: psycopg.Connection, role: str) -> int | None:
    row = conn.execute("SELECT oid FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    return int(row[0]) if row else None
