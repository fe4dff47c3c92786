# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Transcript tests for `dreamdb merge` (cli/README.md "Dataset commands",
spec/14-semantics.md §16): fast-forward, --no-ff, merges of several sources, policies,
conflicts (exit 6 naming the anchors), --json shapes and usage errors."""

from __future__ import annotations

import json
import pathlib

import pytest

from cli_harness import EXIT, Cli

SCHEMA = {"fields": [
    {"name": "label", "type": "int64"},
    {"name": "note", "type": "string", "optional": True},
]}


def jsonl(*records: dict) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def labels(cli: Cli, at: str = "main") -> dict[int, int]:
    out = cli.ok("cat", "d", "--at", at, "--fields", "label").jsonl()
    return {r["anchor"]: r["label"] for r in out}


@pytest.fixture
def ds(cli: Cli, tmp_path: pathlib.Path) -> Cli:
    """Dataset "d": anchors 0..4 (label = anchor) on main; branch dev from there."""
    (tmp_path / "s.json").write_text(json.dumps(SCHEMA))
    cli.ok("create", "d", "--schema", str(tmp_path / "s.json"))
    cli.ok("ingest", "d", "-", input=jsonl(*({"anchor": a, "label": a} for a in range(5))))
    cli.ok("branch", "d", "dev")
    return cli


def test_fast_forward_then_up_to_date(ds: Cli) -> None:
    ds.ok("ingest", "d", "-", "--branch", "dev", input=jsonl({"anchor": 10, "label": 10}))
    out = ds.ok("--json", "merge", "d", "dev").json()
    assert out["result"] == "fast-forward"
    assert out["dataset"] == "d" and out["branch"] == "main" and out["sources"] == ["dev"]
    dev_head = ds.ok("--json", "count", "d", "--at", "dev").json()["manifest"]
    assert out["head"] == dev_head and out["count"] == 6
    again = ds.ok("merge", "d", "dev")
    assert again.out.startswith("already up to date")
    assert ds.ok("--json", "merge", "d", "dev").json()["result"] == "up-to-date"


def test_no_ff_writes_a_merge_commit(ds: Cli) -> None:
    ds.ok("ingest", "d", "-", "--branch", "dev", input=jsonl({"anchor": 10, "label": 10}))
    out = ds.ok("--json", "merge", "d", "dev", "--no-ff", "-m", "bring dev in").json()
    assert out["result"] == "merged" and len(out["parents"]) == 2 and out["added"] == 1
    log = ds.ok("--json", "log", "d", "--limit", "1").jsonl()
    assert log[0]["message"] == "bring dev in" and len(log[0]["parents"]) == 2


def test_three_way_union_and_text_output(ds: Cli) -> None:
    ds.ok("ingest", "d", "-", "--branch", "dev", input=jsonl({"anchor": 20, "label": 20}))
    ds.ok("ingest", "d", "-", input=jsonl({"anchor": 30, "label": 30}))
    ds.ok("delete", "d", "1", "--branch", "dev")
    r = ds.ok("merge", "d", "dev")
    assert r.out.startswith("merged 1 source into branch 'main' of 'd': 1 added, 0 replaced, "
                            "1 deleted; 6 records; head b"), r.out
    assert labels(ds) == {0: 0, 2: 2, 3: 3, 4: 4, 20: 20, 30: 30}
    ds.ok("verify", "d")


def test_conflict_exit_6_names_the_anchors_and_policies_resolve(ds: Cli) -> None:
    ds.ok("ingest", "d", "-", "--branch", "dev", input=jsonl({"anchor": 2, "label": 200}))
    ds.ok("ingest", "d", "-", input=jsonl({"anchor": 2, "label": -2}))
    r = ds.fails("conflict", "merge", "d", "dev")
    assert "anchor 2 field 'label' (changed on both sides)" in r.err
    assert "policy ours or theirs" in r.err
    err = ds.fails("conflict", "--json", "merge", "d", "dev").error_json()
    assert err["code"] == "conflict" and "anchor 2" in err["message"]
    assert labels(ds)[2] == -2  # nothing was committed
    ds.ok("branch", "d", "keep", "--from", "main")
    out = ds.ok("--json", "merge", "d", "dev", "--into", "keep", "--policy", "ours").json()
    assert out["branch"] == "keep" and out["conflicts_resolved"] == 1
    assert labels(ds, "keep")[2] == -2
    r = ds.ok("merge", "d", "dev", "--policy", "theirs")
    assert "1 conflicts resolved by policy theirs" in r.out
    assert labels(ds)[2] == 200


def test_merge_many_sources_octopus(ds: Cli) -> None:
    for i in range(3):
        ds.ok("branch", "d", f"w{i}")
        ds.ok("ingest", "d", "-", "--branch", f"w{i}",
              input=jsonl(*({"anchor": 1000 * (i + 1) + k, "label": k} for k in range(4))))
    out = ds.ok("--json", "merge", "d", "w0", "w1", "w2").json()
    assert out["result"] == "merged"
    assert len(out["parents"]) == 4 and len(out["merge_bases"]) == 3
    assert out["added"] == 12 and out["count"] == 17
    ds.ok("verify", "d")


def test_merge_a_snapshot_and_a_manifest_id(ds: Cli) -> None:
    ds.ok("ingest", "d", "-", "--branch", "dev", input=jsonl({"anchor": 7, "label": 7}))
    ds.ok("snapshot", "d", "s1", "--branch", "dev")
    ds.ok("ingest", "d", "-", input=jsonl({"anchor": 8, "label": 8}))
    assert ds.ok("--json", "merge", "d", "s1").json()["result"] == "merged"
    ds.ok("ingest", "d", "-", "--branch", "dev", input=jsonl({"anchor": 9, "label": 9}))
    dev_head = ds.ok("--json", "count", "d", "--at", "dev").json()["manifest"]
    ds.ok("merge", "d", dev_head)
    assert set(labels(ds)) == {0, 1, 2, 3, 4, 7, 8, 9}


def test_errors(ds: Cli) -> None:
    assert ds.run("merge", "d").code == EXIT["usage"]  # no SOURCE
    assert ds.run("merge", "d", "dev", "--policy", "mine").code == EXIT["usage"]
    r = ds.fails("not_found", "merge", "d", "nope")
    assert "merge source 'nope'" in r.err
    ds.fails("not_found", "merge", "d", "dev", "--into", "nowhere")
    ds.fails("not_found", "merge", "e", "dev")


def test_schema_clash_is_a_conflict_under_every_policy(ds: Cli) -> None:
    ds.ok("schema", "d", "add-field", "--name", "x", "--type", "int64")
    ds.ok("schema", "d", "add-field", "--name", "x", "--type", "string", "--branch", "dev")
    for policy in ("fail", "ours", "theirs"):
        r = ds.fails("conflict", "merge", "d", "dev", "--policy", policy)
        assert "field 'x' is int64 on the target but string" in r.err


def test_help(cli: Cli) -> None:
    top = cli.ok("--help", store=False).out
    assert "\n  merge " in top
    r = cli.ok("merge", "--help", store=False)
    assert r.out.startswith("usage: dreamdb merge NAME SOURCE..."), r.out
    for flag in ("--into", "--policy", "--no-ff", "--message"):
        assert flag in r.out
