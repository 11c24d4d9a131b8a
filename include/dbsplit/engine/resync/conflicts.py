"""Step 3: target-side writes. Every key a service changed since the last resync (logged by the tracking
triggers) is compared with the source's version: where they differ it is a conflict."""

from __future__ import annotations

from psycopg import sql

from dbsplit.engine.resync.context import TableRun
from dbsplit.engine.resync.names import ALLMAP, CONFLICTS, STAGE
from dbsplit.engine.resync.sql_parts import eq, idents, join_text, temp_table, texts
from dbsplit.errors import DataCheckFailed

TRUNCATED = "(TRUNCATE)"


def stop_on_conflicts(run: TableRun, conflicts: list[str]) -> None:
    """on_conflict=stop: any conflict stops the whole merge before anything is changed."""
    if conflicts and run.on_conflict == "stop":
        shown = ", ".join(conflicts[:20]) + (f" and {len(conflicts) - 20} more" if len(conflicts) > 20 else "")
        raise DataCheckFailed(
            f"{run.name}: {len(conflicts)} row(s) were changed in the target since the last resync and differ "
            f"from the source (on_conflict=stop, nothing was changed): key {shown}")


def conflicts(run: TableRun, max_id: int) -> tuple[list[str], int]:
    """Under the merge lock: stage the source version of every key changed in the target, then
    split the keys into conflicts (row differs from the source's) and skipped ones (equal)."""
    spec = run.spec
    t, tt = list(spec.target_cols), spec.t
    temp_table(run.tgt, CONFLICTS, tt, spec.target_types)
    run.tgt.execute(sql.SQL(
        "INSERT INTO pg_temp.{c} SELECT DISTINCT {vals} FROM _dbsplit.target_changes"
        " WHERE target_table = %s AND id <= %s AND key IS NOT NULL").format(
        c=sql.Identifier(CONFLICTS),
        vals=sql.SQL(", ").join(sql.SQL("CAST(key ->> {} AS {})").format(sql.Literal(i), sql.SQL(ty))
                                for i, ty in enumerate(spec.target_types))), (run.name, max_id))
    not_staged = sql.SQL("NOT EXISTS (SELECT 1 FROM pg_temp.{} x WHERE {})").format(
        sql.Identifier(STAGE), eq(t, "x", tt, "c"))
    if spec.mode == "direct":   # the source key is the target key
        t_of_s = [tt[t.index(c)] for c in spec.target_of_s()]
        fetch_q = sql.SQL("SELECT {} FROM pg_temp.{} c WHERE {}").format(
            texts(t_of_s, "c"), sql.Identifier(CONFLICTS), not_staged)
    else:                       # through the key table (or, while rebuilding it, the source's key map)
        mapping = sql.SQL("pg_temp.{}").format(sql.Identifier(ALLMAP)) if run.rebuild else run.ktab
        fetch_q = sql.SQL("SELECT {} FROM pg_temp.{} c JOIN {} k ON {} WHERE {}").format(
            texts(spec.s, "k"), sql.Identifier(CONFLICTS), mapping, eq(tt, "k", tt, "c"), not_staged)
    missing = [tuple(r) for r in run.tgt.execute(fetch_q)]
    if missing:
        run.fetch.stage_keys(missing)
    cols = run.columns
    rows = run.tgt.execute(sql.SQL(
        "SELECT {key}, ROW({d})::text IS NOT DISTINCT FROM ROW({s})::text FROM pg_temp.{c} c"
        " LEFT JOIN pg_temp.{stage} s ON {on_s} LEFT JOIN {rel} d ON {on_d}").format(
        key=join_text(tt, "c"), d=idents(cols, "d"), s=idents(cols, "s"),
        c=sql.Identifier(CONFLICTS), stage=sql.Identifier(STAGE), on_s=eq(t, "s", tt, "c"), rel=run.rel,
        on_d=eq(t, "d", tt, "c"))).fetchall()
    real = sorted(k for k, same in rows if not same)
    return real, len(rows) - len(real)


