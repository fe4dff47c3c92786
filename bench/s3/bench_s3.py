# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""DreamDB on s3:// against Lance on the same S3 server (bench/RESULTS.md, "s3://").

Both systems write and read the same synthetic table (int label, string tag, a DIM-float
embedding) under fresh prefixes of one bucket, each through its own instance of the
fault-injecting proxy (tests/soak/s3_fault_proxy.py) with no faults, which counts the HTTP
requests and bytes that cross it and can add a fixed latency per request (--latency-ms 20:
what a cloud region's round trip costs; loopback hides round trips). Measured per system:

  ingest      rows/s of one bulk write
  scan        GB/s of a full read of every column (Arrow bytes / wall time)
  take        ms to fetch 1,000 random rows, small fields only, then with the embedding
  query cold  p50/p95 ms of one k=10 vector query on a fresh handle in this process
              (DreamDB: no local cache; the process's shared caches are warm)
  cold process  the same query in a new process per query (nothing cached in memory):
              open and query each timed, with their requests, waves and busy time
  query warm  p50/p95 ms of the same query repeated on one handle (DreamDB: with the
              local object cache, --cache; Lance: its in-process caches)
  file://     DreamDB's warm query on a file:// copy, for the 2x target

with the requests and bytes per operation as the proxy saw them, and for DreamDB also its
own Store.stats(). Dependent round trips are estimated as
(latency with +L ms per request - latency on loopback) / L.

Usage (after scripts/s3_server.sh start DIR; source DIR/env):
  PYTHONPATH=python build/peer-venv/bin/python bench/s3/bench_s3.py --rows 20000 \
      [--latency-ms 20] [--json out.json]
(the venv needs dreamdb (pip install ./python) and pylance; bench/python/run.sh makes
build/peer-venv). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

import numpy as np
import pyarrow as pa

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "tests" / "soak"))
from s3_fault_proxy import FaultConfig, FaultProxy  # noqa: E402

DIM = 128


def table(n: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n, DIM)).astype(np.float32)
    return pa.table({
        "label": pa.array(np.arange(n) % 10, type=pa.int64()),
        "tag": pa.array([f"tag-{i:08d}" for i in range(n)]),
        "emb": pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), DIM),
    })


class Counter:
    """Requests and bytes through a proxy between two snapshots."""

    def __init__(self, proxy: FaultProxy):
        self.proxy = proxy
        self.mark = (0, 0, 0, 0, 0.0)
        self.take()
        self.last_bytes = 0

    def take(self) -> int:
        """Requests since the last call; their response bytes are left in last_bytes and
        the rounds of dependent requests (the proxy's waves) in last_waves."""
        s = self.proxy.stats
        now = (s.requests, s.bytes_down, s.bytes_up, s.waves, s.busy_s)
        n = now[0] - self.mark[0]
        self.last_bytes = now[1] - self.mark[1]
        self.last_bytes_up = now[2] - self.mark[2]
        self.last_waves = now[3] - self.mark[3]
        self.last_busy_s = now[4] - self.mark[4]
        self.mark = now
        return n


def traced(proxy, fn) -> list:
    """The requests `fn()` makes, as (wave, method, key, range) rows."""
    proxy.stats.trace.clear()
    proxy.trace = True
    try:
        fn()
    finally:
        proxy.trace = False
    rows = list(proxy.stats.trace)
    first = rows[0][0] if rows else 0
    return [(w - first + 1, m, k.rsplit("/", 1)[-1][:16] if "/objects/" in k else k, r)
            for w, m, k, r in rows]


# A cold process: opens, says so, waits for a line, searches once and says how long each
# took. The parent reads the proxy's counters between the two, so the open's requests and
# the query's are told apart (nothing is cached in memory: a new process each query).
COLD_DREAMDB = """
import json, sys, time
import numpy as np
import dreamdb
q = np.array([float(x) for x in sys.argv[2].split(',')], dtype=np.float32)
t0 = time.perf_counter()
d = dreamdb.Dataset.open('b', store=sys.argv[1])
print(json.dumps({'open_ms': (time.perf_counter() - t0) * 1000}), flush=True)
sys.stdin.readline()
t0 = time.perf_counter()
d.search('emb', q, k=10)
print(json.dumps({'query_ms': (time.perf_counter() - t0) * 1000}), flush=True)
"""
COLD_LANCE = """
import json, os, sys, time
import numpy as np
import lance
opts = {'aws_endpoint': sys.argv[3], 'allow_http': 'true', 'aws_region': 'us-east-1',
        'aws_access_key_id': os.environ['AWS_ACCESS_KEY_ID'],
        'aws_secret_access_key': os.environ['AWS_SECRET_ACCESS_KEY'],
        'virtual_hosted_style_request': 'false'}
q = np.array([float(x) for x in sys.argv[2].split(',')], dtype=np.float32)
t0 = time.perf_counter()
d = lance.dataset(sys.argv[1], storage_options=opts)
print(json.dumps({'open_ms': (time.perf_counter() - t0) * 1000}), flush=True)
sys.stdin.readline()
t0 = time.perf_counter()
d.to_table(nearest={'column': 'emb', 'q': q, 'k': 10})
print(json.dumps({'query_ms': (time.perf_counter() - t0) * 1000}), flush=True)
"""


def cold_processes(proxy, code: str, target: str, queries: np.ndarray, extra=()) -> dict:
    """Open + one query in a new process per query: p50/p95 ms, and per part the
    requests, waves and busy ms (p50) the proxy saw."""
    c = Counter(proxy)
    rows = {k: [] for k in ("open_ms", "open_req", "open_waves", "query_ms", "query_req",
                            "query_waves", "query_busy_ms", "query_bytes")}
    for q in queries:
        child = subprocess.Popen(
            [sys.executable, "-c", code, target, ",".join(map(str, q.tolist())), *extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            c.take()
            rows["open_ms"].append(json.loads(child.stdout.readline())["open_ms"])
            rows["open_req"].append(c.take())
            rows["open_waves"].append(c.last_waves)
            child.stdin.write("\n")
            child.stdin.flush()
            rows["query_ms"].append(json.loads(child.stdout.readline())["query_ms"])
            rows["query_req"].append(c.take())
            rows["query_waves"].append(c.last_waves)
            rows["query_busy_ms"].append(c.last_busy_s * 1000)
            rows["query_bytes"].append(c.last_bytes)
        finally:
            child.stdin.close()
            if child.wait(timeout=120) != 0:
                raise RuntimeError(f"cold query process failed ({child.returncode})")
    return {"cold_process_open_p50_ms": pct(rows["open_ms"], 50),
            "cold_process_open_requests_p50": pct(rows["open_req"], 50),
            "cold_process_open_waves_p50": pct(rows["open_waves"], 50),
            "cold_process_query_p50_ms": pct(rows["query_ms"], 50),
            "cold_process_query_p95_ms": pct(rows["query_ms"], 95),
            "cold_process_query_requests_p50": pct(rows["query_req"], 50),
            "cold_process_query_waves_p50": pct(rows["query_waves"], 50),
            "cold_process_query_waves_max": max(rows["query_waves"]),
            "cold_process_query_busy_ms_p50": pct(rows["query_busy_ms"], 50),
            "cold_process_query_bytes_p50": pct(rows["query_bytes"], 50)}


def pct(xs, p):
    return float(np.percentile(np.array(xs), p)) if xs else None


def bench_dreamdb(uri: str, t: pa.Table, queries: np.ndarray, picks: np.ndarray, proxy,
                  cache_dir: str, file_uri: str, trace: bool = False) -> dict:
    import dreamdb

    out: dict = {}
    c = Counter(proxy)
    schema = dreamdb.Schema().add_int("label").add_string("tag").add_embedding("emb", DIM)
    t0 = time.perf_counter()
    ds = dreamdb.Dataset.create("b", schema, store=uri)
    ds.append_many({"label": t.column("label").to_numpy(),
                    "tag": t.column("tag").to_pylist(),
                    "emb": np.stack(t.column("emb").to_numpy(zero_copy_only=False))})
    out["ingest_rows_per_s"] = t.num_rows / (time.perf_counter() - t0)
    out["ingest_requests"] = c.take()
    out["ingest_bytes_up"] = c.last_bytes_up
    ds.build_index("emb", algorithm="ivf", metric="l2")
    c.take()

    def fresh(cache=None):
        return dreamdb.Dataset.open("b", store=uri, cache=cache)

    opens, open_waves = [], []
    for _ in range(5):
        c.take()
        t0 = time.perf_counter()
        fresh()
        opens.append((time.perf_counter() - t0) * 1000)
        out["open_requests"] = c.take()
        open_waves.append(c.last_waves)
        out["open_busy_ms"] = c.last_busy_s * 1000
    out["open_p50_ms"], out["open_waves_p50"] = pct(opens, 50), pct(open_waves, 50)
    if trace:
        # In a new process each: nothing cached in memory (this one's caches are warm).
        code = ("import sys, dreamdb, numpy as np; d = dreamdb.Dataset.open('b', store=sys.argv[1]);"
                "d.take([int(x) for x in sys.argv[2].split(',')], fields=['label', 'tag'])"
                " if sys.argv[3] == 'take' else d.search('emb', np.array("
                "[float(x) for x in sys.argv[2].split(',')], dtype=np.float32), k=10)")
        for what, arg in (("take", ",".join(map(str, picks.tolist()))),
                          ("search", ",".join(map(str, queries[0].tolist())))):
            out[f"trace_open_{what}"] = traced(proxy, lambda: subprocess.run(
                [sys.executable, "-c", code, uri, arg, what], check=True))
        c.take()

    d = fresh()
    s0 = d.store.stats()
    t0 = time.perf_counter()
    scanned = d.to_table()
    dt = time.perf_counter() - t0
    out["scan_gb_per_s"] = scanned.nbytes / dt / 1e9
    out["scan_requests"] = c.take()
    out["scan_bytes"] = c.last_bytes
    out["scan_bytes_in"] = d.store.stats()["bytes_in"] - s0["bytes_in"]

    for name, fields in (("take_small", ["label", "tag"]), ("take_emb", ["label", "tag", "emb"])):
        d = fresh()
        c.take()
        s0 = d.store.stats()
        t0 = time.perf_counter()
        got = d.take(picks.tolist(), fields=fields)
        out[f"{name}_ms"] = (time.perf_counter() - t0) * 1000
        assert got.num_rows == len(picks)
        out[f"{name}_requests"] = c.take()
        out[f"{name}_bytes"] = c.last_bytes
        out[f"{name}_waves"] = c.last_waves
        out[f"{name}_busy_ms"] = c.last_busy_s * 1000
        out[f"{name}_bytes_in"] = d.store.stats()["bytes_in"] - s0["bytes_in"]

    cold, cold_req, cold_bytes, cold_waves, cold_busy = [], [], [], [], []
    for q in queries:
        d = fresh()
        c.take()
        t0 = time.perf_counter()
        d.search("emb", q, k=10)
        cold.append((time.perf_counter() - t0) * 1000)
        cold_req.append(c.take())
        cold_bytes.append(c.last_bytes)
        cold_waves.append(c.last_waves)
        cold_busy.append(c.last_busy_s * 1000)
    out["query_cold_p50_ms"], out["query_cold_p95_ms"] = pct(cold, 50), pct(cold, 95)
    out["query_cold_requests_p50"] = pct(cold_req, 50)
    out["query_cold_bytes_p50"] = pct(cold_bytes, 50)
    out["query_cold_waves_p50"] = pct(cold_waves, 50)
    out["query_cold_busy_ms_p50"] = pct(cold_busy, 50)

    out.update(cold_processes(proxy, COLD_DREAMDB, uri, queries))

    d = fresh(cache_dir)
    for q in queries:  # fill the cache and the handle
        d.search("emb", q, k=10)
    warm = []
    c.take()
    for q in queries:
        t0 = time.perf_counter()
        d.search("emb", q, k=10)
        warm.append((time.perf_counter() - t0) * 1000)
    out["query_warm_cache_p50_ms"], out["query_warm_cache_p95_ms"] = pct(warm, 50), pct(warm, 95)
    out["query_warm_requests_per_query"] = c.take() / len(queries)
    out["store_stats"] = d.store.stats()

    # The same warm query on a file:// copy (dreamdb.clone), for the 2x target.
    dreamdb.clone(uri, file_uri)
    f = dreamdb.Dataset.open("b", store=file_uri)
    for q in queries:
        f.search("emb", q, k=10)
    warm_file = []
    for q in queries:
        t0 = time.perf_counter()
        f.search("emb", q, k=10)
        warm_file.append((time.perf_counter() - t0) * 1000)
    out["query_warm_file_p50_ms"] = pct(warm_file, 50)
    out["query_warm_file_p95_ms"] = pct(warm_file, 95)
    return out


def bench_lance(url: str, endpoint: str, t: pa.Table, queries: np.ndarray, picks: np.ndarray,
                proxy) -> dict:
    import lance

    opts = {"aws_endpoint": endpoint, "allow_http": "true", "aws_region": "us-east-1",
            "aws_access_key_id": os.environ["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"],
            "virtual_hosted_style_request": "false"}
    out: dict = {}
    c = Counter(proxy)
    t0 = time.perf_counter()
    lance.write_dataset(t, url, storage_options=opts)
    out["ingest_rows_per_s"] = t.num_rows / (time.perf_counter() - t0)
    out["ingest_requests"] = c.take()
    out["ingest_bytes_up"] = c.last_bytes_up
    ds = lance.dataset(url, storage_options=opts)
    ds.create_index("emb", index_type="IVF_PQ", num_partitions=int(np.sqrt(t.num_rows)),
                    num_sub_vectors=DIM // 8, metric="l2")
    c.take()

    def fresh():
        return lance.dataset(url, storage_options=opts)

    opens, open_waves = [], []
    for _ in range(5):
        c.take()
        t0 = time.perf_counter()
        fresh()
        opens.append((time.perf_counter() - t0) * 1000)
        out["open_requests"] = c.take()
        open_waves.append(c.last_waves)
        out["open_busy_ms"] = c.last_busy_s * 1000
    out["open_p50_ms"], out["open_waves_p50"] = pct(opens, 50), pct(open_waves, 50)
    d = fresh()
    t0 = time.perf_counter()
    scanned = d.to_table()
    dt = time.perf_counter() - t0
    out["scan_gb_per_s"] = scanned.nbytes / dt / 1e9
    out["scan_requests"] = c.take()
    out["scan_bytes"] = c.last_bytes
    for name, cols in (("take_small", ["label", "tag"]), ("take_emb", ["label", "tag", "emb"])):
        d = fresh()
        c.take()
        t0 = time.perf_counter()
        got = d.take(picks.tolist(), columns=cols)
        out[f"{name}_ms"] = (time.perf_counter() - t0) * 1000
        assert got.num_rows == len(picks)
        out[f"{name}_requests"] = c.take()
        out[f"{name}_bytes"] = c.last_bytes
        out[f"{name}_waves"] = c.last_waves
        out[f"{name}_busy_ms"] = c.last_busy_s * 1000
    cold, cold_req, cold_bytes, cold_waves, cold_busy = [], [], [], [], []
    for q in queries:
        d = fresh()
        c.take()
        t0 = time.perf_counter()
        d.to_table(nearest={"column": "emb", "q": q, "k": 10})
        cold.append((time.perf_counter() - t0) * 1000)
        cold_req.append(c.take())
        cold_bytes.append(c.last_bytes)
        cold_waves.append(c.last_waves)
        cold_busy.append(c.last_busy_s * 1000)
    out["query_cold_p50_ms"], out["query_cold_p95_ms"] = pct(cold, 50), pct(cold, 95)
    out["query_cold_requests_p50"] = pct(cold_req, 50)
    out["query_cold_bytes_p50"] = pct(cold_bytes, 50)
    out["query_cold_waves_p50"] = pct(cold_waves, 50)
    out["query_cold_busy_ms_p50"] = pct(cold_busy, 50)
    out.update(cold_processes(proxy, COLD_LANCE, url, queries, (endpoint,)))
    d = fresh()
    for q in queries:
        d.to_table(nearest={"column": "emb", "q": q, "k": 10})
    warm = []
    c.take()
    for q in queries:
        t0 = time.perf_counter()
        d.to_table(nearest={"column": "emb", "q": q, "k": 10})
        warm.append((time.perf_counter() - t0) * 1000)
    out["query_warm_p50_ms"], out["query_warm_p95_ms"] = pct(warm, 50), pct(warm, 95)
    out["query_warm_requests_per_query"] = c.take() / len(queries)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--latency-ms", type=float, default=0.0)
    ap.add_argument("--systems", default="dreamdb,lance")
    ap.add_argument("--json")
    ap.add_argument("--trace", action="store_true",
                    help="also list DreamDB's requests (with their round) of a cold open + take "
                         "and a cold open + search, each in a new process")
    args = ap.parse_args()
    endpoint = os.environ["DREAMDB_S3_ENDPOINT"]
    bucket = os.environ["DREAMDB_S3_BUCKET"]
    t = table(args.rows)
    rng = np.random.default_rng(1)
    queries = rng.normal(size=(args.queries, DIM)).astype(np.float32)
    picks = np.sort(rng.choice(args.rows, size=min(1000, args.rows), replace=False))
    result = {"rows": args.rows, "dim": DIM, "latency_ms": args.latency_ms,
              "queries": args.queries}
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="dreamdb-s3-bench-"))
    try:
        run = uuid.uuid4().hex[:8]
        if "dreamdb" in args.systems:
            proxy = FaultProxy(endpoint, FaultConfig(latency_ms=args.latency_ms)).start()
            try:
                uri = f"s3://{bucket}/bench-{run}/dreamdb?endpoint={proxy.endpoint}"
                result["dreamdb"] = bench_dreamdb(uri, t, queries, picks, proxy,
                                                  str(tmp / "cache"), f"file://{tmp / 'file'}",
                                                  args.trace)
            finally:
                proxy.stop()
        if "lance" in args.systems:
            proxy = FaultProxy(endpoint, FaultConfig(latency_ms=args.latency_ms)).start()
            try:
                result["lance"] = bench_lance(f"s3://{bucket}/bench-{run}/lance.lance",
                                              proxy.endpoint, t, queries, picks, proxy)
            finally:
                proxy.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        pathlib.Path(args.json).write_text(text)


if __name__ == "__main__":
    main()
