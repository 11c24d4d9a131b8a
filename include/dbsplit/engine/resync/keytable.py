"""The key table (`_dbsplit."keys:<table>"`: the source keys the target holds, with their fingerprints and,
for mapped keys, target keys) and its level-0 bucket sums: read as FROM items, rebuilt, maintained."""

from __future__ import annotations

from psycopg import sql

from dbsplit.engine.resync import diff as resync_diff
from dbsplit.engine.resync.context import TableRun
from dbsplit.engine.resync.names import ALLKEYS, ALLMAP, GONE, KEYSTAGE, NEWKEYS, STAGE
from dbsplit.engine.resync.sql_parts import eq, ident, idents


def all_keys(run: TableRun) -> sql.Composed:
    """FROM item `a` with every source key (s), its hash (h) and, for mapped keys, target key (t)."""
    if run.spec.mode == "direct":
        return sql.SQL("pg_temp.{} a").format(sql.Identifier(ALLKEYS))
    s = run.spec.s
    return sql.SQL("(SELECT {sel} FROM pg_temp.{a} x JOIN pg_temp.{m} y ON {on}) a").format(
        sel=sql.SQL(", ").join([*ident(s, "x"), sql.SQL("x.h"), *ident(run.spec.t, "y")]),
        a=sql.Identifier(ALLKEYS), m=sql.Identifier(ALLMAP), on=eq(s, "x", s, "y"))


def staged_keys(run: TableRun) -> sql.Composed:
    """FROM item `a` with the source key (s), hash (h) and target key (t, mapped) of every staged row
    the key table lacks (the run's new keys) that is in the staging table (rows the transforms
    rejected are not)."""
    s, t = run.spec.s, list(run.spec.target_cols)
    if run.spec.mode == "direct":
        return sql.SQL(
            "(SELECT kh.* FROM pg_temp.{kh} kh WHERE EXISTS (SELECT 1 FROM pg_temp.{st} x WHERE {on})) a").format(
            kh=sql.Identifier(NEWKEYS), st=sql.Identifier(STAGE), on=eq(run.tkey, "x", s, "kh"))
    return sql.SQL(
        "(SELECT {sel} FROM pg_temp.{kh} kh JOIN pg_temp.{ks} ks ON {on} WHERE EXISTS "
        "(SELECT 1 FROM pg_temp.{st} x WHERE {on_x})) a").format(
        sel=sql.SQL(", ").join([*ident(s, "kh"), sql.SQL("kh.h"), *ident(run.spec.t, "ks")]),
        kh=sql.Identifier(NEWKEYS), ks=sql.Identifier(KEYSTAGE), on=eq(s, "kh", s, "ks"), st=sql.Identifier(STAGE),
        on_x=eq(t, "x", run.spec.t, "ks"))


def maintain_keys(run: TableRun, gone: list[tuple[str, ...]]) -> None:
    """Key table = the source keys the target now holds (rebuilt, or updated by this run's changes)."""
    if run.rebuild:
        rebuild_keys(run)
    else:
        update_keys(run, gone)


def _key_columns(run: TableRun) -> tuple[list[str], sql.Composed, sql.Composed]:
    """The key table's target-key columns (mapped keys only), its columns, and them from FROM item a."""
    tcols = run.spec.t if run.spec.mode == "mapped" else []
    return tcols, idents([*run.spec.s, "h", *tcols]), idents([*run.spec.s, "h", *tcols], "a")


def rebuild_keys(run: TableRun) -> None:
    """The key table made anew from every source key whose row the target holds."""
    s, tgt, ktab = run.spec.s, run.tgt, run.ktab
    tcols, cols, sel = _key_columns(run)
    tgt.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ktab))
    defs: list[sql.Composable] = [sql.SQL("{} {} NOT NULL").format(sql.Identifier(c), sql.SQL(ty))
                                  for c, ty in zip(s, run.spec.source_types, strict=False)]
    defs.append(sql.SQL("h bigint NOT NULL"))
    defs += [sql.SQL("{} {} NOT NULL").format(sql.Identifier(c), sql.SQL(ty))
             for c, ty in zip(tcols, run.spec.target_types, strict=False)]
    tgt.execute(sql.SQL("CREATE TABLE {} ({})").format(ktab, sql.SQL(", ").join(defs)))
    tgt.execute(sql.SQL(
        "INSERT INTO {k} ({cols}) SELECT {sel} FROM {a} WHERE EXISTS (SELECT 1 FROM {rel} d WHERE {on})"
        " ORDER BY {s}").format(k=ktab, cols=cols, sel=sel, a=all_keys(run), rel=run.rel,
                                on=eq(run.tkey, "d", run.kcols, "a"), s=idents(s, "a")))
    tgt.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({}) INCLUDE (h)").format(ktab, idents(s)))
    if tcols:
        tgt.execute(sql.SQL("CREATE UNIQUE INDEX ON {} ({})").format(ktab, idents(tcols)))
    tgt.execute(sql.SQL("ANALYZE {}").format(ktab))


def update_keys(run: TableRun, gone: list[tuple[str, ...]]) -> None:
    """The key table (and its bucket sums) updated by this run: deleted keys out, new keys in."""
    s = run.spec.s
    _, cols, sel = _key_columns(run)
    keyside = resync_diff.KeySide(run.tgt, run.ktab, tuple(s), run.spec.source_types, sql.Identifier("h"))
    bounds = [tuple(b) for b in run.st.root_bounds] if run.st.root_bounds is not None else None
    have_sums = bounds is not None and run.sums_kept()

    def with_sums(change: sql.Composed, sign: str) -> sql.Composed:
        """change (a DELETE or INSERT ... RETURNING the keys and h) adding its keys to the bucket sums."""
        if bounds is None or not have_sums:
            return change
        return sql.SQL(
            "WITH c AS ({change}) INSERT INTO {sums} (b, n, h) SELECT {bucket}, {sign}count(*), {sign}sum(h) FROM c"
            " GROUP BY 1 ON CONFLICT (b) DO UPDATE SET n = {sums}.n + EXCLUDED.n, h = {sums}.h + EXCLUDED.h").format(
            change=change, sums=run.stab, bucket=resync_diff.bucket_expr(keyside, bounds), sign=sql.SQL(sign))

    returning = sql.SQL(" RETURNING {}, h").format(idents(s))
    if gone:
        gone_keys = sql.SQL("DELETE FROM {} k USING pg_temp.{} g WHERE {}{}").format(
            run.ktab, sql.Identifier(GONE), eq(s, "k", s, "g"), sql.SQL(" RETURNING {}, k.h").format(idents(s, "k")))
        run.tgt.execute(with_sums(gone_keys, "-"))
    insert = sql.SQL("INSERT INTO {k} ({cols}) SELECT {sel} FROM {a} ON CONFLICT ({s}) DO NOTHING{r}").format(
        k=run.ktab, cols=cols, sel=sel, a=staged_keys(run), s=idents(s), r=returning)
    run.tgt.execute(with_sums(insert, ""))


def root_bounds(run: TableRun) -> list[list[str]]:
    """New level-0 bounds (quantiles of the key table) and the bucket sums that go with them."""
    side = resync_diff.KeySide(run.tgt, run.ktab, tuple(run.spec.s), run.spec.source_types, sql.Identifier("h"))
    bounds = resync_diff.quantiles(side, [(None, None)], [resync_diff.ROOT_BUCKET_ROWS])[0]
    run.tgt.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(run.stab))
    run.tgt.execute(sql.SQL("CREATE TABLE {} (b integer PRIMARY KEY, n bigint NOT NULL, h numeric NOT NULL)").format(
        run.stab))
    run.tgt.execute(sql.SQL("INSERT INTO {} SELECT {}, count(*), sum(h) FROM {} GROUP BY 1").format(
        run.stab, resync_diff.bucket_expr(side, bounds), run.ktab))
    return [list(b) for b in bounds]
