"""The child's metadata database: created once per Airflow version, then the dags folder parsed and synced.

``dag.test()`` only runs DAGs serialized in the metadata database, so the child writes them there
before the first run. Airflow is imported inside the functions (see dbsplit.local.airflow_local).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

# Marker written next to the SQLite file once the schema exists; holds the Airflow version.
MIGRATED_MARKER = ".dbsplit-db-migrated"


def ensure_db(home: Path) -> tuple[bool, float]:
    """Create/upgrade the metadata DB unless our marker says this Airflow version did it."""
    import airflow
    from airflow.utils import db

    marker = home / MIGRATED_MARKER
    db_file = home / "airflow.db"
    stamp = f"apache-airflow {airflow.__version__}\n"
    if db_file.exists() and marker.exists() and marker.read_text() == stamp:
        return False, 0.0
    started = time.monotonic()
    db.upgradedb()  # == `airflow db migrate`: a new DB is created from the ORM (fast path)
    took = time.monotonic() - started
    marker.write_text(stamp)
    return True, took


def parse_and_sync(sync: bool = True) -> tuple[dict[str, Any], dict[str, str]]:
    """Parse every configured bundle once and (unless sync is False) write its DAGs to the metadata DB."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db

    manager = DagBundlesManager()
    if sync:
        manager.sync_bundles_to_db()
    dags: dict[str, Any] = {}
    import_errors: dict[str, str] = {}
    for bundle in manager.get_all_dag_bundles():
        if not bundle.is_initialized:
            bundle.initialize()
        bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
        if sync:
            sync_bag_to_db(bag, bundle.name, bundle.version)
            _unpause([i for i, d in bag.dags.items() if getattr(d, "is_paused_upon_creation", None) is not True])
        dags.update(bag.dags)
        import_errors.update({f"{bundle.name}:{path}": err for path, err in bag.import_errors.items()})
    return dags, import_errors


def _unpause(dag_ids: list[str]) -> None:
    """Local runs are explicit: their DAGs are unpaused, as the orchestrator's trigger tasks require of the
    service DAGs (a DAG declared is_paused_upon_creation=True stays as it is)."""
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    with create_session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id.in_(dag_ids)).values(is_paused=False))
