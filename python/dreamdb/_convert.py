# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Python values -> Arrow, shaped for a DreamDB schema (the write path).

Every input form ends as a ``pyarrow.Table`` whose columns have exactly the Arrow types
the C++ importer expects (python/src/arrow_import.h), then crosses into C++ through the
Arrow C stream interface. Type mapping (the same one reads use)::

    anchor      uint64                 int64      int64
    float64     float64                bool       bool
    string      large_string           categorical large_string
    timestamp   timestamp[ns]          blob       large_binary
    embedding   fixed_size_list<float32>[dim]
    array       fixed_size_list<dtype>[prod(shape)]  (values flattened row-major)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Dict, List, Optional

import numpy as np
import pyarrow as pa

from .errors import InvalidArgumentError

_DTYPES = {
    "u8": (pa.uint8(), np.uint8),
    "i8": (pa.int8(), np.int8),
    "u16": (pa.uint16(), np.uint16),
    "i16": (pa.int16(), np.int16),
    "u32": (pa.uint32(), np.uint32),
    "i32": (pa.int32(), np.int32),
    "u64": (pa.uint64(), np.uint64),
    "i64": (pa.int64(), np.int64),
    "f32": (pa.float32(), np.float32),
    "f64": (pa.float64(), np.float64),
}

_SCALAR_TYPES = {
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "string": pa.large_string(),
    "categorical": pa.large_string(),
    "timestamp": pa.timestamp("ns"),
    "blob": pa.large_binary(),
}

_ARROW_ERRORS = (pa.ArrowException, TypeError, ValueError, OverflowError)


def list_width(field: Any) -> int:
    """Elements per value of an embedding or array field."""
    if field.type == "embedding":
        return int(field.dim)
    return int(math.prod(field.shape))


def element_dtype(field: Any) -> np.dtype:
    """NumPy element type of an embedding (float32) or array field."""
    if field.type == "embedding":
        return np.dtype(np.float32)
    return np.dtype(_DTYPES[field.dtype][1])


def arrow_type(field: Any) -> pa.DataType:
    """The Arrow type of a field, as read and written."""
    if field.type in _SCALAR_TYPES:
        return _SCALAR_TYPES[field.type]
    if field.type == "embedding":
        return pa.list_(pa.float32(), int(field.dim))
    if field.type == "array":
        return pa.list_(_DTYPES[field.dtype][0], list_width(field))
    raise InvalidArgumentError(f"unknown field type {field.type!r}")


def anchor_array(anchors: Any) -> np.ndarray:
    """Anchors as a contiguous uint64 NumPy array; InvalidArgumentError if impossible."""
    if isinstance(anchors, (pa.Array, pa.ChunkedArray)):
        anchors = anchors.to_numpy(zero_copy_only=False)
    if isinstance(anchors, (list, tuple)) and all(
            isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in anchors):
        # Python ints directly: NumPy would turn [2**64 - 2, 7] into float64.
        anchors = np.array(anchors, dtype=object)
    try:
        arr = np.asarray(anchors)
    except (TypeError, ValueError) as e:
        raise InvalidArgumentError(f"anchors must be unsigned 64-bit integers: {e}") from None
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise InvalidArgumentError(f"anchors must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0 or arr.dtype.kind == "u":
        return np.ascontiguousarray(arr, dtype=np.uint64)
    if arr.dtype.kind == "i":
        if int(arr.min()) < 0:
            raise InvalidArgumentError(f"anchors must be non-negative, got {int(arr.min())}")
        return np.ascontiguousarray(arr, dtype=np.uint64)
    if arr.dtype == object and all(isinstance(a, (int, np.integer)) for a in arr.tolist()):
        values = [int(a) for a in arr.tolist()]
        bad = [v for v in values if not 0 <= v < 1 << 64]
        if bad:
            raise InvalidArgumentError(f"anchors must be in 0..2^64-1 (non-negative), got {bad[0]}")
        return np.array(values, dtype=np.uint64)
    raise InvalidArgumentError(f"anchors must be integers, got {arr.dtype} values")


def _fixed_list(field: Any, values: Any) -> pa.Array:
    """Embedding/array values: a 2-D (or N-D) array, or a sequence of vectors and Nones."""
    width = list_width(field)
    dtype = element_dtype(field)
    target = arrow_type(field)
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values.cast(target) if values.type != target else values
    if isinstance(values, np.ndarray) and values.dtype != object:
        arr = values
        if arr.ndim == 1 and width == 1:
            arr = arr.reshape(-1, 1)
        if arr.ndim < 2:
            raise InvalidArgumentError(
                f"field {field.name!r}: expected one {width}-value vector per row, "
                f"got an array of shape {values.shape}"
            )
        arr = arr.reshape(arr.shape[0], -1)
        if arr.shape[1] != width:
            raise InvalidArgumentError(
                f"field {field.name!r}: expected {width} values per row, got {arr.shape[1]} "
                f"(array of shape {values.shape})"
            )
        flat = np.ascontiguousarray(arr, dtype=dtype).reshape(-1)
        return pa.FixedSizeListArray.from_arrays(pa.array(flat), width)
    rows = list(values)
    mask = np.array([v is None for v in rows], dtype=bool)
    flat = np.zeros((len(rows), width), dtype=dtype)
    for i, v in enumerate(rows):
        if v is None:
            continue
        a = np.asarray(v, dtype=dtype).reshape(-1)
        if a.size != width:
            raise InvalidArgumentError(
                f"field {field.name!r}: row {i} has {a.size} values, expected {width}"
            )
        flat[i] = a
    return pa.FixedSizeListArray.from_arrays(
        pa.array(flat.reshape(-1)), width, mask=pa.array(mask) if mask.any() else None
    )


def column(field: Any, values: Any) -> Any:
    """One column of values as an Arrow array of the field's type."""
    target = arrow_type(field)
    try:
        if field.type in ("embedding", "array"):
            return _fixed_list(field, values)
        if isinstance(values, (pa.Array, pa.ChunkedArray)):
            return values if values.type == target else values.cast(target)
        if field.type == "timestamp":
            if isinstance(values, np.ndarray) and values.dtype.kind == "M":
                return pa.array(values.astype("datetime64[ns]"), type=target)
            if not isinstance(values, np.ndarray):
                # NumPy integer scalars are nanoseconds (pyarrow wants datetime64 there).
                values = [int(v) if isinstance(v, np.integer) else v for v in values]
            return pa.array(values, type=target)
        if isinstance(values, np.ndarray) and values.dtype == object:
            values = values.tolist()
        return pa.array(values, type=target)
    except InvalidArgumentError:
        raise
    except _ARROW_ERRORS as e:
        raise InvalidArgumentError(
            f"field {field.name!r} ({field.type}): cannot convert the values: {e}"
        ) from None


def _rows_to_columns(rows: Sequence[Mapping[str, Any]]) -> Dict[str, List[Any]]:
    keys: Dict[str, None] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise InvalidArgumentError(
                f"rows must be dicts (field name -> value); row {i} is a {type(row).__name__}"
            )
        for k in row:
            keys.setdefault(k, None)
    return {k: [row.get(k) for row in rows] for k in keys}


def _lookup(schema: Any, name: str) -> Any:
    if name in schema:
        return schema[name]
    raise InvalidArgumentError(
        f"unknown field {name!r} (the schema has: {', '.join(schema.names)})"
    )


def to_table(data: Any, schema: Any, anchors: Optional[Any] = None) -> pa.Table:
    """Converts append input to a Table with exactly the Arrow types of `schema`.

    `data`: a list of dicts (one per record), a dict of columns (NumPy arrays, lists or
    Arrow arrays), a pyarrow Table or RecordBatch, or anything with
    ``__arrow_c_stream__`` (polars, DuckDB results). A column named "anchor" gives the
    anchors; so does `anchors` (not both).
    """
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    elif not isinstance(data, (pa.Table, Mapping)) and hasattr(data, "__arrow_c_stream__"):
        data = pa.table(data)
    if isinstance(data, pa.Table):
        columns: Dict[str, Any] = {n: data.column(n) for n in data.column_names}
        if len(columns) != data.num_columns:
            raise InvalidArgumentError("the table has two columns with the same name")
    elif isinstance(data, Mapping):
        columns = dict(data)
    elif isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        columns = _rows_to_columns(data)
    else:
        raise InvalidArgumentError(
            "append_many takes a list of dicts, a dict of columns or a pyarrow Table/RecordBatch, "
            f"not {type(data).__name__}"
        )
    names: List[str] = []
    arrays: List[Any] = []
    if anchors is not None:
        if "anchor" in columns:
            raise InvalidArgumentError("anchors given twice: as an 'anchor' column and anchors=")
        columns = {"anchor": anchors, **columns}
    for name, values in columns.items():
        if not isinstance(name, str):
            raise InvalidArgumentError(f"field names must be strings, got {name!r}")
        if name == "anchor":
            arr = values if isinstance(values, pa.ChunkedArray) else pa.array(anchor_array(values))
            if arr.type != pa.uint64():
                arr = pa.array(anchor_array(arr))
        else:
            arr = column(_lookup(schema, name), values)
        names.append(name)
        arrays.append(arr)
    lengths = {len(a) for a in arrays}
    if len(lengths) > 1:
        detail = ", ".join(f"{n}: {len(a)}" for n, a in zip(names, arrays))
        raise InvalidArgumentError(f"columns have different lengths ({detail})")
    if not arrays:
        raise InvalidArgumentError("nothing to append: no columns")
    return pa.Table.from_arrays(arrays, names=names)


def infer_scalar_type(values: Any) -> str:
    """The DreamDB type of a layer's values: int64, float64, bool, string, blob, timestamp."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        t = values.type
        checks = [
            (pa.types.is_boolean, "bool"),
            (pa.types.is_integer, "int64"),
            (pa.types.is_floating, "float64"),
            (pa.types.is_timestamp, "timestamp"),
            (lambda x: pa.types.is_string(x) or pa.types.is_large_string(x), "string"),
            (lambda x: pa.types.is_binary(x) or pa.types.is_large_binary(x), "blob"),
        ]
        for check, name in checks:
            if check(t):
                return name
        raise InvalidArgumentError(f"cannot store Arrow type {t} as a scalar layer")
    if isinstance(values, np.ndarray) and values.dtype != object:
        kind = values.dtype.kind
        by_kind = {"b": "bool", "i": "int64", "u": "int64", "f": "float64", "M": "timestamp",
                   "U": "string", "S": "blob"}
        if kind in by_kind:
            return by_kind[kind]
        raise InvalidArgumentError(f"cannot store NumPy dtype {values.dtype} as a scalar layer")
    import datetime

    for v in values:
        if v is None:
            continue
        if isinstance(v, (bool, np.bool_)):
            return "bool"
        if isinstance(v, (int, np.integer)):
            return "int64"
        if isinstance(v, (float, np.floating)):
            return "float64"
        if isinstance(v, str):
            return "string"
        if isinstance(v, (bytes, bytearray, memoryview)):
            return "blob"
        if isinstance(v, (datetime.datetime, np.datetime64)):
            return "timestamp"
        raise InvalidArgumentError(f"cannot store a {type(v).__name__} as a scalar layer value")
    raise InvalidArgumentError("cannot infer the type of a layer whose values are all None")
