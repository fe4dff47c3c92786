# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""dreamdb.ray without Ray: the adapter's code path (files split across shards, one task
per shard, the commit in the driver) run by LocalExecutor and by an executor that runs
each shard in its own process, as Ray does. tests/ray/run.sh runs the same adapter on a
real local Ray (on demand: Ray is ~0.8 GB)."""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

import dreamdb
import dreamdb.ray as dray
from dreamdb.errors import InvalidArgumentError


@pytest.fixture
def store(tmp_path):
    uri = "file://" + str(tmp_path / "store")
    dreamdb.Dataset.create("d", dreamdb.Schema().add_int("x"), store=uri)
    return uri


def write_files(tmp_path, n_files: int, per: int) -> list:
    """n_files files of `per` records each (x = 0, 1, ...), cycling through the formats
    read_file knows."""
    paths = []
    for i in range(n_files):
        xs = list(range(i * per, (i + 1) * per))
        kind = ("parquet", "jsonl", "csv", "arrow")[i % 4]
        path = str(tmp_path / f"part-{i}.{kind}")
        table = pa.table({"x": pa.array(xs, pa.int64())})
        if kind == "parquet":
            pq.write_table(table, path)
        elif kind == "jsonl":
            with open(path, "w") as f:
                f.writelines(json.dumps({"x": x}) + "\n" for x in xs)
        elif kind == "csv":
            pcsv.write_csv(table, path)
        else:
            with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
                w.write_table(table)
        paths.append(path)
    return paths


def values(store: str) -> list:
    return sorted(dreamdb.Dataset.open("d", store=store).to_table(["x"]).column("x").to_pylist())


def test_shard_files_gives_every_file_to_exactly_one_shard():
    for n in range(0, 12):
        files = [f"f{i}" for i in range(n)]
        for of in range(1, 9):
            parts = [dray.shard_files(files, k, of) for k in range(of)]
            assert sum(parts, []) == files
            assert max(map(len, parts)) - min(map(len, parts)) <= 1
    with pytest.raises(InvalidArgumentError):
        dray.shard_files(["a"], 2, 2)


def test_ingest_with_local_executor_gives_every_record_once_and_a_rerun_changes_nothing(
        store, tmp_path):
    files = write_files(tmp_path, 7, 50)
    r = dray.ingest(store, "d", files, num_shards=3, executor=dray.LocalExecutor())
    assert r["records"] == 350 and r["commit"]["added"] == 350
    assert [s["files"] for s in r["shards"]] == [2, 2, 3]
    assert not r["commit"]["already_committed"]
    assert values(store) == list(range(350))
    head = dreamdb.Dataset.open("d", store=store).head
    # The same call again: the same (derived) job, every shard done, nothing committed.
    again = dray.ingest(store, "d", files, num_shards=3, executor=dray.LocalExecutor())
    assert again["job"] == r["job"] and again["records"] == 0
    assert all(s["done_before"] for s in again["shards"])
    assert again["commit"]["already_committed"]
    assert dreamdb.Dataset.open("d", store=store).head == head


def test_ingest_after_a_failed_shard_reruns_only_the_unfinished_shards(store, tmp_path):
    files = write_files(tmp_path, 4, 25)
    bad = files[2]

    def flaky(path):
        if path == bad:
            raise OSError("disk went away")
        return dray.read_file(path)

    with pytest.raises(OSError, match="disk went away"):
        dray.ingest(store, "d", files, num_shards=4, job="j1", reader=flaky,
                    executor=dray.LocalExecutor())
    assert values(store) == []  # nothing committed
    r = dray.ingest(store, "d", files, num_shards=4, job="j1", executor=dray.LocalExecutor())
    assert [s["done_before"] for s in r["shards"]] == [True, True, False, False]
    assert values(store) == list(range(100))


class ProcessExecutor:
    """Each shard in its own process, concurrently: what Ray tasks do on one node."""

    def map(self, fn, items):
        with concurrent.futures.ProcessPoolExecutor(
                max_workers=2, mp_context=multiprocessing.get_context("spawn"),
                initializer=os.chdir, initargs=("/",)) as pool:  # workers elsewhere, as Ray's
            return list(pool.map(fn, *zip(*items)))


def test_ingest_with_shards_in_separate_processes_commits_once_in_the_driver(store, tmp_path,
                                                                            monkeypatch):
    files = write_files(tmp_path, 4, 40)
    # A relative store path reaches the workers as an absolute file:// URI.
    monkeypatch.chdir(tmp_path)
    r = dray.ingest("store", "d", files, num_shards=4, executor=ProcessExecutor())
    assert r["records"] == 160 and r["commit"]["shards"] == 4
    assert values(store) == list(range(160))


def test_ingest_refuses_a_memory_store_for_out_of_process_tasks_and_bad_arguments(tmp_path):
    with pytest.raises(InvalidArgumentError, match="this process only"):
        dray.ingest("memory://x", "d", ["a.parquet"], executor=dray.RayExecutor())
    with pytest.raises(InvalidArgumentError, match="no files"):
        dray.ingest("file:///nowhere", "d", [], executor=dray.LocalExecutor())
    with pytest.raises(InvalidArgumentError, match="num_shards"):
        dray.ingest("file:///nowhere", "d", ["a"], num_shards=0, executor=dray.LocalExecutor())
    with pytest.raises(InvalidArgumentError, match="unknown extension"):
        list(dray.read_file(str(tmp_path / "x.bin")))
