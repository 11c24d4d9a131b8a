"""Content checksums of transformed tables: the fingerprints transform_chunk computes in Python for each
target row equal the ones PostgreSQL computes on the loaded rows (checksums.fingerprint), for every type
the transformed path handles, in binary and CSV modes, under unusual session settings."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa
import pytest
from psycopg import sql

from dbsplit.engine.migrate import arrow_io
from dbsplit.pg.copy import source_connection
from dbsplit.engine.migrate.transform import FP_COLUMN, chunk_row_fingerprints, extract_chunk, load_chunk, transform_chunk
from dbsplit.model.resolved import ColumnMap, ResolvedTable
from dbsplit.engine.verify import checksums
from dbsplit.model import row_text
from tests.integration.test_type_roundtrip import ROWS, TABLE, TYPES

pytestmark = pytest.mark.integration

NS = uuid.UUID("6a1f0a4e-0000-4000-8000-00000000c0de")
SALT = b"salt"

# more rows with every character record_out quotes for, in text, varchar, char, json and arrays;
# code: text cast to numeric(10,2) (row 8 cannot be cast: an extract reject)
MORE = r"""
ALTER TABLE everything ADD COLUMN code text;
UPDATE everything SET code = (id * 1.5)::text;
INSERT INTO everything (id, t, vc, ch, js, ta, code, tstz, iv, n) VALUES
 (6, '(paren) a,b "x" \ y', E'tab\there', ' q ', '{"a": "(,)"}', '{"(",")",","," "}', '7', '2024-06-01 12:00:00+00',
  '-3 days', 1e20),
 (7, E'ctl\x0b\x0cend\r', ')', '"', '"\\"', '{"\\\\"}', '7.25', '1970-01-01 00:00:00+00', '1 sec', -1),
 (8, 'x', 'y', 'z', NULL, NULL, 'not a number', NULL, NULL, NULL),
 (9, NULL, '', '', '""', '{""}', NULL, NULL, NULL, 'NaN');
"""

# the target: every source column copied (id renamed to legacy_id), a uuid key, a uuid reference,
# masks, casts (to types sent in binary and in text), defaults (sent in binary and in text)
EXTRA_COLUMNS = (
    ColumnMap("ref", "uuid", False, "uuid_ref", ("i4",), "public.others"),
    ColumnMap("t_hash", "text", False, "mask_hash", ("t",)),
    ColumnMap("t_redacted", "text", False, "mask_redact", ("t",)),
    ColumnMap("t_null", "text", False, "mask_null", ("t",)),
    ColumnMap("code_num", "numeric(10,2)", False, "cast", ("code",)),
    ColumnMap("i4_text", "text", False, "cast", ("i4",)),
    ColumnMap("tstz_ts", "timestamp without time zone", False, "cast", ("tstz",)),
    ColumnMap("d_num", "numeric(5,2)", False, "default", (), "'1.5'"),
    ColumnMap("d_ts", "timestamp with time zone", False, "default", (), "'2020-02-02 02:02:02+00'"),
    ColumnMap("d_text", "text", False, "default", (), "'a (default), \"q\"'"),
    ColumnMap("d_null", "integer", False, "default", (), "NULL"),
)


def identity(frame):
    """A custom function that changes nothing (its output is still input text, not output text)."""
    return frame


def source_types(conninfo: str) -> dict[str, str]:
    with psycopg.connect(conninfo) as conn:
        return dict(conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = 'everything'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum").fetchall())


def resolved(types: dict[str, str], route: str, custom: str | None = None) -> ResolvedTable:
    cols = [ColumnMap("id", "uuid", True, "uuid_key", ("id",)), ColumnMap("legacy_id", "integer", True, "copy", ("id",))]
    cols += [ColumnMap(c, t, False, "copy", (c,)) for c, t in types.items() if c not in ("id", "code")]
    cols += EXTRA_COLUMNS
    return ResolvedTable("s", "public", "everything", "public", "everything_v2", tuple(cols), ("id",), ("id",),
                         custom=custom, extra={"transfer": "csv"} if route == "csv" else {})


def target_ddl(table: ResolvedTable) -> str:
    cols = ", ".join(f"{sql.Identifier(c.target).as_string(None)} {c.target_type}" for c in table.columns)
    # the target refuses one row at load (i4 = 7: row 5): a load reject
    return f"{TYPES} CREATE TABLE everything_v2 ({cols}, PRIMARY KEY (id), CHECK (i4 IS DISTINCT FROM 7))"


@pytest.fixture
def pair(make_db):
    source, target = make_db("fp_src"), make_db("fp_dst")
    with psycopg.connect(source) as conn:
        conn.execute(TYPES)
        conn.execute(TABLE)
        conn.execute(ROWS)
        conn.execute(MORE)
        # unusual session defaults: the extract must record them and the checksum reuse them
        conn.execute(sql.SQL("ALTER DATABASE {} SET TimeZone = 'Asia/Kathmandu'").format(
            sql.Identifier(conn.info.dbname)))
    return source, target


def postgres_fingerprints(target: str, table: ResolvedTable, settings: dict[str, str]) -> tuple[dict[str, int], checksums.Checksum]:
    exprs = checksums.columns([c.target for c in table.columns])
    relation = sql.Identifier("public", "everything_v2")
    with psycopg.connect(target) as conn, conn.transaction():
        checksums.set_local(conn, {k: v for k, v in settings.items() if k in checksums.TEXT_OUTPUT_SETTINGS})
        return (checksums.row_fingerprints(conn, relation, exprs, ["id"]),
                checksums.chunk_checksum(conn, relation, exprs))


@pytest.mark.parametrize("route", ["binary", "csv"])
def test_python_fingerprints_equal_postgres_fingerprints(pair, tmp_path: Path, route: str) -> None:
    source, target = pair
    table = resolved(source_types(source), route)
    with psycopg.connect(target) as conn:
        conn.execute(target_ddl(table))
    python: dict[str, int] = {}
    loaded_totals, rejects = [], []
    with source_connection(source) as src, psycopg.connect(target) as dst, src.transaction():
        for where in (sql.SQL("id <= 4"), sql.SQL("id > 4")):
            extract_chunk(src, table, where, tmp_path / "e.arrow")
            stats = transform_chunk(tmp_path / "e.arrow", tmp_path / "t.arrow", table, NS, SALT)
            data, meta = arrow_io.read_staging(tmp_path / "t.arrow")
            assert meta["mode"] == route and stats.checksum is not None
            fps = data.column(FP_COLUMN).to_numpy()
            assert stats.checksum == row_text.checksum_total(fps)
            load = load_chunk(dst, "public", "everything_v2", table, tmp_path / "t.arrow")
            rejects += load.rejects
            loaded_totals.append(int(load.checksum))
            keys = data.column("id")
            keys = [uuid.UUID(bytes=k).hex if route == "binary" else k for k in keys.to_pylist()]
            python |= {str(uuid.UUID(k)): int(fp) for k, fp in zip(keys, fps)}
            # re-extracting and re-transforming the chunk gives the same rows (how differing rows are located)
            again = chunk_row_fingerprints(src, table, where, NS, SALT)
            assert {t: fp for _, t, fp in again} == {str(uuid.UUID(k)): int(fp) for k, fp in zip(keys, fps)}
        dst.commit()
    assert meta["settings"]["TimeZone"] == "Asia/Kathmandu"
    assert sorted((r.key, r.column) for r in rejects) == [("5", None), ("8", "code_num")]
    in_postgres, total = postgres_fingerprints(target, table, meta["settings"])
    assert len(in_postgres) == 7
    differing = {k: (python.get(k), v) for k, v in in_postgres.items() if python.get(k) != v}
    assert differing == {}
    refused = str(uuid.uuid5(NS, "public.everything:5"))
    assert set(python) - set(in_postgres) == {refused}      # the row the target refused
    assert total == checksums.Checksum(7, str(sum(loaded_totals)))   # load_chunk's checksum leaves it out


def test_settings_matter_and_are_recorded(pair, tmp_path: Path) -> None:
    """Under the target's default TimeZone the timestamptz text differs: the recorded settings are needed."""
    source, target = pair
    table = resolved(source_types(source), "binary")
    with psycopg.connect(target) as conn:
        conn.execute(target_ddl(table))
    with source_connection(source) as src, psycopg.connect(target) as dst, src.transaction():
        extract_chunk(src, table, sql.SQL("id = 1"), tmp_path / "e.arrow")
        stats = transform_chunk(tmp_path / "e.arrow", tmp_path / "t.arrow", table, NS, SALT)
        load_chunk(dst, "public", "everything_v2", table, tmp_path / "t.arrow")
        dst.commit()
    _, meta = arrow_io.read_staging(tmp_path / "t.arrow")
    _, right = postgres_fingerprints(target, table, meta["settings"])
    _, wrong = postgres_fingerprints(target, table, {"TimeZone": "UTC"})
    assert right.total == stats.checksum and wrong.total != stats.checksum


def test_custom_function_tables_get_no_checksum(pair, tmp_path: Path) -> None:
    source, _ = pair
    table = resolved(source_types(source), "csv", custom="tests.integration.test_transformed_checksum:identity")
    with source_connection(source) as src, src.transaction():
        extract_chunk(src, table, None, tmp_path / "e.arrow")
    stats = transform_chunk(tmp_path / "e.arrow", tmp_path / "t.arrow", table, NS, SALT)
    assert stats.checksum is None
    data, _ = arrow_io.read_staging(tmp_path / "t.arrow")
    assert FP_COLUMN not in data.column_names


def test_record_text_quoting_matches_record_out(make_db) -> None:
    """record_text against PostgreSQL's ROW(...)::text for values that need quoting and some that do not."""
    values = ["", "a", "a b", "(", ")", ",", '"', "\\", "\t", "\n", "\x0b", "\f", "\r", "ü ü", "{1,2}", "NULL",
              "x\\\"y", "é", "-1.5e+10", None]
    conninfo = make_db("rt")
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute("SELECT ROW(a, b)::text, md5(ROW(a, b)::text) FROM unnest(%s::text[], %s::text[]) AS u(a, b)",
                            [values, list(reversed(values))]).fetchall()
        pg_fp = [r[0] for r in conn.execute(sql.SQL("SELECT {} FROM unnest(%s::text[], %s::text[]) AS u(a, b)").format(
            checksums.fingerprint([sql.Identifier("a"), sql.Identifier("b")])), [values, list(reversed(values))])]
    texts = row_text.record_text([pa.array(values, pa.string()), pa.array(list(reversed(values)), pa.string())])
    assert texts.to_pylist() == [r[0] for r in rows]
    fps = row_text.fingerprints(texts)
    assert fps.tolist() == pg_fp
    assert row_text.checksum_total(fps) == str(sum(pg_fp))
    assert row_text.checksum_total(np.array([2**60 - 1] * 5000, dtype=np.int64)) == str((2**60 - 1) * 5000)
