"""Local TCP ports: refuse a busy one before a server starts on it."""

from __future__ import annotations

import socket

from dbsplit.errors import DbsplitError


class PortInUseError(DbsplitError):
    """The port a local server would listen on is taken."""


def require_free_port(host: str, port: int) -> None:
    """Raise PortInUseError, naming the fix, when nothing can listen on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # a port in TIME_WAIT is free to listen on
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise PortInUseError(
                f"port {port} on {host} is in use ({exc.strerror or exc}). Fix: stop what listens there "
                f"(`ss -ltnp 'sport = :{port}'` shows it), or choose another port: "
                f"dbsplit airflow --port {port + 1} (make airflow AIRFLOW_PORT={port + 1})") from None
