"""Load a plan file: YAML with line numbers, validation, and every problem reported at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dbsplit.errors import PlanError
from dbsplit.plan.document import Issue, PlanDocument
from dbsplit.plan.messages import issue_from_error
from dbsplit.plan.models import Plan
from dbsplit.plan.partial import partial_scope
from dbsplit.plan.semantic import Scope, semantic_issues
from dbsplit.plan.yamlread import no_gc


def load_plan(path: str | Path) -> Plan:
    """Read and validate a plan file; raise PlanError listing every problem with file, line, field and fix."""
    return read_plan(path)[0]


def read_plan(path: str | Path) -> tuple[Plan, PlanDocument]:
    """Like load_plan, also returning the parsed document (to locate later findings by line)."""
    with no_gc():  # a plan is millions of small acyclic objects at most: collecting cycles meanwhile only costs
        doc = PlanDocument.read(path)
        plan, issues = validate(doc.data)
    issues = doc.duplicate_keys() + issues
    if plan is None or issues:
        raise PlanError(doc.problems(issues))
    return plan, doc


def validate(data: dict[str, Any]) -> tuple[Plan | None, list[Issue]]:
    """The plan (None when invalid) and every problem; valid parts of an invalid plan are still checked together."""
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        issues = [issue_from_error(err) for err in exc.errors()]
        return None, issues + semantic_issues(partial_scope(data))
    return plan, semantic_issues(Scope(plan))
