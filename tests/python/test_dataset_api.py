# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""The dreamdb Python API: schema, dataset lifecycle, writes, refs, layers, errors.

Run after `pip install ./python` with the same interpreter (python/README.md). Without
the package the module is skipped, unless DREAMDB_REQUIRE_PYTHON=1 (CI) makes that fail.
"""

import os
import pathlib
import pickle
import threading
import uuid

import pytest

# The package is installed by scripts/test.sh (pip install ./python); without it this
# module fails to import, which is the right signal.
import dreamdb  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from dreamdb import _core  # noqa: E402


@pytest.fixture
def mem() -> str:
    """A fresh named in-memory store (shared by every handle in this process)."""
    return f"memory://{uuid.uuid4().hex}"


@pytest.fixture
def schema() -> "dreamdb.Schema":
    return (dreamdb.Schema()
            .add_int("label")
            .add_float("score")
            .add_string("caption", required=False)
            .add_embedding("emb", 4))


def rows(n, start=0):
    return [{"label": i, "score": i / 2, "caption": f"c{i}", "emb": [i, i + 1, i + 2, i + 3]}
            for i in range(start, start + n)]


# ---- Schema ----

def test_schema_builders_chain_and_aliases():
    s = dreamdb.Schema()
    out = (s.add_int("a").add_float("b").add_bool("c").add_string("d").add_categorical("e")
           .add_timestamp("f").add_blob("g", mime="text/plain").add_image("h")
           .add_embedding("i", 8).add_array("j", "u8", (2, 3))
           .add_scalar_int("k").add_scalar_float("l").add_scalar_bool("m")
           .add_scalar_string("n").add_scalar_categorical("o").add_scalar_timestamp("p"))
    assert out is s
    types = [f.type for f in s.fields]
    assert types == ["int64", "float64", "bool", "string", "categorical", "timestamp", "blob",
                     "blob", "embedding", "array", "int64", "float64", "bool", "string",
                     "categorical", "timestamp"]
    assert all(f.required and not f.optional for f in s.fields)
    assert s["g"].mime == "text/plain" and s["h"].mime == "image/png"
    assert s["i"].dim == 8 and s["i"].mime is None
    assert s["j"].dtype == "u8" and s["j"].shape == (2, 3)
    assert len(s) == 16 and "a" in s and "zz" not in s
    assert s.names[:3] == ["a", "b", "c"]


def test_schema_optional_numpy_dtypes_json_and_pickle():
    s = (dreamdb.Schema().add_int("x", required=False)
         .add_array("a", np.float32, [4]).add_array("b", np.dtype("int16"), 3)
         .add_array("c", "float64", (1, 2)))
    assert s["x"].optional and not s["x"].required
    assert [s[n].dtype for n in "abc"] == ["f32", "i16", "f64"]
    assert s["b"].shape == (3,)
    again = dreamdb.Schema.from_json(s.to_json())
    assert again == s
    assert pickle.loads(pickle.dumps(s)) == s
    assert pickle.loads(pickle.dumps(s["a"])) == s["a"]
    assert "Field('a', array, dtype=f32, shape=(4,))" in repr(s)


@pytest.mark.parametrize("build", [
    lambda s: s.add_int("1bad"),
    lambda s: s.add_int("anchor"),
    lambda s: s.add_int("x").add_int("x"),
    lambda s: s.add_embedding("e", 0),
    lambda s: s.add_array("a", "f16", (2,)),
    lambda s: s.add_array("a", "f32", ()),
])
def test_schema_rejects_bad_fields(build):
    with pytest.raises(dreamdb.InvalidArgumentError) as e:
        build(dreamdb.Schema())
    assert isinstance(e.value, ValueError) and e.value.code == "invalid_argument"


# add_embedding(metric="hamming") without an index was accepted: the index arguments were
# ignored unless index= was given. They are checked either way, listing the valid values.
@pytest.mark.parametrize("kwargs, message", [
    ({"metric": "hamming"}, "unknown index metric 'hamming' (expected cosine, ip or l2)"),
    ({"quantizer": "pq8"}, "unknown index quantizer 'pq8' (expected rabitq or pq4)"),
    ({"bits": 9}, "index bits 9 must be 1 to 8"),
    ({"cells": -1}, "index cells -1 must be 0 to 2^32 - 1"),
    ({"index": "hnsw"}, "(expected \"ivf\", \"imi\", \"lsh\" or \"graph\")"),
])
def test_schema_add_embedding_refuses_unknown_metric_without_index(kwargs, message):
    with pytest.raises(dreamdb.InvalidArgumentError) as e:
        dreamdb.Schema().add_embedding("e", 4, **kwargs)
    assert message in str(e.value)
    s = dreamdb.Schema().add_embedding("e", 4, metric="l2", quantizer="pq4")
    assert "index" not in s.to_json()  # valid arguments without an index declare none


def test_schema_missing_field_is_not_found_and_key_error(schema):
    with pytest.raises(KeyError) as e:
        schema["nope"]
    assert isinstance(e.value, dreamdb.NotFoundError)
    assert "no field 'nope'" in str(e.value)  # plain message, not KeyError's repr
    with pytest.raises(dreamdb.InvalidArgumentError):
        dreamdb.Schema.from_json('{"fields": [{"name": "x", "type": "int128"}]}')


# ---- Lifecycle ----

def test_create_open_and_properties(schema, mem):
    ds = dreamdb.Dataset.create("pets", schema, store=mem)
    assert ds.name == "pets" and ds.branch == "main" and not ds.read_only
    assert ds.head.startswith("b") and len(ds.head) == 56
    assert ds.schema == schema
    assert ds.count() == 0 and len(ds) == 0
    again = dreamdb.Dataset.open("pets", store=mem)
    assert again.head == ds.head
    assert dreamdb.list_datasets(mem) == ["pets"]
    assert "pets" in repr(ds)


def test_store_uri_forms(schema, tmp_path):
    path = tmp_path / "store"
    dreamdb.Dataset.create("a", schema, store=str(path))
    assert dreamdb.Dataset.open("a", store=f"file://{path}").count() == 0
    assert dreamdb.Dataset.open("a", store=pathlib.Path(path)).name == "a"
    store = dreamdb.Store.open(str(path))
    assert dreamdb.Dataset.open("a", store=store).store is store
    assert (path / "dreamdb-store").exists()


def test_append_list_of_dicts(schema, mem):
    ds = dreamdb.Dataset.create("d", schema, store=mem)
    head = ds.append_many(rows(5), message="first")
    assert head == ds.head and ds.count() == 5
    assert ds.last_commit["added"] == 5 and ds.last_commit["message"] == "first"
    t = ds.to_table()
    assert t.column("anchor").to_pylist() == [0, 1, 2, 3, 4]
    assert t.column("label").to_pylist() == [0, 1, 2, 3, 4]
    assert t.column("score").to_pylist() == [0, 0.5, 1, 1.5, 2]
    assert t.column("caption").to_pylist() == ["c0", "c1", "c2", "c3", "c4"]
    assert t.column("emb").to_pylist()[2] == [2, 3, 4, 5]


def test_append_dict_of_numpy_arrays(schema, mem):
    ds = dreamdb.Dataset.create("d", schema, store=mem)
    n = 100
    emb = np.random.default_rng(0).random((n, 4), dtype=np.float32)
    ds.append_many({"label": np.arange(n), "score": np.linspace(0, 1, n), "emb": emb})
    t = ds.to_table()
    assert t.num_rows == n
    assert t.column("caption").null_count == n  # optional field absent: null
    got = t.column("emb").combine_chunks().flatten().to_numpy().reshape(n, 4)
    np.testing.assert_array_equal(got, emb)


def test_append_pyarrow_table_and_record_batch(schema, mem):
    ds = dreamdb.Dataset.create("d", schema, store=mem)
    table = pa.table({
        "label": pa.array([1, 2, 3], pa.int32()),  # cast to int64
        "score": [0.1, 0.2, 0.3],
        "caption": pa.array(["a", None, "c"], pa.string()),  # string -> large_string
        "emb": pa.array([[1, 2, 3, 4]] * 3, pa.list_(pa.float64())),  # list -> fixed list
    })
    ds.append_many(table)
    ds.append_many(table.to_batches()[0])
    t = ds.to_table()
    assert t.column("label").to_pylist() == [1, 2, 3, 1, 2, 3]
    assert t.column("caption").to_pylist() == ["a", None, "c", "a", None, "c"]


def test_append_with_anchors_replaces_given_fields(schema, mem):
    ds = dreamdb.Dataset.create("d", schema, store=mem)
    ds.append_many(rows(3), anchors=[10, 20, 30])
    ds.append_many({"label": [200], "anchor": [20]})
    assert ds.last_commit["replaced"] == 1 and ds.count() == 3
    t = ds.take([20])
    assert t.column("label").to_pylist() == [200]
    assert t.column("caption").to_pylist() == ["c1"]  # untouched field kept
    ds.append_many([{"label": 1, "score": 1.0, "emb": [0, 0, 0, 0]}])
    assert ds.take([31]).column("label").to_pylist() == [1]  # next anchor after 30
    ds.append(rows(1)[0], anchor=5)
    assert ds.take([5]).column("label").to_pylist() == [0]


@pytest.mark.parametrize("data, kwargs, match", [
    ([{"label": 1, "score": 1.0, "emb": [1, 2, 3, 4], "bogus": 1}], {}, "unknown field 'bogus'"),
    ([{"score": 1.0, "emb": [1, 2, 3, 4]}], {}, "label"),
    ([{"label": 1, "score": 1.0, "emb": [1, 2, 3]}], {}, "expected 4"),
    ([{"label": None, "score": 1.0, "emb": [1, 2, 3, 4]}], {}, "null"),
    ([{"label": "x", "score": 1.0, "emb": [1, 2, 3, 4]}], {}, "label"),
    (rows(2), {"anchors": [1, 1]}, "twice"),
    (rows(2), {"anchors": [1]}, "length"),
    (rows(1), {"anchors": [-1]}, "non-negative"),
    ({"label": [1], "anchor": [1]}, {"anchors": [2]}, "twice"),
    ([], {}, "no"),
    ("text", {}, "list of dicts"),
])
def test_append_rejects_bad_input(schema, mem, data, kwargs, match):
    ds = dreamdb.Dataset.create("d", schema, store=mem)
    with pytest.raises(dreamdb.InvalidArgumentError, match=match) as e:
        ds.append_many(data, **kwargs)
    assert isinstance(e.value, ValueError)
    assert ds.count() == 0


def test_anchor_values_and_validation(schema, mem):
    ds = dreamdb.Dataset.create("d", schema, store=mem)
    big = (1 << 64) - 2
    ds.append_many(rows(2), anchors=np.array([7, big], dtype=np.uint64))
    assert ds.take([big, 7], fields="label").column("anchor").to_pylist() == [big, 7]
    assert ds.take(pa.array([7], pa.int64()), fields="label").num_rows == 1
    assert ds.take(7, fields="label").num_rows == 1
    for bad in ([-1], [1 << 64], [1.5], ["x"], [[1, 2]], np.array([-3])):
        with pytest.raises(dreamdb.InvalidArgumentError):
            ds.take(bad)


def test_take_order_projection_and_missing(schema, mem):
    ds = dreamdb.Dataset.create("d", schema, store=mem)
    ds.append_many(rows(10))
    t = ds.take([7, 2, 7], fields=["label"])
    assert t.column_names == ["anchor", "label"]
    assert t.column("label").to_pylist() == [7, 2, 7]
    assert ds.take([], fields="score").num_rows == 0
    with pytest.raises(dreamdb.NotFoundError, match="anchor 99") as e:
        ds.take([1, 99])
    assert isinstance(e.value, KeyError)
    t = ds.take([1, 99], fields=["label"], allow_missing=True)
    assert t.column("label").to_pylist() == [1, None]
    assert t.column("anchor").to_pylist() == [1, 99]
    with pytest.raises(dreamdb.InvalidArgumentError, match="unknown field"):
        ds.take([1], fields=["nope"])


def test_delete(schema, mem):
    ds = dreamdb.Dataset.create("d", schema, store=mem)
    ds.append_many(rows(10))
    head = ds.delete([1, 3, 1000])
    assert head == ds.head and ds.count() == 8
    assert ds.last_commit["deleted"] == 2
    assert 3 not in ds.to_table(fields=["label"]).column("anchor").to_pylist()
    with pytest.raises(dreamdb.NotFoundError):
        ds.take([3])
    ds.append_many(rows(1), anchors=[3])  # resurrect
    assert ds.count() == 9


def test_snapshot_branch_open_at(schema, mem):
    ds = dreamdb.Dataset.create("d", schema, store=mem)
    ds.append_many(rows(3))
    v1 = ds.snapshot("v1")
    assert v1 == ds.head
    with pytest.raises(dreamdb.AlreadyExistsError) as e:
        ds.snapshot("v1")
    assert isinstance(e.value, FileExistsError)
    with pytest.raises(dreamdb.InvalidArgumentError):
        ds.snapshot("bad//label")
    exp = ds.create_branch("exp")
    assert exp.branch == "exp" and exp.head == v1
    with pytest.raises(dreamdb.AlreadyExistsError):
        ds.create_branch("exp")
    exp.append_many(rows(2, start=3))
    assert exp.count() == 5 and ds.count() == 3
    ds.refresh()
    assert ds.count() == 3  # main did not move
    assert dreamdb.Dataset.open("d", store=mem, branch="exp").count() == 5

    old = dreamdb.Dataset.open_at("d", "v1", store=mem)
    assert old.read_only and old.branch is None and old.head == v1 and old.count() == 3
    with pytest.raises(dreamdb.PermissionDeniedError) as e:
        old.append_many(rows(1))
    assert isinstance(e.value, PermissionError) and e.value.code == "permission_denied"
    with pytest.raises(PermissionError):
        old.delete([0])
    with pytest.raises(PermissionError):
        old.set_meta({"a": "b"})
    by_id = dreamdb.Dataset.open_at("d", exp.head, store=mem)
    assert by_id.count() == 5
    assert dreamdb.Dataset.open_at("d", "branch:exp", store=mem).head == exp.head
    with pytest.raises(dreamdb.NotFoundError):
        dreamdb.Dataset.open_at("d", "v2", store=mem)


def test_history(schema, mem):
    ds = dreamdb.Dataset.create("d", schema, store=mem, message="made")
    ds.append_many(rows(2), message="one")
    ds.append_many(rows(2, 2), message="two")
    h = ds.history()
    assert [c["message"] for c in h] == ["two", "one", "made"]
    assert h[0]["manifest"] == ds.head and h[0]["parents"] == [h[1]["manifest"]]
    assert h[0]["count"] == 4 and h[0]["added"] == 2 and h[-1]["parents"] == []
    assert [c["message"] for c in ds.history(limit=2)] == ["two", "one"]
    assert ds.history(limit=0) == []


def test_meta(schema, mem):
    ds = dreamdb.Dataset.create("d", schema, store=mem)
    ds.set_meta({"owner": "ana", "license": "cc-by"}, message="meta")
    assert ds.meta == {"owner": "ana", "license": "cc-by"}
    ds.meta = {"owner": "bo", "license": None}
    assert ds.meta == {"owner": "bo"}
    assert dreamdb.Dataset.open("d", store=mem).meta == {"owner": "bo"}
    with pytest.raises(dreamdb.InvalidArgumentError):
        ds.set_meta({"n": 1})


def test_layers(schema, mem):
    ds = dreamdb.Dataset.create("d", schema, store=mem)
    ds.append_many(rows(5))
    ds.add_scalar_layer("quality", [0, 2, 4], [0.5, 0.25, 1.0])
    ds.add_scalar_layer("tag", [1], ["x"])
    ds.add_scalar_layer("votes", np.array([3, 4]), np.array([7, 8], dtype=np.int32))
    ds.add_scalar_layer("cat", [0], ["dog"], type="categorical")
    vecs = np.arange(10, dtype=np.float32).reshape(5, 2)
    ds.add_embedding_layer("clip", [0, 1, 2, 3, 4], vecs)
    s = ds.schema
    assert [s[n].type for n in ("quality", "tag", "votes", "cat", "clip")] == [
        "float64", "string", "int64", "categorical", "embedding"]
    assert all(s[n].optional for n in ("quality", "tag", "votes", "cat", "clip"))
    t = ds.take([0, 1, 2, 3, 4], fields=["quality", "tag", "votes", "clip"])
    assert t.column("quality").to_pylist() == [0.5, None, 0.25, None, 1.0]
    assert t.column("tag").to_pylist() == [None, "x", None, None, None]
    assert t.column("votes").to_pylist() == [None, None, None, 7, 8]
    assert t.column("clip").to_pylist()[4] == [8.0, 9.0]
    ds.add_scalar_layer("quality", [1], [0.75])  # extends the existing layer
    assert ds.take([1], fields="quality").column("quality").to_pylist() == [0.75]
    with pytest.raises(dreamdb.Error):
        ds.add_scalar_layer("quality", [999], [1.0])  # no such record
    with pytest.raises(dreamdb.InvalidArgumentError):
        ds.add_scalar_layer("quality", [1], ["text"])  # type change
    with pytest.raises(dreamdb.InvalidArgumentError):
        ds.add_scalar_layer("nothing", [1], [None])


def test_diff(schema, mem):
    ds = dreamdb.Dataset.create("d", schema, store=mem)
    ds.append_many(rows(4))
    ds.snapshot("v1")
    ds.delete([0])
    ds.append_many({"label": [100]}, anchors=[1])
    ds.append_many(rows(1), anchors=[9])
    d = {e["anchor"]: e for e in ds.diff("v1")}
    assert d[0]["kind"] == "added"      # only in v1
    assert d[9]["kind"] == "removed"    # only at head
    assert d[1]["kind"] == "changed" and d[1]["fields"] == ["label"]
    assert set(d) == {0, 1, 9}
    assert ds.diff(ds) == []


def test_verify(schema, tmp_path):
    store = str(tmp_path / "s")
    ds = dreamdb.Dataset.create("d", schema, store=store)
    ds.append_many(rows(3))
    report = ds.verify()
    assert report["problems"] == [] and report["objects"] > 0
    assert dreamdb.verify(store)["problems"] == []


def test_concurrent_writers_threads(schema, tmp_path):
    store = str(tmp_path / "s")
    dreamdb.Dataset.create("d", schema, store=store)
    errors = []

    def writer(k):
        try:
            h = dreamdb.Dataset.open("d", store=store)
            for j in range(5):
                h.append_many(rows(4, start=100 * k + 4 * j))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert dreamdb.Dataset.open("d", store=store).count() == 4 * 5 * 4


# ---- Errors ----

ERROR_TABLE = [
    ("invalid_argument", dreamdb.InvalidArgumentError, ValueError),
    ("not_found", dreamdb.NotFoundError, KeyError),
    ("already_exists", dreamdb.AlreadyExistsError, FileExistsError),
    ("conflict", dreamdb.ConflictError, None),
    ("corrupt", dreamdb.CorruptError, ValueError),
    ("unavailable", dreamdb.UnavailableError, ConnectionError),
    ("io_error", dreamdb.StorageIOError, OSError),
    ("unsupported", dreamdb.UnsupportedError, NotImplementedError),
    ("permission_denied", dreamdb.PermissionDeniedError, PermissionError),
    ("internal", dreamdb.InternalError, RuntimeError),
]


@pytest.mark.parametrize("code, cls, builtin", ERROR_TABLE)
def test_every_status_code_maps_to_its_exception(code, cls, builtin):
    with pytest.raises(cls) as e:
        _core._raise_status(code, "what went wrong")
    assert type(e.value) is cls
    assert isinstance(e.value, dreamdb.Error)
    if builtin is not None:
        assert isinstance(e.value, builtin)
    assert e.value.code == code
    assert str(e.value) == "what went wrong"


def test_reachable_errors(schema, mem, tmp_path):
    with pytest.raises(dreamdb.InvalidArgumentError, match="bad name"):
        dreamdb.Dataset.create("bad name", schema, store=mem)
    with pytest.raises(ValueError):
        dreamdb.Dataset.open(".hidden", store=mem)
    with pytest.raises(dreamdb.NotFoundError) as e:
        dreamdb.Dataset.open("missing", store=mem)
    assert isinstance(e.value, KeyError)
    dreamdb.Dataset.create("d", schema, store=mem)
    with pytest.raises(dreamdb.AlreadyExistsError):
        dreamdb.Dataset.create("d", schema, store=mem)
    with pytest.raises(dreamdb.InvalidArgumentError, match="ftp"):
        dreamdb.Store.open("ftp://host/x")
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / "dreamdb-store").write_text("dreamdb-store 2\n")
    with pytest.raises(dreamdb.UnsupportedError) as e:
        dreamdb.Store.open(str(newer))
    assert isinstance(e.value, NotImplementedError)
    with pytest.raises(dreamdb.InvalidArgumentError) as bad:
        dreamdb.Store.open("s3://bucket/prefix?secret=hunter2")
    assert "hunter2" not in str(bad.value)
    with pytest.raises(dreamdb.InvalidArgumentError):
        dreamdb.Dataset.create("e", dreamdb.Schema(), store=mem)  # no fields
    with pytest.raises(dreamdb.InvalidArgumentError):
        dreamdb.Dataset.create("e", "not a schema", store=mem)
    with pytest.raises(dreamdb.InvalidArgumentError):
        dreamdb.Dataset.open("d", store=12)
    nonempty = tmp_path / "random"
    nonempty.mkdir()
    (nonempty / "file.txt").write_text("x")
    with pytest.raises(dreamdb.InvalidArgumentError):
        dreamdb.Dataset.open("d", store=str(nonempty))


def test_corrupt_object_is_corrupt_error(tmp_path):
    store = tmp_path / "s"
    s = dreamdb.Schema().add_blob("data")
    ds = dreamdb.Dataset.create("d", s, store=str(store))
    ds.append_many({"data": [os.urandom(100_000) for _ in range(3)]})
    # Flip one byte in the middle of the largest object (the segment of "data").
    objects = sorted((store / "objects").rglob("b*"), key=lambda p: p.stat().st_size)
    victim = objects[-1]
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    victim.write_bytes(bytes(raw))
    fresh = dreamdb.Dataset.open("d", store=str(store))
    with pytest.raises(dreamdb.CorruptError) as e:
        fresh.take([0, 1, 2])
    assert isinstance(e.value, ValueError) and e.value.code == "corrupt"
    assert fresh.verify()["problems"] != []
