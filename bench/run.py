"""`make bench`: dbsplit's data movement against raw binary COPY, measured in one run on one server.

    BENCH_ROWS=1000000 .venv/bin/python bench/run.py        (also run with BENCH_ROWS=5000000)

Prints, for the same 10-column source table (see bench/transform_path.py): raw binary COPY source ->
target (the baseline), dbsplit pass-through (chunked binary COPY through staging files, with the
source checksum taken in parallel), dbsplit with transforms (UUID key, two UUID references, a rename,
a cast, a masked column), the naive pandas read_sql/to_sql path on fewer rows, and dlt when it is
installed; each with seconds, rows/s, ratio to the baseline and the peak RSS of the process doing the
work (every path runs in its own child process), and the validation time next to the load time.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dag_paths  # noqa: E402  (one table moved as the service DAG moves it)
import transform_path as tp  # noqa: E402  (the shared bench table)

CHUNK_ROWS = int(os.environ.get("BENCH_CHUNK_ROWS", "100000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "2"))
PANDAS_ROWS = int(os.environ.get("BENCH_PANDAS_ROWS", "50000"))


STAGING, STAGED = "_dbsplit_staging", "public.orders_pt"   # where the pass-through child loads
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
COLS = ["id", "user_id", "company_id", "title", "email", "amount", "created_at", "payload", "active", "note"]


def _passthrough_table():
    from dbsplit.model.resolved import ColumnMap, ResolvedTable

    types = ["bigint", "bigint", "bigint", "text", "character varying(200)", "numeric(12,2)",
             "timestamp with time zone", "jsonb", "boolean", "text"]
    cols = tuple(ColumnMap(c, t, c in ("id", "user_id", "title"), "copy", (c,)) for c, t in zip(COLS, types))
    return ResolvedTable("bench", "public", "orders", "public", "orders_pt", cols, ("id",), ("id",))


def child_passthrough(src: str, dst: str, chunk_rows: int) -> dict:
    """The service DAG on the table without transforms (bench/dag_paths.py)."""
    return dag_paths.run_table(src, dst, _passthrough_table(), chunk_rows, WORKERS)


def child_transformed(src: str, dst: str, chunk_rows: int) -> dict:
    """The service DAG on the table with transforms (bench/transform_path.py's table)."""
    return dag_paths.run_table(src, dst, tp.resolved_table(), chunk_rows, WORKERS)


def child_validate(src: str, dst: str, chunk_rows: int) -> dict:
    """The validate task's work on the pass-through staging table: the chunk checksums in one scan
    side by side with the GX checks (as runtime.validate runs them). GX's import, paid once by each
    task process whatever the table's size, is timed apart."""
    t = time.perf_counter()
    from dbsplit.engine.verify.gx_checks import validate_table
    import great_expectations  # noqa: F401

    gx_import = time.perf_counter() - t
    from dbsplit.engine.migrate.chunks import plan_chunks
    from dbsplit.pg.copy import source_connection
    from dbsplit.engine.verify import checksums

    with source_connection(src) as s, s.transaction():
        chunks = plan_chunks(s, "public", "orders", ["id"], ["bigint"], chunk_rows)
    relation = sql.Identifier(STAGING, STAGED)

    def checksum() -> float:
        start = time.perf_counter()
        with psycopg.connect(dst) as d:
            method = checksums.method_for(d)
            exprs = checksums.hash_columns(d, relation, COLS) if method == checksums.HASH64 else checksums.columns(COLS)
            checksums.checksums_by_chunk(d, relation, exprs, chunks, ["id"], method)
        return time.perf_counter() - start

    expected = _count(dst)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(1) as pool:
        fut = pool.submit(checksum)
        t1 = time.perf_counter()
        result = validate_table(dst, STAGING, STAGED, expected_rows=expected,
                                key_columns=["id"], not_null_columns=["id", "user_id", "title"])
        gx = time.perf_counter() - t1
        checksum_seconds = fut.result()
    return {"seconds": time.perf_counter() - t0, "rows": expected, "ok": result.success,
            "steps": {"checksums": checksum_seconds, "gx": gx, "gx_import": gx_import}}


def _count(dst: str) -> int:
    with psycopg.connect(dst) as d:
        return d.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(STAGING, STAGED))).fetchone()[0]


def child_pandas(src: str, dst: str, rows: int) -> dict:
    """The naive path: pandas read_sql + to_sql(method="multi"), on fewer rows."""
    import pandas as pd
    import sqlalchemy

    from dbsplit.pg.conn import sqlalchemy_url

    se, de = sqlalchemy.create_engine(sqlalchemy_url(src)), sqlalchemy.create_engine(sqlalchemy_url(dst))
    with de.begin() as c:
        c.exec_driver_sql("DROP TABLE IF EXISTS orders_pandas")
    t0 = time.perf_counter()
    df = pd.read_sql(f"SELECT id, user_id, company_id, title, email, amount, created_at, payload::text AS payload, "
                     f"active, note FROM orders ORDER BY id LIMIT {int(rows)}", se)
    df.to_sql("orders_pandas", de, index=False, method="multi", chunksize=5000)
    return {"seconds": time.perf_counter() - t0, "rows": len(df)}


def child_dlt(src: str, dst: str, rows: int) -> dict:
    import dlt  # noqa: F401  (only measured when installed)

    raise SystemExit("dlt measurement not implemented for this machine")


CHILDREN = {"raw": tp.child_raw, "passthrough": child_passthrough, "transformed": child_transformed,
            "validate": child_validate, "pandas": child_pandas, "dlt": child_dlt}


def run_child(kind: str, src: str, dst: str, arg: int) -> dict | None:
    out = subprocess.run([sys.executable, __file__, "--child", kind, src, dst, str(arg)], capture_output=True, text=True)
    if out.returncode:
        print(f"  {kind}: failed: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}")
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def dlt_installed() -> bool:
    return subprocess.run([sys.executable, "-c", "import dlt"], capture_output=True).returncode == 0


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, src, dst, arg = sys.argv[2:6]
        result = CHILDREN[kind](src, dst, int(arg))
        result["peak_rss_mb"] = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                                    result.pop("worker_peak_rss_mb", 0))
        print(json.dumps(result, default=str))
        return
    rows = int(os.environ.get("BENCH_ROWS", "1000000"))
    with tempfile.TemporaryDirectory(prefix="dbsplit-bench-") as tmp:
        server, pgdata = tp.server_url(Path(tmp))
        try:
            src, dst = tp.prepare(server, rows)
            print(f"dbsplit bench: {rows:,} rows, chunks of {CHUNK_ROWS:,}, server {server.split('?')[0]}", flush=True)
            results: dict[str, dict | None] = {}
            for _ in range(REPEAT):   # interleaved, best of REPEAT: the paths share the machine's noise
                for kind, arg in [("raw", rows), ("passthrough", CHUNK_ROWS), ("transformed", CHUNK_ROWS)]:
                    r = run_child(kind, src, dst, arg)
                    if r is not None and (results.get(kind) is None or r["seconds"] < results[kind]["seconds"]):
                        results[kind] = r
            for kind, arg in [("validate", CHUNK_ROWS), ("pandas", PANDAS_ROWS)] + ([("dlt", rows)] if dlt_installed() else []):
                results[kind] = run_child(kind, src, dst, arg)
            report(results, rows)
        finally:
            if pgdata is not None:
                from dbsplit.local import embedded

                embedded.stop(pgdata)


def report(results: dict, rows: int) -> None:
    raw = results["raw"]
    base = raw["rows"] / raw["seconds"]
    labels = {"raw": "raw binary COPY (baseline)", "passthrough": f"dbsplit, no transforms ({WORKERS} workers)",
              "transformed": f"dbsplit, with transforms ({WORKERS} workers)", "validate": "dbsplit validation (checksums + GX)",
              "pandas": f"pandas read_sql/to_sql ({PANDAS_ROWS:,} rows)", "dlt": "dlt sql_database"}
    print(f"\n| path | seconds | rows/s | ratio to raw COPY | peak RSS MB |\n|---|---|---|---|---|")
    for kind, r in results.items():
        if r is None:
            continue
        rate = r["rows"] / r["seconds"]
        print(f"| {labels[kind]} | {r['seconds']:.2f} | {rate:,.0f} | {rate / base:.2f}x | {r['peak_rss_mb']:.0f} |")
    if not dlt_installed():
        print("| dlt sql_database | not installed | | | |")
    load = results.get("passthrough")
    val = results.get("validate")
    if load and val:
        steps = val["steps"]
        print(f"\nload {load['seconds']:.2f} s (keys built and ANALYZE after the load: {load['steps']['keys']:.2f} s); "
              f"validation {val['seconds']:.2f} s = {val['seconds'] / load['seconds']:.0%} of the load "
              f"(checksums {steps['checksums']:.2f} s side by side with GX {steps['gx']:.2f} s), "
              f"plus importing GX once per task process: {steps['gx_import']:.2f} s")


if __name__ == "__main__":
    main()
