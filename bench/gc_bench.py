# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""GC and compaction benchmark (spec/06-refs.md §6, spec/14-semantics.md §18).

Two measurements on a file:// store, each step in its own process where memory matters:

1. Compaction: N one-record commits on main (int64 + 64-byte string + 32-d embedding),
   then scan rate (records/s, a full `to_table`) and take latency (single random anchors,
   median and p99) before and after `Dataset.compact()`, with the segments, index pages and
   the compaction's own time.
2. GC: an abandoned branch of M one-record commits (its ref deleted), then `dreamdb gc
   --grace 0 --no-writers-running --json` in a child process: wall time, objects found and
   deleted, bytes reclaimed, peak RSS of the GC process (mark memory), and the time per
   million objects found.

    .venv/bin/python bench/gc_bench.py --commits 100000 --abandoned 100000  # on demand
    .venv/bin/python bench/gc_bench.py --smoke                              # CI: seconds
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import dreamdb


def dreamdb_bin(root: pathlib.Path) -> str:
    env = os.environ.get("DREAMDB_BIN")
    if env:
        return env
    for p in (root / "build/release/cli/dreamdb", root / ".venv/bin/dreamdb"):
        if p.exists():
            return str(p)
    return "dreamdb"


def one_record_commits(ds: dreamdb.Dataset, n: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    for i in range(n):
        ds.append_many({"x": [i], "s": [f"record {i:08d} " + "x" * 48],
                        "e": rng.normal(0, 1, size=(1, 32)).astype(np.float32)})
    return time.perf_counter() - t0


def read_figures(ds: dreamdb.Dataset, n: int, takes: int) -> dict:
    t0 = time.perf_counter()
    table = ds.to_table()
    scan_s = time.perf_counter() - t0
    assert table.num_rows == n
    rng = random.Random(1)
    lat = []
    for _ in range(takes):
        a = rng.randrange(n)
        t0 = time.perf_counter()
        ds.take([a])
        lat.append(time.perf_counter() - t0)
    lat.sort()
    return {"scan_records_per_s": n / scan_s, "scan_s": scan_s,
            "take_median_ms": 1000 * statistics.median(lat),
            "take_p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))]}


def fresh_reader(store: str) -> dreamdb.Dataset:
    # A new handle: cold caches, as a new training job would open it.
    return dreamdb.Dataset.open("d", store=store)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--commits", type=int, default=10000)
    ap.add_argument("--abandoned", type=int, default=10000)
    ap.add_argument("--takes", type=int, default=2000)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (CI)")
    ap.add_argument("--dir", default="", help="where the store goes (default: a temp dir)")
    ap.add_argument("--json", default="", help="also write the figures here")
    args = ap.parse_args()
    if args.smoke:
        args.commits, args.abandoned, args.takes = 300, 300, 200
    root = pathlib.Path(__file__).resolve().parents[1]
    work = pathlib.Path(args.dir or tempfile.mkdtemp(prefix="dreamdb-gc-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    store = "file://" + str(work / "store")
    out: dict = {"commits": args.commits, "abandoned_commits": args.abandoned}
    try:
        schema = dreamdb.Schema().add_int("x").add_string("s").add_embedding("e", 32)
        ds = dreamdb.Dataset.create("d", schema, store=store)
        out["commit_s"] = one_record_commits(ds, args.commits, 1)
        out["before"] = read_figures(fresh_reader(store), args.commits, args.takes)
        t0 = time.perf_counter()
        ds.compact()
        out["compact_s"] = time.perf_counter() - t0
        info = ds.last_commit
        out["compaction"] = {k: info[k] for k in (
            "segments_before", "segments_after", "segment_bytes_before", "segment_bytes_after",
            "pages_before", "pages_after")}
        out["after"] = read_figures(fresh_reader(store), args.commits, args.takes)

        scratch = ds.create_branch("scratch")
        one_record_commits(scratch, args.abandoned, 2)
        binary = dreamdb_bin(root)
        subprocess.run([binary, "--store", store, "ref", "delete", "d/branches/scratch",
                        "--expect", scratch.head], check=True, capture_output=True)
        time.sleep(1.1)
        t0 = time.perf_counter()
        proc = subprocess.Popen([binary, "--store", store, "--json", "gc", "--grace", "0",
                                 "--no-writers-running"], stdout=subprocess.PIPE)
        stdout = proc.stdout.read() if proc.stdout else b""
        _, status, usage = os.wait4(proc.pid, 0)
        gc_s = time.perf_counter() - t0
        if status != 0:
            raise SystemExit(f"gc failed: {stdout!r}")
        r = json.loads(stdout.decode().splitlines()[-1])
        out["gc"] = {"wall_s": gc_s, "peak_rss_mib": usage.ru_maxrss / 1024,
                     "found_objects": r["found_objects"], "found_bytes": r["found_bytes"],
                     "reachable_objects": r["reachable_objects"],
                     "deleted_objects": r["deleted_objects"],
                     "deleted_bytes": r["deleted_bytes"],
                     "s_per_million_found": gc_s / r["found_objects"] * 1e6}
        v = dreamdb.verify(store)
        assert v["problems"] == [], v["problems"][:3]
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    b, a = out["before"], out["after"]
    c, g = out["compaction"], out["gc"]
    print(f"{args.commits} one-record commits in {out['commit_s']:.1f} s; compact "
          f"{out['compact_s']:.2f} s: segments {c['segments_before']} -> {c['segments_after']}, "
          f"index pages {c['pages_before']} -> {c['pages_after']}")
    print(f"scan: {b['scan_records_per_s']:,.0f} -> {a['scan_records_per_s']:,.0f} records/s; "
          f"take median {b['take_median_ms']:.3f} -> {a['take_median_ms']:.3f} ms, "
          f"p99 {b['take_p99_ms']:.3f} -> {a['take_p99_ms']:.3f} ms")
    print(f"gc: {g['wall_s']:.2f} s for {g['found_objects']} objects "
          f"({g['s_per_million_found']:.1f} s per million), peak RSS {g['peak_rss_mib']:.1f} MiB, "
          f"kept {g['reachable_objects']}, deleted {g['deleted_objects']} objects "
          f"({g['deleted_bytes']} bytes)")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
