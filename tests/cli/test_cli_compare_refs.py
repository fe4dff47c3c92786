# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Transcript tests for `dreamdb compare-refs` (cli/README.md "Dataset commands"):
the wide rows, --only-differing / --limit / --range / --summary-only, the summary's
statistics in text and --json, and the errors with their exit codes."""

from __future__ import annotations

import json
import pathlib

import pytest

from cli_harness import EXIT, Cli

SCHEMA = {"fields": [
    {"name": "label", "type": "categorical"},
    {"name": "score", "type": "float64", "optional": True},
    {"name": "emb", "type": "embedding", "dim": 2, "optional": True},
]}


def rows(run) -> list[dict]:
    """The record lines of a text-mode run (JSON objects; the summary lines follow)."""
    return [json.loads(line) for line in run.out.splitlines() if line.startswith("{")]


def jsonl(*records: dict) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


@pytest.fixture
def two(cli: Cli, tmp_path: pathlib.Path) -> Cli:
    """Dataset "d": v1 = anchors 0..3; branch exp changes 1 and 2, deletes 3, adds 4."""
    (tmp_path / "s.json").write_text(json.dumps(SCHEMA))
    cli.ok("create", "d", "--schema", str(tmp_path / "s.json"))
    cli.ok("ingest", "d", "-", input=jsonl(
        {"anchor": 0, "label": "cat", "score": 1.0, "emb": [1, 0]},
        {"anchor": 1, "label": "dog", "score": 2.0, "emb": [0, 1]},
        {"anchor": 2, "label": "cat", "score": 3.0, "emb": [1, 1]},
        {"anchor": 3, "label": "dog", "score": 4.0, "emb": [1, 0]},
    ))
    cli.ok("snapshot", "d", "v1")
    cli.ok("branch", "d", "exp")
    cli.ok("ingest", "d", "-", "--branch", "exp", input=jsonl(
        {"anchor": 1, "label": "cat", "score": 2.5, "emb": [0, 1]},
        {"anchor": 2, "label": "cat", "score": 4.0, "emb": [-1, -1]},
        {"anchor": 4, "label": "bird", "score": 9.0, "emb": [1, 0]},
    ))
    cli.ok("delete", "d", "3", "--branch", "exp")
    return cli


def test_rows_are_an_outer_join_in_anchor_order(two: Cli) -> None:
    out = rows(two.ok("compare-refs", "d", "v1", "exp", "--fields", "label,score"))
    assert [r["anchor"] for r in out] == [0, 1, 2, 3, 4]
    assert list(out[0]) == ["anchor", "label@v1", "label@exp", "score@v1", "score@exp"]
    assert out[1] == {"anchor": 1, "label@v1": "dog", "label@exp": "cat",
                      "score@v1": 2.0, "score@exp": 2.5}
    assert out[3]["score@exp"] is None and out[3]["label@v1"] == "dog"
    assert out[4]["score@v1"] is None and out[4]["score@exp"] == 9.0


def test_json_summary_statistics(two: Cli) -> None:
    lines = two.ok("--json", "compare-refs", "d", "v1", "exp").jsonl()
    assert len(lines) == 6 and "summary" in lines[-1]
    s = lines[-1]["summary"]
    assert s["dataset"] == "d" and s["refs"] == ["v1", "exp"]
    assert s["fields"] == ["label", "score", "emb"]
    assert s["present"] == [4, 4] and s["anchors"] == 5
    assert s["differing"] == 4 and s["emitted"] == 5
    assert all(m.startswith("b") and len(m) == 56 for m in s["manifests"])
    stats = {st["field"]: st for st in s["stats"]}
    score = stats["score"]
    assert (score["baseline"], score["ref"]) == ("v1", "exp")
    assert (score["both"], score["only_baseline"], score["only_ref"]) == (3, 1, 1)
    assert score["differing"] == 2 and score["agreement"] == pytest.approx(1 / 3)
    assert score["mean_diff"] == pytest.approx(0.5)  # (0 + 0.5 + 1) / 3
    assert score["median_diff"] == 0.5 and score["median_approximate"] is False
    assert score["mean_abs_diff"] == pytest.approx(0.5)
    label = stats["label"]
    assert label["agreement"] == pytest.approx(2 / 3) and "mean_diff" not in label
    emb = stats["emb"]
    assert emb["min_cosine"] == pytest.approx(-1.0)
    assert emb["mean_cosine"] == pytest.approx(1 / 3)


def test_only_differing_limit_range_and_summary_only(two: Cli) -> None:
    out = rows(two.ok("compare-refs", "d", "v1", "exp", "--only-differing", "--fields", "score"))
    assert [r["anchor"] for r in out] == [1, 2, 3, 4]
    out = two.ok("--json", "compare-refs", "d", "v1", "exp", "--limit", "2").jsonl()
    assert [r["anchor"] for r in out[:-1]] == [0, 1]
    assert out[-1]["summary"]["anchors"] == 5  # the summary covers everything
    out = two.ok("--json", "compare-refs", "d", "v1", "exp", "--range", "1:3").jsonl()
    assert [r["anchor"] for r in out[:-1]] == [1, 2]
    only = two.ok("--json", "compare-refs", "d", "v1", "exp", "--summary-only").json()
    assert only["summary"]["emitted"] == 0 and only["summary"]["anchors"] == 5


def test_text_summary(two: Cli) -> None:
    out = two.ok("compare-refs", "d", "v1", "exp", "--summary-only").out.splitlines()
    assert out[0] == "5 anchors of 'd' in v1 (4), exp (4); 4 rows differ"
    score = next(line for line in out if line.startswith("score"))
    assert "3 in both (1 only in v1, 1 only in exp), 2 differ" in score
    assert "exp - v1: mean 0.5, median 0.5, mean |diff| 0.5" in score
    assert "cosine mean 0.333333, min -1" in next(l for l in out if l.startswith("emb"))


def test_three_refs_compare_each_with_the_baseline(two: Cli) -> None:
    two.ok("branch", "d", "other", "--from", "v1")
    s = two.ok("--json", "compare-refs", "d", "v1", "exp", "branch:other",
               "--fields", "score", "--summary-only").json()["summary"]
    assert [(st["baseline"], st["ref"]) for st in s["stats"]] == [("v1", "exp"),
                                                                  ("v1", "branch:other")]
    assert s["stats"][1]["differing"] == 0 and s["stats"][1]["agreement"] == 1
    out = rows(two.ok("compare-refs", "d", "v1", "exp", "branch:other", "--fields", "score",
                      "--limit", "1"))
    assert len(out) == 1
    assert list(out[0]) == ["anchor", "score@v1", "score@exp", "score@branch:other"]


def test_errors(two: Cli) -> None:
    r = two.fails("usage", "compare-refs", "d", "v1")
    assert "at least 2 refs" in r.err
    e = two.fails("not_found", "--json", "compare-refs", "d", "v1", "nope").error_json()
    assert "'nope'" in e["message"]
    e = two.fails("invalid_argument", "--json", "compare-refs", "d", "v1", "exp",
                  "--fields", "scroe").error_json()
    assert "unknown field 'scroe'" in e["message"]
    e = two.fails("invalid_argument", "--json", "compare-refs", "d", "v1", "v1").error_json()
    assert "given twice" in e["message"]
    two.fails("not_found", "compare-refs", "nodata", "a", "b")
    assert EXIT["usage"] == 2
