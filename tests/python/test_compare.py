# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""dreamdb.compare_refs: the wide pyarrow table (outer join in anchor order, zero-copy),
only_differing / range / limit, the summary statistics, errors, the GIL."""

import threading
import time
import uuid

import numpy as np
import pyarrow as pa
import pytest

import dreamdb
from dreamdb import _core

N = 200


@pytest.fixture
def mem() -> str:
    return f"memory://{uuid.uuid4().hex}"


@pytest.fixture
def sweep(mem):
    """main: N records; snapshot v1; branches run-a / run-b with a "pred" layer each;
    run-b also changes the scores of anchors 0..9, deletes anchor 5 and adds anchor N."""
    s = (dreamdb.Schema().add_int("label").add_float("score", required=False)
         .add_string("caption", required=False).add_embedding("emb", 3, required=False))
    ds = dreamdb.Dataset.create("d", s, store=mem)
    emb = np.tile(np.array([[1, 0, 0]], dtype=np.float32), (N, 1))
    ds.append_many({"label": np.arange(N) % 2, "score": np.arange(N, dtype=np.float64),
                    "caption": [f"c{i}" for i in range(N)], "emb": emb})
    ds.snapshot("v1")
    a = ds.create_branch("run-a")
    b = ds.create_branch("run-b")
    a.add_scalar_layer("pred", np.arange(N), np.full(N, 0.5))
    b.add_scalar_layer("pred", np.arange(N), np.linspace(0, 1, N))
    b.append_many({"score": np.arange(10, dtype=np.float64) + 1}, anchors=np.arange(10))
    b.delete([5])
    b.append_many({"label": [1], "score": [7.0]}, anchors=[N])
    b.add_embedding_layer("emb", [0, 1], np.array([[0, 1, 0], [-1, 0, 0]], dtype=np.float32))
    return ds


def test_wide_table_is_an_outer_join_in_anchor_order(sweep):
    res = dreamdb.compare_refs(sweep, ["v1", "run-b"], ["score", "caption"], batch_size=64)
    t = res.table
    assert isinstance(t, pa.Table)
    assert t.column_names == ["anchor", "score@v1", "score@run-b", "caption@v1", "caption@run-b"]
    assert t.schema.field("anchor").type == pa.uint64()
    assert t.schema.field("score@run-b").type == pa.float64()
    assert t.column("anchor").to_pylist() == list(range(N + 1))
    rows = t.to_pylist()
    assert rows[0] == {"anchor": 0, "score@v1": 0.0, "score@run-b": 1.0,
                       "caption@v1": "c0", "caption@run-b": "c0"}
    assert rows[5]["score@run-b"] is None and rows[5]["score@v1"] == 5.0
    assert rows[N]["score@v1"] is None and rows[N]["caption@run-b"] is None
    assert rows[N]["score@run-b"] == 7.0


def test_summary_statistics(sweep):
    res = dreamdb.compare_refs("d", ["v1", "run-b"], ["score", "label", "emb", "caption"],
                               store=sweep.store)
    s = res.summary
    assert s["refs"] == ["v1", "run-b"] and s["complete"] is True
    assert s["present"] == [N, N] and s["anchors"] == N + 1
    assert s["manifests"][0] == dreamdb.Dataset.open_at("d", "v1", store=sweep.store).head
    score = res.stats("score")[0]
    assert (score["baseline"], score["ref"]) == ("v1", "run-b")
    assert (score["both"], score["only_baseline"], score["only_ref"]) == (N - 1, 1, 1)
    assert score["differing"] == 9  # 0..9 changed, 5 deleted
    assert score["mean_diff"] == pytest.approx(9 / (N - 1))
    assert score["median_diff"] == 0.0 and score["median_approximate"] is False
    assert score["mean_abs_diff"] == pytest.approx(9 / (N - 1))
    assert score["agreement"] == pytest.approx((N - 10) / (N - 1))
    label = res.stats("label")[0]
    assert label["differing"] == 0 and label["mean_diff"] == 0.0
    emb = res.stats("emb")[0]
    assert emb["min_cosine"] == pytest.approx(-1.0)
    assert emb["mean_cosine"] == pytest.approx((N - 3 + 0 - 1) / (N - 1))
    caption = res.stats("caption")[0]
    assert caption["agreement"] == 1.0 and caption["mean_diff"] is None
    assert caption["mean_cosine"] is None and caption["numeric_count"] is None
    # differing rows: anchors 0..9 (score; 0, 1 also emb), 5 removed, N added.
    assert s["differing"] == 11 and s["emitted"] == N + 1
    st = res.summary_table()
    assert st.num_rows == 4 and st.column("field").to_pylist() == [
        "score", "label", "emb", "caption"]
    text = repr(res)
    assert "score (float64) run-b vs v1" in text and "cosine mean" in text


def test_three_refs_each_against_the_baseline(sweep):
    res = dreamdb.compare_refs(sweep, ["run-a", "run-b", "v1"], "pred")
    assert res.table.column_names == ["anchor", "pred@run-a", "pred@run-b", "pred@v1"]
    assert res.table.column("pred@v1").null_count == N + 1
    b, v1 = res.stats("pred", "run-b")[0], res.stats("pred", "v1")[0]
    assert b["both"] == N - 1 and b["differing"] == N - 1  # linspace(0, 1, 200) misses 0.5
    assert b["mean_diff"] == pytest.approx(
        float(np.mean(np.delete(np.linspace(0, 1, N), 5) - 0.5)))
    assert v1["both"] == 0 and v1["only_baseline"] == N and v1["agreement"] is None


def test_only_differing_range_and_limit(sweep):
    res = dreamdb.compare_refs(sweep, ["v1", "run-b"], ["score"], only_differing=True)
    assert res.table.column("anchor").to_pylist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, N]
    res = dreamdb.compare_refs(sweep, ["v1", "run-b"], ["score"], only_differing=True,
                               start=3, end=8)
    assert res.table.column("anchor").to_pylist() == [3, 4, 5, 6, 7]
    assert res.summary["anchors"] == 5
    res = dreamdb.compare_refs(sweep, ["v1", "run-b"], ["score"], limit=3, batch_size=2)
    assert res.table.num_rows == 3 and res.summary["anchors"] == N + 1
    empty = dreamdb.compare_refs(sweep, ["v1", "main"], ["score"], only_differing=True)
    assert empty.table.num_rows == 0
    assert empty.table.column_names == ["anchor", "score@v1", "score@main"]


def test_approximate_median_is_flagged(sweep):
    res = dreamdb.compare_refs(sweep, ["run-a", "run-b"], ["pred"], median_sample=16)
    st = res.stats("pred")[0]
    assert st["median_approximate"] is True and st["numeric_count"] == N - 1
    assert "(approximate)" in repr(res)


def test_table_buffers_are_shared_not_copied(sweep):
    res = dreamdb.compare_refs(sweep, ["v1", "run-b"], ["score", "emb"])
    exported = {(b["field"], b["buffer"]): b for b in _core._last_exported_buffers()}
    chunk = res.table.column("score@run-b").chunks[-1]
    assert chunk.buffers()[1].address == exported[("score@run-b", "values")]["address"]
    emb = res.table.column("emb@v1").chunks[-1]
    assert emb.values.buffers()[1].address == exported[("emb@v1", "values")]["address"]
    assert not any(b["copied"] for b in exported.values())


def test_errors(sweep):
    with pytest.raises(dreamdb.InvalidArgumentError, match="at least 2 refs"):
        dreamdb.compare_refs(sweep, ["v1"], ["score"])
    with pytest.raises(dreamdb.NotFoundError, match="'nope'"):
        dreamdb.compare_refs(sweep, ["v1", "nope"], ["score"])
    with pytest.raises(KeyError):  # NotFoundError is also a KeyError
        dreamdb.compare_refs(sweep, ["v1", "nope"], ["score"])
    with pytest.raises(dreamdb.InvalidArgumentError, match="unknown field 'scroe'"):
        dreamdb.compare_refs(sweep, ["v1", "run-a"], ["scroe"])
    with pytest.raises(dreamdb.InvalidArgumentError, match="given twice"):
        dreamdb.compare_refs(sweep, ["v1", "v1"], ["score"])
    other = sweep.create_branch("other")
    other.add_scalar_layer("pred", [0], ["text"])
    with pytest.raises(dreamdb.InvalidArgumentError, match="has type float64 at 'run-a' but "
                       "string at 'other'"):
        dreamdb.compare_refs(sweep, ["run-a", "other"], ["pred"])
    with pytest.raises(dreamdb.InvalidArgumentError, match="store="):
        dreamdb.compare_refs("d", ["v1", "main"])
    with pytest.raises(dreamdb.NotFoundError):
        dreamdb.compare_refs("nodata", ["v1", "main"], store=sweep.store)


def test_gil_is_released_while_comparing(tmp_path):
    # A bigger file:// dataset: another Python thread keeps running during the comparison.
    store = str(tmp_path / "store")
    n = 50_000
    ds = dreamdb.Dataset.create("big", dreamdb.Schema().add_float("x"), store=store)
    ds.append_many({"x": np.arange(n, dtype=np.float64)})
    ds.snapshot("v1")
    b = ds.create_branch("b")
    b.append_many({"x": np.arange(n, dtype=np.float64) * 2}, anchors=np.arange(n))
    ticks = []
    done = threading.Event()

    def ticker():
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=ticker)
    t.start()
    try:
        res = dreamdb.compare_refs("big", ["v1", "b"], ["x"], store=store, batch_size=1024)
    finally:
        done.set()
        t.join()
    assert res.table.num_rows == n
    assert res.stats("x")[0]["mean_diff"] == pytest.approx((n - 1) / 2)
    assert res.stats("x")[0]["median_diff"] == pytest.approx((n - 1) / 2)
    assert len(ticks) > 3
