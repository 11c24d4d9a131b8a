"""init_plan reads a source catalog and writes a starter plan that load_plan accepts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from dbsplit.plan import Plan, load_plan
from dbsplit.engine.plan_init import init_plan, service_slug

pytestmark = pytest.mark.integration

TWO_SCHEMAS = r'''
CREATE SCHEMA user_schema;
CREATE SCHEMA "Sales Ops";
CREATE TABLE user_schema.users (id bigint PRIMARY KEY, email text NOT NULL, full_name text, phone varchar(20),
                                birth_date date, email_verified boolean, favourite_order bigint);
CREATE TABLE user_schema.sessions (id uuid PRIMARY KEY, user_id bigint NOT NULL REFERENCES user_schema.users);
CREATE TABLE "Sales Ops"."Order ""Items""" (id bigint PRIMARY KEY,
                                            "user" bigint REFERENCES user_schema.users ON DELETE CASCADE);
CREATE TABLE "Sales Ops".lines (order_id bigint REFERENCES "Sales Ops"."Order ""Items""", "名前" text);
ALTER TABLE user_schema.users ADD FOREIGN KEY (favourite_order) REFERENCES "Sales Ops"."Order ""Items""";
'''

PREFIXES = r'''
CREATE TABLE users (id bigint PRIMARY KEY, name text, user_name text UNIQUE);
CREATE TABLE user_sessions (id bigint PRIMARY KEY, user_id bigint REFERENCES users);
CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint REFERENCES users);
CREATE TABLE order_items (order_id bigint REFERENCES orders, n int, PRIMARY KEY (order_id, n));
CREATE TABLE invoices (id bigint PRIMARY KEY, order_id bigint REFERENCES orders);
CREATE TABLE "select" (id int PRIMARY KEY);
'''


def source_db(make_db: Callable[[str], str], ddl: str) -> str:
    url = make_db("initsrc")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(ddl)
    return url


def load(text: str, tmp_path: Path) -> Plan:
    path = tmp_path / "plan.yaml"
    path.write_text(text, encoding="utf-8")
    return load_plan(path)


def decisions(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith("# DECIDE:")]


def test_one_service_per_schema(make_db: Callable[[str], str], tmp_path: Path) -> None:
    source = source_db(make_db, TWO_SCHEMAS)
    text = init_plan(source, by="schema", name="shop")
    plan = load(text, tmp_path)
    assert list(plan.services) == ["sales_ops", "user"]
    assert plan.source.conn_id == psycopg.conninfo.conninfo_to_dict(source)["dbname"]   # found by `dbsplit run`
    assert {s: v.target.conn_id for s, v in plan.services.items()} == {
        "sales_ops": "shop_sales_ops", "user": "shop_user"}
    routes = {plan.qualified_source(r): r for _, _, r in plan.routes()}
    assert set(routes) == {'Sales Ops.Order "Items"', "Sales Ops.lines", "user_schema.sessions", "user_schema.users"}
    assert routes["user_schema.users"].uuid_key
    assert routes['Sales Ops.Order "Items"'].references == {"user": "user.users"}
    assert not routes['Sales Ops.Order "Items"'].uuid_key    # the reverse reference would close a cycle
    said = decisions(text)
    assert any("sales_ops would reference each other" in d or "user and sales_ops" in d for d in said), said
    assert any("no primary key" in d for d in said)          # Sales Ops.lines
    assert any("personal data" in d for d in said)
    assert sum("placed here because they are the tables of schema" in d for d in said) == 2
    assert any(d.startswith("# DECIDE: uuid_key makes the key id (bigint) a UUID") for d in said), said
    assert "2 services, 4 tables." in text and "init_plan(" not in text
    for masked in ("#   email: {mask: hash}", "#   full_name: {mask: redact}", "#   birth_date: {mask: null}"):
        assert masked in text
    assert "email_verified: {mask" not in text


def test_groups_by_table_name_prefix(make_db: Callable[[str], str], tmp_path: Path) -> None:
    text = init_plan(source_db(make_db, PREFIXES), by="prefix", name="shop")
    plan = load(text, tmp_path)
    tables = {s: [r.source_table for r in v.tables] for s, v in plan.services.items()}
    assert tables == {"invoices": ["invoices"], "order": ["order_items", "orders"], "select": ["select"],
                      "user": ["user_sessions", "users"]}
    routes = {r.source_table: r for _, _, r in plan.routes()}
    assert routes["users"].uuid_key and routes["orders"].uuid_key
    assert routes["orders"].references == {"user_id": "user.users"}
    assert routes["invoices"].references == {"order_id": "order.orders"}
    said = decisions(text)
    assert sum("no other table shares its prefix" in d for d in said) == 2
    assert sum("placed together because their names share a prefix" in d for d in said) == 2
    assert sum(d.startswith("# DECIDE: uuid_key makes the key") for d in said) == 2   # users, orders
    assert "`dbsplit plan init --by prefix`: 4 services, 6 tables." in text
    assert any("linked by foreign keys to order" in d for d in said)
    assert "#   name: {mask: redact}" in text and "#   user_name: {mask: hash}" in text


def test_names_and_counts_read_naturally(make_db: Callable[[str], str], tmp_path: Path) -> None:
    """One table: `1 service, 1 table`; a database named *_monolith: the plan without the suffix, the source
    connection the database's own name, the targets <plan>_<service>."""
    from tests.conftest import create_database, drop_database

    server = make_db("initsrc")
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS shop_monolith")
    url = create_database(server, "shop_monolith")
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE items (id bigint PRIMARY KEY)")
        text = init_plan(url, by="prefix")
        plan = load(text, tmp_path)
    finally:
        drop_database(server, "shop_monolith")
    assert "1 service, 1 table." in text
    assert (plan.name, plan.source.conn_id) == ("shop", "shop_monolith")
    assert [s.target.conn_id for s in plan.services.values()] == ["shop_items"]


def test_empty_source_is_an_error(make_db: Callable[[str], str]) -> None:
    from dbsplit.errors import SourceSchemaError

    with pytest.raises(SourceSchemaError, match="has no tables"):
        init_plan(make_db("initsrc"), by="prefix")


@pytest.mark.parametrize("name, slug", [("user_schema", "user"), ("Sales Ops", "sales_ops"), ("Straße", "strae"),
                                        ("名前", "service"), ("2024_archive", "s_2024_archive"), ("schema", "schema")])
def test_service_slugs(name: str, slug: str) -> None:
    assert service_slug(name) == slug


def test_cli_on_an_empty_source_says_why_without_a_traceback(make_db: Callable[[str], str], tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from dbsplit.local.cli import main

    out = tmp_path / "plan.yaml"
    assert main(["plan", "init", "--source", make_db("initsrc"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "has no tables" in err and "Traceback" not in err
    assert not out.exists()
