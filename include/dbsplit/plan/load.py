"""Load a plan file: YAML with line numbers, pydantic validation, every problem reported at once."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from dbsplit.errors import PlanError, PlanProblem
from dbsplit.plan.models import Plan


def load_plan(path: str | Path) -> Plan:
    """Read and validate a plan file; raise PlanError listing every problem with file, line, field and fix."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlanError([PlanProblem(str(path), None, "(file)", f"cannot read the plan: {exc.strerror}",
                                     "pass the path of an existing plan YAML file")]) from exc
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise PlanError([PlanProblem(str(path), mark.line + 1 if mark else None, "(syntax)",
                                     f"invalid YAML: {getattr(exc, 'problem', exc)}",
                                     "correct the YAML syntax at that line")]) from exc
    if not isinstance(data, dict):
        raise PlanError([PlanProblem(str(path), 1, "(document)", "the plan must be a YAML mapping",
                                     "start with `version: 1`, `name:`, `source:` and `services:`")])
    try:
        return Plan.model_validate(data)
    except ValidationError as exc:
        raise PlanError([_problem(path, root, err) for err in exc.errors()]) from exc


def _problem(path: Path, root: yaml.Node | None, err: Any) -> PlanProblem:
    loc = tuple(err["loc"])
    field = ".".join(str(p) for p in loc) or "(plan)"
    line = _line_of(root, loc)
    message = _MESSAGES.get(err["type"], err["msg"].removeprefix("Value error, ")).format(key=loc[-1] if loc else "")
    if "[key]" in loc:
        field = field.replace(".[key]", "")
        message = f"invalid name: {message}"
    return PlanProblem(str(path), line, field, message, _fix_for(err, loc))


_MESSAGES = {"extra_forbidden": "unknown key `{key}`", "missing": "required key `{key}` is missing"}


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the YAML node at a pydantic error location (its deepest existing ancestor)."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if match is None:
                return line
            key, node = match
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """Keys the model accepts at the mapping that holds loc's last element."""
    model: Any = Plan
    for part in loc[:-1]:
        model = _child_model(model, part)
        if model is None:
            return []
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [f.alias or name for name, f in model.model_fields.items()]
    return []


def _child_model(model: Any, part: Any) -> Any:
    import typing

    if isinstance(model, type) and issubclass(model, BaseModel):
        for name, f in model.model_fields.items():
            if part in (name, f.alias):
                return _unwrap(f.annotation)
        return None
    origin = typing.get_origin(model)
    args = typing.get_args(model)
    if origin is dict and args:
        return _unwrap(args[1])
    if origin is list and args:
        return _unwrap(args[0])
    return None


def _unwrap(tp: Any) -> Any:
    import typing

    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, __import__("types").UnionType) and len(args) == 1:
        return _unwrap(args[0])
    return tp


def _fix_for(err: Any, loc: tuple[Any, ...]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc)
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"did you mean `{close[0]}`? " if close else ""
        return f"{hint}remove `{loc[-1]}`; allowed keys here: {', '.join(allowed)}"
    if kind == "missing":
        return f"add `{loc[-1]}`"
    if kind == "string_pattern_mismatch":
        return f"use a name matching {err['ctx']['pattern']}"
    if kind in ("too_short", "string_too_short"):
        return "give at least one value"
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return f"give a value of the expected type ({err['msg'].lower()})"
    return "correct the value as the message says (the plan format is described in README.md)"
