"""The transformed path's operations on small Arrow data, without a database."""

from __future__ import annotations

import hashlib
import struct
import sys
import types
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from dbsplit.engine.migrate import arrow_io, wire
from dbsplit.engine.migrate.load import _csv_row_of_line
from dbsplit.engine.migrate.transform import KEY_COLUMN, TransformError, load_custom, transform_chunk
from dbsplit.model.resolved import ColumnMap, ResolvedTable, row_uuid

NS = uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")
SALT = "sälz".encode()
KEYS = ["1", "22", "-3", "1", "日本", "", "a,b"]


def test_uuid5_text_equals_uuid_uuid5_with_nulls_and_repeats() -> None:
    values = pa.array(KEYS + [None])
    got = arrow_io.uuid5_text(values, NS, "public.users:").to_pylist()
    assert got[:-1] == [str(uuid.uuid5(NS, f"public.users:{k}")) for k in KEYS]
    assert got[:-1] == [str(row_uuid(NS, "public.users", k)) for k in KEYS]
    assert got[-1] is None
    unique = arrow_io.uuid5_text(values, NS, "public.users:", distinct=False).to_pylist()
    assert unique == got


def test_uuid5_binary_is_the_uuid_bytes() -> None:
    got = arrow_io.uuid5_binary(pa.array(KEYS + [None]), NS, "s.t:").to_pylist()
    assert got == [uuid.uuid5(NS, f"s.t:{k}").bytes for k in KEYS] + [None]
    assert arrow_io.uuid5_binary(pa.array([], pa.string()), NS, "s.t:").to_pylist() == []


def test_sha256_hex_of_salt_and_utf8_value() -> None:
    values = ["a@b.c", "", "Zoë 日本", None, "a@b.c"]
    got = arrow_io.sha256_hex(pa.array(values), SALT).to_pylist()
    assert got == [None if v is None else hashlib.sha256(SALT + v.encode()).hexdigest() for v in values]
    assert arrow_io.sha256_hex(pa.array(values), SALT, distinct=False).to_pylist() == got


@pytest.mark.parametrize("cls,texts,expected", [
    ("int2", ["-32768", "0", None], [struct.pack("!h", -32768), struct.pack("!h", 0), None]),
    ("int4", ["2147483647", None], [struct.pack("!i", 2147483647), None]),
    ("int8", ["-9223372036854775808"], [struct.pack("!q", -9223372036854775808)]),
    ("bool", ["t", "f", None], [b"\x01", b"\x00", None]),
    ("float8", ["1.1", "NaN", "-Infinity", "-0", "5e-324"],
     [struct.pack("!d", v) for v in (1.1, float("nan"), float("-inf"), -0.0, 5e-324)]),
    ("float4", ["1.1", "3.4028235e+38", "1e-45"], [struct.pack("!f", v) for v in (1.1, 3.4028235e+38, 1e-45)]),
    ("uuid", ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", None],
     [uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").bytes, None]),
    ("text", ["", "Zoë", None], [b"", "Zoë".encode(), None]),
    ("jsonb", ['{"a": 1}', None], [b'\x01{"a": 1}', None]),
    ("send", ["\\x", "\\x00ff", None, "\\x0A1b"], [b"", b"\x00\xff", None, b"\x0a\x1b"]),
])
def test_text_to_wire(cls: str, texts: list, expected: list) -> None:
    assert wire.text_to_wire(pa.array(texts, pa.string()), cls).to_pylist() == expected


def test_binary_rows_frame_fields_and_nulls() -> None:
    cols = [pa.array([b"ab", None], pa.binary()), pa.array([b"", b"\x01"], pa.binary())]
    data = wire.binary_rows(cols)
    assert data == (struct.pack("!hi", 2, 2) + b"ab" + struct.pack("!i", 0)
                    + struct.pack("!hi", 2, -1) + struct.pack("!i", 1) + b"\x01")


def test_csv_row_of_line_follows_postgresql_line_numbers() -> None:
    # rows with 1, 0, 2, 0 line feeds inside values: PostgreSQL reports lines 1, 2, 5, 6 for them
    # (the first record's line feeds are not counted; measured on 15 and 18)
    nl = np.array([1, 0, 2, 0])
    assert [_csv_row_of_line(nl, line) for line in (1, 2, 5, 6)] == [0, 1, 2, 3]
    assert _csv_row_of_line(nl, 3) is None and _csv_row_of_line(nl, 7) is None


# transform_chunk on a hand-made extract file --------------------------------------------------

COLUMNS = (
    ColumnMap("id", "uuid", True, "uuid_key", ("id",)),
    ColumnMap("org", "uuid", False, "uuid_ref", ("org_id",), "public.orgs"),
    ColumnMap("full_name", "text", True, "copy", ("name",)),
    ColumnMap("email", "text", False, "mask_hash", ("email",)),
    ColumnMap("phone", "text", False, "mask_redact", ("phone",)),
    ColumnMap("secret", "text", False, "mask_null", ("secret",)),
    ColumnMap("age", "integer", False, "cast", ("age_text",)),
    ColumnMap("source", "text", True, "default", (), "'monolith'"),
)
SOURCE = {
    "id": ["1", "2", "3"], "org_id": ["7", None, "7"], "name": ["Zoë", "", "x\ny"],
    "email": ["a@b.c", None, ""], "phone": [None, "", "123"], "secret": ["s", "t", None],
}


def extract_file(path: Path, mode: str) -> None:
    raw = {c: f"c{i}" for i, c in enumerate(["id", "org_id", "name", "email", "phone"])}
    data = {raw[c]: pa.array(SOURCE[c], pa.string()) for c in raw}
    data["x0"] = pa.array(["42", None, "-1"], pa.string())
    wire_cls = {"id": "uuid", "org": "uuid", "full_name": "text", "email": "text", "phone": "text",
                "secret": "text", "age": "int4", "source": "text"}
    meta = {"version": 1, "kind": "extract", "table": "public.people", "mode": mode,
            "wire": wire_cls if mode == "binary" else {}, "raw": raw, "sent": {}, "cast": {"age": "x0"},
            "defaults": {"source": "monolith"}, "settings": {}, "rejects": [], "source_rows": 3}
    arrow_io.write_staging(path, pa.table(data), meta)


def table(**kw) -> ResolvedTable:
    return ResolvedTable("s", "public", "people", "public", "people", COLUMNS, ("id",), ("id",), **kw)


def expected_text() -> list[dict]:
    out = []
    for i in range(3):
        org = SOURCE["org_id"][i]
        email = SOURCE["email"][i]
        out.append({
            "id": str(uuid.uuid5(NS, f"public.people:{SOURCE['id'][i]}")),
            "org": None if org is None else str(uuid.uuid5(NS, f"public.orgs:{org}")),
            "full_name": SOURCE["name"][i],
            "email": None if email is None else hashlib.sha256(SALT + email.encode()).hexdigest(),
            "phone": None if SOURCE["phone"][i] is None else "REDACTED",
            "secret": None, "age": ["42", None, "-1"][i], "source": "monolith",
            KEY_COLUMN: SOURCE["id"][i],
        })
    return out


def by_key(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: r[KEY_COLUMN])


def test_transform_chunk_csv_route_applies_every_op(tmp_path: Path) -> None:
    extract_file(tmp_path / "e", "csv")
    stats = transform_chunk(tmp_path / "e", tmp_path / "t", table(), NS, SALT)
    out, meta = arrow_io.read_staging(tmp_path / "t")
    assert stats.rows == 3 and meta["kind"] == "load" and meta["mode"] == "csv"
    assert out.column_names == [c.target for c in COLUMNS] + [KEY_COLUMN]
    assert by_key(out.to_pylist()) == by_key(expected_text())
    ids = out.column("id").to_pylist()
    assert ids == sorted(ids)      # rows in the order of the UUID key (cheaper index inserts)


def test_transform_chunk_binary_route_gives_wire_values(tmp_path: Path) -> None:
    extract_file(tmp_path / "e", "binary")
    transform_chunk(tmp_path / "e", tmp_path / "t", table(), NS, SALT)
    out, meta = arrow_io.read_staging(tmp_path / "t")
    assert meta["mode"] == "binary"
    want = []
    for r in expected_text():
        want.append({**{k: (None if v is None else v.encode()) for k, v in r.items()},
                     "id": uuid.UUID(r["id"]).bytes, "org": r["org"] and uuid.UUID(r["org"]).bytes,
                     "age": r["age"] and struct.pack("!i", int(r["age"])), KEY_COLUMN: r[KEY_COLUMN]})
    assert by_key(out.to_pylist()) == by_key(want)


def test_mask_hash_needs_a_salt(tmp_path: Path) -> None:
    extract_file(tmp_path / "e", "csv")
    with pytest.raises(TransformError, match="salt"):
        transform_chunk(tmp_path / "e", tmp_path / "t", table(), NS, None)


# custom functions --------------------------------------------------------------------------------


@pytest.fixture
def custom_module(monkeypatch):
    mod = types.ModuleType("dbsplit_unit_custom")
    monkeypatch.setitem(sys.modules, "dbsplit_unit_custom", mod)
    return mod


def test_custom_function_sees_typed_columns_and_may_drop_rows(tmp_path: Path, custom_module) -> None:
    seen = {}

    def fn(df: pd.DataFrame) -> pd.DataFrame:
        seen["dtypes"] = {c: str(t) for c, t in df.dtypes.items()}
        df = df[df["age"].isna() | (df["age"] > 0)].copy()
        df["full_name"] = df["full_name"].str.upper()
        df["age"] = df["age"] * 2
        return df[list(reversed(df.columns))]

    custom_module.fn = fn
    extract_file(tmp_path / "e", "csv")
    stats = transform_chunk(tmp_path / "e", tmp_path / "t", table(custom="dbsplit_unit_custom:fn"), NS, SALT)
    out, _ = arrow_io.read_staging(tmp_path / "t")
    assert seen["dtypes"]["age"] == "Int64"
    assert stats.rows == 2 and stats.source_rows == 3
    want = [r for r in expected_text() if r[KEY_COLUMN] != "3"]
    for r in want:
        r["full_name"] = r["full_name"].upper()
        r["age"] = None if r["age"] is None else str(int(r["age"]) * 2)
    assert out.column_names[:-1] == [c.target for c in COLUMNS]
    assert by_key(out.to_pylist()) == by_key(want)


@pytest.mark.parametrize("body,message", [
    (lambda df: df.drop(columns=["age"]), r"dbsplit_unit_custom:fn must return exactly the target columns.*missing \['age'\]"),
    (lambda df: df.assign(extra=1), r"dbsplit_unit_custom:fn .*unexpected \['extra'\]"),
    (lambda df: df.to_dict(), r"dbsplit_unit_custom:fn must return a pandas DataFrame, got dict"),
    (lambda df: 1 / 0, r"dbsplit_unit_custom:fn failed on public.people: ZeroDivisionError"),
])
def test_custom_function_errors_name_the_function(tmp_path: Path, custom_module, body, message) -> None:
    custom_module.fn = body
    extract_file(tmp_path / "e", "csv")
    with pytest.raises(TransformError, match=message):
        transform_chunk(tmp_path / "e", tmp_path / "t", table(custom="dbsplit_unit_custom:fn"), NS, SALT)


@pytest.mark.parametrize("spec,message", [
    ("no_colon", "expected 'package.module:function'"),
    ("dbsplit_no_such_module_xyz:f", "cannot import module 'dbsplit_no_such_module_xyz'"),
    ("dbsplit.model.resolved:no_such_function", "has no function 'no_such_function'"),
])
def test_load_custom_errors(spec: str, message: str) -> None:
    with pytest.raises(TransformError, match=message):
        load_custom(spec)
