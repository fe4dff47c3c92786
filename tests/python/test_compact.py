# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Dataset.compact and `dreamdb compact` (spec/14-semantics.md §18): after many small
commits, one commit with the same content, few segments, the spatial index carried over,
verify clean; a concurrent writer's commits are never lost."""

from __future__ import annotations

import json
import subprocess
import threading

import numpy as np

import dreamdb

DIM = 8


def fragmented(store, commits: int = 40) -> dreamdb.Dataset:
    schema = (dreamdb.Schema().add_embedding("emb", DIM).add_int("label")
              .add_string("tag", required=False).add_blob("raw", required=False))
    ds = dreamdb.Dataset.create("d", schema, store=store)
    rng = np.random.default_rng(3)
    for i in range(commits):
        ds.append_many({"emb": rng.normal(0, 1, size=(1, DIM)).astype(np.float32),
                        "label": [i], "tag": [None if i % 7 == 3 else f"t{i}"],
                        "raw": [f"bytes-{i}".encode()]})
    ds.append_many({"emb": rng.normal(0, 1, size=(2, DIM)).astype(np.float32),
                    "label": [100, 101], "tag": ["x", "y"], "raw": [b"r1", b"r2"]},
                   anchors=[1, 2])
    ds.delete([5, 6])
    return ds


def everything(ds: dreamdb.Dataset):
    return ds.to_table().to_pylist()


def test_compact_keeps_every_field_of_every_record(tmp_path):
    store = dreamdb.Store.open(str(tmp_path / "s"), create=True)
    ds = fragmented(store)
    before = everything(ds)
    old = ds.head
    head = ds.compact()
    info = ds.last_commit
    assert head == ds.head != old
    assert info["changed"] and info["records"] == len(before) == 38
    assert info["segments_before"] >= 100 and info["segments_after"] == 4
    assert info["segment_bytes_after"] < info["segment_bytes_before"]
    assert everything(ds) == before
    assert everything(dreamdb.Dataset.open_at("d", old, store=store)) == before
    assert dreamdb.verify(store)["problems"] == []
    assert ds.compact() == head and not ds.last_commit["changed"]


def test_compact_keeps_search_results_without_a_rebuild(tmp_path):
    store = dreamdb.Store.open(str(tmp_path / "s"), create=True)
    ds = fragmented(store, 60)
    ds.build_index("emb", cells=4)
    rng = np.random.default_rng(9)
    for i in range(10):
        ds.append_many({"emb": rng.normal(0, 1, size=(1, DIM)).astype(np.float32),
                        "label": [500 + i], "tag": ["n"], "raw": [b"n"]})
    q = rng.normal(0, 1, size=(5, DIM)).astype(np.float32)
    before = ds.search("emb", q, k=8).to_pylist()
    status = ds.index_status("emb")
    ds.compact()
    assert ds.last_commit["spatial_indexes"] == 1
    after = ds.search("emb", q, k=8).to_pylist()
    assert after == before
    now = ds.index_status("emb")
    assert now["model"] == status["model"] and now["live"] == status["live"]
    assert dreamdb.verify(store)["problems"] == []


def test_compact_with_a_concurrent_writer_loses_no_commit(tmp_path):
    store = dreamdb.Store.open(str(tmp_path / "s"), create=True)
    ds = fragmented(store, 30)
    writer = dreamdb.Dataset.open("d", store=store)
    written = []
    errors = []

    def write():
        try:
            for i in range(15):
                writer.append_many({"emb": np.ones((1, DIM), np.float32), "label": [9000 + i],
                                    "tag": ["w"], "raw": [b"w"]})
                written.append(9000 + i)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    t = threading.Thread(target=write)
    t.start()
    compacted = 0
    for _ in range(5):
        try:
            ds.compact()
            compacted += 1
        except dreamdb.ConflictError:
            pass  # the writer kept landing during every attempt: nothing changed
    t.join()
    assert errors == []
    ds.compact()
    labels = ds.to_table(fields=["label"]).column("label").to_pylist()
    assert set(written) <= set(labels) and len(written) == 15
    assert ds.count() == 28 + 15
    assert dreamdb.verify(store)["problems"] == []


def test_cli_compact_json(tmp_path, dreamdb_bin):
    store = dreamdb.Store.open(str(tmp_path / "s"), create=True)
    ds = fragmented(store, 12)
    before = everything(ds)
    out = subprocess.run([dreamdb_bin, "--store", store.uri, "--json", "compact", "d"],
                         check=True, capture_output=True, text=True).stdout
    r = json.loads(out)
    assert r["changed"] is True and r["records"] == 10 and r["segments_after"] == 4
    assert r["attempts"] == 1
    ds.refresh()
    assert ds.head == r["head"] and everything(ds) == before
    again = subprocess.run([dreamdb_bin, "--store", store.uri, "compact", "d"],
                           check=True, capture_output=True, text=True).stdout
    assert again.startswith("already compact: 10 records")
    ro = subprocess.run([dreamdb_bin, "--store", store.uri, "compact", "d", "--branch", "nope"],
                        capture_output=True, text=True)
    assert ro.returncode == 4, ro.stderr
