"""Step 2: the source's key set against the key table (plus this run's new keys), by key-range
fingerprints (diff.py). The source's level-0 summaries run in more source sessions on the run's snapshot
while the target prepares its side; a rebuild reads every source key instead."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

import psycopg
from psycopg import sql

from dbsplit.engine.migrate import arrow_io
from dbsplit.engine.resync import diff as resync_diff
from dbsplit.engine.resync.context import TableRun
from dbsplit.engine.resync.keytable import all_keys
from dbsplit.engine.resync.names import CONFLICTS, INSERTED, KEYHASH, NEWKEYS
from dbsplit.engine.resync.sql_parts import eq, idents, probe_joins, scalar, temp_table, texts
from dbsplit.model.sql_fragments import filter_sql
from dbsplit.pg import copy

log = logging.getLogger(__name__)

ROOT_SESSIONS = 2                  # source sessions sharing the pass over every key (level-0 summaries)
ROOT_STRIPE = 32                   # ... in turns, by stripes of this many buckets: the cost per key varies
                                   # along the key space (heap visits where updates cluster; the bench's
                                   # halves took 162 and 122 ms), stripes share it evenly

Summaries = list[tuple[int, str]]
Bounds = list[tuple[str, ...]]


@dataclass(frozen=True)
class _DiffArgs:
    source: resync_diff.KeySide
    target: resync_diff.KeySide
    bounds: Bounds | None
    target_root: Summaries | None
    source_root: Callable[[], Summaries] | None


@dataclass
class KeyDiff:
    """The key diff of one table's run: started early (source summaries, target side), finished by run()."""

    run: TableRun
    _source_root: list[tuple[list[int], Future[Summaries]]] | None = None   # (buckets, their level-0 summaries)
    _args: _DiffArgs | None = field(default=None)

    def rebuild(self) -> list[tuple[str, ...]]:
        """The key table is rebuilt: read every source key (with its hash, and target key when mapped);
        return the source keys whose target row is missing and that are not staged already. Target
        rows whose key the source does not have are deleted at the merge."""
        run = self.run
        run.fetch.load_all_keys()
        s = run.spec.s
        query = sql.SQL(
            "SELECT {texts} FROM {all} WHERE NOT EXISTS (SELECT 1 FROM {rel} d WHERE {on_target})"
            " AND NOT EXISTS (SELECT 1 FROM pg_temp.{kh} k WHERE {on_stage})").format(
            texts=texts(s, "a"), all=all_keys(run), rel=run.rel, on_target=eq(run.tkey, "d", run.kcols, "a"),
            kh=sql.Identifier(KEYHASH), on_stage=eq(s, "k", s, "a"))
        return [tuple(r) for r in run.tgt.execute(query)]

    def incremental(self) -> resync_diff.DiffResult:
        """Source key set against (key table + keys staged by this run that it lacks), by fingerprints."""
        if self._args is None:
            self.start()
        args = self._args
        assert args is not None
        with arrow_io.text_settings(self.run.src, {"TimeZone": "UTC"}):
            return resync_diff.diff_keys(args.source, args.target, args.bounds, args.target_root, args.source_root)

    def start(self) -> None:
        """The target's side of the key diff, as far as it goes without the source's level-0 summaries:
        the run's new keys (staged keys the key table lacks) and the target's level-0 summaries."""
        run = self.run
        s = run.spec.s
        temp_table(run.tgt, NEWKEYS, [*s, "h"], [*run.spec.source_types, "bigint"])
        with run.tgt.transaction():
            probe_joins(run.tgt)
            run.tgt.execute(new_keys(run))
        run.tgt.execute(sql.SQL("CREATE INDEX ON pg_temp.{} ({})").format(sql.Identifier(NEWKEYS), idents(s)))
        run.fetch.track_new_keys(NEWKEYS, run.ktab)
        target_rel = sql.SQL("(SELECT {c}, h FROM {k} UNION ALL SELECT {c}, h FROM pg_temp.{n}) AS keyset").format(
            c=idents(s), k=run.ktab, n=sql.Identifier(NEWKEYS))
        source = source_side(run, run.src)
        target = resync_diff.KeySide(run.tgt, target_rel, tuple(s), run.spec.source_types, sql.Identifier("h"))
        bounds = [tuple(b) for b in run.st.root_bounds] if run.st.root_bounds is not None else None
        target_root = self._target_root(target, bounds) if bounds is not None else None
        source_root = self._source_root_getter(source, bounds) if bounds is not None else None
        self._args = _DiffArgs(source, target, bounds, target_root, source_root)

    def _source_root_getter(self, source: resync_diff.KeySide, bounds: Bounds) -> Callable[[], Summaries] | None:
        """A function waiting for the source's level-0 summaries started by start_source_root (None: not
        started); should those sessions fail, it computes them in the main session."""
        futures = self._source_root
        if futures is None:
            return None
        name = self.run.name

        def source_root() -> Summaries:
            try:
                found: dict[int, tuple[int, str]] = {}
                for share, f in futures:
                    found.update(zip(share, f.result(), strict=False))
                return [found[i] for i in range(len(bounds) + 1)]
            except psycopg.OperationalError as e:   # no second session (connection limit, ...): this one
                log.warning("%s: level-0 key summaries in a second source session failed (%s); "
                            "computing them in the main session", name, e)
                return resync_diff.summaries(source, resync_diff.root_groups(bounds))
        return source_root

    def start_source_root(self, source_conninfo: str, pool: ThreadPoolExecutor) -> None:
        """Start the source's level-0 summaries (one pass over every source key: the largest single cost of
        an incremental run) in ROOT_SESSIONS more sessions on this run's snapshot (each over every
        ROOT_SESSIONS-th stripe of level-0 buckets), so that it runs while the target prepares its side
        of the diff and upserts the changed rows."""
        run = self.run
        assert run.st.root_bounds is not None
        bounds = [tuple(b) for b in run.st.root_bounds]
        groups = resync_diff.root_groups(bounds)
        snapshot = copy.export_snapshot(run.src)
        by_range = len(run.spec.source_cols) == 1 and scalar(run.src, (
            "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " JOIN pg_am am ON am.oid = c.relam AND am.amname = 'btree' JOIN pg_attribute a ON a.attrelid = i.indrelid"
            " AND a.attnum = i.indkey[0] WHERE i.indrelid = %s::regclass AND a.attname = %s AND i.indpred IS NULL"
            " AND i.indexprs IS NULL)"), (run.source_rel.as_string(run.src), run.spec.source_cols[0]))

        def work(buckets: list[int], conn: psycopg.Connection) -> Summaries:
            conn.execute("SELECT set_config('jit', 'off', true)")
            with arrow_io.text_settings(conn, {"TimeZone": "UTC"}):
                if by_range:   # one index range scan per bucket
                    return resync_diff.root_summaries_by_range(source_side(run, conn), bounds, buckets)
                return resync_diff.summaries(source_side(run, conn), groups)

        n = len(bounds) + 1
        parts = ROOT_SESSIONS if by_range and n >= ROOT_STRIPE * ROOT_SESSIONS else 1
        shares = [[i for i in range(n) if (i // ROOT_STRIPE) % parts == j] for j in range(parts)]
        self._source_root = [(share, pool.submit(copy.in_snapshot, source_conninfo, snapshot, partial(work, share)))
                             for share in shares]

    def _target_root(self, target: resync_diff.KeySide, bounds: Bounds) -> Summaries | None:
        """The target's level-0 summaries from the kept bucket sums plus this run's new keys."""
        run = self.run
        if not run.sums_kept():
            return None
        rows = run.tgt.execute(sql.SQL(
            "SELECT b, sum(n)::bigint, sum(h)::text FROM (SELECT b, n, h FROM {sums} UNION ALL"
            " SELECT {bucket}, 1, h FROM pg_temp.{nk}) x GROUP BY b").format(
            sums=run.stab, bucket=resync_diff.bucket_expr(target, bounds), nk=sql.Identifier(NEWKEYS))).fetchall()
        found = {b: (n, h) for b, n, h in rows}
        return [found.get(i, (0, "0")) for i in range(len(bounds) + 1)]


def new_keys(run: TableRun) -> sql.Composed:
    """INSERT into the new-key table the staged keys (with their hash) that the key table lacks.

    Every staged key is probed (in key order: neighbouring probes share the key index's pages, a
    quarter less time), unless the upsert already ran and recorded the keys it inserted (lazy):
    then only those and the keys the service changed in the target are probed. A staged key the
    key table lacks is a row the target lacked (inserted now) or one a service wrote there
    (a recorded change); a key missed all the same shows in the diff and enters as a late key."""
    s = run.spec.s
    candidates = sql.SQL("pg_temp.{}").format(sql.Identifier(KEYHASH))
    if run.lazy_new_keys and run.merged_once:
        t, tt = list(run.spec.target_cols), run.spec.t
        changed = sql.SQL(", ").join(sql.Identifier("c", tt[t.index(c)]) for c in run.spec.target_of_s())
        candidates = sql.SQL(
            "(SELECT kh.* FROM pg_temp.{kh} kh WHERE ({ks}) IN (SELECT {i} FROM pg_temp.{ins} UNION ALL"
            " SELECT {changed} FROM pg_temp.{c} c))").format(
            kh=sql.Identifier(KEYHASH), ks=idents(s, "kh"), i=idents(s),
            ins=sql.Identifier(INSERTED), changed=changed, c=sql.Identifier(CONFLICTS))
    return sql.SQL(
        "INSERT INTO pg_temp.{nk} SELECT kh.* FROM (SELECT {sk} FROM {cand} x ORDER BY {sc}) kh"
        " WHERE NOT EXISTS (SELECT 1 FROM {ktab} k WHERE {on})").format(
        nk=sql.Identifier(NEWKEYS), sk=idents([*s, "h"]), cand=candidates,
        sc=idents(s), ktab=run.ktab, on=eq(s, "k", s, "kh"))


def source_side(run: TableRun, conn: psycopg.Connection) -> resync_diff.KeySide:
    return resync_diff.KeySide(
        conn, run.source_rel, run.spec.source_cols, run.spec.source_types, run.hash_sql,
        filter_sql(run.table.filter) if run.table.filter else None)
