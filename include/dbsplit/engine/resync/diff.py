"""Which keys differ between two key sets, found by key-range fingerprints without moving the keys.

Each side is a relation with key columns (the same types on both sides) and a fingerprint
expression per key: the first 60 bits of md5 of the key's text, as in engine/verify/checksums.py. A
range's summary is (count, sum of fingerprints); sums are additive and order-independent, so a
range whose summaries are equal holds the same keys on both sides (up to a 2^-60 chance).

    level 0   the whole key space cut into buckets of about ROOT_BUCKET_ROWS keys (bounds cached by the
              caller from the previous run); one GROUP BY width_bucket(key, bounds) scan per side
    level n   only the buckets whose summaries differ are cut again, at quantiles of the side holding
              more keys in them (so a range emptied on one side still splits), into at most FANOUT
              sub-buckets, by range-restricted (index) scans
    leaves    differing buckets of at most LEAF_ROWS keys on both sides: their keys are read from both
              sides and compared as sets

The work after level 0 follows the number of differing keys, not the table size. Bucket membership
uses each server's own ordering; where two servers order a key type differently (text keys under
different collations) a key lands in different buckets on the two sides, both buckets differ, both
are read at the leaves, and the set comparison over all leaves still finds the key on both sides:
such keys cost reads, never a wrong result.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Sequence, TypeVar

import psycopg
from psycopg import sql

ROOT_BUCKET_ROWS = 128
LEAF_ROWS = 128
FANOUT = 64
MAX_LEVELS = 40
RANGES_PER_QUERY = 400

Key = tuple[str, ...]
Range = tuple[Key | None, Key | None]     # [lo, hi): key texts, None = unbounded
T = TypeVar("T")


@dataclass(frozen=True)
class KeySide:
    """One side of the diff: relation (a FROM item) with key columns and a fingerprint expression."""

    conn: psycopg.Connection
    relation: sql.Composable
    cols: tuple[str, ...]
    types: tuple[str, ...]               # SQL type text of each key column (for typed bound literals)
    fp: sql.Composable                   # fingerprint of one key (bigint)
    where: sql.Composable | None = None  # restriction of the relation (the plan's row filter)


@dataclass
class DiffResult:
    source_only: list[Key] = field(default_factory=list)
    target_only: list[Key] = field(default_factory=list)
    levels: int = 0
    buckets: int = 0                     # bucket summaries compared
    differing_buckets: int = 0
    leaf_keys: int = 0                   # keys read at the leaves, both sides
    root_buckets: int = 0
    root_max_rows: int = 0               # largest level-0 bucket (either side)
    root_rows: int = 0                   # keys on the target side (level 0 total)

    def bounds_stale(self) -> bool:
        """True when the level-0 bounds no longer cut buckets of about ROOT_BUCKET_ROWS keys."""
        if self.root_rows < 4 * ROOT_BUCKET_ROWS:
            return self.root_buckets > 1 and self.root_rows < self.root_buckets
        average = self.root_rows / max(self.root_buckets, 1)
        return (average > 2 * ROOT_BUCKET_ROWS or average < ROOT_BUCKET_ROWS / 2
                or self.root_max_rows > 8 * ROOT_BUCKET_ROWS)


def key_expr(cols: Sequence[str], alias: str | None = None) -> sql.Composable:
    ids = [sql.Identifier(alias, c) if alias else sql.Identifier(c) for c in cols]
    return ids[0] if len(ids) == 1 else sql.SQL("ROW({})").format(sql.SQL(", ").join(ids))


def key_texts(cols: Sequence[str], alias: str | None = None) -> sql.Composable:
    return sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(alias, c) if alias else sql.Identifier(c))
                              for c in cols)


def fingerprint(cols: Sequence[str], alias: str | None = None) -> sql.Composable:
    """The key's fingerprint: checksums.fingerprint over the key columns. For one column the key's own
    text is hashed instead of its one-field record text ('(42)'): the same hash quality without a
    record_out call per key (a third of the cost of a level-0 scan)."""
    from dbsplit.engine.verify import checksums

    ids = [sql.Identifier(alias, c) if alias else sql.Identifier(c) for c in cols]
    if len(ids) > 1:
        return checksums.fingerprint(ids)
    return sql.SQL("('x' || substr(md5({}::text), 1, 15))::bit(60)::bigint").format(ids[0])


def typed_key(texts: Key, types: Sequence[str]) -> sql.Composable:
    vals = [sql.SQL("CAST({} AS {})").format(sql.Literal(t), sql.SQL(ty)) for t, ty in zip(texts, types, strict=False)]
    return vals[0] if len(vals) == 1 else sql.SQL("ROW({})").format(sql.SQL(", ").join(vals))


def range_condition(side: KeySide, r: Range) -> sql.Composable:
    key = key_expr(side.cols)
    parts = []
    if r[0] is not None:
        parts.append(sql.SQL("{} >= {}").format(key, typed_key(r[0], side.types)))
    if r[1] is not None:
        parts.append(sql.SQL("{} < {}").format(key, typed_key(r[1], side.types)))
    return sql.SQL(" AND ").join(parts) if parts else sql.SQL("TRUE")


def _where(side: KeySide, ranges: Sequence[Range]) -> sql.Composable:
    conds = [sql.SQL("({})").format(range_condition(side, r)) for r in ranges]
    ranges_sql = sql.SQL("TRUE") if any(r == (None, None) for r in ranges) else sql.SQL(" OR ").join(conds)
    if side.where is None:
        return sql.SQL("({})").format(ranges_sql)
    return sql.SQL("({}) AND ({})").format(side.where, ranges_sql)


def array_literal(texts: Sequence[str]) -> str:
    """PostgreSQL array input text of these element texts (every element quoted)."""
    return "{" + ",".join('"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"' for t in texts) + "}"


def _bucket_expr(side: KeySide, bounds: Sequence[Key]) -> sql.Composable:
    """width_bucket(key, bounds): 0 below the first bound, i for bounds[i-1] <= key < bounds[i].

    A one-column key gets its bounds as one typed array constant: built by a sub-select, the array is
    a parameter that width_bucket reads anew for every row (a third of the cost of a level-0 scan)."""
    if not bounds:
        return sql.SQL("0")
    n = len(side.cols)
    if n == 1 and not side.types[0].endswith("]"):
        return sql.SQL("width_bucket({}, CAST({} AS {}[]))").format(
            key_expr(side.cols), sql.Literal(array_literal([b[0] for b in bounds])), sql.SQL(side.types[0]))
    arrays = sql.SQL(", ").join(
        sql.SQL("ARRAY[{}]::text[]").format(sql.SQL(", ").join(sql.Literal(b[i]) for b in bounds)) for i in range(n))
    names = [sql.Identifier(f"a{i}") for i in range(n)]
    casts = [sql.SQL("CAST({} AS {})").format(nm, sql.SQL(ty)) for nm, ty in zip(names, side.types, strict=False)]
    element = casts[0] if n == 1 else sql.SQL("ROW({})").format(sql.SQL(", ").join(casts))
    array = sql.SQL("(SELECT array_agg({} ORDER BY i) FROM unnest({}) WITH ORDINALITY AS u({}, i))").format(
        element, arrays, sql.SQL(", ").join(names))
    return sql.SQL("width_bucket({}, {})").format(key_expr(side.cols), array)


def _lower_bounds(subranges: Sequence[Range]) -> tuple[list[Key], list[int]]:
    """Lower bounds for width_bucket and, per sub-range, its bucket number."""
    bounds: list[Key] = []
    index: list[int] = []
    for lo, _ in subranges:
        if lo is None:
            index.append(0)
        else:
            bounds.append(lo)
            index.append(len(bounds))
    return bounds, index


def summaries(side: KeySide, groups: Sequence[tuple[Range, list[Range]]]) -> list[tuple[int, str]]:
    """(count, fingerprint sum) of every sub-range of every (parent, sub-ranges partitioning it) group,
    flattened in order. Groups are disjoint and in key order."""
    out: list[tuple[int, str]] = []
    batch: list[tuple[Range, list[Range]]] = []
    for g in [*groups, None]:
        if g is not None and (not batch or sum(len(s) for _, s in batch) + len(g[1]) <= RANGES_PER_QUERY):
            batch.append(g)
            continue
        if batch:
            subs = [s for _, ss in batch for s in ss]
            bounds, index = _lower_bounds(subs)
            query = sql.SQL(
                "SELECT {b} AS b, count(*), coalesce(sum({fp}), 0)::text FROM {rel} WHERE {w} GROUP BY 1").format(
                b=_bucket_expr(side, bounds), fp=side.fp, rel=side.relation, w=_where(side, [p for p, _ in batch]))
            found = {b: (n, s) for b, n, s in side.conn.execute(query)}
            out += [found.get(i, (0, "0")) for i in index]
        batch = [g] if g is not None else []
    return out


def root_summaries_by_range(side: KeySide, bounds: Sequence[Key],
                            buckets: Sequence[int] | None = None) -> list[tuple[int, str]]:
    """summaries(side, root_groups(bounds)) for a one-column key with a btree index: one index range
    scan per bucket (a LATERAL join over the bounds) instead of a scan of every key grouped by
    width_bucket, which spends more on its hash table than on reading the keys. buckets: only these
    level-0 buckets (numbers 0 to len(bounds), in any order; the result follows it), so that several
    sessions can share the pass."""
    every = range(len(bounds) + 1)
    buckets = every if buckets is None else buckets
    if len(side.cols) != 1 or not bounds or side.types[0].endswith("]"):
        found_all = summaries(side, root_groups(bounds))
        return [found_all[i] for i in buckets]
    col, ty = sql.Identifier(side.cols[0]), sql.SQL(side.types[0])
    texts = [b[0] for b in bounds]

    def cond(c: sql.Composable) -> sql.Composable:
        return c if side.where is None else sql.SQL("({}) AND ({})").format(side.where, c)

    def bound(t: str) -> sql.Composable:
        return sql.SQL("CAST({} AS {})").format(sql.Literal(t), ty)

    agg = sql.SQL("count(*) AS n, coalesce(sum({}), 0)::text AS h").format(side.fp)
    wanted = set(buckets)
    parts = []
    if 0 in wanted:
        parts.append(sql.SQL("SELECT 0, {} FROM {} WHERE {}").format(
            agg, side.relation, cond(sql.SQL("{} < {}").format(col, bound(texts[0])))))
    inner = sorted(i for i in wanted if 0 < i < len(texts))   # bucket i: [texts[i-1], texts[i])
    if inner:
        parts.append(sql.SQL(
            "SELECT r.i, x.n, x.h FROM unnest(CAST({lo} AS {ty}[]), CAST({hi} AS {ty}[]), CAST({i} AS int[]))"
            " AS r(lo, hi, i)"
            " CROSS JOIN LATERAL (SELECT {agg} FROM {rel} WHERE {c}) AS x").format(
            lo=sql.Literal(array_literal([texts[i - 1] for i in inner])),
            hi=sql.Literal(array_literal([texts[i] for i in inner])),
            i=sql.Literal("{" + ",".join(map(str, inner)) + "}"),
            ty=ty, agg=agg, rel=side.relation, c=cond(sql.SQL("{} >= r.lo AND {} < r.hi").format(col, col))))
    if len(texts) in wanted:
        parts.append(sql.SQL("SELECT {}, {} FROM {} WHERE {}").format(
            sql.Literal(len(texts)), agg, side.relation, cond(sql.SQL("{} >= {}").format(col, bound(texts[-1])))))
    found = {b: (n, h) for b, n, h in side.conn.execute(sql.SQL(" UNION ALL ").join(parts))} if parts else {}
    return [found.get(i, (0, "0")) for i in buckets]


def quantiles(side: KeySide, ranges: Sequence[Range], steps: Sequence[int]) -> list[list[Key]]:
    """For each range (disjoint, in key order), the keys of this side at positions step+1, 2*step+1, ...
    in key order: bounds that cut the range into buckets of `step` keys of this side."""
    out: list[list[Key]] = [[] for _ in ranges]
    for start in range(0, len(ranges), RANGES_PER_QUERY):
        part = list(ranges[start:start + RANGES_PER_QUERY])
        bounds, index = _lower_bounds(part)
        by_bucket = {b: i for i, b in enumerate(index)}
        step_of = [1] * (len(bounds) + 1)
        for i, b in enumerate(index):
            step_of[b] = max(1, steps[start + i])
        key = key_expr(side.cols)
        bucket = _bucket_expr(side, bounds)
        query = sql.SQL(
            "SELECT r, {texts} FROM (SELECT {bucket} AS r, {cols}, row_number() OVER (PARTITION BY {bucket}"
            " ORDER BY {key}) AS rn"
            " FROM {rel} WHERE {w}) x WHERE rn > 1 AND (rn - 1) % ({steps}::int[])[r + 1] = 0 ORDER BY r, rn").format(
            texts=key_texts(side.cols), bucket=bucket, cols=sql.SQL(", ").join(map(sql.Identifier, side.cols)),
            key=key, rel=side.relation, w=_where(side, part), steps=sql.Literal(step_of))
        for r, *texts in side.conn.execute(query):
            out[start + by_bucket[r]].append(tuple(texts))
    return out


def keys_in(side: KeySide, ranges: Sequence[Range]) -> set[Key]:
    """Every key of this side in the ranges, as texts. A one-column key's bounded ranges are read by one
    index range scan each (a LATERAL join over the bounds): OR-ed ranges become a bitmap scan that
    checks every range against every key, in parallel workers that cost more to start than they save."""
    found: set[Key] = set()
    by_range = len(side.cols) == 1 and not side.types[0].endswith("]")
    bounded = [(lo, hi) for lo, hi in ranges if by_range and lo is not None and hi is not None]
    rest = [r for r in ranges if not (by_range and r[0] is not None and r[1] is not None)]
    for start in range(0, len(bounded), RANGES_PER_QUERY):
        found.update(side.conn.execute(_keys_by_range(side, bounded[start:start + RANGES_PER_QUERY])).fetchall())
    for start in range(0, len(rest), RANGES_PER_QUERY):
        part = rest[start:start + RANGES_PER_QUERY]
        query = sql.SQL("SELECT {} FROM {} WHERE {}").format(key_texts(side.cols), side.relation, _where(side, part))
        found.update(side.conn.execute(query).fetchall())
    return found


def _keys_by_range(side: KeySide, ranges: Sequence[tuple[Key, Key]]) -> sql.Composed:
    """The keys (as text) of a one-column key in these bounded ranges, one index range scan per range."""
    col, ty = sql.Identifier(side.cols[0]), sql.SQL(side.types[0])
    cond = sql.SQL("{} >= r.lo AND {} < r.hi").format(col, col)
    if side.where is not None:
        cond = sql.SQL("({}) AND ({})").format(side.where, cond)
    return sql.SQL("SELECT x.k::text FROM unnest(CAST({lo} AS {ty}[]), CAST({hi} AS {ty}[])) AS r(lo, hi)"
                   " CROSS JOIN LATERAL (SELECT {col} AS k FROM {rel} WHERE {cond}) AS x").format(
        lo=sql.Literal(array_literal([r[0][0] for r in ranges])),
        hi=sql.Literal(array_literal([r[1][0] for r in ranges])),
        ty=ty, col=col, rel=side.relation, cond=cond)


def _split(r: Range, inner: Sequence[Key]) -> list[Range]:
    edges: list[Key | None] = [r[0], *inner, r[1]]
    return [(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


def _both(pool: ThreadPoolExecutor, f: Callable[[], T], g: Callable[[], T]) -> tuple[T, T]:
    a = pool.submit(f)
    b = pool.submit(g)
    return a.result(), b.result()


def bucket_expr(side: KeySide, bounds: Sequence[Key]) -> sql.Composable:
    """The level-0 bucket of a key of this side: width_bucket over bounds."""
    return _bucket_expr(side, bounds)


def root_groups(root_bounds: Sequence[Key]) -> list[tuple[Range, list[Range]]]:
    """Level 0: the whole key space cut at root_bounds (summaries() of these are the root summaries)."""
    return [((None, None), _split((None, None), list(root_bounds)))]


def diff_keys(source: KeySide, target: KeySide, root_bounds: Sequence[Key] | None = None,
              target_root: list[tuple[int, str]] | None = None,
              source_root: Callable[[], list[tuple[int, str]]] | None = None) -> DiffResult:
    """Keys only in the source and keys only in the target. Both sides are queried in parallel;
    root_bounds (sorted key texts) cut level 0, else quantiles of the target side do. target_root:
    the target's level-0 summaries for root_bounds (count, sum) by bucket, when the caller keeps them;
    source_root: a function returning the source's (computed by the caller, e.g. in another session
    while it did other work), used with target_root."""
    res = DiffResult()
    with ThreadPoolExecutor(2) as pool:
        if root_bounds is None:
            root_bounds = quantiles(target, [(None, None)], [ROOT_BUCKET_ROWS])[0]
        groups = root_groups(root_bounds)
        leaves: list[Range] = []
        while groups:
            res.levels += 1
            if res.levels > MAX_LEVELS:
                raise RuntimeError("key diff did not converge (are the keys unique on both sides?)")
            subranges = [s for _, ss in groups for s in ss]
            if res.levels == 1 and target_root is not None:
                s_sum, t_sum = (source_root() if source_root is not None else summaries(source, groups)), target_root
            else:
                s_sum, t_sum = _both(pool, partial(summaries, source, groups), partial(summaries, target, groups))
            res.buckets += len(subranges)
            if res.levels == 1:
                res.root_buckets = len(subranges)
                res.root_max_rows = max([max(a[0], b[0]) for a, b in zip(s_sum, t_sum, strict=False)] or [0])
                res.root_rows = sum(b[0] for b in t_sum)
            split = _differing(res, subranges, s_sum, t_sum, leaves)
            if not split:
                break
            groups = _split_further(pool, source, target, split)
        if leaves:
            s_keys, t_keys = _both(pool, partial(keys_in, source, leaves), partial(keys_in, target, leaves))
            res.leaf_keys = len(s_keys) + len(t_keys)
            res.source_only = sorted(s_keys - t_keys)
            res.target_only = sorted(t_keys - s_keys)
    return res


def _differing(res: DiffResult, subranges: Sequence[Range], s_sum: Sequence[tuple[int, str]],
               t_sum: Sequence[tuple[int, str]], leaves: list[Range]) -> list[tuple[Range, int, bool]]:
    """The sub-ranges whose summaries differ: small ones added to leaves, the others returned as
    (range, step, split by source side) to be cut further."""
    split: list[tuple[Range, int, bool]] = []
    for r, s, t in zip(subranges, s_sum, t_sum, strict=False):
        if s == t:
            continue
        res.differing_buckets += 1
        n = max(s[0], t[0])
        if n <= LEAF_ROWS:
            leaves.append(r)
        else:
            split.append((r, max(LEAF_ROWS, math.ceil(n / FANOUT)), s[0] >= t[0]))
    return split


def _split_further(pool: ThreadPoolExecutor, source: KeySide, target: KeySide,
                   split: Sequence[tuple[Range, int, bool]]) -> list[tuple[Range, list[Range]]]:
    """The next level's groups: each range cut by quantiles of the side with more keys in it."""
    by_src = [(r, st) for r, st, src in split if src]
    by_tgt = [(r, st) for r, st, src in split if not src]

    def cuts(side: KeySide, ranges: list[tuple[Range, int]]) -> list[list[Key]]:
        return quantiles(side, [r for r, _ in ranges], [st for _, st in ranges]) if ranges else []

    q_src, q_tgt = _both(pool, partial(cuts, source, by_src), partial(cuts, target, by_tgt))
    inner = (dict(zip([r for r, _ in by_src], q_src, strict=False))
             | dict(zip([r for r, _ in by_tgt], q_tgt, strict=False)))
    return [(r, _split(r, inner[r])) for r, _, _ in split]
