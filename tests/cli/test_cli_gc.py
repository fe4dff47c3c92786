# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Transcript tests for `dreamdb gc` (spec/06-refs.md §6, §8) against a file:// store.

GC reclaims a deleted branch and objects no commit ever named, keeps everything with a
long grace period, --dry-run changes no file, a second run deletes nothing, a missing
reachable object makes it delete nothing, and `kill -9` at random points of a sweep leaves
a store that verifies and reads back.
"""

from __future__ import annotations

import json
import os
import pathlib
import random
import signal
import subprocess
import time

from cli_harness import EXIT, Cli, clean_env

SCHEMA = {"fields": [{"name": "label", "type": "categorical"},
                     {"name": "n", "type": "int64"}]}


def files(store: pathlib.Path) -> set[str]:
    return {str(p.relative_to(store)) for p in (store / "objects").rglob("*") if p.is_file()}


def make_store(cli: Cli, tmp_path: pathlib.Path) -> None:
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SCHEMA))
    cli.ok("create", "d", "--schema", str(schema))
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"label": f"l{i % 3}", "n": i}) + "\n" for i in range(50)))
    cli.ok("ingest", "d", str(rows))
    cli.ok("snapshot", "d", "v1")
    cli.ok("branch", "d", "tmp")
    more = tmp_path / "more.jsonl"
    more.write_text("".join(json.dumps({"label": "x", "n": 1000 + i}) + "\n" for i in range(20)))
    cli.ok("ingest", "d", str(more), "--branch", "tmp")
    head = cli.ok("ref", "get", "d/branches/tmp").out.split()[0]
    cli.ok("ref", "delete", "d/branches/tmp", "--expect", head)


def gc(cli: Cli, *args: str) -> dict:
    return cli.ok("--json", "gc", *args).json()


def test_gc_reclaims_a_deleted_branch_and_abandoned_objects(cli: Cli, store_dir: pathlib.Path,
                                                            tmp_path: pathlib.Path) -> None:
    make_store(cli, tmp_path)
    orphan = cli.put(b"an object of a commit that never moved its ref")
    rows_before = cli.ok("cat", "d").out
    objects = files(store_dir)
    time.sleep(0.05)  # so that every object is older than a grace period of 0

    kept = gc(cli, "--grace", "48h")
    assert kept["deleted_objects"] == 0 and kept["young_objects"] >= 4, kept
    assert kept["refs"] == 2 and kept["found_objects"] == len(objects), kept
    assert files(store_dir) == objects

    dry = gc(cli, "--grace", "0", "--no-writers-running", "--dry-run")
    assert dry["dry_run"] is True and dry["deleted_objects"] == kept["young_objects"], dry
    assert files(store_dir) == objects

    r = gc(cli, "--grace", "0", "--no-writers-running")
    assert r["dry_run"] is False
    for key in ("found_objects", "found_bytes", "deleted_objects", "deleted_bytes",
                "reachable_objects", "reachable_bytes"):
        assert r[key] == dry[key], key
    assert r["found_objects"] == (r["reachable_objects"] + r["leased_objects"] +
                                  r["young_objects"] + r["deleted_objects"])
    assert len(files(store_dir)) == len(objects) - r["deleted_objects"]
    cli.fails("not_found", "object", "head", orphan)
    cli.ok("verify")
    assert cli.ok("cat", "d").out == rows_before

    again = gc(cli, "--grace", "0", "--no-writers-running")
    assert again["deleted_objects"] == 0 and again["found_objects"] == r["reachable_objects"]

    text = cli.ok("gc", "--grace", "0", "--no-writers-running").out.splitlines()
    assert text[0].startswith("found ") and text[1].startswith("kept ")
    assert text[2] == "deleted 0 objects (0 bytes)", text


def test_gc_grace_under_an_hour_needs_no_writers_running(cli: Cli,
                                                         tmp_path: pathlib.Path) -> None:
    make_store(cli, tmp_path)
    r = cli.fails("invalid_argument", "gc", "--grace", "10m")
    assert "no writer is running" in r.err, r
    r = cli.fails("invalid_argument", "gc", "--grace", "ten")
    assert "duration 'ten' is not valid" in r.err, r


def test_gc_with_a_missing_reachable_object_deletes_nothing(cli: Cli, store_dir: pathlib.Path,
                                                            tmp_path: pathlib.Path) -> None:
    make_store(cli, tmp_path)
    time.sleep(0.05)
    gc(cli, "--grace", "0", "--no-writers-running")  # now every object left is reachable
    head = cli.ok("ref", "get", "d/branches/main").out.split()[0]
    reachable = [p for p in (store_dir / "objects").rglob("*") if p.is_file()]
    victim = next(p for p in reachable if p.name != head)
    orphan = cli.put(b"garbage")
    victim.unlink()
    time.sleep(0.05)
    r = cli.run("gc", "--grace", "0", "--no-writers-running")
    assert r.code == EXIT["corrupt"], r
    assert r.out.startswith("problem: "), r
    assert "nothing was deleted" in r.err, r
    cli.ok("object", "head", orphan)
    assert len(files(store_dir)) == len(reachable)  # one gone, the orphan added


def test_gc_killed_at_random_points_leaves_a_store_that_verifies(
        cli: Cli, store_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    make_store(cli, tmp_path)
    for i in range(60):
        cli.put(b"garbage %d" % i)
    rows = cli.ok("cat", "d").out
    time.sleep(0.05)
    rng = random.Random(13)
    trials = int(os.environ.get("DREAMDB_GC_KILL_TRIALS", "4"))
    for _ in range(trials):
        p = subprocess.Popen([str(cli.binary), "--store", cli.store_uri, "gc", "--grace", "0",
                              "--no-writers-running"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=clean_env())
        time.sleep(rng.uniform(0, 0.15))
        p.send_signal(signal.SIGKILL)
        p.wait()
        cli.ok("verify")
        assert cli.ok("cat", "d").out == rows
        assert cli.ok("cat", "d", "--at", "v1").out == rows
    r = gc(cli, "--grace", "0", "--no-writers-running")
    assert r["young_objects"] == 0
    assert len(files(store_dir)) == r["reachable_objects"]
    cli.ok("verify")


def test_gc_retention_cuts_history_and_log_stops_with_a_note(cli: Cli, store_dir: pathlib.Path,
                                                            tmp_path: pathlib.Path) -> None:
    """--keep-last keeps each ref's last versions; the snapshot pins v1; `log` ends at the
    cut with a note, verify passes, and a NAME filter without a rule is refused."""
    make_store(cli, tmp_path)
    for i in range(3):
        cli.ok("delete", "d", str(i))
    assert len(cli.ok("--json", "log", "d").jsonl()) == 5  # create, ingest, 3 deletes
    cli.fails("invalid_argument", "gc", "d", "--grace", "0", "--no-writers-running")
    compacted = cli.ok("--json", "compact", "d").json()
    assert compacted["changed"] is True and compacted["records"] == 47
    time.sleep(0.05)
    r = gc(cli, "d", "--keep-last", "2", "--grace", "0", "--no-writers-running")
    # main keeps compact + the last delete; v1 (the ingest) keeps itself and its parent.
    assert r["pruned_versions"] == 1 and r["deleted_objects"] > 0, r
    log = cli.ok("--json", "log", "d").jsonl()
    assert len(log) == 2 and log[-1].get("history_pruned") is True
    assert "history_pruned" not in log[0]
    assert "older history was pruned" in cli.ok("log", "d").out
    cli.ok("verify")
    assert len(cli.ok("cat", "d", "--at", "v1").out.splitlines()) == 50
    assert cli.ok("gc", "--grace", "0", "--no-writers-running").out.count("deleted 0 objects") == 1
