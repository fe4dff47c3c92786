# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Graph indexes and the quantizer choice from Python (spec/21-spatial-index.md §2, §4.5,
§7.8, §8.4): build_index(algorithm="graph", degree=), search(ef=), index_status's nodes
and tail, build_index(quantizer="pq4"), Schema.add_embedding(index="graph" | quantizer=),
and their errors.
"""

from __future__ import annotations

import uuid

import numpy as np
import pytest

import dreamdb
from dreamdb.errors import InvalidArgumentError

DIM = 12


@pytest.fixture
def ds() -> "dreamdb.Dataset":
    schema = dreamdb.Schema().add_embedding("emb", DIM).add_int("label")
    d = dreamdb.Dataset.create("vecs", schema, store=f"memory://{uuid.uuid4().hex}")
    rng = np.random.default_rng(7)
    centers = rng.normal(0, 3, size=(6, DIM)).astype(np.float32)
    vecs = (centers[np.arange(600) % 6] + rng.normal(0, 0.4, size=(600, DIM))).astype(np.float32)
    d.append_many({"emb": vecs, "label": np.arange(600) % 5})
    d.vecs = vecs  # type: ignore[attr-defined]
    return d


def brute(vecs: np.ndarray, q: np.ndarray, k: int) -> set[int]:
    sims = (vecs @ q) / (np.linalg.norm(vecs, axis=1) * np.linalg.norm(q))
    return set(int(i) for i in np.argsort(-sims, kind="stable")[:k])


def test_graph_build_search_append(ds) -> None:
    st = ds.build_index("emb", algorithm="graph", degree=12, seed=2)
    assert st["built"] and st["algorithm"] == "graph"
    assert (st["nodes"], st["tail"], st["degree"], st["cells"]) == (600, 0, 12, 1)
    assert st["quantizer"] == "rabitq"
    hits = 0
    picks = [3, 77, 150, 300, 451, 599]
    for a in picks:
        t = ds.search("emb", ds.vecs[a], k=10, ef=100)
        got = t.column("anchor").to_pylist()
        assert got[0] == a
        hits += len(brute(ds.vecs, ds.vecs[a], 10) & set(got))
    assert hits / (10 * len(picks)) >= 0.9
    t = ds.search("emb", ds.vecs[[5, 6]], k=4, where="label == 2", fields=["label"])
    assert t.num_rows == 8 and set(t.column("label").to_pylist()) == {2}
    extra = (ds.vecs[9] + 0.01).reshape(1, DIM)
    ds.append_many({"emb": extra, "label": np.array([4])})
    st = ds.index_status("emb")
    assert (st["nodes"], st["tail"], st["entries"]) == (600, 1, 601)
    assert ds.search("emb", extra[0], k=1).column("anchor").to_pylist() == [600]
    with pytest.raises(InvalidArgumentError, match="ef"):
        ds.search("emb", ds.vecs[0], ef=0)


def test_graph_and_quantizer_errors(ds) -> None:
    with pytest.raises(InvalidArgumentError, match="pq4"):
        ds.build_index("emb", algorithm="graph", quantizer="pq4")
    with pytest.raises(InvalidArgumentError, match="degree"):
        ds.build_index("emb", algorithm="graph", degree=1)
    with pytest.raises(InvalidArgumentError, match="opq"):
        ds.build_index("emb", quantizer="opq")
    with pytest.raises(InvalidArgumentError, match="pq4"):
        dreamdb.Schema().add_embedding("e", 4, index="graph", quantizer="pq4")


def test_pq4_build_and_schema(ds) -> None:
    st = ds.build_index("emb", cells=4, quantizer="pq4")
    assert st["quantizer"] == "pq4" and st["algorithm"] == "ivf" and st["entries"] == 600
    t = ds.search("emb", ds.vecs[42], k=3, nprobe=4)
    assert t.column("anchor").to_pylist()[0] == 42
    s = dreamdb.Schema().add_embedding("e", 8, index="ivf", quantizer="pq4")
    d = dreamdb.Dataset.create("p", s, store=f"memory://{uuid.uuid4().hex}")
    assert d.index_status("e")["quantizer"] == "pq4"
    g = dreamdb.Schema().add_embedding("e", 8, index="graph")
    d2 = dreamdb.Dataset.create("g", g, store=f"memory://{uuid.uuid4().hex}")
    assert d2.index_status("e")["algorithm"] == "graph"
