"""Freeze source tables: the ONLY write dbsplit ever makes to the source, explicit and reversible.

freeze() installs, in one transaction, a guard trigger `dbsplit_freeze_guard` on each table:
BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE, FOR EACH STATEMENT, calling the one function
`_dbsplit_guard.refuse_write()`, which raises SQLSTATE 55000 with a message naming dbsplit, the
table and the migration. Partitions and inheritance children of a frozen table are frozen too
(statement triggers of a parent do not fire for writes addressed to a child). The triggers are
ENABLE ALWAYS, so `session_replication_role = replica` does not bypass them; only the table owner
(or a superuser) dropping or disabling the trigger does, which is_frozen() then reports.

unfreeze() drops the triggers, and the `_dbsplit_guard` schema once no guard trigger remains, leaving
the source as it was. Both are idempotent and serialised by an advisory lock.

What this writes: the schema, the function and the triggers (catalog rows) - never a row of data.
The conninfo must be the tables' owner or a superuser (ALTER TABLE ... ENABLE ALWAYS TRIGGER needs
ownership): a separate, privileged connection, not the read-only one the extract uses. CREATE TRIGGER
takes a SHARE ROW EXCLUSIVE lock on each table: it waits for writing transactions in flight (reads are
never blocked), so once freeze() returns no write is in progress and none can start; lock_timeout
bounds that wait.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql

from dbsplit.errors import DbsplitError
from dbsplit.pg.conn import connect_source
from dbsplit.pg.rows import one_row

GUARD_SCHEMA = "_dbsplit_guard"
GUARD_FUNCTION = "refuse_write"
TRIGGER = "dbsplit_freeze_guard"
_LOCK_KEY = 0x0DB5_F12E  # pg_advisory_xact_lock key serialising freeze/unfreeze on a database

_FUNCTION_BODY = """
BEGIN
    RAISE EXCEPTION USING
        ERRCODE = 'object_not_in_prerequisite_state',
        MESSAGE = format('dbsplit: %s on %I.%I refused: the table is frozen for the migration %s',
                         TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_ARGV[0]),
        HINT = 'dbsplit is moving this table to another database. Writes resume when the migration is '
               'rolled back (dbsplit.pg.freeze.unfreeze); after cut-over, write to the new service database.';
END
"""


class FreezeError(DbsplitError):
    """A table cannot be frozen or unfrozen."""


@dataclass(frozen=True)
class FreezeState:
    tables: tuple[tuple[str, str], ...]  # every table guarded, partitions and children included
    newly_frozen: tuple[tuple[str, str], ...]  # those this call froze (or re-enabled, or re-labelled)
    message: str
    frozen_at: datetime  # the server's transaction time of the freeze


def freeze(conninfo: str, tables: Sequence[tuple[str, str]], message: str, lock_timeout: str = "30s") -> FreezeState:
    """Guard every table (all or none) against writes; message names the migration in the error."""
    with psycopg.connect(conninfo, application_name="dbsplit-freeze") as conn, conn.transaction():
        _lock(conn, lock_timeout)
        _ensure_function(conn)
        all_tables, changed = _expand(conn, tables), []
        for schema, table, kind in all_tables:
            if _ensure_trigger(conn, schema, table, kind, message):
                changed.append((schema, table))
        now = one_row(conn.execute("SELECT now()"))[0]
    return FreezeState(tuple((s, t) for s, t, _ in all_tables), tuple(changed), message, now)


def unfreeze(conninfo: str, tables: Sequence[tuple[str, str]], lock_timeout: str = "30s") -> list[tuple[str, str]]:
    """Remove the guard from the tables (and their partitions); return those that had one.

    Missing tables are skipped."""
    removed: list[tuple[str, str]] = []
    with psycopg.connect(conninfo, application_name="dbsplit-freeze") as conn, conn.transaction():
        _lock(conn, lock_timeout)
        present = [t for t in tables if _relkind(conn, *t) is not None]
        for schema, table, _ in _expand(conn, present):
            if _trigger(conn, schema, table) is not None:
                conn.execute(sql.SQL("DROP TRIGGER {} ON {}").format(sql.Identifier(TRIGGER),
                                                                     sql.Identifier(schema, table)))
                removed.append((schema, table))
        left = one_row(conn.execute("SELECT count(*) FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid "
                            "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %s",
                            (GUARD_SCHEMA,)))[0]
        if left == 0:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(GUARD_SCHEMA)))
    return removed


def is_frozen(conninfo: str, table: tuple[str, str]) -> bool:
    """Whether the table carries dbsplit's guard, enabled ALWAYS (a disabled or replica-only guard is no freeze)."""
    with connect_source(conninfo) as conn:
        found = _trigger(conn, *table)
        return found is not None and found[0] == "A"


def _lock(conn: psycopg.Connection, lock_timeout: str) -> None:
    conn.execute("SELECT set_config('lock_timeout', %s, true)", (lock_timeout,))
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))


def _ensure_function(conn: psycopg.Connection) -> None:
    body = conn.execute("SELECT p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                        "WHERE n.nspname = %s AND p.proname = %s", (GUARD_SCHEMA, GUARD_FUNCTION)).fetchone()
    if body is not None and body[0] == _FUNCTION_BODY:
        return
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(GUARD_SCHEMA)))
    conn.execute(sql.SQL("COMMENT ON SCHEMA {} IS {}").format(
        sql.Identifier(GUARD_SCHEMA), sql.Literal("dbsplit freeze guard; removed by dbsplit.pg.freeze.unfreeze")))
    conn.execute(sql.SQL("CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS {}").format(
        sql.Identifier(GUARD_SCHEMA, GUARD_FUNCTION), sql.Literal(_FUNCTION_BODY)))


def _relkind(conn: psycopg.Connection, schema: str, table: str) -> str | None:
    row = conn.execute("SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                       "WHERE n.nspname = %s AND c.relname = %s", (schema, table)).fetchone()
    return row[0] if row else None


def _expand(conn: psycopg.Connection, tables: Sequence[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """The tables with their partitions and inheritance children, each once: (schema, table, relkind)."""
    out: dict[tuple[str, str], str] = {}
    for schema, table in tables:
        kind = _relkind(conn, schema, table)
        if kind not in ("r", "p", "f"):
            raise FreezeError(f"{schema}.{table} is {'missing' if kind is None else 'not a table'}; only tables can "
                              "be frozen. Fix: name the source tables of the migration.")
        rows = conn.execute(
            "WITH RECURSIVE tree(oid) AS (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s UNION SELECT i.inhrelid FROM pg_inherits i JOIN tree ON "
            "i.inhparent = tree.oid) SELECT n.nspname, c.relname, c.relkind FROM tree "
            "JOIN pg_class c ON c.oid = tree.oid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'f')", (schema, table))
        for s, t, k in rows:
            out.setdefault((s, t), k)
    return [(s, t, k) for (s, t), k in out.items()]


def _trigger(conn: psycopg.Connection, schema: str, table: str) -> tuple[str, bytes] | None:
    """(tgenabled, tgargs) of the guard trigger on the table, None when it has none."""
    row = conn.execute(
        "SELECT t.tgenabled, t.tgargs FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s AND t.tgname = %s",
        (schema, table, TRIGGER)).fetchone()
    return (str(row[0]), bytes(row[1])) if row else None


def _ensure_trigger(conn: psycopg.Connection, schema: str, table: str, kind: str, message: str) -> bool:
    """Install (or repair) the guard on one table; True when something changed."""
    found, target = _trigger(conn, schema, table), sql.Identifier(schema, table)
    if found == ("A", message.encode() + b"\x00"):
        return False
    # no TRUNCATE triggers on foreign tables
    events = "INSERT OR UPDATE OR DELETE" + ("" if kind == "f" else " OR TRUNCATE")
    try:
        if found is not None:
            conn.execute(sql.SQL("DROP TRIGGER {} ON {}").format(sql.Identifier(TRIGGER), target))
        conn.execute(sql.SQL("CREATE TRIGGER {} BEFORE {} ON {} FOR EACH STATEMENT EXECUTE FUNCTION {}({})").format(
            sql.Identifier(TRIGGER), sql.SQL(events), target, sql.Identifier(GUARD_SCHEMA, GUARD_FUNCTION),
            sql.Literal(message)))
        conn.execute(sql.SQL("ALTER TABLE {} ENABLE ALWAYS TRIGGER {}").format(target, sql.Identifier(TRIGGER)))
    except psycopg.errors.InsufficientPrivilege as exc:
        raise FreezeError(f"cannot freeze {schema}.{table}: {exc.diag.message_primary}. Fix: freeze with a connection "
                          "that owns the source tables (or a superuser); the extract's read-only one cannot.") from exc
    except psycopg.errors.LockNotAvailable as exc:
        raise FreezeError(f"cannot freeze {schema}.{table}: a transaction held it past lock_timeout. Fix: retry when "
                          "long writing transactions have finished, or raise lock_timeout.") from exc
    return True
