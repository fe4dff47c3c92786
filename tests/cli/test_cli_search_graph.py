# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Transcript tests for graph indexes and the quantizer choice through the CLI
(spec/21-spatial-index.md §2, §4.5, §7.8, §8.4): `index build --algorithm graph
[--degree N]`, `index status` (nodes and the tail appended since the build), `search
--ef N`, `index build --quantizer pq4`, and their errors with exit codes.
"""

from __future__ import annotations

import json
import pathlib

from cli_harness import Cli
from test_cli_search import make, qtext


def test_graph_build_status_search_and_append(cli: Cli, tmp_path: pathlib.Path) -> None:
    vecs = make(cli, tmp_path)
    b = cli.ok("--json", "index", "build", "vecs", "emb", "--algorithm", "graph",
               "--degree", "12").json()
    assert b["algorithm"] == "graph" and b["nodes"] == 400 and b["degree"] == 12
    assert b["cells"] == 1 and b["quantizer"] == "rabitq"
    st = cli.ok("--json", "index", "status", "vecs", "emb").json()
    assert st["nodes"] == 400 and st["tail"] == 0 and st["entries"] == 400
    text = cli.ok("index", "status", "vecs", "emb").out
    assert text.startswith("field emb: graph cosine bits=4 dim=8 degree=12; 400 graph nodes")
    hits = total = 0
    for a in (3, 77, 150, 299, 388):
        q = qtext(vecs[a])
        exact = {h["anchor"] for h in cli.ok("--json", "search", "vecs", "emb", "--vector", q,
                                             "-k", "10", "--exact").jsonl()}
        got = cli.ok("--json", "search", "vecs", "emb", "--vector", q, "-k", "10",
                     "--ef", "100").jsonl()
        assert got[0]["anchor"] == a
        hits += len(exact & {h["anchor"] for h in got})
        total += len(exact)
    assert hits / total >= 0.9
    # Filters through the graph.
    got = cli.ok("--json", "search", "vecs", "emb", "--like", "5", "-k", "5", "--where",
                 "label == 2", "--fields", "label").jsonl()
    assert len(got) == 5 and all(h["label"] == 2 for h in got)
    # An append lands in the tail and is found.
    new = [x + 0.01 for x in vecs[10]]
    (tmp_path / "more.jsonl").write_text(json.dumps({"emb": new, "label": 9}) + "\n")
    cli.ok("ingest", "vecs", str(tmp_path / "more.jsonl"))
    st = cli.ok("--json", "index", "status", "vecs", "emb").json()
    assert st["nodes"] == 400 and st["tail"] == 1 and st["entries"] == 401
    got = cli.ok("--json", "search", "vecs", "emb", "--vector", qtext(new), "-k", "1").jsonl()
    assert got[0]["anchor"] == 400


def test_graph_and_quantizer_errors(cli: Cli, tmp_path: pathlib.Path) -> None:
    make(cli, tmp_path, n=100)
    r = cli.fails("invalid_argument", "index", "build", "vecs", "emb", "--algorithm", "graph",
                  "--quantizer", "pq4")
    assert "pq4" in r.err
    r = cli.fails("invalid_argument", "index", "build", "vecs", "emb", "--algorithm", "graph",
                  "--degree", "2")
    assert "degree" in r.err
    r = cli.fails("invalid_argument", "index", "build", "vecs", "emb", "--quantizer", "opq")
    assert "'opq'" in r.err
    r = cli.fails("invalid_argument", "search", "vecs", "emb", "--like", "1", "--ef", "0")
    assert "--ef" in r.err


def test_pq4_quantizer(cli: Cli, tmp_path: pathlib.Path) -> None:
    vecs = make(cli, tmp_path)
    b = cli.ok("--json", "index", "build", "vecs", "emb", "--quantizer", "pq4",
               "--cells", "4").json()
    assert b["quantizer"] == "pq4" and b["algorithm"] == "ivf" and b["entries"] == 400
    st = cli.ok("--json", "index", "status", "vecs", "emb").json()
    assert st["quantizer"] == "pq4"
    assert "quantizer=pq4" in cli.ok("index", "status", "vecs", "emb").out
    got = cli.ok("--json", "search", "vecs", "emb", "--vector", qtext(vecs[42]), "-k", "3",
                 "--nprobe", "4").jsonl()
    assert got[0]["anchor"] == 42
