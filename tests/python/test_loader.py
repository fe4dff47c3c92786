# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""dreamdb.loader (no PyTorch): the epoch's global order, equal rank shares with padding or
drop_last, dealing to workers, exact resume by position, and NumpyLoader's batches."""

import pickle
import subprocess
import sys

import numpy as np
import pytest

import dreamdb
from dreamdb import loader as L
from dreamdb.loader import NumpyLoader

N = 97  # prime: every world size leaves a remainder


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("loader") / "store")
    s = (dreamdb.Schema().add_int("label").add_embedding("emb", 2).add_string("caption")
         .add_float("weight", required=False).add_array("patch", "u16", (2,)))
    ds = dreamdb.Dataset.create("d", s, store=path)
    anchors = np.arange(N) * 3 + 5  # gaps: ordinals are not anchors
    ds.append_many({
        "label": np.arange(N),
        "emb": np.arange(2 * N, dtype=np.float32).reshape(N, 2),
        "caption": [f"c{i}" for i in range(N)],
        "weight": [None if i % 5 == 0 else float(i) for i in range(N)],
        "patch": np.arange(2 * N, dtype=np.uint16).reshape(N, 2),
    }, anchors=anchors)
    for n in (0, 1, 5):
        small = dreamdb.Dataset.create(f"n{n}", dreamdb.Schema().add_int("label"), store=path)
        if n:
            small.append_many({"label": np.arange(n)})
    return path


def labels(batches):
    return [int(x) for b in batches for x in b["label"]]


def test_loader_needs_no_torch():
    code = ("import sys, dreamdb.loader; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# Computed once with NumPy 1.24 (Debian) and 2.4 (PyPI): identical.
GOLDEN_ORDER = [[1, 7, 0, 4, 8, 2, 3, 6, 5, 9],
                [721610, 609257, 742465, 788467, 76154, 672390],
                [511, 719, 477, 501, 765, 711]]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 1000, 65536, 65537, 300007])
def test_permutation_is_a_bijection(n):
    p = L._Permutation(n, "records", 1, 0, n)
    out = p(np.arange(n, dtype=np.int64))
    assert np.array_equal(np.sort(out), np.arange(n))
    if n >= 1000:
        assert np.mean(out == np.arange(n)) < 0.01  # records move
    # Positions evaluate independently: any slice agrees with the whole.
    assert np.array_equal(p(np.arange(n // 3, n, dtype=np.int64)), out[n // 3:])


def test_order_is_stable_across_machines_and_versions():
    """Golden values: the same seed and epoch must give the same order everywhere,
    forever (a change here silently breaks every saved resume state)."""
    small = L._GlobalOrder(10, 42, 3, "full", 4096, 65536).ordinals(np.arange(10))
    large = L._GlobalOrder(1 << 20, 42, 3, "full", 4096, 65536).ordinals(np.arange(6))
    blocks = L._GlobalOrder(1000, 42, 3, "blocks", 64, 256).ordinals(np.arange(6))
    got = [small.tolist(), large.tolist(), blocks.tolist()]
    assert got == GOLDEN_ORDER, got


@pytest.mark.parametrize("n,block,window", [(1, 4, 8), (10, 4, 8), (1000, 64, 256),
                                            (70001, 100, 70000)])
def test_block_mode_is_a_permutation_with_bounded_spread(n, block, window):
    order = L._GlobalOrder(n, 7, 2, "blocks", block, window)
    out = order.ordinals(np.arange(n, dtype=np.int64))
    assert np.array_equal(np.sort(out), np.arange(n))
    # Documented quality: the records of one block stay within one window.
    where = np.empty(n, dtype=np.int64)
    where[out] = np.arange(n)
    span = max(1, window // block) * block
    for b in range(0, -(-n // block), max(1, n // block // 50)):
        pos = where[b * block:(b + 1) * block]
        assert pos.max() - pos.min() < span


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 97, 100])
@pytest.mark.parametrize("world", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("drop_last", [False, True])
def test_rank_shares_are_equal_and_cover_every_record_once(n, world, drop_last):
    share = L.rank_share(n, world, drop_last)
    assert share == (n // world if drop_last else -(-n // world))
    order = L._GlobalOrder(n, 5, 0, "full", 4096, 65536)
    seen = []
    for rank in range(world):
        pos = (rank * share + np.arange(share)) % max(n, 1)
        seen += order.ordinals(pos).tolist() if n else []
    counts = np.bincount(seen, minlength=n) if n else np.zeros(0)
    if drop_last:
        assert len(seen) == world * (n // world) and counts.max(initial=0) <= 1
    else:
        assert len(seen) == world * share and counts.min(initial=1) >= 1
        # Only the documented padding repeats: the order's first world*share - n records.
        padding = world * share - n
        assert int((counts - 1).sum()) == padding
        if n:
            first = order.ordinals(np.arange(padding) % n)
            assert np.array_equal(np.sort(np.bincount(first, minlength=n)),
                                  np.sort(counts - 1))


@pytest.mark.parametrize("remaining", [0, 1, 5, 16, 17, 63])
@pytest.mark.parametrize("workers", [1, 2, 3, 5])
@pytest.mark.parametrize("unit", [1, 4, 7])
def test_dealing_to_workers_round_robin_restores_the_sequence(remaining, workers, unit):
    per_worker = [L.worker_items(np.arange(L.worker_count(remaining, workers, w, unit)),
                                 workers, w, unit).tolist() for w in range(workers)]
    assert round_robin(per_worker, unit) == list(range(remaining))


def round_robin(per_worker, batch):
    """What DataLoader does with an IterableDataset: batches of `batch` from each worker
    in turn, skipping exhausted workers."""
    chunks = [[s[i:i + batch] for i in range(0, len(s), batch)] for s in per_worker]
    out, k = [], 0
    while any(chunks):
        w = k % len(chunks)
        k += 1
        if chunks[w]:
            out += chunks[w].pop(0)
    return out


@pytest.mark.parametrize("seed,mode", [(None, "full"), (3, "full"), (3, "blocks"),
                                       (None, "units"), (3, "units")])
def test_numpy_loader_batches_shards_and_types(store, seed, mode):
    world = 3
    per_rank = []
    for rank in range(world):
        it = NumpyLoader("d", store, batch_size=8, shuffle_seed=seed, shuffle_mode=mode,
                         block_size=8, shuffle_buffer=32, rank=rank, world_size=world)
        batches = list(it)
        assert len(batches) == len(it) == -(-33 // 8)
        per_rank.append(labels(batches))
    assert [len(r) for r in per_rank] == [33, 33, 33]  # ceil(97 / 3), padded by 2
    flat = sum(per_rank, [])
    assert set(flat) == set(range(N)) and len(flat) == N + 2
    if seed is None:
        assert flat[:N] == list(range(N)) and flat[N:] == [0, 1]
    else:
        assert flat[:N] != list(range(N))
    b = next(iter(NumpyLoader("d", store, batch_size=6)))
    assert b["anchor"].dtype == np.uint64 and b["anchor"].tolist() == [5, 8, 11, 14, 17, 20]
    assert b["label"].dtype == np.int64 and b["emb"].shape == (6, 2)
    assert b["emb"].dtype == np.float32 and b["patch"].dtype == np.uint16
    assert b["caption"].tolist() == [f"c{i}" for i in range(6)]
    assert b["weight.valid"].tolist() == [False, True, True, True, True, False]
    assert np.isnan(b["weight"][0]) and b["weight"][1] == 1.0
    assert "label.valid" not in b


@pytest.mark.parametrize("name,n", [("n0", 0), ("n1", 1), ("n5", 5)])
@pytest.mark.parametrize("drop_last", [False, True])
def test_fewer_records_than_ranks(store, name, n, drop_last):
    world = 4
    got = [labels(NumpyLoader(name, store, batch_size=2, shuffle_seed=1, rank=r,
                              world_size=world, drop_last=drop_last)) for r in range(world)]
    share = n // world if drop_last else -(-n // world)
    assert [len(g) for g in got] == [share] * world
    if not drop_last and n:
        assert set(sum(got, [])) == set(range(n))


@pytest.mark.parametrize("seed,mode", [(None, "full"), (11, "full"), (11, "blocks"),
                                       (None, "units"), (11, "units")])
def test_resume_at_any_point_yields_exactly_the_rest(store, seed, mode):
    kw = dict(batch_size=5, shuffle_seed=seed, shuffle_mode=mode, block_size=8,
              shuffle_buffer=24, rank=1, world_size=2)
    ref = NumpyLoader("d", store, **kw)
    ref.set_epoch(4)
    full = labels(ref)
    for taken in range(0, len(full) // 5 + 1):
        it = NumpyLoader("d", store, **kw)
        it.set_epoch(4)
        gen = iter(it)
        head = labels(next(gen) for _ in range(taken))
        state = pickle.loads(pickle.dumps(it.state_dict()))
        assert state["position"] == len(head) and state["format"] == "dreamdb.loader/2"
        again = NumpyLoader("d", store, batch_size=5, rank=1, world_size=2)
        again.load_state_dict(state)
        again.set_epoch(4)  # the usual loop: a loaded state of this epoch survives it
        assert head + labels(again) == full
        assert labels(again) == full  # the pass after a resumed one is whole


def test_state_by_consumed_count_when_batches_are_prefetched(store):
    it = NumpyLoader("d", store, batch_size=4, shuffle_seed=2)
    full = labels(it)
    gen = iter(it)
    head = labels([next(gen), next(gen), next(gen)])  # a prefetcher read 3 batches...
    state = it.state_dict(consumed=8)  # ...but the step consumed 2
    again = NumpyLoader("d", store, batch_size=16)
    again.load_state_dict(state)
    assert head[:8] + labels(again) == full
    with pytest.raises(dreamdb.InvalidArgumentError, match="consumed"):
        it.state_dict(consumed=N + 1)


def test_resume_refuses_what_it_cannot_reproduce(store):
    it = NumpyLoader("d", store, batch_size=4, shuffle_seed=2, rank=0, world_size=2)
    state = it.state_dict()
    other_world = NumpyLoader("d", store, rank=0, world_size=3)
    with pytest.raises(dreamdb.InvalidArgumentError, match="world size"):
        other_world.load_state_dict(state)
    old = {"manifest": it.manifest, "seed": 2, "epoch": 0, "position": 5,
           "block_size": 4096, "shuffle_buffer": 8192}
    with pytest.raises(dreamdb.InvalidArgumentError, match="format"):
        it.load_state_dict(old)


def test_invalid_arguments_are_named(store):
    for kw, word in [({"batch_size": 0}, "batch_size"), ({"shuffle_mode": "x"}, "shuffle_mode"),
                     ({"shuffle_seed": 1.5}, "shuffle_seed"), ({"block_size": -1}, "block_size")]:
        with pytest.raises(dreamdb.InvalidArgumentError, match=word):
            NumpyLoader("d", store, **kw)
    with pytest.raises(dreamdb.InvalidArgumentError, match="outside world size"):
        list(NumpyLoader("d", store, rank=2, world_size=2))


def test_resume_seeks_without_reading_the_skipped_records(store, monkeypatch):
    it = NumpyLoader("d", store, batch_size=10, shuffle_seed=None)
    it.load_state_dict({**it.state_dict(), "position": 90})
    reads = []
    real_take, real_scan = dreamdb.Dataset.take, dreamdb.Dataset.iter_batches

    def take(self, anchors, fields=None, allow_missing=False):
        reads.append(len(anchors))
        return real_take(self, anchors, fields, allow_missing)

    def scan(self, fields=None, start=0, end=None, **kw):
        table = real_scan(self, fields, start, end, **kw).read_all()
        reads.append(table.num_rows)
        return dreamdb.dataset.pa.RecordBatchReader.from_batches(table.schema,
                                                                 table.to_batches())

    monkeypatch.setattr(dreamdb.Dataset, "take", take)
    monkeypatch.setattr(dreamdb.Dataset, "iter_batches", scan)
    assert labels(it) == list(range(90, N))
    assert sum(reads) == N - 90
    shuffled = NumpyLoader("d", store, batch_size=10, shuffle_seed=3)
    shuffled.load_state_dict({**shuffled.state_dict(), "position": 90})
    reads.clear()
    assert len(labels(shuffled)) == N - 90 and sum(reads) == N - 90


def test_version_is_pinned_while_the_dataset_changes(tmp_path):
    path = str(tmp_path / "s")
    ds = dreamdb.Dataset.create("p", dreamdb.Schema().add_int("label"), store=path)
    ds.append_many({"label": np.arange(20)})
    it = NumpyLoader("p", path, batch_size=5, shuffle_seed=1)
    gen = iter(it)
    head = labels([next(gen)])
    ds.append_many({"label": np.arange(20, 40)})  # commits mid-epoch
    ds.delete([0, 1, 2])
    rest = labels(gen)
    assert sorted(head + rest) == list(range(20))
    state = it.state_dict()
    again = NumpyLoader("p", path)  # opened at the new head...
    again.load_state_dict(state)  # ...the state brings the pinned manifest back
    assert again.manifest == it.manifest and labels(again) == []
