"""The extract stage of the pass-through path: one chunk as raw binary COPY into a staging file, while a
second session checksums the same rows on the exported snapshot, in parallel with the COPY.

The body of the service DAG's extract task for pass-through tables (airflow/runtime.py) and of the
benchmarks (bench/dag_paths.py).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
from psycopg import sql

from dbsplit.engine.verify import checksums
from dbsplit.model.resolved import ResolvedTable
from dbsplit.model.sql_fragments import filter_sql
from dbsplit.pg import copy


def with_filter(where: sql.Composable | None, row_filter: str | None) -> sql.Composable | None:
    """The chunk condition ANDed with the plan's row filter (one expression, once the parser accepted it)."""
    if not row_filter:
        return where
    flt = filter_sql(row_filter)
    return flt if where is None else sql.SQL("{} AND {}").format(where, flt)


def extract_passthrough(src: psycopg.Connection, source: str, table: ResolvedTable, where: sql.Composable | None,
                        path: Path, method: str = checksums.MD5) -> tuple[copy.CopyResult, checksums.Checksum]:
    """COPY the chunk (where AND table.filter) of the source table into path; its checksum by `method`.

    src: a source connection inside its read-only snapshot transaction; source: its conninfo, for the
    checksum session. The caller compares the two row counts.
    """
    where = with_filter(where, table.filter)
    cols = [m.target for m in table.columns]
    query = copy.select_sql(table.source_schema, table.source_table, cols)
    if where is not None:
        query = sql.SQL("{} WHERE {}").format(query, where)
    relation = sql.Identifier(table.source_schema, table.source_table)
    exprs = checksums.hash_columns(src, relation, cols) if method == checksums.HASH64 else checksums.columns(cols)
    snapshot = copy.export_snapshot(src)
    with ThreadPoolExecutor(1) as pool:
        checksum = pool.submit(copy.in_snapshot, source, snapshot, lambda c: checksums.chunk_checksum(
            c, relation, exprs, where, method))
        result = copy.extract_to_file(src, query, path)
        source_checksum = checksum.result()
    return result, source_checksum
