"""The steps of one table's resync, in the order resync_service and the merge transaction call them:
prepare (step 1), diff (2), check (3), upsert / delete / verify / record (4), finish. Each step's work
lives in its own module; this class keeps what one step hands the next."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

from psycopg import sql

from dbsplit.engine.resync import state as resync_state
from dbsplit.engine.resync.conflicts import TRUNCATED, conflicts, stop_on_conflicts
from dbsplit.engine.resync.context import TableRun
from dbsplit.engine.resync.keydiff import KeyDiff
from dbsplit.engine.resync.keyspec import too_many_rejects
from dbsplit.engine.resync.keytable import maintain_keys, root_bounds
from dbsplit.engine.resync.merge_rows import delete, not_in_target, upsert
from dbsplit.engine.resync.names import KEYHASH, KEYSTAGE, STAGE
from dbsplit.engine.resync.result import ResyncResult
from dbsplit.engine.resync.sql_parts import MERGE_RETURNING_VERSION, idents, probe_joins, scalar
from dbsplit.engine.resync.verify import verify_needed, verify_staged
from dbsplit.engine.resync.window import window
from dbsplit.errors import DbsplitError

log = logging.getLogger(__name__)


class TableResync:
    """One table's resync, step by step (see the module docstring of resync.py)."""

    def __init__(self, run: TableRun) -> None:
        self.run = run
        self.keydiff = KeyDiff(run)
        self.before: str | None = None
        self.after: str | None = None
        self.truncated = False
        self.gone: list[tuple[str, ...]] = []
        self.stale = False
        self.diff_stats: dict[str, int] = {}
        self.max_id = 0
        self.conflicts: list[str] = []
        self.skipped = 0
        self.rejected: list[str] = []
        self.deleted = 0
        self.inserted = self.updated = 0
        self.verified: int | None = None
        self.checked: int | None = None
        self._unmerged = True              # staged rows not upserted yet

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def rel(self) -> sql.Identifier:
        return self.run.rel

    @property
    def steps(self) -> dict[str, float]:
        return self.run.steps

    @property
    def rebuild(self) -> bool:
        """This run rebuilds the key table (it reads every source key)."""
        return self.run.rebuild

    def other_unique(self) -> bool:
        """The target table has a unique (or exclusion) index besides its primary key."""
        return bool(scalar(self.run.tgt, "SELECT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = %s::regclass"
                           " AND (indisunique OR indisexclusion) AND NOT indisprimary)",
                           (self.rel.as_string(self.run.tgt),)))

    def key_count(self) -> int:
        """About how many keys the key table holds (the planner's estimate: no scan; 0 before it exists)."""
        return int(scalar(self.run.tgt, "SELECT coalesce((SELECT greatest(reltuples, 0)::bigint FROM pg_class"
                          " WHERE oid = to_regclass(%s)), 0)", (self.run.ktab.as_string(self.run.tgt),)))

    def _truncated(self) -> bool:
        return bool(scalar(self.run.tgt, "SELECT EXISTS (SELECT 1 FROM _dbsplit.target_changes WHERE target_table = %s"
                           " AND op = 'TRUNCATE')", (self.name,)))

    def _analyze_stage(self) -> None:
        """Statistics of the key columns of the staging tables (row counts and key distinctness for the
        planner; the other columns are not needed)."""
        spec = self.run.spec
        key = list(spec.target_cols)
        targets = [(STAGE, key)] if self.run.fetch.hashed_stage else [(STAGE, key), (KEYHASH, spec.s)]
        if spec.mode == "mapped":
            targets.append((KEYSTAGE, [*spec.s, *spec.t]))
        for name, cols in targets:
            self.run.tgt.execute(sql.SQL("ANALYZE pg_temp.{} ({})").format(sql.Identifier(name), idents(cols)))

    def _joins(self) -> None:
        """Inside the merge transaction, at the start of each of this table's phases: index probes for an
        incremental run (see probe_joins), the session's planner settings for a rebuild."""
        if self.run.rebuild:
            self.run.tgt.execute("RESET enable_hashjoin")
            self.run.tgt.execute("RESET enable_mergejoin")
        else:
            probe_joins(self.run.tgt)

    def prepare(self, source_conninfo: str, pool: ThreadPoolExecutor, may_overlap: bool = False) -> None:
        """Step 1, outside the merge transaction: the changed rows staged; the source's level-0 key
        summaries started in more sessions. may_overlap: the merge will probably upsert before the
        diff finishes (see transaction.merge): the target's side of the diff waits for the upsert, which
        tells the new keys (lazy, pass-through tables on PostgreSQL 17+)."""
        run = self.run
        run.restart_clock()
        self.truncated = truncated = self._truncated()
        run.rebuild = not run.st.keys_ready or truncated or run.st.key_hash != run.hash_id
        # the pass over the source keys starts after pass-through rows (a COPY of the source's pages on
        # the critical path, slowed by a second pass over the same pages), before transformed ones
        # (their time is spent in this process, which the pass can overlap)
        root = not run.rebuild and run.st.root_bounds is not None and run.sums_kept()
        if root and not run.fetch.hashed_stage:
            self.keydiff.start_source_root(source_conninfo, pool)
        run.fetch.create_stage()
        where, self.before, self.after = window(run)
        if run.table.watermark and self.before is None:
            log.info("%s: no previous watermark: every source row is read (only differing rows are written)", self.name)
        run.fetch.stage_where(where)
        if root and run.fetch.hashed_stage:
            self.keydiff.start_source_root(source_conninfo, pool)
        self._analyze_stage()
        run.step("read changed rows")
        run.lazy_new_keys = (may_overlap and not run.rebuild and run.fetch.hashed_stage
                             and run.tgt.info.server_version >= MERGE_RETURNING_VERSION)
        if not run.rebuild and not run.lazy_new_keys:
            self.keydiff.start()
            run.step("diff keys")

    def diff(self) -> None:
        """Step 2: deletions found, the rows of keys the target lacks staged (before the merge, or inside
        it after the first upsert: see transaction.merge)."""
        run = self.run
        run.restart_clock()
        self.gone = []
        self.stale = False
        if run.rebuild:
            missing = self.keydiff.rebuild()
            diff = {"rebuilt_keys": 1, "source_keys": run.fetch.rows, "missing_in_target": len(missing)}
        else:
            res = self.keydiff.incremental()
            missing, self.gone = res.source_only, res.target_only
            diff = {"levels": res.levels, "buckets": res.buckets, "differing_buckets": res.differing_buckets,
                    "leaf_keys": res.leaf_keys, "source_only": len(missing), "target_only": len(self.gone)}
            self.stale = run.st.root_bounds is None or res.bounds_stale()
        self.diff_stats = diff
        run.step("diff keys")
        if missing:
            run.fetch.stage_keys(missing)
            self._analyze_stage()
            self._unmerged = True
        run.step("read differing keys")

    def check(self) -> None:
        """Step 3, in the merge transaction with the table locked: conflicts and rejects, before anything
        of any table is changed (on_conflict=stop and too many rejects stop the whole merge)."""
        self.run.restart_clock()
        self._joins()
        row = self.run.tgt.execute(
            "SELECT coalesce(max(id), 0), coalesce(bool_or(op = 'TRUNCATE'), false) FROM _dbsplit.target_changes"
            " WHERE target_table = %s", (self.name,)).fetchone()
        assert row is not None
        self.max_id, has_truncate = row
        if has_truncate and not self.truncated:
            raise DbsplitError(f"{self.name} was truncated in the target during this resync; nothing was changed. "
                               "Fix: run the resync again.")
        found, self.skipped = conflicts(self.run, self.max_id)
        self.conflicts = [TRUNCATED, *found] if self.truncated else found
        self.run.step("conflicts")
        stop_on_conflicts(self.run, self.conflicts)
        self.check_rejects()

    def check_rejects(self) -> None:
        """Too many source rows rejected by the transforms stop the whole merge (it rolls back)."""
        self.rejected = [f"{r.key}: {r.column or '-'}: {r.reason}" for r in self.run.fetch.rejects]
        if len(self.rejected) > self.run.table.max_rejected_rows:
            raise too_many_rejects(self.name, str(len(self.rejected)), self.run.table.max_rejected_rows,
                                   self.rejected[0])

    def delete(self) -> None:
        """Step 4a, in the merge transaction (children before parents)."""
        self.run.restart_clock()
        self._joins()
        self.deleted = delete(self.run, self.gone)
        self.run.step("delete")

    def upsert(self) -> None:
        """Step 4b, in the merge transaction (parents before children): the staged rows not merged yet
        (all of them, again, after the diff staged more: the merged ones are equal now, not rewritten)."""
        if not self._unmerged:
            return
        run = self.run
        run.restart_clock()
        self._joins()
        if run.suite is not None and run.suite.spec["expectations"]:
            self.checked = (self.checked or 0) + run.suite.run(   # a second upsert checks the rows the diff added
                run.tgt, run.target_conninfo, STAGE, run.columns, not_in_target(run),
                self.name, run.st.table_oid, run.run_id)
            run.step("suite")
        inserted, updated = upsert(run)
        self.inserted += inserted
        self.updated += updated
        self._unmerged = False
        run.merged_once = True
        run.step("upsert")

    def verify(self) -> None:
        """Step 4c, in the merge transaction (see verify.py): verified stays None where it is left out."""
        self.run.restart_clock()
        why = verify_needed(self.run)
        if why is None:   # nothing but the merge's own statements wrote the table, from rows of its types
            self.run.step("verify")
            return
        self._joins()
        self.verified = verify_staged(self.run, why)

    def record(self) -> None:
        """Step 4d, in the merge transaction: key table, change log, sync state."""
        run = self.run
        run.restart_clock()
        self._joins()
        maintain_keys(run, self.gone)
        run.step("key table")
        bounds: list[list[str]] | None | bool = False
        if run.rebuild:
            bounds = root_bounds(run)
            self.stale = False
        run.tgt.execute("DELETE FROM _dbsplit.target_changes WHERE target_table = %s AND id <= %s",
                        (self.name, self.max_id))
        resync_state.record_run(
            run.tgt, self.name, watermark=self.after, run_id=run.run_id, upserted=self.inserted + self.updated,
            deleted=self.deleted, conflicts=self.conflicts, skipped=self.skipped, rejected=len(self.rejected),
            verified=self.verified, seconds=time.perf_counter() - run.start, key_hash=run.hash_id, root_bounds=bounds)
        run.step("merge")

    def finish(self) -> ResyncResult:
        """After the merge committed: key table maintenance, the result."""
        run = self.run
        run.restart_clock()
        if run.rebuild:   # sets its visibility map: the index probes of the next runs are index-only
            run.tgt.execute(sql.SQL("VACUUM (ANALYZE) {}").format(run.ktab))
            run.step("vacuum key table")
        if self.stale:
            with run.tgt.transaction():
                resync_state.store_root_bounds(run.tgt, self.name, root_bounds(run))
            run.step("refresh bounds")
        return self._result(time.perf_counter() - run.start)

    def _result(self, seconds: float) -> ResyncResult:
        run, suite = self.run, self.run.suite
        inserted, deleted, conflicts = self.inserted, self.deleted, self.conflicts
        result = ResyncResult(
            upserted=inserted + self.updated, deleted=deleted, conflicts=conflicts, skipped_conflicts=self.skipped,
            seconds=round(seconds, 4), watermark_before=self.before, watermark_after=self.after, inserted=inserted,
            updated=self.updated, read_rows=run.fetch.rows, rejected=self.rejected, rebuilt_keys=run.rebuild,
            diff=self.diff_stats, steps=run.steps, verified=self.verified, checked=self.checked,
            checks=suite.outcomes if suite else [], checks_table_wide=suite.table_wide if suite else [])
        log.info("%s: resync %s: %d upserted (%d new), %d deleted, %d conflict(s), %d skipped, %d read, %.2f s",
                 self.name, run.run_id, result.upserted, inserted, deleted, len(conflicts), self.skipped,
                 result.read_rows, seconds)
        if conflicts:
            log.warning("%s: target-side changes overwritten by the source: %s", self.name, ", ".join(conflicts[:50]))
        return result
