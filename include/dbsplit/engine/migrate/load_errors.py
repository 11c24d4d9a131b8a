"""Load errors that a retry cannot fix: the target refuses a source row (SQLSTATE class 22, data
exception, or 23, integrity constraint violation). Each becomes a LoadRefused naming the fix."""

from __future__ import annotations

import psycopg

from dbsplit.errors import LoadRefused

PERMANENT_CLASSES = ("22", "23")
NOT_A_ROW = {"22P03", "22P04"}   # invalid binary representation, bad COPY file format: dbsplit's file, not a row
_TRANSFORM = "a plan transform (`transforms: {<column>: {cast: <type>}}`, a mask, or `drop: true`)"


def _fix(exc: psycopg.Error) -> str:
    """What to change so that the row loads, by SQLSTATE."""
    d = exc.diag
    if exc.sqlstate == "23514" and (d.message_primary or "").startswith("value for domain"):
        return (f"fix the row in the source, or cast the column to the domain's base type with {_TRANSFORM}: "
                f"a domain's CHECK {d.constraint_name} is enforced on every value loaded, even when it is NOT VALID")
    if exc.sqlstate == "23514":
        return (f"the row violates CHECK {d.constraint_name} of the target: fix the row in the source, or mark "
                "the source constraint NOT VALID (the target then keeps it NOT VALID and loads old rows), or drop "
                f"or cast the column it reads with {_TRANSFORM}")
    if exc.sqlstate == "23502":
        return (f"column {d.column_name} is NULL in a source row but NOT NULL in the target: fill it in the source, "
                f"or drop or mask the column with {_TRANSFORM}")
    if exc.sqlstate in ("23505", "23P01"):
        return (f"two source rows collide on {d.constraint_name} in the target: remove the duplicate in the source, "
                f"or change the key columns with {_TRANSFORM}")
    if exc.sqlstate == "23503":
        return (f"a source row references a row the target does not hold ({d.constraint_name}): fix the reference "
                "in the source, or move the referenced table into the same service")
    return f"fix the value in the source, or cast the column to a type that holds it with {_TRANSFORM}"


def refused(exc: psycopg.Error, where: str) -> LoadRefused | None:
    """A LoadRefused for an error a retry cannot fix (None for any other error). where: the chunk's label."""
    if (exc.sqlstate or "")[:2] not in PERMANENT_CLASSES or exc.sqlstate in NOT_A_ROW:
        return None
    d = exc.diag
    what = "; ".join(p for p in (d.message_primary, d.message_detail) if p) or str(exc)
    return LoadRefused(f"{where}: the target refuses a source row ({what}; SQLSTATE {exc.sqlstate}). A retry cannot "
                       f"fix this: the same row fails every time. Fix: {_fix(exc)}; then trigger the run again "
                       "(the chunks already loaded are kept).")
