# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""dreamdb.Dataset: the Python face of a versioned dataset (spec/14-semantics.md)."""

from __future__ import annotations

import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

import numpy as np
import pyarrow as pa

from . import _convert
from ._core import Dataset as _CoreDataset
from ._core import Schema, Store
from .errors import InvalidArgumentError

StoreLike = Union[str, "os.PathLike[str]", Store]

_U64_MAX = (1 << 64) - 1


def open_store(store: StoreLike) -> Store:
    """A Store for a URI ("memory://NAME", "file:///abs/path", a local path) or a Store."""
    if isinstance(store, Store):
        return store
    if isinstance(store, os.PathLike):
        store = os.fspath(store)
    if not isinstance(store, str):
        raise InvalidArgumentError(
            f"store must be a URI string, a path or a dreamdb.Store, not {type(store).__name__}"
        )
    return Store.open(store)


def _fields(fields: Optional[Union[str, Sequence[str]]]) -> List[str]:
    if fields is None:
        return []
    if isinstance(fields, str):
        return [fields]
    out = list(fields)
    for f in out:
        if not isinstance(f, str):
            raise InvalidArgumentError(f"field names must be strings, got {f!r}")
    return out


def _stream(table: pa.Table) -> Any:
    return table.__arrow_c_stream__()


class Dataset:
    """A handle on one branch of a dataset (writable) or one fixed version (read-only).

    Open one with :meth:`create`, :meth:`open` or :meth:`open_at`. Every write commits a
    new manifest and returns its id; :attr:`last_commit` has the details (counts,
    attempts). Reads see :attr:`head` and never later commits unless :meth:`refresh` is
    called. Thread-safe; the GIL is released during I/O.
    """

    def __init__(self, handle: _CoreDataset) -> None:
        self._h = handle
        self.last_commit: Optional[Dict[str, Any]] = None

    # ---- opening ----

    @classmethod
    def create(
        cls, name: str, schema: Schema, *, store: StoreLike, message: str = ""
    ) -> "Dataset":
        """Creates dataset `name` with branch "main". AlreadyExistsError if it exists."""
        if not isinstance(schema, Schema):
            raise InvalidArgumentError(
                f"schema must be a dreamdb.Schema, not {type(schema).__name__}")
        return cls(_CoreDataset.create(open_store(store), name, schema, message))

    @classmethod
    def open(cls, name: str, *, store: StoreLike, branch: str = "main") -> "Dataset":
        """Opens `branch` of dataset `name` for reading and writing. NotFoundError if absent."""
        return cls(_CoreDataset.open(open_store(store), name, branch))

    @classmethod
    def open_at(cls, name: str, at: str, *, store: StoreLike) -> "Dataset":
        """Opens dataset `name` read-only at a snapshot label, a branch ("branch:NAME" or a
        plain name that is not a snapshot) or a manifest id."""
        return cls(_CoreDataset.open_at(open_store(store), name, at))

    # ---- properties ----

    @property
    def name(self) -> str:
        return self._h.name

    @property
    def branch(self) -> Optional[str]:
        """The branch this handle writes to; None when read-only."""
        return self._h.branch

    @property
    def head(self) -> str:
        """The manifest id this handle reads (advanced by its own commits and refresh())."""
        return self._h.head

    @property
    def schema(self) -> Schema:
        return self._h.schema

    @property
    def read_only(self) -> bool:
        return self._h.read_only

    @property
    def store(self) -> Store:
        return self._h.store

    @property
    def meta(self) -> Dict[str, str]:
        """Free-form text metadata of the head manifest. Assigning a dict commits it
        (merged into the existing metadata; a None or "" value removes a key)."""
        return dict(self._h.meta)

    @meta.setter
    def meta(self, value: Mapping[str, Optional[str]]) -> None:
        self.set_meta(value)

    def count(self) -> int:
        """Number of live records at head."""
        return self._h.count()

    def __len__(self) -> int:
        return self._h.count()

    def refresh(self) -> None:
        """Moves head to the branch's current manifest (no-op when read-only)."""
        self._h.refresh()

    def __repr__(self) -> str:
        at = f"branch={self.branch!r}" if self.branch is not None else "read_only"
        return f"Dataset({self.name!r}, {at}, head={self.head!r}, count={self.count()})"

    # ---- writes ----

    def _commit(self, info: Dict[str, Any]) -> str:
        self.last_commit = info
        return info["manifest"]

    def append_many(
        self,
        rows: Any,
        anchors: Optional[Any] = None,
        message: str = "",
    ) -> str:
        """Appends (or replaces, for existing anchors) records in one commit.

        `rows`: a list of dicts, a dict of columns (NumPy arrays, lists), or a pyarrow
        Table/RecordBatch. Anchors come from `anchors`, from a column named "anchor", or
        are assigned (next unused ones). Fields absent from the input keep their values
        (or are null for new records; required fields must be given). Returns the new
        manifest id.
        """
        table = _convert.to_table(rows, self.schema, anchors)
        return self._commit(self._h.append(_stream(table), message))

    def append(
        self, row: Mapping[str, Any], anchor: Optional[int] = None, message: str = ""
    ) -> str:
        """Appends one record (a dict). Prefer append_many for more than a few records."""
        return self.append_many([row], None if anchor is None else [anchor], message)

    def delete(self, anchors: Any, message: str = "") -> str:
        """Deletes records by anchor (absent anchors are ignored; see last_commit['deleted'])."""
        return self._commit(self._h.delete(_convert.anchor_array(anchors), message))

    def set_meta(self, meta: Mapping[str, Optional[str]], message: str = "") -> str:
        """Merges `meta` into the metadata (None or "" removes a key) in one commit."""
        clean: Dict[str, str] = {}
        for k, v in dict(meta).items():
            if not isinstance(k, str) or not (v is None or isinstance(v, str)):
                raise InvalidArgumentError(
                    f"metadata keys and values must be strings, got {k!r}: {v!r}"
                )
            clean[k] = "" if v is None else v
        return self._commit(self._h.set_meta(clean, message))

    def add_scalar_layer(
        self,
        name: str,
        anchors: Any,
        values: Any,
        type: Optional[str] = None,
        message: str = "",
    ) -> str:
        """Adds (or extends) an optional scalar field with values for existing records.

        `type` is inferred from the values unless given ("int64", "float64", "bool",
        "string", "categorical", "timestamp", "blob").
        """
        t = type or _convert.infer_scalar_type(values)
        builders = {
            "int64": Schema.add_int, "float64": Schema.add_float, "bool": Schema.add_bool,
            "string": Schema.add_string, "categorical": Schema.add_categorical,
            "timestamp": Schema.add_timestamp, "blob": Schema.add_blob,
        }
        if t not in builders:
            raise InvalidArgumentError(
                f"layer type must be one of {', '.join(builders)}, not {t!r}"
            )
        field = builders[t](Schema(), name, required=False).fields[0]
        return self._add_layer(field, anchors, values, message)

    def add_embedding_layer(self, name: str, anchors: Any, vectors: Any, message: str = "") -> str:
        """Adds (or extends) an optional embedding field: one float32 vector per anchor
        (a 2-D array of shape (len(anchors), dim))."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] < 1:
            raise InvalidArgumentError(
                f"embedding layer {name!r}: vectors must have shape (n, dim), got {vectors.shape}"
            )
        field = Schema().add_embedding(name, int(vectors.shape[1]), required=False).fields[0]
        return self._add_layer(field, anchors, vectors, message)

    def _add_layer(self, field: Any, anchors: Any, values: Any, message: str) -> str:
        arr = _convert.column(field, values)
        table = pa.Table.from_arrays([arr], names=[field.name])
        return self._commit(
            self._h.add_layer(field, _convert.anchor_array(anchors), _stream(table), message)
        )

    # ---- refs ----

    def snapshot(self, label: str) -> str:
        """Names head as snapshot `label` (immutable). Returns the manifest id.
        AlreadyExistsError if the label is taken."""
        head = self.head
        self._h.snapshot(label)
        return head

    def create_branch(self, name: str) -> "Dataset":
        """Creates branch `name` at head and returns a handle on it.
        AlreadyExistsError if it exists."""
        self._h.create_branch(name)
        return Dataset(_CoreDataset.open(self.store, self.name, name))

    # ---- reads ----

    def iter_batches(
        self,
        fields: Optional[Union[str, Sequence[str]]] = None,
        start: int = 0,
        end: Optional[int] = None,
        batch_size: int = 8192,
        limit: Optional[int] = None,
    ) -> pa.RecordBatchReader:
        """Streams records in ascending anchor order as Arrow record batches.

        Only the requested `fields` (default: all) are read from storage; the "anchor"
        column (uint64) always comes first. `start`/`end` bound the anchors (end
        exclusive); `limit` caps the number of records. Columns are exported without
        copying (bool columns excepted). Reads the head at the time of the call.
        """
        return pa.RecordBatchReader.from_stream(
            self.arrow_stream(fields, start, end, batch_size, limit)
        )

    def arrow_stream(
        self,
        fields: Optional[Union[str, Sequence[str]]] = None,
        start: int = 0,
        end: Optional[int] = None,
        batch_size: int = 8192,
        limit: Optional[int] = None,
    ) -> Any:
        """Like iter_batches, but returns the raw one-shot stream object (it implements
        ``__arrow_c_stream__``): hand it to polars.from_arrow(), duckdb, etc."""
        return self._h.scan(
            _fields(fields),
            int(start),
            _U64_MAX if end is None else int(end),
            int(batch_size),
            _U64_MAX if limit is None else int(limit),
        )

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        """Arrow PyCapsule protocol: every call starts a new scan of all fields at this
        handle's head, so consumers that read the schema first and the data second
        (DuckDB, polars) can take the dataset itself: ``duckdb.sql("select * from ds")``."""
        return self.arrow_stream().__arrow_c_stream__(requested_schema)

    def to_table(
        self, fields: Optional[Union[str, Sequence[str]]] = None, **kwargs: Any
    ) -> pa.Table:
        """All (or a range of) records as one pyarrow Table (see iter_batches)."""
        return self.iter_batches(fields, **kwargs).read_all()

    def take(
        self,
        anchors: Any,
        fields: Optional[Union[str, Sequence[str]]] = None,
        allow_missing: bool = False,
    ) -> pa.Table:
        """Records by anchor, in the order given, as a pyarrow Table.

        A missing or deleted anchor raises NotFoundError unless `allow_missing`, in which
        case its row is all null (the "anchor" column still holds it).
        """
        stream = self._h.take(_convert.anchor_array(anchors), _fields(fields), allow_missing)
        return pa.RecordBatchReader.from_stream(stream).read_all()

    def history(self, limit: Optional[int] = None) -> List[Dict[str, Any]]:
        """Commits from head backwards, newest first: dicts with "manifest", "parents",
        "message", "writer", "time_ns", "count", "added", "replaced", "deleted",
        "fields", "schema_version"."""
        if limit is not None and limit <= 0:
            return []
        return self._h.history(0 if limit is None else int(limit))

    def diff(self, other: Union[str, "Dataset"]) -> List[Dict[str, Any]]:
        """Differences between head and `other` (a manifest id, snapshot label, branch
        name or another handle on this dataset): dicts {"anchor", "kind", "fields"},
        kind "added" / "removed" (present only in `other` / only at head, as seen from
        head towards other) or "changed" (fields whose values differ)."""
        if isinstance(other, Dataset):
            other = other.head
        return self._h.diff(other)

    def read_stats(self) -> Dict[str, int]:
        """Storage reads by this handle so far: "requests", "bytes_fetched", "cache_hits"."""
        return self._h.read_stats()

    def verify(self) -> Dict[str, Any]:
        """Checks every object reachable from this dataset's refs; "problems" is empty when
        healthy."""
        return self._h.verify()

    def __iter__(self) -> Iterable[Dict[str, Any]]:
        """Records as dicts (slow; for exploration). Use iter_batches for real work."""
        for batch in self.iter_batches():
            yield from batch.to_pylist()
