# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""dreamdb.torch.DreamDBDataset: exactly-once sharding over ranks and DataLoader workers
(fork and spawn), seeded shuffling, exact mid-epoch resume, pinning, sample types."""

import os
import pickle

import pytest

# The package is installed by scripts/test.sh (pip install ./python); without it this
# module fails to import, which is the right signal.
import dreamdb  # noqa: E402
import torch  # noqa: E402  (Debian python3-torch, installed by scripts/bootstrap.sh)

import numpy as np  # noqa: E402

from dreamdb.torch import DreamDBDataset  # noqa: E402

N = 600
BLOCK = 32  # 19 blocks, the last one partial


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("torch") / "store")
    s = (dreamdb.Schema().add_int("label").add_embedding("emb", 3)
         .add_string("caption").add_blob("raw").add_array("patch", "u8", (2, 2))
         .add_float("weight", required=False))
    ds = dreamdb.Dataset.create("train", s, store=path)
    ds.append_many({
        "label": np.arange(N) * 10,
        "emb": np.arange(N * 3, dtype=np.float32).reshape(N, 3),
        "caption": [f"c{i}" for i in range(N)],
        "raw": [bytes([i % 256]) for i in range(N)],
        "patch": (np.arange(N * 4) % 256).astype(np.uint8).reshape(N, 2, 2),
        "weight": [None if i % 7 == 0 else i / 10 for i in range(N)],
    })
    ds.snapshot("v1")
    return path


def make(store, **kw):
    kw.setdefault("block_size", BLOCK)
    kw.setdefault("batch_size", 50)
    return DreamDBDataset("train", store, **kw)


def anchors(iterable):
    return [s["anchor"] for s in iterable]


def test_samples_have_the_documented_types(store):
    ds = make(store)
    samples = list(ds)
    assert anchors(samples) == list(range(N))
    s = samples[7]
    assert isinstance(s["anchor"], int)
    assert s["label"].dtype == torch.int64 and s["label"].item() == 70
    assert s["emb"].dtype == torch.float32 and s["emb"].tolist() == [21.0, 22.0, 23.0]
    assert s["caption"] == "c7" and s["raw"] == b"\x07"
    assert s["patch"].shape == (2, 2) and s["patch"].dtype == torch.uint8
    assert s["patch"].flatten().tolist() == [28, 29, 30, 31]
    assert samples[7]["weight"] is None and samples[8]["weight"].item() == pytest.approx(0.8)
    assert len(ds) == N


def test_fields_projection_and_transform(store):
    ds = make(store, fields=["label"], transform=lambda s: s["label"].item() + 1)
    out = list(ds)
    assert out[:3] == [1, 11, 21]
    only = next(iter(make(store, fields=["caption"])))
    assert set(only) == {"anchor", "caption"}
    with pytest.raises(dreamdb.NotFoundError):
        make(store, fields=["nope"])


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_two_workers_yield_every_anchor_exactly_once(store, context):
    ds = make(store, shuffle_seed=3, fields=["label", "emb", "caption"])  # no nulls to collate
    loader = torch.utils.data.DataLoader(ds, num_workers=2, batch_size=16,
                                         multiprocessing_context=context)
    seen = [a for batch in loader for a in batch["anchor"].tolist()]
    assert len(seen) == N and sorted(seen) == list(range(N))
    assert seen != sorted(seen)  # shuffled


def test_ranks_and_workers_partition_the_records(store, monkeypatch):
    world, workers = 3, 2
    per_rank = []
    for rank in range(world):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", str(world))
        ds = make(store, shuffle_seed=11)
        got = []
        for w in range(workers):
            info = type("Info", (), {"id": w, "num_workers": workers})()
            monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda info=info: info)
            got += anchors(ds)
        monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: None)
        assert len(got) == len(ds)  # __len__: this rank's share
        per_rank.append(got)
    flat = [a for r in per_rank for a in r]
    assert sorted(flat) == list(range(N))
    assert all(abs(len(r) - N / world) <= BLOCK for r in per_rank)


def test_shuffle_is_determined_by_seed_and_epoch(store):
    a = make(store, shuffle_seed=1, shuffle_buffer=64)
    first = anchors(a)
    assert sorted(first) == list(range(N)) and first != list(range(N))
    assert anchors(make(store, shuffle_seed=1, shuffle_buffer=64)) == first
    assert anchors(a) == first  # same epoch again: same order
    a.set_epoch(1)
    second = anchors(a)
    assert sorted(second) == list(range(N)) and second != first
    b = make(store, shuffle_seed=1, shuffle_buffer=64)
    b.set_epoch(1)
    assert anchors(b) == second
    assert anchors(make(store, shuffle_seed=2, shuffle_buffer=64)) != first


@pytest.mark.parametrize("seed", [None, 5])
@pytest.mark.parametrize("position", [0, 1, 31, 32, 250, N - 1, N])
def test_resume_mid_epoch_yields_exactly_the_rest(store, seed, position):
    ds = make(store, shuffle_seed=seed, shuffle_buffer=100)
    ds.set_epoch(2)
    full = anchors(ds)
    it = iter(ds)
    head = [next(it)["anchor"] for _ in range(position)]
    state = ds.state_dict()
    assert state["position"] == position and state["epoch"] == 2
    assert state["manifest"] == ds.manifest and state["seed"] == seed
    del it
    resumed = make(store)  # different settings: the state brings its own
    resumed.load_state_dict(pickle.loads(pickle.dumps(state)))
    rest = anchors(resumed)
    assert head + rest == full
    assert anchors(resumed) == full  # the pass after a resumed one is whole again


def test_resume_reads_little_more_than_the_remaining_records(store):
    ds = make(store, shuffle_seed=9, shuffle_buffer=64, fields=["label"])
    it = iter(ds)
    for _ in range(500):
        next(it)
    state = ds.state_dict()
    resumed = make(store, fields=["label"])
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert len(rest) == N - 500


def test_ranks_get_equal_shares_not_whole_blocks_5000_records_world_4(tmp_path, monkeypatch):
    """The bug: ranks got whole 4,096-record blocks (4096 / 904 / 0 / 0 samples), so a
    DistributedDataParallel job hung at its first collective."""
    path = str(tmp_path / "s")
    ds = dreamdb.Dataset.create("big", dreamdb.Schema().add_int("label"), store=path)
    ds.append_many({"label": np.arange(5000)})
    monkeypatch.setenv("WORLD_SIZE", "4")
    seen = []
    for rank in range(4):
        monkeypatch.setenv("RANK", str(rank))
        for seed in (None, 1):
            d = DreamDBDataset("big", path, shuffle_seed=seed, fields=[])  # block_size 4096
            got = anchors(d)
            assert len(d) == len(got) == 1250
            if seed is None:
                seen += got
    assert sorted(seen) == list(range(5000))


def simulate_loader(ds, monkeypatch, workers, batch, stop_after=None):
    """What DataLoader does with `workers` workers (0 = in process): each worker iterates
    its own copy; batches of `batch` are collected round-robin. Returns (samples in
    output order, the worker copies and their iterators) after `stop_after` batches."""
    if workers == 0:
        it = iter(ds)
        out = []
        for k, s in enumerate(it):
            if stop_after is not None and len(out) == stop_after * batch:
                break
            out.append(s["anchor"])
        return out, [(ds, it)]
    copies = []
    for w in range(workers):
        info = type("Info", (), {"id": w, "num_workers": workers})()
        monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda info=info: info)
        copy = pickle.loads(pickle.dumps(ds))
        copies.append((copy, iter(copy), info))
    out, k, alive = [], 0, set(range(workers))
    while alive and (stop_after is None or k < stop_after):
        w = k % workers
        k += 1
        if w not in alive:
            stop_after = None if stop_after is None else stop_after + 1
            continue
        copy, it, info = copies[w]
        monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda info=info: info)
        got = [s["anchor"] for _, s in zip(range(batch), it)]
        if not got:
            alive.discard(w)
            stop_after = None if stop_after is None else stop_after + 1
            continue
        out += got
    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: None)
    return out, copies


@pytest.mark.parametrize("seed", [None, 8])
@pytest.mark.parametrize("before,after", [(0, 2), (2, 0), (2, 3), (3, 1)])
def test_resume_by_consumed_count_with_a_different_worker_count(store, monkeypatch, seed,
                                                                before, after):
    batch = 16
    kw = dict(shuffle_seed=seed, loader_batch_size=batch, rank=1, world_size=3)
    ref = make(store, **kw)
    ref.set_epoch(1)
    full = anchors(ref)
    assert len(full) == N // 3
    assert simulate_loader(ref, monkeypatch, before, batch)[0] == full  # any worker count
    for steps in (0, 1, 5, 12, N // 3 // batch + 1):
        ds = make(store, **kw)
        ds.set_epoch(1)
        head, _ = simulate_loader(ds, monkeypatch, before, batch, stop_after=steps)
        state = ds.state_dict(consumed=len(head))
        assert head == full[:len(head)]
        resumed = make(store, loader_batch_size=batch, rank=1, world_size=3)
        resumed.load_state_dict(pickle.loads(pickle.dumps(state)))
        resumed.set_epoch(1)
        rest, _ = simulate_loader(resumed, monkeypatch, after, batch)
        assert head + rest == full


@pytest.mark.parametrize("workers,batch", [(2, 4), (3, 7)])
def test_per_worker_states_round_trip_like_stateful_dataloader(store, monkeypatch, workers,
                                                               batch):
    """torchdata's StatefulDataLoader calls state_dict() in each worker and, on resume,
    load_state_dict() in each new worker before iter(); it then continues the round-robin
    after the last worker it read from."""
    kw = dict(shuffle_seed=6, loader_batch_size=batch, rank=0, world_size=2)
    full = anchors(make(store, **kw))
    for steps in (0, 1, 4, 9):
        ds = make(store, **kw)
        head, copies = simulate_loader(ds, monkeypatch, workers, batch, stop_after=steps)
        states = []
        for copy, _, info in copies:
            monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda info=info: info)
            states.append(pickle.loads(pickle.dumps(copy.state_dict())))
        fresh = make(store, **kw)  # the main process's object, pickled to new workers
        rest_by_worker = []
        for w, state in enumerate(states):
            info = type("Info", (), {"id": w, "num_workers": workers})()
            monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda info=info: info)
            copy = pickle.loads(pickle.dumps(fresh))
            copy.load_state_dict(state)
            rest_by_worker.append([s["anchor"] for s in copy])
        monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: None)
        # Continue the round-robin at worker `steps % workers`.
        order = [(steps + k) % workers for k in range(workers)]
        chunks = {w: [r[i:i + batch] for i in range(0, len(r), batch)]
                  for w, r in enumerate(rest_by_worker)}
        rest = []
        while any(chunks.values()):
            for w in order:
                if chunks[w]:
                    rest += chunks[w].pop(0)
        assert head + rest == full
    # A worker state resumes only the same workers; the message says what to do.
    info = type("Info", (), {"id": 0, "num_workers": workers + 1})()
    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: info)
    copy = make(store, **kw)
    copy.load_state_dict(states[0])
    with pytest.raises(dreamdb.InvalidArgumentError, match="consumed"):
        iter(copy)


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_main_process_state_dict_with_workers_is_never_position_0(store):
    """The bug: with num_workers=2, after 320 records the dataset's state_dict() in the
    main process still said position 0, so resuming restarted the epoch."""
    fields = ["label", "emb", "caption"]
    ds = make(store, shuffle_seed=3, fields=fields, loader_batch_size=16)
    full = anchors(make(store, shuffle_seed=3, fields=fields))
    loader = torch.utils.data.DataLoader(ds, num_workers=2, batch_size=16)
    head = []
    for batch in loader:
        head += batch["anchor"].tolist()
        if len(head) == 320:
            break
    with pytest.raises(dreamdb.InvalidArgumentError, match="consumed="):
        ds.state_dict()
    state = ds.state_dict(consumed=len(head))
    assert state["position"] == 320 and head == full[:320]
    for workers in (0, 3):
        resumed = make(store, fields=fields, loader_batch_size=16)
        resumed.load_state_dict(state)
        loader = torch.utils.data.DataLoader(resumed, num_workers=workers, batch_size=16)
        rest = [a for b in loader for a in b["anchor"].tolist()]
        assert head + rest == full


def test_drop_last_and_padding_match_distributed_sampler(store):
    for world in (7, 11):
        shares = [len(anchors(make(store, rank=r, world_size=world, drop_last=drop)))
                  for drop in (False, True) for r in range(world)]
        sampler = [len(list(torch.utils.data.DistributedSampler(
            range(N), num_replicas=world, rank=r, shuffle=False, drop_last=drop)))
            for drop in (False, True) for r in range(world)]
        assert shares == sampler
    padded = [anchors(make(store, rank=r, world_size=7)) for r in range(7)]
    flat = sum(padded, [])
    assert flat[:N] == list(range(N)) and flat[N:] == list(range(len(flat) - N))


def test_version_is_pinned_at_construction(store):
    ds = make(store)
    pinned = ds.manifest
    writer = dreamdb.Dataset.create("other", dreamdb.Schema().add_int("x"), store=store)
    writer.append_many({"x": [1]})
    main = dreamdb.Dataset.open("train", store=store)
    main.append_many({"label": [1], "emb": [[0, 0, 0]], "caption": ["new"], "raw": [b""],
                      "patch": [[[0, 0], [0, 0]]]})
    try:
        assert ds.manifest == pinned and len(anchors(ds)) == N
        assert len(anchors(make(store))) == N + 1
        assert len(anchors(make(store, at="v1"))) == N
    finally:
        main.delete([N])


def test_pickles_small_and_without_native_handles(store):
    ds = make(store)
    list(ds)
    data = pickle.dumps(ds)
    assert len(data) < 4096
    again = pickle.loads(data)
    assert anchors(again) == list(range(N))


def test_default_collate_batches(store):
    loader = torch.utils.data.DataLoader(make(store, fields=["label", "emb", "caption"]),
                                         batch_size=8)
    batch = next(iter(loader))
    assert batch["label"].shape == (8,) and batch["emb"].shape == (8, 3)
    assert batch["caption"][:2] == ["c0", "c1"]


@pytest.mark.parametrize("workers", [2, 3])
def test_unshuffled_workers_scan_whole_loader_batches_in_order(tmp_path, monkeypatch, workers):
    path = str(tmp_path / "s")
    ds = dreamdb.Dataset.create("big", dreamdb.Schema().add_int("label"), store=path)
    ds.append_many({"label": np.arange(2999)})
    batch = 512  # >= the scan threshold: each batch is one range scan
    kw = dict(fields=["label"], loader_batch_size=batch, rank=1, world_size=2)
    full = anchors(DreamDBDataset("big", path, **kw))
    assert full == list(range(1500, 2999)) + [0]  # padded by the order's first record
    got, _ = simulate_loader(DreamDBDataset("big", path, **kw), monkeypatch, workers, batch)
    assert got == full
    first = DreamDBDataset("big", path, **kw)
    head, _ = simulate_loader(first, monkeypatch, workers, batch, stop_after=1)
    resumed = DreamDBDataset("big", path, **kw)
    resumed.load_state_dict(first.state_dict(consumed=len(head) - 100))  # mid-batch
    rest, _ = simulate_loader(resumed, monkeypatch, workers, batch)
    assert head[:-100] + rest == full


def test_read_ahead_yields_in_order_raises_in_place_and_stops_when_closed():
    """The worker reads the next table on a thread while the current one is decoded: the
    items come in order, an error surfaces at the item where it happened, and a consumer
    that stops early stops the reader (its generator is closed, nothing keeps running)."""
    import threading

    from dreamdb.torch import _read_ahead

    assert list(_read_ahead(iter(range(50)), depth=2)) == list(range(50))

    def failing():
        yield 0
        yield 1
        raise dreamdb.StorageIOError("disk gone")

    got = []
    with pytest.raises(dreamdb.StorageIOError, match="disk gone"):
        for x in _read_ahead(failing(), depth=2):
            got.append(x)
    assert got == [0, 1]

    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    it = _read_ahead(endless(), depth=2)
    assert [next(it) for _ in range(5)] == [0, 1, 2, 3, 4]
    it.close()
    assert closed.wait(5), "the read-ahead thread kept the source open"
    assert not any(t.name == "dreamdb-read-ahead" for t in threading.enumerate())


# ---- batched=True: whole batches as tensors ----

def batch_anchors(batches):
    return [a for b in batches for a in b["anchor"].tolist()]


def test_batched_mode_yields_one_tensor_per_field_per_batch(store):
    ds = make(store, batched=True, loader_batch_size=64)
    batches = list(ds)
    assert len(batches) == len(ds) == -(-N // 64)
    assert [len(b["anchor"]) for b in batches] == [64] * (N // 64) + [N % 64]
    assert batch_anchors(batches) == list(range(N))
    b = batches[1]  # records 64..127
    assert b["anchor"].dtype == torch.int64
    assert b["label"].dtype == torch.int64 and b["label"].tolist() == [i * 10 for i in range(64, 128)]
    assert b["emb"].dtype == torch.float32 and b["emb"].shape == (64, 3)
    assert b["emb"][0].tolist() == [192.0, 193.0, 194.0]
    assert b["patch"].dtype == torch.uint8 and b["patch"].shape == (64, 2, 2)
    assert b["caption"][:2] == ["c64", "c65"]
    # an optional field: the value (0 / NaN when null) and its validity
    w, valid = b["weight"], b["weight.valid"]
    assert w.dtype == torch.float64 and valid.dtype == torch.bool
    assert [bool(v) for v in valid] == [(64 + i) % 7 != 0 for i in range(64)]
    assert w[1].item() == pytest.approx(6.5)
    # the same values as the per-sample mode, stacked
    samples = list(make(store, fields=["emb", "patch"]))
    assert torch.equal(torch.cat([x["emb"] for x in batches]),
                       torch.stack([s["emb"] for s in samples]))
    assert torch.equal(torch.cat([x["patch"] for x in batches]),
                       torch.stack([s["patch"] for s in samples]))


def test_batched_mode_blobs_are_bytes_and_offsets_without_per_sample_objects(store):
    ds = make(store, fields=["raw"], batched=True, loader_batch_size=100)
    got = []
    for b in ds:
        data, offsets = b["raw"], b["raw.offsets"]
        assert data.dtype == torch.uint8 and offsets.dtype == torch.int64
        assert offsets[0].item() == 0 and offsets[-1].item() == len(data)
        assert len(offsets) == len(b["anchor"]) + 1
        raw = data.numpy().tobytes()
        got += [raw[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]
    assert got == [bytes([i % 256]) for i in range(N)]


@pytest.mark.parametrize("seed", [None, 4])
def test_batched_mode_dataloader_workers_yield_the_rank_sequence_in_order(store, seed):
    per_sample = anchors(make(store, shuffle_seed=seed))
    ds = make(store, shuffle_seed=seed, fields=["label", "emb"], batched=True,
              loader_batch_size=32)
    loader = torch.utils.data.DataLoader(ds, num_workers=2, batch_size=None,
                                         multiprocessing_context="fork")
    batches = list(loader)
    assert batch_anchors(batches) == per_sample
    assert all(torch.equal(b["label"], b["anchor"] * 10) for b in batches)


def test_batched_mode_ranks_partition_the_records(store):
    seen = []
    for rank in range(3):
        ds = make(store, shuffle_seed=2, batched=True, loader_batch_size=16, rank=rank,
                  world_size=3, fields=["label"])
        mine = batch_anchors(ds)
        assert len(mine) == N // 3
        seen += mine
    assert sorted(seen) == list(range(N))


@pytest.mark.parametrize("seed", [None, 6])
@pytest.mark.parametrize("before,after", [(0, 2), (2, 3)])
def test_batched_mode_resumes_from_the_consumed_count(store, monkeypatch, seed, before, after):
    batch = 16
    kw = dict(shuffle_seed=seed, loader_batch_size=batch, rank=1, world_size=3,
              fields=["label"])
    full = anchors(make(store, **kw))
    for steps in (0, 1, 5, N // 3 // batch + 1):
        ds = make(store, batched=True, **kw)
        head = batch_anchors(simulate_batched(ds, monkeypatch, before, stop_after=steps))
        state = ds.state_dict(consumed=len(head))
        assert head == full[:len(head)]
        resumed = make(store, batched=True, **kw)
        resumed.load_state_dict(pickle.loads(pickle.dumps(state)))
        rest = batch_anchors(simulate_batched(resumed, monkeypatch, after))
        assert head + rest == full


def simulate_batched(ds, monkeypatch, workers, stop_after=None):
    """DataLoader(batch_size=None) with `workers` workers: each iterates its own copy;
    batches are collected round-robin. Returns the batches up to `stop_after`."""
    if workers == 0:
        out = list(ds)
        return out if stop_after is None else out[:stop_after]
    its = []
    for w in range(workers):
        info = type("Info", (), {"id": w, "num_workers": workers})()
        monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda info=info: info)
        copy = pickle.loads(pickle.dumps(ds))
        its.append((iter(copy), info))
    out, k, alive = [], 0, set(range(workers))
    while alive and (stop_after is None or len(out) < stop_after):
        w = k % workers
        k += 1
        if w not in alive:
            continue
        it, info = its[w]
        monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda info=info: info)
        b = next(it, None)
        if b is None:
            alive.discard(w)
            continue
        out.append(b)
    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: None)
    return out


# ---- batched=True in DataLoader workers: one shared buffer per batch ----

ALL_KINDS = ["label", "emb", "caption", "raw", "patch", "weight"]


def worker_batches(store, monkeypatch, **kw):
    """The batches worker 0 of 1 builds (in this process, as a DataLoader worker would)."""
    info = type("Info", (), {"id": 0, "num_workers": 1})()
    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: info)
    try:
        return list(make(store, **kw))
    finally:
        monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: None)


def assert_same_batches(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert type(g) is dict and list(g) == list(w)
        for k in w:
            if isinstance(w[k], torch.Tensor):
                assert g[k].dtype == w[k].dtype and g[k].shape == w[k].shape, k
                assert np.array_equal(g[k].numpy(), w[k].numpy(), equal_nan=k == "weight"), k
            else:
                assert g[k] == w[k], k


def test_worker_batch_crosses_to_the_main_process_as_one_shared_buffer(store, monkeypatch):
    """Every tensor storage a worker sends is one shared-memory segment and one file
    descriptor handed over (a socket round trip): a batch now sends one, not one per
    tensor (anchor, each field, blob offsets, validity)."""
    import multiprocessing.reduction

    import dreamdb.torch as dt
    from torch.multiprocessing.reductions import ForkingPickler

    monkeypatch.setattr(dt, "_POOL", None)  # this worker's first batches
    kw = dict(fields=ALL_KINDS, batched=True, loader_batch_size=64)  # reads of 50 records
    want = list(make(store, **kw))  # the main process: plain tensors
    built = worker_batches(store, monkeypatch, **kw)
    handed = []
    dup = multiprocessing.reduction.DupFd
    monkeypatch.setattr(multiprocessing.reduction, "DupFd",
                        lambda fd: handed.append(fd) or dup(fd))
    got = [ForkingPickler.loads(ForkingPickler.dumps(b)) for b in built]
    if torch.multiprocessing.get_sharing_strategy() == "file_descriptor":
        # one per batch, and once the small array through which the main process tells
        # the worker which buffers it released (with the first batch)
        assert len(handed) == len(built) + 1
    assert_same_batches(got, want)
    assert sum(len(b["anchor"]) for b in got) == N


def test_worker_batches_through_a_real_dataloader_equal_the_main_process_batches(store):
    kw = dict(fields=ALL_KINDS, batched=True, loader_batch_size=64)
    want = list(make(store, **kw))
    loader = torch.utils.data.DataLoader(make(store, **kw), num_workers=2, batch_size=None,
                                         multiprocessing_context="fork")
    assert_same_batches(list(loader), want)


def test_worker_batch_a_transform_changed_pickles_as_a_plain_dict(store, monkeypatch):
    """A transform that puts a tensor of its own into the batch: the batch no longer lies
    in one buffer, so it is sent tensor by tensor, unchanged."""
    def double(b):
        b["label"] = b["label"] * 2  # a new tensor, outside the batch's buffer
        return b

    kw = dict(fields=["label", "emb"], batched=True, loader_batch_size=64, transform=double)
    built = worker_batches(store, monkeypatch, **kw)
    got = [pickle.loads(pickle.dumps(b)) for b in built]
    assert [type(b) for b in got] == [dict] * len(built)
    assert all(torch.equal(b["label"], b["anchor"] * 20) for b in got)
    assert all(torch.equal(b["emb"][:, 0], b["anchor"].float() * 3) for b in got)


def expected_label_batches(store, **kw):
    return [b["label"].clone() for b in make(store, fields=["label", "raw"], batched=True, **kw)]


def test_worker_reuses_a_shared_buffer_once_the_main_process_released_the_batch(
        store, monkeypatch):
    """Fresh shared memory costs a page fault and a zeroed page per 4 KiB in the worker;
    a worker now refills buffers the main process has released instead."""
    import dreamdb.torch as dt
    import torch.multiprocessing.reductions as reductions
    from torch.multiprocessing.reductions import ForkingPickler

    want = expected_label_batches(store, loader_batch_size=16)
    info = type("Info", (), {"id": 0, "num_workers": 1})()
    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: info)
    monkeypatch.setattr(dt, "_POOL", None)
    # Received as by another process: a mapping of its own, not the sender's storage.
    monkeypatch.setattr(reductions, "storage_from_cache", lambda cls, key: None)
    got = 0
    for i, b in enumerate(make(store, fields=["label", "raw"], batched=True, loader_batch_size=16)):
        received = ForkingPickler.loads(ForkingPickler.dumps(b))
        assert torch.equal(received["label"], want[i])
        del b, received  # the main process is done with it
        got += 1
    assert got == len(want) > 3 * dt._BufferPool.SLOTS
    # Each batch was released before the next was built: one or two buffers served all.
    assert len(dt._POOL.bufs) <= 2


def test_worker_never_refills_a_buffer_the_main_process_still_holds(store):
    """Batches kept by the training loop (every third one here, and views of some) keep
    their values while the workers go on filling the buffers of the released ones."""
    want = expected_label_batches(store, loader_batch_size=8)
    loader = torch.utils.data.DataLoader(
        make(store, fields=["label", "raw"], batched=True, loader_batch_size=8),
        num_workers=2, batch_size=None, multiprocessing_context="fork")
    kept, views = [], []
    for i, b in enumerate(loader):
        assert torch.equal(b["label"], want[i])
        if i % 3 == 0:
            kept.append((i, b))
        elif i % 3 == 1:
            views.append((i, b["label"][1:]))  # a view alone keeps the buffer too
    assert len(kept) + len(views) > 2 * 2 * 8  # more than both workers' buffers
    for i, b in kept:
        assert torch.equal(b["label"], want[i])
        assert torch.equal(b["label"], b["anchor"] * 10)
    for i, v in views:
        assert torch.equal(v, want[i][1:])


def test_worker_buffers_are_fresh_when_reuse_is_off(store, monkeypatch):
    import dreamdb.torch as dt

    monkeypatch.setattr(dt, "_POOL", None)
    built = worker_batches(store, monkeypatch, fields=["label"], batched=True,
                           loader_batch_size=64, reuse_worker_buffers=False)
    assert dt._POOL is None and len(built) == -(-N // 64)
    assert all(type(b) is dt._Batch for b in built)
