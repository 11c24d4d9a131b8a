"""Pydantic validation errors rewritten as plain messages with fixes, located by plan field path."""

from __future__ import annotations

import re
import types
import typing
from typing import Any

from pydantic import BaseModel

from dbsplit.plan.document import Issue, Loc
from dbsplit.plan.fields import did_you_mean
from dbsplit.plan.models import Defaults, Plan, Service
from dbsplit.plan.routes import TableRoute

_EXAMPLES = {
    "SourceConfig": "source: {conn_id: my_monolith, schema: public}",
    "TargetConfig": "target: {conn_id: my_service_db, schema: public}",
    "Defaults": "defaults: {retries: 2, chunk_rows: 100000}",
    "MaskSalt": "mask_salt: {variable: dbsplit_mask_salt}",
    "Resync": 'resync: {schedule: "0 2 * * *", on_conflict: source_wins}',
    "Service": "users: {target: {conn_id: users_db}, tables: [users]}",
    "AddColumn": "added_column: {type: text, default: \"'value'\"}",
    "Plan": "version: 1, name, source and services",
    "services": "services: {users: {target: {conn_id: users_db}, tables: [users]}}",
    "transforms": "transforms: {email: {mask: hash}, legacy: drop}",
    "add_columns": "add_columns: {origin: {type: text, default: \"'monolith'\"}}",
    "references": "references: {company_id: jobs.companies}",
}
_WHEN_EMPTY = {
    "services": "define at least one service",
    "columns": "list the columns to keep, or remove `columns` to keep them all",
}
_REQUIRED = {
    "target": "target: {conn_id: <the service's database connection>}",
    "conn_id": "conn_id: <an Airflow connection id>",
    "version": "version: 1",
    "name": "name: <plan name>",
    "source": "source: {conn_id: <the monolith's connection>}",
    "services": "services: {<service>: {target: ..., tables: [...]}}",
    "type": "type: <PostgreSQL type>",
}
_HOMES: list[tuple[type[BaseModel], str]] = [
    (TableRoute, "a table entry under `tables`"), (Service, "a service"), (Defaults, "`defaults`"),
]


def issue_from_error(err: Any) -> Issue:
    """One pydantic error as an Issue: field path, plain message, fix."""
    loc: Loc = tuple(err["loc"])
    is_key = bool(loc) and loc[-1] == "[key]"
    if is_key:
        loc = loc[:-1]
    message, fix = _explain(err, loc)
    if is_key:
        message = f"invalid {_key_kind(loc)}: {message}"
    return Issue(loc, message, fix)


def _explain(err: Any, loc: Loc) -> tuple[str, str]:
    kind, ctx, got = err["type"], err.get("ctx") or {}, err.get("input")
    field = _field(loc)
    if kind == "dbsplit":
        return err["msg"], ctx["fix"]
    if kind == "extra_forbidden":
        return f"unknown key `{loc[-1]}`", _unknown_key_fix(loc)
    if kind == "missing":
        return f"required key `{loc[-1]}` is missing", f"add `{_REQUIRED.get(str(loc[-1]), loc[-1])}`"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        example = _EXAMPLES.get(ctx.get("class_name") or str(loc[-1] if loc else ""), "key: value lines")
        return f"{field} must be a mapping, not {_describe(got)}", f"write it as a mapping, e.g. {example}"
    if kind == "list_type":
        return (f"{field} must be a list, not {_describe(got)}",
                "write a YAML list, e.g. [a, b] or one `- item` per line")
    if kind == "literal_error":
        options = re.findall(r"'([^']*)'", ctx.get("expected", ""))
        return (f"{field} must be one of {', '.join(options)} (not `{got}`)",
                f"{did_you_mean(str(got), options)}use one of {', '.join(options)}")
    return _explain_scalar(kind, ctx, got, loc)


def _explain_scalar(kind: str, ctx: dict[str, Any], got: Any, loc: Loc) -> tuple[str, str]:
    field = _field(loc)
    if kind == "string_type":
        hint = f"quote it: '{got}'" if isinstance(got, int | float | bool) else "give a single text value"
        return f"{field} must be text, not {_describe(got)}", hint
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"{field} must be a whole number, not {_describe(got)}", "give a whole number such as 2"
    if kind in ("bool_type", "bool_parsing"):
        return f"{field} must be true or false, not {_describe(got)}", "write true or false"
    if kind in ("uuid_parsing", "uuid_type"):
        return (f"{field} must be a UUID, not {_describe(got)}",
                "give a UUID such as 0b4c2f9e-5d1a-4e3b-9c7f-2a6d8e1b4c3f, "
                "or remove it to derive one from the plan name")
    if kind == "greater_than_equal":
        return f"{field} must be at least {ctx['ge']} (not {got})", f"use a value of {ctx['ge']} or more"
    if kind == "less_than_equal":
        return f"{field} must be at most {ctx['le']} (not {got})", f"use a value of {ctx['le']} or less"
    if kind in ("too_short", "string_too_short"):
        return f"{field} is empty", _WHEN_EMPTY.get(str(loc[-1]) if loc else "", "give at least one value")
    return f"{field} is invalid ({_describe(got)})", "correct the value as described in docs/PLAN-FORMAT.md"


def _field(loc: Loc) -> str:
    """How to name the value at loc in a message: `key`, or `key` item N for list items."""
    if not loc:
        return "the plan"
    if isinstance(loc[-1], int):
        return f"item {loc[-1] + 1} of `{loc[-2]}`" if len(loc) > 1 else "the item"
    return f"`{loc[-1]}`"


def _describe(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text `{value}`"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _key_kind(loc: Loc) -> str:
    container = str(loc[-2]) if len(loc) > 1 else ""
    return {"services": "service name", "transforms": "column name", "add_columns": "column name",
            "references": "column name"}.get(container, "name")


def _unknown_key_fix(loc: Loc) -> str:
    key = str(loc[-1])
    allowed = allowed_keys(loc[:-1])
    home = next((where for model, where in _HOMES if key in _keys(model) and allowed != _keys(model)), None)
    hint = did_you_mean(key, allowed) or (f"`{key}` belongs in {home}; " if home else "")
    return f"{hint}remove `{key}`; allowed keys here: {', '.join(allowed)}"


def allowed_keys(loc: Loc) -> list[str]:
    """Keys the model at loc accepts ([] when loc is not a model)."""
    model: Any = Plan
    for part in loc:
        model = _child(model, part)
    return _keys(model) if isinstance(model, type) and issubclass(model, BaseModel) else []


def _keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _child(model: Any, part: Any) -> Any:
    if isinstance(model, type) and issubclass(model, BaseModel):
        field = next((f for n, f in model.model_fields.items() if part in (n, f.alias)), None)
        return _unwrap(field.annotation) if field else None
    args = typing.get_args(model)
    if typing.get_origin(model) is dict and args:
        return _unwrap(args[1])
    if typing.get_origin(model) is list and args:
        return _unwrap(args[0])
    return None


def _unwrap(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1:
        return _unwrap(args[0])
    return tp
