"""Value types of the plan, each failing with a plain message and a fix (no pydantic jargon)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict
from pydantic_core import PydanticCustomError

from dbsplit.model.sql_fragments import FIXES, Kind, problem

PG_NAME_MAX = 63  # PostgreSQL truncates longer identifiers (NAMEDATALEN - 1)


class Strict(BaseModel):
    """Base of every plan model: unknown keys are errors, values keep their YAML type (`true` is no number, `1`
    no text) and loaded plans are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def fail(message: str, fix: str) -> PydanticCustomError:
    """A validation error whose message and fix reach the user as written."""
    return PydanticCustomError("dbsplit", message, {"fix": fix})


def did_you_mean(word: str, options: list[str] | tuple[str, ...]) -> str:
    """`did you mean `x`? ` when one option is close to word, else ''."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`? " if close else ""


def _pattern(regex: str, what: str, fix: str, special: Callable[[str], str | None] | None = None) -> AfterValidator:
    compiled = re.compile(regex)

    def check(value: str) -> str:
        if special and (message := special(value)):
            raise fail(message, fix)
        if not compiled.fullmatch(value):
            raise fail(f"`{value}` is not {what}" if value else "the value is empty", fix)
        return value

    return AfterValidator(check)


def _pg_name(value: str) -> str:
    if not value:
        raise fail("the name is empty", "give a PostgreSQL name (table, column or schema)")
    if "\0" in value:
        raise fail(f"`{value.split(chr(0))[0][:20]}…` holds a NUL character (\\0), which PostgreSQL names cannot hold",
                   "remove the NUL character (in YAML, `\\0` inside double quotes is one)")
    if len(value.encode()) > PG_NAME_MAX:
        raise fail(f"`{value[:20]}…` is longer than {PG_NAME_MAX} bytes, PostgreSQL's limit for names",
                   f"use a name of at most {PG_NAME_MAX} bytes")
    return value


def _url_given(value: str) -> str | None:
    return "a connection id is expected here, not a URL" if "://" in value or "@" in value else None


def _source_table(value: str) -> str:
    parts = value.split(".")
    if len(parts) > 2 or not all(parts):
        raise fail(f"`{value}` is not a table name", "write `table` (in source.schema) or `schema.table`")
    for part in parts:
        _pg_name(part)
    return value


def _sql_literal(value: Any) -> Any:
    """YAML numbers and booleans are SQL literals too; a bare word is not (PostgreSQL reads a column name)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


_SQL_WORDS = {"true", "false", "null", "current_date", "current_time", "current_timestamp", "localtime",
              "localtimestamp", "current_user", "session_user", "current_role", "current_schema", "current_catalog"}


def _not_bare_word(value: str) -> str:
    if re.fullmatch(r"[A-Za-z_]\w*", value) and value.lower() not in _SQL_WORDS:
        raise fail(f"`{value}` is not an SQL literal (PostgreSQL would read it as a column name)",
                   f"quote text inside the YAML value: default: \"'{value}'\"")
    if not value.strip():
        raise fail("the default is empty", "give an SQL literal such as 'monolith', 0 or now(), or remove `default`")
    return value


def _sql_fragment(kind: Kind) -> AfterValidator:
    """One expression (filter, default) or one type name, as PostgreSQL's parser reads it (sql_fragments.py)."""

    def check(value: str) -> str:
        if message := problem(kind, value):
            raise fail(message, FIXES[kind])
        return value.strip()

    return AfterValidator(check)


PgName = Annotated[str, AfterValidator(_pg_name)]
ConnId = Annotated[str, _pattern(
    r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,249}", "a valid connection id",
    "use the id of an Airflow connection (letters, digits, `_`, `.`, `-`) and define the URL in Airflow",
    _url_given)]
ServiceName = Annotated[str, _pattern(
    r"[a-z][a-z0-9_]{0,59}", "a valid service name",
    "use lower-case letters, digits and `_`, starting with a letter, at most 60 characters (e.g. `user_profiles`)")]
PlanName = Annotated[str, _pattern(
    r"[A-Za-z0-9_-]{1,100}", "a valid plan name", "use letters, digits, `_` and `-` only (e.g. `freezone`)")]
SourceTable = Annotated[str, AfterValidator(_source_table)]
RefTarget = Annotated[str, _pattern(
    r"[a-z][a-z0-9_]{0,59}\.[^.]{1,63}", "a `<service>.<table>` reference",
    "name the referenced table as `<service>.<target table>`, e.g. `jobs.companies`")]
CustomRef = Annotated[str, _pattern(
    r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*", "of the form `package.module:function`",
    "name an importable function as `package.module:function`, e.g. `mypkg.transforms:normalise`")]
TypeText = Annotated[str, _sql_fragment("type")]
SqlText = Annotated[str, _sql_fragment("filter")]
JsonPath = Annotated[str, _pattern(
    r"(?!/)(?!.*(^|/)\.\.(/|$)).+\.json", "a relative path of a .json file",
    "give the suite's path relative to the repository root, e.g. `expectations/users/users.json`")]
Schedule = Annotated[str, _pattern(
    r"@(once|continuous|hourly|daily|weekly|monthly|quarterly|yearly|annually)|\S+(\s+\S+){4}", "a cron schedule",
    'write five cron fields such as "0 2 * * *", a preset such as @daily, or null to resync only on demand')]
SqlLiteral = Annotated[str, BeforeValidator(_sql_literal), AfterValidator(_not_bare_word), _sql_fragment("default")]

__all__ = [
    "ConnId", "CustomRef", "JsonPath", "PgName", "PlanName", "RefTarget", "Schedule", "ServiceName",
    "SourceTable", "SqlLiteral", "SqlText", "Strict", "TypeText", "did_you_mean", "fail",
]
