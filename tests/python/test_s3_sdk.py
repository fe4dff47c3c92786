# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""The Python SDK on s3:// against the local S3 server scripts/test.sh runs (SeaweedFS):
a representative pass over what tests/python checks on file:// — create, append, take,
scan, branch, merge, delete, vector search and index build, the PyTorch loader with
workers, verify and gc — on a fresh prefix per test (the `s3_store` fixture, conftest.py).
Reads are compared with what was written, exactly."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

import dreamdb

DIM = 8


def schema() -> dreamdb.Schema:
    return (dreamdb.Schema().add_int("label").add_string("tag").add_blob("b", required=False)
            .add_embedding("emb", DIM))


def vectors(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, DIM)).astype(np.float32)


def rows(start: int, n: int) -> dict:
    vecs = vectors(start + n)[start:]
    return {"label": np.arange(start, start + n) % 7,
            "tag": [f"t{i}" for i in range(start, start + n)],
            "b": [bytes([i % 256]) * (i % 50) if i % 3 else None for i in range(start, start + n)],
            "emb": vecs}


def test_s3_create_append_take_scan_roundtrip(s3_store: str):
    ds = dreamdb.Dataset.create("d", schema(), store=s3_store)
    h1 = ds.append_many(rows(0, 300), message="first")
    h2 = ds.append_many(rows(300, 200), message="second")
    assert ds.count() == 500 and ds.head == h2 != h1
    assert dreamdb.list_datasets(s3_store) == ["d"]

    again = dreamdb.Dataset.open("d", store=s3_store)
    table = again.to_table()
    want = rows(0, 500)
    assert table.column("anchor").to_pylist() == list(range(500))
    assert table.column("tag").to_pylist() == want["tag"]
    assert table.column("b").to_pylist() == want["b"]
    emb = np.stack(table.column("emb").to_numpy(zero_copy_only=False))
    assert np.array_equal(emb, want["emb"])

    picked = [499, 3, 250, 0]
    t = again.take(picked, fields=["label", "tag"])
    assert t.column("tag").to_pylist() == [f"t{i}" for i in picked]
    batches = list(again.iter_batches(fields=["label"], batch_size=64))
    assert sum(b.num_rows for b in batches) == 500
    old = dreamdb.Dataset.open_at("d", h1, store=s3_store)
    assert old.count() == 300 and old.read_only
    assert [e["message"] for e in again.history()][:2] == ["second", "first"]


def test_s3_branch_merge_delete(s3_store: str):
    main = dreamdb.Dataset.create("d", schema(), store=s3_store)
    main.append_many(rows(0, 100))
    side = main.create_branch("side")
    side.append_many(rows(100, 50))
    main.delete([1, 2, 3])
    head = main.merge("side", message="merge side")
    assert main.head == head and main.count() == 147
    assert main.last_commit["result"] == "merged"
    anchors = main.anchors()
    assert 2 not in set(anchors.tolist()) and 149 in set(anchors.tolist())
    assert [e["message"] for e in main.history(limit=1)] == ["merge side"]
    main.snapshot("v1")
    assert dreamdb.Dataset.open_at("d", "v1", store=s3_store).count() == 147


def test_s3_search_and_index_build(s3_store: str):
    ds = dreamdb.Dataset.create("d", schema(), store=s3_store)
    ds.append_many(rows(0, 400))
    vecs = rows(0, 400)["emb"]
    q = vecs[17]
    exact = ds.search("emb", q, k=5)
    assert exact.column("anchor").to_pylist()[0] == 17
    st = ds.build_index("emb", cells=8, bits=4, seed=1)
    assert st["built"] and st["entries"] == 400
    hits = ds.search("emb", q, k=5, nprobe=8)
    assert hits.column("anchor").to_pylist()[0] == 17
    assert ds.index_status("emb")["built"]


def test_s3_torch_loader_with_workers(s3_store: str):
    import torch  # Debian python3-torch, installed by scripts/bootstrap.sh
    from dreamdb.torch import DreamDBDataset

    ds = dreamdb.Dataset.create("d", schema(), store=s3_store)
    ds.append_many(rows(0, 256))
    loader = torch.utils.data.DataLoader(
        DreamDBDataset("d", s3_store, fields=["label"], shuffle_seed=3), num_workers=2,
        batch_size=32, collate_fn=lambda b: b)
    seen = [int(s["anchor"]) for batch in loader for s in batch]
    assert sorted(seen) == list(range(256))


def test_s3_verify_and_gc(s3_store: str, dreamdb_bin: str):
    store = dreamdb.Store.open(s3_store, create=True)
    main = dreamdb.Dataset.create("d", schema(), store=store)
    main.append_many(rows(0, 50))
    gone = main.create_branch("gone")
    gone.append_many(rows(50, 30))
    report = dreamdb.verify(store)
    assert report["problems"] == [] and report["refs"] == 2 and report["objects"] > 0
    dry = store.gc(grace="0", no_writers_running=True, dry_run=True)
    assert dry["dry_run"] and dry["deleted_objects"] == 0  # everything is reachable
    # Drop the branch (the CLI, through the same server): its commits become garbage.
    subprocess.run([dreamdb_bin, "--store", s3_store, "ref", "delete", "d/branches/gone",
                    "--expect", gone.head], check=True, capture_output=True)
    r = store.gc(grace="0", no_writers_running=True)
    assert r["deleted_objects"] > 0 and r["deleted_bytes"] > 0
    assert dreamdb.verify(store)["problems"] == []
    again = dreamdb.Dataset.open("d", store=s3_store)
    assert again.count() == 50
    assert again.to_table().column("tag").to_pylist() == rows(0, 50)["tag"]


def test_s3_errors_keep_their_class(s3_store: str):
    with pytest.raises(dreamdb.NotFoundError):
        dreamdb.Dataset.open("missing", store=s3_store)
    ds = dreamdb.Dataset.create("d", schema(), store=s3_store)
    with pytest.raises(dreamdb.AlreadyExistsError):
        dreamdb.Dataset.create("d", schema(), store=s3_store)
    ds.append_many(rows(0, 5))
    with pytest.raises(dreamdb.NotFoundError):
        ds.take([99])
