# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Errors met while streaming keep their DreamDB class across the Arrow C stream boundary.

A corrupt or missing object found mid-scan used to reach Python as pyarrow's own
exception (``OSError("corrupt: ...")``), so ``except dreamdb.Error`` missed it. Every API
that returns an Arrow stream, or a pyarrow object built from one, must raise
``dreamdb.CorruptError`` for a damaged object and ``dreamdb.NotFoundError`` for a missing
one, with the message naming the object.
"""

import os
import pathlib

import numpy as np
import pyarrow as pa
import pytest

import dreamdb

N = 300  # records: a paged anchor index (more than 64)


def _segments(store: pathlib.Path):
    """The segment objects of a file:// store (their bytes start with the magic)."""
    return sorted(p for p in (store / "objects").rglob("b*") if p.is_file()
                  and p.read_bytes()[:8] == b"DDBSEG01")


def _pages(store: pathlib.Path):
    """The anchor-index leaf pages (CBOR maps naming their kind)."""
    return sorted(p for p in (store / "objects").rglob("b*") if p.is_file()
                  and b"dreamdb.btree.leaf" in p.read_bytes()[:64])


def _make(tmp_path: pathlib.Path) -> pathlib.Path:
    store = tmp_path / "s"
    schema = (dreamdb.Schema().add_int("x").add_string("s").add_embedding("e", 4)
              .add_blob("b"))
    ds = dreamdb.Dataset.create("d", schema, store=str(store))
    rng = np.random.default_rng(0)
    ds.append_many({
        "x": np.arange(N, dtype=np.int64),
        "s": [f"r{i}" for i in range(N)],
        "e": rng.standard_normal((N, 4)).astype(np.float32),
        "b": [os.urandom(64) for _ in range(N)],
    })
    ds.create_branch("other")
    return store


def _damage(path: pathlib.Path, how: str) -> None:
    if how == "corrupt":
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        path.write_bytes(bytes(raw))
    else:
        path.unlink()


def _streaming_calls(store: pathlib.Path):
    """Every public read that returns an Arrow stream or a pyarrow object built from one."""
    def ds():
        return dreamdb.Dataset.open("d", store=str(store))

    return {
        "iter_batches().read_all()": lambda: ds().iter_batches().read_all(),
        "iterating iter_batches()": lambda: [b for b in ds().iter_batches(batch_size=50)],
        "iter_batches(shuffle_seed)": lambda: ds().iter_batches(shuffle_seed=1).read_all(),
        "iter_batches().read_next_batch()": lambda: ds().iter_batches().read_next_batch(),
        "to_table()": lambda: ds().to_table(),
        "to_table(fields)": lambda: ds().to_table(["x", "s", "e", "b"]),
        "iterating the dataset": lambda: list(ds()),
        "take()": lambda: ds().take(list(range(0, N, 3))),
        "search(fields)": lambda: ds().search("e", np.ones(4, np.float32), k=N,
                                              fields=["x", "s", "b"]),
        "compare_refs()": lambda: dreamdb.compare_refs(ds(), ["main", "other"],
                                                       fields=["x", "s", "e", "b"]),
        "arrow_stream() + raise_error()": lambda: _raw_stream(ds()),
    }


def _raw_stream(ds):
    stream = ds.arrow_stream()
    try:
        pa.RecordBatchReader.from_stream(stream).read_all()
    except Exception:
        stream.raise_error()  # the DreamDB error the stream ended with
        raise
    raise AssertionError("the stream read a damaged object without an error")


@pytest.mark.parametrize("how,cls", [("corrupt", dreamdb.CorruptError),
                                     ("missing", dreamdb.NotFoundError)])
def test_streaming_errors_keep_their_dreamdb_class(tmp_path, how, cls):
    store = _make(tmp_path)
    segments = _segments(store)
    assert len(segments) == 4
    for seg in segments:
        _damage(seg, how)
    for name, call in _streaming_calls(store).items():
        with pytest.raises(cls) as e:
            call()
        assert isinstance(e.value, dreamdb.Error), name
        assert e.value.code == ("corrupt" if how == "corrupt" else "not_found"), name
        assert "segment" in str(e.value) or "object" in str(e.value), (name, str(e.value))


@pytest.mark.parametrize("how,cls", [("corrupt", dreamdb.CorruptError),
                                     ("missing", dreamdb.NotFoundError)])
def test_anchor_streams_keep_their_dreamdb_class(tmp_path, how, cls):
    store = _make(tmp_path)
    pages = _pages(store)
    assert pages, "the index should be paged"
    for page in pages:
        _damage(page, how)
    ds = dreamdb.Dataset.open("d", store=str(store))
    with pytest.raises(cls):
        list(ds.iter_anchors())
    with pytest.raises(cls):
        ds.to_table()


def test_except_dreamdb_error_catches_a_mid_scan_corruption(tmp_path):
    store = _make(tmp_path)
    for seg in _segments(store):
        _damage(seg, "corrupt")
    reader = dreamdb.Dataset.open("d", store=str(store)).iter_batches()
    try:
        reader.read_all()
    except dreamdb.Error as e:
        assert isinstance(e, dreamdb.CorruptError) and isinstance(e, ValueError)
        # pyarrow's own exception stays reachable as the cause.
        assert e.__cause__ is not None
    else:
        raise AssertionError("the damaged segment was read without an error")
