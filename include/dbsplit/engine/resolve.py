"""Resolve a plan against the source catalog: the exact target columns, keys and references of each table.

Runs at task run time (it reads the source), never at DAG parse time. Whole-schema routes are
expanded here, so tables created later in a routed schema are picked up by the next run.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from dbsplit.errors import SourceSchemaError
from dbsplit.model.resolved import ColumnMap, ResolvedTable, SoftReference
from dbsplit.pg import catalog
from dbsplit.pg.catalog import Column, TableInfo
from dbsplit.plan.keys import uuid_key_problem
from dbsplit.plan.models import Plan
from dbsplit.plan.routes import TableRoute


@dataclass(frozen=True)
class Owner:
    """Who owns a source table: its service, target table name and whether its key becomes a UUID."""

    service: str
    target_schema: str
    target_table: str
    uuid_key: bool
    route: TableRoute | None


def service_routes(plan: Plan, service: str, conn: psycopg.Connection) -> list[TableRoute]:
    """The service's explicit routes plus one route per table of its whole-schema routes (not listed explicitly)."""
    svc = plan.services[service]
    listed = {plan.qualified_source(r) for _, _, r in plan.routes()}
    routes = list(svc.tables)
    for schema in svc.schemas:
        routes += [TableRoute(source=f"{schema}.{t}") for t in catalog.list_tables(conn, schema)
                   if f"{schema}.{t}" not in listed]
    return routes


def owners(plan: Plan, conn: psycopg.Connection) -> dict[str, Owner]:
    """Qualified source table -> owner, over every service of the plan."""
    out: dict[str, Owner] = {}
    for name, svc in plan.services.items():
        for route in service_routes(plan, name, conn):
            out.setdefault(plan.qualified_source(route),
                           Owner(name, svc.target.schema_, route.target_name, route.uuid_key, route))
    return out


def resolve_service(plan: Plan, service: str, conn: psycopg.Connection) -> list[ResolvedTable]:
    """Every target table of one service, resolved against the source (conn: read-only source session)."""
    who = owners(plan, conn)
    routes = service_routes(plan, service, conn)
    infos = catalog.read_tables(conn, [(r.source_schema or plan.source.schema_, r.source_table) for r in routes])
    return [resolve_table(plan, service, route, info, who, conn) for route, info in zip(routes, infos, strict=True)]


def resolve_table(plan: Plan, service: str, route: TableRoute, info: TableInfo, who: dict[str, Owner],
                  conn: psycopg.Connection) -> ResolvedTable:
    """One route: its ColumnMaps, keys, kept foreign keys and soft references."""
    source_name = f"{info.schema}.{info.name}"
    if route.uuid_key and (problem := uuid_key_problem(source_name, info.primary_key)):
        raise SourceSchemaError(f"{source_name}: {problem[0]}. Fix: {problem[1]}")
    refs = _references(plan, route, info, who)
    kept = [c for c in info.columns if c.generated_expr is None and (route.columns is None or c.name in route.columns)]
    maps = [m for c in kept if (m := _column_map(route, c, info, source_name, refs, who)) is not None]
    maps += [ColumnMap(name, add.type, False, "default", (), None if add.default is None else str(add.default))
             for name, add in route.add_columns.items()]
    target_of = {m.source[0]: m.target for m in maps if len(m.source) == 1 and m.op != "uuid_key"}
    target_of |= {m.source[0]: m.target for m in maps if m.op == "uuid_key"}
    key = tuple(target_of[k] for k in info.primary_key if k in target_of)
    svc = plan.services[service]
    return ResolvedTable(
        service=service, source_schema=info.schema, source_table=info.name, target_schema=svc.target.schema_,
        target_table=route.target_name, columns=tuple(maps),
        key=key if len(key) == len(info.primary_key) else (), source_key=info.primary_key, filter=route.filter,
        custom=route.custom, chunk_rows=plan.chunk_rows_for(route), watermark=route.watermark,
        expectations=route.expectations, max_rejected_rows=plan.max_rejected_rows_for(route),
        foreign_keys=tuple(_kept_foreign_keys(service, info, who, target_of)),
        soft_references=tuple(_soft_references(service, refs, who, target_of, conn)),
    )


def _references(plan: Plan, route: TableRoute, info: TableInfo, who: dict[str, Owner]) -> dict[str, tuple[str, str]]:
    """Source column -> (referenced qualified source table, referenced source column), from FKs and the plan."""
    refs = {fk.columns[0]: (f"{fk.ref_schema}.{fk.ref_table}", fk.ref_columns[0])
            for fk in info.foreign_keys if len(fk.columns) == 1}
    for column, target in route.references.items():
        ref_service, ref_table = str(target).split(".", 1)
        match = next((q for q, o in who.items() if o.service == ref_service and o.target_table == ref_table), None)
        if match is None:
            raise SourceSchemaError(f"reference {column} -> {target}: no table of service {ref_service!r} is "
                                    f"named {ref_table!r}. Fix: correct the reference in the plan.")
        refs[column] = (match, "")
    return refs


def _column_map(route: TableRoute, c: Column, info: TableInfo, source_name: str,
                refs: dict[str, tuple[str, str]], who: dict[str, Owner]) -> ColumnMap | None:
    """The target column a source column becomes (None when the plan drops it)."""
    t = route.transforms.get(c.name)
    if t is not None and t.drop:
        return None
    name = (t.rename if t and t.rename else None) or c.name
    if route.uuid_key and c.name == info.primary_key[0]:
        return ColumnMap(name, "uuid", True, "uuid_key", (c.name,), source_name)
    if t and t.mask == "hash":
        return ColumnMap(name, "text", c.not_null, "mask_hash", (c.name,))
    if t and t.mask == "redact":
        return ColumnMap(name, "text", c.not_null, "mask_redact", (c.name,))
    if t and t.mask == "null":
        return ColumnMap(name, c.type_sql, False, "mask_null", (c.name,))
    if t and t.cast:
        return ColumnMap(name, str(t.cast), c.not_null, "cast", (c.name,))
    ref = refs.get(c.name)
    if ref is not None and (owner := who.get(ref[0])) is not None and owner.uuid_key:
        return ColumnMap(name, "uuid", c.not_null, "uuid_ref", (c.name,), ref[0])
    return ColumnMap(name, c.type_sql, c.not_null, "copy", (c.name,))


def _kept_foreign_keys(service: str, info: TableInfo, who: dict[str, Owner], target_of: dict[str, str]) -> list[dict]:
    """FKs whose referenced table stays in the same service and whose columns survive: recreated in the target."""
    out = []
    for fk in info.foreign_keys:
        owner = who.get(f"{fk.ref_schema}.{fk.ref_table}")
        if owner and owner.service == service and all(c in target_of for c in fk.columns):
            out.append({"columns": [target_of[c] for c in fk.columns],
                        "ref_table": f"{owner.target_schema}.{owner.target_table}",
                        "ref_columns": [owner.route.target_column(c) if owner.route else c for c in fk.ref_columns],
                        "on_delete": fk.on_delete, "validated": fk.validated})
    return out


def _soft_references(service: str, refs: dict[str, tuple[str, str]], who: dict[str, Owner],
                     target_of: dict[str, str], conn: psycopg.Connection) -> list[SoftReference]:
    """References that cross into another service: checked across databases after the load. A foreign key
    into a table no service owns is an error (its rows could never be checked): SourceSchemaError with the fix."""
    out = []
    for column, (qualified, ref_column) in refs.items():
        owner = who.get(qualified)
        if column not in target_of:
            continue
        if owner is None:
            raise SourceSchemaError(
                f"service {service!r}: column {column} references {qualified}, which no service of the plan owns, "
                f"so the reference could never be checked. Fix: add {qualified} to a service's tables, or drop the "
                f"column ({column}: drop under the table's transforms)")
        if owner.service == service:
            continue
        if not ref_column:  # an explicit plan reference points at the referenced table's key
            schema, table = qualified.split(".", 1)
            ref_column = catalog.read_table(conn, schema, table).primary_key[0]
        ref_col = (owner.route.target_column(ref_column) if owner.route else None) or ref_column
        target = f"{owner.target_schema}.{owner.target_table}"
        out.append(SoftReference(target_of[column], owner.service, target, ref_col))
    return out
