# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""dreamdb.jobs (spec/14-semantics.md §19): shard writers in separate processes and one
commit give every record once with no caller-given anchors; a shard or a commit run twice
changes nothing; a missing shard makes the commit fail naming it; shard indices from
Slurm and Kubernetes variables."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import dreamdb
from dreamdb import jobs

WORKER = textwrap.dedent("""
    import sys
    from dreamdb import jobs
    store, shard, of, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    with jobs.ShardWriter(store, "d", job="j", shard=shard, of=of) as w:
        if not w.done:
            for start in range(shard * per, (shard + 1) * per, 25):
                w.append_many({"x": list(range(start, min(start + 25, (shard + 1) * per)))})
    print(w.records)
""")


@pytest.fixture
def store(tmp_path):
    uri = "file://" + str(tmp_path / "store")
    dreamdb.Dataset.create("d", dreamdb.Schema().add_int("x"), store=uri)
    return uri


def values(store: str) -> list:
    ds = dreamdb.Dataset.open("d", store=store)
    return sorted(ds.to_table(["x"]).column("x").to_pylist())


def test_shard_processes_and_one_commit_give_every_record_once(store):
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, store, str(k), "8", "100"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for k in range(8)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
        assert out.decode().strip() == "100"
    assert values(store) == []
    st = jobs.status(store, "d", job="j")
    assert st["finished"] == list(range(8)) and st["committed"] is None and st["of"] == 8
    r = jobs.commit(store, "d", job="j")
    assert r["added"] == 800 and not r["already_committed"]
    assert values(store) == list(range(800))
    head = dreamdb.Dataset.open("d", store=store).head
    # Again: nothing changes.
    again = subprocess.run([sys.executable, "-c", WORKER, store, "3", "8", "100"],
                           capture_output=True, check=True)
    assert again.stdout.decode().strip() == "0"
    assert jobs.commit(store, "d", job="j")["already_committed"]
    assert dreamdb.Dataset.open("d", store=store).head == head
    # A plain append afterwards gets fresh anchors.
    dreamdb.Dataset.open("d", store=store).append_many({"x": [900]})
    assert values(store) == list(range(800)) + [900]


def test_missing_shard_fails_the_commit_naming_it(store):
    for k in (0, 2):
        with jobs.ShardWriter(store, "d", job="j", shard=k, of=3) as w:
            w.append_many([{"x": k}])
    with pytest.raises(dreamdb.NotFoundError, match="shard 1 of 3 has not finished"):
        jobs.commit(store, "d", job="j")
    assert values(store) == []


def test_shard_index_from_launchers(monkeypatch):
    assert jobs.shard_index(2, 5) == (2, 5)
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "12")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "4")
    monkeypatch.setenv("SLURM_ARRAY_TASK_STEP", "4")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "3")
    assert jobs.shard_index() == (2, 3)
    with pytest.raises(dreamdb.InvalidArgumentError, match="SLURM_ARRAY_TASK_COUNT=3"):
        jobs.shard_index(of=4)
    for v in ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP",
              "SLURM_ARRAY_TASK_COUNT"):
        monkeypatch.delenv(v)
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "1")
    with pytest.raises(dreamdb.InvalidArgumentError, match="DREAMDB_SHARD_COUNT"):
        jobs.shard_index()
    monkeypatch.setenv("DREAMDB_SHARD_COUNT", "2")
    assert jobs.shard_index() == (1, 2)
    monkeypatch.delenv("JOB_COMPLETION_INDEX")
    with pytest.raises(dreamdb.NotFoundError, match="no shard index"):
        jobs.shard_index()


def test_done_shard_refuses_writes(store):
    w = jobs.ShardWriter(store, "d", job="j", shard=0, of=1)
    w.append_many([{"x": 1}])
    w.finish()
    assert w.done and w.dataset is None
    with pytest.raises(RuntimeError, match="done"):
        w.append_many([{"x": 2}])
    assert jobs.ShardWriter(store, "d", job="j", shard=0, of=1).done
