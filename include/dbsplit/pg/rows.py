"""The row of a query that always returns one (an aggregate, a function call, INSERT ... RETURNING)."""

from __future__ import annotations

from typing import TypeVar

import psycopg

RowT = TypeVar("RowT")


def one_row(cursor: psycopg.Cursor[RowT]) -> RowT:
    """The cursor's next row; a query that returned none is a bug here, not a finding to report."""
    row = cursor.fetchone()
    if row is None:
        raise RuntimeError(f"expected a row, the query returned none ({cursor.statusmessage})")
    return row
