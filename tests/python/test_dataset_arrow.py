# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Arrow interop of the dreamdb package: types, zero-copy export, the C stream protocol,
projection (unrequested fields are never fetched), and the import path's edge cases."""

import gc
import os
import uuid

import pytest

# The package is installed by scripts/test.sh (pip install ./python); without it this
# module fails to import, which is the right signal.
import dreamdb  # noqa: E402

import ctypes  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from dreamdb import _core  # noqa: E402


@pytest.fixture
def mem() -> str:
    return f"memory://{uuid.uuid4().hex}"


def all_types_schema(required=True):
    return (dreamdb.Schema()
            .add_int("i", required=required).add_float("f", required=required)
            .add_bool("b", required=required).add_string("s", required=required)
            .add_categorical("c", required=required).add_timestamp("t", required=required)
            .add_blob("blob", mime="application/x-test", required=required)
            .add_embedding("e", 3, required=required)
            .add_array("a", "i16", (2, 2), required=required))


def all_types_rows(n):
    return {
        "i": np.arange(n, dtype=np.int64) - 5,
        "f": np.arange(n) * 0.5,
        "b": np.arange(n) % 3 == 0,
        "s": [f"str-{k}" * (k % 4) for k in range(n)],
        "c": [["cat", "dog"][k % 2] for k in range(n)],
        "t": np.arange(n, dtype=np.int64) * 1_000_000_007,
        "blob": [bytes([k % 256]) * k for k in range(n)],
        "e": np.arange(n * 3, dtype=np.float32).reshape(n, 3),
        "a": np.arange(n * 4, dtype=np.int16).reshape(n, 2, 2),
    }


EXPECTED_TYPES = {
    "anchor": pa.uint64(),
    "i": pa.int64(),
    "f": pa.float64(),
    "b": pa.bool_(),
    "s": pa.large_string(),
    "c": pa.large_string(),
    "t": pa.timestamp("ns"),
    "blob": pa.large_binary(),
    "e": pa.list_(pa.field("item", pa.float32(), nullable=False), 3),
    "a": pa.list_(pa.field("item", pa.int16(), nullable=False), 4),
}


def test_arrow_types_and_metadata(mem):
    ds = dreamdb.Dataset.create("d", all_types_schema(), store=mem)
    ds.append_many(all_types_rows(10))
    reader = ds.iter_batches()
    schema = reader.schema
    assert {f.name: f.type for f in schema} == EXPECTED_TYPES
    assert [f.name for f in schema] == list(EXPECTED_TYPES)
    assert not any(f.nullable for f in schema)
    meta = {f.name: f.metadata for f in schema}
    assert meta["c"][b"dreamdb.type"] == b"categorical"
    assert meta["blob"][b"dreamdb.mime"] == b"application/x-test"
    assert meta["e"][b"dreamdb.dim"] == b"3"
    assert meta["a"][b"dreamdb.dtype"] == b"i16" and meta["a"][b"dreamdb.shape"] == b"[2,2]"
    table = reader.read_all()
    want = all_types_rows(10)
    assert table.column("i").to_pylist() == want["i"].tolist()
    assert table.column("b").to_pylist() == want["b"].tolist()
    assert table.column("s").to_pylist() == want["s"]
    assert table.column("c").to_pylist() == want["c"]
    assert table.column("t").cast(pa.int64()).to_pylist() == want["t"].tolist()
    assert table.column("blob").to_pylist() == want["blob"]
    a = table.column("a").combine_chunks().flatten().to_numpy().reshape(10, 2, 2)
    np.testing.assert_array_equal(a, want["a"])


def test_nulls_round_trip_in_every_type(mem):
    ds = dreamdb.Dataset.create("d", all_types_schema(required=False), store=mem)
    n = 20
    data = all_types_rows(n)
    rows = []
    for k in range(n):
        row = {}
        for name, col in data.items():
            if (k + len(name)) % 3 == 0:
                row[name] = None
            else:
                v = col[k]
                row[name] = v.tolist() if isinstance(v, np.ndarray) else v
        rows.append(row)
    ds.append_many(rows)
    t = ds.to_table()
    assert all(f.nullable for f in t.schema if f.name != "anchor")
    for name in data:
        col = t.column(name)
        got = (col.cast(pa.int64()) if name == "t" else col).to_pylist()
        for k in range(n):
            if (k + len(name)) % 3 == 0:
                assert got[k] is None, (name, k)
            else:
                assert got[k] is not None, (name, k)
    assert t.column("i").to_pylist()[1] == -4
    assert t.column("e").to_pylist()[1] == [3.0, 4.0, 5.0]


def test_embedding_numpy_view_shares_memory_with_the_cpp_batch(mem):
    s = dreamdb.Schema().add_int("label").add_embedding("emb", 16).add_string("s").add_bool("ok")
    ds = dreamdb.Dataset.create("d", s, store=mem)
    n = 1000
    emb = np.random.default_rng(1).random((n, 16), dtype=np.float32)
    ds.append_many({"label": np.arange(n), "emb": emb, "s": ["x"] * n, "ok": [True] * n})
    reader = ds.iter_batches(batch_size=n)
    batch = reader.read_next_batch()
    exported = {(b["field"], b["buffer"]): b for b in _core._last_exported_buffers()}

    view = batch.column("emb").values.to_numpy(zero_copy_only=True)
    assert view.__array_interface__["data"][0] == exported[("emb", "values")]["address"]
    np.testing.assert_array_equal(view.reshape(n, 16), emb)
    labels = batch.column("label").to_numpy(zero_copy_only=True)
    assert labels.__array_interface__["data"][0] == exported[("label", "values")]["address"]
    anchors = batch.column("anchor").to_numpy(zero_copy_only=True)
    assert anchors.__array_interface__["data"][0] == exported[("anchor", "values")]["address"]
    offsets, data = batch.column("s").buffers()[1:3]
    assert offsets.address == exported[("s", "offsets")]["address"]
    assert data.address == exported[("s", "data")]["address"]
    # The only buffer the export made itself: the bool bitmap.
    assert [k for k, b in exported.items() if b["copied"]] == [("ok", "bitmap")]
    # The view keeps the C++ batch alive after the reader and batch objects are gone.
    del reader, batch, labels, anchors, offsets, data
    gc.collect()
    np.testing.assert_array_equal(view.reshape(n, 16), emb)


def test_iter_batches_range_limit_and_batch_size(mem):
    ds = dreamdb.Dataset.create("d", dreamdb.Schema().add_int("x"), store=mem)
    ds.append_many({"x": np.arange(100)})
    sizes = [b.num_rows for b in ds.iter_batches(batch_size=30)]
    assert sizes == [30, 30, 30, 10]
    t = ds.to_table(start=10, end=20)
    assert t.column("anchor").to_pylist() == list(range(10, 20))
    assert ds.to_table(limit=5).column("x").to_pylist() == [0, 1, 2, 3, 4]
    assert ds.to_table(start=95, limit=100).num_rows == 5
    assert ds.to_table(start=200).num_rows == 0
    assert ds.to_table(fields="x").column_names == ["anchor", "x"]
    with pytest.raises(dreamdb.InvalidArgumentError):
        ds.iter_batches(batch_size=0)
    with pytest.raises(dreamdb.InvalidArgumentError, match="unknown field"):
        ds.iter_batches(fields=["y"])


def test_empty_dataset_streams_its_schema(mem):
    ds = dreamdb.Dataset.create("d", all_types_schema(), store=mem)
    t = ds.to_table()
    assert t.num_rows == 0 and {f.name: f.type for f in t.schema} == EXPECTED_TYPES


def test_stream_protocol_capsule_is_one_shot(mem):
    ds = dreamdb.Dataset.create("d", dreamdb.Schema().add_int("x"), store=mem)
    ds.append_many({"x": [1, 2, 3]})
    stream = ds.arrow_stream()
    capsule = stream.__arrow_c_stream__(None)
    assert type(capsule).__name__ == "PyCapsule"
    ctypes.pythonapi.PyCapsule_IsValid.restype = ctypes.c_int
    ctypes.pythonapi.PyCapsule_IsValid.argtypes = [ctypes.py_object, ctypes.c_char_p]
    assert ctypes.pythonapi.PyCapsule_IsValid(capsule, b"arrow_array_stream") == 1
    assert stream.consumed
    with pytest.raises(dreamdb.InvalidArgumentError, match="already"):
        stream.__arrow_c_stream__()
    del capsule  # dropped unconsumed: the capsule destructor releases the stream
    gc.collect()
    # pyarrow consumes a fresh stream through the protocol.
    reader = pa.RecordBatchReader.from_stream(ds.arrow_stream(fields=["x"]))
    assert reader.read_all().column("x").to_pylist() == [1, 2, 3]
    # An unconsumed stream object is simply freed.
    ds.arrow_stream()
    gc.collect()


def test_reader_outlives_dataset_handle(mem):
    ds = dreamdb.Dataset.create("d", dreamdb.Schema().add_int("x"), store=mem)
    ds.append_many({"x": np.arange(50)})
    reader = dreamdb.Dataset.open("d", store=mem).iter_batches(batch_size=7)
    gc.collect()  # the handle is gone; the stream keeps the C++ dataset alive
    assert reader.read_all().num_rows == 50


def test_reader_is_a_snapshot_of_head(mem):
    ds = dreamdb.Dataset.create("d", dreamdb.Schema().add_int("x"), store=mem)
    ds.append_many({"x": np.arange(10)})
    reader = ds.iter_batches(batch_size=3)
    ds.append_many({"x": np.arange(10)})
    assert reader.read_all().num_rows == 10
    assert ds.to_table().num_rows == 20


def test_projection_does_not_fetch_unrequested_fields(tmp_path):
    store = str(tmp_path / "s")
    s = dreamdb.Schema().add_int("label").add_image("img")
    ds = dreamdb.Dataset.create("d", s, store=store)
    n, size = 64, 64 * 1024
    blob_bytes = n * size
    for k in range(4):  # several commits: several segments per field
        ds.append_many({"label": np.arange(n) + k * n,
                        "img": [os.urandom(size) for _ in range(n)]})
    labels_only = dreamdb.Dataset.open("d", store=store)
    t = labels_only.to_table(fields=["label"])
    assert t.column("label").to_pylist() == list(range(4 * n))
    small = labels_only.read_stats()["bytes_fetched"]
    assert 0 < small < 64 * 1024, small  # index pages + label segments only

    everything = dreamdb.Dataset.open("d", store=store)
    assert everything.to_table().num_rows == 4 * n
    big = everything.read_stats()["bytes_fetched"]
    assert big >= 4 * blob_bytes, big

    one = dreamdb.Dataset.open("d", store=store)
    one.take([3], fields=["label"])
    assert one.read_stats()["bytes_fetched"] < 64 * 1024


def test_import_sliced_and_chunked_inputs(mem):
    s = (dreamdb.Schema().add_int("i", required=False).add_string("s", required=False)
         .add_embedding("e", 2, required=False).add_bool("b", required=False))
    ds = dreamdb.Dataset.create("d", s, store=mem)
    base = pa.table({
        "i": pa.array([0, None, 2, 3, None, 5, 6, 7, 8, 9, 10], pa.int64()),
        "s": pa.array(["a", "bb", None, "dddd", "e", "f", None, "h", "i", "j", "k"],
                      pa.large_string()),
        "e": pa.array([[k, -k] if k % 4 else None for k in range(11)], pa.list_(pa.float32(), 2)),
        "b": pa.array([k % 2 == 0 if k % 5 else None for k in range(11)]),
    })
    sliced = base.slice(3, 7)  # non-zero offsets in every buffer, bitmaps not byte-aligned
    chunked = pa.concat_tables([base.slice(0, 2), base.slice(2, 4), base.slice(6)])
    assert chunked.column("i").num_chunks == 3
    ds.append_many(sliced)
    ds.append_many(chunked)
    t = ds.to_table()
    want = sliced.to_pylist() + base.to_pylist()
    got = t.drop_columns(["anchor"]).to_pylist()
    assert got == want


def test_import_accepts_other_arrow_widths(mem):
    s = dreamdb.Schema().add_string("s").add_blob("b").add_timestamp("t")
    ds = dreamdb.Dataset.create("d", s, store=mem)
    ds.append_many(pa.table({
        "s": pa.array(["x", "yy"], pa.string()),
        "b": pa.array([b"\x00", b"\x01\x02"], pa.binary()),
        "t": pa.array(np.array(["2024-01-01T00:00:00", "2024-01-02T00:00:00"],
                               dtype="datetime64[s]")),
    }))
    t = ds.to_table()
    assert t.column("s").to_pylist() == ["x", "yy"]
    assert t.column("b").to_pylist() == [b"\x00", b"\x01\x02"]
    assert t.column("t").cast(pa.int64()).to_pylist() == [1704067200 * 10**9, 1704153600 * 10**9]


def test_read_errors_surface_through_pyarrow_as_dreamdb_errors(tmp_path):
    store = tmp_path / "s"
    ds = dreamdb.Dataset.create("d", dreamdb.Schema().add_blob("x"), store=str(store))
    ds.append_many({"x": [os.urandom(200_000)]})
    victim = max((store / "objects").rglob("b*"), key=lambda p: p.stat().st_size)
    raw = bytearray(victim.read_bytes())
    raw[-10] ^= 1
    victim.write_bytes(bytes(raw))
    reader = dreamdb.Dataset.open("d", store=str(store)).iter_batches()
    with pytest.raises(dreamdb.CorruptError, match="segment"):
        reader.read_all()
    # A consumer of the raw stream gets its own exception class, with the code in the
    # message; the stream object then raises the DreamDB error.
    stream = dreamdb.Dataset.open("d", store=str(store)).arrow_stream()
    with pytest.raises((OSError, pa.ArrowException), match="corrupt"):
        pa.RecordBatchReader.from_stream(stream).read_all()
    with pytest.raises(dreamdb.CorruptError):
        stream.raise_error()


def test_duckdb_reads_the_dataset_through_the_capsule_protocol(mem):
    # DuckDB speaks the Arrow PyCapsule protocol: it calls __arrow_c_stream__ on the
    # dataset (once for the schema, once for the data; each call is a new scan).
    import duckdb

    ds = dreamdb.Dataset.create("d", dreamdb.Schema().add_int("x").add_string("s"), store=mem)
    ds.append_many({"x": [1, 2, 3], "s": ["a", "b", "c"]})
    rows = duckdb.sql("select sum(x), string_agg(s, '' order by x) from ds").fetchall()
    assert rows == [(6, "abc")]
