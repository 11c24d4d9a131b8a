"""What the orchestrator's phase tasks do at run time: preflight, backup, provision, cross-service
validation, cut-over (freeze, final sync), rollback, and the end of the dual-write period (tracking
removed from cut-over tables). The service pipelines themselves run
runtime.py's functions.

Every function takes the JSON-able orchestrator descriptor built by render.py; what a phase did is
returned (XCom) so that rollback can undo exactly that.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import psycopg

from dbsplit.airflow import connections as conn  # Airflow connections: resolve, service_role, grant_service
from dbsplit.engine.resolve import resolve_service
from dbsplit.errors import DataCheckFailed, DbsplitError, PreflightFailed, RunRolledBack
from dbsplit.model.resolved import ResolvedTable
from dbsplit.pg import copy, provision, staging
from dbsplit.pg.conn import dbname_of
from dbsplit.plan import Plan, load_plan

log = logging.getLogger(__name__)


def _plan(orch: dict[str, Any]) -> Plan:
    return load_plan(orch["plan_path"])


def _tables(orch: dict[str, Any], services: list[str] | None = None) -> dict[str, list[ResolvedTable]]:
    plan = _plan(orch)
    with copy.source_connection(conn.resolve(plan.source.conn_id)) as src, src.transaction():
        return {s: resolve_service(plan, s, src) for s in (services or list(plan.services))}


def _target(plan: Plan, service: str) -> str:
    return conn.resolve(plan.services[service].target.conn_id)


def backups_dir() -> Path:
    """$DBSPLIT_BACKUPS_DIR, else $AIRFLOW_HOME/dbsplit/backups."""
    explicit = os.environ.get("DBSPLIT_BACKUPS_DIR")
    root = Path(explicit) if explicit else Path(os.environ.get("AIRFLOW_HOME", "~/airflow")) / "dbsplit" / "backups"
    return root.expanduser().resolve()


def preflight(orch: dict[str, Any], services: list[str]) -> dict[str, Any]:
    """Connections, versions, source tables, disk, unmanaged target tables; raise PreflightFailed on any failure."""
    from dbsplit.engine.preflight import preflight as run_checks

    plan = _plan(orch)
    tables = _tables(orch, services)
    targets = {plan.services[s].target.conn_id: _target(plan, s) for s in services}
    routes = [(t.source_schema, t.source_table, t.target_schema, t.target_table, plan.services[s].target.conn_id)
              for s, ts in tables.items() for t in ts]
    roles = {r[0]: plan.services[s].target.conn_id for s in services
             if (r := conn.service_role(plan.services[s].target.conn_id)) is not None}
    report = run_checks(conn.resolve(plan.source.conn_id), targets, routes, roles=roles)
    log.info("preflight:\n%s", report)
    if not report.ok:
        raise PreflightFailed("preflight failed, nothing was changed: " + "; ".join(
            f"{c.name}: {c.detail}" for c in report.failures) + ". Fix: correct each failed check, then trigger the "
            "orchestrator again (dry_run runs only the preflight)")
    return {"checks": len(report.checks), "warnings": [f"{c.name}: {c.detail}" for c in report.warnings]}


def backup(orch: dict[str, Any], services: list[str], run_id: str) -> dict[str, Any]:
    """pg_dump the source tables of the services and every existing target database; verify each file,
    and prove that the source backup restores (into a scratch database that is dropped afterwards)."""
    from dbsplit.pg import backup as bk

    plan = _plan(orch)
    out = backups_dir() / orch["plan"] / run_id.replace(":", "_").replace("+", "_")
    tables = _tables(orch)  # every table of the plan: a restore needs the tables that foreign keys point at
    source_tables = sorted({(t.source_schema, t.source_table) for ts in tables.values() for t in ts})
    files = [bk.dump_tables(conn.resolve(plan.source.conn_id), source_tables, out / "source")]
    for s in services:
        target = _target(plan, s)
        if _database_exists(target):
            files.append(bk.dump_database(target, out / f"target-{s}"))
    for f in files:
        bk.verify(f)
    _test_restore(files[0], conn.resolve(plan.source.conn_id), source_tables)
    log.info("backups in %s: %s", out, ", ".join(f"{f.path.name} ({f.bytes} bytes)" for f in files))
    return {"dir": str(out), "files": [str(f.path) for f in files]}


def _database_exists(conninfo: str) -> bool:
    try:
        with psycopg.connect(conninfo, connect_timeout=10):
            return True
    except psycopg.OperationalError:
        return False


def _test_restore(backup_file: Any, source: str, tables: list[tuple[str, str]]) -> None:
    """Restore a backup into a scratch database on the source's server, then drop it.

    A table dump holds no types, so the enums and domains its tables use are created first.
    """
    from dbsplit.pg import backup as bk
    from dbsplit.pg import catalog, ddl
    from dbsplit.pg.conn import with_dbname

    scratch = f"dbsplit_restore_test_{os.getpid()}"
    admin = with_dbname(source, "postgres")
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {}").format(psycopg.sql.Identifier(scratch)))
        c.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(scratch)))
    try:
        with copy.source_connection(source) as src, src.transaction():
            types = {t for info in catalog.read_tables(src, tables) for t in info.user_types}
        with psycopg.connect(with_dbname(source, scratch)) as c, c.transaction():
            for t in sorted(types, key=lambda t: t.kind != "enum"):
                ddl.ensure_user_type(c, t)
        bk.restore(backup_file, with_dbname(source, scratch))
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                psycopg.sql.Identifier(scratch)))


def provision_targets(orch: dict[str, Any], services: list[str]) -> dict[str, Any]:
    """Create each service's database (and schema), and its least-privilege role when a
    `<target conn id>_role` Airflow connection names one (login = role, password = its password)."""
    plan = _plan(orch)
    done: dict[str, Any] = {}
    for s in services:
        target = _target(plan, s)
        svc = plan.services[s]
        created_db = provision.ensure_database(target)
        provision.ensure_schema(target, svc.target.schema_)
        role = conn.service_role(svc.target.conn_id)
        result = None
        if role is not None:
            result = provision.ensure_service_role(target, dbname_of(target), role[0], role[1], [svc.target.schema_])
        done[s] = {"created_database": created_db or bool(result and result.created_database),
                   "role": role[0] if role else None, "created_role": bool(result and result.created_role)}
    log.info("provisioned: %s", done)
    return done


def cross_validate(orch: dict[str, Any], services: list[str]) -> dict[str, Any]:
    """Every soft reference of every service resolves in the referenced service's database."""
    from dbsplit.engine.verify.references import check_reference, reference_outcome

    plan = _plan(orch)
    outcomes = []
    for s, tables in _tables(orch, services).items():
        for t in tables:
            for ref in t.soft_references:
                ref_schema, ref_table = ref.referenced_table.split(".", 1)
                result = check_reference(_target(plan, s), t.target_schema, t.target_table, ref.column,
                                         _target(plan, ref.referenced_service), ref_schema, ref_table,
                                         ref.referenced_column)
                outcomes.append({"table": f"{s}: {t.target_schema}.{t.target_table}"} | reference_outcome(result, ref))
    failed = [o for o in outcomes if not o["success"]]
    for o in outcomes:
        log.info("%s %s.%s: %s", "ok" if o["success"] else "FAIL", o["table"], o["column"], o["details"])
    if failed:
        raise DataCheckFailed("; ".join(f"{o['table']}.{o['column']}: {o['details']}" for o in failed))
    return {"references": len(outcomes)}


def freeze_source(orch: dict[str, Any], services: list[str], run_id: str) -> dict[str, Any]:
    """Cut-over: guard the migrated source tables against writes (the only write dbsplit makes to a source)."""
    from dbsplit.pg.freeze import freeze

    plan = _plan(orch)
    tables = sorted({(t.source_schema, t.source_table) for ts in _tables(orch, services).values() for t in ts})
    state = freeze(conn.resolve(plan.source.conn_id), tables,
                   f"dbsplit plan {plan.name!r} run {run_id} has cut over: write to the service databases")
    return {"frozen": [list(t) for t in state.newly_frozen]}


def final_sync(orch: dict[str, Any], services: list[str], run_id: str) -> dict[str, Any]:
    """Cut-over, after the freeze: each service's tables brought level with the frozen source, so that
    rows written to the monolith between a service's load and the freeze are not left behind. One
    resync per service (one source snapshot, one merge transaction, suites checked on the changed
    rows); a table without a watermark gets change tracking for this sync only and is read whole
    (only differences are written). A table without a key cannot be synced: it is named in the result
    and the log. Fails, and changes nothing in that service, when a check fails."""
    from dbsplit.airflow.context import mask_salt
    from dbsplit.engine.resync.resync import ensure_change_tracking, remove_change_tracking, resync_service
    from dbsplit.engine.staged_checks import table_suites

    plan = _plan(orch)
    source = conn.resolve(plan.source.conn_id)
    done: dict[str, Any] = {}
    keyless: list[str] = []
    for service, resolved in _tables(orch, services).items():
        target = _target(plan, service)
        tables = [t for t in resolved if t.key]
        keyless += [f"{t.target_schema}.{t.target_table}" for t in resolved if not t.key]
        only_now = [t for t in tables if not t.watermark]   # the resync DAG tracks the others
        try:
            for table in tables:
                ensure_change_tracking(target, table)
            results = resync_service(source, target, tables, namespace=plan.namespace_uuid, salt=mask_salt(plan),
                                     on_conflict=plan.services[service].resync.on_conflict, run_id=run_id,
                                     suites=table_suites(orch["plan_path"], tables)) if tables else {}
        finally:
            for table in only_now:   # no resync DAG keeps it current: nothing would read its change log
                remove_change_tracking(target, table)
        conn.grant_service(target, plan.services[service].target.conn_id,
                             [(t.target_schema, t.target_table) for t in resolved])
        done[service] = {name: {"upserted": r.upserted, "deleted": r.deleted, "conflicts": len(r.conflicts)}
                         for name, r in results.items()}
        log.info("final sync of %s: %s", service, done[service])
    if keyless:
        log.warning("final sync: tables without a key cannot be resynced; writes made to them since their load "
                    "are not carried over: %s", ", ".join(keyless))
    return {"synced": done, "not_synced_no_key": keyless}


def mark_cut_over(orch: dict[str, Any], services: list[str], service: str, run_id: str) -> dict[str, Any]:
    """The cut-over's last step for a service: its tables recorded in its database as the system of
    record (_dbsplit.cut_over), so that a resync left scheduled refuses to overwrite them."""
    from dbsplit.engine.resync import state as resync_state

    plan = _plan(orch)
    tables = [(t.target_schema, t.target_table) for t in _tables(orch, [service])[service]]
    names = [f"{s}.{t}" for s, t in tables]
    with psycopg.connect(_target(plan, service), autocommit=True) as tgt:
        resync_state.mark_cut_over(tgt, names, run_id)
    # the service's database is the system of record from now on: its role can use every table
    granted = conn.grant_service(_target(plan, service), plan.services[service].target.conn_id, tables)
    return {"service": service, "cut_over": names, "granted": granted}


def end_dual_write(orch: dict[str, Any], services: list[str]) -> dict[str, Any]:
    """After a cut-over, once it is final: the services' tables are no longer tracked for the resync
    (the triggers that log every service write, the change log, key tables and sync state dropped;
    nothing reads them once the service database is the system of record). _dbsplit.cut_over stays,
    so a resync or a migration still refuses those tables. A service whose tables were not all cut
    over is refused, before anything of any service is changed: its resync still needs them."""
    from dbsplit.engine.resync import state as resync_state
    from dbsplit.engine.resync.resync import remove_change_tracking

    plan = _plan(orch)
    tables = _tables(orch, services)
    names = {s: [f"{t.target_schema}.{t.target_table}" for t in ts] for s, ts in tables.items()}
    not_cut: list[str] = []
    for service, wanted in names.items():
        with psycopg.connect(_target(plan, service), autocommit=True) as tgt:
            done = resync_state.cut_over(tgt, wanted)
        not_cut += [f"{service}: {n}" for n in wanted if n not in done]
    if not_cut:
        raise DbsplitError(
            f"plan {orch['plan_path']}: the dual-write period of a service ends after its cut-over; not cut over: "
            f"{', '.join(not_cut)} (nothing was changed). Fix: cut the service over first (dbsplit_orchestrator "
            "with cut_over), or leave it out of the `services` parameter.")
    for service, ts in tables.items():
        target = _target(plan, service)
        for table in ts:
            remove_change_tracking(target, table)
        log.info("%s: change tracking removed from %s", service, ", ".join(names[service]))
    return {"ended": names}


def unfreeze_source(orch: dict[str, Any], tables: list[list[str]] | None = None) -> dict[str, Any]:
    """Remove the write guards (all the plan's source tables unless tables are given)."""
    from dbsplit.pg.freeze import unfreeze

    plan = _plan(orch)
    if tables is None:
        pairs = sorted({(t.source_schema, t.source_table) for ts in _tables(orch).values() for t in ts})
    else:
        pairs = [(schema, table) for schema, table in tables]
    done = unfreeze(conn.resolve(plan.source.conn_id), pairs)
    return {"unfrozen": [list(t) for t in done]}


def rollback(orch: dict[str, Any], did: dict[str, Any]) -> None:
    """Undo what this run did, newest first: cut-over records, freeze, promotions, what provision created.

    did: {"reason": why the run failed (its failed tasks), "run_id", "published": [service...],
    "frozen": [[schema, table]...], "promoted": {service: [schema.table...]}, "provisioned": {...}}.
    Raises RunRolledBack at the end, naming the reason, so that the run is marked failed.
    """
    plan = _plan(orch)
    undone = _unpublish(plan, did.get("published") or [], did.get("run_id"))
    if did.get("frozen"):
        undone.append(f"unfroze {len(unfreeze_source(orch, did['frozen'])['unfrozen'])} source table(s)")
    for service, tables in (did.get("promoted") or {}).items():
        with psycopg.connect(_target(plan, service)) as tgt, tgt.transaction():
            for name in tables:
                schema, table = name.split(".", 1)
                undone.append(f"{service}: {name} {staging.swap_back(tgt, schema, table)}")
    for service, p in (did.get("provisioned") or {}).items():
        if p.get("created_database") and not did.get("promoted", {}).get(service):
            undone.append(f"{service}: {provision_undo(plan, service, p)}")
    log.warning("rolled back: %s", "; ".join(undone) or "nothing to undo")
    raise RunRolledBack(f"{did.get('reason') or 'a task failed'}. Rolled back: {'; '.join(undone) or 'nothing to undo'}"
                        ". Fix: correct the cause named above, then trigger the orchestrator again")


def _unpublish(plan: Plan, services: list[str], run_id: str | None) -> list[str]:
    """Remove the _dbsplit.cut_over records this run's publish tasks wrote."""
    from dbsplit.engine.resync import state as resync_state

    undone: list[str] = []
    if run_id is None:
        return undone
    for service in services:
        with psycopg.connect(_target(plan, service), autocommit=True) as tgt:
            tables = resync_state.unmark_cut_over(tgt, run_id)
        undone += [f"{service}: cut-over record of {', '.join(tables)} removed"] if tables else []
    return undone


def provision_undo(plan: Plan, service: str, p: dict[str, Any]) -> str:
    """Drop a database (and role) this run created, if it holds no table outside dbsplit's schemas."""
    target = _target(plan, service)
    with psycopg.connect(target) as c:
        row = c.execute("SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', "
                        "'information_schema', '_dbsplit', '_dbsplit_staging', '_dbsplit_prev')").fetchone()
        user_tables = row[0] if row else 0
    if user_tables:
        return f"kept database {dbname_of(target)} ({user_tables} table(s) in it)"
    from dbsplit.pg.conn import with_dbname

    with psycopg.connect(with_dbname(target, "postgres"), autocommit=True) as c:
        c.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            psycopg.sql.Identifier(dbname_of(target))))
        if p.get("created_role") and p.get("role"):
            c.execute(psycopg.sql.SQL("DROP ROLE IF EXISTS {}").format(psycopg.sql.Identifier(p["role"])))
    return f"dropped database {dbname_of(target)} created by this run"
