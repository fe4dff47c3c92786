# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Transcript tests for an embedding field created with ``"index": {"raw": false}`` in the
JSON schema of `dreamdb create` (spec/21-spatial-index.md §2.1, spec/12-segments.md §9):
the schema keeps `raw`, ingest stores 8-bit reconstructions (cat/take print them, within
the spec's error bound), search (exact and indexed) and index build work, verify is clean,
and a non-finite value in such a field is refused naming its line.
"""

from __future__ import annotations

import json
import math
import pathlib
import random

from cli_harness import Cli

DIM = 8


def make(cli: Cli, tmp_path: pathlib.Path, n: int = 300) -> list[list[float]]:
    schema = {"fields": [{"name": "emb", "type": "embedding", "dim": DIM,
                          "index": {"algorithm": "ivf", "raw": False}},
                         {"name": "label", "type": "int64"}]}
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    cli.ok("create", "vecs", "--schema", str(tmp_path / "schema.json"))
    rng = random.Random(7)
    centers = [[rng.gauss(0, 3) for _ in range(DIM)] for _ in range(5)]
    vecs, rows = [], []
    for i in range(n):
        v = [c + rng.gauss(0, 0.5) for c in centers[i % 5]]
        vecs.append(v)
        rows.append(json.dumps({"emb": v, "label": i}))
    (tmp_path / "rows.jsonl").write_text("\n".join(rows) + "\n")
    cli.ok("ingest", "vecs", str(tmp_path / "rows.jsonl"))
    return vecs


def within_bound(x: list[float], y: list[float]) -> bool:
    """spec/12-segments.md §9.2: |x - x^| <= (max - min) / 510 + 2^-22 max(|min|, |max|),
    with x rounded to float32 as the store holds it."""
    lo, hi = min(x), max(x)
    bound = (hi - lo) / 510 + math.ldexp(max(abs(lo), abs(hi)), -22) + 1e-6 * max(1, abs(hi))
    return all(abs(a - b) <= bound for a, b in zip(x, y))


def qtext(v: list[float]) -> str:
    return ",".join(repr(x) for x in v)


def test_schema_keeps_raw_false(cli: Cli, tmp_path: pathlib.Path) -> None:
    make(cli, tmp_path, n=10)
    shown = cli.ok("--json", "schema", "vecs").json()
    fields = shown["fields"] if "fields" in shown else shown["schema"]["fields"]
    emb = next(f for f in fields if f["name"] == "emb")
    assert emb["index"]["raw"] is False


def test_reads_are_reconstructions_search_and_index(cli: Cli, tmp_path: pathlib.Path) -> None:
    vecs = make(cli, tmp_path)
    recs = cli.ok("cat", "vecs").jsonl()
    assert len(recs) == 300
    inexact = 0
    for r in recs:
        x = vecs[r["label"]]
        assert within_bound(x, r["emb"]), r["label"]
        inexact += any(abs(a - b) > 1e-6 * max(1, abs(a)) for a, b in zip(x, r["emb"]))
    assert inexact > 250  # the float32 copy is not stored
    taken = cli.ok("take", "vecs", "17").jsonl()
    assert taken[0]["emb"] == next(r["emb"] for r in recs if r["label"] == 17)

    # Exact search finds a stored vector first; an index builds and agrees.
    stored = taken[0]["emb"]
    hits = cli.ok("--json", "search", "vecs", "emb", "--vector", qtext(stored), "-k", "3",
                  "--exact").jsonl()
    assert hits[0]["anchor"] == 17 and abs(hits[0]["score"] - 1.0) < 1e-5
    b = cli.ok("--json", "index", "build", "vecs", "emb", "--cells", "6", "--seed", "2").json()
    assert b["entries"] == 300
    via = cli.ok("--json", "search", "vecs", "emb", "--like", "17", "-k", "3",
                 "--nprobe", "6").jsonl()
    assert [h["anchor"] for h in via] == [h["anchor"] for h in hits]
    assert cli.ok("--json", "verify", "vecs").json()["problems"] == 0


def test_non_finite_values_are_refused_naming_the_line(cli: Cli, tmp_path: pathlib.Path) -> None:
    make(cli, tmp_path, n=5)
    # 1e39 is a valid JSON number but infinite as float32: ingest names the line.
    rows = [json.dumps({"emb": [0.5] * DIM, "label": 100}),
            '{"emb": [0.5, 1e39, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5], "label": 101}']
    (tmp_path / "bad.jsonl").write_text("\n".join(rows) + "\n")
    r = cli.fails("invalid_argument", "ingest", "vecs", str(tmp_path / "bad.jsonl"))
    assert "line 2" in r.err and "'emb'" in r.err, r.err
    assert cli.ok("--json", "count", "vecs").json()["count"] == 5
