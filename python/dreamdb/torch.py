# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""PyTorch loading: :class:`DreamDBDataset`, an ``IterableDataset`` over one pinned version,
and :class:`DreamDBMapDataset`, its map-style sibling over ``take`` (see its docstring).

How work is split (each record is yielded exactly once per epoch across all ranks and
DataLoader workers):

1. At construction the dataset version is pinned (its manifest id) and its live anchors
   are cut into *blocks* of ``block_size`` consecutive records (the last may be shorter):
   block ``k`` is the anchor range ``[starts[k], starts[k+1])``. Only the block starts are
   kept, so the object stays small and pickles cheaply to spawned workers.
2. Each epoch the block order is permuted with ``(shuffle_seed, epoch)`` (identity when
   ``shuffle_seed`` is None). Rank ``r`` of ``world_size`` takes ``order[r::world_size]``;
   DataLoader worker ``w`` of ``num_workers`` takes every ``num_workers``-th of those.
   Rank and world size come from ``torch.distributed`` when it is initialized, else from
   the ``RANK`` / ``WORLD_SIZE`` environment variables, else 0 / 1.
3. Within a worker, records stream block after block (ascending anchors in a block) and,
   when shuffling, through a shuffle buffer of ``shuffle_buffer`` records driven by a
   generator seeded with ``(seed, epoch, rank, worker)``.

Resume: ``state_dict()`` records the manifest, seed, epoch and *position* (records yielded
so far by this rank/worker in this epoch); after ``load_state_dict()`` the next pass
yields exactly the records that were still to come, in the same order. Because the
shuffle order depends only on record *counts*, resuming replays it without reading data
and re-reads at most the records that were sitting in the shuffle buffer. With
``num_workers > 0`` the state lives in the workers: save it from there (e.g. torchdata's
``StatefulDataLoader`` calls ``state_dict`` in each worker) or pass ``position`` as a dict
``{"<rank>/<worker>": n}``.

The C++ dataset is opened lazily in the process that iterates, so the object works with
DataLoader workers under both ``fork`` and ``spawn`` (use a file store: a ``memory://``
store does not exist in a spawned process).
"""

from __future__ import annotations

import os
from typing import (Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple,
                    Union)

import numpy as np
import torch
import torch.utils.data

from . import _convert
from .dataset import Dataset, StoreLike
from ._rng import _Rng
from .errors import InternalError, InvalidArgumentError

__all__ = ["DreamDBDataset", "DreamDBMapDataset"]

Sample = Dict[str, Any]


class _Spec(NamedTuple):
    name: str
    type: str
    dim: Optional[int]
    dtype: Optional[str]
    shape: Optional[Tuple[int, ...]]


# Arrow/NumPy element types PyTorch 1.13 cannot hold map to the next wider signed type.
_TORCH_SAFE = {np.dtype(np.uint16): np.int32, np.dtype(np.uint32): np.int64,
               np.dtype(np.uint64): np.int64}


class _ShuffleOrder:
    """The order in which a shuffle buffer of size `size` emits ordinals 0..total-1.

    Items enter in ordinal order; the buffer fills to `size`, then each step emits a
    random slot and refills it with the next item; at the end it drains in random order.
    `admitted` is the next ordinal to enter: everything below it has been read.
    """

    def __init__(self, total: int, size: int, rng: _Rng) -> None:
        self.total = total
        self.size = max(1, size)
        self.rng = rng
        self.buffer: List[int] = []
        self.admitted = 0

    def next(self) -> Optional[int]:
        while len(self.buffer) < self.size and self.admitted < self.total:
            self.buffer.append(self.admitted)
            self.admitted += 1
        if not self.buffer:
            return None
        j = self.rng.below(len(self.buffer))
        out = self.buffer[j]
        if self.admitted < self.total:
            self.buffer[j] = self.admitted
            self.admitted += 1
        else:
            self.buffer[j] = self.buffer[-1]
            self.buffer.pop()
        return out


def _rank_and_world() -> Tuple[int, int]:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


class DreamDBDataset(torch.utils.data.IterableDataset):
    """Records of a DreamDB dataset as dicts, for ``torch.utils.data.DataLoader``.

    Args:
        name: dataset name.
        store: store URI or path (a string: it must be openable in worker processes).
        at: snapshot label, branch or manifest id to read; None = head of "main". The
            manifest is pinned at construction, so every epoch and worker reads the same
            version.
        fields: fields to load (default all); unrequested fields are never read.
        batch_size: records per storage read (not the training batch size).
        shuffle_seed: None for ascending anchor order within blocks; an int to shuffle
            block order and records (through the shuffle buffer) per seed and epoch.
        transform: called on each sample dict; its result is yielded.
        block_size: records per block, the unit of work distribution.
        shuffle_buffer: records held for shuffling (memory vs randomness).

    Samples: ``{"anchor": int, <field>: value}`` with int64/timestamp -> int64 tensor,
    float64 -> float64 tensor, bool -> bool tensor, embedding -> float32 tensor [dim],
    array -> tensor of its shape (u16/u32/u64 widened to int32/int64/int64), string and
    categorical -> str, blob -> bytes, and None for a null value.
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
        shuffle_buffer: int = 8192,
    ) -> None:
        """Pins the version and lists its anchors (see the class docstring for the args)."""
        super().__init__()
        if isinstance(store, os.PathLike):
            store = os.fspath(store)
        if not isinstance(store, str):
            uri = getattr(store, "uri", None)
            if not isinstance(uri, str):
                raise InvalidArgumentError("store must be a URI string or a path")
            store = uri
        if batch_size < 1 or block_size < 1 or shuffle_buffer < 1:
            raise InvalidArgumentError("batch_size, block_size and shuffle_buffer must be >= 1")
        self.name = name
        self.store = store
        self.fields = list(fields) if fields is not None else None
        self.batch_size = int(batch_size)
        self.shuffle_seed = shuffle_seed
        self.transform = transform
        self.block_size = int(block_size)
        self.shuffle_buffer = int(shuffle_buffer)
        self.epoch = 0
        self._ds: Optional[Dataset] = None
        self._pid = -1
        ds = Dataset.open_at(name, at, store=store) if at else Dataset.open(name, store=store)
        self._pin(ds.head, ds)
        self._position = 0  # records yielded in the current pass (this rank/worker)
        self._resume: Union[int, Dict[str, int]] = 0  # to skip at the next pass
        self._shard: Optional[Tuple[int, int, int, int]] = None

    # ---- pinning and blocks ----

    @property
    def manifest(self) -> str:
        """The pinned manifest id."""
        return self._manifest

    def _pin(self, manifest: str, ds: Optional[Dataset] = None) -> None:
        """Pins `manifest` and cuts its anchors into blocks."""
        if ds is None or ds.head != manifest:
            ds = Dataset.open_at(self.name, manifest, store=self.store)
        self._manifest = manifest
        schema = ds.schema
        names = self.fields if self.fields is not None else schema.names
        # Plain tuples (not Field objects) keep the pickled object small and simple.
        self._specs = [_Spec(f.name, f.type, f.dim, f.dtype, f.shape)
                       for f in (schema[n] for n in names)]  # NotFoundError if unknown
        self._field_names = [f.name for f in self._specs]
        starts: List[int] = []
        seen = 0
        last = -1
        # Anchors only: the index pages are read, no field data.
        for anchors in ds.iter_anchors(batch_size=65536):
            n = len(anchors)
            # Positions (in this batch) of records whose global index is a multiple of B.
            first = (-seen) % self.block_size
            starts.extend(int(a) for a in anchors[first::self.block_size])
            seen += n
            if n:
                last = int(anchors[-1])
        self._starts = np.array(starts + [last + 1], dtype=np.uint64) if seen else np.zeros(
            1, dtype=np.uint64)
        self._total = seen
        self._ds = None  # reopened lazily where the iteration happens

    def _block_counts(self) -> List[int]:
        nb = len(self._starts) - 1
        counts = [self.block_size] * nb
        if nb:
            counts[-1] = self._total - (nb - 1) * self.block_size
        return counts

    def _blocks_for(self, rank: int, world: int, worker: int, workers: int) -> List[int]:
        nb = len(self._starts) - 1
        if self.shuffle_seed is None:
            order = list(range(nb))
        else:
            order = _Rng("blocks", self.shuffle_seed, self.epoch).permutation(nb)
        return order[rank::world][worker::workers]

    # ---- torch API ----

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch (changes the shuffle order); resets the position to 0.

        DataLoader workers get a copy of this object when an epoch's iteration starts, so
        call it before iterating the loader (with ``persistent_workers=True`` the workers
        keep the epoch they started with)."""
        self.epoch = int(epoch)
        self._position = 0
        self._resume = 0

    def __len__(self) -> int:
        """Records this rank yields per epoch (all its workers together)."""
        rank, world = _rank_and_world()
        counts = self._block_counts()
        return sum(counts[b] for b in self._blocks_for(rank, world, 0, 1))

    def state_dict(self) -> Dict[str, Any]:
        """Where this rank/worker is: enough for load_state_dict() to resume exactly."""
        position: Union[int, Dict[str, int]] = self._position if self._shard else self._resume
        state: Dict[str, Any] = {
            "manifest": self._manifest,
            "seed": self.shuffle_seed,
            "epoch": self.epoch,
            "position": position,
            "block_size": self.block_size,
            "shuffle_buffer": self.shuffle_buffer,
        }
        if self._shard is not None:
            rank, world, worker, workers = self._shard
            state["shard"] = {"rank": rank, "world_size": world, "worker": worker,
                              "num_workers": workers}
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restores a state_dict(): the next pass skips the records already yielded."""
        self.shuffle_seed = state["seed"]
        self.epoch = int(state["epoch"])
        self.block_size = int(state.get("block_size", self.block_size))
        self.shuffle_buffer = int(state.get("shuffle_buffer", self.shuffle_buffer))
        self._pin(state["manifest"])
        position = state.get("position", 0)
        self._resume = dict(position) if isinstance(position, dict) else int(position)
        self._position = 0
        self._shard = None

    def __getstate__(self) -> Dict[str, Any]:
        state = self.__dict__.copy()
        state["_ds"] = None  # C++ handles do not pickle; workers reopen
        state["_pid"] = -1
        return state

    # ---- iteration ----

    def _dataset(self) -> Dataset:
        if self._ds is None or self._pid != os.getpid():
            self._ds = Dataset.open_at(self.name, self._manifest, store=self.store)
            self._pid = os.getpid()
        return self._ds

    def __iter__(self) -> Iterator[Any]:
        """One pass over this rank/worker's share of the records (see the class docstring
        for the split, the order and resume)."""
        # Not a generator itself: the pass (shard, position) is set up when iter() is
        # called, so a state_dict() taken before the first next() already describes it.
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        rank, world = _rank_and_world()
        if not 0 <= rank < world:
            raise InvalidArgumentError(f"rank {rank} is outside world size {world}")
        self._shard = (rank, world, worker, workers)
        skip = self._resume
        if isinstance(skip, dict):
            skip = int(skip.get(f"{rank}/{worker}", 0))
        self._resume = 0
        self._position = skip
        counts = self._block_counts()
        blocks = self._blocks_for(rank, world, worker, workers)
        block_counts = [counts[b] for b in blocks]
        total = sum(block_counts)
        if skip > total:
            raise InvalidArgumentError(
                f"resume position {skip} is past the {total} records of rank {rank} worker {worker}"
            )
        reader = _ShardReader(self, blocks, block_counts)
        if self.shuffle_seed is None:
            source: Iterator[Sample] = (s for _, s in reader.sequential(skip))
        else:
            rng = _Rng("records", self.shuffle_seed, self.epoch, rank, world, worker, workers)
            source = self._shuffled(reader, _ShuffleOrder(total, self.shuffle_buffer, rng), skip)
        return self._run(source)

    def _run(self, source: Iterator[Sample]) -> Iterator[Any]:
        try:
            for sample in source:
                self._position += 1
                yield self.transform(sample) if self.transform is not None else sample
        finally:
            # Drop the C++ handle with the pass: a worker then holds no native objects
            # when it exits, and the next pass (or process) reopens the pinned version.
            self._ds = None

    def _shuffled(
        self, reader: "_ShardReader", order: _ShuffleOrder, skip: int
    ) -> Iterator[Sample]:
        for _ in range(skip):  # replay the order only: no data is read
            order.next()
        pending: Dict[int, Sample] = reader.fetch(order.buffer)
        stream = reader.sequential(order.admitted)
        loaded = order.admitted
        while True:
            o = order.next()
            if o is None:
                return
            while loaded < order.admitted:
                ordinal, sample = next(stream)
                pending[ordinal] = sample
                loaded = ordinal + 1
            yield pending.pop(o)


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
            self._ds = Dataset.open_at(self.name, self._manifest, store=self.store)
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
                "count": self._count}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.name = state["name"]
        self.store = state["store"]
        self._manifest = state["manifest"]
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


class _ShardReader:
    """Reads the records of one worker's blocks; ordinal = position in their concatenation."""

    def __init__(self, owner: DreamDBDataset, blocks: List[int], counts: List[int]) -> None:
        self.owner = owner
        self.blocks = blocks
        self.firsts = np.cumsum([0] + counts)  # ordinal of each block's first record

    def _read_block(self, k: int, skip: int = 0) -> Iterator[Sample]:
        o = self.owner
        b = self.blocks[k]
        start = int(o._starts[b])
        end = int(o._starts[b + 1]) if b + 1 < len(o._starts) else None
        for batch in o._dataset().iter_batches(o._field_names, start=start, end=end,
                                               batch_size=o.batch_size):
            if skip >= batch.num_rows:
                skip -= batch.num_rows
                continue
            if skip:
                batch = batch.slice(skip)
                skip = 0
            yield from _decode(batch, o._specs)

    def sequential(self, first: int) -> Iterator[Tuple[int, Sample]]:
        """(ordinal, sample) from ordinal `first` to the end."""
        if first >= self.firsts[-1]:
            return
        k = int(np.searchsorted(self.firsts, first, side="right")) - 1
        ordinal = first
        skip = first - int(self.firsts[k])
        for kk in range(k, len(self.blocks)):
            for sample in self._read_block(kk, skip):
                yield ordinal, sample
                ordinal += 1
            skip = 0

    def fetch(self, ordinals: Sequence[int]) -> Dict[int, Sample]:
        """Samples for arbitrary ordinals (reads each block holding one of them once)."""
        out: Dict[int, Sample] = {}
        by_block: Dict[int, List[int]] = {}
        for o in ordinals:
            k = int(np.searchsorted(self.firsts, o, side="right")) - 1
            by_block.setdefault(k, []).append(o)
        for k, wanted in sorted(by_block.items()):
            base = int(self.firsts[k])
            need = set(wanted)
            for i, sample in enumerate(self._read_block(k)):
                if base + i in need:
                    out[base + i] = sample
        return out


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
