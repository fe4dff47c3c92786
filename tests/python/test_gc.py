# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""dreamdb.gc / Store.gc and reader leases from Python (spec/06-refs.md §6, §8)."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

import dreamdb


def make(store: str) -> dreamdb.Dataset:
    ds = dreamdb.Dataset.create("d", dreamdb.Schema().add_int("x"), store=store)
    ds.append_many([{"x": i} for i in range(20)])
    return ds


def test_gc_reclaims_a_deleted_branch_but_not_a_leased_one(tmp_path, dreamdb_bin):
    store = dreamdb.Store.open(str(tmp_path / "s"), create=True)
    main = make(store)
    gone = main.create_branch("gone")
    gone.append_many([{"x": 100 + i} for i in range(5)])
    pinned = main.create_branch("pinned")
    pinned.append_many([{"x": 200 + i} for i in range(5)])
    pinned_head = pinned.head
    lease = store.take_lease("d", "trainer", pinned_head, int(time.time()) + 3600)
    assert lease.startswith("d/leases/trainer/")
    for name, ds in (("gone", gone), ("pinned", pinned)):
        subprocess.run([dreamdb_bin, "--store", store.uri, "ref", "delete", f"d/branches/{name}",
                        "--expect", ds.head], check=True, capture_output=True)
    time.sleep(0.05)

    dry = dreamdb.gc(store, grace="0", no_writers_running=True, dry_run=True)
    r = store.gc(grace="0", no_writers_running=True)
    assert dry["dry_run"] and not r["dry_run"]
    assert r["deleted_objects"] == dry["deleted_objects"] > 0
    assert r["leases"] == 1 and r["leased_objects"] > 0
    assert r["found_objects"] == (r["reachable_objects"] + r["leased_objects"] +
                                  r["young_objects"] + r["deleted_objects"])
    assert dreamdb.verify(store)["problems"] == []
    at = dreamdb.Dataset.open_at("d", pinned_head, store=store)
    assert sorted(at.to_table().column("x").to_pylist()) == list(range(20)) + list(range(200, 205))
    store.release_lease(lease, pinned_head)
    assert store.gc(grace="0", no_writers_running=True)["leased_objects"] == 0


def test_gc_refuses_a_short_grace_without_no_writers_running(tmp_path):
    make(str(tmp_path / "s"))
    with pytest.raises(dreamdb.InvalidArgumentError, match="no writer is running"):
        dreamdb.gc(str(tmp_path / "s"), grace="10m")
    with pytest.raises(dreamdb.InvalidArgumentError, match="duration 'soon' is not valid"):
        dreamdb.gc(str(tmp_path / "s"), grace="soon")


def test_gc_keep_since_prunes_old_history_and_history_stops_there(tmp_path):
    store = dreamdb.Store.open(str(tmp_path / "s"), create=True)
    ds = make(store)
    for i in range(4):
        ds.append_many([{"x": 100 + i}])
    assert len(ds.history()) == 6
    rows = sorted(ds.to_table().column("x").to_pylist())
    time.sleep(0.05)
    kept = store.gc(grace="0", no_writers_running=True, keep_since="1h")
    assert kept["pruned_versions"] == 0 and kept["deleted_objects"] == 0
    cut = dreamdb.gc(store, grace="0", no_writers_running=True, keep_since="0", datasets=["d"])
    assert cut["pruned_versions"] == 1 and cut["deleted_objects"] > 0
    log = ds.history()
    assert len(log) == 1 and log[0]["history_pruned"] is True
    assert sorted(ds.to_table().column("x").to_pylist()) == rows
    assert dreamdb.verify(store)["problems"] == []
    with pytest.raises(dreamdb.InvalidArgumentError, match="keep-since or --keep-last"):
        store.gc(grace="0", no_writers_running=True, datasets=["d"])


def test_gc_in_passes_and_sharded_deletes_what_one_gc_does(tmp_path, dreamdb_bin):
    """spec/06 §6.8 (a mark budget forcing passes by id prefix) and §6.11 (a stored mark,
    then shard sweeps, indexed by Slurm array variables as sharded ingest is)."""
    store = dreamdb.Store.open(str(tmp_path / "s"), create=True)
    main = make(store)
    for i in range(6):
        main.append_many([{"x": 1000 + i}])
    gone = main.create_branch("gone")
    for i in range(6):
        gone.append_many([{"x": 100 + i}])
    subprocess.run([dreamdb_bin, "--store", store.uri, "ref", "delete", "d/branches/gone",
                    "--expect", gone.head], check=True, capture_output=True)
    time.sleep(0.05)
    dry = store.gc(grace="0", no_writers_running=True, dry_run=True)
    assert dry["mark_passes"] == 1 and dry["deleted_objects"] >= 12
    # Below what one pass holds, above what every pass holds (pages, manifests).
    budget = str(416 * dry["mark_peak_objects"] * 9 // 10)
    parted = store.gc(grace="0", no_writers_running=True, dry_run=True, mark_memory=budget)
    assert parted["mark_passes"] > 1
    assert parted["mark_peak_objects"] < dry["mark_peak_objects"]
    assert parted["deleted_objects"] == dry["deleted_objects"]
    with pytest.raises(dreamdb.InvalidArgumentError, match="size '2X' is not valid"):
        store.gc(grace="0", no_writers_running=True, mark_memory="2X")

    cli = [dreamdb_bin, "--store", store.uri, "--json", "gc"]
    mark = json.loads(subprocess.run(cli + ["--mark-only", "--grace", "0",
                                            "--no-writers-running"], check=True,
                                     capture_output=True, text=True).stdout.splitlines()[-1])
    assert mark["marked_objects"] == dry["reachable_objects"] and mark["deleted_objects"] == 0

    def sweep(task: int) -> dict:
        env = dict(os.environ, SLURM_ARRAY_TASK_ID=str(task), SLURM_ARRAY_TASK_MIN="0",
                   SLURM_ARRAY_TASK_COUNT="3")
        out = subprocess.run(cli + ["--sweep"], check=True, capture_output=True, text=True,
                             env=env).stdout
        r = json.loads(out.splitlines()[-1])
        assert r["mark"] == mark["mark"]
        return r

    assert sum(sweep(t)["deleted_objects"] for t in range(3)) == dry["deleted_objects"]
    assert sweep(1)["deleted_objects"] == 0  # a shard run again deletes nothing more
    assert dreamdb.verify(store)["problems"] == []
    assert sorted(main.to_table().column("x").to_pylist()) == (
        list(range(20)) + [1000 + i for i in range(6)])
    assert store.gc(grace="0", no_writers_running=True)["deleted_objects"] == 0
