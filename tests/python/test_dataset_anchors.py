# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Dataset.anchors / iter_anchors: the live anchors from the index pages alone."""

import numpy as np
import pytest

import dreamdb


@pytest.fixture
def ds(tmp_path) -> dreamdb.Dataset:
    s = dreamdb.Schema().add_int("label").add_blob("raw")
    d = dreamdb.Dataset.create("d", s, store=str(tmp_path / "s"))
    d.append_many({"label": np.arange(500), "raw": [b"z" * 4096] * 500})
    d.append_many({"label": np.arange(500), "raw": [b"w" * 4096] * 500})
    d.delete(list(range(0, 1000, 3)))
    return d


def live():
    return [a for a in range(1000) if a % 3 != 0]


def test_anchors_lists_live_records_without_reading_fields(ds):
    fresh = dreamdb.Dataset.open_at("d", ds.head, store=ds.store)
    a = fresh.anchors()
    assert isinstance(a, np.ndarray) and a.dtype == np.uint64 and a.ndim == 1
    assert a.tolist() == live() and len(a) == fresh.count()
    assert fresh.read_stats()["bytes_fetched"] == 0
    assert fresh.read_stats()["requests"] == 0
    a[0] = 12345  # the array is the caller's own
    assert fresh.anchors()[0] == 1


def test_anchors_range(ds):
    assert ds.anchors(start=10, end=20).tolist() == [a for a in live() if 10 <= a < 20]
    assert ds.anchors(start=990).tolist() == [a for a in live() if a >= 990]
    assert ds.anchors(end=5).tolist() == [1, 2, 4]
    assert ds.anchors(start=7, end=7).tolist() == []
    with pytest.raises(dreamdb.InvalidArgumentError):
        ds.anchors(start=9, end=3)


def test_iter_anchors_chunks(ds):
    chunks = list(ds.iter_anchors(batch_size=100))
    assert all(c.dtype == np.uint64 for c in chunks)
    assert [len(c) for c in chunks[:-1]] == [100] * (len(chunks) - 1)
    assert np.concatenate(chunks).tolist() == live()
    assert np.concatenate(list(ds.iter_anchors(start=500, end=600))).tolist() == [
        a for a in live() if 500 <= a < 600]


def test_anchors_of_an_empty_dataset(tmp_path):
    d = dreamdb.Dataset.create("e", dreamdb.Schema().add_int("x"), store="memory://")
    a = d.anchors()
    assert a.dtype == np.uint64 and a.shape == (0,)
    assert list(d.iter_anchors()) == []


def test_automatic_anchors_continue_after_a_record_at_the_top(tmp_path) -> None:
    # spec/14-semantics.md §2.3: one record at 2^64 - 2 used to stop automatic anchors on
    # its branch for good, even after it was deleted.
    d = dreamdb.Dataset.create("d", dreamdb.Schema().add_int("x"), store=str(tmp_path / "s"))
    d.append_many({"x": [0, 1]})
    d.append({"x": -1}, anchor=2**64 - 2)
    d.delete([2**64 - 2])
    d.append_many({"x": [2, 3]})  # refused before: "the anchor space is exhausted"
    assert list(d.anchors()) == [0, 1, 2, 3]
