"""Custom functions of the transformed path: a table's "package.module:function" applied to the chunk as a
pandas DataFrame, and its result turned back into PostgreSQL input text."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from dbsplit.engine.migrate.stages import TransformError
from dbsplit.model.resolved import ColumnMap, ResolvedTable

_INT_TYPES = {"smallint", "integer", "bigint"}
_FLOAT_TYPES = {"real", "double precision"}


def load_custom(spec: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Import "package.module:function"; a clear TransformError when it is not there."""
    module_name, sep, func_name = spec.partition(":")
    if not sep or not module_name or not func_name:
        raise TransformError(f"custom {spec!r}: expected 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TransformError(f"custom {spec!r}: cannot import module {module_name!r}: {exc}") from exc
    func = getattr(module, func_name, None)
    if not callable(func):
        raise TransformError(f"custom {spec!r}: module {module_name!r} has no function {func_name!r}")
    return func


def to_pandas(result: pa.Table, columns: Sequence[ColumnMap]) -> pd.DataFrame:
    """The chunk as a DataFrame for a custom function: integers Int64, booleans boolean, floats Float64,
    numeric decimal.Decimal objects; every other type as PostgreSQL's text (str)."""
    from decimal import Decimal

    frame: dict[str, Any] = {}
    for cm in columns:
        col = result.column(cm.target).combine_chunks()
        base = cm.target_type.split("(")[0].strip()
        if base in _INT_TYPES:
            frame[cm.target] = pd.array(col.cast(pa.int64()).to_pylist(), dtype="Int64")
        elif base == "boolean":
            frame[cm.target] = pd.array(pc.equal(col, "t").to_pylist(), dtype="boolean")
        elif base in _FLOAT_TYPES:
            frame[cm.target] = pd.array(col.cast(pa.float64()).to_pylist(), dtype="Float64")
        elif base == "numeric":
            frame[cm.target] = pd.Series([None if v is None else Decimal(v) for v in col.to_pylist()], dtype=object)
        else:
            frame[cm.target] = pd.Series(col.to_pylist(), dtype=object)
    return pd.DataFrame(frame, index=pd.RangeIndex(result.num_rows))


def _value_text(v: Any) -> str | None:
    """PostgreSQL input text of one value of an object column (NULL for NA)."""
    from decimal import Decimal

    if isinstance(v, Decimal):
        return str(v)      # Decimal('NaN') is numeric NaN, not NULL
    if v is None or (not isinstance(v, (str, bytes, list, dict)) and pd.isna(v)):
        return None
    if isinstance(v, bool):
        return "t" if v else "f"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if isinstance(v, bytes):
        return "\\x" + v.hex()
    return str(v)


def _text_of(series: pd.Series) -> pa.Array:
    """PostgreSQL input text for each value of a column returned by a custom function (NULL for NA)."""

    if pd.api.types.is_bool_dtype(series.dtype):
        arr = pa.array(series, type=pa.bool_(), from_pandas=True)
        return pc.if_else(arr, pa.scalar("t"), pa.scalar("f"))
    if pd.api.types.is_integer_dtype(series.dtype) or pd.api.types.is_float_dtype(series.dtype):
        # Int64/Float64: NA is the mask, NaN a value
        masked = isinstance(series.dtype, pd.api.extensions.ExtensionDtype)
        return pa.array(series, from_pandas=not masked).cast(pa.string())
    out = [_value_text(v) for v in series.tolist()]
    return pa.array(out, pa.string())


def run_custom(table: ResolvedTable, result: pa.Table, keys: pa.Array) -> tuple[pa.Table, pa.Array]:
    spec = table.custom or ""
    func = load_custom(spec)
    frame = to_pandas(result, table.columns)
    try:
        out = func(frame)
    except Exception as exc:
        raise TransformError(f"custom function {spec} failed on {table.target_schema}.{table.target_table}: "
                             f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(out, pd.DataFrame):
        raise TransformError(f"custom function {spec} must return a pandas DataFrame, got {type(out).__name__}")
    want = [cm.target for cm in table.columns]
    got = [str(c) for c in out.columns]
    if set(got) != set(want) or len(got) != len(want):
        missing = [c for c in want if c not in got]
        extra = [c for c in got if c not in want]
        dup = sorted({c for c in got if got.count(c) > 1})
        raise TransformError(
            f"custom function {spec} must return exactly the target columns of {table.target_schema}."
            f"{table.target_table} {want}; missing {missing}, unexpected {extra}"
            + (f", duplicated {dup}" if dup else ""))
    # rows may be dropped or reordered (never invented): keep each remaining row's source key
    try:
        positions = np.asarray(out.index, dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise TransformError(f"custom function {spec} must keep the DataFrame's integer row index") from exc
    if len(positions) and (positions.min() < 0 or positions.max() >= result.num_rows):
        raise TransformError(f"custom function {spec} returned rows whose index is not one of the input rows")
    arrays = [_text_of(out[c]) for c in want]
    return pa.table(dict(zip(want, arrays, strict=True))), pc.take(keys, pa.array(positions))

