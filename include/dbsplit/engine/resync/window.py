"""Step 1's window: the source rows changed since the last resync, by the table's watermark column."""

from __future__ import annotations

from psycopg import sql

from dbsplit.engine.migrate import arrow_io
from dbsplit.engine.resync.context import TableRun
from dbsplit.engine.resync.sql_parts import scalar
from dbsplit.errors import DbsplitError

_TIME_TYPES = ("timestamp", "date")
_INT_TYPES = ("smallint", "integer", "bigint")


def watermark_type(run: TableRun, wm: str) -> tuple[str, bool]:
    """The watermark column's source type, and whether it is a time (else an integer)."""
    wtype = run.types.get(wm)
    if wtype is None:
        raise DbsplitError(f"{run.name}: watermark column {wm!r} is not in the source table")
    base = wtype.split("(")[0].strip()
    is_time = base.startswith(_TIME_TYPES)
    if not is_time and base not in _INT_TYPES:
        raise DbsplitError(f"{run.name}: watermark column {wm} has type {wtype}; "
                           "a timestamp, date or integer is needed")
    return wtype, is_time


def window(run: TableRun) -> tuple[sql.Composable | None, str | None, str | None]:
    """(condition on the source, watermark before, watermark after) of the rows changed since the
    last resync; condition None = every row."""
    wm = run.table.watermark
    before = run.st.watermark
    if not wm:
        return None, None, None
    wtype, is_time = watermark_type(run, wm)
    col = sql.Identifier(wm)
    with arrow_io.text_settings(run.src, {"TimeZone": "UTC"}):
        if before is None:
            after = scalar(run.src, sql.SQL("SELECT max({})::text FROM {}").format(col, run.source_rel))
        else:
            after = scalar(run.src, sql.SQL("SELECT greatest(max({}), CAST({} AS {}))::text FROM {}").format(
                col, sql.Literal(before), sql.SQL(wtype), run.source_rel))
    if before is None:
        return None, None, after
    # the text carries its offset
    cutoff: sql.Composable = sql.SQL("CAST({} AS {})").format(sql.Literal(before), sql.SQL(wtype))
    if is_time and run.overlap:
        cutoff = sql.SQL("({} - CAST({} AS interval))").format(
            cutoff, sql.Literal(f"{run.overlap.total_seconds()} seconds"))
    return sql.SQL("{} > {}").format(col, cutoff), before, after
