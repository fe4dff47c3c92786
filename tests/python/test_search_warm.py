# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Search through a warm handle (spec/21 §7.10): Dataset.search, build_index,
index_status, merge and compact are methods of the bound handle and use its decoded index
state; a repeated query does no storage I/O; the module functions remain as wrappers with
the same answers; results stay those of brute force after deletes, appends and merges; a
graph build calibrates its beam width on a held-out sample (spec/21 §8.5).
"""

from __future__ import annotations

import uuid

import numpy as np
import pytest

import dreamdb
from dreamdb import _core

DIM = 16


def make(n: int = 4000, seed: int = 3, store: str = "") -> tuple["dreamdb.Dataset", np.ndarray]:
    schema = dreamdb.Schema().add_embedding("emb", DIM).add_int("label")
    ds = dreamdb.Dataset.create("w", schema, store=store or f"memory://{uuid.uuid4().hex}")
    vecs = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    ds.append_many({"emb": vecs, "label": np.arange(n) % 7})
    return ds, vecs


def anchors_of(table) -> list:
    return table.column("anchor").to_pylist()


@pytest.mark.parametrize("algorithm", ["ivf", "graph"])
def test_repeated_search_on_a_warm_handle_does_no_storage_io(algorithm: str) -> None:
    ds, vecs = make()
    ds.build_index("emb", algorithm=algorithm, cells=16 if algorithm == "ivf" else None)
    q = vecs[17] + 0.01
    first = anchors_of(ds.search("emb", q, k=10))
    before = ds.read_stats()
    for _ in range(3):
        assert anchors_of(ds.search("emb", q, k=10)) == first
    after = ds.read_stats()
    assert after["requests"] == before["requests"]
    assert after["bytes_fetched"] == before["bytes_fetched"]
    assert after["cache_hits"] > before["cache_hits"]


def test_search_index_merge_are_methods_of_the_handle() -> None:
    ds, vecs = make(n=2000)
    for name in ("search", "build_index", "index_status", "merge", "compact"):
        assert callable(getattr(ds._h, name)), name
    st = ds._h.build_index("emb", cells=8)
    ds._h.refresh()
    assert st["head"] == ds.head and st["built"]
    assert ds._h.index_status("emb")["cells"] == 8
    q = np.ascontiguousarray(vecs[:3])
    _, a1, s1, _, info = ds._h.search("emb", q, 5)
    assert info["used_index"]
    # The module functions are wrappers over the same operations (a handle opened by name).
    _, a2, s2, _, _ = _core.search(ds._h.store, ds.name, ds.head, "emb", q, 5, 0, [], [], False,
                                   True, 0, 2**64 - 1)
    assert a1.tolist() == a2.tolist() and np.allclose(s1, s2)
    assert _core.index_status(ds._h.store, ds.name, ds.head, "emb")["cells"] == 8


def test_module_search_keeps_no_handle_cache() -> None:
    # The module function opens the version for the call: no per-process cache of handles.
    import dreamdb._core as core

    assert not hasattr(core, "_handle_cache")
    ds, vecs = make(n=500)
    ds.build_index("emb", cells=4)
    got = _core.search(ds._h.store, ds.name, ds.head, "emb", np.ascontiguousarray(vecs[:1]), 3,
                       0, [], [], False, True, 0, 2**64 - 1)
    assert len(got[1]) == 3


def brute_top(ds, q: np.ndarray, k: int) -> list:
    return anchors_of(ds.search("emb", q, k=k, exact=True))


def test_warm_searches_after_deletes_appends_and_merges_match_brute_force() -> None:
    ds, vecs = make(n=3000, seed=9)
    ds.build_index("emb", cells=16)
    queries = vecs[:40] + 0.001
    for q in queries[:5]:  # warm the cells at this version
        ds.search("emb", q, k=3, nprobe=16)
    doomed = anchors_of(ds.search("emb", queries[:40], k=1, exact=True))
    ds.delete(doomed)
    side = ds.create_branch("side")
    side.append_many({"emb": queries[:20] * 1.0001, "label": np.ones(20, dtype=np.int64)})
    ds.append_many({"emb": queries[20:30] * 0.9999, "label": np.ones(10, dtype=np.int64)})
    ds.merge(side, policy="theirs")  # both sides appended: theirs replaces 10 values
    for q in queries:
        assert anchors_of(ds.search("emb", q, k=3, nprobe=16)) == brute_top(ds, q, 3)
        assert anchors_of(ds.search("emb", q, k=3, nprobe=16, where="label == 1")) == \
            anchors_of(ds.search("emb", q, k=3, exact=True, where="label == 1"))


def test_graph_build_calibrates_its_beam_width_on_a_held_out_sample() -> None:
    # spec/21 §8.5: the sample is held out of the graph and stored as its tail, so it
    # measures queries the graph has not seen; default searches use the calibrated ef.
    schema = dreamdb.Schema().add_embedding("emb", 32)
    ds = dreamdb.Dataset.create("g", schema, store=f"memory://{uuid.uuid4().hex}")
    vecs = np.random.default_rng(5).standard_normal((6000, 32)).astype(np.float32)
    ds.append_many({"emb": vecs})
    st = ds.build_index("emb", algorithm="graph")
    cal = st["calibration"]
    assert cal is not None and cal["queries"] >= 50
    assert st["tail"] == cal["queries"] and st["nodes"] + st["tail"] == 6000
    assert st["ef"] == cal["curve"][[s for s, _ in cal["curve"]].index(st["ef"])][0]
    queries = np.random.default_rng(77).standard_normal((100, 32)).astype(np.float32)
    got = ds.search("emb", queries, k=10)
    want = ds.search("emb", queries, k=10, exact=True)
    gq, ga = got.column("query").to_numpy(), got.column("anchor").to_numpy()
    wq, wa = want.column("query").to_numpy(), want.column("anchor").to_numpy()
    hits = sum(len(set(ga[gq == i]) & set(wa[wq == i])) for i in range(100))
    assert hits / 1000 >= 0.95
    assert ds.verify()["problems"] == []
