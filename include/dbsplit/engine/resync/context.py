"""One table's resync: the connections, settings and key layout every step works with (TableRun), and
how it is opened (checks that the table's key and tracking fit, the key fingerprint chosen)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import psycopg
from psycopg import sql

from dbsplit.engine.resync import check as resync_check
from dbsplit.engine.resync import diff as resync_diff
from dbsplit.engine.resync import state as resync_state
from dbsplit.engine.resync.fetch import Fetcher
from dbsplit.engine.resync.keyspec import KeySpec, key_spec, source_column_types
from dbsplit.engine.resync.sql_parts import idents, scalar, table_name
from dbsplit.engine.resync.state import ChangeTrackingMissing
from dbsplit.errors import DbsplitError
from dbsplit.model.resolved import ResolvedTable


@dataclass
class TableRun:
    """One resync of one table; the source connection is inside its snapshot transaction. Holds what the
    steps share: connections, settings, key layout, and the few flags one step sets for the next."""

    src: psycopg.Connection
    tgt: psycopg.Connection
    table: ResolvedTable
    st: resync_state.SyncState
    spec: KeySpec
    types: dict[str, str]                 # source column types
    hash_sql: sql.Composable              # the key fingerprint, evaluated by the source (see key_hash)
    hash_id: str
    fetch: Fetcher
    on_conflict: str
    overlap: timedelta
    run_id: str
    start: float
    suite: resync_check.SuiteCheck | None = None
    target_conninfo: str = ""
    rebuild: bool = False                 # this run rebuilds the key table (it reads every source key)
    lazy_new_keys: bool = False           # see keydiff.new_keys
    merged_once: bool = False             # the staged rows were upserted once
    steps: dict[str, float] = field(default_factory=dict)   # seconds per step
    _t: float = field(default_factory=time.perf_counter)

    @property
    def name(self) -> str:
        return table_name(self.table)

    @property
    def rel(self) -> sql.Identifier:
        return sql.Identifier(self.table.target_schema, self.table.target_table)

    @property
    def source_rel(self) -> sql.Identifier:
        return sql.Identifier(self.table.source_schema, self.table.source_table)

    @property
    def ktab(self) -> sql.Identifier:
        """The key table."""
        return resync_state.key_table_ident(self.st.key_table)

    @property
    def stab(self) -> sql.Identifier:
        """The key table's level-0 bucket sums."""
        return resync_state.key_table_ident(resync_state.sums_table_name(self.st.key_table))

    @property
    def tkey(self) -> list[str]:
        """The target columns matching the s columns (direct) or t columns (mapped) of the key tables."""
        return self.spec.target_of_s() if self.spec.mode == "direct" else list(self.spec.target_cols)

    @property
    def kcols(self) -> list[str]:
        """Key-table columns holding the target key: s (direct) or t (mapped)."""
        return self.spec.s if self.spec.mode == "direct" else self.spec.t

    @property
    def columns(self) -> list[str]:
        """The table's target columns."""
        return [cm.target for cm in self.table.columns]

    def sums_kept(self) -> bool:
        return resync_state.table_oid(self.tgt, resync_state.SCHEMA,
                                      resync_state.sums_table_name(self.st.key_table)) is not None

    def restart_clock(self) -> None:
        self._t = time.perf_counter()

    def step(self, label: str) -> None:
        """Add the time since the last step (or restart_clock) to this step's seconds."""
        now = time.perf_counter()
        self.steps[label] = round(self.steps.get(label, 0.0) + now - self._t, 4)
        self._t = now


def open_run(src: psycopg.Connection, tgt: psycopg.Connection, table: ResolvedTable, st: resync_state.SyncState, *,
             namespace: uuid.UUID, salt: bytes | None, on_conflict: str, overlap: timedelta, run_id: str, tmp: Path,
             start: float) -> TableRun:
    """The run of one table, after checking that its key columns and key mapping still fit its tracking."""
    name = table_name(table)
    src.execute("SELECT set_config('jit', 'off', true)")
    types = source_column_types(src, table.source_schema, table.source_table)
    missing_cols = [c for c in table.source_key if c not in types]
    if missing_cols:
        raise DbsplitError(f"{name}: source key column(s) {missing_cols} are not in "
                           f"{table.source_schema}.{table.source_table}")
    spec = key_spec(table, [types[c] for c in table.source_key])
    if spec.mode != st.key_mode:
        raise ChangeTrackingMissing(f"{name}: the table's key mapping changed ({st.key_mode} -> "
                                    f"{spec.mode}). Fix: call install_change_tracking again.")
    absent = [t for t in spec.source_types if scalar(tgt, "SELECT to_regtype(%s) IS NULL", (t,))]
    if absent:
        raise DbsplitError(f"{name}: source key type(s) {absent} do not exist in the target database")
    hash_sql, hash_id = key_hash(src, spec)
    fetch = Fetcher(src, tgt, table, spec, namespace, salt, tmp, hash_sql)
    return TableRun(src, tgt, table, st, spec, types, hash_sql, hash_id, fetch, on_conflict, overlap, run_id, start)


def key_hash(src: psycopg.Connection, spec: KeySpec) -> tuple[sql.Composable, str]:
    """The key fingerprint, always evaluated by the source server (for the key table too, when keys
    enter it), so both sides of a comparison come from one implementation: PostgreSQL's own 64-bit
    extended hash (the hash-partitioning family, 0.1-0.3 us a key): the key type's default hash
    function for a one-column key, hash_record_extended for several columns; for key types without
    one, the md5-based 60-bit fingerprint of engine/verify/checksums.py (several microseconds a key). The
    function and the source's major version are recorded: a change rebuilds the key table."""
    major = src.info.server_version // 10000
    if len(spec.source_cols) == 1:
        row = src.execute(
            "SELECT p.amproc::regproc::text, c.opcintype::regtype::text FROM pg_opclass c"
            " JOIN pg_am a ON a.oid = c.opcmethod AND a.amname = 'hash'"
            " JOIN pg_amproc p ON p.amprocfamily = c.opcfamily AND p.amprocnum = 2"
            "  AND p.amproclefttype = c.opcintype AND p.amprocrighttype = c.opcintype"
            " WHERE c.opcdefault AND c.opcintype = %s::regtype", (spec.source_types[0],)).fetchone()
        if row:
            fn, argtype = row
            expr = sql.SQL("{}(CAST({} AS {}), 0)").format(
                sql.SQL(fn), sql.Identifier(spec.source_cols[0]), sql.SQL(argtype))
            return expr, f"{fn}/{major}"
    nulls = sql.SQL(", ").join(sql.SQL("NULL::{}").format(sql.SQL(t)) for t in spec.source_types)
    try:
        with src.transaction():
            src.execute(sql.SQL("SELECT hash_record_extended(ROW({}), 0)").format(nulls))
    except psycopg.Error:
        return resync_diff.fingerprint(spec.source_cols), f"md5/{major}"
    return sql.SQL("hash_record_extended(ROW({}), 0)").format(idents(spec.source_cols)), f"hash_record_extended/{major}"
