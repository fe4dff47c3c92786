# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Dataset.iter_batches(shuffle_seed=...): a seeded, reproducible, complete permutation."""

import numpy as np
import pyarrow as pa
import pytest

import dreamdb


def _make(n: int) -> dreamdb.Dataset:
    schema = dreamdb.Schema().add_int("x").add_embedding("e", 4)
    ds = dreamdb.Dataset.create("shuf", schema, store="memory://")
    x = np.arange(n, dtype=np.int64)
    ds.append_many({"x": x, "e": np.repeat(x[:, None], 4, axis=1).astype(np.float32)})
    return ds


def _xs(reader: pa.RecordBatchReader) -> list:
    return reader.read_all().column("x").to_pylist()


def test_shuffle_is_a_permutation_and_reproducible() -> None:
    ds = _make(10_000)
    a = ds.iter_batches(["x"], batch_size=700, shuffle_seed=7, block_size=1000)
    b = ds.iter_batches(["x"], batch_size=700, shuffle_seed=7, block_size=1000)
    c = ds.iter_batches(["x"], batch_size=700, shuffle_seed=8, block_size=1000)
    xa, xb, xc = _xs(a), _xs(b), _xs(c)
    assert sorted(xa) == list(range(10_000))
    assert xa == xb
    assert xa != xc
    assert xa != sorted(xa)


def test_shuffle_batches_schema_range_and_limit() -> None:
    ds = _make(5_000)
    reader = ds.iter_batches(["e"], start=1000, end=3000, batch_size=128, shuffle_seed=1,
                             limit=1500)
    assert reader.schema.names == ["anchor", "e"]
    sizes = []
    anchors = []
    for rb in reader:
        sizes.append(rb.num_rows)
        anchors.extend(rb.column(0).to_pylist())
        vals = rb.column(1).flatten().to_numpy().reshape(-1, 4)
        assert np.array_equal(vals[:, 0], np.asarray(rb.column(0).to_pylist(), np.float32))
    assert max(sizes) <= 128
    assert len(anchors) == 1500 and len(set(anchors)) == 1500
    assert all(1000 <= a < 3000 for a in anchors)


def test_shuffle_pins_the_version() -> None:
    ds = _make(3_000)
    reader = ds.iter_batches(["x"], shuffle_seed=3, block_size=500)
    ds.append_many({"x": np.arange(10, dtype=np.int64) + 10_000,
                    "e": np.zeros((10, 4), np.float32)})
    assert sorted(_xs(reader)) == list(range(3_000))


def test_shuffle_rejects_bad_sizes() -> None:
    ds = _make(10)
    with pytest.raises(dreamdb.InvalidArgumentError, match="block_size"):
        ds.iter_batches(shuffle_seed=1, block_size=0)
