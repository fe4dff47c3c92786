# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""GC, compaction and retention on s3:// against the local S3 server that
scripts/s3_server.sh starts (scripts/test.sh runs pytest with its settings exported), through
conftest's s3_store fixture: without DREAMDB_S3_ENDPOINT/DREAMDB_S3_BUCKET these tests fail
under CI or DREAMDB_REQUIRE_S3=1 and are skipped otherwise. Per-field retention on s3:// is in
test_field_retention.py."""

from __future__ import annotations

import subprocess
import time

import dreamdb


def test_gc_compact_and_retention_on_s3(s3_store, dreamdb_bin):
    store = dreamdb.Store.open(s3_store, create=True)
    ds = dreamdb.Dataset.create("d", dreamdb.Schema().add_int("x").add_blob("b"), store=store)
    for i in range(8):
        ds.append_many([{"x": i, "b": f"payload-{i}".encode()}])
    scratch = ds.create_branch("scratch")
    scratch.append_many([{"x": 100 + i, "b": b"scratch"} for i in range(5)])
    subprocess.run([dreamdb_bin, "--store", s3_store, "ref", "delete", "d/branches/scratch",
                    "--expect", scratch.head], check=True, capture_output=True)
    before = ds.to_table().to_pylist()
    ds.compact()
    assert ds.last_commit["changed"] and ds.last_commit["segments_after"] == 2
    time.sleep(1.1)  # LastModified has one-second resolution on S3
    r = store.gc(grace="0", no_writers_running=True)
    assert r["deleted_objects"] > 0 and r["young_objects"] == 0
    assert r["found_objects"] == (r["reachable_objects"] + r["leased_objects"] +
                                  r["young_objects"] + r["deleted_objects"])
    assert dreamdb.verify(store)["problems"] == []
    # Retention: keep the compacted head only; the history before it goes.
    cut = store.gc(grace="0", no_writers_running=True, keep_last=1, datasets=["d"])
    assert cut["pruned_versions"] == 1 and cut["deleted_objects"] > 0
    assert dreamdb.verify(store)["problems"] == []
    log = ds.history()
    assert len(log) == 1 and log[0].get("history_pruned") is True
    assert ds.to_table().to_pylist() == before
