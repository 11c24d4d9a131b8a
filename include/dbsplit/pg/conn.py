"""Connection strings: libpq URLs, Airflow connections and SQLAlchemy URLs, and the mapping between them.

The plan names Airflow connection ids only. At run time a task resolves an id into a libpq conninfo
string; environments (demo, tests, `make airflow`) define the connections as AIRFLOW_CONN_<ID>
variables built from a server URL.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dbsplit.errors import ConnectionConfigError

# libpq keys that may ride in an Airflow connection's extra field
_LIBPQ_EXTRA_KEYS = {"sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "options", "application_name"}


# Options of every session dbsplit opens on the source: each transaction starts READ ONLY, and string
# literals read as PostgreSQL's parser in the plan checker (pglast) reads them.
SOURCE_OPTIONS = "-c default_transaction_read_only=on -c standard_conforming_strings=on"


def read_only(conninfo: str) -> str:
    """conninfo whose sessions take SOURCE_OPTIONS, after the options it (or $PGOPTIONS) already gives."""
    params = conninfo_to_dict(conninfo)
    given = params.get("options") or os.environ.get("PGOPTIONS")   # an `options` key would hide $PGOPTIONS
    params["options"] = f"{given} {SOURCE_OPTIONS}" if given else SOURCE_OPTIONS
    return make_conninfo("", **params)


def connect_source(conninfo: str, **kwargs: Any) -> psycopg.Connection:
    """A session on the source (or any database dbsplit only reads) that no transaction can write from.

    The one place such sessions are opened, except the cut-over's freeze and unfreeze (freeze.py),
    which write to the source on purpose."""
    return psycopg.connect(read_only(conninfo), **kwargs)


def with_dbname(conninfo: str, dbname: str) -> str:
    """The same server and credentials, another database."""
    params = conninfo_to_dict(conninfo)
    params["dbname"] = dbname
    return make_conninfo("", **params)


def dbname_of(conninfo: str) -> str:
    """The database a conninfo string points at."""
    return str(conninfo_to_dict(conninfo).get("dbname") or conninfo_to_dict(conninfo).get("user") or "postgres")


def airflow_conn_env(conn_id: str, conninfo: str) -> tuple[str, str]:
    """The AIRFLOW_CONN_<ID> variable (name, JSON value) that defines conn_id as this database."""
    params = conninfo_to_dict(conninfo)
    body: dict[str, Any] = {"conn_type": "postgres", "host": params.pop("host", None)}
    if "port" in params:
        body["port"] = int(str(params.pop("port")))
    body["login"] = params.pop("user", None)
    body["password"] = params.pop("password", None)
    body["schema"] = params.pop("dbname", None)
    extra = {k: v for k, v in params.items() if k in _LIBPQ_EXTRA_KEYS}
    if extra:
        body["extra"] = extra
    return f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({k: v for k, v in body.items() if v is not None})


def conninfo_from_airflow(conn: Any) -> str:
    """A libpq conninfo string from an Airflow Connection object (host may be a socket directory)."""
    if conn.conn_type not in (None, "postgres", "postgresql"):
        raise ConnectionConfigError(
            f"connection {conn.conn_id!r} has type {conn.conn_type!r}; dbsplit needs a postgres connection. "
            "Fix: define it with conn_type postgres."
        )
    params: dict[str, Any] = {
        "host": conn.host, "port": conn.port, "user": conn.login, "password": conn.password, "dbname": conn.schema,
    }
    params.update({k: v for k, v in conn.extra_dejson.items() if k in _LIBPQ_EXTRA_KEYS})
    return make_conninfo(**{k: v for k, v in params.items() if v not in (None, "")})


def sqlalchemy_url(conninfo: str) -> str:
    """A SQLAlchemy URL for psycopg 3; a socket directory goes in ?host= so that it is not read as the database."""
    p = conninfo_to_dict(conninfo)
    auth = quote(str(p.get("user", "postgres")), safe="")
    if p.get("password"):
        auth += ":" + quote(str(p["password"]), safe="")
    host = str(p.get("host", ""))
    db = quote(str(p.get("dbname", "postgres")), safe="")
    if host.startswith("/") or not host:
        port = f"&port={p['port']}" if p.get("port") else ""
        return f"postgresql+psycopg://{auth}@/{db}?host={quote(host, safe='/')}{port}"
    port = f":{p['port']}" if p.get("port") else ""
    return f"postgresql+psycopg://{auth}@{host}{port}/{db}"


def libpq_url(conninfo: str, dbname: str | None = None) -> str:
    """A postgresql:// URL of the conninfo (of `dbname` instead of its own database when given; "" for none).

    A socket directory goes percent-encoded in the host part, so that the URL ends at the database:
    `postgresql://postgres@%2Ftmp%2Fpg/shop`. Without a database the URL ends at the host, ready for
    `"$(dbsplit pg url)/shop"`. Other libpq parameters follow as a query string.
    """
    params = {k: str(v) for k, v in conninfo_to_dict(conninfo).items() if v not in (None, "")}
    if dbname is not None:
        params["dbname"] = dbname
    if not params.get("dbname"):
        params.pop("dbname", None)
    auth = quote(params.pop("user", ""), safe="")
    if "password" in params:
        auth += ":" + quote(params.pop("password"), safe="")
    hosts = [quote(h, safe="") for h in params.pop("host", "").split(",") if h]
    ports = params.pop("port", "").split(",") if "port" in params else []
    netloc = ",".join(h + (f":{ports[i]}" if i < len(ports) and ports[i] else "") for i, h in enumerate(hosts))
    url = f"postgresql://{auth + '@' if auth else ''}{netloc}"
    if "dbname" in params:
        url += "/" + quote(params.pop("dbname"), safe="")
    if params:
        url += "?" + "&".join(
            f"{k}={quote(v, safe='')}" for k, v in sorted(params.items()))
    return url
