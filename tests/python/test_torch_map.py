# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""dreamdb.torch.DreamDBMapDataset: map-style access over take, pinned to a manifest;
DataLoader with 2 workers under fork and spawn, RandomSampler shuffling, batched fetches,
projection (bytes read), pickling."""

import pickle
import threading

import numpy as np
import pytest
import torch
import torch.utils.data

import dreamdb
from dreamdb.torch import DreamDBDataset, DreamDBMapDataset

N = 300
BLOB = 8192  # bytes per "raw" value


def rows(n, start=0):
    return {
        "label": (np.arange(start, start + n) * 10),
        "emb": np.arange(start * 3, (start + n) * 3, dtype=np.float32).reshape(n, 3),
        "caption": [f"c{i}" for i in range(start, start + n)],
        "raw": [bytes([i % 256]) * BLOB for i in range(start, start + n)],
        "weight": [None if i % 7 == 0 else i / 10 for i in range(start, start + n)],
    }


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("torchmap") / "store")
    s = (dreamdb.Schema().add_int("label").add_embedding("emb", 3).add_string("caption")
         .add_blob("raw").add_float("weight", required=False))
    ds = dreamdb.Dataset.create("train", s, store=path)
    ds.append_many(rows(N // 2))
    ds.append_many(rows(N - N // 2, N // 2))  # two commits: two sets of segments
    ds.snapshot("v1")
    return path


@pytest.fixture
def scratch(tmp_path) -> dreamdb.Dataset:
    """A private dataset a test may write to (with some deleted records)."""
    s = dreamdb.Schema().add_int("label").add_blob("raw")
    ds = dreamdb.Dataset.create("scratch", s, store=str(tmp_path / "s"))
    ds.append_many({"label": np.arange(100) * 10, "raw": [b"x" * 100] * 100})
    ds.delete([0, 5, 50, 99])
    return ds


def test_items_are_records_in_anchor_order_with_documented_types(store):
    ds = DreamDBMapDataset(("train", store))
    assert len(ds) == N
    assert ds.anchors.dtype == np.uint64 and ds.anchors.tolist() == list(range(N))
    s = ds[7]
    assert s["anchor"] == 7 and s["label"].dtype == torch.int64 and s["label"].item() == 70
    assert s["emb"].dtype == torch.float32 and s["emb"].tolist() == [21.0, 22.0, 23.0]
    assert s["caption"] == "c7" and s["raw"] == b"\x07" * BLOB
    assert ds[7]["weight"] is None and ds[8]["weight"].item() == pytest.approx(0.8)
    assert ds[-1]["anchor"] == N - 1 and ds[np.int64(3)]["anchor"] == 3
    # Same sample types as the IterableDataset.
    it = next(iter(DreamDBDataset("train", store)))
    first = ds[0]
    assert set(first) == set(it) and all(type(first[k]) is type(it[k]) for k in it)
    with pytest.raises(IndexError):
        ds[N]
    with pytest.raises(IndexError):
        ds[-N - 1]
    with pytest.raises(dreamdb.InvalidArgumentError):
        ds["7"]


def test_batches_keep_order_and_duplicates(store):
    ds = DreamDBMapDataset(("train", store), fields=["label"])
    got = ds.__getitems__([5, 1, 5, N - 1])
    assert [s["anchor"] for s in got] == [5, 1, 5, N - 1]
    assert [s["label"].item() for s in got] == [50, 10, 50, (N - 1) * 10]
    assert [s["anchor"] for s in ds[[2, 0]]] == [2, 0]
    assert [s["anchor"] for s in ds[np.array([3, -1])]] == [3, N - 1]
    assert [s["anchor"] for s in ds[torch.tensor([4])]] == [4]
    assert ds.__getitems__([]) == []


def test_deleted_records_are_not_items(scratch):
    ds = DreamDBMapDataset(scratch)
    live = [a for a in range(100) if a not in (0, 5, 50, 99)]
    assert len(ds) == 96 and ds.anchors.tolist() == live
    assert [ds[i]["anchor"] for i in range(len(ds))] == live
    assert ds[4]["label"].item() == 60


def test_source_forms_fields_and_transform(store):
    head = dreamdb.Dataset.open("train", store=store)
    for source in [("train", store), ("train", store, "v1"), head,
                   ("train", dreamdb.Store.open(store))]:
        ds = DreamDBMapDataset(source, fields=["caption"], transform=lambda s: s["caption"])
        assert ds[3] == "c3" and len(ds) == N
    assert DreamDBMapDataset(("train", store, "v1")).manifest == head.head
    with pytest.raises(dreamdb.NotFoundError):
        DreamDBMapDataset(("train", store), fields=["nope"])
    with pytest.raises(dreamdb.NotFoundError):
        DreamDBMapDataset(("missing", store))
    with pytest.raises(dreamdb.InvalidArgumentError):
        DreamDBMapDataset("train")
    with pytest.raises(dreamdb.InvalidArgumentError):
        DreamDBMapDataset((1, store))


def test_pinned_while_another_writer_commits(scratch):
    ds = DreamDBMapDataset(scratch, fields=["label"])
    before = [(s["anchor"], s["label"].item()) for s in ds.__getitems__(range(len(ds)))]
    commits = []

    def writer():
        w = dreamdb.Dataset.open("scratch", store=scratch.store)
        for k in range(20):
            w.append_many({"label": [-k]}, anchors=[1 + 2 * (k % 2)])  # replace 1 or 3
            w.append_many({"label": [-2], "raw": [b"y"]}, anchors=[200 + k])  # add
            w.delete([2 + 2 * k])  # delete 2, 4, ..., 40
        commits.append(k + 1)

    t = threading.Thread(target=writer)
    t.start()
    reads = 0
    try:
        while t.is_alive() or reads < 2:  # read while the writer commits
            during = [(s["anchor"], s["label"].item()) for s in ds.__getitems__(range(len(ds)))]
            assert during == before
            reads += 1
    finally:
        t.join()
    assert commits == [20]
    scratch.refresh()
    assert scratch.head != ds.manifest  # the branch moved on
    assert [(s["anchor"], s["label"].item()) for s in ds.__getitems__(range(len(ds)))] == before
    assert DreamDBMapDataset(scratch).anchors.tolist() != ds.anchors.tolist()


def test_one_take_per_batch(store, monkeypatch):
    calls = []
    real = dreamdb.Dataset.take

    def counting(self, anchors, fields=None, allow_missing=False):
        calls.append(len(anchors))
        return real(self, anchors, fields, allow_missing)

    monkeypatch.setattr(dreamdb.Dataset, "take", counting)
    ds = DreamDBMapDataset(("train", store), fields=["label", "emb"])
    loader = torch.utils.data.DataLoader(ds, batch_size=32)
    labels = torch.cat([b["label"] for b in loader])
    assert labels.tolist() == [a * 10 for a in range(N)]
    assert calls == [32] * (N // 32) + [N % 32]


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_two_workers_random_sampler(store, context):
    ds = DreamDBMapDataset(("train", store, "v1"), fields=["label", "emb", "caption"])
    sampler = torch.utils.data.RandomSampler(ds, generator=torch.Generator().manual_seed(7))
    loader = torch.utils.data.DataLoader(ds, sampler=sampler, batch_size=16, num_workers=2,
                                         multiprocessing_context=context)
    seen, labels = [], []
    for batch in loader:
        seen += batch["anchor"].tolist()
        labels += batch["label"].tolist()
        assert batch["emb"].shape[1:] == (3,)
    expected = [int(ds.anchors[i]) for i in
                torch.utils.data.RandomSampler(
                    ds, generator=torch.Generator().manual_seed(7))]
    assert seen == expected  # the sampler's order, every record exactly once
    assert sorted(seen) == list(range(N)) and seen != sorted(seen)
    assert labels == [a * 10 for a in seen]


def test_shuffle_through_dataloader_is_seeded(store):
    ds = DreamDBMapDataset(("train", store), fields=["label"])

    def order(seed):
        g = torch.Generator().manual_seed(seed)
        loader = torch.utils.data.DataLoader(ds, batch_size=50, shuffle=True, generator=g)
        return [a for b in loader for a in b["anchor"].tolist()]

    assert order(1) == order(1) != order(2)
    assert sorted(order(3)) == list(range(N))


def test_projection_reads_only_requested_fields(store):
    ds = DreamDBMapDataset(("train", store), fields=["label"])
    listed = ds.read_stats()
    assert listed["bytes_fetched"] == 0  # listing anchors read index pages only
    for _ in torch.utils.data.DataLoader(ds, batch_size=64):
        pass
    small = ds.read_stats()["bytes_fetched"]
    blobs = N * BLOB
    # labels: ~8 bytes a record, blobs never read (0 when the label segments are small
    # enough to sit in headers this process already read and verified: they are shared by
    # every handle of the store)
    assert small < blobs / 20, small
    full = DreamDBMapDataset(("train", store), fields=["raw"])
    for _ in torch.utils.data.DataLoader(full, batch_size=64):
        pass
    assert full.read_stats()["bytes_fetched"] >= blobs


def test_pickles_as_reference_and_relists_anchors(store):
    ds = DreamDBMapDataset(("train", store), fields=["label"])
    data = pickle.dumps(ds)
    assert len(data) < 2048  # no anchors, no native handles
    again = pickle.loads(data)
    assert again.manifest == ds.manifest and len(again) == N
    assert again[10]["label"].item() == 100
    assert np.array_equal(again.anchors, ds.anchors)
    assert "records=300" in repr(again)


def test_memory_store_in_process(tmp_path):
    ds = dreamdb.Dataset.create("m", dreamdb.Schema().add_int("x"), store="memory://")
    ds.append_many({"x": [4, 5, 6]})
    m = DreamDBMapDataset(ds)
    assert [m[i]["x"].item() for i in range(3)] == [4, 5, 6]


def test_iterable_dataset_lists_anchors_without_reading_fields(store, monkeypatch):
    def no_scans(*args, **kwargs):
        raise AssertionError("listing anchors must not scan a field")

    monkeypatch.setattr(dreamdb.Dataset, "iter_batches", no_scans)
    ds = DreamDBDataset("train", store, block_size=64)  # lists anchors via iter_anchors
    monkeypatch.undo()
    assert len(ds) == N and [s["anchor"] for s in ds] == list(range(N))


@pytest.mark.parametrize("drop_last", [False, True])
def test_distributed_sampler_gives_ranks_equal_shares(store, drop_last):
    ds = DreamDBMapDataset(("train", store), fields=["label"])
    world, seen, sizes = 7, [], []  # 300 records: padding or drop_last needed
    for rank in range(world):
        sampler = torch.utils.data.DistributedSampler(ds, num_replicas=world, rank=rank,
                                                      shuffle=True, seed=3,
                                                      drop_last=drop_last)
        sampler.set_epoch(1)
        loader = torch.utils.data.DataLoader(ds, sampler=sampler, batch_size=32)
        got = [a for b in loader for a in b["anchor"].tolist()]
        labels = [v for b in loader for v in b["label"].tolist()]
        assert labels == [a * 10 for a in got]
        assert got == [int(ds.anchors[i]) for i in sampler]  # the sampler's order
        sizes.append(len(got))
        seen += got
    assert sizes == [N // world if drop_last else -(-N // world)] * world
    if drop_last:
        assert len(set(seen)) == len(seen)
    else:
        assert set(seen) == set(range(N))
