#!/usr/bin/env python3
"""Write .env for the docker compose stack: .env.example with a fresh random value for every secret.

    python3 docker/new-env.py            # writes .env next to docker-compose.yaml
    python3 docker/new-env.py PATH       # writes PATH

A secret is a variable whose name ends in _PASSWORD, _SECRET, _SECRET_KEY or _FERNET_KEY. Passwords
and secrets become 32 hex digits (safe in URLs and JSON); the Fernet key 32 random bytes in url-safe
base64, as Airflow expects. Every other line is copied as it is. An existing file is never
overwritten: the database passwords are fixed when the volumes are created, so new ones would lock
the stack out of its own databases.
Standard library only; Python 3.8 or newer.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / ".env.example"
SECRET_NAME = re.compile(r"^[A-Z0-9_]+(_PASSWORD|_SECRET|_SECRET_KEY|_FERNET_KEY)$")
ASSIGNMENT = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$")


def fresh_value(name: str) -> str:
    """A new random value for the secret `name`."""
    if name.endswith("_FERNET_KEY"):
        return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")
    return secrets.token_hex(16)


def render(example: str) -> str:
    """The text of .env.example with every secret replaced."""
    lines = []
    for line in example.splitlines():
        match = ASSIGNMENT.match(line)
        if match and SECRET_NAME.match(match["name"]):
            line = f"{match['name']}={fresh_value(match['name'])}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    target = Path(argv[1]) if len(argv) > 1 else ROOT / ".env"
    if target.exists():
        print(f"{target} exists; not overwritten. Fix: remove it first (and recreate the database volumes "
              f"with `docker compose down -v` if you change their passwords).", file=sys.stderr)
        return 1
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(render(EXAMPLE.read_text(encoding="utf-8")))
    print(f"wrote {target} with fresh secrets")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
