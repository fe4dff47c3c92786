# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Real multi-process distributed training over DreamDBDataset: torch.distributed with the
gloo backend on 127.0.0.1 (a file:// rendezvous in tmp_path), 2 and 4 ranks, each with 0
and 2 DataLoader workers, an all_reduce per step (unequal shares would hang: the group's
30 s timeout and the subprocess timeouts turn that into a failure). Each job is killed
with SIGKILL mid-epoch after every rank saved its state, then resumed with a different
worker count; the samples seen before the saved state plus those seen after the resume
must be exactly one epoch, plus DistributedSampler's padding."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pytest

import dreamdb

N = 1001  # odd: 2 and 4 ranks both need padding
BATCH = 8
SAVE_AT = 6  # steps before the saved state
RANK_SCRIPT = pathlib.Path(__file__).with_name("torch_dist_rank.py")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("dist") / "store")
    ds = dreamdb.Dataset.create("train", dreamdb.Schema().add_int("label"), store=path)
    ds.append_many({"label": np.arange(N)})
    return path


def launch(store, out, world, workers, init, extra):
    """Starts the `world` rank processes; extra(rank) gives more flags of that rank."""
    procs = []
    for rank in range(world):
        cmd = [sys.executable, str(RANK_SCRIPT), "--store", store, "--dataset", "train",
               "--init", init, "--out", str(out), "--rank", str(rank), "--world", str(world),
               "--workers", str(workers), "--batch", str(BATCH), "--seed", "17",
               "--epoch", "2"]
        for key, value in extra(rank).items():
            cmd += [f"--{key.replace('_', '-')}", str(value)]
        # A session per rank: SIGKILL to its group also kills its DataLoader workers.
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True, start_new_session=True))
    return procs


def kill(procs):
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    for p in procs:
        p.wait(timeout=30)


def wait_all(procs, timeout):
    deadline = time.monotonic() + timeout
    try:
        outputs = [p.communicate(timeout=max(1, deadline - time.monotonic()))[0]
                   for p in procs]
    except subprocess.TimeoutExpired:
        kill(procs)
        pytest.fail("a rank hung (unequal shares block the all_reduce)")
    for p, text in zip(procs, outputs):
        assert p.returncode == 0, text


def steps_logged(path, up_to=None):
    out = []
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        if up_to is None or entry["step"] <= up_to:
            out += entry["anchors"]
    return out


@pytest.mark.timeout(300)
@pytest.mark.parametrize("world,before,after", [(2, 0, 2), (2, 2, 0), (4, 0, 2), (4, 2, 0)])
def test_ranks_train_in_lockstep_and_resume_after_a_kill_with_other_workers(
        store, tmp_path, world, before, after):
    killed, resumed = tmp_path / "killed", tmp_path / "resumed"
    killed.mkdir()
    resumed.mkdir()

    # 1. Train until every rank saved its state mid-epoch, then SIGKILL the whole job.
    procs = launch(store, killed, world, before, f"file://{tmp_path / 'rdv1'}",
                   lambda rank: {"save_at": SAVE_AT})
    states = [killed / f"state{r}.json" for r in range(world)]
    deadline = time.monotonic() + 120
    while not all(s.exists() for s in states):
        if time.monotonic() > deadline or any(p.poll() not in (None, 0) for p in procs):
            kill(procs)
            pytest.fail("ranks did not reach the save point:\n" +
                        "\n".join(p.stdout.read() for p in procs if p.stdout))
        time.sleep(0.1)
    kill(procs)
    assert not any((killed / f"done{r}.json").exists() for r in range(world))  # mid-epoch

    # 2. Resume every rank from its state with a different number of workers.
    procs = launch(store, resumed, world, after, f"file://{tmp_path / 'rdv2'}",
                   lambda rank: {"resume": states[rank]})
    wait_all(procs, timeout=180)

    share = -(-N // world)
    seen = Counter()
    for r in range(world):
        state = json.loads(states[r].read_text())
        assert state["position"] == SAVE_AT * BATCH and state["world_size"] == world
        head = steps_logged(killed / f"rank{r}.log", up_to=SAVE_AT)
        rest = steps_logged(resumed / f"rank{r}.log")
        assert len(head) + len(rest) == share, (r, len(head), len(rest))
        done = json.loads((resumed / f"done{r}.json").read_text())
        assert len(set(done["all_steps"])) == 1  # every rank took the same number of steps
        seen.update(head + rest)
    assert set(seen) == set(range(N))  # every record ...
    assert sum(seen.values()) == world * share  # ... once, plus the padding:
    assert sum(c - 1 for c in seen.values()) == world * share - N
