# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""DreamDB at scale (bench/RESULTS.md "Scale"): N records of scalars plus a 32-d embedding
indexed with 1-bit RaBitQ codes, on file:// or the local S3 server.

Per N, in this order (each measured step runs in its own process, so its peak RSS is its
own, read with wait4):
  ingest     W concurrent shard processes (dreamdb.jobs.ShardWriter, batches of --batch
             records generated with NumPy), for each W of --workers, on a fresh store each
             time; then the job's commit. The last W's store is kept for what follows.
  open       a fresh process opening the dataset and reading its count.
  commit     20 one-record appends: p50 latency; objects added per commit.
  job-commit a 4-shard job of 1,000 records onto the N records: commit time and objects
             written (spec/14 §19.6: the merge reads O(added x height) pages).
  scan       the scalar fields of every record, streamed: records/s.
  index      build_index("emb", ivf, 1 bit, calibrated for recall@10 0.95).
  query      200 queries, k=10 at the calibrated setting: p50/p99 latency, and recall@10
             against brute force on 20 of them.
  gc         job refs removed (`dreamdb job rm`), then `dreamdb gc --grace 0`.
  size       objects and bytes under the store (file:// only).

    .venv/bin/python bench/scale/scale.py --records 1000000 [--workers "1 2 4"] [--s3]
    .venv/bin/python bench/scale/scale.py --smoke           # 20,000 records, ~10 s
Prints one line per step and writes --json FILE (default: none). DREAMDB_BIN is the CLI
(default build/release/cli/dreamdb); DREAMDB_BENCH_DIR the scratch directory (/tmp).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DIM = 32
CENTERS = 256


def vectors(first: int, n: int):
    """Clustered vectors for anchors [first, first + n): a deterministic function of the
    record's position, so every run and every worker count stores the same data."""
    import numpy as np

    rng = np.random.default_rng(12345)
    centers = rng.standard_normal((CENTERS, DIM)).astype(np.float32) * 3
    ids = np.arange(first, first + n, dtype=np.int64)
    noise = np.random.default_rng(first).standard_normal((n, DIM)).astype(np.float32)
    return centers[(ids % 1000003) * 2654435761 % CENTERS] + noise


def rows(first: int, n: int) -> dict:
    import numpy as np

    ids = np.arange(first, first + n, dtype=np.int64)
    return {"id": ids, "score": (ids * 7919 % 1000).astype(np.float64) / 7.0,
            "label": ids % 100, "emb": vectors(first, n)}


def schema():
    import dreamdb

    return (dreamdb.Schema().add_int("id").add_float("score").add_int("label")
            .add_embedding("emb", DIM, index="ivf", bits=1))


# ---- child steps (run as `scale.py --step NAME ...`) ----

def step_shard(store: str, k: int, of: int, n: int, batch: int) -> dict:
    from dreamdb import jobs

    lo, hi = k * n // of, (k + 1) * n // of
    with jobs.ShardWriter(store, "d", job="ingest", shard=k, of=of) as w:
        for first in range(lo, hi, batch):
            w.append_many(rows(first, min(batch, hi - first)))
    return {"records": w.records}


def step_commit_job(store: str, job: str) -> dict:
    from dreamdb import jobs

    r = jobs.commit(store, "d", job=job)
    return {"added": r["added"], "count": r["count"]}


def step_open(store: str) -> dict:
    import dreamdb

    t = time.perf_counter()
    ds = dreamdb.Dataset.open("d", store=store)
    n = ds.count()
    return {"seconds": time.perf_counter() - t, "count": n}


def step_small_commits(store: str, n: int) -> dict:
    import dreamdb

    ds = dreamdb.Dataset.open("d", store=store)
    lat = []
    for i in range(20):
        t = time.perf_counter()
        ds.append_many(rows(10**12 + i, 1))
        lat.append(time.perf_counter() - t)
    lat.sort()
    return {"p50_ms": lat[len(lat) // 2] * 1e3, "max_ms": lat[-1] * 1e3}


def step_small_job(store: str) -> dict:
    from dreamdb import jobs

    for k in range(4):
        with jobs.ShardWriter(store, "d", job="small", shard=k, of=4) as w:
            w.append_many(rows(2 * 10**12 + k * 250, 250))
    t = time.perf_counter()
    r = jobs.commit(store, "d", job="small")
    return {"seconds": time.perf_counter() - t, "added": r["added"]}


def step_scan(store: str) -> dict:
    import dreamdb

    ds = dreamdb.Dataset.open("d", store=store)
    t = time.perf_counter()
    n = 0
    for b in ds.iter_batches(["id", "score", "label"], batch_size=65536):
        n += b.num_rows
    s = time.perf_counter() - t
    return {"records": n, "seconds": s, "records_per_s": n / s}


def step_index(store: str) -> dict:
    import dreamdb

    ds = dreamdb.Dataset.open("d", store=store)
    t = time.perf_counter()
    st = ds.build_index("emb", bits=1)
    cal = st.get("calibration") or {}
    return {"seconds": time.perf_counter() - t, "cells": st.get("cells"),
            "nprobe": st.get("nprobe"), "calibrated_recall": cal.get("recall")}


def step_query(store: str, n: int) -> dict:
    import numpy as np

    import dreamdb

    ds = dreamdb.Dataset.open("d", store=store)
    rng = np.random.default_rng(7)
    qs = vectors(0, n)[rng.integers(0, n, 200)] if n <= 200000 else np.concatenate(
        [vectors(int(f), 1) for f in rng.integers(0, n, 200)])
    qs = qs + rng.standard_normal(qs.shape).astype(np.float32) * 0.5
    ds.search("emb", qs[0], k=10)  # warm: the index's top levels
    lat = []
    for q in qs:
        t = time.perf_counter()
        ds.search("emb", q, k=10)
        lat.append(time.perf_counter() - t)
    lat.sort()
    hits = 0
    for q in qs[:20]:
        got = set(ds.search("emb", q, k=10).column("anchor").to_pylist())
        want = set(ds.search("emb", q, k=10, exact=True).column("anchor").to_pylist())
        hits += len(got & want)
    return {"p50_ms": lat[len(lat) // 2] * 1e3, "p99_ms": lat[int(len(lat) * 0.99)] * 1e3,
            "recall_at_10": hits / 200}


STEPS = {"shard": step_shard, "commit-job": step_commit_job, "open": step_open,
         "small-commits": step_small_commits, "small-job": step_small_job, "scan": step_scan,
         "index": step_index, "query": step_query}


# ---- the driver ----

def child(step: str, *args, env=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--step", step, *map(str, args)],
                            stdout=subprocess.PIPE, env=env)


def wait(p: subprocess.Popen) -> tuple:
    """(result dict, peak RSS MiB, wall s) of a child started by child()."""
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"step failed ({p.args[3]}): exit {p.returncode}")
    return json.loads(out), usage.ru_maxrss / 1024


def run_step(step: str, *args) -> tuple:
    t = time.perf_counter()
    r, rss = wait(child(step, *args))
    return r, rss, time.perf_counter() - t


def cli(store: str, *args: str) -> tuple:
    dreamdb = os.environ.get("DREAMDB_BIN", os.path.join(ROOT, "build/release/cli/dreamdb"))
    t = time.perf_counter()
    p = subprocess.Popen([dreamdb, "--store", store, "--json", *args], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    out, err = p.stdout.read(), p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"dreamdb {' '.join(args)} failed: {err.decode()}")
    return out.decode(), usage.ru_maxrss / 1024, time.perf_counter() - t


def tree(path: str) -> tuple:
    files = size = 0
    for dirpath, _, names in os.walk(path):
        for f in names:
            files += 1
            size += os.path.getsize(os.path.join(dirpath, f))
    return files, size


def bench(n: int, workers: list, batch: int, label: str, make_store, drop_store,
          steps: set) -> dict:
    import dreamdb

    out = {"records": n, "store": label, "ingest": []}
    store = None
    for i, w in enumerate(workers):
        store, path = make_store(w)
        dreamdb.Dataset.create("d", schema(), store=store)
        t = time.perf_counter()
        procs = [child("shard", store, k, w, n, batch) for k in range(w)]
        rss = [wait(p)[1] for p in procs]
        ingest_s = time.perf_counter() - t
        c, crss, commit_s = run_step("commit-job", store, "ingest")
        assert c["count"] == n, c
        row = {"workers": w, "seconds": ingest_s, "records_per_s": n / ingest_s,
               "peak_rss_mib_shard": max(rss), "commit_s": commit_s,
               "peak_rss_mib_commit": crss}
        if path:
            row["objects"], row["bytes"] = tree(path)
        out["ingest"].append(row)
        print(f"{label} N={n:,} ingest workers={w}: {ingest_s:.1f} s ({n / ingest_s:,.0f} rec/s), "
              f"shard RSS {max(rss):.0f} MiB; commit {commit_s:.2f} s (RSS {crss:.0f} MiB)"
              + (f"; {row['objects']:,} objects, {row['bytes'] / 2**20:,.0f} MiB" if path else ""),
              flush=True)
        if i + 1 < len(workers):
            drop_store(store, path)
    if "open" in steps:
        r, rss, wall = run_step("open", store)
        out["open"] = {"seconds": r["seconds"], "process_s": wall, "peak_rss_mib": rss}
        print(f"{label} N={n:,} open+count: {r['seconds'] * 1e3:.1f} ms in process "
              f"({wall:.2f} s with interpreter start), RSS {rss:.0f} MiB", flush=True)
    if "commit" in steps:
        before = tree(path)[0] if path else 0
        r, rss, _ = run_step("small-commits", store, n)
        per = (tree(path)[0] - before) / 20 if path else None
        out["small_commit"] = {**r, "objects_per_commit": per}
        print(f"{label} N={n:,} one-record commit: p50 {r['p50_ms']:.1f} ms, max "
              f"{r['max_ms']:.1f} ms" + (f", {per:.1f} objects/commit" if per else ""), flush=True)
        before = tree(path)[0] if path else 0
        r, rss, _ = run_step("small-job", store)
        out["job_commit"] = {**r, "objects": (tree(path)[0] - before) if path else None,
                             "peak_rss_mib": rss}
        print(f"{label} N={n:,} 4-shard job of 1,000 records: commit {r['seconds'] * 1e3:.0f} ms"
              + (f"; {out['job_commit']['objects']} objects written by the job" if path else ""),
              flush=True)
    if "scan" in steps:
        r, rss, _ = run_step("scan", store)
        out["scan"] = {**r, "peak_rss_mib": rss}
        print(f"{label} N={n:,} scan (3 scalars): {r['records_per_s']:,.0f} rec/s, RSS {rss:.0f} MiB",
              flush=True)
    if "index" in steps:
        r, rss, _ = run_step("index", store)
        out["index"] = {**r, "peak_rss_mib": rss}
        print(f"{label} N={n:,} index build (ivf, 1 bit, {r['cells']} cells): {r['seconds']:.1f} s, "
              f"RSS {rss:.0f} MiB; calibrated nprobe {r['nprobe']} (recall {r['calibrated_recall']})",
              flush=True)
        r, rss, _ = run_step("query", store, n)
        out["query"] = {**r, "peak_rss_mib": rss}
        print(f"{label} N={n:,} query k=10: p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
              f"recall@10 {r['recall_at_10']:.3f}, RSS {rss:.0f} MiB", flush=True)
    if "gc" in steps:
        for job in ("ingest", "small"):
            cli(store, "job", "rm", "d", job)
        before = tree(path) if path else None
        o, rss, wall = cli(store, "gc", "--grace", "0", "--no-writers-running")
        out["gc"] = {"seconds": wall, "peak_rss_mib": rss, "report": json.loads(o.splitlines()[-1])}
        print(f"{label} N={n:,} gc: {wall:.1f} s, RSS {rss:.0f} MiB", flush=True)
        if path:
            files, size = tree(path)
            out["size"] = {"objects": files, "bytes": size, "before_gc": before}
            print(f"{label} N={n:,} store after gc: {files:,} files, {size / 2**20:,.0f} MiB "
                  f"({size / n:.0f} B/record)", flush=True)
    drop_store(store, path)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--step")
    ap.add_argument("args", nargs="*")
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--workers", default="1 2 4")
    ap.add_argument("--batch", type=int, default=100_000)
    ap.add_argument("--steps", default="open commit scan index gc")
    ap.add_argument("--s3", action="store_true", help="on DREAMDB_S3_ENDPOINT/_BUCKET")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()
    if a.step:
        args = [int(x) if x.lstrip("-").isdigit() else x for x in a.args]
        print(json.dumps(STEPS[a.step](*args)))
        return
    if a.smoke:
        a.records, a.workers, a.batch = 20_000, "1 2", 5_000
    workers = [int(w) for w in a.workers.split()]
    scratch = tempfile.mkdtemp(prefix="dreamdb-scale.", dir=os.environ.get("DREAMDB_BENCH_DIR"))
    try:
        if a.s3:
            endpoint, bucket = os.environ["DREAMDB_S3_ENDPOINT"], os.environ["DREAMDB_S3_BUCKET"]

            def make(w):
                return (f"s3://{bucket}/scale-{uuid.uuid4().hex[:8]}-{w}?endpoint={endpoint}",
                        None)

            def drop(store, path):
                pass
        else:
            def make(w):
                path = os.path.join(scratch, f"store-{w}")
                return "file://" + path, path

            def drop(store, path):
                shutil.rmtree(path, ignore_errors=True)
        res = bench(a.records, workers, a.batch, "s3" if a.s3 else "file", make, drop,
                    set(a.steps.split()))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
