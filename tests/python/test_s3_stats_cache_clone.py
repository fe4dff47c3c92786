# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Request accounting, the local object cache and clone, on s3:// against the local S3
server (the `s3_store` fixture, conftest.py) and on file://.

- Store.stats() / Dataset.read_stats()["store"] count HTTP requests by verb and status
  class; `dreamdb --stats` prints them after any command; `dreamdb stats --prometheus`.
- A cache shared by DataLoader worker processes answers warm reads without requests; a
  damaged cache file is detected, deleted and fetched again; refs are never cached.
- clone file:// -> s3:// -> file:// round trips with verify; a clone killed mid-copy
  leaves no ref in the destination and resumes, skipping what it copied."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys

import numpy as np
import pytest

import dreamdb

HERE = pathlib.Path(__file__).resolve().parent
DIM = 8


def schema() -> dreamdb.Schema:
    return dreamdb.Schema().add_int("label").add_string("tag").add_embedding("emb", DIM)


def rows(start: int, n: int) -> dict:
    rng = np.random.default_rng(start)
    return {"label": np.arange(start, start + n) % 5,
            "tag": [f"t{i}" for i in range(start, start + n)],
            "emb": rng.normal(size=(n, DIM)).astype(np.float32)}


def cache_files(cache: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in (cache / "dreamdb-cache-1" / "objects").rglob("*") if p.is_file())


def test_store_stats_count_http_requests_by_verb_and_class(s3_store: str):
    ds = dreamdb.Dataset.create("d", schema(), store=s3_store)
    ds.append_many(rows(0, 50))
    store = ds.store
    before = store.stats()
    assert before["requests"] > 0 and before["by_verb"]["PUT"]["2xx"] > 0
    assert before["bytes_out"] > 0 and before["retries"] == 0
    fresh = dreamdb.Dataset.open("d", store=store)
    fresh.take([3, 7], fields=["tag"])
    stats = fresh.read_stats()
    assert stats["requests"] > 0  # segment reads of this handle
    after = stats["store"]
    assert after["by_verb"]["GET"]["2xx"] > before["by_verb"]["GET"]["2xx"]
    assert after["bytes_in"] > before["bytes_in"]
    with pytest.raises(dreamdb.NotFoundError):
        dreamdb.Dataset.open("missing", store=store)
    assert store.stats()["by_verb"]["GET"].get("4xx", 0) > before["by_verb"]["GET"].get("4xx", 0)


def test_cli_stats_flag_and_prometheus(s3_store: str, dreamdb_bin: str, tmp_path):
    ds = dreamdb.Dataset.create("d", schema(), store=s3_store)
    ds.append_many(rows(0, 20))
    r = subprocess.run([dreamdb_bin, "--stats", "--json", "--store", s3_store, "count", "d"],
                       capture_output=True, text=True, check=True)
    assert json.loads(r.stdout)["count"] == 20
    line = json.loads(r.stderr.strip().splitlines()[-1])
    assert line["stats"] == "store"
    storage = line["storage"]
    assert storage["requests"] == sum(n for v in storage["by_verb"].values() for n in v.values())
    assert storage["by_verb"]["GET"]["2xx"] > 0 and storage["bytes_in"] > 0
    text = subprocess.run([dreamdb_bin, "--stats", "--store", s3_store, "count", "d"],
                          capture_output=True, text=True, check=True)
    assert "storage requests: " in text.stderr and "20" in text.stdout
    prom = subprocess.run([dreamdb_bin, "--store", s3_store, "--cache", str(tmp_path / "c"),
                           "stats", "--prometheus"], capture_output=True, text=True, check=True)
    assert 'dreamdb_storage_requests_total{verb="LIST",class="2xx"}' in prom.stdout
    assert "# TYPE dreamdb_cache_size_bytes gauge" in prom.stdout
    bad = subprocess.run([dreamdb_bin, "--cache-size", "12Q", "--store", s3_store, "stats"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "--cache-size" in bad.stderr


def test_cache_serves_warm_reads_without_requests(s3_store: str, tmp_path):
    cache = tmp_path / "cache"
    ds = dreamdb.Dataset.create("d", schema(), store=s3_store)
    ds.append_many(rows(0, 200))
    cold = dreamdb.Dataset.open("d", store=s3_store, cache=str(cache), cache_size="64M")
    want = cold.to_table()
    first = cold.store.stats()
    assert first["cache_misses"] > 0 and first["cache_bytes_written"] > 0
    assert cache_files(cache)
    warm = dreamdb.Dataset.open("d", store=s3_store, cache=cache, cache_size=64 << 20)
    assert warm.to_table().equals(want)
    s = warm.store.stats()
    assert s["cache_hits"] > 0 and s["cache_misses"] == 0
    # Only refs (and the store marker) went to the server: the branch ref is never cached.
    assert s["by_verb"]["GET"]["2xx"] <= 3, s
    # A commit through another handle is seen at once: refs are read from the server.
    ds.append_many(rows(200, 1))
    assert dreamdb.Dataset.open("d", store=s3_store, cache=cache).count() == 201


def test_corrupt_cache_file_is_detected_and_refetched(s3_store: str, tmp_path):
    cache = tmp_path / "cache"
    ds = dreamdb.Dataset.create("d", schema(), store=s3_store)
    ds.append_many(rows(0, 100))
    want = dreamdb.Dataset.open("d", store=s3_store, cache=cache).to_table()
    files = cache_files(cache)
    assert files
    for f in files:  # damage every cached object, keeping sizes
        data = bytearray(f.read_bytes())
        if data:
            data[len(data) // 2] ^= 0xFF
            f.write_bytes(bytes(data))
    again = dreamdb.Dataset.open("d", store=s3_store, cache=cache)
    assert again.to_table().equals(want)
    s = again.store.stats()
    assert s["cache_corrupt"] > 0
    # Repaired: a third reader hits every object.
    third = dreamdb.Dataset.open("d", store=s3_store, cache=cache)
    assert third.to_table().equals(want)
    assert third.store.stats()["cache_corrupt"] == 0


def test_dataloader_workers_share_one_cache(s3_store: str, tmp_path):
    import torch  # a test dependency: bootstrap installs python3-torch
    from dreamdb.torch import DreamDBMapDataset

    cache = tmp_path / "cache"
    ds = dreamdb.Dataset.create("d", schema(), store=s3_store)
    for k in range(4):
        ds.append_many(rows(k * 50, 50))
    opened = dreamdb.Dataset.open("d", store=s3_store, cache=cache, cache_size="8M")
    loader = torch.utils.data.DataLoader(DreamDBMapDataset(opened, fields=["tag"]),
                                         batch_size=16, num_workers=2)
    tags = sorted(t for batch in loader for t in batch["tag"])
    assert tags == sorted(f"t{i}" for i in range(200))
    assert cache_files(cache)  # the workers filled the shared cache
    assert not list((cache / "dreamdb-cache-1" / "tmp").iterdir())


def test_clone_file_to_s3_to_file_round_trips(s3_store: str, dreamdb_bin: str, tmp_path):
    src = f"file://{tmp_path / 'src'}"
    ds = dreamdb.Dataset.create("d", schema(), store=src)
    ds.append_many(rows(0, 120))
    ds.snapshot("v1")
    ds.create_branch("dev").append_many(rows(120, 10))
    r = subprocess.run([dreamdb_bin, "--json", "clone", src, s3_store], capture_output=True,
                       text=True, check=True)
    up = json.loads(r.stdout)
    assert up["refs_created"] == up["refs"] == 3 and up["objects_copied"] == up["objects"] > 0
    assert "clone: copy" in r.stderr  # progress
    assert dreamdb.verify(s3_store)["problems"] == []
    back = f"file://{tmp_path / 'back'}"
    down = dreamdb.clone(s3_store, back)
    assert down["objects_copied"] == up["objects"]
    assert dreamdb.verify(back)["problems"] == []
    for at in ("main", "v1", "dev"):
        a = dreamdb.Dataset.open_at("d", at, store=src).to_table()
        b = dreamdb.Dataset.open_at("d", at, store=back).to_table()
        assert a.equals(b), at
    again = dreamdb.clone(src, s3_store, ["d/branches/main"])
    assert again["objects_copied"] == 0 and again["refs_unchanged"] == 1


def test_clone_killed_mid_copy_leaves_no_ref_and_resumes(s3_store: str, dreamdb_bin: str,
                                                         tmp_path):
    sys.path.insert(0, str(HERE.parent / "soak"))
    from s3_fault_proxy import FaultConfig, FaultProxy

    src = f"file://{tmp_path / 'src'}"
    ds = dreamdb.Dataset.create("d", schema(), store=src)
    for k in range(40):
        ds.append_many(rows(k * 5, 5))
    endpoint = os.environ["DREAMDB_S3_ENDPOINT"]
    proxy = FaultProxy(endpoint, FaultConfig(latency_ms=25)).start()
    try:
        slow = s3_store.replace(f"endpoint={endpoint}", f"endpoint={proxy.endpoint}")
        p = subprocess.Popen([dreamdb_bin, "clone", "--parallel", "1", src, slow],
                             stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for line in p.stderr:
            if line.startswith("clone: copy ") and not line.startswith("clone: copy 0/"):
                p.send_signal(signal.SIGKILL)
                break
        p.wait()
        assert p.returncode == -signal.SIGKILL
    finally:
        proxy.stop()
    # Objects go first, refs last: the destination has no ref yet.
    assert dreamdb.Store.open(s3_store).list_datasets() == []
    resumed = dreamdb.clone(src, s3_store)
    assert resumed["objects_present"] > 0 and resumed["objects_copied"] > 0
    assert resumed["objects_present"] + resumed["objects_copied"] == resumed["objects"]
    assert dreamdb.verify(s3_store)["problems"] == []
    assert dreamdb.Dataset.open("d", store=s3_store).to_table().equals(
        dreamdb.Dataset.open("d", store=src).to_table())
