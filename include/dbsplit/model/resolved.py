"""A plan resolved against the source catalog: exactly what each target table gets and from where.

This is the contract between the plan layer (which builds it, in resolve.py) and the data
movement and validation layers (which execute and check it). Pure data, JSON-able, no I/O.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

# How a target column gets its value (applied per row; NULL in gives NULL out except for "default"):
#   copy        the source column's value, same type
#   cast        CAST(source AS target_type); a value that cannot be cast is a rejected row
#   mask_hash   hex sha256 of (salt || value::text), type text
#   mask_redact the constant 'REDACTED', type text
#   mask_null   NULL (the target column is nullable)
#   uuid_key    uuid5(namespace, "<source schema>.<source table>:<key text>") of this row's own key
#   uuid_ref    uuid5(namespace, "<referenced schema>.<referenced table>:<value text>"), arg names the
#               referenced source table as "schema.table"
#   default     a column added by the plan; every row gets the SQL literal in arg, cast to target_type
ColumnOp = Literal["copy", "cast", "mask_hash", "mask_redact", "mask_null", "uuid_key", "uuid_ref", "default"]


@dataclass(frozen=True)
class ColumnMap:
    """One column of a target table."""

    target: str                  # target column name
    target_type: str             # SQL type text valid in the target (format_type style)
    not_null: bool
    op: ColumnOp = "copy"
    source: tuple[str, ...] = ()  # source column(s): one, or the key columns for uuid_key, none for default
    arg: str | None = None        # cast: unused (target_type says); uuid_ref: "schema.table"; default: SQL literal

    def __post_init__(self) -> None:
        """A cast's or an added column's type and a default are plan text spliced into SQL: each must
        still be one type name or one expression (sql_fragments), whichever way this map was built."""
        if self.op in ("cast", "default"):
            from dbsplit.model.sql_fragments import checked

            checked("type", self.target_type)
            if self.op == "default" and self.arg is not None:
                checked("default", self.arg)


@dataclass(frozen=True)
class SoftReference:
    """A reference that crosses services: checked across databases instead of by a foreign key."""

    column: str                  # target column in this table (uuid values when the key became a UUID)
    referenced_service: str
    referenced_table: str        # target table, "schema.table", in the referenced service's database
    referenced_column: str


@dataclass(frozen=True)
class ResolvedTable:
    """Everything needed to move and validate one target table."""

    service: str
    source_schema: str
    source_table: str
    target_schema: str
    target_table: str
    columns: tuple[ColumnMap, ...]
    key: tuple[str, ...]              # target primary key columns
    source_key: tuple[str, ...]       # source columns that identify a row (chunking, row-level diffs)
    filter: str | None = None         # SQL predicate on the source table
    custom: str | None = None         # "package.module:function", DataFrame -> DataFrame, run last
    chunk_rows: int = 100_000
    watermark: str | None = None      # source column for incremental resync
    expectations: str | None = None   # path of a GX suite JSON file
    max_rejected_rows: int = 0
    # FKs kept inside the service: {"columns", "ref_table", "ref_columns"}
    foreign_keys: tuple[dict[str, Any], ...] = ()
    soft_references: tuple[SoftReference, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def passthrough(self) -> bool:
        """True when rows can move as raw binary COPY: every column copied under its own name, no custom code."""
        return self.custom is None and all(c.op == "copy" and c.source == (c.target,) for c in self.columns)

    @property
    def keys_follow_source(self) -> bool:
        """True when the source's own constraints keep the target rows unique: no custom function, and
        the target key is the source key, copied or made a uuid_key (other unique constraints survive
        only on columns copied unchanged). Such a staging table can build its keys after the load."""
        key_maps = [m for m in self.columns if m.target in self.key]
        return (self.custom is None and bool(self.source_key) and all(m.op in ("copy", "uuid_key") for m in key_maps)
                and sorted(s for m in key_maps for s in m.source) == sorted(self.source_key))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ResolvedTable":
        d = dict(data)
        d["columns"] = tuple(ColumnMap(**{**c, "source": tuple(c["source"])}) for c in d["columns"])
        d["soft_references"] = tuple(SoftReference(**r) for r in d.get("soft_references", ()))
        for k in ("key", "source_key", "foreign_keys"):
            d[k] = tuple(d.get(k, ()))
        return cls(**d)


def plan_namespace(plan_name: str, explicit: str | None = None) -> uuid.UUID:
    """The UUID namespace of a plan: explicit, or uuid5(NAMESPACE_URL, "dbsplit:<plan name>")."""
    return uuid.UUID(explicit) if explicit else uuid.uuid5(uuid.NAMESPACE_URL, f"dbsplit:{plan_name}")


def row_uuid(namespace: uuid.UUID, qualified_table: str, key_text: str) -> uuid.UUID:
    """The deterministic identity of a row: uuid5(namespace, "<schema.table>:<key text>").

    key_text is PostgreSQL's text output of the key column; for several key columns the texts
    are joined with ",".
    """
    return uuid.uuid5(namespace, f"{qualified_table}:{key_text}")
