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


def s3_keys_containing(uri: str, needle: bytes) -> list:
    """The keys under an s3:// store's prefix whose bytes contain `needle`, read straight
    from the server (botocore), not through DreamDB."""
    import urllib.parse

    import botocore.session
    from botocore.config import Config

    parsed = urllib.parse.urlparse(uri)
    endpoint = urllib.parse.parse_qs(parsed.query)["endpoint"][0]
    client = botocore.session.get_session().create_client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, connect_timeout=5, read_timeout=30))
    hits = []
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=parsed.netloc, Prefix=parsed.path.lstrip("/") + "/")
    for page in pages:
        for o in page.get("Contents", []):
            body = client.get_object(Bucket=parsed.netloc, Key=o["Key"])["Body"].read()
            if needle in body:
                hits.append(o["Key"])
    return hits


@pytest.fixture(params=["file", "s3"])
def retention_store(request, tmp_path):
    """(store URI, copies_of(needle) -> where the store's raw bytes hold `needle`) on a
    fresh file:// directory and a fresh s3:// prefix (the local S3 server; conftest's
    s3_store fixture skips or fails without one)."""
    if request.param == "file":
        root = tmp_path / "s"
        return str(root), lambda needle: files_containing(root, needle)
    uri = request.getfixturevalue("s3_store")
    return uri, lambda needle: s3_keys_containing(uri, needle)


def test_field_retention_reclaims_old_values_but_snapshots_and_heads_keep_them(
        retention_store, dreamdb_bin):
    uri, copies_of = retention_store
    store = dreamdb.Store.open(uri, create=True)
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
    assert copies_of(SECRET)

    r = dreamdb.gc(store, grace="0", no_writers_running=True)
    assert r["field_retention"][0]["objects"] == 2
    assert copies_of(SECRET) == []

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


def test_field_retention_cli_sets_shows_replaces_and_clears_rules(retention_store, dreamdb_bin):
    store = dreamdb.Store.open(retention_store[0], create=True)
    dreamdb.Dataset.create("d", dreamdb.Schema().add_int("x"), store=store)
    bad = subprocess.run([dreamdb_bin, "--store", store.uri, "retention", "set", "d", "--field",
                          "nope", "--keep-since", "30d"], capture_output=True, text=True)
    assert bad.returncode == 3 and "has no field 'nope'" in bad.stderr
    ok = subprocess.run([dreamdb_bin, "--store", store.uri, "retention", "set", "d", "--field",
                         "x", "--keep-since", "30d"], capture_output=True, text=True)
    assert ok.returncode == 0 and "older than 30d" in ok.stdout

    def cli(*args):
        return subprocess.run([dreamdb_bin, "--store", store.uri, *args], capture_output=True,
                              text=True)

    assert cli("retention", "show").stdout == "d x keep-since 30d\n"
    # A new window replaces the field's rule; clear removes it, a second clear is not_found.
    assert cli("retention", "set", "d", "--field", "x", "--keep-since", "12h").returncode == 0
    assert cli("retention", "show", "d").stdout == "d x keep-since 12h\n"
    cleared = cli("retention", "clear", "d", "--field", "x")
    assert cleared.returncode == 0 and "cleared" in cleared.stdout
    assert cli("retention", "show", "d").stdout == ""
    again = cli("retention", "clear", "d", "--field", "x")
    assert again.returncode == 4 and "has no rule for field 'x'" in again.stderr
