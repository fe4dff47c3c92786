# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Index maintenance through the Python API (spec/21 §8.6, §8.7): index_status(balance=,
sample=) reports cell balance and recall drift, rebuild_index() retrains with the stored
settings, step_index() splits the cells skewed appends overfilled and keeps the other
cells' buckets.
"""

from __future__ import annotations

import uuid

import numpy as np
import pytest

import dreamdb
from dreamdb.errors import InvalidArgumentError, NotFoundError


def mixture(rng: np.random.Generator, centers: np.ndarray, n: int) -> np.ndarray:
    pick = rng.integers(0, len(centers), n)
    return (centers[pick] + rng.standard_normal((n, centers.shape[1]))).astype(np.float32)


def test_status_step_and_rebuild() -> None:
    rng = np.random.default_rng(3)
    centers = rng.standard_normal((24, 16)).astype(np.float32) * 3
    ds = dreamdb.Dataset.create("m", dreamdb.Schema().add_embedding("emb", 16),
                                store=f"memory://{uuid.uuid4().hex}")
    ds.append_many({"emb": mixture(rng, centers, 1500)})
    with pytest.raises(NotFoundError):
        ds.step_index("emb")
    ds.build_index("emb", cells=30)
    st = ds.index_status("emb")
    assert st["balance"] is None and st["drift"] is None
    st = ds.index_status("emb", balance=True, sample=32)
    assert st["balance"]["mean"] == pytest.approx(1500 / 30)
    assert st["drift"]["queries"] == 32
    assert st["drift"]["calibrated_recall"] == st["calibration"]["recall"]
    # Skewed growth lands in a few cells.
    ds.append_many({"emb": mixture(rng, centers[:2], 3000)})
    grown = ds.index_status("emb", balance=True)
    assert grown["balance"]["over_2x"] >= 1
    out = ds.step_index("emb")
    step = out["step"]
    assert step["changed"] and step["split"] >= 1 and step["buckets_kept"] > 0
    assert out["cells"] == step["cells_after"] and out["entries"] == 4500
    assert ds.index_status("emb", balance=True)["balance"]["over_2x"] == 0
    q = mixture(rng, centers, 20)
    full = ds.search("emb", q, k=5, nprobe=out["cells"])
    exact = ds.search("emb", q, k=5, exact=True)
    assert full.column("anchor").to_pylist() == exact.column("anchor").to_pylist()
    rebuilt = ds.rebuild_index("emb")
    assert rebuilt["cells"] == 67 and rebuilt["entries"] == 4500  # round(sqrt(4500))
    assert rebuilt["head"] == ds.head


def test_step_refuses_other_algorithms() -> None:
    ds = dreamdb.Dataset.create("m", dreamdb.Schema().add_embedding("emb", 8),
                                store=f"memory://{uuid.uuid4().hex}")
    ds.append_many({"emb": np.random.default_rng(1).standard_normal((300, 8)).astype(np.float32)})
    ds.build_index("emb", algorithm="lsh")
    with pytest.raises(InvalidArgumentError, match="index rebuild"):
        ds.step_index("emb")
    with pytest.raises(InvalidArgumentError):
        ds.step_index("emb", split_above=0.5)
