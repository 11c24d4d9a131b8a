"""A plan file as read: its data, the line of every key and item, and its problems located by line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dbsplit.errors import PlanError, PlanProblem
from dbsplit.plan.yamlread import Lines, YamlProblem, read_yaml

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Issue:
    """A problem at a location of the plan (a path of keys and list indexes)."""

    loc: Loc
    message: str
    fix: str
    line: int | None = None  # when the node at loc is not the place to show (e.g. a repeated key)


@dataclass(frozen=True)
class PlanDocument:
    """A parsed plan file; turns Issues into PlanProblems with file, line and field path."""

    path: Path
    data: dict[str, Any]
    lines: Lines

    @classmethod
    def read(cls, path: str | Path) -> "PlanDocument":
        """Read and parse a plan file; raise PlanError when it cannot be read or is not a YAML mapping."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise PlanError([PlanProblem(str(path), None, "(file)", f"cannot read the plan: {reason}",
                                         "pass the path of an existing plan YAML file")]) from exc
        try:
            data, lines = read_yaml(text)
        except YamlProblem as exc:
            raise PlanError([PlanProblem(str(path), exc.line, "(syntax)", exc.message, exc.fix)]) from exc
        if not isinstance(data, dict):
            raise PlanError([PlanProblem(str(path), lines.root, "(document)", "the plan must be a YAML mapping",
                                         "start with `version: 1`, `name:`, `source:` and `services:`")])
        return cls(path, data, lines)

    def line_of(self, loc: Loc) -> int:
        """1-based line of the value at loc, or of its deepest existing ancestor."""
        return line_of(self.data, self.lines, loc)

    def problem(self, issue: Issue) -> PlanProblem:
        field = ".".join(str(p) for p in issue.loc) or "(plan)"
        return PlanProblem(str(self.path), issue.line or self.line_of(issue.loc), field, issue.message, issue.fix)

    def problems(self, issues: list[Issue]) -> list[PlanProblem]:
        """One PlanProblem per distinct issue, in file order."""
        unique = list(dict.fromkeys(issues))
        return sorted((self.problem(i) for i in unique), key=lambda p: p.line or 0)

    def duplicate_keys(self) -> list[Issue]:
        """Keys given twice in one mapping (YAML would silently keep the last)."""
        return [Issue(tuple(path) + (key,), f"key `{key}` is given twice (lines {first} and {again})",
                      "keep one of them; YAML would silently use the last", again)
                for path, key, first, again in self.lines.repeated]


def line_of(data: Any, lines: Lines, loc: Loc) -> int:
    """1-based line of the value at a location (its deepest existing ancestor)."""
    line, node = 1, data
    for part in loc:
        at = lines.at.get(id(node))
        if isinstance(node, dict) and at is not None:
            key = part if part in node else next((k for k in node if str(k) == str(part)), None)
            if key is None or key not in at:
                return line
            line, node = at[key], node[key]
        elif isinstance(node, list) and at is not None and isinstance(part, int) and 0 <= part < len(node):
            line, node = at[part], node[part]
        else:
            return line
    return line
