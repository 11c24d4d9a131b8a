"""Rules on a table's primary key that plan check and the run state alike (one message for both)."""

from __future__ import annotations

from collections.abc import Sequence


def uuid_key_problem(table: str, primary_key: Sequence[str]) -> tuple[str, str] | None:
    """(message, fix) when `uuid_key` cannot apply to a table with this primary key, else None."""
    if not primary_key:
        return (f"`uuid_key` needs a primary key, and {table} has none",
                "add a primary key to the source table, or remove `uuid_key`")
    if len(primary_key) > 1:
        return (f"`uuid_key` needs a one-column primary key, and the key of {table} has "
                f"{len(primary_key)} columns ({', '.join(primary_key)})",
                "remove `uuid_key` (a composite key is copied as it is), or give the table a one-column key")
    return None
