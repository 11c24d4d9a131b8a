"""The SQL fragments a plan holds (a table's `filter`, an added column's `default`, a `cast` or `type`),
parsed with PostgreSQL's own parser (pglast, the libpg_query binding).

A fragment is accepted only when it is exactly one expression (filter, default) or exactly one type
name (cast, type): `SELECT <fragment>` (`SELECT NULL::<fragment>` for a type) must parse as one
statement holding one target and nothing else, starting where the fragment starts and ending where
the text ends. Comments and semicolons are refused outright, as are row locks, data-modifying
statements anywhere (a CTE inside a subquery included) and the functions of _DENIED, which act
outside the query even in a read-only transaction. Subqueries that only read stay allowed.

The plan's field types check every fragment at load time (plan check and every run-time load), and
checked() checks it again where dbsplit splices it into SQL (filter_sql), or builds the column that
carries it (resolved.ColumnMap): text that did not come through a validated plan is refused too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from dbsplit.errors import SqlFragmentError

if TYPE_CHECKING:
    from psycopg import sql

Kind = Literal["filter", "default", "type"]

FIXES: dict[Kind, str] = {
    "filter": "write one SQL expression, e.g. `deleted_at IS NULL`; statements, semicolons, comments, "
              "aliases, row locks (FOR UPDATE), data-modifying subqueries and functions such as "
              "pg_sleep, set_config or nextval are not allowed",
    "default": "write one SQL literal or expression, e.g. 'monolith', 0 or now(); statements, semicolons, "
               "comments, row locks, data-modifying subqueries and functions such as pg_sleep, set_config "
               "or nextval are not allowed",
    "type": "write one PostgreSQL type name, e.g. integer, numeric(12,2), timestamp with time zone or "
            "character varying(40)[], and nothing else",
}
_WHAT: dict[Kind, str] = {"filter": "SQL expression", "default": "SQL expression", "type": "type name"}
_PREFIX: dict[Kind, str] = {"filter": "SELECT ", "default": "SELECT ", "type": "SELECT NULL::"}

# Functions that act outside the query (sessions, locks, files, WAL, replication, sequences, other
# servers, large objects, statistics, index maintenance), or that run SQL given as text. Compared
# lower-case, by the function's own name (any schema).
_DENIED = frozenset({
    "set_config", "pg_terminate_backend", "pg_cancel_backend", "pg_notify", "pg_stat_file", "pg_promote",
    "pg_import_system_collations", "pg_export_snapshot", "nextval", "setval", "currval", "lastval",
    "txid_current", "pg_current_xact_id", "loread", "lowrite", "ts_stat", "gin_clean_pending_list",
    "pg_truncate_visibility_map", "pg_prewarm", "pg_stat_statements_reset",
})
_DENIED_PREFIXES = (
    "pg_sleep", "pg_advisory", "pg_try_advisory", "dblink", "lo_", "pg_read_", "pg_ls_", "pg_file_",
    "pg_reload_conf", "pg_rotate_logfile", "pg_buffercache_evict",
    "pg_switch_", "pg_create_", "pg_drop_", "pg_copy_", "pg_replication_", "pg_logical_", "pg_wal_",
    "pg_backup_", "pg_start_backup", "pg_stop_backup", "pg_log_", "pg_stat_reset", "pg_restore_",
    "pg_clear_", "brin_", "query_to_xml", "cursor_to_xml", "table_to_xml", "schema_to_xml",
    "database_to_xml",
)
_WRITES = {"InsertStmt": "INSERT", "UpdateStmt": "UPDATE", "DeleteStmt": "DELETE", "MergeStmt": "MERGE"}
_SELECT_KEYS = {"targetList", "limitOption", "op"}   # what a bare `SELECT <one target>` holds
_TYPE_KEYS = {"names", "typmods", "typemod", "arrayBounds", "location"}


def problem(kind: Kind, text: str) -> str | None:
    """Why text is not one fragment of this kind, or None when it is (text as the plan holds it)."""
    text = text.strip()
    if not text:
        return f"the {'type' if kind == 'type' else kind} is empty"
    query = _PREFIX[kind] + text
    parsed = _parse(text, query)
    if isinstance(parsed, str):
        return parsed
    tokens, stmts = parsed
    if "SQL_COMMENT" in tokens or "C_COMMENT" in tokens:
        return f"{_show(text)} holds a comment"
    if "ASCII_59" in tokens or len(stmts) != 1:
        return f"{_show(text)} holds a semicolon or more than one statement"
    if stmts[0].get("stmt_location", 0) != 0 or stmts[0].get("stmt_len", 0) not in (0, len(query.encode())):
        return f"{_show(text)} is not one {_WHAT[kind]}"
    target = _one_target(stmts[0]["stmt"])
    if target is None or target.get("location") != len("SELECT "):
        return f"{_show(text)} is not one {_WHAT[kind]} (it has clauses, several values or something before it)"
    if "name" in target:
        return f"{_show(text)} is not one {_WHAT[kind]} (it ends with an alias, `{target['name']}`)"
    if kind == "type":
        return _type_problem(text, target["val"])
    why = _expression_problem(target["val"])
    return f"{_show(text)} {why}" if why else None


def _parse(text: str, query: str) -> tuple[list[str], list[dict[str, Any]]] | str:
    """The token names and statements of query (the prefix and text), or why it does not parse."""
    from pglast.parser import ParseError, parse_sql_json, scan

    try:
        tokens = [t.name for t in scan(query)]
        stmts: list[dict[str, Any]] = json.loads(parse_sql_json(query))["stmts"]
    except ParseError as exc:
        return f"{_show(text)} is not valid SQL ({exc.args[0]})"
    except UnicodeEncodeError:
        return f"{_show(text)} is not valid text (it holds an unpaired surrogate)"
    except RecursionError:
        return f"{_show(text)} is nested too deeply"
    return tokens, stmts


def _one_target(stmt: dict[str, Any]) -> dict[str, Any] | None:
    """The ResTarget of a statement that is `SELECT <one target>` and nothing else, else None."""
    select = stmt.get("SelectStmt")
    if select is None or set(select) - _SELECT_KEYS or select.get("op") != "SETOP_NONE":
        return None
    if select.get("limitOption") != "LIMIT_OPTION_DEFAULT" or len(select.get("targetList") or ()) != 1:
        return None
    target: dict[str, Any] = select["targetList"][0].get("ResTarget") or {}
    return target if "val" in target else None


def _nodes(tree: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (node type, fields) in a parse tree, iteratively (deep trees do not exhaust the stack)."""
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key[:1].isupper() and isinstance(value, dict):
                    yield key, value
                stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)


def _expression_problem(expr: dict[str, Any]) -> str | None:
    """Why this expression may not run in the source: a write, a row lock or a denied function."""
    if any("A_Star" in field for field in (expr.get("ColumnRef") or {}).get("fields", ())):
        return "is not an expression"
    for kind, node in _nodes(expr):
        if kind in _WRITES:
            return f"holds {_WRITES[kind]}, which writes (not allowed, not even in a subquery)"
        if kind == "LockingClause":
            return "locks rows (FOR UPDATE/SHARE is not allowed, not even in a subquery)"
        if kind == "FuncCall":
            name = str((node.get("funcname") or [{}])[-1].get("String", {}).get("sval", "")).lower()
            if name in _DENIED or name.startswith(_DENIED_PREFIXES):
                return f"calls {name}(), which acts outside the query (not allowed in a plan)"
    return None


def _type_problem(text: str, expr: dict[str, Any]) -> str | None:
    """Why `NULL::<text>` is not a bare NULL cast to one plain type name (no SETOF, %TYPE, COLLATE...)."""
    cast = expr.get("TypeCast") or {}
    arg, type_name = cast.get("arg") or {}, cast.get("typeName") or {}
    null = set(arg) == {"A_Const"} and arg["A_Const"].get("isnull") is True
    if set(cast) - {"arg", "typeName", "location"} or not null:
        return f"{_show(text)} is not one type name"
    if set(type_name) - _TYPE_KEYS or type_name.get("location") != len(_PREFIX["type"]):
        return f"{_show(text)} is not one plain type name (SETOF and %TYPE are not allowed)"
    for mod in type_name.get("typmods") or ():
        const, ref = mod.get("A_Const") or {}, mod.get("ColumnRef") or {}
        plain_ref = len(ref.get("fields") or ()) == 1 and "String" in ref["fields"][0]
        if set(mod) - {"A_Const", "ColumnRef"} or not ("ival" in const or plain_ref):
            return f"{_show(text)} has a type modifier that is not a whole number or a name"
    return None


def _show(text: str) -> str:
    one_line = " ".join(text.split())
    return f"`{one_line if len(one_line) <= 60 else one_line[:57] + '...'}`"


def checked(kind: Kind, text: str) -> str:
    """text, stripped, when it is one fragment of this kind; else SqlFragmentError (for run time)."""
    why = problem(kind, text)
    if why:
        what = kind if _show(text) in why else f"{kind} {_show(text)}"
        raise SqlFragmentError(f"the plan's {what} was refused: {why}. Fix: {FIXES[kind]}.")
    return text.strip()


def filter_sql(text: str) -> "sql.Composable":
    """A plan's row filter as SQL to AND into a WHERE clause, in parentheses, once the parser accepted it."""
    from psycopg import sql

    return sql.SQL("({})").format(sql.SQL(checked("filter", text)))
