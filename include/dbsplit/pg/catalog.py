"""Read table metadata from a PostgreSQL catalog: columns, keys, constraints, indexes, sequences, types.

Every name and expression in the result is server-generated text (format_type, pg_get_expr,
pg_get_*def, quote_ident) read with an empty search_path, so that it is valid DDL in any database
and every non-built-in name in it is schema-qualified (`public.mood`, not `mood`). The queries are
in catalog_sql.py: one per kind of object, each for any number of tables at once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from dbsplit.errors import SourceSchemaError
from dbsplit.pg import catalog_sql as q
from dbsplit.pg.rows import one_row

FK_ACTIONS = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
FK_MATCH = {"s": "SIMPLE", "f": "FULL", "p": "PARTIAL"}


@dataclass(frozen=True)
class Column:
    name: str
    type_sql: str                          # format_type() text, valid in DDL
    not_null: bool
    type_oid: int                          # 0 for a column whose type text comes from a plan
    generated_expr: str | None = None      # generation expression of a generated column
    default: str | None = None             # default expression (pg_get_expr text)
    identity: str = ""                     # "a" GENERATED ALWAYS, "d" BY DEFAULT, "" none
    generated: str = ""                    # "s" STORED, "v" VIRTUAL (PostgreSQL 18), "" none
    collation: str | None = None           # qualified collation when not the type's default
    default_sequence: str | None = None    # qualified sequence the default calls (serial columns)
    generated_from: tuple[str, ...] = ()   # columns a generation expression reads

    @property
    def serial(self) -> bool:
        """The default is nextval() of a sequence (serial, bigserial, or a hand-made equivalent)."""
        return self.default_sequence is not None and (self.default or "").startswith("nextval(")


@dataclass(frozen=True)
class UserType:
    """An enum, domain or composite type a table's columns use, recreated in the target before the table."""

    schema: str
    name: str
    kind: str                              # "enum", "domain" or "composite"
    labels: tuple[str, ...] = ()           # enum labels in order
    base_type_sql: str = ""                # domain base type
    not_null: bool = False
    checks: tuple[str, ...] = ()           # domain CHECK constraint definitions
    default: str | None = None             # domain default expression
    attributes: tuple[tuple[str, str], ...] = ()   # composite (name, type) pairs


@dataclass(frozen=True)
class Constraint:
    """A primary key ("p"), unique ("u"), check ("c") or exclusion ("x") constraint."""

    name: str
    kind: str
    definition: str                        # pg_get_constraintdef text, e.g. "UNIQUE (email)"
    columns: tuple[str, ...]               # columns it names (empty for a CHECK without columns)
    validated: bool = True                 # False: a CHECK added NOT VALID (old rows may break it)


@dataclass(frozen=True)
class IndexKey:
    """One key column of an index: a quoted column name or an expression, with its options."""

    expr: str
    is_expression: bool
    opclass: str = ""                      # qualified operator class when not the default
    collation: str = ""                    # qualified collation when not the column's
    descending: bool = False
    nulls_first: bool = False


@dataclass(frozen=True)
class Index:
    """An index that no constraint owns (those come back with their constraint)."""

    name: str
    method: str                            # access method: btree, gin, ...
    unique: bool
    keys: tuple[IndexKey, ...]
    include: tuple[str, ...] = ()          # INCLUDE columns (quoted)
    predicate: str | None = None           # partial index WHERE expression
    options: tuple[str, ...] = ()          # storage parameters, "fillfactor=70"
    nulls_not_distinct: bool = False
    columns: tuple[str, ...] = ()          # every table column it reads (keys, expressions, predicate)
    definition: str = ""                   # pg_get_indexdef text of the source index


@dataclass(frozen=True)
class ForeignKey:
    name: str
    columns: tuple[str, ...]
    ref_schema: str
    ref_table: str
    ref_columns: tuple[str, ...]
    on_delete: str = "NO ACTION"           # NO ACTION | RESTRICT | CASCADE | SET NULL | SET DEFAULT
    on_update: str = "NO ACTION"
    match: str = "SIMPLE"                  # SIMPLE | FULL | PARTIAL
    deferrable: bool = False
    deferred: bool = False
    validated: bool = True
    delete_set_columns: tuple[str, ...] = ()   # ON DELETE SET NULL (columns)
    definition: str = ""                   # pg_get_constraintdef text in the source

    @classmethod
    def from_mapping(cls, d: dict[str, Any], default_schema: str) -> "ForeignKey":
        """From {"columns", "ref_table", "ref_columns"[, "ref_schema", "name", "on_delete", ...]};
        without ref_schema, a dotted ref_table is "schema.table", else it is in default_schema."""
        d = dict(d)
        if "ref_schema" not in d:
            schema, dot, table = str(d["ref_table"]).partition(".")
            d["ref_schema"], d["ref_table"] = (schema, table) if dot else (default_schema, schema)
        d.setdefault("name", "")
        for k in ("columns", "ref_columns", "delete_set_columns"):
            d[k] = tuple(d.get(k, ()))
        return cls(**d)


@dataclass(frozen=True)
class OwnedSequence:
    """A sequence owned by a column: an identity column's, or a serial column's."""

    column: str
    name: str                              # qualified, quoted
    identity: bool
    type_sql: str
    start: int
    increment: int
    min_value: int
    max_value: int
    cache: int
    cycle: bool


@dataclass(frozen=True)
class TableInfo:
    schema: str
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    user_types: tuple[UserType, ...] = field(default=())
    constraints: tuple[Constraint, ...] = ()      # primary key first, then check, unique, exclusion
    indexes: tuple[Index, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    sequences: tuple[OwnedSequence, ...] = ()
    partition_key: str | None = None              # pg_get_partkeydef of a partitioned table

    @property
    def copy_columns(self) -> list[str]:
        """Columns that COPY moves (generated columns are recomputed by the target)."""
        return [c.name for c in self.columns if c.generated_expr is None]

    @property
    def not_null_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.not_null]

    @property
    def unique_constraints(self) -> list[Constraint]:
        return [c for c in self.constraints if c.kind == "u"]

    @property
    def check_constraints(self) -> list[Constraint]:
        return [c for c in self.constraints if c.kind == "c"]

    @property
    def partitioned(self) -> bool:
        return self.partition_key is not None

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


@contextmanager
def qualified_names(conn: psycopg.Connection) -> Iterator[None]:
    """Empty the search_path for the block, so that server-generated text qualifies every name."""
    previous = one_row(conn.execute("SELECT current_setting('search_path')"))[0]
    conn.execute("SELECT set_config('search_path', '', false)")
    try:
        yield
    finally:
        if conn.info.transaction_status != TransactionStatus.INERROR:
            conn.execute("SELECT set_config('search_path', %s, false)", (previous,))


def table_oid(conn: psycopg.Connection, schema: str, table: str) -> int | None:
    row = conn.execute(
        "SELECT c.oid::int FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')",
        (schema, table),
    ).fetchone()
    return row[0] if row else None


def list_schemas(conn: psycopg.Connection) -> list[str]:
    """Schemas other than the system's (pg_*, information_schema) and those of extensions."""
    return [r[0] for r in conn.execute(q.LIST_SCHEMAS)]


def list_tables(conn: psycopg.Connection, schema: str) -> list[str]:
    """Ordinary and partitioned tables of a schema, by name; partitions are left to their parent."""
    return [r[0] for r in conn.execute(q.LIST_TABLES, {"schema": schema})]


def read_table(conn: psycopg.Connection, schema: str, table: str) -> TableInfo:
    """Metadata of one table; raises SourceSchemaError naming the table when it does not exist."""
    return read_tables(conn, [(schema, table)])[0]


def read_tables(conn: psycopg.Connection, tables: Sequence[tuple[str, str]]) -> list[TableInfo]:
    """Metadata of (schema, table) pairs, in order, with one query per kind of object."""
    if not tables:
        return []
    with qualified_names(conn):
        oids = _oids(conn, tables)
        rows = {name: _by_table(conn, query, oids) for name, query in _QUERIES.items()}
        heads = {r[0]: r for r in conn.execute(q.TABLES, {"oids": oids})}
    return [_table(heads[oid], {name: found.get(oid, []) for name, found in rows.items()}) for oid in oids]


def _oids(conn: psycopg.Connection, tables: Sequence[tuple[str, str]]) -> list[int]:
    params = {"schemas": [s for s, _ in tables], "names": [t for _, t in tables]}
    found: dict[int, int] = dict(conn.execute(q.TABLE_OIDS, params))
    missing = [f"{s}.{t}" for i, (s, t) in enumerate(tables, 1) if i not in found]
    if missing:
        raise SourceSchemaError(
            f"table {', '.join(missing)} does not exist in database {conn.info.dbname!r}. "
            "Fix: correct the table name in the plan, or create the table."
        )
    return [found[i] for i in range(1, len(tables) + 1)]


_QUERIES = {"columns": q.COLUMNS, "constraints": q.CONSTRAINTS, "foreign_keys": q.FOREIGN_KEYS,
            "indexes": q.INDEXES, "sequences": q.SEQUENCES, "user_types": q.USER_TYPES}


def _by_table(conn: psycopg.Connection, query: str, oids: list[int]) -> dict[int, list[tuple[Any, ...]]]:
    out: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
    for row in conn.execute(query, {"oids": oids}):
        out[row[0]].append(row[1:])
    return out


def _table(head: tuple[Any, ...], rows: dict[str, list[tuple[Any, ...]]]) -> TableInfo:
    _, schema, name, _kind, partition_key = head
    constraints = tuple(Constraint(n, k, d, tuple(cols), bool(v)) for n, k, d, cols, v in rows["constraints"])
    pk = next((c.columns for c in constraints if c.kind == "p"), ())
    return TableInfo(
        schema, name, tuple(_column(r) for r in rows["columns"]), pk,
        user_types=tuple(_user_type(r) for r in rows["user_types"]),
        constraints=constraints,
        indexes=tuple(_index(r) for r in rows["indexes"]),
        foreign_keys=tuple(_foreign_key(r) for r in rows["foreign_keys"]),
        sequences=tuple(OwnedSequence(*r) for r in rows["sequences"]),
        partition_key=partition_key,
    )


def _column(r: tuple[Any, ...]) -> Column:
    name, type_sql, not_null, type_oid, gen_expr, default, identity, generated, collation, seq, gen_from = r
    return Column(name, type_sql, not_null, type_oid, gen_expr, default, identity, generated, collation, seq,
                  tuple(gen_from))


def _user_type(r: tuple[Any, ...]) -> UserType:
    schema, name, kind, labels, base, not_null, checks, default, att_names, att_types = r
    return UserType(schema, name, {"e": "enum", "d": "domain", "c": "composite"}[kind], tuple(labels), base or "",
                    bool(not_null), tuple(checks), default, tuple(zip(att_names, att_types, strict=True)))


def _index(r: tuple[Any, ...]) -> Index:
    (name, method, unique, nnd, exprs, is_expr, opclasses, collations, options, include, predicate, reloptions,
     columns, definition) = r
    keys = tuple(IndexKey(e, x, oc, co, bool(o & 1), bool(o & 2))
                 for e, x, oc, co, o in zip(exprs, is_expr, opclasses, collations, options, strict=True))
    return Index(name, method, unique, keys, tuple(include), predicate, tuple(reloptions), bool(nnd),
                 tuple(columns), definition)


def _foreign_key(r: tuple[Any, ...]) -> ForeignKey:
    name, cols, ref_schema, ref_table, ref_cols, on_del, on_upd, match, deferrable, deferred, valid, set_cols, d = r
    return ForeignKey(name, tuple(cols), ref_schema, ref_table, tuple(ref_cols), FK_ACTIONS[on_del],
                      FK_ACTIONS[on_upd], FK_MATCH[match], deferrable, deferred, valid, tuple(set_cols), d)
