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

3. GC at scale (--scale-objects N, on demand): a dataset of 62 int64 fields written one
   record per commit until about N objects are live, then `dreamdb gc` (nothing to delete:
   the mark dominates) with the default mark budget (one pass) and with a budget of a
   quarter of that pass's peak (passes by id prefix, spec/06 §6.8): wall time and time
   per million objects, peak RSS, passes, the most objects a pass held.

    .venv/bin/python bench/gc_bench.py --commits 100000 --abandoned 100000  # on demand
    .venv/bin/python bench/gc_bench.py --scale-objects 1000000              # on demand
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


def run_gc(binary: str, store: str, *extra: str) -> dict:
    """`dreamdb gc --grace 0` in a child process: its JSON report, wall time, peak RSS."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([binary, "--store", store, "--json", "gc", "--grace", "0",
                             "--no-writers-running", *extra], stdout=subprocess.PIPE)
    stdout = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"gc failed: {stdout!r}")
    r = json.loads(stdout.decode().splitlines()[-1])
    r["wall_s"] = wall
    r["peak_rss_mib"] = usage.ru_maxrss / 1024
    return r


def gc_at_scale(binary: str, work: pathlib.Path, objects: int) -> dict:
    """GC of a store of about `objects` live objects, in one pass and in several."""
    fields = 62  # + manifest + leaf page (+ inner pages): ~64 objects per commit
    store = "file://" + str(work / "scale")
    schema = dreamdb.Schema()
    for f in range(fields):
        schema = schema.add_int(f"f{f}")
    ds = dreamdb.Dataset.create("w", schema, store=store)
    commits = max(1, objects // (fields + 2))
    t0 = time.perf_counter()
    for i in range(commits):
        ds.append_many({f"f{f}": [i * fields + f] for f in range(fields)})
    write_s = time.perf_counter() - t0
    time.sleep(1.1)
    one = run_gc(binary, store)
    budget_mib = max(1, int(one["peak_rss_mib"] / 4))
    parted = run_gc(binary, store, "--mark-memory", f"{budget_mib}M")
    assert parted["reachable_objects"] == one["reachable_objects"]
    assert parted["deleted_objects"] == one["deleted_objects"] == 0
    out = {"commits": commits, "write_s": write_s}
    for key, r in (("one_pass", one), ("passes", parted)):
        out[key] = {k: r[k] for k in ("wall_s", "peak_rss_mib", "found_objects",
                                      "reachable_objects", "reachable_bytes", "mark_passes",
                                      "mark_peak_objects")}
        out[key]["s_per_million"] = r["wall_s"] / r["found_objects"] * 1e6
        out[key]["rss_bytes_per_live_object"] = (
            r["peak_rss_mib"] * 2**20 / max(1, r["reachable_objects"]))
    out["passes"]["mark_memory"] = f"{budget_mib}M"
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--commits", type=int, default=10000)
    ap.add_argument("--abandoned", type=int, default=10000)
    ap.add_argument("--takes", type=int, default=2000)
    ap.add_argument("--scale-objects", type=int, default=0,
                    help="also measure GC of a store of about this many live objects")
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
        r = run_gc(binary, store)
        gc_s = r["wall_s"]
        out["gc"] = {"wall_s": gc_s, "peak_rss_mib": r["peak_rss_mib"],
                     "found_objects": r["found_objects"], "found_bytes": r["found_bytes"],
                     "reachable_objects": r["reachable_objects"],
                     "deleted_objects": r["deleted_objects"],
                     "deleted_bytes": r["deleted_bytes"],
                     "s_per_million_found": gc_s / r["found_objects"] * 1e6}
        v = dreamdb.verify(store)
        assert v["problems"] == [], v["problems"][:3]
        if args.scale_objects:
            out["scale"] = gc_at_scale(binary, work, args.scale_objects)
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
    if "scale" in out:
        sc = out["scale"]
        for key in ("one_pass", "passes"):
            r = sc[key]
            print(f"gc at scale ({key}): {r['found_objects']} objects in {r['wall_s']:.1f} s "
                  f"({r['s_per_million']:.0f} s per million), {r['mark_passes']} passes, "
                  f"peak {r['mark_peak_objects']} objects held, peak RSS "
                  f"{r['peak_rss_mib']:.0f} MiB ({r['rss_bytes_per_live_object']:.0f} B per "
                  f"live object)")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
