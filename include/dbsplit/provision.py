"""Create what targets need before a load: the database itself."""

from __future__ import annotations

import psycopg
from psycopg import sql

from dbsplit.conn import dbname_of, with_dbname


def ensure_database(conninfo: str, maintenance_db: str = "postgres") -> bool:
    """Create the database a conninfo names when it does not exist; return True when created."""
    name = dbname_of(conninfo)
    with psycopg.connect(with_dbname(conninfo, maintenance_db), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.DuplicateDatabase:  # created concurrently by another task
            return False
    return True
