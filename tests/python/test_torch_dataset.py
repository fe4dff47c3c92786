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


def test_resume_in_a_sharded_setting(store, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    ds = make(store, shuffle_seed=4)
    full = anchors(ds)
    it = iter(ds)
    head = [next(it)["anchor"] for _ in range(40)]
    state = ds.state_dict()
    assert state["shard"] == {"rank": 1, "world_size": 2, "worker": 0, "num_workers": 1}
    state["position"] = {"1/0": 40}  # the per-(rank/worker) form
    resumed = make(store)
    resumed.load_state_dict(state)
    assert head + anchors(resumed) == full


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
