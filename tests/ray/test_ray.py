# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""dreamdb.ray on a real local Ray (ray.init(num_cpus=2), 127.0.0.1): shards run as Ray
tasks in worker processes and the driver commits once; a rerun changes nothing; a task
that failed is rerun alone; a Ray Dataset is written through ray.data splits. Run by
tests/ray/run.sh (on demand)."""

from __future__ import annotations

import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray

import dreamdb
import dreamdb.ray as dray

# Ray's workers do not have this test directory on their path: ship this module's readers
# by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(address="local", num_cpus=2, include_dashboard=False,
             _node_ip_address="127.0.0.1", log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def store(tmp_path):
    uri = "file://" + str(tmp_path / "store")
    dreamdb.Dataset.create("d", dreamdb.Schema().add_int("x").add_int("pid"), store=uri)
    return uri


def parts(tmp_path, n: int, per: int) -> list:
    paths = []
    for i in range(n):
        path = str(tmp_path / f"part-{i}.parquet")
        pq.write_table(pa.table({"x": pa.array(range(i * per, (i + 1) * per), pa.int64())}),
                       path)
        paths.append(path)
    return paths


def with_pid(path):
    """Reads a part and stamps each record with the process that read it."""
    for batch in dray.read_file(path):
        yield {"x": batch.column("x").to_pylist(), "pid": [os.getpid()] * batch.num_rows}


def table(store):
    return dreamdb.Dataset.open("d", store=store).to_table(["x", "pid"])


def test_shards_run_as_ray_tasks_in_workers_and_the_driver_commits_once(store, tmp_path):
    files = parts(tmp_path, 6, 500)
    r = dray.ingest(store, "d", files, num_shards=3, reader=with_pid)
    assert r["records"] == 3000 and r["commit"]["added"] == 3000 and r["commit"]["shards"] == 3
    t = table(store)
    assert sorted(t.column("x").to_pylist()) == list(range(3000))
    assert os.getpid() not in set(t.column("pid").to_pylist())  # read in Ray workers
    head = dreamdb.Dataset.open("d", store=store).head
    again = dray.ingest(store, "d", files, num_shards=3, reader=with_pid)
    assert again["records"] == 0 and again["commit"]["already_committed"]
    assert dreamdb.Dataset.open("d", store=store).head == head


def failing_on_part_4(path):
    if path.endswith("part-4.parquet"):
        raise OSError("part 4 is unreadable")
    return with_pid(path)


def test_a_failed_task_fails_the_call_and_a_rerun_finishes_only_it(store, tmp_path):
    files = parts(tmp_path, 6, 100)
    with pytest.raises(Exception, match="part 4 is unreadable"):
        dray.ingest(store, "d", files, num_shards=3, job="j", reader=failing_on_part_4,
                    ray_remote_args={"max_retries": 0})
    assert table(store).num_rows == 0
    r = dray.ingest(store, "d", files, num_shards=3, job="j", reader=with_pid)
    assert [s["done_before"] for s in r["shards"]] == [True, True, False]
    assert sorted(table(store).column("x").to_pylist()) == list(range(600))


def test_write_dataset_from_ray_data(store):
    ds = ray.data.range(2000, override_num_blocks=8).map_batches(
        lambda b: {"x": b["id"], "pid": b["id"] * 0}, batch_format="numpy")
    r = dray.write_dataset(ds, store, "d", num_shards=4, job="rd")
    assert r["records"] == 2000 and r["commit"]["added"] == 2000
    assert sorted(table(store).column("x").to_pylist()) == list(range(2000))
