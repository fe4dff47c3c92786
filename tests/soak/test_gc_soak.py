# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""`dreamdb gc` in the soak harness (tests/soak/soak.py, operation `gc`): GC runs while a
writer commits and merges on main and a reader reads pinned versions, and is killed with
SIGKILL at random; ingests and merges killed beside it leave the garbage it collects.
After every trial verify passes for every ref, every acknowledged commit reads back and
main holds exactly the model's records; the writer and the reader never fail; a GC that
completed deleted the orphans planted before it.

Trials: $DREAMDB_SOAK_GC_TRIALS (default 10); $DREAMDB_SOAK_SEED replays the choices."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import random

import soak
from soak import Soak, summarize


def test_gc_killed_beside_writers_and_readers_loses_nothing(dreamdb_bin: pathlib.Path,
                                                             tmp_path: pathlib.Path) -> None:
    trials = int(os.environ.get("DREAMDB_SOAK_GC_TRIALS", "10"))
    seed = int(os.environ.get("DREAMDB_SOAK_SEED", "0")) or random.randrange(1, 2**31)
    print(f"\nsoak seed {seed} (DREAMDB_SOAK_SEED={seed} replays the choices)")
    # GC in half the trials; killed ingests and merges leave garbage for it.
    ops = [dataclasses.replace(o, weight=2 if o.name == "gc" else 1)
           for o in soak.OPERATIONS if o.name in ("gc", "ingest", "merge")]
    stats = Soak(dreamdb_bin, tmp_path, seed, operations=ops).run(trials)
    print(summarize(stats))
    assert stats["trials"] == trials and stats["verify_ok"] == trials
    gc_trials = sum(stats["by_op"]["gc"])
    assert gc_trials > 0
    # The first GC trial runs to completion (it calibrates the kill delays) and must have
    # deleted at least the three orphans planted before it.
    assert stats["gc_runs"] >= 1 and stats["gc_deleted_objects"] >= 3, stats
