# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""16 processes race `dreamdb ref update` on one ref of a file:// store.

Every round, each of the 16 processes tries to move the ref from the current target to
its own (already stored) object, different from every other process's and from the
current target. Exactly one must win (exit 0); the other 15 must lose
with the conflict exit code (6); the ref must then point at the winner's object.

Rounds: $DREAMDB_RACE_ROUNDS (default 1000; the fast tier sets fewer).
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import time

from cli_harness import EXIT, Cli, clean_env

PROCESSES = 16
POOL = 4 * PROCESSES  # distinct objects to draw each round's 16 targets from


def test_ref_update_race(dreamdb_bin: pathlib.Path, tmp_path: pathlib.Path) -> None:
    rounds = int(os.environ.get("DREAMDB_RACE_ROUNDS", "1000"))
    store_uri = "file://" + str(tmp_path / "store")
    cli = Cli(dreamdb_bin, store_uri, tmp_path)
    env = clean_env()
    started = time.monotonic()

    # A pool of objects; every round hands each process a different one, none of them the
    # ref's current target (a process whose NEW equalled OLD would "win" a no-op swap).
    # Rounds run one after another, so reusing pool objects across rounds changes nothing
    # for the race; it only saves the fsyncs of 16 x rounds puts.
    pool_files = []
    for i in range(POOL):
        f = tmp_path / f"pool-{i}"
        f.write_bytes(f"race pool object {i}\n".encode())
        pool_files.append(str(f))
    pool = cli.ok("object", "put", *pool_files).out.split()
    assert len(set(pool)) == POOL
    put_done = time.monotonic()

    name = "race/branches/main"
    current = cli.put(b"race start")
    cli.ok("ref", "create", name, current)

    argv0 = [str(dreamdb_bin), "--store", store_uri, "ref", "update", name]
    for r in range(rounds):
        candidates = [o for o in pool if o != current]
        mine = [candidates[(r * PROCESSES + p) % len(candidates)] for p in range(PROCESSES)]
        assert len(set(mine)) == PROCESSES
        procs = [subprocess.Popen(argv0 + [mine[p], "--expect", current], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for p in range(PROCESSES)]
        results = []
        for p in procs:
            _, stderr = p.communicate()
            results.append((p.returncode, stderr))
        codes = [c for c, _ in results]
        winners = [i for i, c in enumerate(codes) if c == 0]
        assert len(winners) == 1, f"round {r}: exit codes {codes}, stderr {results}"
        losers = [(c, e) for c, e in results if c != 0]
        assert all(c == EXIT["conflict"] for c, _ in losers), f"round {r}: {results}"
        current = mine[winners[0]]
        assert cli.ok("ref", "get", name).out.strip() == current, f"round {r}"

    assert cli.ok("ref", "get", name).out.strip() == current
    assert cli.ok("object", "get", current).stdout.startswith(b"race pool object")
    finished = time.monotonic()
    print(f"\nref race: {rounds} rounds x {PROCESSES} processes: put {put_done - started:.1f}s,"
          f" race {finished - put_done:.1f}s, total {finished - started:.1f}s")
