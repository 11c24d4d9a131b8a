"""Benchmark: the transformed path (extract_chunk -> transform_chunk -> load_chunk) against raw binary COPY.

    .venv/bin/python bench/transform_path.py [--rows 1000000] [--chunk-rows 100000] [--repeat 2]

Source table (1M rows by default, 10 columns): bigint key, two bigint FKs, text, varchar email,
numeric(12,2), timestamptz, jsonb, boolean, nullable text. Transforms: uuid_key on the key,
uuid_ref on both FKs, a rename, a cast (numeric(12,2) -> integer) and a mask_hash.

Every measurement runs in its own child process (so that each peak RSS is its own) and all of them
in the same run, on the same server: $DBSPLIT_BENCH_PG_URL, else $DBSPLIT_PG_URL, else an embedded
PostgreSQL 18 in a temporary directory. Prints seconds, rows/s, the ratio to raw binary COPY, peak RSS.
`--adbc` also measures ADBC (adbc-driver-postgresql must be importable) for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

SRC_DB, DST_DB = "dbsplit_bench_src", "dbsplit_bench_dst"
SOURCE_DDL = """
CREATE TABLE orders (
  id bigint PRIMARY KEY, user_id bigint NOT NULL, company_id bigint, title text NOT NULL,
  email varchar(200), amount numeric(12,2), created_at timestamptz, payload jsonb, active boolean, note text)
"""
FILL = """
INSERT INTO orders SELECT g, (g::bigint * 7919) % 100000, CASE WHEN g % 10 = 0 THEN NULL ELSE (g::bigint * 31) % 5000 END,
  'Order title number ' || g || ' with some words, "quotes" and ümlauts',
  'user' || g || '@example.com', (g % 100000) / 100.0, timestamptz '2020-01-01 00:00:00+00' + g * interval '37 seconds',
  jsonb_build_object('k', g, 'tags', jsonb_build_array('a', 'b'), 's', 'x' || g),
  g % 3 = 0, CASE WHEN g % 4 = 0 THEN NULL WHEN g % 4 = 1 THEN '' ELSE 'note ' || g END
FROM generate_series(1, {rows}) g
"""
RAW_TARGET = SOURCE_DDL.replace("orders", "orders_raw")
T_TARGET = """
CREATE TABLE orders_t (
  id uuid PRIMARY KEY, user_id uuid NOT NULL, company_id uuid, name text NOT NULL,
  email text, amount integer, created_at timestamptz, payload jsonb, active boolean, note text)
"""


def resolved_table():
    from dbsplit.model.resolved import ColumnMap, ResolvedTable

    cols = (
        ColumnMap("id", "uuid", True, "uuid_key", ("id",)),
        ColumnMap("user_id", "uuid", True, "uuid_ref", ("user_id",), "public.users"),
        ColumnMap("company_id", "uuid", False, "uuid_ref", ("company_id",), "public.companies"),
        ColumnMap("name", "text", True, "copy", ("title",)),
        ColumnMap("email", "text", False, "mask_hash", ("email",)),
        ColumnMap("amount", "integer", False, "cast", ("amount",)),
        ColumnMap("created_at", "timestamp with time zone", False, "copy", ("created_at",)),
        ColumnMap("payload", "jsonb", False, "copy", ("payload",)),
        ColumnMap("active", "boolean", False, "copy", ("active",)),
        ColumnMap("note", "text", False, "copy", ("note",)),
    )
    return ResolvedTable("bench", "public", "orders", "public", "orders_t", cols, ("id",), ("id",))


def server_url(tmp: Path) -> tuple[str, Path | None]:
    url = os.environ.get("DBSPLIT_BENCH_PG_URL") or os.environ.get("DBSPLIT_PG_URL")
    if url:
        return url, None
    from dbsplit.local import embedded

    pgdata = tmp / "pg"
    return embedded.start(pgdata), pgdata


def prepare(server: str, rows: int) -> tuple[str, str]:
    from dbsplit.pg.conn import with_dbname

    with psycopg.connect(server, autocommit=True) as conn:
        existing = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
        for db in (SRC_DB, DST_DB):
            if db not in existing:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    src, dst = with_dbname(server, SRC_DB), with_dbname(server, DST_DB)
    with psycopg.connect(src, autocommit=True) as conn:
        have = conn.execute("SELECT to_regclass('public.orders') IS NOT NULL").fetchone()[0]
        if not have or conn.execute("SELECT count(*) FROM orders").fetchone()[0] != rows:
            conn.execute("DROP TABLE IF EXISTS orders")
            conn.execute(SOURCE_DDL)
            conn.execute(FILL.replace("{rows}", str(int(rows))))
            conn.execute("VACUUM ANALYZE orders")
    with psycopg.connect(dst, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS orders_raw, orders_t, orders_adbc")
        conn.execute(RAW_TARGET)
        conn.execute(T_TARGET)
        conn.execute(T_TARGET.replace("orders_t", "orders_adbc"))
    return src, dst


# ----------------------------------------------------------------------------------------- children


def raw_copy(src: str, dst: str, source: str, target: str) -> float:
    """Seconds of one raw binary COPY stream from the source table into the (empty) target table."""
    from dbsplit.pg.copy import source_connection

    with source_connection(src) as s, psycopg.connect(dst) as d:
        t0 = time.perf_counter()
        with s.cursor() as sc, d.cursor() as dc:
            with sc.copy(sql.SQL("COPY {} TO STDOUT (FORMAT binary)").format(sql.Identifier(source))) as cin, \
                    dc.copy(sql.SQL("COPY {} FROM STDIN (FORMAT binary)").format(sql.Identifier(target))) as cout:
                for block in cin:
                    cout.write(block)
        d.commit()
        s.rollback()
        return time.perf_counter() - t0


def child_raw(src: str, dst: str, _chunk: int) -> dict:
    with psycopg.connect(dst, autocommit=True) as d:
        d.execute("TRUNCATE orders_raw")
    seconds = raw_copy(src, dst, "orders", "orders_raw")
    with psycopg.connect(dst) as d:
        return {"seconds": seconds, "rows": d.execute("SELECT count(*) FROM orders_raw").fetchone()[0]}


def child_transformed(src: str, dst: str, chunk: int) -> dict:
    from dbsplit.pg.copy import source_connection
    from dbsplit.engine.migrate.transform import extract_chunk, load_chunk, transform_chunk

    table = resolved_table()
    ns = uuid.uuid5(uuid.NAMESPACE_URL, "dbsplit:bench")
    steps = {"extract": 0.0, "transform": 0.0, "load": 0.0}
    rows = rejects = 0
    with tempfile.TemporaryDirectory() as tmp, source_connection(src) as s, psycopg.connect(dst) as d:
        d.execute("TRUNCATE orders_t")
        d.commit()
        lo, hi = s.execute("SELECT min(id), max(id) FROM orders").fetchone()
        s.rollback()
        a, b = Path(tmp) / "extract.arrow", Path(tmp) / "load.arrow"
        t0 = time.perf_counter()
        with s.transaction():
            for start in range(lo, hi + 1, chunk):
                where = sql.SQL("id >= {} AND id < {}").format(start, start + chunk)
                t = time.perf_counter()
                extract_chunk(s, table, where, a)
                steps["extract"] += time.perf_counter() - t
                t = time.perf_counter()
                transform_chunk(a, b, table, ns, b"bench-salt")
                steps["transform"] += time.perf_counter() - t
                t = time.perf_counter()
                stats = load_chunk(d, "public", "orders_t", table, b)
                steps["load"] += time.perf_counter() - t
                rows += stats.rows
                rejects += len(stats.rejects)
        d.commit()
        return {"seconds": time.perf_counter() - t0, "rows": rows, "rejects": rejects, "steps": steps}


def child_adbc(src: str, dst: str, _chunk: int) -> dict:
    """ADBC read into Arrow (typed), the same transforms, adbc_ingest (for comparison only)."""
    import adbc_driver_postgresql.dbapi as adbc
    import pyarrow as pa
    import pyarrow.compute as pc

    from dbsplit.pg.conn import conninfo_to_dict
    from dbsplit.engine.migrate import arrow_io

    def uri(conninfo: str) -> str:
        p = conninfo_to_dict(conninfo)
        host = p.get("host", "")
        return f"postgresql://{p.get('user', 'postgres')}@/{p['dbname']}?host={host}" if host.startswith("/") \
            else f"postgresql://{p.get('user', 'postgres')}@{host}:{p.get('port', 5432)}/{p['dbname']}"

    ns = uuid.uuid5(uuid.NAMESPACE_URL, "dbsplit:bench")
    with psycopg.connect(dst, autocommit=True) as d:
        d.execute("TRUNCATE orders_adbc")
    t0 = time.perf_counter()
    with adbc.connect(uri(src)) as s, s.cursor() as cur:
        cur.execute("SELECT id::text, user_id::text, company_id::text, title, email::text, amount::integer, created_at,"
                    " payload::text, active, note FROM orders")
        t = cur.fetch_arrow_table()
    read = time.perf_counter() - t0
    out = pa.table({
        "id": arrow_io.uuid5_text(t.column(0), ns, "public.orders:"),
        "user_id": arrow_io.uuid5_text(t.column(1), ns, "public.users:"),
        "company_id": arrow_io.uuid5_text(t.column(2), ns, "public.companies:"),
        "name": t.column(3), "email": arrow_io.sha256_hex(t.column(4), b"bench-salt"),
        "amount": t.column(5), "created_at": t.column(6), "payload": t.column(7), "active": t.column(8),
        "note": t.column(9)})
    # uuid text and json text must reach typed columns: ingest into a staging table, then INSERT SELECT
    with adbc.connect(uri(dst)) as d, d.cursor() as cur:
        cur.adbc_ingest("orders_adbc_stage", out.cast(pa.schema([
            (f.name, pa.string() if pa.types.is_large_string(f.type) else f.type) for f in out.schema])),
            mode="replace")
        cur.execute("INSERT INTO orders_adbc SELECT id::uuid, user_id::uuid, company_id::uuid, name, email, amount,"
                    " created_at, payload::jsonb, active, note FROM orders_adbc_stage")
        cur.execute("DROP TABLE orders_adbc_stage")
        d.commit()
    _ = pc
    return {"seconds": time.perf_counter() - t0, "rows": t.num_rows, "steps": {"read": read}}


CHILDREN = {"raw": child_raw, "transformed": child_transformed, "adbc": child_adbc}


def run_child(kind: str, src: str, dst: str, chunk: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, src, dst, str(chunk)],
                         capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{kind} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, src, dst, chunk = sys.argv[2:6]
        result = CHILDREN[kind](src, dst, int(chunk))
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--chunk-rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--adbc", action="store_true", help="also measure ADBC read + adbc_ingest")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="dbsplit-bench-") as tmp:
        server, pgdata = server_url(Path(tmp))
        try:
            src, dst = prepare(server, args.rows)
            kinds = [("raw", args.rows), ("transformed", args.rows), ("transformed", args.chunk_rows)]
            if args.adbc:
                kinds.append(("adbc", args.rows))
            best: dict[tuple[str, int], dict] = {}
            for i in range(args.repeat):
                for kind, chunk in kinds:
                    r = run_child(kind, src, dst, chunk)
                    label = f"{kind} (chunks of {chunk:,} rows)" if kind == "transformed" else kind
                    steps = " ".join(f"{k}={v:.2f}s" for k, v in r.get("steps", {}).items())
                    print(f"run {i + 1} {label:38} {r['seconds']:6.2f} s {r['rows'] / r['seconds']:>10,.0f} rows/s"
                          f"  peak RSS {r['peak_rss_mb']:5.0f} MB  {steps}", flush=True)
                    if (kind, chunk) not in best or r["seconds"] < best[(kind, chunk)]["seconds"]:
                        best[(kind, chunk)] = r
            raw = best[("raw", args.rows)]
            print(f"\nbest of {args.repeat}, {args.rows:,} rows:")
            for (kind, chunk), r in best.items():
                label = f"{kind} (chunks of {chunk:,} rows)" if kind == "transformed" else kind
                print(f"  {label:38} {r['seconds']:6.2f} s {r['rows'] / r['seconds']:>10,.0f} rows/s"
                      f"  {raw['seconds'] / r['seconds']:.2f}x raw binary COPY  peak RSS {r['peak_rss_mb']:.0f} MB")
        finally:
            if pgdata is not None:
                from dbsplit.local import embedded

                embedded.stop(pgdata)


if __name__ == "__main__":
    main()
