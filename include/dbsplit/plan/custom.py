"""Custom transform functions: each `custom` of the plan must import (checked by plan check, not at DAG parse)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from dbsplit.plan.document import Issue
from dbsplit.plan.models import Plan


def custom_issues(plan: Plan, root: Path) -> list[Issue]:
    """Every `custom` whose module does not import or lacks the function; root (the repository) is importable."""
    issues = []
    added = str(root) not in sys.path
    if added:
        sys.path.append(str(root))
    try:
        for service, index, route in plan.routes():
            if route.custom and (problem := _import_problem(route.custom)):
                issues.append(Issue(("services", service, "tables", index, "custom"), *problem))
    finally:
        if added:
            sys.path.remove(str(root))
    return issues


def _import_problem(spec: str) -> tuple[str, str] | None:
    module_name, _, function = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - whatever stops the import stops the run too
        return (f"the module `{module_name}` of `{spec}` does not import ({type(exc).__name__}: {exc})",
                "install the module where the DAGs run or correct its name; plan check imports it from the "
                "repository root and the current Python path")
    if not callable(getattr(module, function, None)):
        return (f"the module `{module_name}` has no function `{function}`",
                f"define `{function}(frame)` in {module_name}, or name one of its functions")
    return None
