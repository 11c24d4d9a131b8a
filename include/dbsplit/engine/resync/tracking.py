"""Change tracking of promoted target tables: installed (triggers, fresh sync state), checked and put
back, removed. The resync reads what the triggers log (see state.py)."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from psycopg import sql

from dbsplit.engine.resync import state as resync_state
from dbsplit.engine.resync.keyspec import key_spec
from dbsplit.engine.resync.sql_parts import scalar, table_name, target_session
from dbsplit.engine.resync.state import lock_key
from dbsplit.errors import DbsplitError
from dbsplit.model.resolved import ResolvedTable

log = logging.getLogger(__name__)


def install_change_tracking(target_conninfo: str, table: ResolvedTable) -> dict[str, Any]:
    """Start tracking a promoted target table: triggers that log every key written by anyone but the
    resync into _dbsplit.target_changes, and a fresh sync state.

    The starting watermark is the highest value of the watermark column in the target when the table
    copies it unchanged (the full load's snapshot); otherwise the first resync reads every source row
    (and writes only the rows that differ). The key table is built by the first resync."""
    spec = key_spec(table)
    name = table_name(table)
    with psycopg.connect(target_conninfo, autocommit=True) as tgt:
        target_session(tgt)
        resync_state.ensure_schema(tgt)
        with tgt.transaction():
            oid = resync_state.table_oid(tgt, table.target_schema, table.target_table)
            if oid is None:
                raise DbsplitError(f"target table {name} does not exist: install change tracking after the"
                                   " table is promoted")
            tgt.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(oid),))   # waits for a running resync
            resync_state.install_triggers(tgt, table.target_schema, table.target_table, table.key)
            wm_target = next((cm.target for cm in table.columns
                              if table.watermark and cm.op == "copy" and cm.source == (table.watermark,)), None)
            baseline = None
            if wm_target:
                baseline = scalar(tgt, sql.SQL("SELECT max({})::text FROM {}").format(
                    sql.Identifier(wm_target), sql.Identifier(table.target_schema, table.target_table)))
            key_table = resync_state.key_table_name(table.target_schema, table.target_table)
            resync_state.reset(tgt, name, oid, spec.mode, key_table, table.watermark, baseline)
    log.info("%s: change tracking installed (%s key, starting watermark %s)", name, spec.mode, baseline)
    return {"target_table": name, "key_mode": spec.mode, "watermark": baseline}


def ensure_change_tracking(target_conninfo: str, table: ResolvedTable) -> bool:
    """install_change_tracking unless the table already has sync state: an existing one keeps its
    watermark and change log. Missing or disabled triggers are put back and the key table is rebuilt by
    the next resync (rows the target lost while they were off are found again; rows changed in the
    target meanwhile cannot be told from the source's). True when this call installed it."""
    name = table_name(table)
    with psycopg.connect(target_conninfo, autocommit=True) as tgt:
        oid = resync_state.table_oid(tgt, table.target_schema, table.target_table)
        if oid is not None and resync_state.table_oid(tgt, resync_state.SCHEMA, "sync_state") is not None:
            st = resync_state.load(tgt, name)
            if st is not None and st.table_oid == oid:
                if not resync_state.triggers_present(tgt, oid):
                    log.warning("%s: change-tracking triggers missing or disabled: put back", name)
                    with tgt.transaction():
                        tgt.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(oid),))
                        resync_state.install_triggers(tgt, table.target_schema, table.target_table, table.key)
                        tgt.execute("UPDATE _dbsplit.sync_state SET keys_ready = false WHERE target_table = %s",
                                    (name,))
                return False
    install_change_tracking(target_conninfo, table)
    return True


def remove_change_tracking(target_conninfo: str, table: ResolvedTable) -> None:
    """Stop tracking a target table: its triggers, change log, key tables and sync state dropped."""
    with psycopg.connect(target_conninfo, autocommit=True) as tgt, tgt.transaction():
        oid = resync_state.table_oid(tgt, table.target_schema, table.target_table)
        if oid is not None:
            tgt.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(oid),))   # waits for a running resync
        resync_state.remove(tgt, table.target_schema, table.target_table)
