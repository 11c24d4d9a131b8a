"""Step 4's row statements: staged rows upserted into the target where they differ, deleted keys removed.
An unchanged row is neither rewritten nor locked."""

from __future__ import annotations

from typing import Any, Sequence

from psycopg import sql

from dbsplit.engine.resync.context import TableRun
from dbsplit.engine.resync.keytable import all_keys
from dbsplit.engine.resync.names import CONFLICTS, GONE, INSERTED, STAGE
from dbsplit.engine.resync.sql_parts import MERGE_RETURNING_VERSION, eq, fill, idents, temp_table


def delete(run: TableRun, gone: list[tuple[str, ...]]) -> int:
    """Delete from the target: source-deleted keys (gone), changed keys the source does not have,
    and when rebuilding, target rows whose key the source does not have. Never a staged key."""
    t, tt, s = list(run.spec.target_cols), run.spec.t, run.spec.s
    not_staged = sql.SQL("NOT EXISTS (SELECT 1 FROM pg_temp.{} x WHERE {})").format(
        sql.Identifier(STAGE), eq(t, "x", t, "d"))
    n = 0
    with run.tgt.cursor() as cur:
        if gone:
            temp_table(run.tgt, GONE, s, run.spec.source_types)
            fill(run.tgt, GONE, gone)
            if run.spec.mode == "direct":
                q = sql.SQL("DELETE FROM {rel} d USING pg_temp.{g} g WHERE {on} AND {ns}").format(
                    rel=run.rel, g=sql.Identifier(GONE), on=eq(run.tkey, "d", s, "g"), ns=not_staged)
            else:
                q = sql.SQL("DELETE FROM {rel} d USING pg_temp.{g} g JOIN {k} k ON {gk} WHERE {on} AND {ns}").format(
                    rel=run.rel, g=sql.Identifier(GONE), k=run.ktab, gk=eq(s, "k", s, "g"), on=eq(t, "d", tt, "k"),
                    ns=not_staged)
            n += cur.execute(q).rowcount
        n += cur.execute(sql.SQL("DELETE FROM {rel} d USING pg_temp.{c} c WHERE {on} AND {ns}").format(
            rel=run.rel, c=sql.Identifier(CONFLICTS), on=eq(t, "d", tt, "c"), ns=not_staged)).rowcount
        if run.rebuild:
            n += cur.execute(sql.SQL(
                "DELETE FROM {rel} d WHERE NOT EXISTS (SELECT 1 FROM {a} WHERE {on}) AND {ns}").format(
                rel=run.rel, a=all_keys(run), on=eq(run.tkey, "d", run.kcols, "a"), ns=not_staged)).rowcount
    return n


def same_types(run: TableRun, cols: Sequence[str], modifiers: bool = False) -> bool:
    """True when the staging table's columns have exactly the target table's types (and type modifiers,
    with modifiers), so that rows can be compared by their binary images (record *=) instead of their text."""
    q = ("SELECT a.attname, a.atttypid::bigint, CASE WHEN %s THEN a.atttypmod END FROM pg_attribute a"
         " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped")

    def types(rel: sql.Composable) -> dict[str, tuple[int, int | None]]:
        return {n: (t, m) for n, t, m in run.tgt.execute(q, (modifiers, rel.as_string(run.tgt)))}

    stage, live = types(sql.Identifier("pg_temp", STAGE)), types(run.rel)
    return all(c in live and live[c] == stage.get(c) for c in cols)


def differs(run: TableRun, cols: Sequence[str]) -> sql.Composed:
    """Target row d differs from staged row s (see upsert)."""
    # CAST: two bare ROW constructors would be compared column by column with the operator
    drow = sql.SQL("CAST(ROW({}) AS record)").format(idents(cols, "d"))
    srow = sql.SQL("CAST(ROW({}) AS record)").format(idents(cols, "s"))
    if same_types(run, cols):
        return sql.SQL("NOT ({} OPERATOR(pg_catalog.*=) {})").format(drow, srow)
    return sql.SQL("{}::text IS DISTINCT FROM {}::text").format(drow, srow)


def not_in_target(run: TableRun) -> sql.Composed:
    """FROM ... WHERE: the staged rows (alias s) the target lacks or holds otherwise: before the
    upsert, the rows it writes; after it, the rows it failed to write."""
    key = list(run.table.key)
    return sql.SQL(
        "FROM pg_temp.{stage} s WHERE NOT EXISTS (SELECT 1 FROM {rel} d WHERE {on} AND NOT ({differs}))").format(
        stage=sql.Identifier(STAGE), rel=run.rel, on=eq(key, "d", key, "s"), differs=differs(run, run.columns))


def upsert(run: TableRun) -> tuple[int, int]:
    """Staged rows into the target; returns (inserted, updated).

    A row equal to the staged one is neither rewritten nor locked. Rows are compared by their binary
    images (record *=, as REFRESH MATERIALIZED VIEW CONCURRENTLY does: cheaper than their text and at
    least as strict) when the staging table has the target's column types, else by their text. On
    PostgreSQL 17 and later one MERGE probes each staged key once (RETURNING merge_action() tells
    inserts from updates); before, an INSERT of the new keys, then an UPDATE of the rows that differ
    (the table lock keeps other writers out between the two)."""
    cols = run.columns
    key = list(run.table.key)
    other = [c for c in cols if c not in key]
    parts: dict[str, Any] = {
        "rel": run.rel, "stage": sql.Identifier(STAGE), "on": eq(key, "d", key, "s"), "cols": idents(cols),
        "scols": idents(cols, "s"), "skey": idents(key, "s"), "differs": differs(run, cols),
        "sets": sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.Identifier(c), sql.Identifier("s", c)) for c in other)}
    if run.tgt.info.server_version >= MERGE_RETURNING_VERSION:
        return _merge_statement(run, parts, bool(other))
    inserted = run.tgt.execute(sql.SQL(
        "INSERT INTO {rel} ({cols}) SELECT {scols} FROM pg_temp.{stage} s WHERE NOT EXISTS"
        " (SELECT 1 FROM {rel} d WHERE {on}) ORDER BY {skey}").format(**parts)).rowcount
    if not other:
        return inserted, 0
    updated = run.tgt.execute(sql.SQL(
        "UPDATE {rel} AS d SET {sets} FROM pg_temp.{stage} s WHERE {on} AND {differs}").format(**parts)).rowcount
    return inserted, updated


def _merge_statement(run: TableRun, parts: dict[str, Any], update_others: bool) -> tuple[int, int]:
    """upsert on PostgreSQL 17+: one MERGE; with lazy new keys it records the source keys of the rows it
    inserts (see keydiff.new_keys)."""
    update = "WHEN MATCHED AND {differs} THEN UPDATE SET {sets} " if update_others else ""
    record = ""
    if run.lazy_new_keys:
        temp_table(run.tgt, INSERTED, run.spec.s, run.spec.source_types)
        parts["inserted"] = sql.Identifier(INSERTED)
        parts["ret"] = sql.SQL(", ").join(sql.SQL("s.{} AS {}").format(sql.Identifier(t), sql.Identifier(c))
                                          for t, c in zip(run.spec.target_of_s(), run.spec.s, strict=False))
        parts["keys"] = idents(run.spec.s)
        record = ", i AS (INSERT INTO pg_temp.{inserted} SELECT {keys} FROM m WHERE a = 'INSERT')"
    row = run.tgt.execute(sql.SQL(
        "WITH m AS (MERGE INTO {rel} AS d USING pg_temp.{stage} AS s ON {on} " + update +
        "WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({scols}) RETURNING merge_action() AS a" +
        (", {ret}" if record else "") + ")" + record +
        " SELECT count(*) FILTER (WHERE a = 'INSERT'), count(*) FILTER (WHERE a = 'UPDATE') FROM m").format(
        **parts)).fetchone()
    assert row is not None
    return row[0], row[1]
