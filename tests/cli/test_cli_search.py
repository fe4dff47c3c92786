# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Transcript tests for `dreamdb search` and `dreamdb index build|status`
(spec/21-spatial-index.md, cli/README.md "Vector search"): exact search before an index
exists, building the index, search through it (--vector, --like, --where, --fields, --at),
appends landing in the index, the --json shapes, and errors with their exit codes.
"""

from __future__ import annotations

import json
import math
import pathlib
import random

from cli_harness import Cli

DIM = 8


def vec(rng: random.Random, center: list[float]) -> list[float]:
    return [c + rng.gauss(0, 0.3) for c in center]


def make(cli: Cli, tmp_path: pathlib.Path, n: int = 400) -> list[list[float]]:
    schema = {"fields": [{"name": "emb", "type": "embedding", "dim": DIM},
                         {"name": "label", "type": "int64"},
                         {"name": "tag", "type": "string", "optional": True}]}
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    cli.ok("create", "vecs", "--schema", str(tmp_path / "schema.json"))
    rng = random.Random(5)
    centers = [[rng.gauss(0, 3) for _ in range(DIM)] for _ in range(6)]
    rows, vecs = [], []
    for i in range(n):
        v = vec(rng, centers[i % 6])
        vecs.append(v)
        rows.append(json.dumps({"emb": v, "label": i % 5, "tag": f"t{i}"}))
    (tmp_path / "rows.jsonl").write_text("\n".join(rows) + "\n")
    cli.ok("ingest", "vecs", str(tmp_path / "rows.jsonl"))
    return vecs


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def qtext(v: list[float]) -> str:
    return ",".join(repr(x) for x in v)


def test_exact_search_before_an_index(cli: Cli, tmp_path: pathlib.Path) -> None:
    vecs = make(cli, tmp_path)
    st = cli.ok("--json", "index", "status", "vecs", "emb").json()
    assert st["built"] is False and st["live"] == 400 and st["entries"] == 0
    assert "no index built" in cli.ok("index", "status", "vecs", "emb").out
    r = cli.ok("--json", "search", "vecs", "emb", "--vector", qtext(vecs[17]), "-k", "3")
    hits = r.jsonl()
    assert [h["rank"] for h in hits] == [1, 2, 3]
    assert hits[0]["anchor"] == 17
    assert abs(hits[0]["score"] - 1.0) < 1e-5
    best = sorted(range(len(vecs)), key=lambda i: -cosine(vecs[17], vecs[i]))[:3]
    assert [h["anchor"] for h in hits] == best
    text = cli.ok("search", "vecs", "emb", "--like", "17", "-k", "2").out.splitlines()
    assert text[0].split("\t")[:2] == ["1", "17"]
    assert len(text) == 2


def test_build_then_search_appends_filters_versions(cli: Cli, tmp_path: pathlib.Path) -> None:
    vecs = make(cli, tmp_path)
    before = cli.ok("--json", "count", "vecs").json()["manifest"]
    b = cli.ok("--json", "index", "build", "vecs", "emb", "--cells", "8", "--bits", "4",
               "--seed", "3").json()
    assert b["cells"] == 8 and b["entries"] == 400 and b["metric"] == "cosine"
    assert set(b) >= {"dataset", "branch", "field", "buckets", "index", "head", "seconds"}
    st = cli.ok("--json", "index", "status", "vecs", "emb").json()
    assert st["built"] is True and st["index"] == b["index"] and st["stale"] == 0
    # Through the index, every cell probed: the exact answer.
    q = qtext(vecs[33])
    exact = [h["anchor"] for h in
             cli.ok("--json", "search", "vecs", "emb", "--vector", q, "-k", "5", "--exact").jsonl()]
    fast = [h["anchor"] for h in
            cli.ok("--json", "search", "vecs", "emb", "--vector", q, "-k", "5",
                   "--nprobe", "8").jsonl()]
    assert fast == exact
    # Filters and projected fields.
    hits = cli.ok("--json", "search", "vecs", "emb", "--like", "33", "-k", "4",
                  "--where", "label == 2; tag != 't2'", "--fields", "label,tag").jsonl()
    assert len(hits) == 4
    for h in hits:
        assert h["label"] == 2 and h["tag"] == f"t{h['anchor']}" and h["anchor"] != 2
    # An append lands in the index; the old version does not see it.
    new = [x + (1.5 if i == 0 else 0.0) for i, x in enumerate(vecs[33])]
    (tmp_path / "more.jsonl").write_text(json.dumps({"emb": new, "label": 9}) + "\n")
    cli.ok("ingest", "vecs", str(tmp_path / "more.jsonl"))
    st = cli.ok("--json", "index", "status", "vecs", "emb").json()
    assert st["entries"] == 401
    top = cli.ok("--json", "search", "vecs", "emb", "--vector", qtext(new), "-k", "1").jsonl()
    assert top[0]["anchor"] == 400
    assert abs(top[0]["score"] - 1.0) < 1e-5
    old = cli.ok("--json", "search", "vecs", "emb", "--vector", qtext(new), "-k", "1",
                 "--at", b["head"]).jsonl()
    assert old[0]["anchor"] != 400 and old[0]["score"] < 0.9999
    older = cli.ok("--json", "index", "status", "vecs", "emb", "--at", before).json()
    assert older["built"] is False
    # Deleted records are never returned.
    cli.ok("delete", "vecs", "400", str(old[0]["anchor"]))
    after = [h["anchor"] for h in
             cli.ok("--json", "search", "vecs", "emb", "--vector", qtext(new), "-k", "5").jsonl()]
    assert 400 not in after and old[0]["anchor"] not in after
    assert cli.ok("--json", "index", "status", "vecs", "emb").json()["stale"] == 2
    assert cli.ok("--json", "verify", "vecs").jsonl()[-1]["problems"] == 0


def test_errors(cli: Cli, tmp_path: pathlib.Path) -> None:
    vecs = make(cli, tmp_path, 50)
    q = qtext(vecs[0])
    cli.fails("usage", "search", "vecs", "emb")
    cli.fails("usage", "search", "vecs", "emb", "--vector", q, "--like", "1")
    r = cli.fails("invalid_argument", "search", "vecs", "emb", "--vector", "1,2,3")
    assert "dimension 3" in r.err
    r = cli.fails("invalid_argument", "search", "vecs", "nope", "--vector", q)
    assert "unknown field 'nope'" in r.err
    r = cli.fails("invalid_argument", "search", "vecs", "label", "--vector", q)
    assert "not an embedding" in r.err
    cli.fails("invalid_argument", "search", "vecs", "emb", "--vector", "1,x")
    cli.fails("invalid_argument", "search", "vecs", "emb", "--vector", q, "-k", "0")
    cli.fails("invalid_argument", "search", "vecs", "emb", "--vector", q, "--where", "label ~ 3")
    cli.fails("invalid_argument", "search", "vecs", "emb", "--vector", q,
              "--where", "label == 'x'")
    cli.fails("not_found", "search", "vecs", "emb", "--like", "999")
    cli.fails("not_found", "search", "nosuch", "emb", "--vector", q)
    cli.fails("invalid_argument", "index", "build", "vecs", "label")
    cli.fails("invalid_argument", "index", "build", "vecs", "emb", "--bits", "9")
    cli.fails("invalid_argument", "index", "build", "vecs", "emb", "--metric", "hamming")
    r = cli.fails("invalid_argument", "--json", "search", "vecs", "emb", "--vector", "1")
    assert r.error_json()["code"] == "invalid_argument"


def test_build_with_each_algorithm(cli: Cli, tmp_path: pathlib.Path) -> None:
    vecs = make(cli, tmp_path, 600)
    queries = [3, 77, 150, 299, 420, 555]
    for alg in ("imi", "lsh", "ivf"):
        b = cli.ok("--json", "index", "build", "vecs", "emb", "--algorithm", alg, "--bits", "4",
                   "--seed", "1").json()
        assert b["algorithm"] == alg and b["entries"] == 600 and b["cells"] >= 1
        st = cli.ok("--json", "index", "status", "vecs", "emb").json()
        assert st["built"] is True and st["algorithm"] == alg and st["index"] == b["index"]
        assert st["nprobe"] == b["nprobe"]
        # The calibrated setting a default search uses (spec/21 §7.9): a point of the curve.
        assert st["nprobe"] in [s for s, _ in st["calibration"]["curve"]]
        assert st["calibration"]["recall"] >= 0.96
        text = cli.ok("index", "status", "vecs", "emb").out
        assert f"default search: nprobe={st['nprobe']}, recall@10" in text
        assert cli.ok("index", "status", "vecs", "emb").out.startswith(f"field emb: {alg} ")
        hits = total = 0
        for a in queries:
            q = qtext(vecs[a])
            exact = {h["anchor"] for h in cli.ok("--json", "search", "vecs", "emb", "--vector", q,
                                                 "-k", "10", "--exact").jsonl()}
            got = cli.ok("--json", "search", "vecs", "emb", "--vector", q, "-k", "10").jsonl()
            assert got[0]["anchor"] == a
            hits += len(exact & {h["anchor"] for h in got})
            total += len(exact)
        assert hits / total >= 0.9, (alg, hits / total)
    # Text output names the algorithm; --cells is honoured for imi (s = ceil(sqrt(cells))).
    out = cli.ok("index", "build", "vecs", "emb", "--algorithm", "imi", "--cells", "16").out
    assert out.startswith("built imi index on emb: 16 cells")
    r = cli.fails("invalid_argument", "index", "build", "vecs", "emb", "--algorithm", "hnsw")
    assert "'hnsw'" in r.err


def test_schema_declares_the_algorithm(cli: Cli, tmp_path: pathlib.Path) -> None:
    schema = {"fields": [{"name": "emb", "type": "embedding", "dim": DIM,
                          "index": {"algorithm": "lsh", "metric": "l2", "bits": 2}}]}
    (tmp_path / "s.json").write_text(json.dumps(schema))
    cli.ok("create", "v2", "--schema", str(tmp_path / "s.json"))
    rng = random.Random(9)
    rows = [json.dumps({"emb": [rng.gauss(0, 1) for _ in range(DIM)]}) for _ in range(200)]
    (tmp_path / "r.jsonl").write_text("\n".join(rows) + "\n")
    cli.ok("ingest", "v2", str(tmp_path / "r.jsonl"))
    assert cli.ok("--json", "index", "status", "v2", "emb").json()["algorithm"] == "lsh"
    b = cli.ok("--json", "index", "build", "v2", "emb").json()
    assert b["algorithm"] == "lsh" and b["metric"] == "l2" and b["bits"] == 2
    top = cli.ok("--json", "search", "v2", "emb", "--like", "12", "-k", "1").jsonl()
    assert top[0]["anchor"] == 12
