"""Preflight: before anything moves, check that the source and every target are ready. Reads only.

Checks, each a Check(name, ok, detail, warning):
- `connect <conn_id>`: the source and each target answer (server version recorded). A target database
  that does not exist yet passes when its server answers and the user may create it.
- `version <conn_id>`: the source is PostgreSQL >= 12 (min_source_version), a target >= 12; a target
  older than the source is a warning (DDL read from a newer server may not replay).
- `source table <schema.table>`: exists in the source (an ordinary or partitioned table).
- `target table <conn_id>:<schema.table>`: absent, or a table commented 'managed by dbsplit' that no
  cut-over made the system of record (_dbsplit.cut_over: a migration would replace the service's rows).
- `disk <conn_id>`: free space where the target database lives >= space_factor x pg_total_relation_size
  of its source tables (partitions summed). Targets on the same filesystem share its free space.
  The default factor 2 covers the table, its indexes and the WAL that ALTER TABLE SET LOGGED writes.
  Free space is only measured when the server runs on this machine (unix socket or loopback address,
  data directory or tablespace readable here and, when its postmaster.pid is readable, the same server);
  otherwise it is "unknown": a warning, not a failure. Reading data_directory needs superuser or
  pg_read_all_settings.
- `monolith access <role>`: each service role (on the source's server) cannot CONNECT to the source
  database. PostgreSQL grants CONNECT to PUBLIC by default, so a new service role could read the
  monolith's tables that PUBLIC may read: a warning naming the statements a DBA would run (dbsplit
  never changes the source). A role that does not exist yet is judged by PUBLIC's privilege.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dbsplit.pg.conn import connect_source, with_dbname
from dbsplit.pg.ddl import MANAGED_COMMENT

# (source schema, source table, target schema, target table, target conn_id)
Route = tuple[str, str, str, str, str]
SOURCE = "source"
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    warning: bool = False  # ok, but could not be verified or deserves a look


@dataclass(frozen=True)
class PreflightReport:
    ok: bool
    checks: list[Check] = field(default_factory=list)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if c.ok and c.warning]

    def __str__(self) -> str:
        mark = {(True, False): "ok  ", (True, True): "WARN", (False, False): "FAIL", (False, True): "FAIL"}
        return "\n".join(f"{mark[c.ok, c.warning]} {c.name}: {c.detail}" for c in self.checks)


@dataclass
class _Target:
    conn_id: str
    conn: psycopg.Connection | None  # None: the server does not answer
    db_exists: bool = True


def preflight(source_conninfo: str, targets: Mapping[str, str], tables: Sequence[Route], *,
              min_source_version: int = 120000, space_factor: float = 2.0, connect_timeout: int = 10,
              roles: Mapping[str, str] | None = None) -> PreflightReport:
    """Run every check; the report is ok when no check failed (warnings allowed).

    roles: each service role's name -> its target conn_id (whose server the role lives on)."""
    checks: list[Check] = []
    src = _connect(SOURCE, source_conninfo, connect_timeout, checks)
    opened: dict[str, _Target] = {}
    try:
        sizes = _source_checks(src, tables, min_source_version, checks) if src is not None else {}
        for conn_id in dict.fromkeys([r[4] for r in tables] + list(targets)):
            if conn_id not in targets:
                checks.append(Check(f"connect {conn_id}", False, f"no conninfo given for target {conn_id!r}. "
                                    "Fix: define the Airflow connection."))
                continue
            opened[conn_id] = _open_target(conn_id, targets[conn_id], connect_timeout, checks)
            tgt = opened[conn_id].conn
            if tgt is not None:
                checks.append(_target_version_check(conn_id, tgt, src))
        for _, _, ts, tt, conn_id in tables:
            target = opened.get(conn_id)
            if target is not None and target.conn is not None:
                checks.append(_target_table_check(target, ts, tt))
        checks += _disk_checks(opened, sizes, space_factor)
        for role, conn_id in (roles or {}).items():
            target = opened.get(conn_id)
            if src is not None:
                checks.append(_monolith_access_check(src, role, target.conn if target else None))
    finally:
        for conn in [src] + [t.conn for t in opened.values()]:
            if conn is not None:
                conn.close()
    return PreflightReport(all(c.ok for c in checks), checks)


def _source_checks(src: psycopg.Connection, tables: Sequence[Route], min_version: int,
                   checks: list[Check]) -> dict[str, int]:
    """The source's version and tables; returns the source bytes each target conn_id will receive."""
    sizes: dict[str, int] = {}
    checks.append(_version_check(SOURCE, src.info.server_version, min_version))
    for s, t, _, _, conn_id in tables:
        size = _source_size(src, s, t)
        checks.append(Check(f"source table {s}.{t}", size is not None,
                            "exists" if size is not None else f"{s}.{t} does not exist in the source "
                            f"database {src.info.dbname!r}. Fix: correct the plan, or create the table."))
        sizes[conn_id] = sizes.get(conn_id, 0) + (size or 0)
    return sizes


def _target_version_check(conn_id: str, tgt: psycopg.Connection, src: psycopg.Connection | None) -> Check:
    """A target's server version; older than the source's major version is a warning."""
    version = tgt.info.server_version
    check = _version_check(conn_id, version, 120000)
    if check.ok and src is not None and version // 10000 < src.info.server_version // 10000:
        check = Check(check.name, True, f"{_v(version)} is older than the source's "
                      f"{_v(src.info.server_version)}: types or syntax of the source may not exist there",
                      warning=True)
    return check


def _first(row: tuple[Any, ...] | None) -> Any:
    """The first column of a query's row (the query always returns one)."""
    assert row is not None, "the query returns one row"
    return row[0]


def _v(num: int) -> str:
    return f"PostgreSQL {num // 10000}.{num % 10000}" if num >= 100000 else f"PostgreSQL {num}"


def _connect(conn_id: str, conninfo: str, timeout: int, checks: list[Check] | None) -> psycopg.Connection | None:
    try:
        if "connect_timeout" not in conninfo_to_dict(conninfo):
            conninfo = make_conninfo(conninfo, connect_timeout=timeout)
        conn = connect_source(conninfo, autocommit=True, application_name="dbsplit-preflight")  # never writes, anywhere
    except psycopg.OperationalError as exc:
        if checks is not None:
            checks.append(Check(f"connect {conn_id}", False, f"does not answer: {str(exc).strip()}"))
        return None
    if checks is not None:
        checks.append(Check(f"connect {conn_id}", True, f"{_v(conn.info.server_version)}, database "
                            f"{conn.info.dbname!r} as {conn.info.user!r}"))
    return conn


def _open_target(conn_id: str, conninfo: str, timeout: int, checks: list[Check]) -> _Target:
    """A target whose database is missing is checked on its server's maintenance database instead."""
    probe: list[Check] = []
    conn = _connect(conn_id, conninfo, timeout, probe)
    dbname = conninfo_to_dict(conninfo).get("dbname")
    if conn is not None or not dbname or "does not exist" not in probe[0].detail:
        checks += probe
        return _Target(conn_id, conn)
    conn = (_connect(conn_id, with_dbname(conninfo, "postgres"), timeout, None)
            or _connect(conn_id, with_dbname(conninfo, "template1"), timeout, None))
    if conn is None:
        checks += probe
        return _Target(conn_id, None)
    may = _first(conn.execute("SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user").fetchone())
    checks.append(Check(f"connect {conn_id}", bool(may),
                        f"{_v(conn.info.server_version)}; database {dbname!r} does not exist yet: "
                        + (f"it will be created by {conn.info.user!r}" if may else
                           f"{conn.info.user!r} may not create it. Fix: create it, or grant CREATEDB")))
    return _Target(conn_id, conn, db_exists=False)


def _version_check(conn_id: str, version: int, minimum: int) -> Check:
    ok = version >= minimum
    return Check(f"version {conn_id}", ok, _v(version) + ("" if ok else f": dbsplit needs {_v(minimum)} or newer. "
                                                          "Fix: upgrade the server."))


def _source_size(conn: psycopg.Connection, schema: str, table: str) -> int | None:
    row = conn.execute(
        "SELECT CASE WHEN c.relkind = 'p' THEN (SELECT coalesce(sum(pg_total_relation_size(relid)), 0) "
        "FROM pg_partition_tree(c.oid)) ELSE pg_total_relation_size(c.oid) END FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s "
        "AND c.relkind IN ('r', 'p')", (schema, table)).fetchone()
    return int(row[0]) if row else None


def _target_table_check(target: _Target, schema: str, table: str) -> Check:
    name = f"target table {target.conn_id}:{schema}.{table}"
    if not target.db_exists:
        return Check(name, True, "absent (the database will be created)")
    assert target.conn is not None
    row = target.conn.execute(
        "SELECT c.relkind, obj_description(c.oid, 'pg_class') FROM pg_class c JOIN pg_namespace n "
        "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s", (schema, table)).fetchone()
    if row is None:
        return Check(name, True, "absent: will be created")
    if row[0] in ("r", "p") and row[1] == MANAGED_COMMENT:
        from dbsplit.engine.resync.state import cut_over

        done = cut_over(target.conn, [f"{schema}.{table}"])
        if done:
            run, at = done[f"{schema}.{table}"]
            return Check(name, False, f"{schema}.{table} was cut over by orchestrator run {run} at {at}: "
                         "its database is the "
                         "system of record and a migration would replace the service's rows with the monolith's. Fix: "
                         "leave the service out of this run; only if the cut-over was undone, delete its row of "
                         "_dbsplit.cut_over in the target database.")
        return Check(name, True, f"exists, {MANAGED_COMMENT}: its rows will be replaced")
    return Check(name, False, f"{schema}.{table} exists in {target.conn.info.dbname!r} and was not created by dbsplit "
                 f"(no comment {MANAGED_COMMENT!r}); dbsplit never overwrites it. Fix: drop or rename it, or give the "
                 "table another name in the plan.")


def _monolith_access_check(src: psycopg.Connection, role: str, tgt: psycopg.Connection | None) -> Check:
    """Whether a service role can CONNECT to the source database; a warning naming the DBA's fix if it can."""
    name, db = f"monolith access {role}", src.info.dbname
    servers = (_server_id(src), _server_id(tgt) if tgt is not None else None)
    if None not in servers and servers[0] != servers[1]:
        return Check(name, True, f"the role lives on another server than the source database {db!r}")
    exists = src.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None
    who = role if exists else "public"
    if not _first(src.execute("SELECT has_database_privilege(%s, %s, 'CONNECT')", (who, db)).fetchone()):
        return Check(name, True, f"cannot CONNECT to the source database {db!r}")
    grantees = [r[0] for r in src.execute(
        "SELECT coalesce(g.rolname, 'PUBLIC') FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', "
        "d.datdba))) a LEFT JOIN pg_roles g ON g.oid = a.grantee WHERE d.datname = %s AND a.privilege_type = "
        "'CONNECT' AND CASE WHEN a.grantee = 0 THEN true WHEN %s THEN pg_has_role(%s, a.grantee, 'USAGE') "
        "ELSE false END "
        "ORDER BY a.grantee <> 0, 1", (db, exists, role if exists else src.info.user))]
    fix = [_sql(src, "REVOKE CONNECT ON DATABASE {} FROM {};", sql.Identifier(db),
                sql.SQL("PUBLIC") if g == "PUBLIC" else sql.Identifier(g)) for g in grantees]
    if "PUBLIC" in grantees:
        fix.append(_sql(src, "GRANT CONNECT ON DATABASE {} TO {};", sql.Identifier(db), sql.Identifier(src.info.user))
                   + " (and to every other role the monolith's applications log in as)")
    subject = f"the service role {role!r} can" if exists else f"the service role {role!r} will be able to"
    how = ", ".join("PUBLIC (PostgreSQL's default)" if g == "PUBLIC" else f"role {g!r}" for g in grantees)
    return Check(name, True, f"{subject} CONNECT to the source database {db!r} (granted to {how or 'it'}), and so "
                 "read every table the monolith grants to PUBLIC. dbsplit never changes the source. Fix (a DBA, on the "
                 "source server): " + " ".join(fix), warning=True)


def _sql(conn: psycopg.Connection, template: str, *parts: sql.Composable) -> str:
    return sql.SQL(template).format(*parts).as_string(conn)


def _server_id(conn: psycopg.Connection) -> tuple[int, str] | None:
    """The server's system identifier and port (None when it cannot be read)."""
    try:
        return conn.execute("SELECT (SELECT system_identifier FROM pg_control_system()), "
                            "current_setting('port')").fetchone()
    except psycopg.Error:
        return None


def _disk_checks(targets: dict[str, _Target], sizes: dict[str, int], factor: float) -> list[Check]:
    measured: dict[str, tuple[int, int, str]] = {}  # conn_id -> (device, free bytes, path)
    checks: list[Check] = []
    for conn_id, target in targets.items():
        if target.conn is None:
            continue
        where = _storage_path(target.conn)
        if isinstance(where, str):
            checks.append(Check(f"disk {conn_id}", True, f"free space unknown ({where}); needs about "
                                f"{_mb(sizes.get(conn_id, 0) * factor)}", warning=True))
            continue
        measured[conn_id] = (os.stat(where).st_dev, shutil.disk_usage(where).free, str(where))
    for conn_id, (dev, free, path) in measured.items():
        sharing = [c for c, m in measured.items() if m[0] == dev]
        need = sum(sizes.get(c, 0) for c in sharing) * factor
        others = ", ".join(c for c in sharing if c != conn_id)
        also = f" (with {others} on the same filesystem)" if len(sharing) > 1 else ""
        ok = free >= need
        checks.append(Check(f"disk {conn_id}", ok, f"{_mb(free)} free at {path}, needs {_mb(need)}{also}"
                            + ("" if ok else ". Fix: free space, or move the target to a larger volume.")))
    return checks


def _storage_path(conn: psycopg.Connection) -> Path | str:
    """The local directory holding the connected database, or why it cannot be measured from here."""
    host = conn.info.host or ""
    if not (host.startswith("/") or host in _LOOPBACK or conn.info.hostaddr in _LOOPBACK):
        return f"server {host} is not on this machine"
    try:
        data_dir = _first(conn.execute("SELECT current_setting('data_directory')").fetchone())
        started = _first(conn.execute(
            "SELECT floor(extract(epoch FROM pg_postmaster_start_time()))::bigint").fetchone())
        location = _first(conn.execute("SELECT pg_tablespace_location(d.dattablespace) FROM pg_database d "
                                       "WHERE d.datname = current_database()").fetchone())
    except psycopg.errors.InsufficientPrivilege:
        return f"{conn.info.user!r} may not read data_directory; grant pg_read_all_settings to measure it"
    pid_file = Path(data_dir) / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
        if len(lines) > 2 and abs(int(lines[2]) - int(started)) > 2:  # written a moment before the start time is set
            return f"{data_dir} on this machine belongs to another server"
    except (OSError, ValueError):
        pass  # not readable by this OS user: the loopback or socket address is the only evidence
    path = Path(location) if location else Path(data_dir)
    return path if path.exists() else f"{path} is not visible from this machine"


def _mb(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"
