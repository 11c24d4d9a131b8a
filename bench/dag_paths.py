"""One table moved the way the service DAG moves it, for the benchmarks (bench/run.py, bench/resync.py).

The staging table is created as prepare/plan_chunks create it (keys deferred when
ResolvedTable.keys_follow_source allows), each chunk's extract, transform and load tasks run on `workers`
parallel processes (mapped tasks run in parallel), then validate's first step builds the deferred
keys and runs ANALYZE. Timed from the chunk plan to the end of that step.
"""

from __future__ import annotations

import multiprocessing
import resource
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "dbsplit:bench")
SALT = b"bench-salt"


def passthrough_chunk(src: str, dst: str, table: Any, chunk: Any, tmp: str) -> int:
    """runtime.extract then runtime.load for a pass-through chunk: binary COPY into a staging file while a
    second session checksums the same snapshot (engine.migrate.passthrough, the extract task's body), then
    the file into the staging table."""
    from dbsplit.engine.migrate.chunks import chunk_where
    from dbsplit.engine.migrate.passthrough import extract_passthrough
    from dbsplit.engine.verify import checksums
    from dbsplit.pg import copy
    from dbsplit.pg.staging import STAGING, side_name

    cols = [m.target for m in table.columns]
    where = chunk_where(chunk, list(table.source_key))
    path = Path(tmp) / f"chunk-{chunk.index:05d}.pgcopy"
    with copy.source_connection(src) as s, s.transaction():
        extract_passthrough(s, src, table, where, path, checksums.method_for(s))
    with psycopg.connect(dst) as d, d.transaction():
        rows = copy.load_from_file(d, STAGING, side_name(table.target_schema, table.target_table), cols, path).rows
    path.unlink()
    return rows


def transformed_chunk(src: str, dst: str, table: Any, chunk: Any, tmp: str) -> int:
    """runtime.extract, transform and load for a chunk of a table with transforms."""
    from dbsplit.engine.migrate.chunks import chunk_where
    from dbsplit.engine.migrate.transform import extract_chunk, load_chunk, transform_chunk
    from dbsplit.pg.copy import source_connection
    from dbsplit.pg.staging import STAGING, side_name

    a, b = Path(tmp) / f"chunk-{chunk.index:05d}.extract", Path(tmp) / f"chunk-{chunk.index:05d}.load"
    with source_connection(src) as s, s.transaction():
        extract_chunk(s, table, chunk_where(chunk, list(table.source_key)), a)
    transform_chunk(a, b, table, NAMESPACE, SALT)
    a.unlink()
    with psycopg.connect(dst) as d, d.transaction():
        rows = load_chunk(d, STAGING, side_name(table.target_schema, table.target_table), table, b).rows
    b.unlink()
    return rows


def _chunk_task(args: tuple) -> tuple[int, int]:
    src, dst, table, chunk, tmp = args
    from dbsplit.engine.migrate.chunks import Chunk
    from dbsplit.model.resolved import ResolvedTable

    rt, c = ResolvedTable.from_dict(table), Chunk.from_dict(chunk)
    rows = (passthrough_chunk if rt.passthrough else transformed_chunk)(src, dst, rt, c, tmp)
    return rows, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_table(src: str, dst: str, table: Any, chunk_rows: int, workers: int) -> dict:
    """Move one table into its staging table as the DAG does; seconds, rows, chunks, peak RSS of a worker."""
    from dbsplit.engine.migrate.chunks import plan_chunks
    from dbsplit.pg import catalog, copy, staging

    t0 = time.perf_counter()
    with copy.source_connection(src) as s, s.transaction():
        info = catalog.read_table(s, table.source_schema, table.source_table)
        key_types = [next(c.type_sql for c in info.columns if c.name == k) for k in table.source_key]
        chunks = plan_chunks(s, table.source_schema, table.source_table, list(table.source_key), key_types, chunk_rows)
    with psycopg.connect(dst) as d, d.transaction():
        staging.create_staging_table(d, info, table, defer_indexes=table.keys_follow_source)
    rows = peak = 0
    with tempfile.TemporaryDirectory() as tmp, multiprocessing.get_context("fork").Pool(workers) as pool:
        tasks = [(src, dst, table.as_dict(), c.as_dict(), tmp) for c in chunks]
        for n, rss in pool.imap_unordered(_chunk_task, tasks):
            rows, peak = rows + n, max(peak, rss)
    t1 = time.perf_counter()
    with psycopg.connect(dst) as d, d.transaction():
        staging.build_deferred_indexes(d, table.target_schema, table.target_table)
    staging.analyze(dst, table.target_schema, table.target_table)
    done = time.perf_counter()
    return {"seconds": done - t0, "rows": rows, "chunks": len(chunks), "worker_peak_rss_mb": peak / 1024,
            "steps": {"chunks": t1 - t0, "keys": done - t1}}
