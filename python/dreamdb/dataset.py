# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""dreamdb.Dataset: the Python face of a versioned dataset (spec/14-semantics.md)."""

from __future__ import annotations

import os
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Union

import numpy as np
import pyarrow as pa

from . import _convert
from ._core import Dataset as _CoreDataset
from ._core import Schema, Store
from ._rng import _Rng
from ._stream import read_stream, read_table
from .errors import InvalidArgumentError

StoreLike = Union[str, "os.PathLike[str]", Store]

_U64_MAX = (1 << 64) - 1


def _time_ns(name: str, value: Any) -> int:
    """A time bound for time anchors (ns since the Unix epoch): a timezone-aware
    datetime, an RFC 3339 / ISO 8601 string with an offset, a numpy datetime64, or
    integer nanoseconds."""
    import datetime as _dt

    if isinstance(value, str):
        try:
            value = _dt.datetime.fromisoformat(value)
        except ValueError:
            raise InvalidArgumentError(
                f"{name}: expected an RFC 3339 time such as '2024-05-01T12:00:00Z', got {value!r}"
            ) from None
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            raise InvalidArgumentError(
                f"{name}: {value.isoformat()} has no timezone; give one (e.g. ...Z or +02:00)"
            )
        delta = value - _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
        ns = (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    elif isinstance(value, np.datetime64):
        ns = int(value.astype("datetime64[ns]").astype(np.int64))
    elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        ns = int(value)
    else:
        raise InvalidArgumentError(
            f"{name}: expected a datetime, an RFC 3339 string or integer ns, got "
            f"{type(value).__name__}"
        )
    if ns < 0 or ns > _U64_MAX:
        raise InvalidArgumentError(f"{name}: {value!r} is outside the time anchors' range "
                                   "(1970-01-01T00:00:00Z onwards)")
    return ns


def open_store(store: StoreLike, *, create: bool = False, cache: Optional[str] = None,
               cache_size: Union[int, str, None] = None) -> Store:
    """A Store for a URI ("memory://NAME", "file:///abs/path", a local path, "s3://...") or a
    Store.

    A missing store is NotFoundError unless `create` is true (only writers that can start
    from an empty store, such as :meth:`Dataset.create`, pass it). `cache` (a directory;
    default $DREAMDB_CACHE) caches the immutable objects of a remote (s3://) store, shared
    by processes, bounded by `cache_size` (bytes, or a string such as "2G"; default
    $DREAMDB_CACHE_SIZE, else 1G). A Store passed in is returned as is.
    """
    if isinstance(store, Store):
        return store
    if isinstance(store, os.PathLike):
        store = os.fspath(store)
    if not isinstance(store, str):
        raise InvalidArgumentError(
            f"store must be a URI string, a path or a dreamdb.Store, not {type(store).__name__}"
        )
    if cache is None:
        cache = os.environ.get("DREAMDB_CACHE") or None
    if cache_size is None:
        cache_size = os.environ.get("DREAMDB_CACHE_SIZE") or None
    if isinstance(cache, os.PathLike):
        cache = os.fspath(cache)
    if cache_size is not None and not isinstance(cache_size, str):
        if isinstance(cache_size, bool) or not isinstance(cache_size, int):
            raise InvalidArgumentError(
                f"cache_size must be an int or a string such as '2G', not {cache_size!r}")
        cache_size = str(cache_size)
    return Store.open(store, create=create, cache=cache, cache_size=cache_size)


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
        """Wraps a low-level handle; use :meth:`create`, :meth:`open` or :meth:`open_at`."""
        self._h = handle
        self.last_commit: Optional[Dict[str, Any]] = None

    # ---- opening ----

    @classmethod
    def create(
        cls, name: str, schema: Schema, *, store: StoreLike, message: str = "",
        cache: Optional[str] = None, cache_size: Union[int, str, None] = None,
    ) -> "Dataset":
        """Creates dataset `name` with branch "main" (and the store, if it does not exist).
        AlreadyExistsError if the dataset exists. `cache`, `cache_size`: see
        :func:`open_store`."""
        if not isinstance(schema, Schema):
            raise InvalidArgumentError(
                f"schema must be a dreamdb.Schema, not {type(schema).__name__}")
        return cls(_CoreDataset.create(
            open_store(store, create=True, cache=cache, cache_size=cache_size), name, schema,
            message))

    @classmethod
    def open(cls, name: str, *, store: StoreLike, branch: str = "main",
             cache: Optional[str] = None,
             cache_size: Union[int, str, None] = None) -> "Dataset":
        """Opens `branch` of dataset `name` for reading and writing. NotFoundError if the
        dataset or the store is absent (a missing store is never created). `cache`,
        `cache_size`: a local object cache for a remote store (see :func:`open_store`)."""
        return cls(_CoreDataset.open(
            open_store(store, cache=cache, cache_size=cache_size), name, branch))

    @classmethod
    def open_at(cls, name: str, at: str, *, store: StoreLike, cache: Optional[str] = None,
                cache_size: Union[int, str, None] = None) -> "Dataset":
        """Opens dataset `name` read-only at a snapshot label, a branch ("branch:NAME" or a
        plain name that is not a snapshot) or a manifest id. `cache`, `cache_size`: see
        :func:`open_store`."""
        return cls(_CoreDataset.open_at(
            open_store(store, cache=cache, cache_size=cache_size), name, at))

    # ---- properties ----

    @property
    def name(self) -> str:
        """The dataset's name in its store."""
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
        """The schema at head (fields in declaration order; see :class:`dreamdb.Schema`)."""
        return self._h.schema

    @property
    def read_only(self) -> bool:
        """True for handles from :meth:`open_at`: writes raise PermissionDeniedError."""
        return self._h.read_only

    @property
    def store(self) -> Store:
        """The :class:`dreamdb.Store` holding this dataset."""
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
        """len(ds): the number of live records at head (same as :meth:`count`)."""
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

    def merge(
        self,
        source: Union[str, "Dataset"],
        policy: str = "fail",
        no_ff: bool = False,
        message: str = "",
    ) -> str:
        """Merges `source` into this handle's branch, three-way by anchor against their
        common ancestor (spec/14-semantics.md §16), and returns the new head.

        `source`: a branch name, snapshot label, "branch:NAME", manifest id, or another
        handle on this dataset (its branch as it is now if it is writable, else its
        version). A fast-forward when this branch is behind the source (unless `no_ff`).
        `policy`: "fail" (ConflictError naming the conflicting anchors and fields, nothing
        committed), "ours" or "theirs". A field added on both sides with different types
        is a ConflictError under every policy. Details in `last_commit` ("result":
        "merged" / "fast-forward" / "up-to-date", "merge_bases", "conflicts_resolved",
        "indexes_updated": fields whose spatial index took the merged vectors,
        "indexes_dropped": fields whose index was left out because the merged schema no
        longer has them as embeddings).
        """
        return self.merge_many([source], policy=policy, no_ff=no_ff, message=message)

    def merge_many(
        self,
        sources: Sequence[Union[str, "Dataset"]],
        policy: str = "fail",
        no_ff: bool = False,
        message: str = "",
    ) -> str:
        """Merges several sources into this branch in one commit (an octopus merge whose
        parents are head and the sources; sources already merged are left out). Under
        "theirs" a later source wins over earlier ones. See `merge`."""
        if self.read_only:
            from .errors import PermissionDeniedError

            raise PermissionDeniedError(
                f"dataset '{self.name}' is open read-only (at a snapshot or manifest); "
                "open a branch to merge into it")
        if isinstance(sources, (str, Dataset)):
            sources = [sources]
        names: List[str] = []
        for src in sources:
            if isinstance(src, Dataset):
                if src.name != self.name:
                    raise InvalidArgumentError(
                        f"merge source is dataset '{src.name}', not '{self.name}'")
                names.append(f"branch:{src.branch}" if src.branch else src.head)
            elif isinstance(src, str):
                names.append(src)
            else:
                raise InvalidArgumentError(
                    f"merge source must be a str or a Dataset, not {type(src).__name__}")
        info = self._h.merge(names, str(policy), bool(no_ff), message, "")
        self._h.refresh()
        return self._commit(info)

    def compact(self, message: str = "") -> str:
        """Rewrites this branch's records into few large segments and a fresh anchor index
        in one commit whose content equals the head's (spec/14-semantics.md §18): same
        anchors, values, order, tombstones, schema and metadata. Values of deleted and
        replaced records are no longer reached by the new head; older versions keep them
        until GC drops those versions. Spatial indexes keep their codes (no rebuild).
        Returns the new head (the unchanged head when it was already compact).
        `last_commit` has the figures: "changed", "records", "segments_before",
        "segments_after", "segment_bytes_before", "segment_bytes_after", "pages_before",
        "pages_after", "spatial_indexes", "attempts". A commit landing on the branch
        meanwhile restarts it (three attempts, then ConflictError; nothing changed)."""
        if self.read_only:
            from .errors import PermissionDeniedError

            raise PermissionDeniedError(
                f"dataset '{self.name}' is open read-only (at a snapshot or manifest); "
                "open a branch to compact it")
        info = self._h.compact(message)
        self._h.refresh()
        return self._commit(info)

    # ---- sweeps (spec/14-semantics.md §17) ----

    def sweep_init(
        self,
        sweep: str,
        runs: int,
        from_: Optional[str] = None,
        prefix: str = "sweep/",
        params: Optional[Sequence[Mapping[str, Any]]] = None,
        metric: str = "",
        goal: str = "",
        message: str = "",
    ) -> Dict[str, Any]:
        """Starts sweep `sweep`: creates branches "<prefix><sweep>/run-0" .. run-(runs-1)
        at the version `from_` names (default: this handle's branch, or its version when
        read-only) and records the sweep — source, runs, `params` (one mapping per run;
        values are stored as text) and an optional default `metric`/`goal` ("min" or
        "max") — in the metadata of branch "sweeps/<sweep>". Nothing is written unless
        every name is valid and free (AlreadyExistsError, InvalidArgumentError). Returns
        the record as `sweep` does."""
        from ._core import sweep_init as _init

        source = from_ if from_ is not None else (
            f"branch:{self.branch}" if self.branch else self.head)
        per_run = [{str(k): str(v) for k, v in p.items()} for p in (params or [])]
        return _init(self._h.store, self.name, sweep, source, int(runs), prefix, per_run,
                     metric, goal, message)

    def sweep(self, sweep: str) -> Dict[str, Any]:
        """The record of sweep `sweep`: {"sweep", "record_branch", "from",
        "source_branch", "source_manifest", "prefix", "metric", "goal", "created_ns",
        "runs": [{"run", "branch", "params"}]}. NotFoundError when there is none."""
        from ._core import sweep_show as _show

        return _show(self._h.store, self.name, sweep)

    def sweeps(self) -> List[Dict[str, Any]]:
        """Every sweep of this dataset, by name, each as `sweep` returns it."""
        from ._core import sweep_list as _list

        return list(_list(self._h.store, self.name))

    def sweep_summarize(self, sweep: str, metric: str = "", goal: str = "") -> Dict[str, Any]:
        """Ranks the runs of `sweep` by `metric` (default: the one recorded at init) with
        `goal` "min" (default) or "max". A run's value is the mean of the numeric record
        field `metric` over its branch (nulls and NaNs left out, NaNs counted in "nans"),
        else the number in its branch metadata key `metric`. Runs without a value, or
        whose value is NaN, are listed with rank None. Returns {"sweep", "metric", "goal",
        "runs": [{"run", "branch", "value", "rank", "source", "values", "nulls", "nans",
        "note"}], "best", "worst"} (best and worst are branch names or None)."""
        from ._core import sweep_summarize as _summarize

        return _summarize(self._h.store, self.name, sweep, metric, goal)

    def sweep_merge_best(
        self,
        sweep: str,
        metric: str = "",
        goal: str = "",
        into: str = "",
        policy: str = "fail",
        message: str = "",
    ) -> Dict[str, Any]:
        """Merges the best run of `sweep` (ranked as `sweep_summarize` does) into `into`
        (default: the branch the sweep was made from) like `merge`, with conflict
        `policy` "fail", "ours" or "theirs". Returns the summary plus "into", "head",
        "count", "result" and "conflicts_resolved". Refreshes this handle."""
        from ._core import sweep_merge_best as _merge_best

        out = _merge_best(self._h.store, self.name, sweep, metric, goal, into, str(policy),
                          message)
        self._h.refresh()
        return out

    # ---- reads ----

    def iter_batches(
        self,
        fields: Optional[Union[str, Sequence[str]]] = None,
        start: int = 0,
        end: Optional[int] = None,
        batch_size: int = 8192,
        limit: Optional[int] = None,
        shuffle_seed: Optional[int] = None,
        block_size: Optional[int] = None,
        since: Any = None,
        until: Any = None,
    ) -> pa.RecordBatchReader:
        """Streams records as Arrow record batches.

        Only the requested `fields` (default: all) are read from storage; the "anchor"
        column (uint64) always comes first. `start`/`end` bound the anchors (end
        exclusive); `limit` caps the number of records. Columns are exported without
        copying (bool columns excepted). Reads the head at the time of the call.

        Without `shuffle_seed` records come in ascending anchor order. With it, the
        live anchors are cut into blocks of `block_size` records (default
        max(batch_size, 4096)); the block order and the records within each block are
        permuted by a generator seeded with `shuffle_seed`, so the same seed over the
        same version always gives the same order on every machine. Memory holds one
        block plus the block boundaries (one integer per block). The version is pinned
        at the call: later commits do not change what the reader returns.

        `since`/`until` read a time window [since, until) of a dataset whose anchors are
        times (ns since the Unix epoch): each a timezone-aware datetime, an RFC 3339
        string ("2024-05-01T12:00:00Z"), a numpy datetime64 or integer ns. Only the
        window is read (an anchor range; the C++ API's TimeAnchorIter). They replace
        `start`/`end`, which cannot be given with them.
        """
        if since is not None or until is not None:
            if start != 0 or end is not None:
                raise InvalidArgumentError("give either since/until or start/end, not both")
            start = 0 if since is None else _time_ns("since", since)
            end = None if until is None else _time_ns("until", until)
            if end is not None and start > end:
                raise InvalidArgumentError(f"since {since!r} is after until {until!r}")
        if shuffle_seed is None:
            return read_stream(self.arrow_stream(fields, start, end, batch_size, limit))
        if batch_size < 1:
            raise InvalidArgumentError(f"batch_size must be >= 1, got {batch_size}")
        block = max(int(batch_size), 4096) if block_size is None else int(block_size)
        if block < 1:
            raise InvalidArgumentError(f"block_size must be >= 1, got {block_size}")
        pinned = Dataset(_CoreDataset.open_at(self.store, self.name, self.head))
        end_ = _U64_MAX if end is None else int(end)
        schema = read_stream(pinned.arrow_stream(fields, 0, 0, 1, 0)).schema
        # Block k is the anchor range [starts[k], starts[k + 1]) (the last ends at `end`).
        starts: List[int] = []
        seen = 0
        for chunk in pinned.iter_anchors(start, end_):
            first = (-seen) % block
            starts.extend(int(a) for a in chunk[first::block])
            seen += len(chunk)
        bounds = starts[1:] + [end_]
        order = _Rng("iter_batches", int(shuffle_seed), "blocks").permutation(len(starts))
        remaining = _U64_MAX if limit is None else int(limit)

        def batches() -> Iterator[pa.RecordBatch]:
            nonlocal remaining
            for k in order:
                if remaining <= 0:
                    return
                table = pinned.iter_batches(fields, starts[k], bounds[k], block).read_all()
                perm = _Rng("iter_batches", int(shuffle_seed), "rows", k).permutation(
                    table.num_rows)
                table = table.take(pa.array(perm[: min(len(perm), remaining)], pa.int64()))
                remaining -= table.num_rows
                for rb in table.to_batches(max_chunksize=int(batch_size)):
                    yield rb

        return pa.RecordBatchReader.from_batches(schema, batches())

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

    def anchors(self, start: Optional[int] = None, end: Optional[int] = None) -> np.ndarray:
        """The live anchors at head in ``[start, end)`` (end exclusive), ascending, as a
        NumPy ``uint64`` array.

        Reads only the anchor index pages, never field data, so listing the records of a
        dataset of large blobs costs a small fraction of a scan. For bounded memory over
        huge datasets use :meth:`iter_anchors`.
        """
        return self._h.anchors(0 if start is None else int(start),
                               _U64_MAX if end is None else int(end))

    def iter_anchors(
        self, start: Optional[int] = None, end: Optional[int] = None, batch_size: int = 65536
    ) -> Iterator[np.ndarray]:
        """Like :meth:`anchors`, in chunks of up to `batch_size` anchors (uint64 arrays)."""
        stream = self._h.scan([], 0 if start is None else int(start),
                              _U64_MAX if end is None else int(end), int(batch_size),
                              _U64_MAX, True)
        for batch in read_stream(stream):
            yield batch.column(0).to_numpy()

    def read_units(self, fields: Optional[Union[str, Sequence[str]]] = None,
                   min_records: int = 1, max_records: Optional[int] = None) -> np.ndarray:
        """Splits the records at head into *units* of consecutive records for parallel
        readers that each scan whole units (DataLoader workers, ranks), as a NumPy
        ``uint64`` array of rows ``(first anchor, last anchor, records)``, in anchor order.

        A unit ends where the values of one of `fields` (all when None) move to another
        segment once it holds at least `min_records` records, and at `max_records` at the
        latest. A scan reads whole segments, so readers that scan whole units
        (``iter_batches(start=first, end=last + 1)``) read each segment once, unless a
        segment holds more than `max_records` records. Reads only the anchor index pages.
        """
        return self._h.read_units(_fields(fields), int(min_records),
                                  _U64_MAX if max_records is None else int(max_records))

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
        return read_table(stream)

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

    def read_stats(self) -> Dict[str, Any]:
        """Storage reads by this handle so far: "requests", "bytes_fetched", "cache_hits"
        (segment reads of this handle), and "store": the requests its store made, as
        :meth:`dreamdb.Store.stats` (shared by every handle on that Store)."""
        stats: Dict[str, Any] = dict(self._h.read_stats())
        stats["store"] = self._h.store.stats()
        return stats

    def verify(self) -> Dict[str, Any]:
        """Checks every object reachable from this dataset's refs; "problems" is empty when
        healthy."""
        return self._h.verify()

    def __iter__(self) -> Iterable[Dict[str, Any]]:
        """Records as dicts (slow; for exploration). Use iter_batches for real work."""
        for batch in self.iter_batches():
            yield from batch.to_pylist()

    # ---- Vector search (spec/21-spatial-index.md) ----

    def search(
        self,
        field: str,
        q: Any,
        k: int = 10,
        nprobe: Optional[int] = None,
        where: Optional[Union[str, Sequence[str]]] = None,
        fields: Optional[Union[str, Sequence[str]]] = None,
        exact: bool = False,
        rerank: bool = True,
        start: Optional[int] = None,
        end: Optional[int] = None,
        ef: Optional[int] = None,
        recall: Optional[float] = None,
    ) -> pa.Table:
        """The k records nearest to each query, as a pyarrow Table with columns "query"
        (the query's row in `q`), "anchor", "score" and the projected `fields`, best first
        within each query.

        `q` is one vector (1-D) or a batch (2-D, one query per row): a NumPy array or nested
        lists. Searches this handle's head through the field's spatial index when one is
        built (see build_index), else by brute force (`exact=True` forces it). Scores are
        cosine similarity, inner product or L2 distance (the index's metric). `where` holds
        predicates such as "label == 3" or "split in ('a', 'b')" (all must hold);
        `start`/`end` bound the anchors. `nprobe` (cells probed) applies to ivf, imi and
        lsh indexes, `ef` (the beam width) to graph indexes; without them a search uses
        the setting the index build calibrated for recall@10 0.95 (see index_status), or,
        with `recall` (e.g. 0.9 or 0.99), the calibrated setting for that recall. Bad inputs raise InvalidArgumentError.
        """
        arr = np.asarray(q, dtype=np.float32)
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        if arr.ndim != 2:
            raise InvalidArgumentError(f"search: q must be 1-D or 2-D, got {arr.ndim} dimensions")
        if isinstance(where, str):
            where = [where]
        if k is None or int(k) < 0:
            raise InvalidArgumentError(f"search: k must be at least 1, got {k}")
        if ef is not None and int(ef) < 1:
            raise InvalidArgumentError(f"search: ef must be at least 1, got {ef}")
        if recall is not None and not 0 < float(recall) <= 1:
            raise InvalidArgumentError(f"search: recall must be in (0, 1], got {recall}")
        query, anchors, scores, stream, _info = self._h.search(
            field, np.ascontiguousarray(arr), int(k), 0 if nprobe is None else int(nprobe),
            list(where or ()), _fields(fields), bool(exact), bool(rerank),
            0 if start is None else int(start), _U64_MAX if end is None else int(end),
            0 if ef is None else int(ef), 0.0 if recall is None else float(recall))
        arrays = [pa.array(query.astype(np.int64)), pa.array(anchors), pa.array(scores)]
        names = ["query", "anchor", "score"]
        if stream is not None:
            projected = read_table(stream)
            for name in projected.column_names:
                if name != "anchor":
                    arrays.append(projected.column(name))
                    names.append(name)
        return pa.Table.from_arrays(arrays, names=names)

    def build_index(
        self,
        field: str,
        *,
        cells: Optional[int] = None,
        bits: Optional[int] = None,
        metric: Optional[str] = None,
        seed: int = 0,
        message: str = "",
        algorithm: Optional[str] = None,
        quantizer: Optional[str] = None,
        degree: Optional[int] = None,
        calibrate: bool = True,
    ) -> Dict[str, Any]:
        """Trains and builds the spatial index of embedding `field` (cells + RaBitQ codes) on
        this branch's head, in one commit; later appends are assigned to it. algorithm:
        "ivf" (k-means cells), "imi" (inverted multi-index), "lsh" (random hyperplanes) or
        "graph" (a Vamana graph built in memory, at most 4 GiB of vectors; `degree` is its
        out-degree, default 32). quantizer: "rabitq" (default) or "pq4" (4-bit product
        quantization; ivf, imi, lsh). Defaults come from the field's declared index, else
        ivf, cosine, 4 bits and the algorithm's cells (ivf round(sqrt(N))). With
        `calibrate` (default) the build measures recall@10 against brute force on a sample
        of the indexed vectors and stores the setting (nprobe or ef) that reaches 0.95,
        which default searches then use. Returns index_status() plus "head"."""
        if self.read_only:
            from .errors import PermissionDeniedError

            raise PermissionDeniedError(f"dataset '{self.name}' is open read-only")
        out = self._h.build_index(field, int(cells or 0), int(bits or 0), metric or "",
                                  int(seed), message, algorithm or "", quantizer or "",
                                  int(degree or 0), bool(calibrate))
        self._h.refresh()
        return out

    def _check_writable(self) -> None:
        if self.read_only:
            from .errors import PermissionDeniedError

            raise PermissionDeniedError(f"dataset '{self.name}' is open read-only")

    def index_status(self, field: str, *, balance: bool = False, sample: int = 0) -> Dict[str, Any]:
        """The spatial index of `field` at head: "built", "algorithm", "metric", "bits",
        "quantizer", "dim", "cells", "nprobe" (cells a default search probes), "ef" (graph:
        the beam width a default search with k=10 uses), "calibration" (None, or "queries",
        "k", "recall" at the default setting and "curve": (nprobe or ef, recall@k) pairs),
        "entries", "buckets", "live", "stale", "nodes", "tail", "degree" (graph: nodes in
        the graph, entries appended since the build, out-degree; 0 otherwise), "index",
        "model".

        With `balance` (ivf/imi/lsh; reads every bucket), "balance" holds the entries per
        cell: "nonempty" cells, "max", "mean" (ivf: over all cells; imi/lsh: non-empty
        ones), "max_over_mean", "cv" (standard deviation / mean), "over_2x" and
        "under_quarter" (cells above 2x / below 1/4 of the mean); else None. With `sample`
        > 0 (ivf/imi/lsh), "drift" holds recall@10 at the stored nprobe against brute force
        on `sample` stored vectors ("queries", "nprobe", "recall", "calibrated_recall": the
        recall calibration measured at that nprobe, or None, and "drift" = calibrated -
        now); else None. The CLI's `index status` measures both (sample 64)."""
        return self._h.index_status(field, bool(balance), int(sample))

    def rebuild_index(self, field: str, *, message: str = "") -> Dict[str, Any]:
        """Retrains the spatial index of `field` from scratch with its stored settings
        (algorithm, metric, bits, quantizer, seed, graph degree; cells as the schema
        declares, else the default for today's size), calibrates it and commits it on this
        branch. Returns index_status() plus "head"."""
        self._check_writable()
        out = self._h.rebuild_index(field, message)
        self._h.refresh()
        return out

    def step_index(self, field: str, *, message: str = "", split_above: float = 1.5,
                   merge_below: float = 0.25) -> Dict[str, Any]:
        """One maintenance step of the ivf index of `field`: cells above `split_above` x the
        target size (entries / round(sqrt(entries)), or / the declared cells) are split by
        k-means inside the cell, cells below `merge_below` x it are merged into their
        nearest cells; only those cells' entries are re-encoded, other cells' buckets are
        reused; the index is recalibrated and committed. Returns index_status() plus "head"
        and "step": "changed" (False: balanced, nothing committed), "cells_before",
        "cells_after", "split", "merged", "renumbered", "entries_moved", "stale_dropped",
        "buckets_written", "buckets_kept", "nprobe_before", "nprobe_after"."""
        self._check_writable()
        out = self._h.step_index(field, message, float(split_above), float(merge_below))
        self._h.refresh()
        return out
