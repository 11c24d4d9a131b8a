"""How a table's target key follows from its source key (KeySpec), and the key-only view of a table."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import psycopg
from psycopg import sql

from dbsplit.engine.resync.names import KEYSTAGE
from dbsplit.errors import DataCheckFailed, DbsplitError
from dbsplit.model.resolved import ColumnMap, ResolvedTable


@dataclass(frozen=True)
class KeySpec:
    """How a table's target key follows from its source key.

    direct: every target key column copies one source key column (maybe renamed): the key values are
            the same and the target key sorts like the source key.
    mapped: the target key is computed (uuid_key, cast, ...): the key table keeps both.
    """

    mode: str
    source_cols: tuple[str, ...]
    source_types: tuple[str, ...]        # format_type in the source (empty until known)
    target_cols: tuple[str, ...]         # the table's key, in its order
    target_types: tuple[str, ...]
    direct_target: tuple[str, ...] = ()  # direct: the target column of each source key column

    @property
    def s(self) -> list[str]:
        return [f"s{i}" for i in range(len(self.source_cols))]

    @property
    def t(self) -> list[str]:
        return [f"t{i}" for i in range(len(self.target_cols))]

    def target_of_s(self) -> list[str]:
        """The target column holding each s column (direct mode)."""
        return list(self.direct_target)


def key_spec(table: ResolvedTable, source_types: Sequence[str] = ()) -> KeySpec:
    if not table.source_key or not table.key:
        raise DbsplitError(f"{table.target_schema}.{table.target_table}: resync needs a key on both sides "
                           f"(source key {list(table.source_key)}, target key {list(table.key)})")
    by_target = {cm.target: cm for cm in table.columns}
    missing = [k for k in table.key if k not in by_target]
    if missing:
        raise DbsplitError(f"{table.target_schema}.{table.target_table}: key column(s) {missing} have no ColumnMap")
    target_types = tuple(by_target[k].target_type for k in table.key)
    direct: list[str] = []
    for s in table.source_key:
        cm = next((c for c in table.columns if c.op == "copy" and c.source == (s,) and c.target in table.key), None)
        if cm is None:
            break
        direct.append(cm.target)
    if len(direct) == len(table.source_key) == len(table.key) and set(direct) == set(table.key):
        types = tuple(by_target[t].target_type for t in direct)
        return KeySpec("direct", tuple(table.source_key), tuple(source_types) or types, tuple(table.key), target_types,
                       tuple(direct))
    return KeySpec("mapped", tuple(table.source_key), tuple(source_types), tuple(table.key), target_types)


def source_column_types(conn: psycopg.Connection, schema: str, table: str) -> dict[str, str]:
    rows = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
        " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
        (sql.Identifier(schema, table).as_string(conn),)).fetchall()
    return dict(rows)


def keys_table(table: ResolvedTable, spec: KeySpec) -> ResolvedTable:
    """A key-only view of the table for the transformed path: s_i copies source key column i, t_j is the
    table's own ColumnMap of target key column j, renamed."""
    by_target = {cm.target: cm for cm in table.columns}
    cols = [ColumnMap(f"s{i}", ty, True, "copy", (c,))
            for i, (c, ty) in enumerate(zip(spec.source_cols, spec.source_types, strict=False))]
    cols += [replace(by_target[k], target=f"t{j}", not_null=True) for j, k in enumerate(spec.target_cols)]
    return replace(table, target_schema="pg_temp", target_table=KEYSTAGE, columns=tuple(cols),
                   key=tuple(f"t{j}" for j in range(len(spec.target_cols))), custom=None, expectations=None,
                   foreign_keys=(), soft_references=())


def too_many_rejects(name: str, how_many: str, limit: int, first: str) -> DataCheckFailed:
    """The error of a resync whose changed rows were rejected more often than the table allows."""
    return DataCheckFailed(
        f"{name}: {how_many} source row(s) rejected by the transforms or the staging table, at most {limit} "
        f"allowed (nothing was changed); first: {first}. Fix: correct those source rows or the column's type "
        "or transform in the plan, or raise the table's max_rejected_rows there (its route, or defaults).")
