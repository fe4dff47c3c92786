# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Training-loader core without PyTorch: the epoch's sample order, its split over ranks and
workers, exact resume, and :class:`NumpyLoader` (plain NumPy batches for JAX, tf.data or
any framework). :mod:`dreamdb.torch` builds its ``DreamDBDataset`` on the same core, so
both give the same guarantees.

The order, step by step (N = live records of the pinned version, ordinal i = the i-th
record in anchor order):

1. **Global order** per epoch, the same on every machine, whatever the world size and
   worker count. Unshuffled: ordinals ascending. ``shuffle_mode="full"`` (default): a
   keyed pseudo-random permutation of all N ordinals, keyed by (seed, epoch); any record
   can land anywhere. It is computed per position (an arithmetic Feistel network with
   cycle walking; a sort by a keyed 64-bit hash below 65,536 records), so the order is
   never materialized and seeking to a position costs O(1). Records are read with
   :meth:`dreamdb.Dataset.take`. This mode holds the anchor list: 8 bytes a record.
   ``shuffle_mode="blocks"`` (bounded memory: one anchor per ``block_size`` records):
   blocks of ``block_size`` consecutive records are permuted, consecutive groups of
   ``max(1, shuffle_buffer // block_size)`` blocks of that order form *windows*, and the
   records of each window are permuted. Quality: every block can land anywhere in the
   epoch, but the records of one block stay within one window of ~``shuffle_buffer``
   records of each other (a full permutation spreads them over the whole epoch); records
   that are neighbours on disk are therefore correlated within a window. Seeking is O(1)
   (windows are computed independently).
   All keys come from BLAKE2b and a splitmix64 mixer in fixed-width NumPy integer
   arithmetic: the order does not depend on NumPy's or Python's random streams.
2. **Ranks** (like ``torch.utils.data.DistributedSampler``): each of ``world_size`` ranks
   gets ``ceil(N / world_size)`` samples, the global order being padded by repeating it
   from its start, or ``floor(N / world_size)`` with ``drop_last=True`` (the tail of the
   order is dropped). Rank r takes the contiguous slice ``[r * share, (r + 1) * share)``
   of the padded order, which keeps unshuffled reads sequential (one range scan per rank).
   Every record is yielded exactly once per epoch across ranks, plus the padding.
3. **Workers**: the rank's remaining sequence is dealt to ``num_workers`` workers in
   units of ``loader_batch_size`` samples, round-robin (unit k to worker k mod W).
   DataLoader collects batches from its workers round-robin in the same way, so it yields
   exactly the rank's sequence, whatever the worker count. Without ``loader_batch_size``
   the unit is one sample: every sample is still yielded once, but the DataLoader's batch
   order then depends on the worker count.

``shuffle_mode="units"`` (the fastest with DataLoader workers; memory: one row per unit)
reads every worker's share as contiguous anchor ranges instead of scattered records:
fixed-width fields by range scans (each segment read once, whole, with read-ahead), blobs
by takes of consecutive anchors, one loader batch each (only those values' bytes, read in
parallel). The records are cut into *units*: runs of consecutive
records that end where a requested field's values move to another segment
(:meth:`dreamdb.Dataset.read_units`; a unit holds at least ``block_size // 16`` records
and at most ``block_size``). Global order: the units in a keyed pseudo-random order per
(seed, epoch) (ascending when unshuffled), records ascending within a unit. Ranks: the
contiguous slices of step 2 (the same padding rule). Workers: the rank's slice is cut into
``num_workers`` contiguous, near-equal parts, one per worker, so each worker scans a few
long anchor ranges (neighbouring units are read as one range). Shuffled, each worker passes
its part through a shuffle buffer: consecutive windows of ``shuffle_buffer`` records are
each permuted (keyed by seed, epoch, rank, worker and window; memory: one window of
records per worker). Every record is still yielded exactly once per epoch across ranks
and workers (plus the padding), but the DataLoader interleaves the workers' batches, so
the order it yields depends on ``num_workers``: a state records each worker's progress
(``worker_split``) and resumes with the same ``num_workers``; in the main process give
``state_dict(consumed=n, num_workers=W)`` (and ``loader_batch_size`` = the DataLoader's
batch size when W > 1, so the interleaving is known).

Resume: a state is a small dict (format ``"dreamdb.loader/2"``): the manifest, seed,
epoch, mode and ``position`` = samples of this rank's epoch sequence consumed. Ranks
advance in lockstep in data-parallel training, so every rank's position is the same.
Loading it makes the next pass yield exactly the samples after ``position``, in order, with
any worker count; nothing before it is read (seeking is arithmetic).
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import pyarrow as pa

from . import _convert
from .dataset import Dataset, StoreLike
from .errors import InternalError, InvalidArgumentError

__all__ = ["LoaderCore", "NumpyLoader", "STATE_FORMAT"]

STATE_FORMAT = "dreamdb.loader/2"
_SMALL = 1 << 16  # below this many items a permutation is a sorted hash table
_ROUNDS = 6  # Feistel rounds (4 already make a strong pseudo-random permutation)
_MODES = ("full", "blocks", "units")
_SCAN_MIN = 512  # shorter runs of consecutive records are read with take(), not a scan


# ---- stable hashing and permutations ----

def _key(*parts: Any) -> int:
    """A 64-bit key from parts (ints, strings, None): the same on every machine."""
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(),
                          "little")


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer on a uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * np.uint64(0xBF58476D1CE4E5B9)
        x = x ^ (x >> np.uint64(27))
        x = x * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


class _Permutation:
    """A keyed pseudo-random permutation of [0, n), evaluated per position.

    Small n: a table, the ordinals sorted by a keyed 64-bit hash (a uniformly random
    permutation up to hash quality). Large n: a balanced Feistel network of `_ROUNDS`
    rounds over the smallest even-bit domain >= n, with cycle walking (values >= n are
    encrypted again; expected < 4 steps), O(1) memory and work per position.
    """

    def __init__(self, n: int, *key: Any) -> None:
        self.n = int(n)
        k = _key(*key)
        self._table: Optional[np.ndarray] = None
        if self.n <= _SMALL:
            h = _mix64(np.arange(self.n, dtype=np.uint64) ^ np.uint64(k))
            self._table = np.argsort(h, kind="stable").astype(np.int64)
            return
        bits = max(2, (self.n - 1).bit_length())
        self._half = (bits + 1) // 2
        self._mask = np.uint64((1 << self._half) - 1)
        self._keys = [np.uint64(_key(k, r)) for r in range(_ROUNDS)]

    def _encrypt(self, x: np.ndarray) -> np.ndarray:
        h = np.uint64(self._half)
        left, right = x >> h, x & self._mask
        with np.errstate(over="ignore"):
            for k in self._keys:
                left, right = right, left ^ (_mix64(right + k) & self._mask)
        return (left << h) | right

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        """Ordinals at `positions` (int64 array of values in [0, n))."""
        if self._table is not None:
            return self._table[positions]
        y = self._encrypt(positions.astype(np.uint64))
        out = y >= np.uint64(self.n)
        while out.any():
            y[out] = self._encrypt(y[out])
            out = y >= np.uint64(self.n)
        return y.astype(np.int64)


class _GlobalOrder:
    """Position in the epoch's global order -> record ordinal (see the module docstring)."""

    def __init__(self, n: int, seed: Optional[int], epoch: int, mode: str, block_size: int,
                 shuffle_buffer: int) -> None:
        self.n = n
        self.shuffled = seed is not None
        self._full: Optional[_Permutation] = None
        if seed is None or n == 0:
            return
        if mode == "full":
            self._full = _Permutation(n, "records", seed, epoch, n)
            return
        self.block = block_size
        nb = -(-n // block_size)
        self._wb = max(1, shuffle_buffer // block_size)  # blocks per window
        perm = _Permutation(nb, "blocks", seed, epoch, n, block_size)
        self._blocks = perm(np.arange(nb, dtype=np.int64))  # window j: [j*wb, (j+1)*wb)
        counts = np.full(nb, block_size, dtype=np.int64)
        counts[-1] = n - (nb - 1) * block_size
        self._counts = counts
        per_window = np.add.reduceat(counts[self._blocks], np.arange(0, nb, self._wb))
        self._window_start = np.concatenate([[0], np.cumsum(per_window)])
        self._key = (seed, epoch, n, block_size, self._wb)
        self._window_perm: Dict[int, _Permutation] = {}

    def ordinals(self, g: np.ndarray) -> np.ndarray:
        """Ordinals of global positions `g` (int64, each in [0, n))."""
        if not self.shuffled:
            return g
        if self._full is not None:
            return self._full(g)
        out = np.empty_like(g)
        win = np.searchsorted(self._window_start, g, side="right") - 1
        for j in np.unique(win):
            sel = win == j
            j = int(j)
            blocks = self._blocks[j * self._wb:(j + 1) * self._wb]
            first = np.concatenate([[0], np.cumsum(self._counts[blocks])])
            perm = self._window_perm.get(j)
            if perm is None:
                if len(self._window_perm) > 4:
                    self._window_perm.clear()
                perm = _Permutation(int(first[-1]), "window", *self._key, j)
                self._window_perm[j] = perm
            local = perm(g[sel] - self._window_start[j])
            t = np.searchsorted(first, local, side="right") - 1
            out[sel] = blocks[t] * self.block + (local - first[t])
        return out


class _UnitOrder:
    """The epoch's global order in ``shuffle_mode="units"``: the units (runs of consecutive
    records that end at segment changes, from :meth:`dreamdb.Dataset.read_units`) in a
    keyed pseudo-random order (ascending when unshuffled), records ascending within each."""

    def __init__(self, counts: np.ndarray, seed: Optional[int], epoch: int) -> None:
        self.n = int(counts.sum())
        self.shuffled = seed is not None
        self._counts = counts
        units = np.arange(len(counts), dtype=np.int64)
        if self.shuffled and len(units):
            units = _Permutation(len(units), "units", seed, epoch, self.n)(units)
        self.units = units
        self.ends = np.cumsum(counts[units])  # position after each unit of this order

    def pieces(self, g0: int, g1: int) -> List[Tuple[int, int, int]]:
        """(unit, first offset, end offset) covering positions [g0, g1) of the order."""
        out: List[Tuple[int, int, int]] = []
        i = int(np.searchsorted(self.ends, g0, side="right"))
        while g0 < g1:
            u = int(self.units[i])
            begin = int(self.ends[i]) - int(self._counts[u])
            end = min(g1, int(self.ends[i]))
            out.append((u, g0 - begin, end - begin))
            g0 = end
            i += 1
        return out


# ---- ranks and workers ----

def rank_share(n: int, world_size: int, drop_last: bool) -> int:
    """Samples each rank gets per epoch (DistributedSampler's rule)."""
    return n // world_size if drop_last else -(-n // world_size)


def worker_count(remaining: int, num_workers: int, worker: int, unit: int) -> int:
    """Samples worker `worker` gets of a `remaining`-long sequence dealt in `unit`s."""
    units = -(-remaining // unit)
    mine = max(0, -(-(units - worker) // num_workers))  # units k = worker + t*num_workers
    if mine == 0:
        return 0
    last = worker + (mine - 1) * num_workers
    return (mine - 1) * unit + min(unit, remaining - last * unit)


def unit_portions(share: int, num_workers: int, unit: int = 1) -> Tuple[List[int], List[int]]:
    """shuffle_mode="units": (first item, items) of each worker's contiguous part of a rank's
    `share` samples: whole `unit`s (loader batches), dealt near-equally (counts differ by at
    most one unit), so the workers yield ceil(share / unit) batches in all."""
    q, extra = divmod(-(-share // unit), num_workers)
    firsts: List[int] = []
    counts: List[int] = []
    b = 0
    for w in range(num_workers):
        lo, b = min(share, b * unit), b + q + (w < extra)
        firsts.append(lo)
        counts.append(min(share, b * unit) - lo)
    return firsts, counts


def round_robin_split(consumed: int, remaining: Sequence[int], unit: int) -> List[int]:
    """Items each worker gave of the first `consumed` items a DataLoader yielded, when
    worker w yields `remaining[w]` items in units (batches) of `unit` and the DataLoader
    takes one unit from each worker with items left, in worker order, round after round
    (what it does with an IterableDataset)."""
    w_count = len(remaining)
    full = min(remaining) // unit  # rounds in which every worker yields a whole unit
    rounds = min(full, consumed // (unit * w_count))
    got = [rounds * unit] * w_count
    consumed -= rounds * unit * w_count
    t = rounds
    while consumed > 0:
        progressed = False
        for w in range(w_count):
            size = min(unit, remaining[w] - t * unit)
            if size <= 0:
                continue
            progressed = True
            step = min(size, consumed)
            got[w] += step
            consumed -= step
            if consumed == 0:
                break
        if not progressed:
            raise InvalidArgumentError("consumed is more than the workers yield")
        t += 1
    return got


def worker_items(items: np.ndarray, num_workers: int, worker: int, unit: int) -> np.ndarray:
    """Index in the dealt sequence of a worker's items `items` (int64)."""
    return (worker + (items // unit) * num_workers) * unit + items % unit


class _Spec(NamedTuple):
    name: str
    type: str
    dim: Optional[int]
    dtype: Optional[str]
    shape: Optional[Tuple[int, ...]]
    required: bool = True


def _store_uri(store: StoreLike) -> str:
    if isinstance(store, os.PathLike):
        return os.fspath(store)
    if isinstance(store, str):
        return store
    uri = getattr(store, "uri", None)
    if not isinstance(uri, str):
        raise InvalidArgumentError("store must be a URI string or a path")
    return uri


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidArgumentError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


class _Pass(NamedTuple):
    """One pass of one rank/worker: where it started and how it is dealt."""
    rank: int
    world_size: int
    worker: int
    num_workers: int
    start: int  # rank position the pass started at
    split: Tuple[int, ...] = ()  # shuffle_mode="units": each worker's items before `start`


class LoaderCore:
    """The framework-free part of the loaders: pinning, order, sharding, reading, state.

    Thread-safety: an object serves one iteration at a time (like any iterator); make one
    per process or thread. It pickles small (no anchors, no native handles); the receiving
    process lists the pinned version's anchors again.
    """

    def __init__(self, name: str, store: StoreLike, at: Optional[str] = None,
                 fields: Optional[Sequence[str]] = None, batch_size: int = 1024,
                 shuffle_seed: Optional[int] = None, block_size: int = 4096,
                 shuffle_buffer: int = 65536, *, loader_batch_size: Optional[int] = None,
                 drop_last: bool = False, shuffle_mode: str = "full",
                 rank: Optional[int] = None, world_size: Optional[int] = None) -> None:
        self.name = name
        self.store = _store_uri(store)
        # Reopened by URI in workers, with the same object cache (shared by the workers).
        self._cache = (getattr(store, "cache", None), getattr(store, "cache_size", None))
        self.batch_size = _positive("batch_size", batch_size)
        self.block_size = _positive("block_size", block_size)
        self.shuffle_buffer = _positive("shuffle_buffer", shuffle_buffer)
        self.loader_batch_size = (None if loader_batch_size is None
                                  else _positive("loader_batch_size", loader_batch_size))
        if shuffle_mode not in _MODES:
            raise InvalidArgumentError(f"shuffle_mode must be one of {_MODES}, "
                                       f"got {shuffle_mode!r}")
        if shuffle_seed is not None and (isinstance(shuffle_seed, bool)
                                         or not isinstance(shuffle_seed, (int, np.integer))):
            raise InvalidArgumentError(f"shuffle_seed must be an int or None, "
                                       f"got {shuffle_seed!r}")
        self.shuffle_seed = None if shuffle_seed is None else int(shuffle_seed)
        self.shuffle_mode = shuffle_mode
        self.drop_last = bool(drop_last)
        self._rank = rank
        self._world = world_size
        self.fields = list(fields) if fields is not None else None
        self.epoch = 0
        self._ds: Optional[Dataset] = None
        self._pid = -1
        cache, cache_size = self._cache
        ds = (Dataset.open_at(name, at, store=self.store, cache=cache, cache_size=cache_size)
              if at else Dataset.open(name, store=self.store, cache=cache, cache_size=cache_size))
        self._pin(ds.head, ds)
        self._pending = 0  # rank position the next pass starts at
        self._pending_epoch: Optional[int] = None  # epoch a loaded position belongs to
        self._pending_worker: Optional[Dict[str, int]] = None  # a worker's own progress
        # shuffle_mode="units": items of each worker's part consumed at the loaded position.
        self._pending_split: Optional[List[int]] = None
        self._pass: Optional[_Pass] = None  # the pass running (or run) in this process
        self._yielded = 0  # samples this process yielded in that pass

    # ---- pinning ----

    @property
    def manifest(self) -> str:
        """The pinned manifest id."""
        return self._manifest

    def _pin(self, manifest: str, ds: Optional[Dataset] = None) -> None:
        if ds is None or ds.head != manifest:
            ds = Dataset.open_at(self.name, manifest, store=self.store, cache=self._cache[0],
                                 cache_size=self._cache[1])
        self._manifest = manifest
        schema = ds.schema
        names = self.fields if self.fields is not None else schema.names
        self._specs = [_Spec(f.name, f.type, f.dim, f.dtype, f.shape, f.required)
                       for f in (schema[n] for n in names)]  # NotFoundError if unknown
        self._field_names = [f.name for f in self._specs]
        self._anchors: Optional[np.ndarray] = None
        self._block_cache: Dict[int, np.ndarray] = {}
        self._units: Optional[np.ndarray] = None
        if self.shuffle_mode == "full":
            self._anchors = ds.anchors()  # index pages only, no field data
            self._total = len(self._anchors)
            self._starts = np.zeros(0, dtype=np.uint64)
        elif self.shuffle_mode == "units":
            # Index pages only: rows (first anchor, last anchor, records), in anchor order.
            self._units = ds.read_units(self._field_names,
                                        min_records=max(1, self.block_size // 16),
                                        max_records=self.block_size)
            self._total = int(self._units[:, 2].sum()) if len(self._units) else 0
            self._starts = np.zeros(0, dtype=np.uint64)
        else:
            starts: List[np.ndarray] = []
            seen = 0
            for chunk in ds.iter_anchors(batch_size=65536):
                starts.append(chunk[(-seen) % self.block_size::self.block_size].copy())
                seen += len(chunk)
            self._starts = (np.concatenate(starts) if starts
                            else np.zeros(0, dtype=np.uint64))
            self._total = seen
        self._ds = ds
        self._pid = os.getpid()
        self._orders: Dict[int, Any] = {}

    def _dataset(self) -> Dataset:
        if self._ds is None or self._pid != os.getpid():
            self._ds = Dataset.open_at(self.name, self._manifest, store=self.store,
                                       cache=self._cache[0], cache_size=self._cache[1])
            self._pid = os.getpid()
        return self._ds

    def __getstate__(self) -> Dict[str, Any]:
        state = self.__dict__.copy()
        state["_ds"] = None  # native handles do not pickle; the receiver reopens
        state["_pid"] = -1
        state["_anchors"] = None  # listed again from the pinned manifest when needed
        state["_block_cache"] = {}
        state["_orders"] = {}
        return state

    def _anchor_list(self) -> np.ndarray:
        if self._anchors is None:
            anchors = self._dataset().anchors()
            if len(anchors) != self._total:
                raise InternalError(f"manifest {self._manifest} listed {len(anchors)} "
                                    f"anchors, expected {self._total}")
            self._anchors = anchors
        return self._anchors

    def _block_anchors(self, b: int) -> np.ndarray:
        got = self._block_cache.get(b)
        if got is None:
            if len(self._block_cache) >= max(8, 2 * self.shuffle_buffer // self.block_size):
                self._block_cache.clear()
            end = int(self._starts[b + 1]) if b + 1 < len(self._starts) else None
            got = self._dataset().anchors(int(self._starts[b]), end)
            want = min(self.block_size, self._total - b * self.block_size)
            if len(got) != want:
                raise InternalError(f"block {b} of manifest {self._manifest} listed "
                                    f"{len(got)} anchors, expected {want}")
            self._block_cache[b] = got
        return got

    def _anchors_of(self, ordinals: np.ndarray) -> np.ndarray:
        if self.shuffle_mode == "full":
            return self._anchor_list()[ordinals]
        out = np.empty(len(ordinals), dtype=np.uint64)
        blocks = ordinals // self.block_size
        for b in np.unique(blocks):
            sel = blocks == b
            out[sel] = self._block_anchors(int(b))[ordinals[sel] - int(b) * self.block_size]
        return out

    def _order(self) -> Any:
        order = self._orders.get(self.epoch)
        if order is None:
            self._orders = {}
            if self._units is not None:
                order = _UnitOrder(self._units[:, 2].astype(np.int64), self.shuffle_seed,
                                   self.epoch)
            else:
                order = _GlobalOrder(self._total, self.shuffle_seed, self.epoch,
                                     self.shuffle_mode, self.block_size, self.shuffle_buffer)
            self._orders[self.epoch] = order
        return order

    # ---- ranks ----

    def _rank_and_world(self) -> Tuple[int, int]:
        """Explicit arguments, else the RANK / WORLD_SIZE environment variables, else 0/1
        (the torch dataset asks torch.distributed first)."""
        rank = self._rank if self._rank is not None else int(os.environ.get("RANK", "0"))
        world = (self._world if self._world is not None
                 else int(os.environ.get("WORLD_SIZE", "1")))
        if world < 1 or not 0 <= rank < world:
            raise InvalidArgumentError(f"rank {rank} is outside world size {world}")
        return rank, world

    def _worker_and_count(self) -> Tuple[int, int]:
        return 0, 1

    def _may_run_elsewhere(self) -> bool:
        """True when passes may run in other processes (DataLoader workers), so that
        this object cannot know how far they got."""
        return False

    def samples_per_rank(self) -> int:
        """Samples each rank yields per epoch (``ceil`` or, with drop_last, ``floor`` of
        records / world size)."""
        return rank_share(self._total, self._rank_and_world()[1], self.drop_last)

    @property
    def num_records(self) -> int:
        """Live records of the pinned version."""
        return self._total

    # ---- epochs and state ----

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch (its shuffle order) for the next pass, from its start, unless
        a state of this very epoch was loaded and not yet used (so the usual
        ``load_state_dict(state)`` then ``for epoch ...: set_epoch(epoch)`` resumes).

        DataLoader workers get a copy of this object when an epoch's iteration starts, so
        call it before iterating the loader (with ``persistent_workers=True`` the workers
        keep the epoch they started with)."""
        epoch = int(epoch)
        if self._pending_epoch is None or epoch != self._pending_epoch:
            self._pending = 0
            self._pending_epoch = None
            self._pending_worker = None
            self._pending_split = None
        self.epoch = epoch
        self._pass = None
        self._yielded = 0

    def _settings(self) -> Dict[str, Any]:
        rank, world = self._rank_and_world()
        return {
            "format": STATE_FORMAT,
            "manifest": self._manifest,
            "seed": self.shuffle_seed,
            "epoch": self.epoch,
            "shuffle_mode": self.shuffle_mode,
            "block_size": self.block_size,
            "shuffle_buffer": self.shuffle_buffer,
            "drop_last": self.drop_last,
            "world_size": world,
            "rank": rank,
            "samples_per_rank": rank_share(self._total, world, self.drop_last),
        }

    def _state(self, consumed: Optional[int], where: str,
               num_workers: Optional[int] = None) -> Dict[str, Any]:
        state = self._settings()
        if self._units is not None:
            return self._units_state(state, consumed, where, num_workers)
        p = self._pass
        share = state["samples_per_rank"]
        if consumed is not None:
            if isinstance(consumed, bool) or not isinstance(consumed, (int, np.integer)):
                raise InvalidArgumentError(f"consumed must be an int, got {consumed!r}")
            base = p.start if p is not None else self._pending
            position = base + int(consumed)
            if not 0 <= int(consumed) or position > share:
                raise InvalidArgumentError(
                    f"consumed={consumed} from position {base} is outside this rank's "
                    f"{share} samples of epoch {self.epoch}")
            state["position"] = position
            return state
        if p is None and not self._may_run_elsewhere():
            state["position"] = self._pending
            return state
        if p is None:
            raise _unknown_progress(where)
        if p.num_workers == 1:
            state["position"] = p.start + self._yielded
        else:
            state["position"] = p.start
            state["worker"] = {"id": p.worker, "num_workers": p.num_workers,
                               "yielded": self._yielded,
                               "loader_batch_size": self.loader_batch_size}
        return state

    def _units_state(self, state: Dict[str, Any], consumed: Optional[int], where: str,
                     num_workers: Optional[int]) -> Dict[str, Any]:
        """state_dict() in shuffle_mode="units": the position plus each worker's consumed
        items ("worker_split"), since the order depends on the number of workers."""
        p = self._pass
        share = state["samples_per_rank"]
        if consumed is None and p is not None and p.num_workers > 1 and num_workers is None:
            # Inside a DataLoader worker (torchdata's StatefulDataLoader): its own progress.
            state["position"] = p.start
            state["num_workers"] = p.num_workers
            state["worker_split"] = list(p.split)
            state["loader_batch_size"] = self.loader_batch_size
            state["worker"] = {"id": p.worker, "num_workers": p.num_workers,
                               "yielded": self._yielded,
                               "loader_batch_size": self.loader_batch_size}
            return state
        if consumed is None and p is None and self._may_run_elsewhere():
            raise _unknown_progress(where)
        if num_workers is not None:
            workers = max(1, int(num_workers))  # num_workers=0 reads in this process
        elif p is not None:
            workers = p.num_workers
        elif not self._may_run_elsewhere():
            workers = 1
        else:
            raise InvalidArgumentError(
                f"state_dict() in {where} with shuffle_mode='units' needs num_workers= (the "
                "DataLoader's num_workers): the sample order depends on it")
        if p is not None and len(p.split) == workers:
            base = list(p.split)
        else:
            base = self._split_at_pending(workers) if p is None else [0] * workers
        if consumed is None:
            split = [self._yielded] if p is not None else base
        else:
            if isinstance(consumed, bool) or not isinstance(consumed, (int, np.integer)):
                raise InvalidArgumentError(f"consumed must be an int, got {consumed!r}")
            _, counts = unit_portions(share, workers, self.loader_batch_size or 1)
            remaining = [c - b for c, b in zip(counts, base)]
            if not 0 <= int(consumed) <= sum(remaining):
                raise InvalidArgumentError(
                    f"consumed={consumed} from position {sum(base)} is outside this rank's "
                    f"{share} samples of epoch {self.epoch}")
            unit = 1 if workers == 1 else self.loader_batch_size
            if unit is None:
                raise InvalidArgumentError(
                    "state_dict(consumed=...) with shuffle_mode='units' and DataLoader "
                    "workers needs loader_batch_size (the DataLoader's batch size): the "
                    "DataLoader interleaves its workers' batches")
            got = round_robin_split(int(consumed), remaining, int(unit))
            split = [b + g for b, g in zip(base, got)]
        state["position"] = sum(split)
        state["num_workers"] = len(split)
        state["worker_split"] = split
        state["loader_batch_size"] = self.loader_batch_size
        return state

    def state_dict(self, consumed: Optional[int] = None,
                   num_workers: Optional[int] = None) -> Dict[str, Any]:
        """A small dict that resumes this rank exactly (see load_state_dict).

        consumed: samples of this rank the training loop consumed in the current pass
            (since iterating began this epoch, or since the loaded position). Give it when
            the data is read ahead of the loop (DataLoader workers, prefetching): the state
            is then computed from it. Without it the state says how far this process's own
            iteration got, and if no pass ran here, InvalidArgumentError is raised rather
            than a wrong position.
        num_workers: shuffle_mode="units" only: the DataLoader's ``num_workers`` (the
            order depends on it there); needed when the pass ran in DataLoader workers.
        """
        return self._state(consumed, "this process", num_workers)

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Makes the next pass yield exactly the samples after the state's position (same
        seed, epoch, manifest and mode, taken from the state), with any number of workers
        and the same world size. A state that carries one worker's progress (written
        inside a DataLoader worker, as torchdata's StatefulDataLoader collects them) is
        resumed by that worker.

        The position applies to the next pass of the state's epoch; a pass that runs in
        this process uses it up, while DataLoader workers iterate copies, so the main
        object keeps it until set_epoch() selects another epoch."""
        fmt = state.get("format")
        if fmt != STATE_FORMAT:
            raise InvalidArgumentError(
                f"cannot resume from a loader state of format {fmt!r} (this version reads "
                f"{STATE_FORMAT!r}): states written before it describe a different sample "
                "order, which cannot be reproduced; start the epoch again with set_epoch()")
        mode = state["shuffle_mode"]
        if mode not in _MODES:
            raise InvalidArgumentError(f"state has an unknown shuffle_mode {mode!r}")
        _, world = self._rank_and_world()
        if int(state["world_size"]) != world:
            raise InvalidArgumentError(
                f"state was saved with world size {state['world_size']}, this job has "
                f"{world}: resume with the same world size")
        self.shuffle_seed = state["seed"]
        mode_before, self.shuffle_mode = self.shuffle_mode, mode
        self.block_size = _positive("block_size", state["block_size"])
        self.shuffle_buffer = _positive("shuffle_buffer", state["shuffle_buffer"])
        self.drop_last = bool(state["drop_last"])
        if (state["manifest"] != self._manifest or mode != "full" or mode != mode_before
                or self._anchors is None):
            self._pin(state["manifest"])
        self._orders = {}
        share = rank_share(self._total, world, self.drop_last)
        position = int(state["position"])
        if not 0 <= position <= share:
            raise InvalidArgumentError(f"state position {position} is outside this rank's "
                                       f"{share} samples")
        self._pending_split = None
        if mode == "units":
            split = [int(x) for x in state.get("worker_split", [position])]
            if state.get("loader_batch_size", self.loader_batch_size) != self.loader_batch_size:
                raise InvalidArgumentError(
                    f"state was saved with loader_batch_size {state['loader_batch_size']}, "
                    f"this loader has {self.loader_batch_size}: with shuffle_mode='units' the "
                    "workers' parts depend on it, so resume with the same one")
            counts = unit_portions(share, max(1, len(split)), self.loader_batch_size or 1)[1]
            if (sum(split) != position or len(split) != int(state.get("num_workers", 1))
                    or any(not 0 <= x <= c for x, c in zip(split, counts))):
                raise InvalidArgumentError(
                    f"state's worker_split {split} does not match its position {position} "
                    f"and num_workers {state.get('num_workers')}")
            self._pending_split = split
        self.epoch = int(state["epoch"])
        self._pending = position
        self._pending_epoch = self.epoch
        worker = state.get("worker")
        self._pending_worker = dict(worker) if worker else None
        self._pass = None
        self._yielded = 0

    # ---- iteration ----

    def _begin(self) -> Tuple[_Pass, int]:
        """Starts a pass in this process: its shard and the items this worker skips."""
        rank, world = self._rank_and_world()
        worker, workers = self._worker_and_count()
        skip = 0
        pw = self._pending_worker
        if pw is not None:
            if (int(pw["num_workers"]), pw.get("loader_batch_size")) != (
                    workers, self.loader_batch_size) or int(pw["id"]) != worker:
                raise InvalidArgumentError(
                    f"state of worker {pw['id']} of {pw['num_workers']} (loader_batch_size "
                    f"{pw.get('loader_batch_size')}) loaded into worker {worker} of {workers} "
                    f"(loader_batch_size {self.loader_batch_size}): per-worker states resume "
                    "with the same workers; to change them, resume from "
                    "state_dict(consumed=...) instead")
            skip = int(pw["yielded"])
        start = self._pending
        split: Tuple[int, ...] = ()
        if self._units is not None:
            split = tuple(self._split_at_pending(workers))
            if pw is None:
                skip = split[worker]
        # The pass consumes a loaded position: a later pass of this object (in this
        # process) starts the epoch again.
        self._pending, self._pending_epoch, self._pending_worker = 0, None, None
        self._pending_split = None
        p = _Pass(rank, world, worker, workers, start, split)
        self._pass = p
        self._yielded = skip
        return p, skip

    def _split_at_pending(self, workers: int) -> List[int]:
        """shuffle_mode="units": each worker's consumed items at the loaded position."""
        split = self._pending_split
        if split is None or not any(split):
            return [0] * workers
        if len(split) != workers:
            raise InvalidArgumentError(
                f"state was saved with {len(split)} DataLoader worker(s), this pass runs "
                f"{workers}: with shuffle_mode='units' the sample order depends on the "
                "number of workers, so resume with the same num_workers")
        return list(split)

    def _tables(self, p: _Pass, skip: int) -> Iterator[Any]:
        """This worker's samples of pass `p` after its first `skip`, as Arrow record
        batches or tables in order (anchor column first, then the requested fields)."""
        if self._units is not None:
            yield from self._unit_tables(p, skip)
            return
        n = self._total
        share = rank_share(n, p.world_size, self.drop_last)
        remaining = share - p.start
        if remaining < 0:
            raise InvalidArgumentError(f"resume position {p.start} is past this rank's "
                                       f"{share} samples")
        unit = self.loader_batch_size or 1
        count = worker_count(remaining, p.num_workers, p.worker, unit)
        if skip > count:
            raise InvalidArgumentError(f"worker {p.worker} state says {skip} samples were "
                                       f"yielded, but it has only {count}")
        order = self._order()
        base = p.rank * share + p.start
        if not order.shuffled and (p.num_workers == 1 or unit >= _SCAN_MIN):
            # Each worker unit (or, with one worker, the whole rest) is a range of
            # consecutive global positions: one streaming scan per range and wrap.
            whole = p.num_workers == 1
            for first, last in self._position_ranges(p, unit, skip, count, whole):
                g = base + first
                while g < base + last:
                    stop = min(base + last, (g // n + 1) * n)  # padding wraps at n
                    yield from self._scan(g % n, (stop - 1) % n)
                    g = stop
            return
        for i in range(skip, count, self.batch_size):
            items = np.arange(i, min(count, i + self.batch_size), dtype=np.int64)
            seq = worker_items(items, p.num_workers, p.worker, unit)
            ordinals = order.ordinals((base + seq) % n)
            if order.shuffled or len(ordinals) < _SCAN_MIN:
                yield self._dataset().take(self._anchors_of(ordinals), self._field_names)
                continue
            cuts = np.flatnonzero(np.diff(ordinals) != 1) + 1
            for run in np.split(ordinals, cuts):  # ascending runs (padding wraps)
                if len(run) < _SCAN_MIN:
                    yield self._dataset().take(self._anchors_of(run), self._field_names)
                else:
                    yield from self._scan(int(run[0]), int(run[-1]))

    @staticmethod
    def _position_ranges(p: _Pass, unit: int, skip: int, count: int,
                         whole: bool) -> Iterator[Tuple[int, int]]:
        """[first, last) ranges of the rank's remaining sequence a worker reads, from
        its item `skip` on: the whole rest with one worker, else its units."""
        if whole:
            if skip < count:
                yield skip, count
            return
        t = skip // unit
        while t * unit < count:
            k = p.worker + t * p.num_workers
            lo = k * unit + (skip - t * unit if t == skip // unit else 0)
            hi = k * unit + min(unit, count - t * unit)
            yield lo, hi
            t += 1

    def _unit_tables(self, p: _Pass, skip: int) -> Iterator[Any]:
        """shuffle_mode="units": this worker's contiguous part of the rank's share (see
        the module docstring) after its first `skip` items, read by range scans of whole
        units; when shuffled, through a buffer of ``shuffle_buffer`` records."""
        share = rank_share(self._total, p.world_size, self.drop_last)
        firsts, counts = unit_portions(share, p.num_workers, self.loader_batch_size or 1)
        count = counts[p.worker]
        if skip > count:
            raise InvalidArgumentError(f"worker {p.worker} state says {skip} samples were "
                                       f"yielded, but it has only {count}")
        base = p.rank * share + firsts[p.worker]
        order = self._order()
        if not order.shuffled:
            yield from self._unit_stream(order, base + skip, base + count)
            return
        size = self.shuffle_buffer
        first = skip // size
        windows = _rechunk(self._unit_stream(order, base + first * size, base + count), size)
        for j, window in enumerate(windows, start=first):
            perm = _Permutation(window.num_rows, "buffer", self.shuffle_seed, self.epoch, p.rank,
                                p.world_size, p.worker, p.num_workers, j)
            window = window.take(perm(np.arange(window.num_rows, dtype=np.int64)))
            yield window.slice(skip - j * size) if j == first else window

    def _unit_stream(self, order: _UnitOrder, g0: int, g1: int) -> Iterator[Any]:
        """Records at positions [g0, g1) of the rank-padded order (positions >= n wrap),
        read run by run (a run = units that are neighbours in anchor order)."""
        n = self._total
        units = self._units
        assert units is not None
        runs: List[List[int]] = []  # [unit, first offset, records, last unit, its end offset]
        g = g0
        while g < g1:
            stop = min(g1, (g // n + 1) * n)  # padding wraps at n
            for u, o0, o1 in order.pieces(g % n, g % n + stop - g):
                r = runs[-1] if runs else None
                if r is not None and r[3] + 1 == u and o0 == 0 and r[4] == int(units[r[3], 2]):
                    r[2], r[3], r[4] = r[2] + o1, u, o1
                else:
                    runs.append([u, o0, o1 - o0, u, o1])
            g = stop
        ds = self._dataset()
        # Blobs: planned takes of consecutive anchors, one loader batch each (ranged reads
        # of just those values, on the I/O pool); a scan would read and hash each whole
        # segment on one thread into fresh buffers, 2.3x slower per worker over 50 KiB
        # blobs. Fixed-width fields: the scan, which gathers them fastest.
        blobs = any(spec.type == "blob" for spec in self._specs)
        step = self.loader_batch_size or self.batch_size
        for u, o0, records, last_u, o1 in runs:
            if blobs:  # anchors from the index pages, one unit at a time (bounded memory)
                pending = np.zeros(0, dtype=np.uint64)
                for k in range(u, last_u + 1):
                    got = ds.anchors(int(units[k, 0]), int(units[k, 1]) + 1)
                    pending = np.concatenate([pending, got[o0 if k == u else 0:
                                                           o1 if k == last_u else None]])
                    cut = len(pending) - len(pending) % step if k < last_u else len(pending)
                    for i in range(0, cut, step):
                        yield ds.take(pending[i:min(cut, i + step)], self._field_names)
                    pending = pending[cut:]
                continue
            start = int(units[u, 0])
            if o0:  # starts inside a unit: its anchors come from the index pages
                start = int(ds.anchors(start, int(units[u, 1]) + 1)[o0])
            yield from ds.iter_batches(self._field_names, start=start,
                                       batch_size=self.batch_size, limit=records)

    def _batch_tables(self, p: _Pass, skip: int, batch: int,
                      count: bool = True) -> Iterator[pa.Table]:
        """This worker's samples of pass `p` after its first `skip`, as tables of
        `batch` rows (the last may be short); counts them in ``_yielded`` if `count`
        (else the consumer counts what it receives, when this runs ahead of it)."""
        for out in _rechunk(self._tables(p, skip), batch):
            if count:
                self._yielded += out.num_rows
            yield out

    def _scan(self, first: int, last: int) -> Iterator[Any]:
        """Records with ordinals first..last (inclusive) by one streaming range scan."""
        ends = self._anchors_of(np.array([first, last], dtype=np.int64))
        yield from self._dataset().iter_batches(self._field_names, start=int(ends[0]),
                                                end=int(ends[1]) + 1,
                                                batch_size=self.batch_size)


def _rechunk(tables: Iterator[Any], rows: int) -> Iterator[pa.Table]:
    """The rows of `tables` (Arrow tables or record batches) as tables of `rows` rows (the
    last may be shorter)."""
    pending: List[pa.Table] = []
    held = 0
    for table in tables:
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        pending.append(table)
        held += table.num_rows
        while held >= rows:
            joined = pa.concat_tables(pending)
            out, rest = joined.slice(0, rows), joined.slice(rows)
            pending, held = [rest], rest.num_rows
            yield out
    if held:
        yield pa.concat_tables(pending)


def _unknown_progress(where: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"state_dict() in {where} cannot know how far the loop got: no pass ran in "
        "this process since the last set_epoch()/load_state_dict() (DataLoader "
        "workers iterate their own copies). Pass state_dict(consumed=<samples the "
        "loop consumed this pass>), or use torchdata's StatefulDataLoader, which "
        "collects the workers' states.")


def _numpy_column(col: Any, spec: _Spec, n: int) -> Tuple[np.ndarray, np.ndarray]:
    """One Arrow column of a field -> (values, valid) as NumPy arrays (see NumpyLoader)."""
    valid = np.asarray(col.is_valid()) if col.null_count else np.ones(n, dtype=bool)
    t = spec.type
    if t in ("int64", "timestamp", "float64", "bool"):
        arr = col.cast("int64") if t == "timestamp" else col
        fill = False if t == "bool" else (np.nan if t == "float64" else 0)
        values = np.asarray(arr.fill_null(fill).to_numpy(zero_copy_only=False))
    elif t in ("embedding", "array"):
        shape = (int(spec.dim),) if t == "embedding" else tuple(int(d) for d in spec.shape)
        dtype = _convert.element_dtype(spec)
        flat = np.asarray(col.flatten().to_numpy(zero_copy_only=False), dtype=dtype)
        if col.null_count:
            values = np.zeros((n,) + shape, dtype=dtype)
            values[valid] = flat.reshape((-1,) + shape)  # flatten() drops null rows
        else:
            values = flat.reshape((n,) + shape)
    else:  # string, categorical, blob: object arrays of str / bytes (None if null)
        values = np.empty(n, dtype=object)
        values[:] = col.to_pylist()
    return values, valid


def _combined(table: pa.Table, i: int) -> Any:
    """Column i of `table` as one Arrow array."""
    if table.num_rows:
        return table.column(i).combine_chunks()
    return pa.array([], type=table.schema.field(i).type)


def _numpy_columns(table: pa.Table, specs: Sequence[_Spec]) -> Dict[str, np.ndarray]:
    """An Arrow table -> {"anchor": uint64, field: array} (see NumpyLoader)."""
    out: Dict[str, np.ndarray] = {"anchor": table.column(0).to_numpy()}
    for i, spec in enumerate(specs):
        values, valid = _numpy_column(_combined(table, i + 1), spec, table.num_rows)
        out[spec.name] = values
        if not spec.required:
            out[spec.name + ".valid"] = valid
    return out


class NumpyLoader(LoaderCore):
    """Batches of plain NumPy arrays from one pinned version, for JAX, tf.data or any
    framework, with the sharding, shuffling and resume of :mod:`dreamdb.loader` (no
    PyTorch needed).

    Args:
        name, store, at, fields: as :class:`dreamdb.torch.DreamDBDataset`.
        batch_size: samples per yielded batch (the last batch of an epoch may be short).
        shuffle_seed: None for ascending anchor order; an int for a seeded order per epoch.
        drop_last: ranks get floor(records / world) samples instead of ceil (padding).
        shuffle_mode: "full" (a permutation of all records; holds 8 bytes a record),
            "blocks" (bounded memory; see the module docstring for its quality) or
            "units" (range scans of segment-aligned units through a shuffle buffer of
            ``shuffle_buffer`` records: the fastest read; see the module docstring).
        block_size, shuffle_buffer: the "blocks" mode's block and window sizes (records).
        rank, world_size: this process's shard (JAX: ``jax.process_index()``,
            ``jax.process_count()``); default the RANK / WORLD_SIZE environment variables,
            else 0 / 1.

    A batch is ``{"anchor": uint64[n], <field>: array}``: int64/timestamp -> int64,
    float64 -> float64 (NaN if null), bool -> bool, embedding -> float32 [n, dim], array ->
    its dtype [n, *shape], string/categorical/blob -> object arrays of str/bytes (None if
    null); an optional field also gets ``"<field>.valid"`` (bool [n]).

    Resume: ``state_dict()`` after a batch was consumed (or ``state_dict(consumed=n)`` if
    batches are prefetched ahead of the step), ``load_state_dict(state)`` in the restarted
    job: the next pass yields exactly the remaining samples, in order.
    """

    def __init__(self, name: str, store: StoreLike, at: Optional[str] = None,
                 fields: Optional[Sequence[str]] = None, batch_size: int = 256,
                 shuffle_seed: Optional[int] = None, *, drop_last: bool = False,
                 shuffle_mode: str = "full", block_size: int = 4096,
                 shuffle_buffer: int = 65536, rank: Optional[int] = None,
                 world_size: Optional[int] = None) -> None:
        batch = _positive("batch_size", batch_size)
        read = max(batch, (4096 // batch) * batch)  # storage reads: whole batches
        super().__init__(name, store, at, fields, read, shuffle_seed, block_size,
                         shuffle_buffer, loader_batch_size=batch, drop_last=drop_last,
                         shuffle_mode=shuffle_mode, rank=rank, world_size=world_size)

    def __len__(self) -> int:
        """Batches per epoch for this rank."""
        return -(-self.samples_per_rank() // self.loader_batch_size)

    def __iter__(self) -> Iterator[Dict[str, np.ndarray]]:
        """One pass: this rank's batches of the epoch, from the loaded position if any."""
        p, skip = self._begin()
        return self._batches(p, skip)

    def _batches(self, p: _Pass, skip: int) -> Iterator[Dict[str, np.ndarray]]:
        batch = int(self.loader_batch_size)  # type: ignore[arg-type]
        for table in self._batch_tables(p, skip, batch):
            yield _numpy_columns(table, self._specs)
