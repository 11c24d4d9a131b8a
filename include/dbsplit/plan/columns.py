"""Column-level checks of one table route: listed columns, transforms, renames and added columns."""

from __future__ import annotations

from collections.abc import Iterable

from dbsplit.plan.document import Issue, Loc
from dbsplit.plan.routes import TableRoute


def route_column_issues(route: TableRoute, loc: Loc) -> list[Issue]:
    """Problems visible from the plan alone (without the source's column list)."""
    issues: list[Issue] = []
    if route.columns is not None:
        for index, column in enumerate(route.columns):
            if route.columns.index(column) != index:
                issues.append(Issue(loc + ("columns", index), f"column `{column}` is listed twice",
                                    "list each column once"))
        issues += [Issue(loc + ("transforms", column), f"column `{column}` has a transform but is not in `columns`",
                         f"add `{column}` to `columns`, or remove the transform")
                   for column in route.transforms if column not in route.columns]
    known = route.columns if route.columns is not None else list(route.transforms)
    return issues + clashes(route, loc, known)


def clashes(route: TableRoute, loc: Loc, source_columns: Iterable[str]) -> list[Issue]:
    """Target column names given twice: renames onto kept or renamed columns, added columns onto either."""
    columns = list(dict.fromkeys(source_columns))
    taken = {c: f"the kept column `{c}`" for c in columns if route.target_column(c) == c}
    issues: list[Issue] = []
    for column in columns:
        new = route.target_column(column)
        if new is None or new == column:
            continue
        if new in taken:
            issues.append(Issue(loc + ("transforms", column, "rename"),
                                f"renaming `{column}` to `{new}` collides with {taken[new]}",
                                "rename it to a name no other column has, or drop or rename the other column"))
        taken.setdefault(new, f"`{column}` renamed to `{new}`")
    for name in route.add_columns:
        if name in taken:
            issues.append(Issue(loc + ("add_columns", name), f"added column `{name}` collides with {taken[name]}",
                                "give the added column another name, or drop or rename that source column"))
    return issues
