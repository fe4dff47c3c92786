# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""dreamdb.jobs.index_train / index_shard / commit (spec/14-semantics.md §19.10): a sharded
index build publishes the index object of Dataset.build_index with the same options, and
searches agree; shards from Slurm variables; reruns change nothing; a missing shard is
named."""

from __future__ import annotations

import numpy as np
import pytest

import dreamdb
from dreamdb import jobs

DIM = 8


@pytest.fixture
def store(tmp_path):
    uri = "file://" + str(tmp_path / "store")
    ds = dreamdb.Dataset.create("d", dreamdb.Schema().add_embedding("emb", DIM), store=uri)
    rng = np.random.default_rng(1)
    centers = rng.normal(0, 3, (8, DIM)).astype(np.float32)
    for _ in range(2):
        v = centers[rng.integers(0, 8, 500)] + rng.normal(0, 0.5, (500, DIM)).astype(np.float32)
        ds.append_many({"emb": list(v.astype(np.float32))})
    return uri


def test_sharded_index_build_equals_build_index(store, monkeypatch):
    one = dreamdb.Dataset.open("d", store=store).create_branch("one")
    want = one.build_index("emb", algorithm="ivf", quantizer="pq4", seed=3)
    t = jobs.index_train(store, "d", job="ix", field="emb", of=2, algorithm="ivf",
                         quantizer="pq4", seed=3)
    assert t["of"] == 2 and not t["already_done"] and t["cells"] == want["cells"]
    assert jobs.index_shard(store, "d", job="ix", shard=1, of=2)["end"] is None
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "0")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "0")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    s0 = jobs.index_shard(store, "d", job="ix")
    assert s0["start"] == 0 and s0["end"] == 500
    c = jobs.commit(store, "d", job="ix")
    assert c["index"] == want["index"] and c["field"] == "emb"
    main = dreamdb.Dataset.open("d", store=store)
    q = np.ones((3, DIM), dtype=np.float32)
    a, b = main.search("emb", q, k=5), one.search("emb", q, k=5)
    assert a.column("anchor").to_pylist() == b.column("anchor").to_pylist()
    again = jobs.index_commit(store, "d", job="ix")
    assert again["already_done"] and again["index"] == want["index"]
    assert jobs.index_shard(store, "d", job="ix", shard=0, of=2)["already_done"]
    assert jobs.status(store, "d", job="ix")["trained"]


def test_missing_shard_is_named(store):
    jobs.index_train(store, "d", job="gap", field="emb", of=3)
    jobs.index_shard(store, "d", job="gap", shard=0, of=3)
    with pytest.raises(dreamdb.NotFoundError, match="shards 1, 2 of 3 have not finished"):
        jobs.index_commit(store, "d", job="gap")
    with pytest.raises(dreamdb.NotFoundError, match="train stage"):
        jobs.index_shard(store, "d", job="nothing", shard=0, of=3)
