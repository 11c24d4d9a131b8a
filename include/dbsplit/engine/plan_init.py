"""`init_plan`: a starter plan (YAML, version 1) read from a source database's catalog.

Grouping (`dbsplit plan init --by schema|prefix`): `--by schema` makes one service per non-system
schema that has tables; `--by prefix` groups the tables of one schema by the part of their name before
the first `_`, a plural table joining its singular prefix (`users` joins `user_skills`). A table whose
prefix no other table shares becomes a service of its own, marked `# DECIDE:` with the services it is
linked to by foreign keys.

Foreign keys between services become `uuid_key: true` on the referenced table and a `references:`
entry on the referencing one; a reference that would close a service cycle is left commented out.
Every choice made for the user (placement of tables, uuid keys, masks, names) is a YAML comment
starting `# DECIDE:`.

Names: the source connection id is the source database's name, so that `dbsplit env` and `dbsplit run`
find the database on the dbsplit server without edits; the plan is named after the database without a
`_monolith` suffix, and each target connection id is `<plan>_<service>`.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field

from dbsplit.errors import SourceSchemaError
from dbsplit.pg import catalog
from dbsplit.pg.catalog import TableInfo
from dbsplit.pg.copy import source_connection

Key = tuple[str, str]  # (schema, table)
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}
_PERSON_TABLE = re.compile(r"user|customer|person|people|employee|member|contact|candidate|patient|client|author|"
                           r"profile|account|staff|student")
_PII = [(re.compile(r"e_?mail"), "hash"), (re.compile(r"(^|_)(user_?name|login)$"), "hash"),
        (re.compile(r"phone|mobile|fax"), "redact"),
        (re.compile(r"(^|_)(first|last|full|given|family|middle|display|maiden|nick)_?name$"), "redact"),
        (re.compile(r"address|street|postcode|postal|zip_?code|(^|_)city$"), "redact"),
        (re.compile(r"birth|(^|_)dob$|ssn|passport|national_id|tax_id|iban|card_?number|(^|_)ip(_addr|_address)?$"),
         "redact"),
        (re.compile(r"password|passwd|secret|token"), "null")]
_TEXT_TYPES = re.compile(r"^(text|character varying|character|citext|name)(\(\d+\))?$")


@dataclass
class Group:
    """A service to be: its name, tables, and the comments written above it."""

    service: str
    tables: list[TableInfo]
    about: str
    decide: list[str] = field(default_factory=list)


@dataclass
class Links:
    """What foreign keys across services add to the tables: keys, references and notes."""

    uuid_keys: dict[Key, list[str]] = field(default_factory=lambda: defaultdict(list))
    references: dict[Key, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))
    notes: dict[Key, list[str]] = field(default_factory=lambda: defaultdict(list))


def init_plan(source_conninfo: str, by: str = "schema", *, name: str | None = None, schema: str = "public") -> str:
    """A starter plan for the source database, grouped by="schema" or by="prefix" (of tables in `schema`)."""
    if by not in ("schema", "prefix"):
        raise ValueError(f"by must be 'schema' or 'prefix', not {by!r}")
    with source_connection(source_conninfo) as conn, conn.transaction():
        schemas = catalog.list_schemas(conn) if by == "schema" else [schema]
        keys = [(s, t) for s in schemas for t in catalog.list_tables(conn, s)]
        infos = catalog.read_tables(conn, keys)
        dbname = conn.info.dbname
    if not infos:
        raise SourceSchemaError(f"database {dbname!r} has no tables in {', '.join(schemas) or 'any schema'}. "
                                "Fix: point at the monolith, or choose the schema whose tables to split.")
    plan_name = name or (re.sub(r"[^A-Za-z0-9_-]+", "_", dbname.removesuffix("_monolith")).strip("_-") or "plan")
    groups = by_schema(infos) if by == "schema" else by_prefix(infos)
    default_schema = schema if by == "prefix" or any(i.schema == schema for i in infos) else infos[0].schema
    return render(plan_name, by, dbname, default_schema, groups, cross_links(groups))


def service_slug(text: str) -> str:
    """[a-z][a-z0-9_]* from a schema name or prefix: `user_schema` -> `user`, `Sales Ops` -> `sales_ops`."""
    s = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    s = re.sub(r"[^a-z0-9]+", "_", s).strip("_")
    s = re.sub(r"^(schema|svc|service)_(?=.)|_(schema|svc|service)$", "", s)
    if not s:
        s = "service"
    elif not s[0].isalpha():
        s = f"s_{s}"
    return s[:60]


def by_schema(infos: list[TableInfo]) -> list[Group]:
    """One group per schema."""
    tables: dict[str, list[TableInfo]] = defaultdict(list)
    for info in infos:
        tables[info.schema].append(info)
    groups = [Group(service_slug(s), t, f"schema {s}") for s, t in tables.items()]
    for g in groups:
        if g.tables[0].schema == "public":
            g.decide.append("schema public is usually the monolith itself: name this service, or split it "
                            "by table name with `dbsplit plan init --by prefix`")
        else:
            g.decide.append(f"placed here because they are the tables of schema {g.tables[0].schema}: "
                            "move tables between services where your domain splits otherwise")
    return _unique_names(groups)


def by_prefix(infos: list[TableInfo]) -> list[Group]:
    """Groups of tables sharing the name part before the first `_` (a plural name joins its singular)."""
    prefixes: dict[str, list[TableInfo]] = defaultdict(list)
    for info in infos:
        prefixes[info.name.split("_", 1)[0].lower()].append(info)
    for prefix in sorted(prefixes, key=len, reverse=True):
        singular = next((s for s in _singulars(prefix) if s in prefixes and s != prefix), None)
        if singular is not None and prefix in prefixes:
            prefixes[singular] += prefixes.pop(prefix)
    groups = _unique_names([Group(service_slug(p), sorted(t, key=lambda i: i.name),
                                  f"tables named {p}_*" if len(t) > 1 else f"table {t[0].name}")
                            for p, t in prefixes.items()])
    linked = _fk_neighbours(groups)
    for g in groups:
        if len(g.tables) == 1:
            near = ", ".join(sorted(linked[g.service]))
            hint = f"; it is linked by foreign keys to {near}" if near else ""
            g.decide.append(f"no other table shares its prefix, so it is a service of its own{hint}: "
                            "keep it, or move it into another service")
        else:
            g.decide.append(f"placed together because their names share a prefix ({g.about}): "
                            "move tables between services where your domain splits otherwise")
    return groups


def _singulars(word: str) -> list[str]:
    out = [word[:-3] + "y"] if word.endswith("ies") else []
    return out + ([word[:-2]] if word.endswith("es") else []) + ([word[:-1]] if word.endswith("s") else [])


def _fk_neighbours(groups: list[Group]) -> dict[str, set[str]]:
    owner = {(t.schema, t.name): g.service for g in groups for t in g.tables}
    out: dict[str, set[str]] = defaultdict(set)
    for g in groups:
        for t in g.tables:
            for fk in t.foreign_keys:
                other = owner.get((fk.ref_schema, fk.ref_table), g.service)
                if other != g.service:
                    out[g.service].add(other)
                    out[other].add(g.service)
    return out


def _unique_names(groups: list[Group]) -> list[Group]:
    taken = {"monolith"}  # <plan>_monolith may be the source database, whose name is the source conn id
    for g in groups:
        name, n = g.service, 2
        while name in taken:
            name, n = f"{g.service[:56]}_{n}", n + 1
        if name != g.service:
            g.decide.append(f"named `{name}` because `{g.service}` was taken: choose a better name")
        taken.add(name)
        g.service = name
    return groups


def cross_links(groups: list[Group]) -> Links:
    """uuid_key and references for foreign keys between services; references closing a cycle are noted instead."""
    owner = {(t.schema, t.name): (g.service, t) for g in groups for t in g.tables}
    links, edges = Links(), defaultdict[str, set[str]](set)
    for g in groups:
        for t in g.tables:
            for fk in t.foreign_keys:
                found = owner.get((fk.ref_schema, fk.ref_table))
                if found is None:
                    links.notes[(t.schema, t.name)].append(
                        f"foreign key {fk.name} references {fk.ref_schema}.{fk.ref_table}, which no service takes, "
                        "and a migration refuses that: add that table to a service, or drop the column "
                        f"({', '.join(fk.columns)}: drop under transforms)")
                elif found[0] != g.service:
                    _link(links, edges, g.service, t, fk, *found)
    return links


def _link(links: Links, edges: dict[str, set[str]], service: str, t: TableInfo, fk: catalog.ForeignKey,
          ref_service: str, ref: TableInfo) -> None:
    key, where = (t.schema, t.name), f"{ref_service}.{ref.name}"
    if len(fk.columns) != 1 or fk.ref_columns != ref.primary_key or "." in ref.name:
        links.notes[key].append(f"foreign key {fk.name} ({', '.join(fk.columns)}) references {where} "
                                f"({', '.join(fk.ref_columns)}), not a one-column primary key in another service: "
                                "move the tables together, or drop the reference")
    elif _reaches(edges, ref_service, service):
        links.notes[key].append(f"services {service} and {ref_service} would reference each other; "
                                f"move tables so that only one refers to the other. Left out: "
                                f"references: {{{_q(fk.columns[0])}: {_q(where)}}}")
    else:
        edges[service].add(ref_service)
        links.uuid_keys[(ref.schema, ref.name)].append(f"{service}.{t.name}.{fk.columns[0]}")
        links.references[key][fk.columns[0]] = where


def _reaches(edges: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            todo.extend(edges.get(node, ()))
    return False


def render(name: str, by: str, dbname: str, default_schema: str, groups: list[Group], links: Links) -> str:
    """The plan's YAML text, with comments."""
    n_tables = sum(len(g.tables) for g in groups)
    source_conn = re.sub(r"[^A-Za-z0-9_.-]+", "_", dbname).lstrip(".-")[:250] or f"{name}_source"
    out = [f"# Starter plan for database {_c(dbname)}, made by `dbsplit plan init --by {by}`: "
           f"{_n(len(groups), 'service')}, {_n(n_tables, 'table')}.",
           "# Lines starting with `# DECIDE:` mark choices made for you: review each before migrating.",
           "# Then check it against the source: dbsplit plan check PLAN --source-url URL",
           "# and run it locally: dbsplit run --plan PLAN",
           "version: 1", f"name: {_q(name)}",
           "source:",
           "  # the database's own name: `dbsplit env` and `dbsplit run` map a connection id to the database of that "
           "name on the dbsplit server; elsewhere, define the connection in Airflow"]
    if source_conn != dbname:
        out.append("  # DECIDE: the database's name is not a valid connection id: "
                   f"define {source_conn} as {_c(dbname)}")
    out += [f"  conn_id: {_q(source_conn)}", f"  schema: {_q(default_schema)}",
           "defaults:", "  retries: 2",
           "  # mask_salt: {variable: dbsplit_mask_salt}   # needed once a transform uses `mask: hash`",
           "services:"]
    for g in groups:
        out += [f"  {g.service}:  # {_c(g.about)}"] + [f"    # DECIDE: {_c(d)}" for d in g.decide]
        out += [f"    target: {{conn_id: {_q(f'{name}_{g.service}')}, schema: public}}", "    tables:"]
        for t in g.tables:
            out += _table_lines(t, default_schema, links)
    return "\n".join(out) + "\n"


def _table_lines(t: TableInfo, default_schema: str, links: Links) -> list[str]:
    key = (t.schema, t.name)
    source = t.name if t.schema == default_schema else f"{t.schema}.{t.name}"
    notes = [f"# DECIDE: {_c(n)}" for n in links.notes.get(key, [])]
    if not t.primary_key:
        notes.append("# DECIDE: no primary key: rows are neither chunked nor checked for duplicates, and no "
                     "uuid_key is possible; add a key in the source, or accept that")
    if t.partition_key:
        notes.append(f"# partitioned by {_c(t.partition_key)} in the source: one ordinary table in the target")
    if "." in t.schema or "." in t.name:
        return [f"      # DECIDE: {_c(source)}: a name with `.` cannot be routed by a plan; rename it in the source"]
    entries = _pii_lines(t)
    if key in links.uuid_keys:
        pk = next((c for c in t.columns if c.name == t.primary_key[0]), None)
        kind = f" ({pk.type_sql})" if pk else ""
        entries.append(f"# DECIDE: uuid_key makes the key {_c(t.primary_key[0])}{_c(kind)} a UUID, and the columns "
                       f"that reference it from other services too: remove it to keep the keys as they are")
        entries.append(f"uuid_key: true  # referenced from {_c(', '.join(links.uuid_keys[key]))}")
    if links.references.get(key):
        entries.append("references:")
        entries += [f"  {_q(col)}: {_q(ref)}" for col, ref in links.references[key].items()]
    if not entries:
        return [f"      {n}" for n in notes] + [f"      - {_q(source)}"]
    return [f"      - source: {_q(source)}"] + [f"        {b}" for b in notes + entries]


def _pii_lines(t: TableInfo) -> list[str]:
    found = [(c, mask) for c in t.columns for mask in [_pii_mask(t.name, c.name.lower(), c.type_sql)] if mask]
    if not found:
        return []
    head = ["# DECIDE: personal data? uncomment the masks to apply (`mask: hash` needs defaults.mask_salt)",
            "# transforms:"]
    return head + [f"#   {_q(c.name)}: {{mask: {mask}}}" for c, mask in found]


def _pii_mask(table: str, column: str, type_sql: str) -> str | None:
    """hash keeps text values distinct (emails, logins), redact blanks other text, null other types."""
    if type_sql == "boolean":
        return None
    if column == "name" and _PERSON_TABLE.search(table.lower()):
        mask: str | None = "redact"
    else:
        mask = next((m for pattern, m in _PII if pattern.search(column)), None)
    if mask in ("hash", "redact") and not _TEXT_TYPES.match(type_sql):
        return "null"
    return mask


def _n(count: int, noun: str) -> str:
    """`1 service`, `2 services`."""
    return f"{count} {noun}{'s' * (count != 1)}"


def _q(text: str) -> str:
    """A YAML scalar for a name: plain when safe, else double-quoted (JSON escapes are valid YAML)."""
    if _PLAIN.fullmatch(text) and text.lower() not in _YAML_WORDS:
        return text
    return json.dumps(text, ensure_ascii=False)


def _c(text: str) -> str:
    """Text safe inside a one-line YAML comment."""
    return re.sub(r"[\r\n\x00-\x1f]+", " ", text)
