# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""PyTorch loading: :class:`DreamDBDataset`, an ``IterableDataset`` over one pinned version,
and :class:`DreamDBMapDataset`, its map-style sibling over ``take`` (see its docstring).

``DreamDBDataset`` is built on :mod:`dreamdb.loader` (which needs no PyTorch; its module
docstring defines the order): one seeded global order per epoch, the same on every machine;
every rank gets the same number of samples (``DistributedSampler``'s rule: padding by
repeating from the start, or ``drop_last``); DataLoader workers are dealt whole loader
batches round-robin, so the DataLoader yields the rank's sequence in order whatever
``num_workers`` is (give the DataLoader's batch size as ``loader_batch_size``).
Rank and world size come from the ``rank``/``world_size`` arguments, else
``torch.distributed`` when it is initialized, else the ``RANK`` / ``WORLD_SIZE``
environment variables, else 0 / 1.

Resume, two ways:

* plain ``DataLoader``: the loop counts the samples it consumed this pass and saves
  ``ds.state_dict(consumed=n)``; after ``ds.load_state_dict(state)`` the next pass yields
  exactly the remaining samples of the epoch, in the same order, with the same or a
  different ``num_workers`` (same world size). ``state_dict()`` without ``consumed`` in
  the main process raises when the pass ran in workers (it cannot know their progress).
* torchdata's ``StatefulDataLoader``: it calls ``state_dict()`` / ``load_state_dict()``
  in each worker (in the main process with ``num_workers=0``); resume with the same
  ``num_workers``.

Seeking is arithmetic: nothing before the position is read. The version is pinned at
construction (its manifest id), so commits during training never leak in.

The C++ dataset is opened lazily in the process that iterates, so the object works with
DataLoader workers under both ``fork`` and ``spawn`` (use a file store: a ``memory://``
store does not exist in a spawned process).
"""

from __future__ import annotations

import os
import threading
from typing import (Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence,
                    Tuple, Union)

import numpy as np
import pyarrow as pa
import torch
import torch.utils.data

from . import _convert
from .dataset import Dataset, StoreLike
from .errors import InternalError, InvalidArgumentError
from .loader import _SCAN_MIN, LoaderCore, _numpy_column, _Spec

__all__ = ["DreamDBDataset", "DreamDBMapDataset"]

Sample = Dict[str, Any]

# Arrow/NumPy element types PyTorch 1.13 cannot hold map to the next wider signed type.
_TORCH_SAFE = {np.dtype(np.uint16): np.int32, np.dtype(np.uint32): np.int64,
               np.dtype(np.uint64): np.int64}


class DreamDBDataset(LoaderCore, torch.utils.data.IterableDataset):
    """Records of a DreamDB dataset as dicts, for ``torch.utils.data.DataLoader``.

    Args:
        name: dataset name.
        store: store URI or path (a string: it must be openable in worker processes).
        at: snapshot label, branch or manifest id to read; None = head of "main". The
            manifest is pinned at construction, so every epoch and worker reads the same
            version.
        fields: fields to load (default all); unrequested fields are never read.
        batch_size: records per storage read (not the training batch size).
        shuffle_seed: None for ascending anchor order; an int for a seeded order per
            epoch (see ``shuffle_mode``).
        transform: called on each sample dict; its result is yielded.
        block_size: records per block in ``shuffle_mode="blocks"``.
        shuffle_buffer: records per shuffle window in ``shuffle_mode="blocks"``.
        loader_batch_size: the ``batch_size`` given to the DataLoader. Workers are then
            dealt whole batches round-robin, which makes the DataLoader's output the
            rank's sequence in order for any ``num_workers`` (needed for exact resume
            with workers from ``state_dict(consumed=...)``). Without it workers are dealt
            single samples: every sample still comes once, but with ``num_workers > 1``
            and a DataLoader batch size > 1 the order depends on the worker count.
        drop_last: False (PyTorch's default): every rank gets ceil(records / world)
            samples, padded by repeating the order from its start; True: floor, the
            order's tail is dropped.
        shuffle_mode: "full" (default): a permutation of all records, holding the anchor
            list (8 bytes a record); "blocks": bounded memory (one anchor per
            ``block_size`` records), blocks permuted and records shuffled within windows
            of ``shuffle_buffer`` records (see :mod:`dreamdb.loader` for its quality);
            "units": the fastest with DataLoader workers: each worker reads contiguous
            anchor ranges cut at segment boundaries (range scans; blobs by takes of
            consecutive anchors) instead of scattered records; shuffled, the units'
            order is permuted and each worker shuffles within windows of ``shuffle_buffer`` records (holding them: give a
            small one, e.g. 1024, for large blobs). The DataLoader's order then depends
            on ``num_workers``; resume with the same number (see :mod:`dreamdb.loader`).
        rank, world_size: this process's shard; default from ``torch.distributed`` or
            the environment (see the module docstring).
        batched: False (default): yield one sample dict at a time (below). True: yield
            whole batches of ``loader_batch_size`` samples (default ``batch_size``), one
            tensor per field per batch built from the Arrow buffers with no per-sample
            Python work; use ``DataLoader(ds, batch_size=None)``. Sharding, shuffling
            and resume are the same (``state_dict(consumed=...)`` counts samples).
        reuse_worker_buffers: with ``batched=True`` in DataLoader workers, each worker
            refills the shared-memory buffer of a batch once the main process holds no
            tensor of it any more (filling fresh shared memory costs a page fault per
            4 KiB: 1.5x the loader's rate over 50 KiB blobs). If the main process hands
            batches on to other processes (a ``torch.multiprocessing`` queue), clone them
            first or pass False.

    Batches (``batched=True``): ``{"anchor": int64 [n], <field>: ...}`` with numeric
    fields, embeddings and arrays as one tensor ``[n, ...]`` (dtypes as for samples; a
    null is 0, or NaN for float64), a blob field as a uint8 tensor of its values end to
    end plus ``"<field>.offsets"`` (int64 ``[n + 1]``: value i is
    ``data[offsets[i]:offsets[i + 1]]``), string and categorical as a list of str, and
    for an optional field ``"<field>.valid"`` (bool ``[n]``). Each batch's values are
    copied once from the storage reads; in a DataLoader worker its tensors are views of
    one shared-memory buffer, which reaches the main process as one segment (so keeping
    any tensor of a batch keeps the whole batch's buffer).

    Samples: ``{"anchor": int, <field>: value}`` with int64/timestamp -> int64 tensor,
    float64 -> float64 tensor, bool -> bool tensor, embedding -> float32 tensor [dim],
    array -> tensor of its shape (u16/u32/u64 widened to int32/int64/int64), string and
    categorical -> str, blob -> bytes, and None for a null value.

    Thread-safety: one iteration at a time per object; DataLoader workers get copies.
    """

    def __init__(
        self,
        name: str,
        store: StoreLike,
        at: Optional[str] = None,
        fields: Optional[Sequence[str]] = None,
        batch_size: int = 1024,
        shuffle_seed: Optional[int] = None,
        transform: Optional[Callable[[Sample], Any]] = None,
        block_size: int = 4096,
        shuffle_buffer: int = 65536,
        *,
        loader_batch_size: Optional[int] = None,
        drop_last: bool = False,
        shuffle_mode: str = "full",
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
        batched: bool = False,
        reuse_worker_buffers: bool = True,
    ) -> None:
        """Pins the version and lists its anchors (see the class docstring for the args)."""
        torch.utils.data.IterableDataset.__init__(self)
        if batched and loader_batch_size is None:
            loader_batch_size = batch_size
        LoaderCore.__init__(self, name, store, at, fields, batch_size, shuffle_seed,
                            block_size, shuffle_buffer, loader_batch_size=loader_batch_size,
                            drop_last=drop_last, shuffle_mode=shuffle_mode, rank=rank,
                            world_size=world_size)
        self.transform = transform
        self.batched = bool(batched)
        self.reuse_worker_buffers = bool(reuse_worker_buffers)

    def _rank_and_world(self) -> Tuple[int, int]:
        dist = torch.distributed
        if (self._rank is None and self._world is None and dist.is_available()
                and dist.is_initialized()):
            return dist.get_rank(), dist.get_world_size()
        return LoaderCore._rank_and_world(self)

    def __getstate__(self) -> Dict[str, Any]:
        state = LoaderCore.__getstate__(self)
        # Spawned DataLoader workers have no torch.distributed: they get the shard of the
        # process that pickled them.
        state["_rank"], state["_world"] = self._rank_and_world()
        return state

    def _worker_and_count(self) -> Tuple[int, int]:
        info = torch.utils.data.get_worker_info()
        return (info.id, info.num_workers) if info is not None else (0, 1)

    def _may_run_elsewhere(self) -> bool:
        return torch.utils.data.get_worker_info() is None  # the main process

    def __len__(self) -> int:
        """Samples (batched: batches) this rank yields per epoch, all workers together."""
        if self.batched:
            return -(-self.samples_per_rank() // int(self.loader_batch_size))
        return self.samples_per_rank()

    def state_dict(self, consumed: Optional[int] = None,
                   num_workers: Optional[int] = None) -> Dict[str, Any]:
        """Where this rank is: a small dict for load_state_dict() (see the module
        docstring). In the main process with DataLoader workers pass ``consumed`` (samples
        the loop consumed this pass), and with ``shuffle_mode="units"`` also the
        DataLoader's ``num_workers``; inside a worker (StatefulDataLoader) the state holds
        that worker's own progress."""
        where = "the main process" if self._may_run_elsewhere() else "a DataLoader worker"
        return self._state(consumed, where, num_workers)

    def __iter__(self) -> Iterator[Any]:
        """One pass over this rank's (or this worker's) share of the epoch, from the
        loaded position if any."""
        # Not a generator itself: the pass is set up when iter() is called, so a
        # state_dict() taken before the first next() already describes it.
        p, skip = self._begin()
        return self._run(p, skip)

    def _run(self, p: Any, skip: int) -> Iterator[Any]:
        if self.batched:
            return self._run_batched(p, skip)
        return self._run_samples(p, skip)

    def _run_batched(self, p: Any, skip: int) -> Iterator[Any]:
        batch = int(self.loader_batch_size)  # type: ignore[arg-type]
        # In a DataLoader worker every batch is built in one shared-memory buffer and
        # crosses to the main process as that one buffer (see _Batch).
        shared = not self._may_run_elsewhere()
        try:
            # Counted here, as received: reads run ahead of the consumer. A range scan
            # reads ahead on its own (in C++, without the GIL); takes are read ahead here
            # on a thread (which, over a scan, only added GIL hand-offs: 0.8x at 0 workers).
            tables = self._tables(p, skip)
            if not self._scans_only(p):
                tables = _read_ahead(tables, depth=2)
            reuse = shared and self.reuse_worker_buffers
            for out in _batches(tables, self._specs, batch, shared, reuse):
                self._yielded += len(out["anchor"])
                yield self.transform(out) if self.transform is not None else out
        finally:
            self._ds = None

    def _scans_only(self, p: Any) -> bool:
        """True when pass `p` reads only by range scans (see LoaderCore._tables)."""
        if self._units is not None:  # blob fields are read by takes
            return not any(spec.type == "blob" for spec in self._specs)
        return self.shuffle_seed is None and (p.num_workers == 1 or
                                              (self.loader_batch_size or 1) >= _SCAN_MIN)

    def _run_samples(self, p: Any, skip: int) -> Iterator[Any]:
        try:
            for table in _read_ahead(self._tables(p, skip), depth=2):
                for batch in (table.to_batches() if isinstance(table, pa.Table)
                              else (table,)):
                    for sample in _decode(batch, self._specs):
                        self._yielded += 1
                        yield self.transform(sample) if self.transform is not None else sample
        finally:
            # Drop the C++ handle with the pass: a worker then holds no native objects
            # when it exits, and the next pass (or process) reopens the pinned version.
            self._ds = None


class DreamDBMapDataset(torch.utils.data.Dataset):
    """Map-style access to one pinned version of a DreamDB dataset: ``ds[i]`` is the i-th
    live record in anchor order, fetched with :meth:`dreamdb.Dataset.take`.

    Args:
        source: a :class:`dreamdb.Dataset` (its current head is pinned), or a tuple
            ``(name, store)`` / ``(name, store, at)`` with ``at`` a snapshot label, branch
            or manifest id (None = head of "main").
        fields: fields to load (default all); unrequested fields are never read.
        transform: called on each sample dict; its result is returned.

    At construction the version is pinned (its manifest id) and its anchors are listed
    once with an anchors-only scan (index pages only, no field data), kept as a NumPy
    ``uint64`` array (8 bytes per record). Later commits to the dataset never change what
    this object returns.

    Use it with any sampler, e.g. ``DataLoader(ds, batch_size=64, shuffle=True)``:
    DataLoader calls :meth:`__getitems__` with a whole batch of indices, which reads the
    batch with one ``take``. (With a PyTorch that lacks ``__getitems__``, pass
    ``sampler=BatchSampler(...)`` and ``batch_size=None``: ``ds[list_of_indices]`` also
    fetches a batch with one ``take``.)

    Workers: the C++ handle is opened lazily in the process that reads (and reopened
    after a fork), so ``num_workers > 0`` works under both ``fork`` and ``spawn``. The
    object pickles as (store URI, name, manifest id, fields, transform): a spawned worker
    re-lists the anchors of the pinned manifest (identical by construction). Spawned
    workers need a store they can open by URI (a file store; not ``memory://``).

    Samples have the types documented in :class:`DreamDBDataset`.
    """

    def __init__(
        self,
        source: Union[Dataset, Tuple[Any, ...]],
        fields: Optional[Sequence[str]] = None,
        transform: Optional[Callable[[Sample], Any]] = None,
    ) -> None:
        super().__init__()
        if isinstance(source, Dataset):
            ds = Dataset.open_at(source.name, source.head, store=source.store)
        elif isinstance(source, tuple) and len(source) in (2, 3):
            name, store = source[0], source[1]
            at = source[2] if len(source) == 3 else None
            if not isinstance(name, str):
                raise InvalidArgumentError(f"dataset name must be a string, not {name!r}")
            ds = Dataset.open_at(name, at, store=store) if at else Dataset.open(name, store=store)
            ds = Dataset.open_at(name, ds.head, store=ds.store)
        else:
            raise InvalidArgumentError(
                "source must be a dreamdb.Dataset or a tuple (name, store[, at]), not "
                f"{type(source).__name__}")
        self.name = ds.name
        self.store = ds.store.uri
        # Workers reopen the store by URI with the same object cache (a remote store's
        # cache is shared by every worker process).
        self._cache = (ds.store.cache, ds.store.cache_size)
        self._manifest = ds.head
        self.fields = list(fields) if fields is not None else None
        self.transform = transform
        schema = ds.schema
        names = self.fields if self.fields is not None else schema.names
        self._specs = [_Spec(f.name, f.type, f.dim, f.dtype, f.shape)
                       for f in (schema[n] for n in names)]  # NotFoundError if unknown
        self._field_names = [f.name for f in self._specs]
        self._anchors: Optional[np.ndarray] = ds.anchors()
        self._count = len(self._anchors)
        self._ds: Optional[Dataset] = ds
        self._pid = os.getpid()

    @property
    def manifest(self) -> str:
        """The pinned manifest id."""
        return self._manifest

    @property
    def anchors(self) -> np.ndarray:
        """The pinned version's anchors, ascending (``uint64``): item i is ``anchors[i]``."""
        if self._anchors is None:
            anchors = self._dataset().anchors()
            if len(anchors) != self._count:
                raise InternalError(
                    f"manifest {self._manifest} listed {len(anchors)} anchors, expected "
                    f"{self._count}")
            self._anchors = anchors
        return self._anchors

    def __len__(self) -> int:
        """The number of records of the pinned version."""
        return self._count

    def _dataset(self) -> Dataset:
        if self._ds is None or self._pid != os.getpid():
            self._ds = Dataset.open_at(self.name, self._manifest, store=self.store,
                                       cache=self._cache[0], cache_size=self._cache[1])
            self._pid = os.getpid()
        return self._ds

    def _positions(self, indices: Any) -> np.ndarray:
        idx = np.asarray(indices)
        if idx.dtype == np.bool_ or not (idx.size == 0 or np.issubdtype(idx.dtype, np.integer)):
            raise InvalidArgumentError(f"indices must be integers, got {idx.dtype}")
        idx = idx.astype(np.int64, copy=False).reshape(-1)
        bad = (idx < -self._count) | (idx >= self._count)
        if bad.any():
            raise IndexError(
                f"index {int(idx[bad][0])} is out of range for {self._count} records")
        return np.where(idx < 0, idx + self._count, idx)

    def _fetch(self, positions: np.ndarray) -> List[Any]:
        if len(positions) == 0:
            return []
        table = self._dataset().take(self.anchors[positions], self._field_names)
        samples: List[Any] = []
        for batch in table.to_batches():
            samples.extend(_decode(batch, self._specs))
        if self.transform is not None:
            samples = [self.transform(s) for s in samples]
        return samples

    def __getitem__(self, index: Any) -> Any:
        """Record ``index`` (negative counts from the end); a list or array of indices
        returns a list of records, read with one ``take``."""
        if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
            return self._fetch(self._positions([index]))[0]
        if isinstance(index, (list, tuple, np.ndarray, torch.Tensor)):
            if isinstance(index, torch.Tensor):
                index = index.numpy()
            return self._fetch(self._positions(index))
        raise InvalidArgumentError(
            f"index must be an int or a sequence of ints, not {type(index).__name__}")

    def __getitems__(self, indices: Sequence[int]) -> List[Any]:
        """A batch of records with one ``take`` (DataLoader's batched fetch)."""
        return self._fetch(self._positions(list(indices)))

    def read_stats(self) -> Dict[str, int]:
        """Storage reads by this process's handle so far (see Dataset.read_stats)."""
        return self._dataset().read_stats()

    def __getstate__(self) -> Dict[str, Any]:
        return {"name": self.name, "store": self.store, "manifest": self._manifest,
                "fields": self.fields, "transform": self.transform, "specs": self._specs,
                "count": self._count, "cache": self._cache}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.name = state["name"]
        self.store = state["store"]
        self._manifest = state["manifest"]
        self._cache = tuple(state.get("cache", (None, None)))
        self.fields = state["fields"]
        self.transform = state["transform"]
        self._specs = [_Spec(*s) for s in state["specs"]]
        self._field_names = [f.name for f in self._specs]
        self._count = int(state["count"])
        self._anchors = None  # listed again, lazily, from the pinned manifest
        self._ds = None
        self._pid = -1

    def __repr__(self) -> str:
        return (f"DreamDBMapDataset({self.name!r}, store={self.store!r}, "
                f"manifest={self._manifest!r}, records={self._count}, "
                f"fields={self._field_names})")


def _read_ahead(tables: Iterator[Any], depth: int) -> Iterator[Any]:
    """Yields what `tables` yields, reading up to `depth` items ahead on a thread: storage
    reads (which release the GIL) overlap the decoding and the training step. Errors are
    raised at the item where they happened; closing the iterator stops the thread."""
    import queue
    import threading

    q: "queue.Queue[Tuple[int, Any]]" = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Tuple[int, Any]) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for t in tables:
                if not put((0, t)):
                    return
            put((1, None))
        except BaseException as e:  # handed to the consumer, raised there
            put((2, e))
        finally:
            close = getattr(tables, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="dreamdb-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = q.get()
            if kind == 1:
                return
            if kind == 2:
                raise value
            yield value
    finally:
        stop.set()
        thread.join()


class _Column(NamedTuple):
    """One output of a batch, over the rows of one Arrow record batch: ``values`` is a
    NumPy array with rows first (kind "rows"), a blob column's bytes with ``offsets``
    (int64 [n + 1], absolute into ``values``; kind "blob"), or a Python list ("list")."""
    key: str
    kind: str
    values: Any
    offsets: Optional[np.ndarray] = None


def _columns(batch: pa.RecordBatch, specs: Sequence[Any]) -> List[_Column]:
    """An Arrow record batch -> its batch outputs as NumPy views (see DreamDBDataset,
    batched=True), once per storage read; loader batches are then row slices of them."""
    n = batch.num_rows
    out = [_Column("anchor", "rows", batch.column(0).to_numpy().view(np.int64))]
    for i, spec in enumerate(specs):
        col = batch.column(i + 1)
        if spec.type == "blob":
            bufs = col.buffers()
            offsets = np.frombuffer(bufs[1], dtype=np.int64)[col.offset:col.offset + n + 1]
            data = (np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None
                    else np.zeros(0, dtype=np.uint8))
            out.append(_Column(spec.name, "blob", data, offsets))
            valid = np.asarray(col.is_valid()) if col.null_count else None
        else:
            values, valid = _numpy_column(col, spec, n)
            if values.dtype == object:  # string, categorical
                out.append(_Column(spec.name, "list", values.tolist()))
            else:
                safe = _TORCH_SAFE.get(values.dtype)
                out.append(_Column(spec.name, "rows",
                                   values if safe is None else values.astype(safe)))
        if not spec.required:
            out.append(_Column(spec.name + ".valid", "rows",
                               valid if valid is not None else np.ones(n, dtype=bool)))
    return out


def _batches(tables: Iterator[Any], specs: Sequence[Any], rows: int, shared: bool,
             reuse: bool = False) -> Iterator[Dict[str, Any]]:
    """The rows of `tables` (Arrow tables or record batches, in order) as batch dicts of
    `rows` rows (the last may be shorter), each built with one copy of its values:
    into one shared-memory buffer (`shared`, a DataLoader worker; one the worker reuses
    once the main process released it if `reuse`) or into fresh tensors.
    No Arrow table is made per batch: the outputs of each storage read are NumPy views,
    and a batch is a list of row ranges of them."""
    pieces: List[Tuple[List[_Column], int, int]] = []
    held = 0
    for table in tables:
        for rb in (table.to_batches() if isinstance(table, pa.Table) else (table,)):
            n = rb.num_rows
            if n == 0:
                continue
            cols = _columns(rb, specs)
            a = 0
            while a < n:
                step = min(rows - held, n - a)
                pieces.append((cols, a, a + step))
                held += step
                a += step
                if held == rows:
                    yield _assemble(pieces, held, shared, reuse)
                    pieces, held = [], 0
    if held:
        yield _assemble(pieces, held, shared, reuse)


_TORCH_DTYPE: Dict[np.dtype, torch.dtype] = {}


def _torch_dtype(dtype: np.dtype) -> torch.dtype:
    got = _TORCH_DTYPE.get(dtype)
    if got is None:
        got = _TORCH_DTYPE[dtype] = torch.from_numpy(np.zeros(1, dtype=dtype)).dtype
    return got


def _assemble(pieces: List[Tuple[List[_Column], int, int]], n: int, shared: bool,
              reuse: bool) -> Dict[str, Any]:
    """One batch dict of `n` rows from row ranges of record batches' outputs."""
    first = pieces[0][0]
    # (key, dtype, shape, parts): every output a tensor; lists are handled apart.
    plan: List[Tuple[str, np.dtype, Tuple[int, ...], List[np.ndarray]]] = []
    lists: Dict[str, List[Any]] = {}
    for j, c in enumerate(first):
        if c.kind == "list":
            merged: List[Any] = []
            for cols, a, b in pieces:
                merged.extend(cols[j].values[a:b])
            lists[c.key] = merged
        elif c.kind == "rows":
            parts = [cols[j].values[a:b] for cols, a, b in pieces]
            plan.append((c.key, c.values.dtype, (n,) + c.values.shape[1:], parts))
        else:  # blob: the values' bytes end to end, offsets from 0
            data: List[np.ndarray] = []
            offs: List[np.ndarray] = []
            base = 0
            for cols, a, b in pieces:
                o = cols[j].offsets
                assert o is not None
                lo, hi = int(o[a]), int(o[b])
                data.append(cols[j].values[lo:hi])
                offs.append(o[a:b] - (lo - base))
                base += hi - lo
            offs.append(np.array([base], dtype=np.int64))
            plan.append((c.key, np.dtype(np.uint8), (base,), data))
            plan.append((c.key + ".offsets", np.dtype(np.int64), (n + 1,), offs))
    tensors = _shared_tensors(plan, reuse) if shared else {
        key: torch.from_numpy(parts[0].copy() if len(parts) == 1
                              else np.concatenate(parts)).view(shape)
        for key, dtype, shape, parts in plan}
    out: Dict[str, Any] = _Batch() if shared else {}
    for c in first:  # the keys in their documented order
        if c.kind == "list":
            out[c.key] = lists[c.key]
        else:
            out[c.key] = tensors[c.key]
            if c.kind == "blob":
                out[c.key + ".offsets"] = tensors[c.key + ".offsets"]
    return out


def _shared_tensors(plan: List[Tuple[str, np.dtype, Tuple[int, ...], List[np.ndarray]]],
                    reuse: bool) -> Dict[str, torch.Tensor]:
    """The planned outputs as views of one shared-memory buffer (new, or with `reuse` one
    of the worker's buffers the main process released), each filled with one copy of its
    parts (in shared memory already, so nothing is copied again when the batch is sent)."""
    offsets, total = [], 0
    for _, dtype, shape, _ in plan:
        total = -(-total // 8) * 8  # every view 8-byte aligned
        offsets.append(total)
        total += int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    total = max(-(-total // 8) * 8, 8)
    buf = _pool().take(total) if reuse else _new_shared(total)
    raw = buf.numpy()
    out: Dict[str, torch.Tensor] = {}
    for (key, dtype, shape, parts), off in zip(plan, offsets):
        size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        dst = raw[off:off + size].view(dtype)
        at = 0
        for part in parts:
            flat = part.reshape(-1)
            dst[at:at + flat.size] = flat
            at += flat.size
        out[key] = buf[off:off + size].view(_torch_dtype(dtype)).view(shape)
    return out


def _new_shared(nbytes: int) -> torch.Tensor:
    """A uint8 tensor of `nbytes` in shared memory (as default_collate allocates)."""
    elem = torch.empty(0, dtype=torch.uint8)
    storage = getattr(elem, "_typed_storage", elem.storage)()._new_shared(nbytes)
    return elem.new(storage).resize_(nbytes)


def _storage(t: torch.Tensor) -> Any:
    untyped = getattr(t, "untyped_storage", None)  # PyTorch >= 2
    return untyped() if untyped is not None else t.storage()


class _BufferPool:
    """A DataLoader worker's shared-memory batch buffers, reused once the main process
    has released them. Filling fresh shared memory costs a page fault, a zeroed page and
    its accounting per 4 KiB (225 us for a 192 KiB batch against 5 us to copy into pages
    already mapped), so a worker keeps up to `SLOTS` buffers, `MAX_BYTES` in all. The main process writes,
    into a small shared array ``released``, the generation of each slot's last batch once
    every tensor of it is gone (see _rebuild_batch); a slot is reused only then, and each
    reuse has a new generation. A buffer the main process never reports released is never
    reused: batches then fall back to fresh shared memory.

    Thread-safety: used by the one thread that builds a worker's batches."""

    SLOTS = 8
    MAX_BYTES = 32 << 20  # shared memory a worker keeps (a small /dev/shm is common)

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.token = int.from_bytes(os.urandom(8), "little")
        self.released = _new_shared(8 * self.SLOTS).view(torch.int64).zero_()
        self.sent_released = False
        self.bufs: List[torch.Tensor] = []
        self.gens: List[int] = []
        self.slot_of: Dict[int, int] = {}  # buffer address -> slot

    def take(self, nbytes: int) -> torch.Tensor:
        """A shared buffer of at least `nbytes` (a view of exactly `nbytes`)."""
        released = self.released.tolist()
        for i, buf in enumerate(self.bufs):
            if released[i] != self.gens[i]:
                continue  # the main process may still hold it
            if buf.numel() < nbytes:
                others = sum(b.numel() for b in self.bufs) - buf.numel()
                if others + _grown(nbytes) > self.MAX_BYTES:
                    continue  # too large to keep: a fresh buffer below
                del self.slot_of[buf.data_ptr()]
                buf = self.bufs[i] = _new_shared(_grown(nbytes))
                self.slot_of[buf.data_ptr()] = i
            self.gens[i] += 1
            return buf[:nbytes]
        held = sum(b.numel() for b in self.bufs)
        if len(self.bufs) < self.SLOTS and held + _grown(nbytes) <= self.MAX_BYTES:
            buf = _new_shared(_grown(nbytes))
            self.slot_of[buf.data_ptr()] = len(self.bufs)
            self.bufs.append(buf)
            self.gens.append(1)
            return buf[:nbytes]
        return _new_shared(nbytes)

    def describe(self, whole: torch.Tensor) -> Optional[Tuple[int, int, int, Any]]:
        """(token, slot, generation, released array or None) of a pooled buffer being
        sent; the released array goes with the first batch only."""
        slot = self.slot_of.get(whole.data_ptr())
        if slot is None or self.pid != os.getpid():
            return None
        first = None if self.sent_released else self.released
        self.sent_released = True
        return (self.token, slot, self.gens[slot], first)


def _grown(nbytes: int) -> int:
    return -(-nbytes // 65536) * 65536


_POOL: Optional[_BufferPool] = None


def _pool() -> _BufferPool:
    global _POOL
    if _POOL is None or _POOL.pid != os.getpid():
        _POOL = _BufferPool()
    return _POOL


# The main process's side of the pools: per worker pool (token), its released array and
# the batches received from it not yet released: (storage weak reference, slot, generation).
_RECEIVED: Dict[int, Tuple[torch.Tensor, List[Tuple[Any, int, int]]]] = {}
_RECEIVED_LOCK = threading.Lock()
_RECEIVED_MAX = 64  # worker pools tracked (a new DataLoader iterator starts new workers)


def _track(pool: Tuple[int, int, int, Any], whole: torch.Tensor) -> None:
    """In the main process: note a pooled batch received, and report to its worker every
    slot whose batches are all gone."""
    from torch.multiprocessing.reductions import StorageWeakRef

    token, slot, gen, released = pool
    with _RECEIVED_LOCK:
        entry = _RECEIVED.get(token)
        if entry is None:
            if released is None:
                return  # its first batch went elsewhere: nothing is ever released
            while len(_RECEIVED) >= _RECEIVED_MAX:
                _RECEIVED.pop(next(iter(_RECEIVED)))
            entry = _RECEIVED[token] = (released, [])
        array, pending = entry
        pending.append((StorageWeakRef(_storage(whole)), slot, gen))
        alive = {(s, g) for ref, s, g in pending if not ref.expired()}
        for ref, s, g in pending:
            if (s, g) not in alive:
                array[s] = g
        pending[:] = [(ref, s, g) for ref, s, g in pending if (s, g) in alive]


class _Batch(dict):  # type: ignore[type-arg]
    """A batch dict built in a DataLoader worker whose tensors are views of one
    shared-memory buffer. It pickles as that one buffer plus its layout, so the batch
    crosses to the main process as one shared-memory segment (one file descriptor
    handed over) instead of one per tensor, and arrives as a plain dict. If its tensors
    no longer share one buffer (a transform replaced one), it pickles as a plain dict."""

    def __reduce__(self) -> Any:
        tensors = [(k, v) for k, v in self.items() if isinstance(v, torch.Tensor)]
        whole = _whole_buffer(tensors[0][1]) if tensors else None
        if whole is None:
            return (dict, (dict(self),))
        base, size = whole.data_ptr(), whole.numel()
        layout = []
        for k, v in tensors:
            off = v.data_ptr() - base
            nbytes = v.numel() * v.element_size()
            mine = _whole_buffer(v)
            if (mine is None or mine.data_ptr() != base or not v.is_contiguous()
                    or v.requires_grad or off < 0 or off + nbytes > size):
                return (dict, (dict(self),))
            layout.append((k, v.dtype, tuple(v.shape), off, nbytes))
        rest = {k: v for k, v in self.items() if not isinstance(v, torch.Tensor)}
        return (_rebuild_batch, (whole, layout, rest, list(self.keys()), _pool().describe(whole)))


def _whole_buffer(t: torch.Tensor) -> Optional[torch.Tensor]:
    """The whole storage under `t` as a uint8 tensor (None if it is not on the CPU)."""
    if t.device.type != "cpu":
        return None
    if hasattr(t, "untyped_storage"):  # PyTorch >= 2
        return torch.empty(0, dtype=torch.uint8).set_(_storage(t))
    whole = t.new_empty(0).set_(t.storage())
    return whole.view(torch.uint8) if whole.numel() else None


def _rebuild_batch(whole: torch.Tensor, layout: List[Tuple[str, torch.dtype, Tuple[int, ...],
                                                            int, int]],
                   rest: Dict[str, Any], keys: List[str],
                   pool: Optional[Tuple[int, int, int, Any]] = None) -> Dict[str, Any]:
    """The receiving side of _Batch: a plain dict of views of the one buffer."""
    views = {k: whole[off:off + nbytes].view(dtype).view(shape)
             for k, dtype, shape, off, nbytes in layout}
    if pool is not None:
        _track(pool, whole)
    return {k: views[k] if k in views else rest[k] for k in keys}


def _decode(batch: Any, specs: Sequence[Any]) -> Iterator[Sample]:
    """RecordBatch -> sample dicts (see DreamDBDataset for the value types)."""
    n = batch.num_rows
    columns: List[Tuple[str, List[Any]]] = [("anchor", batch.column(0).to_numpy().tolist())]
    for i, spec in enumerate(specs):
        col = batch.column(i + 1)
        valid = None if col.null_count == 0 else np.asarray(col.is_valid())
        t = spec.type
        if t in ("int64", "timestamp", "float64", "bool"):
            arr = col.cast("int64") if t == "timestamp" else col
            np_values = arr.fill_null(False if t == "bool" else 0).to_numpy(zero_copy_only=False)
            values: List[Any] = list(torch.from_numpy(np.array(np_values)).unbind(0))
        elif t in ("embedding", "array"):
            dtype = _convert.element_dtype(spec)
            flat = col.flatten().to_numpy(zero_copy_only=False)
            if t == "array":
                shape = tuple(int(d) for d in spec.shape)
            else:
                shape = (int(spec.dim),)
            if col.null_count:
                # flatten() drops null rows: scatter the valid rows back into place.
                full = np.zeros((n,) + shape, dtype=dtype)
                full[np.asarray(col.is_valid())] = flat.reshape((-1,) + shape)
                rows = full
            else:
                rows = np.asarray(flat, dtype=dtype).reshape((n,) + shape)
            rows = rows.astype(_TORCH_SAFE.get(rows.dtype, rows.dtype), copy=True)
            values = list(torch.from_numpy(rows).unbind(0))
            values = [v.clone() for v in values]  # own storage: samples outlive the batch
        else:  # string, categorical, blob
            values = col.to_pylist()
        if valid is not None:
            values = [v if ok else None for v, ok in zip(values, valid)]
        columns.append((spec.name, values))
    for r in range(n):
        yield {name: values[r] for name, values in columns}
