# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Non-finite embedding values are refused on every Python write path (spec/10-schema.md
§1.6), naming the record and the field, with nothing committed; float64 fields keep NaN.
"""

import math
import uuid

import numpy as np
import pyarrow as pa
import pytest

import dreamdb

NAN = float("nan")
INF = float("inf")


@pytest.fixture
def ds() -> "dreamdb.Dataset":
    schema = (dreamdb.Schema()
              .add_embedding("emb", 4)
              .add_float("loss", required=False))
    d = dreamdb.Dataset.create("d", schema, store=f"memory://{uuid.uuid4().hex}")
    d.append_many({"emb": np.eye(4, dtype=np.float32)}, anchors=[0, 1, 2, 3])
    return d


def refused(d: "dreamdb.Dataset", write, *words: str) -> None:
    head, count = d.head, d.count()
    with pytest.raises(dreamdb.InvalidArgumentError) as e:
        write()
    msg = str(e.value)
    for w in ("'emb'", "embedding values must be finite", *words):
        assert w in msg, msg
    assert isinstance(e.value, ValueError)
    d.refresh()
    assert (d.head, d.count()) == (head, count)


def test_non_finite_embedding_refused_by_every_python_write_path(ds) -> None:
    bad = np.ones((2, 4), dtype=np.float32)
    bad[1, 2] = np.nan
    # NumPy columns, with anchors given and assigned.
    refused(ds, lambda: ds.append_many({"emb": bad}, anchors=[10, 11]), "anchor 11", "NaN",
            "element 2")
    refused(ds, lambda: ds.append_many({"emb": bad}), "row 1 of the batch")
    # An Arrow table (FixedSizeList<float32>) and a RecordBatch.
    flat = pa.array(np.array([1, 1, 1, 1, 1, INF, 1, 1], dtype=np.float32))
    col = pa.FixedSizeListArray.from_arrays(flat, 4)
    table = pa.table({"anchor": pa.array([20, 21], pa.uint64()), "emb": col})
    refused(ds, lambda: ds.append_many(table), "anchor 21", "+inf", "element 1")
    refused(ds, lambda: ds.append_many(table.to_batches()[0]), "anchor 21")
    # Dicts, one and many.
    refused(ds, lambda: ds.append({"emb": [1.0, -INF, 0.0, 0.0]}, anchor=30), "anchor 30",
            "-inf")
    refused(ds, lambda: ds.append_many([{"emb": [0, 0, 0, 1]}, {"emb": [NAN] * 4}],
                                       anchors=[31, 32]), "anchor 32")
    # Replacing an existing record's value, and layers.
    refused(ds, lambda: ds.append_many({"emb": bad[1:]}, anchors=[0]), "anchor 0")
    refused_layer = np.ones((2, 4), dtype=np.float32)
    refused_layer[0, 3] = np.inf
    head = ds.head
    with pytest.raises(dreamdb.InvalidArgumentError, match=r"'clip'.*anchor 1.*element 3"):
        ds.add_embedding_layer("clip", [1, 2], refused_layer)
    ds.refresh()
    assert ds.head == head and "clip" not in [f.name for f in ds.schema.fields]
    assert ds.count() == 4


def test_float64_fields_keep_nan_and_infinities(ds) -> None:
    ds.append_many({"emb": np.ones((3, 4), np.float32), "loss": [NAN, INF, -INF]},
                   anchors=[7, 8, 9])
    loss = ds.take([7, 8, 9], fields="loss").column("loss").to_pylist()
    assert math.isnan(loss[0]) and loss[1:] == [INF, -INF]


def test_search_after_refused_writes_is_right(ds) -> None:
    with pytest.raises(dreamdb.InvalidArgumentError):
        ds.append_many({"emb": np.full((1, 4), np.nan, np.float32)}, anchors=[99])
    hits = ds.search("emb", np.array([0, 0, 1, 0], np.float32), k=4, exact=True)
    assert hits["anchor"].to_pylist()[0] == 2 and hits.num_rows == 4

