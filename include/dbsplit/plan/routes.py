"""Table routes: one source table moved to a service, with its column transforms."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from dbsplit.plan.fields import (
    CustomRef,
    JsonPath,
    PgName,
    RefTarget,
    SourceTable,
    SqlLiteral,
    SqlText,
    Strict,
    TypeText,
    did_you_mean,
    fail,
)

MIN_CHUNK_ROWS = 1_000                 # rows of one chunk at the least (the plan's and the trigger form's minimum)
MAX_CHUNK_ROWS = 10_000_000            # rows of one chunk held in memory; the state table keeps it as integer
MAX_REJECTED_ROWS = 2_147_483_647      # PostgreSQL integer
TRANSFORM_FORMS = "drop, {mask: hash|redact|null}, {rename: new_name} or {cast: type}"


class Transform(Strict):
    """One operation on a source column; rename may combine with mask or cast."""

    mask: Literal["hash", "redact", "null"] | None = None
    rename: PgName | None = None
    cast: TypeText | None = None
    drop: bool = False

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        if value == "drop":
            return {"drop": True}
        if isinstance(value, str):
            raise fail(f"unknown transform `{value}`", f"{did_you_mean(value, ['drop'])}write {TRANSFORM_FORMS}")
        if value is None:
            raise fail("the transform is empty", f"give one operation: {TRANSFORM_FORMS}")
        if isinstance(value, dict) and "mask" in value and value["mask"] is None:
            return {**value, "mask": "null"}  # YAML reads `mask: null` as None
        return value

    @model_validator(mode="after")
    def _one_operation(self) -> "Transform":
        if "drop" in self.model_fields_set and not self.drop:
            raise fail("`drop: false` does nothing", "write `drop` to drop the column, or remove the entry")
        if self.drop and (self.mask or self.rename or self.cast):
            raise fail("drop cannot be combined with another operation", "keep `drop` alone, or remove it")
        if self.mask and self.cast:
            raise fail("mask and cast cannot be combined", "keep one of them; only rename combines with mask or cast")
        if not (self.drop or self.mask or self.rename or self.cast):
            raise fail("the transform has no operation", f"give one operation: {TRANSFORM_FORMS}")
        return self

    def describe(self) -> str:
        """`mask hash`, `rename name`, `rename name, cast integer` or `drop`."""
        ops = [f"rename {self.rename}" if self.rename else "", f"mask {self.mask}" if self.mask else "",
               f"cast {self.cast}" if self.cast else "", "drop" if self.drop else ""]
        return ", ".join(op for op in ops if op)


class AddColumn(Strict):
    """A column the source does not have; every row gets the SQL literal `default` (NULL when absent)."""

    type: TypeText
    default: SqlLiteral | None = None


class TableRoute(Strict):
    """One source table moved to a service, optionally renamed, split, filtered and transformed."""

    source: SourceTable = Field(description="source table, `table` or `schema.table`")
    name: PgName | None = Field(None, description="target table name (default: the source name)")
    columns: list[PgName] | None = Field(None, min_length=1)
    filter: SqlText | None = None
    uuid_key: bool = False
    transforms: dict[PgName, Transform] = Field(default_factory=dict)
    add_columns: dict[PgName, AddColumn] = Field(default_factory=dict)
    custom: CustomRef | None = None
    references: dict[PgName, RefTarget] = Field(default_factory=dict)
    watermark: PgName | None = None
    chunk_rows: int | None = Field(None, ge=MIN_CHUNK_ROWS, le=MAX_CHUNK_ROWS)
    expectations: JsonPath | None = None
    max_rejected_rows: int | None = Field(None, ge=0, le=MAX_REJECTED_ROWS)

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"source": value}
        if not isinstance(value, dict):
            raise fail("a table entry must be a table name or a mapping",
                       "write `users`, `schema.users` or {source: schema.users, name: new_name}")
        return value

    @property
    def source_schema(self) -> str | None:
        return self.source.split(".", 1)[0] if "." in self.source else None

    @property
    def source_table(self) -> str:
        return self.source.split(".", 1)[1] if "." in self.source else self.source

    @property
    def target_name(self) -> str:
        return self.name or self.source_table

    @property
    def referenced_services(self) -> tuple[str, ...]:
        """Services whose tables this route's references point at, in reference order."""
        return tuple(dict.fromkeys(ref.split(".", 1)[0] for ref in self.references.values()))

    def target_column(self, source_column: str) -> str | None:
        """The target name of a source column: renamed, same, or None when dropped."""
        transform = self.transforms.get(source_column)
        if transform is None:
            return source_column
        return None if transform.drop else transform.rename or source_column
