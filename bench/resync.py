"""Benchmark: incremental resync of 1% changed rows against a full load of the same table.

    .venv/bin/python bench/resync.py [--rows 1000000] [--changes 0.01] [--repeat 3] [--transformed] [--checkpoint]

Source table `events` (1M rows by default, 10 columns, about 200 bytes a row): bigint key, bigint,
text, text, numeric(12,2), jsonb, boolean, nullable text, timestamptz and the watermark updated_at
(timestamptz, indexed: an incremental sync reads it by range).

1. full loads, each timed twice: raw binary COPY of the whole table from the source into the target
   table (with its primary key), one stream: the floor of what a full reload costs; and dbsplit's own
   pass-through load, what rerunning the service DAG's load would cost (key-range chunks on 2 threads,
   each a binary COPY to a staging file while a second session checksums the chunk on the same
   snapshot, then the file into the staging table; deferred key and index built; promoted into place;
   the target-side validation a DAG run adds is NOT included, so this ratio is conservative). The
   resync target is the table of the last load;
2. install_change_tracking, then the first resync, which builds the key table (once per promotion);
3. `--repeat` times: change `--changes` of the rows in the source (updates with a new updated_at, plus
   a few inserts and deletes, 1% of the rows in all by default), time resync_table, and check that the
   target equals the source (row fingerprints of the whole table on both sides). Round i stamps its
   changes at random times during hour i from now, as if resyncs ran hourly: otherwise the 5-minute
   overlap would make each round re-read the whole round run seconds before it. With --checkpoint each
   round starts (untimed) after a read of every source row (see settle) and a CHECKPOINT, as a nightly
   resync does: the pages it changes were last written before the server's last checkpoint, so the
   first change of each page writes it whole to the WAL. Without it, rounds seconds apart often fall
   within one checkpoint cycle and skip that;
4. a resync with no source change (writes nothing).

Prints every time, the best and median resync, and resync / full load for each full load; also the WAL
the server wrote during each full load and each resync (source and target share the server: the
source's share during a resync is its hint bits, under 1 MB here) and how many of the target's heap
pages hold the rows a round changed (1% of the rows spread uniformly lie on a third of the pages).
With --transformed the same is run for a copy of the table whose key becomes a uuid_key UUID, one
column renamed and one cast (the transformed path and a mapped key table). Server:
$DBSPLIT_BENCH_PG_URL, else $DBSPLIT_PG_URL, else an embedded PostgreSQL 18 in a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transform_path import raw_copy, server_url  # noqa: E402  (the bench server, the raw COPY baseline)

SRC_DB, DST_DB = "dbsplit_bench_resync_src", "dbsplit_bench_resync_dst"
SOURCE_DDL = """
CREATE TABLE events (
  id bigint PRIMARY KEY, account_id bigint NOT NULL, kind text NOT NULL, title text, amount numeric(12,2),
  payload jsonb, active boolean, note text, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL);
CREATE INDEX events_updated_at ON events (updated_at);
"""
FILL = """
INSERT INTO events SELECT g, (g * 7919) % 100000, (ARRAY['click','view','buy','share'])[1 + g % 4],
  'Event title number ' || g || ' with some words', (g % 100000) / 100.0,
  jsonb_build_object('k', g, 'tags', jsonb_build_array('a', 'b'), 's', 'x' || g), g % 3 = 0,
  CASE WHEN g % 4 = 0 THEN NULL ELSE 'note ' || g END,
  now() - interval '60 days' + g * interval '1 second',
  now() - interval '30 days' + (g % 2000000) * interval '1 second'
FROM generate_series(1::bigint, {rows}::bigint) g
"""
TARGET_DDL = """
CREATE TABLE {name} (
  id bigint PRIMARY KEY, account_id bigint NOT NULL, kind text NOT NULL, title text, amount numeric(12,2),
  payload jsonb, active boolean, note text, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL)
"""
T_TARGET_DDL = """
CREATE TABLE events_t (
  id uuid PRIMARY KEY, account_id bigint NOT NULL, kind text NOT NULL, headline text, amount integer,
  payload jsonb, active boolean, note text, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL)
"""
COLUMNS = [("id", "bigint", True), ("account_id", "bigint", True), ("kind", "text", True), ("title", "text", False),
           ("amount", "numeric(12,2)", False), ("payload", "jsonb", False), ("active", "boolean", False),
           ("note", "text", False), ("created_at", "timestamp with time zone", True),
           ("updated_at", "timestamp with time zone", True)]
NS = uuid.uuid5(uuid.NAMESPACE_URL, "dbsplit:bench")
MB = 1024 * 1024
ROUND = 0   # rounds count on across runs: round i's changes happen in hour i (see change())


def passthrough_table():
    from dbsplit.model.resolved import ColumnMap, ResolvedTable

    cols = tuple(ColumnMap(n, t, nn, "copy", (n,)) for n, t, nn in COLUMNS)
    return ResolvedTable("bench", "public", "events", "public", "events", cols, ("id",), ("id",),
                         watermark="updated_at")


def transformed_table():
    from dbsplit.model.resolved import ColumnMap, ResolvedTable

    cols = []
    for n, t, nn in COLUMNS:
        if n == "id":
            cols.append(ColumnMap("id", "uuid", True, "uuid_key", ("id",)))
        elif n == "title":
            cols.append(ColumnMap("headline", "text", False, "copy", ("title",)))
        elif n == "amount":
            cols.append(ColumnMap("amount", "integer", False, "cast", ("amount",)))
        else:
            cols.append(ColumnMap(n, t, nn, "copy", (n,)))
    return ResolvedTable("bench", "public", "events", "public", "events_t", tuple(cols), ("id",), ("id",),
                         watermark="updated_at")


def prepare(server: str, rows: int) -> tuple[str, str]:
    from dbsplit.pg.conn import with_dbname

    with psycopg.connect(server, autocommit=True) as conn:
        for db in (SRC_DB, DST_DB):
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    src, dst = with_dbname(server, SRC_DB), with_dbname(server, DST_DB)
    with psycopg.connect(src, autocommit=True) as conn:
        conn.execute(SOURCE_DDL)
        conn.execute(FILL.replace("{rows}", str(int(rows))))
        conn.execute("VACUUM ANALYZE events")
    return src, dst


def full_load_raw(src: str, dst: str) -> float:
    """Raw binary COPY of the whole source table into a fresh target table with its primary key."""
    with psycopg.connect(dst, autocommit=True) as d:
        d.execute("DROP TABLE IF EXISTS events CASCADE")
        d.execute(TARGET_DDL.format(name="events"))
    return raw_copy(src, dst, "events", "events")


def full_load_dbsplit(src: str, dst: str, chunk_rows: int = 100_000, workers: int = 2) -> float:
    """dbsplit's pass-through load of the table (bench/dag_paths.py), promoted as public.events."""
    import dag_paths

    from dbsplit.pg import staging

    staged = staging.side_name("public", "events")
    with psycopg.connect(dst, autocommit=True) as d:
        d.execute("DROP TABLE IF EXISTS events CASCADE")
        d.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(staging.PREVIOUS, staged)))
    t0 = time.perf_counter()
    result = dag_paths.run_table(src, dst, passthrough_table(), chunk_rows, workers)
    with psycopg.connect(dst) as d, d.transaction():
        staging.promote(d, "public", "events")
    seconds = time.perf_counter() - t0
    with psycopg.connect(dst, autocommit=True) as d:
        count = d.execute("SELECT count(*) FROM events").fetchone()[0]
    if count != result["rows"]:
        sys.exit(f"dbsplit full load: {result['rows']} rows loaded, {count} in the table")
    return seconds


def full_load_transformed(src: str, dst: str, chunk: int = 100_000) -> float:
    """The transformed path (extract_chunk -> transform_chunk -> load_chunk) into events_t."""
    from dbsplit.pg.copy import source_connection
    from dbsplit.engine.migrate.transform import extract_chunk, load_chunk, transform_chunk

    table = transformed_table()
    with psycopg.connect(dst, autocommit=True) as d:
        d.execute("DROP TABLE IF EXISTS events_t CASCADE")
        d.execute(T_TARGET_DDL)
    with tempfile.TemporaryDirectory() as tmp, source_connection(src) as s, psycopg.connect(dst) as d:
        a, b = Path(tmp) / "e.arrow", Path(tmp) / "t.arrow"
        t0 = time.perf_counter()
        with s.transaction():
            lo, hi = s.execute("SELECT min(id), max(id) FROM events").fetchone()
            for start in range(lo, hi + 1, chunk):
                where = sql.SQL("id >= {} AND id < {}").format(start, start + chunk)
                extract_chunk(s, table, where, a)
                transform_chunk(a, b, table, NS, None)
                load_chunk(d, "public", "events_t", table, b)
        d.commit()
        return time.perf_counter() - t0


def wal_position(conninfo: str) -> int:
    """The server's current WAL write position, in bytes."""
    with psycopg.connect(conninfo, autocommit=True) as c:
        return int(c.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')").fetchone()[0])


def pages_holding(conninfo: str, table: str, key: str, ids: list[int]) -> tuple[int, int]:
    """(heap pages of table holding rows with these keys, heap pages of the table)."""
    with psycopg.connect(conninfo, autocommit=True) as c:
        held = c.execute(sql.SQL("SELECT count(DISTINCT (ctid::text::point)[0]) FROM {} WHERE {}::text = ANY(%s)").format(
            sql.Identifier(table), sql.Identifier(key)), ([str(i) for i in ids],)).fetchone()[0]
        total = c.execute("SELECT pg_relation_size(%s) / current_setting('block_size')::int",
                          (table,)).fetchone()[0]
        return held, total


def settle(src: str) -> None:
    """Read every source row by a sequential and by a key-index scan, as the monolith's own readers do
    between resyncs: their hint bits are set then, not by the resync (with data checksums, each page's
    first hint bits after a checkpoint are written to the WAL whole; source and target share the bench's
    server and its WAL)."""
    with psycopg.connect(src, autocommit=True) as c:
        c.execute("SELECT count(title) FROM events")
        c.execute("SET enable_seqscan = off")
        c.execute("SELECT count(*) FROM events WHERE id > 0")


def change(src: str, rows: int, fraction: float, round_no: int) -> dict[str, int]:
    """Change `fraction` of the rows: 98% of the changes are updates, 1% inserts, 1% deletes. The keys
    updated and deleted are returned under "ids"."""
    n = max(3, int(rows * fraction))
    inserts = deletes = max(1, n // 100)
    updates = n - inserts - deletes
    with psycopg.connect(src, autocommit=True) as c:
        c.execute("SELECT setseed(%s)", ((0.1 * round_no) % 1.0,))   # setseed takes [-1, 1]
        # round i's changes happen during hour i from now, spread over the hour: resyncs run on a schedule,
        # not seconds apart, and the 5-minute overlap re-reads only the previous hour's last minutes
        later = f"clock_timestamp() + ({round_no - 1} + random()) * interval '1 hour'"
        # a sample of about 1.5 times the rows wanted, then a random choice among them: a plain LIMIT would
        # take the first rows of the sample in physical order and so change the first pages only
        updated = c.execute("UPDATE events SET title = title || ' (edited)', amount = amount + 1, updated_at = " + later +
                  " WHERE id IN (SELECT id FROM events TABLESAMPLE BERNOULLI (%s) REPEATABLE (%s) ORDER BY random() LIMIT %s)"
                  " RETURNING id", (min(100.0, 150.0 * updates / rows), round_no, updates)).fetchall()
        deleted = c.execute("DELETE FROM events WHERE id IN (SELECT id FROM events TABLESAMPLE BERNOULLI (%s) REPEATABLE (%s)"
                  " WHERE updated_at < now() - interval '1 hour' ORDER BY random() LIMIT %s) RETURNING id",
                  (min(100.0, 150.0 * deletes / rows), round_no + 1000, deletes)).fetchall()
        top = c.execute("SELECT max(id) FROM events").fetchone()[0]
        c.execute("INSERT INTO events SELECT g, 1, 'buy', 'new ' || g, 1, NULL, true, NULL, clock_timestamp(), "
                  + later + " FROM generate_series(%s::bigint, %s::bigint) g", (top + 1, top + inserts))
    return {"updates": len(updated), "inserts": inserts, "deletes": len(deleted),
            "ids": [r[0] for r in updated + deleted]}


def table_fingerprint(conninfo: str, table: str, columns: list[str]) -> tuple[int, str]:
    from dbsplit.engine.verify import checksums

    with psycopg.connect(conninfo) as c:
        c.execute("SET TimeZone = 'UTC'")
        cs = checksums.chunk_checksum(c, sql.Identifier("public", table), checksums.columns(columns))
        return cs.rows, cs.total


def run(label: str, src: str, dst: str, table, loads, rows: int, fraction: float, repeat: int,
        check_equal: bool, checkpoint: bool = False) -> None:
    """loads: (name, function) of full loads to time, twice each; the last one populates the resync target."""
    from dbsplit.engine.resync.resync import install_change_tracking, resync_table

    fulls: dict[str, float] = {}
    full_wal: dict[str, int] = {}
    for load_name, load in loads:
        secs, wal = [], []
        for _ in range(2):
            at = wal_position(dst)
            secs.append(load(src, dst))
            wal.append(wal_position(dst) - at)
        fulls[load_name], full_wal[load_name] = min(secs), min(wal)
        print(f"[{label}] full load, {load_name}: {' / '.join(f'{s:.2f} s' for s in secs)}"
              f"  ({rows / min(secs):,.0f} rows/s; WAL {min(wal) / MB:,.0f} MB)", flush=True)
    install_change_tracking(dst, table)
    first = resync_table(src, dst, table, namespace=NS, salt=None, run_id="bench-0")
    print(f"[{label}] first resync (builds the key table, once per promotion): {first.seconds:.2f} s, "
          f"{first.upserted} upserted, {first.deleted} deleted", flush=True)
    times, wals = [], []
    for _ in range(repeat):
        global ROUND
        ROUND += 1
        i = ROUND
        counts = change(src, rows, fraction, i)
        ids = counts.pop("ids")
        held, pages = pages_holding(dst, table.target_table, table.key[0], ids) if table.passthrough else (None, None)
        if checkpoint:
            settle(src)
            with psycopg.connect(dst, autocommit=True) as c:
                c.execute("CHECKPOINT")
        at = wal_position(dst)
        r = resync_table(src, dst, table, namespace=NS, salt=None, run_id=f"bench-{i}",
                         overlap=timedelta(minutes=5))
        wals.append(wal_position(dst) - at)
        times.append(r.seconds)
        steps = " ".join(f"{k}={v:.3f}" for k, v in r.steps.items())
        where = f"; the changed rows were on {held:,} of the target's {pages:,} heap pages" if held is not None else ""
        print(f"[{label}] round {i}: changed {counts}; resync {r.seconds:.3f} s: {r.upserted} upserted "
              f"({r.inserted} new), {r.deleted} deleted, read {r.read_rows}; WAL {wals[-1] / MB:.0f} MB{where};"
              f" diff {r.diff}\n      steps: {steps}", flush=True)
        expect_up = counts["updates"] + counts["inserts"]
        if r.upserted != expect_up or r.deleted != counts["deletes"]:
            print(f"[{label}]   !! expected {expect_up} upserted and {counts['deletes']} deleted", flush=True)
        if check_equal:
            cols = [n for n, _, _ in COLUMNS]
            same = table_fingerprint(src, "events", cols) == table_fingerprint(dst, table.target_table, cols)
            print(f"[{label}]   target equals source: {same}", flush=True)
            if not same:
                sys.exit(1)
    idle = resync_table(src, dst, table, namespace=NS, salt=None, run_id="bench-idle")
    print(f"[{label}] resync without source changes: {idle.seconds:.3f} s, {idle.upserted} upserted, "
          f"{idle.deleted} deleted", flush=True)
    best, med = min(times), statistics.median(times)
    print(f"\n[{label}] {rows:,} rows, {fraction:.1%} changed: resync best {best:.3f} s / median {med:.3f} s", flush=True)
    for load_name, full in fulls.items():
        print(f"[{label}]   full load ({load_name}, best of 2) {full:.2f} s: resync = {best / full:.1%} (best) / "
              f"{med / full:.1%} (median) of it", flush=True)
    wal_med = statistics.median(wals)
    print(f"[{label}]   WAL: resync median {wal_med / MB:.0f} MB = "
          + ", ".join(f"{wal_med / w:.0%} of the {n}'s {w / MB:.0f} MB" for n, w in full_wal.items() if w), flush=True)
    print(flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--changes", type=float, default=0.01, help="fraction of rows changed per round")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--transformed", action="store_true", help="also the uuid_key table (transformed path)")
    ap.add_argument("--checkpoint", action="store_true",
                    help="a CHECKPOINT before each round (untimed), as before any resync hours after the last write")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="dbsplit-bench-") as tmp:
        server, pgdata = server_url(Path(tmp))
        try:
            src, dst = prepare(server, args.rows)
            with psycopg.connect(server) as c:
                print(f"server: {c.info.parameter_status('server_version')}; {args.rows:,} rows", flush=True)
            run("pass-through", src, dst, passthrough_table(),
                [("raw binary COPY", full_load_raw), ("dbsplit pass-through load", full_load_dbsplit)], args.rows,
                args.changes, args.repeat, True, args.checkpoint)
            if args.transformed:
                run("uuid_key, transformed", src, dst, transformed_table(),
                    [("raw binary COPY", full_load_raw), ("transformed path", full_load_transformed)],
                    args.rows, args.changes, args.repeat, False, args.checkpoint)
        finally:
            if pgdata is not None:
                from dbsplit.local import embedded

                embedded.stop(pgdata)


if __name__ == "__main__":
    main()
