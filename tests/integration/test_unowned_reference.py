"""A foreign key into a table no service owns is an error naming the fix (docs/PLAN-FORMAT.md), not a
reference silently dropped; dropping the column is one such fix."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from dbsplit.errors import SourceSchemaError
from dbsplit.plan import load_plan
from dbsplit.engine.resolve import resolve_service

pytestmark = pytest.mark.integration

DDL = """
CREATE TABLE countries (code text PRIMARY KEY);
CREATE TABLE shops (id bigint PRIMARY KEY, country text REFERENCES countries, name text);
"""
PLAN = """\
version: 1
name: shop
source: {conn_id: shop_monolith}
services:
  shops:
    target: {conn_id: shop_shops}
    tables:
"""


def resolve(source: str, tmp_path: Path, table: str) -> list:
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN + table)
    with psycopg.connect(source) as conn:
        return resolve_service(load_plan(path), "shops", conn)


def test_foreign_key_into_an_unowned_table_is_an_error_with_its_fix(make_db, tmp_path: Path) -> None:
    source = make_db("unowned")
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(DDL)
    with pytest.raises(SourceSchemaError) as error:
        resolve(source, tmp_path, "      - shops\n")
    message = str(error.value)
    assert "country references public.countries, which no service of the plan owns" in message
    assert "Fix: add public.countries to a service's tables, or drop the column" in message
    [table] = resolve(source, tmp_path, "      - {source: shops, transforms: {country: drop}}\n")
    assert [m.target for m in table.columns] == ["id", "name"] and table.soft_references == ()
