"""A plan file as read: its text, YAML node tree (for line numbers) and data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dbsplit.errors import PlanError, PlanProblem

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
    root: yaml.Node
    data: dict[str, Any]

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
            root = yaml.compose(text)
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise PlanError([PlanProblem(str(path), mark.line + 1 if mark else None, "(syntax)",
                                         f"invalid YAML: {getattr(exc, 'problem', None) or exc}",
                                         "correct the YAML syntax at that line")]) from exc
        if root is None or not isinstance(data, dict):
            raise PlanError([PlanProblem(str(path), 1, "(document)", "the plan must be a YAML mapping",
                                         "start with `version: 1`, `name:`, `source:` and `services:`")])
        return cls(path, root, data)

    def line_of(self, loc: Loc) -> int:
        """1-based line of the node at loc, or of its deepest existing ancestor."""
        return line_of(self.root, loc)

    def problem(self, issue: Issue) -> PlanProblem:
        field = ".".join(str(p) for p in issue.loc) or "(plan)"
        return PlanProblem(str(self.path), issue.line or self.line_of(issue.loc), field, issue.message, issue.fix)

    def problems(self, issues: list[Issue]) -> list[PlanProblem]:
        """One PlanProblem per distinct issue, in file order."""
        unique = list(dict.fromkeys(issues))
        return sorted((self.problem(i) for i in unique), key=lambda p: p.line or 0)

    def duplicate_keys(self) -> list[Issue]:
        """Keys given twice in one mapping (YAML would silently keep the last)."""
        return list(_duplicates(self.root, ()))


def line_of(node: yaml.Node | None, loc: Loc) -> int:
    """1-based line of the YAML node at a location (its deepest existing ancestor)."""
    if node is None:
        return 1
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


def _duplicates(node: yaml.Node, loc: Loc) -> Any:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            name, line = str(key.value), key.start_mark.line + 1
            if name in seen:
                yield Issue(loc + (name,), f"key `{name}` is given twice (lines {seen[name]} and {line})",
                            "keep one of them; YAML would silently use the last", line)
            seen.setdefault(name, line)
            yield from _duplicates(value, loc + (name,))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicates(item, loc + (index,))
