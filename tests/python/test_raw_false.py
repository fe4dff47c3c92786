# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Embedding fields declared with ``"index": {"raw": false}`` (spec/21-spatial-index.md
§2.1): values are stored 8-bit quantized (spec/12-segments.md §9). Arrow and NumPy reads,
take, search (exact and indexed) and build_index all see the reconstructions, within the
spec's error bound; NaN is refused naming the row; the schema round-trips ``raw``.
"""

from __future__ import annotations

import json
import uuid

import numpy as np
import pyarrow as pa
import pytest

import dreamdb
from dreamdb.errors import InvalidArgumentError

DIM = 16
N = 800


def schema(raw: bool) -> "dreamdb.Schema":
    index = {"algorithm": "ivf", "metric": "cosine"}
    if not raw:
        index["raw"] = False
    return dreamdb.Schema.from_json(json.dumps({"fields": [
        {"name": "emb", "type": "embedding", "dim": DIM, "index": index},
        {"name": "label", "type": "int64"}]}))


def vectors(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(99).normal(0, 3, size=(8, DIM)).astype(np.float32)
    return (centers[rng.integers(0, 8, n)] + rng.normal(0, 1, size=(n, DIM))).astype(np.float32)


def make(raw: bool, vecs: np.ndarray) -> "dreamdb.Dataset":
    d = dreamdb.Dataset.create("v", schema(raw), store=f"memory://{uuid.uuid4().hex}")
    d.append_many({"emb": vecs, "label": np.arange(len(vecs))})
    return d


def bound(x: np.ndarray) -> np.ndarray:
    """spec/12-segments.md §9.2, per row: (max - min) / 510 + 2^-22 max(|min|, |max|)."""
    lo = x.min(axis=1).astype(np.float64)
    hi = x.max(axis=1).astype(np.float64)
    return (hi - lo) / 510 + np.ldexp(np.maximum(np.abs(lo), np.abs(hi)), -22)


def as_matrix(col: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(col.to_pylist(), dtype=np.float32)


def test_schema_round_trips_raw_false() -> None:
    s = schema(False)
    assert json.loads(s.to_json())["fields"][0]["index"]["raw"] is False
    assert "raw" not in json.loads(schema(True).to_json())["fields"][0]["index"]


def test_arrow_and_numpy_reads_are_reconstructions_within_the_bound() -> None:
    vecs = vectors(N, 1)
    d = make(False, vecs)
    t = d.to_table(["emb", "label"])
    assert t.num_rows == N
    assert pa.types.is_fixed_size_list(t.schema.field("emb").type)
    got = as_matrix(t.column("emb"))
    labels = t.column("label").to_numpy()
    x = vecs[labels]
    err = np.abs(got.astype(np.float64) - x)
    assert (err <= bound(x)[:, None]).all()
    assert (err > 0).any()  # lossy: the float32 copy is not stored
    # Row minimum and maximum are exact.
    assert (got.min(axis=1) == x.min(axis=1)).all() and (got.max(axis=1) == x.max(axis=1)).all()
    # Take (ranged reads) agrees with the scan.
    picks = [0, 5, 401, N - 1]
    tk = d.take(picks, ["emb"])
    np.testing.assert_array_equal(as_matrix(tk.column("emb")), got[np.searchsorted(labels, picks)])
    assert d.verify()["problems"] == []


def test_nan_is_refused_naming_the_row() -> None:
    vecs = vectors(10, 2)
    vecs[6, 3] = np.nan
    d = dreamdb.Dataset.create("v", schema(False), store=f"memory://{uuid.uuid4().hex}")
    with pytest.raises(InvalidArgumentError, match="row 6"):
        d.append_many({"emb": vecs, "label": np.arange(10)})
    assert d.count() == 0


def recall(table: pa.Table, truth: list[set[int]]) -> float:
    hits = 0
    for q, want in enumerate(truth):
        got = [a for qq, a in zip(table.column("query").to_pylist(),
                                   table.column("anchor").to_pylist()) if qq == q]
        hits += len(want & set(got))
    return hits / sum(len(t) for t in truth)


def test_search_recall_close_to_raw() -> None:
    vecs = vectors(N, 3)
    queries = vectors(20, 4)
    sims = (queries @ vecs.T) / np.outer(np.linalg.norm(queries, axis=1),
                                        np.linalg.norm(vecs, axis=1))
    truth = [set(np.argsort(-row, kind="stable")[:10].tolist()) for row in sims]
    results = {}
    for raw in (True, False):
        d = make(raw, vecs)
        exact = d.search("emb", queries, k=10, exact=True)
        st = d.build_index("emb", cells=16, seed=1)
        assert st["built"] and st["entries"] == N
        indexed = d.search("emb", queries, k=10, nprobe=8)
        results[raw] = (recall(exact, truth), recall(indexed, truth))
    assert results[True][0] == 1.0
    assert results[False][0] >= 0.9
    assert results[False][1] >= results[True][1] - 0.05
    # A stored vector finds itself first.
    d = make(False, vecs)
    stored = as_matrix(d.take([42], ["emb"]).column("emb"))[0]
    t = d.search("emb", stored, k=1, exact=True)
    assert t.column("anchor").to_pylist() == [42]
    assert abs(t.column("score")[0].as_py() - 1.0) < 1e-5
