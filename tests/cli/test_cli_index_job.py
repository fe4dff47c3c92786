# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""The sharded index build through the CLI (spec/14-semantics.md §19.10): `index build
--job J --train --of M`, M shard processes (flags, or Slurm / Kubernetes variables), and
`dreamdb commit --job J` publish the index object of a one-machine `index build` with the
same options; every stage run twice changes nothing; a missing shard is named; a sharded
`index rebuild` equals `index rebuild`."""

from __future__ import annotations

import json
import pathlib
import random
import subprocess

from cli_harness import Cli

DIM = 8


def make(cli: Cli, tmp_path: pathlib.Path) -> None:
    schema = {"fields": [{"name": "emb", "type": "embedding", "dim": DIM}]}
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    cli.ok("create", "vecs", "--schema", str(tmp_path / "schema.json"))
    rng = random.Random(3)
    centers = [[rng.gauss(0, 3) for _ in range(DIM)] for _ in range(10)]
    for part in range(2):
        lines = [json.dumps({"emb": [x + rng.gauss(0, 0.4) for x in centers[i % 10]]})
                 for i in range(400)]
        (tmp_path / f"{part}.jsonl").write_text("\n".join(lines) + "\n")
        cli.ok("ingest", "vecs", str(tmp_path / f"{part}.jsonl"))


def search(cli: Cli, branch: str) -> list:
    q = ",".join(["0.5"] * DIM)
    r = cli.ok("--json", "search", "vecs", "emb", "--vector", q, "-k", "5", "--at", branch)
    return [(h["anchor"], h["score"]) for h in r.jsonl()]


def test_sharded_build_equals_one_machine_build(cli: Cli, tmp_path: pathlib.Path) -> None:
    make(cli, tmp_path)
    cli.ok("branch", "vecs", "one")
    cli.ok("index", "build", "vecs", "emb", "--branch", "one", "--algorithm", "imi",
           "--quantizer", "pq4", "--seed", "4")
    want = cli.ok("--json", "index", "status", "vecs", "emb", "--at", "one").json()["index"]

    t = cli.ok("--json", "index", "build", "vecs", "emb", "--job", "b1", "--train", "--of", "3",
               "--algorithm", "imi", "--quantizer", "pq4", "--seed", "4").json()
    assert t["stage"] == "train" and t["of"] == 3 and not t["already_done"]
    # Shards as separate processes at once: flags, a Slurm array task, a Kubernetes pod.
    procs = [
        subprocess.Popen([str(cli.binary), "--store", cli.store_uri, "--json", "index", "build",
                          "vecs", "emb", "--job", "b1", "--shard", "0", "--of", "3"],
                         stdout=subprocess.PIPE),
        subprocess.Popen([str(cli.binary), "--store", cli.store_uri, "--json", "index", "build",
                          "vecs", "emb", "--job", "b1"], stdout=subprocess.PIPE,
                         env={"SLURM_ARRAY_TASK_ID": "6", "SLURM_ARRAY_TASK_MIN": "5",
                              "SLURM_ARRAY_TASK_COUNT": "3", "PATH": "/usr/bin:/bin"}),
        subprocess.Popen([str(cli.binary), "--store", cli.store_uri, "--json", "index", "build",
                          "vecs", "emb", "--job", "b1"], stdout=subprocess.PIPE,
                         env={"JOB_COMPLETION_INDEX": "2", "DREAMDB_SHARD_COUNT": "3",
                              "PATH": "/usr/bin:/bin"}),
    ]
    shards = []
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        shards.append(json.loads(out))
    assert sorted(s["shard"] for s in shards) == [0, 1, 2]
    assert sum(s["entries"] for s in shards) == 800
    c = cli.ok("--json", "commit", "vecs", "--job", "b1").json()
    assert c["field"] == "emb" and c["index"] == want and not c["already_committed"]
    assert cli.ok("--json", "index", "status", "vecs", "emb").json()["index"] == want
    assert search(cli, "main") == search(cli, "one")

    # Every stage again: nothing written.
    assert cli.ok("--json", "index", "build", "vecs", "emb", "--job", "b1", "--train", "--of",
                  "3", "--algorithm", "imi", "--quantizer", "pq4",
                  "--seed", "4").json()["already_done"]
    assert cli.ok("--json", "index", "build", "vecs", "emb", "--job", "b1", "--shard", "1",
                  "--of", "3").json()["already_done"]
    again = cli.ok("--json", "commit", "vecs", "--job", "b1").json()
    assert again["already_committed"] and again["manifest"] == c["manifest"]
    assert "already committed" in cli.ok("commit", "vecs", "--job", "b1").out


def test_missing_shard_and_bad_stages_are_named(cli: Cli, tmp_path: pathlib.Path) -> None:
    make(cli, tmp_path)
    r = cli.fails("not_found", "index", "build", "vecs", "emb", "--job", "early", "--shard", "0",
                  "--of", "2")
    assert "train stage" in r.err
    cli.fails("usage", "index", "build", "vecs", "emb", "--train", "--of", "2")
    cli.fails("usage", "index", "build", "vecs", "emb", "--job", "x", "--train")
    text = cli.ok("index", "build", "vecs", "emb", "--job", "g", "--train", "--of", "2").out
    assert "run shards 0..1" in text
    cli.ok("index", "build", "vecs", "emb", "--job", "g", "--shard", "1", "--of", "2")
    r = cli.fails("not_found", "commit", "vecs", "--job", "g")
    assert "shard 0 of 2 has not finished" in r.err
    r = cli.fails("invalid_argument", "index", "build", "vecs", "emb", "--job", "g", "--shard",
                  "0", "--of", "3")
    assert "planned with 2 shards" in r.err
    cli.ok("index", "build", "vecs", "emb", "--job", "g", "--shard", "0", "--of", "2")
    assert "index of emb" in cli.ok("commit", "vecs", "--job", "g").out
    st = cli.ok("--json", "job", "status", "vecs", "g").json()
    assert st["committed"] and st["trained"]
    # Removing the job deletes its refs; the published index stays on main.
    index = cli.ok("--json", "index", "status", "vecs", "emb").json()["index"]
    rm = cli.ok("--json", "job", "rm", "vecs", "g").json()
    assert rm["committed"] and rm["refs"] == 5  # plan, index, 2 shards, committed
    cli.ok("gc", "--grace", "0", "--no-writers-running")
    assert cli.ok("--json", "index", "status", "vecs", "emb").json()["index"] == index
    cli.ok("verify")


def test_sharded_rebuild_equals_rebuild(cli: Cli, tmp_path: pathlib.Path) -> None:
    make(cli, tmp_path)
    cli.ok("index", "build", "vecs", "emb", "--seed", "8", "--cells", "9")
    cli.ok("branch", "vecs", "one")
    cli.ok("index", "rebuild", "vecs", "emb", "--branch", "one")
    want = cli.ok("--json", "index", "status", "vecs", "emb", "--at", "one").json()["index"]
    cli.ok("index", "rebuild", "vecs", "emb", "--job", "r", "--train", "--of", "2")
    for n in ("0", "1"):
        cli.ok("index", "rebuild", "vecs", "emb", "--job", "r", "--shard", n, "--of", "2")
    assert cli.ok("--json", "commit", "vecs", "--job", "r").json()["index"] == want
