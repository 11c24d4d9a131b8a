"""Checks of a plan against its source database: names, types, casts and keys exist as the plan assumes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from dbsplit.errors import PlanProblem
from dbsplit.pg.catalog import TableInfo
from dbsplit.pg.conn import connect_source
from dbsplit.pg.source_catalog import WATERMARK_TYPES, SourceCatalog
from dbsplit.plan.columns import clashes
from dbsplit.plan.document import Issue, Loc, PlanDocument
from dbsplit.plan.fields import did_you_mean
from dbsplit.plan.fkedges import FkEdge, catalog_edges, cycle_issues
from dbsplit.plan.keys import uuid_key_problem
from dbsplit.plan.models import Plan, TableRoute


@dataclass(frozen=True)
class SourceCheck:
    """The problems found in the source, or why the source was not checked."""

    problems: list[PlanProblem]
    skipped: str | None = None
    edges: list[FkEdge] = field(default_factory=list)   # service dependencies from the catalog's foreign keys


def check_source(plan: Plan, doc: PlanDocument, conninfo: str, timeout_s: int = 5) -> SourceCheck:
    """Check the plan against the source catalog in a read-only transaction; `skipped` says why it could not."""
    try:
        conn = connect_source(conninfo, connect_timeout=timeout_s)
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        return SourceCheck([], f"the source database is not reachable: {reason}")
    with conn:
        conn.read_only = True
        try:
            cat = SourceCatalog(conn)
            issues = source_issues(plan, cat)
            edges = catalog_edges(plan, cat)
        except psycopg.Error as exc:
            return SourceCheck([], f"reading the source catalog failed: {' '.join(str(exc).split())}")
        finally:
            conn.rollback()
    return SourceCheck(doc.problems(issues + cycle_issues(plan, edges)), None, edges)


def file_issues(plan: Plan, doc: PlanDocument) -> list[PlanProblem]:
    """Expectation suites that do not exist, relative to the plan's repository root."""
    root = repo_root(doc.path)
    issues = [Issue(("services", service, "tables", index, "expectations"),
                    f"expectation suite {route.expectations} does not exist under {root}",
                    "correct the path (relative to the repository root), or create the suite")
              for service, index, route in plan.routes()
              if route.expectations and not (root / route.expectations).is_file()]
    return doc.problems(issues)


def repo_root(plan_path: Path) -> Path:
    """The nearest directory above the plan holding .git, else the plan's own directory."""
    start = plan_path.resolve().parent
    return next((d for d in (start, *start.parents) if (d / ".git").exists()), start)


def source_issues(plan: Plan, cat: SourceCatalog) -> list[Issue]:
    """Every problem the source catalog shows in the plan."""
    schemas = cat.schemas()
    issues = [Issue(("services", name, "schemas", i), f"source schema `{schema}` does not exist",
                    f"{did_you_mean(schema, schemas)}name an existing schema")
              for name, service in plan.services.items() for i, schema in enumerate(service.schemas)
              if schema not in schemas]
    for service, index, route in plan.routes():
        loc: Loc = ("services", service, "tables", index)
        schema = route.source_schema or plan.source.schema_
        info = cat.table(schema, route.source_table)
        if info is None:
            issues.append(_missing_table(cat, schemas, schema, route, loc))
        else:
            issues += _route_issues(cat, route, info, loc)
    return issues + list(_whole_schema_references(plan, cat))


def _missing_table(cat: SourceCatalog, schemas: list[str], schema: str, route: TableRoute, loc: Loc) -> Issue:
    if schema not in schemas:
        return Issue(loc + ("source",), f"source schema `{schema}` does not exist",
                     f"{did_you_mean(schema, schemas)}name an existing schema")
    tables = cat.tables(schema)
    return Issue(loc + ("source",), f"source table {schema}.{route.source_table} does not exist",
                 f"{did_you_mean(route.source_table, tables)}name a table of schema {schema}")


def _route_issues(cat: SourceCatalog, route: TableRoute, info: TableInfo, loc: Loc) -> list[Issue]:
    names = [c.name for c in info.columns]
    issues = list(_unknown_columns(route, info, loc))
    issues += _casts(cat, route, info, loc) + _added_types(cat, route, loc) + _keys(route, info, loc)
    if route.watermark:
        issues += _watermark(cat, route.watermark, info, loc)
    if route.columns is None:
        issues += clashes(route, loc, names)
    return issues


def _unknown_columns(route: TableRoute, info: TableInfo, loc: Loc) -> Iterator[Issue]:
    names = [c.name for c in info.columns]
    named: list[tuple[Loc, str]] = [(loc + ("columns", i), c) for i, c in enumerate(route.columns or [])]
    named += [(loc + ("transforms", c), c) for c in route.transforms]
    named += [(loc + ("references", c), c) for c in route.references]
    for where, column in named:
        if column not in names:
            yield _no_column(where, column, info)


def _no_column(loc: Loc, column: str, info: TableInfo) -> Issue:
    names = [c.name for c in info.columns]
    listed = ", ".join(names[:15]) + (", …" if len(names) > 15 else "")
    return Issue(loc, f"column `{column}` does not exist in {info.schema}.{info.name}",
                 f"{did_you_mean(column, names)}its columns are: {listed}")


def _casts(cat: SourceCatalog, route: TableRoute, info: TableInfo, loc: Loc) -> list[Issue]:
    columns = {c.name: c for c in info.columns}
    issues = []
    for name, transform in route.transforms.items():
        if not transform.cast or name not in columns:
            continue
        where = loc + ("transforms", name, "cast")
        target = cat.type_oid(transform.cast)
        if target is None:
            issues.append(_unknown_type(where, transform.cast))
        elif not cat.can_cast(columns[name].type_oid, target):
            issues.append(Issue(where, f"PostgreSQL cannot cast `{name}` from {columns[name].type_sql} to "
                                       f"{cat.type_name(target)}",
                                "cast to a type PostgreSQL converts this type to, or convert the value in `custom`"))
    return issues


def _added_types(cat: SourceCatalog, route: TableRoute, loc: Loc) -> list[Issue]:
    return [_unknown_type(loc + ("add_columns", name, "type"), column.type)
            for name, column in route.add_columns.items() if cat.type_oid(column.type) is None]


def _unknown_type(loc: Loc, type_text: str) -> Issue:
    return Issue(loc, f"`{type_text}` is not a type the source database knows",
                 "use a PostgreSQL type such as integer, bigint, text, numeric(10,2) or timestamptz")


def _keys(route: TableRoute, info: TableInfo, loc: Loc) -> list[Issue]:
    if route.uuid_key and (problem := uuid_key_problem(f"{info.schema}.{info.name}", info.primary_key)):
        return [Issue(loc + ("uuid_key",), *problem)]
    issues = []
    for key in info.primary_key:
        transform = route.transforms.get(key)
        if route.columns is not None and key not in route.columns:
            issues.append(Issue(loc + ("columns",), f"`columns` leaves out the primary key column `{key}`",
                                f"add `{key}` to `columns`: each target table keeps the key that identifies "
                                "its rows"))
        elif transform and transform.drop:
            issues.append(Issue(loc + ("transforms", key), f"`{key}` is the primary key and cannot be dropped",
                                "remove the drop: each target table keeps the key that identifies its rows"))
        elif transform and route.uuid_key and (transform.mask or transform.cast):
            issues.append(Issue(loc + ("transforms", key), f"`{key}` becomes a UUID (uuid_key) and cannot be "
                                                            f"{'masked' if transform.mask else 'cast'}",
                                "remove the transform, or remove `uuid_key`"))
        elif transform and transform.mask:
            issues.append(Issue(loc + ("transforms", key, "mask"), f"`{key}` is the primary key and cannot be masked: "
                                f"mask {transform.mask} would {_MASK_EFFECT[transform.mask]}",
                                "remove the mask; to hide the key, give the table `uuid_key: true` instead"))
    return issues


_MASK_EFFECT = {"null": "empty the key", "hash": "turn the key into text that no reference matches",
                "redact": "give every row the same key"}


def _watermark(cat: SourceCatalog, column: str, info: TableInfo, loc: Loc) -> list[Issue]:
    found = next((c for c in info.columns if c.name == column), None)
    if found is None:
        return [_no_column(loc + ("watermark",), column, info)]
    if cat.base_type(found.type_oid) not in WATERMARK_TYPES:
        return [Issue(loc + ("watermark",), f"watermark `{column}` is {found.type_sql}, not a timestamp or integer",
                      "choose a column of type timestamp, timestamptz, date, smallint, integer or bigint")]
    return []


def _whole_schema_references(plan: Plan, cat: SourceCatalog) -> Iterator[Issue]:
    """References to tables of services that route whole schemas: the table must exist in one of them."""
    for service, index, route in plan.routes():
        for column, ref in route.references.items():
            ref_service, table = ref.split(".", 1)
            owner = plan.services.get(ref_service)
            if owner is None or not owner.schemas or table in {r.target_name for r in owner.tables}:
                continue
            if not any(table in cat.tables(schema) for schema in owner.schemas):
                yield Issue(("services", service, "tables", index, "references", column),
                            f"service '{ref_service}' has no table `{table}` (in reference `{ref}`): "
                            f"none of its schemas {', '.join(owner.schemas)} has it",
                            f"reference a table of service '{ref_service}'")
