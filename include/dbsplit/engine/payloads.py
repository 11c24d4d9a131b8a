"""The typed values a migrate DAG's tasks pass each other (Airflow XCom): the service a task works
for, a chunk to load, a chunk extracted or transformed, a chunk loaded.

pydantic models, crossed at the task boundary: a task's callable receives JSON (what XCom and the
DAG's arguments carry), runtime validates it into a model (`of`), works with attributes, and returns
`dump()`, JSON again. The JSON keeps the shape the tasks always exchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:   # imported where used: the DAG file builds a ServiceRef at parse time, without psycopg
    from dbsplit.engine.migrate.chunks import Chunk
    from dbsplit.model.resolved import ResolvedTable

M = TypeVar("M", bound="Payload")


class Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @classmethod
    def of(cls: type[M], value: M | Mapping[str, Any]) -> M:
        """The model of a task argument (its JSON form, or the model itself)."""
        return value if isinstance(value, cls) else cls.model_validate(value)

    def dump(self) -> dict[str, Any]:
        """The JSON form (XCom)."""
        return self.model_dump(mode="json")


class TableRef(Payload):
    """A table the DAG knows at parse time (a static task group)."""

    group_id: str
    source_schema: str
    source_table: str
    target_schema: str
    target_table: str

    @property
    def name(self) -> str:
        return f"{self.target_schema}.{self.target_table}"


class ServiceRef(Payload):
    """The service every task of its DAG works for: connections, the plan file, the static tables."""

    dag_id: str
    service: str
    plan: str
    plan_path: str
    source_conn_id: str
    target_conn_id: str
    tables: list[TableRef]


class ChunkTask(Payload):
    """One chunk of a table's load: its key range, its load, whether an earlier run loaded it."""

    model_config = ConfigDict(frozen=True, extra="ignore")   # chunk plans stored by an earlier version may hold more

    index: int
    count: int
    kind: str
    lo: list[Any] | None = None      # key texts (or a block number for ctid), as Chunk
    hi: list[Any] | None = None
    load_id: int
    done: bool
    table: dict[str, Any]          # ResolvedTable.as_dict(): the table as resolved when the load was planned
    checksum_method: str | None = None
    label: str

    def chunk(self) -> Chunk:
        from dbsplit.engine.migrate.chunks import Chunk

        return Chunk(self.index, self.count, self.kind, tuple(self.lo) if self.lo is not None else None,
                     tuple(self.hi) if self.hi is not None else None)

    def resolved(self) -> ResolvedTable:
        from dbsplit.model.resolved import ResolvedTable

        return ResolvedTable.from_dict(self.table)


class StagedChunk(Payload):
    """A chunk after extract (and after transform): its staging file, or skipped (loaded earlier)."""

    chunk: ChunkTask
    label: str
    skipped: bool
    path: str | None = None
    rows: int | None = None
    source_rows: int | None = None       # rows read from the source, when the file holds fewer (transformed)
    source_checksum: str | None = None

    def dump(self) -> dict[str, Any]:
        """The JSON form, without the fields that do not apply (a skipped chunk has no file)."""
        return self.model_dump(mode="json", exclude_none=True)


class LoadedChunk(Payload):
    label: str
    skipped: bool
    rows: int
    rejects: int | None = None

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)
