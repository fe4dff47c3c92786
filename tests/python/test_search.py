# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Dataset.search / build_index / index_status (spec/21-spatial-index.md): results as a
pyarrow Table, 1-D and 2-D queries, exact vs indexed agreement, filters and projection,
appends after a build, old versions, deletes, and errors mapped to the exception classes.
"""

from __future__ import annotations

import threading
import uuid

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import dreamdb
from dreamdb.errors import InvalidArgumentError, PermissionDeniedError

DIM = 12


@pytest.fixture
def ds() -> "dreamdb.Dataset":
    schema = dreamdb.Schema().add_embedding("emb", DIM).add_int("label").add_string(
        "tag", required=False)
    d = dreamdb.Dataset.create("vecs", schema, store=f"memory://{uuid.uuid4().hex}")
    rng = np.random.default_rng(4)
    centers = rng.normal(0, 3, size=(6, DIM)).astype(np.float32)
    vecs = (centers[np.arange(600) % 6] + rng.normal(0, 0.4, size=(600, DIM))).astype(np.float32)
    d.append_many({"emb": vecs, "label": np.arange(600) % 5,
                   "tag": [f"t{i}" for i in range(600)]})
    d.vecs = vecs  # type: ignore[attr-defined]
    return d


def brute(vecs: np.ndarray, q: np.ndarray, k: int) -> list[int]:
    sims = (vecs @ q) / (np.linalg.norm(vecs, axis=1) * np.linalg.norm(q))
    return list(np.argsort(-sims, kind="stable")[:k])


def test_exact_search_returns_a_table(ds) -> None:
    q = ds.vecs[10]
    t = ds.search("emb", q, k=5)
    assert isinstance(t, pa.Table)
    assert t.column_names == ["query", "anchor", "score"]
    assert t.column("anchor").to_pylist() == brute(ds.vecs, q, 5)
    assert t.column("query").to_pylist() == [0] * 5
    assert abs(t.column("score")[0].as_py() - 1.0) < 1e-5
    assert ds.index_status("emb")["built"] is False


def test_build_index_and_search_batches(ds) -> None:
    st = ds.build_index("emb", cells=10, bits=4, seed=1)
    assert st["built"] and st["cells"] == 10 and st["entries"] == 600
    assert ds.index_status("emb")["index"] == st["index"]
    qs = ds.vecs[[3, 77, 300]]
    t = ds.search("emb", qs, k=6, nprobe=10, fields=["label", "tag"])
    assert t.column_names == ["query", "anchor", "score", "label", "tag"]
    assert t.num_rows == 18
    for qi, a in enumerate([3, 77, 300]):
        got = t.filter(pc.equal(t.column("query"), qi)).column("anchor").to_pylist()
        assert got == brute(ds.vecs, ds.vecs[a], 6)
    assert t.column("tag").to_pylist() == [f"t{a}" for a in t.column("anchor").to_pylist()]
    # Lists work too; a few cells probed keep good recall.
    t2 = ds.search("emb", [float(x) for x in ds.vecs[5]], k=10, nprobe=4)
    truth = set(brute(ds.vecs, ds.vecs[5], 10))
    assert len(truth & set(t2.column("anchor").to_pylist())) >= 8


def test_filters_appends_versions_deletes(ds) -> None:
    ds.build_index("emb", cells=8)
    t = ds.search("emb", ds.vecs[0], k=5, where=["label in (1, 2)", "tag != 't1'"],
                  fields="label")
    assert t.num_rows == 5
    assert set(t.column("label").to_pylist()) <= {1, 2}
    assert 1 not in t.column("anchor").to_pylist()
    t = ds.search("emb", ds.vecs[0], k=5, start=100, end=200)
    assert all(100 <= a < 200 for a in t.column("anchor").to_pylist())
    old_head = ds.head
    new = ds.vecs[42].copy()
    new[0] += 1.5
    ds.append_many({"emb": new.reshape(1, -1), "label": [9]})
    assert ds.index_status("emb")["entries"] == 601
    assert ds.search("emb", new, k=1).column("anchor").to_pylist() == [600]
    old = dreamdb.Dataset.open_at("vecs", old_head, store=ds.store)
    old_top = old.search("emb", new, k=1).column("anchor").to_pylist()[0]
    assert old_top != 600
    ds.delete([600, old_top])
    got = ds.search("emb", new, k=10).column("anchor").to_pylist()
    assert 600 not in got and old_top not in got
    assert ds.index_status("emb")["stale"] == 2
    with pytest.raises(PermissionDeniedError):
        old.build_index("emb")


def test_errors(ds) -> None:
    q = ds.vecs[0]
    with pytest.raises(InvalidArgumentError, match="dimension 3"):
        ds.search("emb", [1.0, 2.0, 3.0])
    with pytest.raises(InvalidArgumentError, match="unknown field 'nope'"):
        ds.search("nope", q)
    with pytest.raises(InvalidArgumentError, match="not an embedding"):
        ds.search("label", q)
    with pytest.raises(InvalidArgumentError):
        ds.search("emb", q, k=0)
    bad = q.copy()
    bad[2] = np.nan
    with pytest.raises(InvalidArgumentError, match="NaN"):
        ds.search("emb", bad)
    with pytest.raises(ValueError):  # InvalidArgumentError is a ValueError
        ds.search("emb", q, where="label ~ 2")
    with pytest.raises(InvalidArgumentError):
        ds.search("emb", np.zeros((2, 2, DIM)))
    with pytest.raises(InvalidArgumentError):
        ds.build_index("emb", bits=9)


def test_search_releases_the_gil(ds) -> None:
    ds.build_index("emb", cells=8)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for i in range(20):
                ds.search("emb", ds.vecs[i], k=3)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors


def clustered(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, size=(8, DIM)).astype(np.float32)
    return (centers[np.arange(n) % 8] + rng.normal(0, 0.5, size=(n, DIM))).astype(np.float32)


def recall(d, vecs: np.ndarray, anchors: list[int], k: int = 10) -> float:
    qs = vecs[anchors]
    got = d.search("emb", qs, k=k)
    hits = 0
    for i, a in enumerate(anchors):
        rows = pc.equal(got.column("query"), i)
        found = set(got.filter(rows).column("anchor").to_pylist())
        hits += len(found & set(brute(vecs, vecs[a], k)))
    return hits / (k * len(anchors))


@pytest.mark.parametrize("algorithm", ["ivf", "imi", "lsh"])
def test_each_algorithm_via_the_schema_option(algorithm: str) -> None:
    schema = dreamdb.Schema().add_embedding("emb", DIM, index=algorithm, bits=4).add_int("label")
    d = dreamdb.Dataset.create("p", schema, store=f"memory://{uuid.uuid4().hex}")
    vecs = clustered(2000, 11)
    d.append_many({"emb": vecs, "label": np.arange(2000)})
    st = d.index_status("emb")
    assert st["built"] is False and st["algorithm"] == algorithm
    st = d.build_index("emb", seed=2)
    assert st["built"] and st["algorithm"] == algorithm and st["entries"] == 2000
    assert d.index_status("emb")["algorithm"] == algorithm
    assert recall(d, vecs, list(range(0, 2000, 97))) >= 0.9
    # Appends after the build are assigned to the same index.
    extra = clustered(10, 12)
    d.append_many({"emb": extra, "label": np.arange(10)})
    assert d.index_status("emb")["entries"] == 2010
    t = d.search("emb", extra[3], k=1)
    assert t.column("anchor").to_pylist() == [2003]


@pytest.mark.parametrize("algorithm", ["imi", "lsh", "ivf"])
def test_each_algorithm_via_build_index(ds, algorithm: str) -> None:
    st = ds.build_index("emb", algorithm=algorithm, bits=4, seed=1)
    assert st["algorithm"] == algorithm and st["entries"] == 600
    assert st["nprobe"] in [s for s, _ in st["calibration"]["curve"]]
    assert recall(ds, ds.vecs, [3, 77, 150, 300, 451, 599]) >= 0.9


def test_add_embedding_index_options() -> None:
    s = dreamdb.Schema().add_embedding("e", 4, index="imi", bits=2, metric="l2", cells=64,
                                       required=False)
    d = dreamdb.Dataset.create("o", s, store=f"memory://{uuid.uuid4().hex}")
    st = d.index_status("e")
    assert (st["algorithm"], st["metric"], st["bits"], st["cells"]) == ("imi", "l2", 2, 64)
    plain = dreamdb.Schema().add_embedding("e", 4)
    d2 = dreamdb.Dataset.create("o2", plain, store=f"memory://{uuid.uuid4().hex}")
    assert d2.index_status("e")["algorithm"] == ""
    with pytest.raises(InvalidArgumentError, match="hnsw"):
        dreamdb.Schema().add_embedding("e", 4, index="hnsw")
    with pytest.raises(InvalidArgumentError, match="bits"):
        dreamdb.Schema().add_embedding("e", 4, index="ivf", bits=9)
    with pytest.raises(InvalidArgumentError, match="metric"):
        dreamdb.Schema().add_embedding("e", 4, index="lsh", metric="hamming")
    with pytest.raises(InvalidArgumentError):
        ds_bad = dreamdb.Dataset.create("o3", plain, store=f"memory://{uuid.uuid4().hex}")
        ds_bad.append_many({"e": np.ones((3, 4), np.float32)})
        ds_bad.build_index("e", algorithm="hnsw")
