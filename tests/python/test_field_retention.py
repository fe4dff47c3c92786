# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Per-field retention from Python and the CLI (spec/06-refs.md §6.12): old versions keep a
field's values only where a branch, snapshot or lease targets them."""

from __future__ import annotations

import json
import pathlib
import subprocess
import time

import pytest

import dreamdb

SECRET = b"PY-RECLAIM-ME-9c2f41-old-payload-of-record-1"


def files_containing(root: pathlib.Path, needle: bytes) -> list:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_field_retention_reclaims_old_values_but_snapshots_and_heads_keep_them(
        tmp_path, dreamdb_bin):
    root = tmp_path / "s"
    store = dreamdb.Store.open(str(root), create=True)
    schema = dreamdb.Schema().add_int("x").add_blob("payload")
    ds = dreamdb.Dataset.create("d", schema, store=store)
    ds.append_many({"x": [0], "payload": [b"zero"]}, anchors=[0])
    old = ds.append_many({"x": [10], "payload": [SECRET]}, anchors=[1])
    ds.append_many({"x": [11], "payload": [b"pinned"]}, anchors=[1])
    ds.snapshot("snap")
    mid = ds.append_many({"x": [12], "payload": [b"mid"]}, anchors=[1])
    # The window is 1 s: everything above is older than it when GC runs.
    time.sleep(1.5)
    ds.append_many({"x": [13], "payload": [b"head"]}, anchors=[1])

    dreamdb.set_field_retention(store, "d", "payload", keep_since="1s")
    assert [(r["field"], r["keep_since_s"]) for r in dreamdb.field_retention(store, "d")] == [
        ("payload", 1)]
    # The CLI shows the same rule.
    shown = subprocess.run([dreamdb_bin, "--store", store.uri, "--json", "retention", "show",
                            "d"], check=True, capture_output=True, text=True).stdout
    assert json.loads(shown.splitlines()[0])["ref"] == "d/retention/payload/1"

    # gc --dry-run --json reports what the rule would reclaim, and deletes nothing.
    out = subprocess.run([dreamdb_bin, "--store", store.uri, "--json", "gc", "--grace", "0",
                          "--no-writers-running", "--dry-run"],
                         check=True, capture_output=True, text=True).stdout
    dry = json.loads(out.splitlines()[-1])
    [rule] = dry["field_retention"]
    assert rule["field"] == "payload" and rule["objects"] == 2 and rule["bytes"] > 0
    assert files_containing(root, SECRET)

    r = dreamdb.gc(store, grace="0", no_writers_running=True)
    assert r["field_retention"][0]["objects"] == 2
    assert files_containing(root, SECRET) == []

    def payloads(at):
        t = dreamdb.Dataset.open_at("d", at, store=store).to_table(fields=["payload"])
        return [bytes(v) for v in t.column("payload").to_pylist()]

    assert payloads("snap") == [b"zero", b"pinned"]
    assert payloads("main") == [b"zero", b"head"]
    at_mid = dreamdb.Dataset.open_at("d", mid, store=store)
    assert at_mid.to_table(fields=["x"]).column("x").to_pylist() == [0, 12]
    with pytest.raises(dreamdb.NotFoundError, match="retained without field 'payload'") as e:
        at_mid.to_table(fields=["payload"])
    assert mid in str(e.value)
    with pytest.raises(dreamdb.NotFoundError, match="retained without field 'payload'"):
        dreamdb.Dataset.open_at("d", old, store=store).take([1], fields=["payload"])

    v = dreamdb.verify(store, "d")
    assert v["problems"] == []
    assert {w["manifest"] for w in v["retained_without"]} == {old, mid}
    text = subprocess.run([dreamdb_bin, "--store", store.uri, "verify", "d"], check=True,
                          capture_output=True, text=True).stdout
    assert f"version {mid} is retained without field 'payload'" in text

    dreamdb.clear_field_retention(store, "d", "payload")
    with pytest.raises(dreamdb.NotFoundError):
        store.clear_field_retention("d", "payload")
    assert dreamdb.gc(store, grace="0", no_writers_running=True)["deleted_objects"] == 0


def test_field_retention_cli_refuses_unknown_fields(tmp_path, dreamdb_bin):
    store = dreamdb.Store.open(str(tmp_path / "s"), create=True)
    dreamdb.Dataset.create("d", dreamdb.Schema().add_int("x"), store=store)
    bad = subprocess.run([dreamdb_bin, "--store", store.uri, "retention", "set", "d", "--field",
                          "nope", "--keep-since", "30d"], capture_output=True, text=True)
    assert bad.returncode == 3 and "has no field 'nope'" in bad.stderr
    ok = subprocess.run([dreamdb_bin, "--store", store.uri, "retention", "set", "d", "--field",
                         "x", "--keep-since", "30d"], capture_output=True, text=True)
    assert ok.returncode == 0 and "older than 30d" in ok.stdout
