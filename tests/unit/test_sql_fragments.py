"""SQL fragments of a plan (filter, default, cast, type): one expression or one type name, as PostgreSQL's
own parser (pglast) reads them; anything else is refused with file, line, field and fix, by load_plan
and by `dbsplit plan check` (exit code 2), and again where run-time code splices a fragment into SQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dbsplit.local.cli import main
from dbsplit.errors import PlanError, SqlFragmentError
from dbsplit.plan import load_plan
from dbsplit.model.sql_fragments import filter_sql, problem
from dbsplit.model.resolved import ColumnMap

INJECTION = "true); COMMIT; CREATE TABLE public.pwned AS SELECT 1; SELECT (1"
FILTER_LINE, CAST_LINE, ADDED_LINE = 9, 11, 13


def plan_text(filter: object = "deleted_at IS NULL", cast: object = "numeric(12,2)", type: object = "text",
              default: object = "'monolith'") -> str:
    """A plan holding each kind of fragment once, on lines 9 (filter), 11 (cast) and 13 (type, default)."""
    return f"""\
version: 1
name: demo
source: {{conn_id: src}}
services:
  users:
    target: {{conn_id: users_db}}
    tables:
      - source: users
        filter: {json.dumps(filter)}
        transforms:
          age: {{cast: {json.dumps(cast)}}}
        add_columns:
          origin: {{type: {json.dumps(type)}, default: {json.dumps(default)}}}
"""


ROUTE = "services.users.tables.0"
# (id, fragment given as keyword of plan_text, line, field, fragment of the message)
BAD = [
    ("filter-escapes-its-parentheses", {"filter": INJECTION}, FILTER_LINE, f"{ROUTE}.filter", "is not valid SQL"),
    ("filter-two-statements", {"filter": "1=1; DROP TABLE users"}, FILTER_LINE, f"{ROUTE}.filter",
     "holds a semicolon or more than one statement"),
    ("filter-trailing-semicolon", {"filter": "deleted_at IS NULL;"}, FILTER_LINE, f"{ROUTE}.filter", "semicolon"),
    ("filter-line-comment", {"filter": "deleted_at IS NULL --"}, FILTER_LINE, f"{ROUTE}.filter", "holds a comment"),
    ("filter-with-a-clause", {"filter": "true FROM pg_class"}, FILTER_LINE, f"{ROUTE}.filter",
     "is not one SQL expression"),
    ("filter-union", {"filter": "1 UNION SELECT 2"}, FILTER_LINE, f"{ROUTE}.filter", "is not one SQL expression"),
    ("filter-alias", {"filter": "deleted_at IS NULL AS keep"}, FILTER_LINE, f"{ROUTE}.filter", "alias, `keep`"),
    ("filter-denied-function", {"filter": "pg_sleep(10) IS NULL"}, FILTER_LINE, f"{ROUTE}.filter",
     "calls pg_sleep()"),
    ("filter-qualified-denied-function", {"filter": "PG_CATALOG.set_config('a.b', 'c', false) = 'c'"},
     FILTER_LINE, f"{ROUTE}.filter", "calls set_config()"),
    ("filter-data-modifying-cte", {"filter": "id IN (WITH d AS (DELETE FROM users RETURNING id) SELECT id FROM d)"},
     FILTER_LINE, f"{ROUTE}.filter", "holds DELETE, which writes"),
    ("filter-for-update", {"filter": "id IN (SELECT id FROM users FOR UPDATE)"}, FILTER_LINE, f"{ROUTE}.filter",
     "locks rows"),
    ("filter-empty", {"filter": ""}, FILTER_LINE, f"{ROUTE}.filter", "the filter is empty"),
    ("filter-whitespace", {"filter": " \n\t "}, FILTER_LINE, f"{ROUTE}.filter", "the filter is empty"),
    ("default-two-statements", {"default": "'x'; SELECT 1"}, ADDED_LINE, f"{ROUTE}.add_columns.origin.default",
     "holds a semicolon or more than one statement"),
    ("default-escapes", {"default": "'x' AS text); DROP TABLE users; SELECT CAST(('x'"}, ADDED_LINE,
     f"{ROUTE}.add_columns.origin.default", "is not valid SQL"),
    ("default-denied-function", {"default": "nextval('users_id_seq')"}, ADDED_LINE,
     f"{ROUTE}.add_columns.origin.default", "calls nextval()"),
    ("cast-two-statements", {"cast": "integer; DROP TABLE x"}, CAST_LINE, f"{ROUTE}.transforms.age.cast",
     "holds a semicolon or more than one statement"),
    ("cast-escapes", {"cast": "int) FROM users; DROP TABLE x; SELECT CAST(1 AS int"}, CAST_LINE,
     f"{ROUTE}.transforms.age.cast", "is not valid SQL"),
    ("cast-not-a-type", {"cast": "int COLLATE \"C\""}, CAST_LINE, f"{ROUTE}.transforms.age.cast",
     "is not one type name"),
    ("type-setof", {"type": "setof text"}, ADDED_LINE, f"{ROUTE}.add_columns.origin.type", "SETOF"),
    ("type-modifier-call", {"type": "numeric(pg_sleep(1))"}, ADDED_LINE, f"{ROUTE}.add_columns.origin.type",
     "type modifier that is not a whole number or a name"),
    ("type-empty", {"type": " "}, ADDED_LINE, f"{ROUTE}.add_columns.origin.type", "the type is empty"),
]


@pytest.mark.parametrize(("given", "line", "field", "message"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_a_bad_fragment_is_refused_with_file_line_field_and_fix(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], given: dict[str, str], line: int, field: str,
        message: str) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(plan_text(**given), encoding="utf-8")
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    [found] = caught.value.problems
    assert (found.file, found.line, found.field) == (str(path), line, field)
    assert message in found.message
    assert found.fix.startswith("write one ")
    assert main(["plan", "check", str(path)]) == 2
    out = capsys.readouterr().out
    assert out.startswith(f"{path}:{line}: {field}: ") and "Fix: write one " in out


GOOD_FILTERS = ["deleted_at IS NULL", "created_at > now() - interval '1 year'", "status IN ('a','b')",
                "id IN (SELECT id FROM x)", "note = 'a;b -- c'", "EXISTS (SELECT * FROM x WHERE x.id = users.id)"]
GOOD_TYPES = ["numeric(12,2)", "timestamp with time zone", "character varying(40)[]", "integer", "\"MyType\"",
              "public.mood", "double precision", "interval year to month", "geometry(Point, 4326)"]
GOOD_DEFAULTS = ["'monolith'", "0", "now()", 0, 1.5, True, "current_timestamp", "NULL"]


@pytest.mark.parametrize("fragment", GOOD_FILTERS)
def test_one_expression_is_a_filter(tmp_path: Path, fragment: str) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(plan_text(filter=f"  {fragment} "), encoding="utf-8")
    [(_, _, route)] = load_plan(path).routes()
    assert route.filter == fragment   # kept as written, without the surrounding blanks


@pytest.mark.parametrize("fragment", GOOD_TYPES)
def test_one_type_name_is_a_cast_and_a_type(tmp_path: Path, fragment: str) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(plan_text(cast=fragment, type=fragment), encoding="utf-8")
    [(_, _, route)] = load_plan(path).routes()
    assert route.transforms["age"].cast == fragment and route.add_columns["origin"].type == fragment


@pytest.mark.parametrize("fragment", GOOD_DEFAULTS)
def test_a_literal_or_a_call_is_a_default(tmp_path: Path, fragment: object) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(plan_text(default=fragment), encoding="utf-8")
    [(_, _, route)] = load_plan(path).routes()
    assert route.add_columns["origin"].default is not None


def test_the_parser_refuses_what_only_the_text_would_hide() -> None:
    assert problem("filter", "ALL true") is not None           # a keyword before the expression
    assert problem("filter", "*") is not None                  # not an expression in a WHERE clause
    assert problem("filter", "true /* c */") is not None       # comments, even closed ones
    assert problem("filter", "x IN (SELECT id FROM t FOR KEY SHARE)") is not None
    assert problem("filter", "query_to_xml('select 1', true, true, '') IS NOT NULL") is not None
    assert problem("filter", "dblink_exec('x', 'DROP TABLE t') = ''") is not None
    assert problem("type", "int::text") is not None and problem("type", "users.id%TYPE") is not None
    assert problem("filter", "NOT " * 2000 + "true") is not None   # too deep to walk: refused, not a crash
    assert problem("filter", "a = '\ud800'") is not None              # not UTF-8: refused, not a crash
    assert problem("type", "int[]") is None and problem("default", "'a' || 'b'") is None


def test_run_time_splices_only_what_the_parser_accepted() -> None:
    """Text that did not come through a validated plan (an edited XCom, a direct call) is refused too."""
    with pytest.raises(SqlFragmentError, match="Fix: write one SQL expression"):
        filter_sql(INJECTION)
    with pytest.raises(SqlFragmentError, match="the plan's type"):
        ColumnMap("age", "int) FROM users; DROP TABLE users; SELECT CAST(1 AS int", False, "cast", ("age",))
    with pytest.raises(SqlFragmentError, match="the plan's default"):
        ColumnMap("origin", "text", False, "default", (), "'x'); DROP TABLE users; SELECT ('x'")
    assert filter_sql("deleted_at IS NULL").as_string(None) == "(deleted_at IS NULL)"
    assert ColumnMap("age", "numeric(12,2)", False, "cast", ("age",)).target_type == "numeric(12,2)"
