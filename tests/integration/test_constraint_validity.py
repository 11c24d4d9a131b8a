"""Constraints keep their validity: a CHECK or foreign key NOT VALID in the source is NOT VALID in the
target (old rows that break it load, new ones are refused), a validated one stays validated; a load
that the target refuses for good fails without a retry and names the fix."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from airflow.sdk.exceptions import AirflowFailException
from dbsplit.airflow import runtime
from dbsplit.pg.conn import airflow_conn_env
from dbsplit.errors import LoadRefused
from dbsplit.plan import load_plan
from dbsplit.airflow.render import _run, service_descriptor
from dbsplit.airflow.specs import service_specs

from tests.integration.test_checkpoint_failures import migrate

pytestmark = pytest.mark.integration

SOURCE = """
CREATE DOMAIN positive AS integer;
CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL, CONSTRAINT balance_known CHECK (balance > -1000));
INSERT INTO accounts VALUES (1, -5), (2, 10);
ALTER TABLE accounts ADD CONSTRAINT balance_positive CHECK (balance >= 0) NOT VALID;
CREATE TABLE entries (id int PRIMARY KEY, account_id int, note text, amount int);
INSERT INTO entries VALUES (1, 1, 'a', -1), (2, 99, 'b', 5);
ALTER TABLE entries ADD CONSTRAINT entries_account FOREIGN KEY (account_id) REFERENCES accounts NOT VALID;
ALTER TABLE entries ADD CONSTRAINT amount_positive CHECK (amount > 0) NOT VALID;
CREATE TABLE readings (id int PRIMARY KEY, value positive);
INSERT INTO readings VALUES (1, -3), (2, 4);
ALTER DOMAIN positive ADD CONSTRAINT positive_check CHECK (VALUE > 0) NOT VALID;
"""

PLAN = """\
version: 1
name: ledger
source: {conn_id: ledger_monolith}
services:
  ledger:
    target: {conn_id: ledger_ledger}
    tables:
      - accounts
      - {source: entries, transforms: {note: {mask: redact}}}
  meters:
    target: {conn_id: ledger_meters}
    tables: [readings]
"""


@pytest.fixture
def ledger(make_db, tmp_path: Path, monkeypatch) -> tuple[dict[str, str], dict[str, dict]]:
    dbs = {"ledger_monolith": make_db("ledger_src"), "ledger_ledger": make_db("ledger_tgt"),
           "ledger_meters": make_db("meters_tgt")}
    with psycopg.connect(dbs["ledger_monolith"], autocommit=True) as conn:
        conn.execute(SOURCE)
    for conn_id, info in dbs.items():
        monkeypatch.setenv(*airflow_conn_env(conn_id, info))
    monkeypatch.setenv("DBSPLIT_STAGING_URL", f"file://{tmp_path}/staging")
    monkeypatch.setenv("DBSPLIT_REPORTS_DIR", str(tmp_path / "reports"))
    (tmp_path / "plan.yaml").write_text(PLAN)
    path = tmp_path / "plan.yaml"
    return dbs, {s.service: service_descriptor(s) for s in service_specs(load_plan(path), str(path))}


def validity(conninfo: str) -> dict[str, bool]:
    """{constraint (a foreign key: fk:<table>): convalidated} of the public tables' CHECKs and foreign keys."""
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute("SELECT CASE c.contype WHEN 'f' THEN 'fk:' || r.relname ELSE c.conname END, c.convalidated"
                            " FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid JOIN pg_namespace n"
                            " ON n.oid = r.relnamespace WHERE n.nspname = 'public' AND c.contype IN ('c', 'f')")
        return dict(rows.fetchall())


def test_not_valid_constraints_stay_not_valid_and_old_rows_load(ledger) -> None:
    dbs, svcs = ledger
    assert validity(dbs["ledger_monolith"]) == {"balance_known": True, "balance_positive": False,
                                                "amount_positive": False, "fk:entries": False}
    migrate(svcs["ledger"], "r1")   # accounts: pass-through; entries: transformed (a masked column)
    assert runtime.checkpoint(svcs["ledger"], "r1") == "promote"
    runtime.promote(svcs["ledger"])
    target = dbs["ledger_ledger"]
    assert validity(target) == validity(dbs["ledger_monolith"])
    with psycopg.connect(target, autocommit=True) as conn:
        assert conn.execute("SELECT balance FROM accounts WHERE id = 1").fetchone()[0] == -5    # the old rows
        assert conn.execute("SELECT account_id, amount FROM entries ORDER BY id").fetchall() == [(1, -1), (99, 5)]
        for statement in ("INSERT INTO accounts VALUES (3, -1)", "INSERT INTO entries VALUES (3, 2, 'c', -7)",
                          "INSERT INTO accounts VALUES (4, -2000)"):   # still refused for new rows
            with pytest.raises(psycopg.errors.CheckViolation):
                conn.execute(statement)
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute("INSERT INTO entries VALUES (4, 77, 'd', 1)")


def test_a_row_the_target_refuses_fails_the_load_without_retry_and_names_the_fix(ledger) -> None:
    dbs, svcs = ledger
    svc = svcs["meters"]
    runtime.prepare_target(svc)
    [chunk] = runtime.plan_chunks(svc, "readings", "r1")
    transformed = runtime.transform(svc, runtime.extract(svc, chunk, "r1"), "r1")
    with pytest.raises(AirflowFailException) as failure:   # fails the task: no retry
        _run(runtime.load, svc, transformed, "r1")
    assert isinstance(failure.value.__cause__, LoadRefused)
    message = str(failure.value)
    assert "positive_check" in message and "A retry cannot fix this" in message, message
    assert "Fix: fix the row in the source, or cast the column to the domain's base type" in message, message
    with psycopg.connect(dbs["ledger_meters"]) as conn:   # the domain's NOT VALID check, as in the source
        assert conn.execute("SELECT convalidated FROM pg_constraint WHERE conname = 'positive_check'").fetchone() == (False,)
