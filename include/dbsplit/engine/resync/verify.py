"""Step 4c: after the merge, inside its transaction, every staged row is in the target exactly as staged,
or the whole merge rolls back. Left out where nothing but the merge can have written the rows."""

from __future__ import annotations

from psycopg import sql

from dbsplit.engine.resync import state as resync_state
from dbsplit.engine.resync.context import TableRun
from dbsplit.engine.resync.merge_rows import not_in_target, same_types
from dbsplit.engine.resync.names import STAGE
from dbsplit.engine.resync.sql_parts import join_text, scalar
from dbsplit.errors import DataCheckFailed


def verify_needed(run: TableRun) -> str | None:
    """Why the staged rows must be looked up again after the merge, or None when nothing else can have
    written them: no user trigger in the database, no rule on the table, no referential action of its
    foreign keys, and staging columns of exactly the table's types (modifiers included)."""
    if not same_types(run, run.columns, modifiers=True):
        return "staged column types differ"
    q = ("SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_trigger WHERE NOT tgisinternal AND NOT starts_with(tgname,"
         " %(track)s))"
         "  THEN 'a user trigger in the target database'"
         " WHEN EXISTS (SELECT 1 FROM pg_rewrite WHERE ev_class = %(oid)s::oid AND rulename <> '_RETURN')"
         "  THEN 'a rule on the table'"
         " WHEN EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = %(oid)s::oid AND contype = 'f'"
         "  AND (confdeltype NOT IN ('a', 'r') OR confupdtype NOT IN ('a', 'r'))) THEN 'a foreign key with an action'"
         " END")
    return scalar(run.tgt, q, {"track": resync_state.TRIGGER_PREFIX, "oid": run.st.table_oid})


def verify_staged(run: TableRun, why: str) -> int:
    """Every staged row is in the target exactly as staged (as the source has it, through the plan's
    transforms), or DataCheckFailed. Work follows the staged rows. What makes it fail: a trigger or
    cascade that changes or removes rows the resync wrote, a target column that cannot hold a source
    value exactly. Returns how many staged rows were looked up."""
    off = not_in_target(run)
    row = run.tgt.execute(sql.SQL("SELECT (SELECT count(*) FROM pg_temp.{}), (SELECT count(*) {})").format(
        sql.Identifier(STAGE), off)).fetchone()
    assert row is not None
    total, wrong = row
    shown: list[str] = []
    if wrong:
        keys = join_text(list(run.table.key), "s")
        shown = [r[0] for r in run.tgt.execute(sql.SQL("SELECT {} {} ORDER BY 1 LIMIT 20").format(keys, off))]
    run.step("verify")
    if wrong:
        more = " ..." if wrong > len(shown) else ""
        raise DataCheckFailed(
            f"{run.name}: after the merge {wrong} of the {total} staged row(s) are not in the target as the "
            f"source has them (looked up again for {why}; nothing was changed): key {', '.join(shown)}{more}. "
            "A trigger, rule or ON DELETE/UPDATE action of the target table changed or removed them, or a target "
            "column cannot hold the source's value exactly. Fix: drop or adapt what changes them (or the column "
            "type), then resync again.")
    return int(total)
