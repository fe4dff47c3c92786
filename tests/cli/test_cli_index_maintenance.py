# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Transcript tests for `dreamdb index status` (cell balance, recall drift, --sample),
`dreamdb index rebuild` and `dreamdb index step` (spec/21 §8.6, §8.7): their --json
shapes, a step that splits the cells skewed appends overfilled, and the errors.
"""

from __future__ import annotations

import json
import pathlib
import random

from cli_harness import Cli

DIM = 8


def rows(rng: random.Random, centers: list[list[float]], n: int) -> str:
    out = []
    for i in range(n):
        c = centers[i % len(centers)]
        out.append(json.dumps({"emb": [x + rng.gauss(0, 0.3) for x in c]}))
    return "\n".join(out) + "\n"


def make(cli: Cli, tmp_path: pathlib.Path) -> tuple[random.Random, list[list[float]]]:
    schema = {"fields": [{"name": "emb", "type": "embedding", "dim": DIM}]}
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    cli.ok("create", "vecs", "--schema", str(tmp_path / "schema.json"))
    rng = random.Random(11)
    centers = [[rng.gauss(0, 3) for _ in range(DIM)] for _ in range(12)]
    (tmp_path / "a.jsonl").write_text(rows(rng, centers, 600))
    cli.ok("ingest", "vecs", str(tmp_path / "a.jsonl"))
    return rng, centers


def test_status_reports_balance_and_drift(cli: Cli, tmp_path: pathlib.Path) -> None:
    make(cli, tmp_path)
    cli.ok("index", "build", "vecs", "emb", "--cells", "12")
    st = cli.ok("--json", "index", "status", "vecs", "emb").json()
    bal = st["balance"]
    assert set(bal) == {"nonempty", "max", "mean", "max_over_mean", "cv", "over_2x",
                        "under_quarter"}
    assert bal["mean"] == 50 and bal["nonempty"] <= 12
    drift = st["drift"]
    assert drift["queries"] == 64 and drift["nprobe"] == st["nprobe"]
    assert 0 <= drift["recall"] <= 1
    assert drift["calibrated_recall"] == st["calibration"]["recall"]
    assert abs(drift["drift"] - (drift["calibrated_recall"] - drift["recall"])) < 2e-4
    small = cli.ok("--json", "index", "status", "vecs", "emb", "--sample", "10").json()
    assert small["drift"]["queries"] == 10
    assert "drift" not in cli.ok("--json", "index", "status", "vecs", "emb", "--sample", "0").json()
    text = cli.ok("index", "status", "vecs", "emb").out
    assert "cell balance: " in text and "recall drift: recall@10 " in text
    cli.fails("invalid_argument", "index", "status", "vecs", "emb", "--sample", "x")


def test_step_splits_overfull_cells_and_rebuild_retrains(cli: Cli,
                                                        tmp_path: pathlib.Path) -> None:
    rng, centers = make(cli, tmp_path)
    cli.ok("index", "build", "vecs", "emb", "--cells", "24", "--bits", "2")
    # Skewed growth: 1,800 records around one centre.
    (tmp_path / "b.jsonl").write_text(rows(rng, centers[:1], 1800))
    cli.ok("ingest", "vecs", str(tmp_path / "b.jsonl"))
    before = cli.ok("--json", "index", "status", "vecs", "emb").json()
    assert before["balance"]["over_2x"] >= 1
    step = cli.ok("--json", "index", "step", "vecs", "emb").json()
    assert step["changed"] is True and step["split"] >= 1
    assert step["entries"] == 2400 and step["cells_before"] == 24
    assert step["buckets_written"] + step["buckets_kept"] == step["buckets"]
    assert step["buckets_kept"] > 0
    after = cli.ok("--json", "index", "status", "vecs", "emb").json()
    assert after["index"] == step["index"] and after["bits"] == 2
    assert after["cells"] == step["cells"]
    # A balanced index: nothing to do, nothing committed.
    again = cli.ok("--json", "index", "step", "vecs", "emb").json()
    if not again["changed"]:
        assert again["head"] == step["head"]
    text = cli.ok("index", "rebuild", "vecs", "emb").out
    assert text.startswith("rebuilt ivf index on emb: 49 cells, 2400 entries")
    rebuilt = cli.ok("--json", "index", "status", "vecs", "emb").json()
    assert rebuilt["bits"] == 2 and rebuilt["cells"] == 49  # round(sqrt(2400))
    j = cli.ok("--json", "index", "rebuild", "vecs", "emb").json()
    assert set(j) >= {"dataset", "branch", "field", "algorithm", "cells", "nprobe", "entries",
                      "buckets", "index", "head", "seconds"}


def test_maintenance_errors(cli: Cli, tmp_path: pathlib.Path) -> None:
    make(cli, tmp_path)
    r = cli.fails("not_found", "index", "step", "vecs", "emb")
    assert "index build" in r.err
    r = cli.fails("not_found", "index", "rebuild", "vecs", "emb")
    assert "index build" in r.err
    cli.ok("index", "build", "vecs", "emb", "--algorithm", "imi")
    r = cli.fails("invalid_argument", "index", "step", "vecs", "emb")
    assert "index rebuild" in r.err
