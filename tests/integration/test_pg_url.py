"""`dbsplit pg url [DBNAME]`: a URL that connects to that database, the socket in the host part, so that
appending `/DBNAME` to the bare server URL works too."""

from __future__ import annotations

import psycopg
import pytest

from dbsplit.local.cli import main

pytestmark = pytest.mark.integration


def printed_url(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["pg", "url", *args]) == 0
    [line] = capsys.readouterr().out.splitlines()
    return line


def test_pg_url_of_a_database_connects_to_it(make_db, pg_server_url: str, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DBSPLIT_PG_URL", pg_server_url)
    dbname = psycopg.conninfo.conninfo_to_dict(make_db("pgurl"))["dbname"]
    server = printed_url(capsys)
    for url in (printed_url(capsys, dbname), f"{server}/{dbname}"):
        assert url.startswith("postgresql://") and "?host=" not in url, url
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT current_database()").fetchone()[0] == dbname, url
