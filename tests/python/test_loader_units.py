# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""shuffle_mode="units": DataLoader workers read contiguous anchor ranges cut at segment
boundaries by range scans (never random takes), every record exactly once per epoch across
ranks x workers, the order fixed by seed and epoch, and resume from a consumed count or a
worker's own state."""

import pickle

import numpy as np
import pytest

import dreamdb
import torch  # noqa: E402  (Debian python3-torch, installed by scripts/bootstrap.sh)
from dreamdb import loader as L
from dreamdb.torch import DreamDBDataset

COMMITS = [70, 45, 90, 33, 62]  # one segment per field per commit
DELETED = [3, 71, 72, 150, 299]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("units") / "store")
    ds = dreamdb.Dataset.create("d", dreamdb.Schema().add_int("label").add_blob("raw"),
                                store=path)
    first = 0
    for n in COMMITS:
        a = np.arange(first, first + n)
        ds.append_many({"label": a, "raw": [bytes([i % 256]) * 3 for i in a]},
                       anchors=(a * 2 + 1).astype(np.uint64))  # gaps: anchors are not labels
        first += n
    ds.delete(np.array([2 * i + 1 for i in DELETED], dtype=np.uint64))
    return path


LIVE = sorted(set(range(sum(COMMITS))) - set(DELETED))


def make(store, **kw):
    kw.setdefault("fields", ["label", "raw"])
    kw.setdefault("shuffle_mode", "units")
    kw.setdefault("batch_size", 16)
    kw.setdefault("block_size", 64)
    kw.setdefault("shuffle_buffer", 40)
    kw.setdefault("loader_batch_size", 8)
    kw.setdefault("batched", True)
    return DreamDBDataset("d", store, **kw)


def run(ds, monkeypatch, workers, stop_after=None):
    """DataLoader(ds, batch_size=None, num_workers=workers): each worker iterates its own
    copy and the loader takes one batch from each worker with batches left, in turn.
    Returns the labels of the batches up to `stop_after`."""
    if workers == 0:
        out = [b["label"].tolist() for b in ds]
        return sum(out[:stop_after] if stop_after is not None else out, [])
    its = []
    for w in range(workers):
        info = type("Info", (), {"id": w, "num_workers": workers})()
        monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda info=info: info)
        its.append(iter(pickle.loads(pickle.dumps(ds))))
    out, k, alive = [], 0, set(range(workers))
    while alive and (stop_after is None or len(out) < stop_after):
        w = k % workers
        k += 1
        if w not in alive:
            continue
        b = next(its[w], None)
        if b is None:
            alive.discard(w)
            continue
        out.append(b["label"].tolist())
    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: None)
    return sum(out, [])


def test_read_units_end_at_segment_changes_and_count_live_records(store):
    ds = dreamdb.Dataset.open("d", store=store)
    units = ds.read_units(["label", "raw"])
    live_per_commit = [sum(1 for i in range(sum(COMMITS[:c]), sum(COMMITS[:c + 1]))
                           if i not in DELETED) for c in range(len(COMMITS))]
    assert units[:, 2].tolist() == live_per_commit
    assert units[0, 0] == 2 * LIVE[0] + 1 and units[-1, 1] == 2 * LIVE[-1] + 1
    merged = ds.read_units("label", min_records=100)  # closes at the first change after 100
    assert merged[:, 2].tolist() == [live_per_commit[0] + live_per_commit[1],
                                     live_per_commit[2] + live_per_commit[3], live_per_commit[4]]
    capped = ds.read_units(None, max_records=20)
    assert capped[:, 2].max() == 20 and capped[:, 2].sum() == len(LIVE)
    listed = ds.anchors()
    for first, last, n in capped:  # each unit is exactly the live anchors in [first, last]
        assert len(listed[(listed >= first) & (listed <= last)]) == n
    with pytest.raises(dreamdb.InvalidArgumentError, match="min_records"):
        ds.read_units("label", min_records=0)
    with pytest.raises(dreamdb.InvalidArgumentError, match="unknown field"):
        ds.read_units("nope")


@pytest.mark.parametrize("seed", [None, 5])
@pytest.mark.parametrize("world,workers", [(1, 0), (1, 2), (2, 3), (3, 2), (4, 1)])
@pytest.mark.parametrize("drop_last", [False, True])
def test_every_record_once_per_epoch_across_ranks_and_workers(store, monkeypatch, seed, world,
                                                              workers, drop_last):
    got = []
    for rank in range(world):
        ds = make(store, shuffle_seed=seed, rank=rank, world_size=world, drop_last=drop_last)
        mine = run(ds, monkeypatch, workers)
        assert len(mine) == ds.samples_per_rank()
        got += mine
    n = len(LIVE)
    if drop_last:
        assert len(got) == len(set(got)) == (n // world) * world
        assert set(got) <= set(LIVE)
    else:
        assert sorted(set(got)) == LIVE and len(got) == -(-n // world) * world
    if seed is None and world == 1 and workers <= 1:
        assert got == LIVE  # unshuffled, one reader: anchor order


def test_order_is_fixed_by_seed_and_epoch(store, monkeypatch):
    def order(seed, epoch):
        ds = make(store, shuffle_seed=seed)
        ds.set_epoch(epoch)
        return run(ds, monkeypatch, 2)

    assert order(7, 1) == order(7, 1)
    assert order(7, 1) != order(7, 2) and order(7, 1) != order(8, 1)
    assert sorted(order(7, 2)) == LIVE
    assert order(7, 1) != sorted(order(7, 1))  # shuffled


@pytest.mark.parametrize("fields", [["label"], ["label", "raw"]])
def test_workers_read_contiguous_anchor_ranges_not_random_takes(store, monkeypatch, fields):
    """The batched loader read each worker's 64-record units with random takes; now each
    worker reads a contiguous part: fixed-width fields by range scans, blobs by takes of
    consecutive anchors, one loader batch each."""
    scans, takes = [], []
    real_scan, real_take = dreamdb.Dataset.iter_batches, dreamdb.Dataset.take

    def scan(self, *args, **kw):
        scans.append((kw.get("start"), kw.get("limit")))
        return real_scan(self, *args, **kw)

    def take(self, anchors, *args, **kw):
        takes.append(np.asarray(anchors).copy())
        return real_take(self, anchors, *args, **kw)

    monkeypatch.setattr(dreamdb.Dataset, "iter_batches", scan)
    monkeypatch.setattr(dreamdb.Dataset, "take", take)
    listed = dreamdb.Dataset.open("d", store=store).anchors()
    position = {int(a): i for i, a in enumerate(listed)}
    units = dreamdb.Dataset.open("d", store=store).read_units(fields, 4, 64)
    for seed in (None, 3):
        scans.clear()
        takes.clear()
        assert sorted(run(make(store, fields=fields, shuffle_seed=seed), monkeypatch, 2)) == LIVE
        if fields == ["label"]:
            assert not takes and sum(n for _, n in scans) == len(LIVE)
            # Unshuffled: one scan per worker; shuffled: one per run of units.
            assert len(scans) == 2 if seed is None else len(scans) <= len(units) + 1
        else:
            assert not scans and sum(len(t) for t in takes) == len(LIVE)
            for t in takes:  # consecutive live records, at most one loader batch
                p = [position[int(a)] for a in t]
                assert p == list(range(p[0], p[0] + len(p))) and len(p) <= 8


@pytest.mark.parametrize("seed", [None, 9])
@pytest.mark.parametrize("workers", [0, 2, 3])
def test_resume_from_the_consumed_count_yields_exactly_the_rest(store, monkeypatch, seed,
                                                                workers):
    full = run(make(store, shuffle_seed=seed, rank=1, world_size=2), monkeypatch, workers)
    for batches in (0, 1, 4, 7, 100):
        first = make(store, shuffle_seed=seed, rank=1, world_size=2)
        head = run(first, monkeypatch, workers, stop_after=batches)
        consumed = max(0, len(head) - 3 * (batches % 2))  # sometimes inside a batch
        head = head[:consumed]
        state = pickle.loads(pickle.dumps(first.state_dict(consumed=consumed,
                                                           num_workers=workers)))
        assert state["position"] == consumed
        again = make(store, rank=1, world_size=2, shuffle_mode="full")
        again.load_state_dict(state)
        rest = run(again, monkeypatch, workers)
        assert sorted(head + rest) == sorted(full)
        if workers == 0:
            assert head + rest == full
        # A second resume from the resumed pass.
        mid = make(store, rank=1, world_size=2)
        mid.load_state_dict(state)
        part = run(mid, monkeypatch, workers, stop_after=2)
        state2 = mid.state_dict(consumed=len(part), num_workers=workers)
        last = make(store, rank=1, world_size=2)
        last.load_state_dict(state2)
        assert sorted(head + part + run(last, monkeypatch, workers)) == sorted(full)


def test_resume_needs_the_same_worker_count_and_says_so(store, monkeypatch):
    first = make(store, shuffle_seed=1)
    run(first, monkeypatch, 2, stop_after=3)
    with pytest.raises(dreamdb.InvalidArgumentError, match="num_workers"):
        first.state_dict(consumed=24)
    state = first.state_dict(consumed=24, num_workers=2)
    assert state["worker_split"] == [16, 8]  # two batches of worker 0, one of worker 1
    again = make(store)
    again.load_state_dict(state)
    with pytest.raises(dreamdb.InvalidArgumentError, match="same num_workers"):
        run(again, monkeypatch, 3)


@pytest.mark.parametrize("mode", ["units", "full"])
def test_worker_states_round_trip_like_stateful_dataloader(store, monkeypatch, mode):
    """Also batched_worker_state_counts_what_was_received: the batched loader counted
    batches on its read-ahead thread, so a worker's state skipped batches never received."""
    ds = make(store, shuffle_seed=4, shuffle_mode=mode)
    full = run(ds, monkeypatch, 2)
    states, head = [], []
    for w in range(2):
        info = type("Info", (), {"id": w, "num_workers": 2})()
        monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda info=info: info)
        copy = pickle.loads(pickle.dumps(ds))
        it = iter(copy)
        for _ in range(2 + w):
            head += next(it)["label"].tolist()
        states.append(copy.state_dict())
    rest = []
    for w in range(2):
        info = type("Info", (), {"id": w, "num_workers": 2})()
        monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda info=info: info)
        copy = make(store, shuffle_mode=mode)
        copy.load_state_dict(states[w])
        rest += sum((b["label"].tolist() for b in copy), [])
    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: None)
    assert sorted(head + rest) == sorted(full) and len(head + rest) == len(full)


def test_round_robin_split_matches_the_dataloader_order():
    for remaining in ([5, 5], [9, 8, 8], [0, 3], [16, 16, 15]):
        for unit in (1, 2, 4):
            seq = []  # (worker) of each item the DataLoader yields
            batches = [[w] * r for w, r in enumerate(remaining)]
            chunks = [[b[i:i + unit] for i in range(0, len(b), unit)] for b in batches]
            t = 0
            while any(t < len(c) for c in chunks):
                for c in chunks:
                    if t < len(c):
                        seq += c[t]
                t += 1
            for consumed in range(len(seq) + 1):
                want = [seq[:consumed].count(w) for w in range(len(remaining))]
                assert L.round_robin_split(consumed, remaining, unit) == want


def test_real_dataloader_with_forked_workers(store):
    ds = make(store, shuffle_seed=2, shuffle_buffer=1024)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2,
                                         multiprocessing_context="fork")
    got = [x for b in loader for x in b["label"].tolist()]
    assert sorted(got) == LIVE
    raw = [bytes(b["raw"][b["raw.offsets"][i]:b["raw.offsets"][i + 1]].tolist())
           for b in loader for i in range(len(b["label"]))]
    assert sorted(raw) == sorted(bytes([i % 256]) * 3 for i in LIVE)


@pytest.mark.parametrize("workers", [2, 3, 5])
def test_workers_yield_len_batches_in_all(store, monkeypatch, workers):
    ds = make(store, rank=0, world_size=2)
    total = 0
    for w in range(workers):
        info = type("Info", (), {"id": w, "num_workers": workers})()
        monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda info=info: info)
        sizes = [len(b["label"]) for b in pickle.loads(pickle.dumps(ds))]
        assert all(n == 8 for n in sizes[:-1])  # whole loader batches but the very last
        total += len(sizes)
    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: None)
    assert total == len(ds)


def test_a_worker_batch_is_one_shared_memory_buffer(store, monkeypatch):
    """A DataLoader shares each tensor storage of a batch as its own segment; a worker's
    batch is now views of one shared-memory buffer (one segment per batch)."""
    info = type("Info", (), {"id": 1, "num_workers": 2})()
    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: info)
    b = next(iter(pickle.loads(pickle.dumps(make(store)))))
    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: None)
    tensors = [v for v in b.values() if isinstance(v, torch.Tensor)]
    assert len(tensors) == 4 and all(t.is_shared() for t in tensors)
    assert len({t.storage().data_ptr() for t in tensors}) == 1
    labels = b["label"].tolist()
    assert b["anchor"].tolist() == [2 * x + 1 for x in labels]
    raw = b["raw"].numpy().tobytes()
    offsets = b["raw.offsets"].tolist()
    assert [raw[offsets[i]:offsets[i + 1]] for i in range(len(labels))] == [
        bytes([x % 256]) * 3 for x in labels]
    main = next(iter(make(store)))  # in the main process: no copy into shared memory
    assert not main["label"].is_shared()
