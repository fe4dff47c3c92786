# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Many `dreamdb ingest` processes at once: on one branch (every acknowledged batch lands,
exactly once, however many are killed), and each on its own branch, then one merge of all
the branches (MergeMany, an octopus commit), itself killed at random first."""

from __future__ import annotations

import json
import os
import pathlib
import random
import signal
import subprocess
import time

from cli_harness import clean_env
from soak import NAME, SCHEMA, SoakStore, expected_row, jsonl, record

WRITERS = 8


def make_store(dreamdb_bin: pathlib.Path, tmp_path: pathlib.Path) -> SoakStore:
    s = SoakStore(dreamdb_bin, tmp_path / "store", tmp_path)
    (tmp_path / "schema.json").write_text(json.dumps(SCHEMA))
    s.ok("create", NAME, "--schema", str(tmp_path / "schema.json"))
    return s


def start_writers(s: SoakStore, branches: list[str], per_writer: int, batch: int,
                  base: int) -> tuple[list[subprocess.Popen], list[list[dict]]]:
    procs, recs = [], []
    for w, branch in enumerate(branches):
        mine = [record(base + w * per_writer + i) for i in range(per_writer)]
        path = s.workdir / f"w{base}-{w}.jsonl"
        path.write_bytes(jsonl(mine))
        recs.append(mine)
        procs.append(subprocess.Popen(
            s.argv("ingest", NAME, str(path), "--batch-size", str(batch), "--progress",
                   "--branch", branch), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env=clean_env()))
    return procs, recs


def acked_batches(stderr: bytes) -> int:
    return sum(1 for line in stderr.decode().splitlines() if "records committed in" in line)


def test_many_writers_on_one_branch_all_acknowledged_batches_land(
        dreamdb_bin: pathlib.Path, tmp_path: pathlib.Path) -> None:
    s = make_store(dreamdb_bin, tmp_path)
    rng = random.Random(int(os.environ.get("DREAMDB_SOAK_SEED", "0")) or None)
    rounds = int(os.environ.get("DREAMDB_SOAK_WRITER_ROUNDS", "2"))
    per_writer, batch = 60, 10
    want: dict[int, dict] = {}
    maybe: dict[int, list[dict]] = {}
    for rnd in range(rounds):
        procs, recs = start_writers(s, ["main"] * WRITERS, per_writer, batch,
                                    base=rnd * WRITERS * per_writer)
        victims = set(rng.sample(range(WRITERS), 3))
        time.sleep(rng.uniform(0.05, 0.4))
        for w in victims:
            procs[w].send_signal(signal.SIGKILL)
        for w, p in enumerate(procs):
            _, err = p.communicate(timeout=300)
            if w not in victims or p.returncode == 0:
                assert p.returncode == 0, err
            k = acked_batches(err)
            batches = [recs[w][i:i + batch] for i in range(0, per_writer, batch)]
            for b in batches[:k]:
                want.update({r["anchor"]: r for r in b})
            if k < len(batches):  # the batch in flight: all or nothing
                maybe[w + rnd * WRITERS] = batches[k]
    assert s.run("verify").code == 0
    got = s.records("main")
    for a, r in want.items():
        assert got.get(a) == expected_row(r), f"acknowledged anchor {a} lost or wrong"
    for key, b in maybe.items():
        present = [r["anchor"] in got for r in b]
        assert all(present) or not any(present), f"writer {key}: in-flight batch split"
        if all(present):
            want.update({r["anchor"]: r for r in b})
    assert set(got) == set(want), "records nobody wrote"
    # One commit per landed batch: no mutation applied twice.
    log = s.ok("--json", "log", NAME).jsonl()
    assert len(log) - 1 == len(want) // batch


def test_writers_on_many_branches_then_merge_many(dreamdb_bin: pathlib.Path,
                                                  tmp_path: pathlib.Path) -> None:
    s = make_store(dreamdb_bin, tmp_path)
    s.ok("ingest", NAME, "-", input=jsonl([record(a) for a in range(10)]))
    base_head = s.head()
    branches = [f"w{i}" for i in range(WRITERS)]
    for b in branches:
        s.ok("branch", NAME, b)
    procs, recs = start_writers(s, branches, 40, 10, base=1000)
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    heads = [s.head(b) for b in branches]
    # A merge of all eight, killed at a random point: main is the old head or the merge.
    rng = random.Random()
    for attempt in range(4):
        p = subprocess.Popen(s.argv("merge", NAME, *branches), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=clean_env())
        time.sleep(rng.uniform(0, 0.05))
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert s.run("verify").code == 0
        head = s.head()
        if head != base_head:
            entry = s.ok("--json", "log", NAME, "--limit", "1").jsonl()[0]
            assert entry["parents"] == [base_head, *heads], entry
            break
    else:
        s.ok("merge", NAME, *branches)
    entry = s.ok("--json", "log", NAME, "--limit", "1").jsonl()[0]
    assert entry["parents"] == [base_head, *heads]
    got = s.records("main")
    want = {a: record(a) for a in range(10)}
    for mine in recs:
        want.update({r["anchor"]: r for r in mine})
    assert got == {a: expected_row(r) for a, r in want.items()}
    assert s.run("verify").code == 0
