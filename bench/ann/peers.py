#!/usr/bin/env python3
# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Peer ANN indexes on the same SYN files as bench/ann/ann_bench.cc.

Runs in its own venv (build/ann-venv, created by bench/ann/run.sh from
bench/ann/requirements.txt). Reads DIR/base.fvecs, query.fvecs, gt.ivecs, gt_dist.fvecs
(written by `ann_bench --prepare`) and prints one JSON line per configuration, with the
same fields and the same method as ann_bench:

  * queries one at a time, single thread (hnswlib set_num_threads(1),
    faiss.omp_set_num_threads(1)), best of --runs passes over all queries;
  * recall@k counts results whose exact cosine distance (1 - cos) is within the true
    k-th distance + 1e-3 (ann-benchmarks);
  * memory = RSS delta across the build (the data set is loaded before), build time with
    --build-threads threads.
  * The machine may be shared: besides wall-clock QPS and build time, qps_cpu (queries
    per second of the query thread's CPU time) and build_cpu_s (process CPU time, all
    threads) are reported, with the 1-minute load average.

Algorithms: hnswlib (M=16, efConstruction=200, sweeping ef), faiss IndexHNSWFlat (same
M/efC), faiss IndexIVFRaBitQ (nb_bits 1 and 4) and IndexIVFRaBitQFastScan (nb_bits 4), IVF
with round(sqrt(n)) lists, sweeping nprobe. Data are unit vectors: hnswlib uses "cosine",
faiss uses L2 (same ranking on unit vectors).
"""

import argparse
import gc
import json
import math
import os
import sys
import time

import numpy as np

DEFAULT_ALGOS = "hnswlib,faiss-hnsw,faiss-ivf-rabitq1,faiss-ivf-rabitq4,faiss-ivf-rabitq4-fs"


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    if raw.size == 0:
        raise SystemExit(f"peers.py: {path!r} is empty")
    d = int(raw[0])
    if d <= 0 or raw.size % (d + 1) != 0:
        raise SystemExit(f"peers.py: {path!r} is not a valid vecs file (dimension {d})")
    rows = raw.reshape(-1, d + 1)
    if not np.all(rows[:, 0] == d):
        raise SystemExit(f"peers.py: {path!r} has rows of different dimensions")
    return np.ascontiguousarray(rows[:, 1:]).view(dtype)


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def trim():
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def recall_at_k(base, queries, gt_dist, found, k):
    """ann-benchmarks recall: results within the true k-th distance + 1e-3."""
    total = 0.0
    for i in range(queries.shape[0]):
        ids = found[i][:k]
        ids = ids[(ids >= 0) & (ids < base.shape[0])]
        if ids.size:
            x = base[ids]
            q = queries[i]
            cos = (x @ q) / (np.linalg.norm(x, axis=1) * np.linalg.norm(q))
            dist = 1.0 - cos.astype(np.float64)
            total += np.count_nonzero(dist <= float(gt_dist[i, k - 1]) + 1e-3) / k
    return total / queries.shape[0]


def measure(search, queries, runs, k):
    """Best-of-runs wall and thread-CPU times over all queries, one at a time."""
    qs = [queries[i : i + 1] for i in range(queries.shape[0])]
    found = [None] * len(qs)
    best = math.inf
    best_cpu = math.inf
    for _ in range(runs):
        t0 = time.perf_counter()
        c0 = time.thread_time()
        for i, q in enumerate(qs):
            found[i] = search(q)
        best_cpu = min(best_cpu, time.thread_time() - c0)
        best = min(best, time.perf_counter() - t0)
    return (best, best_cpu), [np.asarray(f, dtype=np.int64).reshape(-1)[:k] for f in found]


def emit(algo, params, n, dim, nq, k, build, mem, secs, recall, extra=None):
    build_s, build_cpu_s = build
    secs, cpu_secs = secs
    row = {
        "algo": algo,
        "params": params,
        "n": n,
        "dim": dim,
        "nq": nq,
        "k": k,
        "build_s": round(build_s, 3),
        "build_cpu_s": round(build_cpu_s, 3),
        "bytes_per_vector": round(mem / n, 1),
        "memory_bytes": mem,
        "rss_delta_bytes": mem,
        f"recall@{k}": round(recall, 4),
        "recall": round(recall, 4),
        "qps": round(nq / secs, 1),
        "qps_cpu": round(nq / max(cpu_secs, 1e-9), 1),
        "load": os.getloadavg()[0],
    }
    if extra:
        row.update(extra)
    print(json.dumps(row), flush=True)


def run_hnswlib(args, base, queries, gt_dist):
    import hnswlib

    n, dim = base.shape
    trim()
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    c0 = time.process_time()
    index = hnswlib.Index(space="cosine", dim=dim)
    index.init_index(max_elements=n, ef_construction=args.ef_construction, M=args.m,
                     random_seed=args.seed)
    index.set_num_threads(args.build_threads)
    index.add_items(base, np.arange(n))
    build_s = (time.perf_counter() - t0, time.process_time() - c0)
    trim()
    mem = max(0, rss_bytes() - rss0)
    index.set_num_threads(1)
    for ef in args.ef:
        index.set_ef(max(ef, args.k))
        secs, found = measure(lambda q: index.knn_query(q, k=args.k)[0], queries, args.runs,
                              args.k)
        rec = recall_at_k(base, queries, gt_dist, found, args.k)
        emit("hnswlib", {"M": args.m, "efC": args.ef_construction, "ef": ef,
                         "build_threads": args.build_threads},
             n, dim, queries.shape[0], args.k, build_s, mem, secs, rec,
             {"version": hnswlib_version()})
    del index


def hnswlib_version():
    try:
        from importlib.metadata import version

        return version("hnswlib")
    except Exception:  # noqa: BLE001 - informational only
        return "unknown"


def faiss_build(faiss, make, base, build_threads, train=False):
    trim()
    rss0 = rss_bytes()
    faiss.omp_set_num_threads(build_threads)
    t0 = time.perf_counter()
    c0 = time.process_time()
    index = make()
    if train:
        index.train(base)
    index.add(base)
    build_s = (time.perf_counter() - t0, time.process_time() - c0)
    trim()
    mem = max(0, rss_bytes() - rss0)
    faiss.omp_set_num_threads(1)
    return index, build_s, mem


def run_faiss(args, algo, base, queries, gt_dist):
    import faiss

    n, dim = base.shape
    nq = queries.shape[0]
    nlist = args.nlist or max(1, round(math.sqrt(n)))
    if algo == "faiss-hnsw":

        def make():
            ix = faiss.IndexHNSWFlat(dim, args.m, faiss.METRIC_L2)
            ix.hnsw.efConstruction = args.ef_construction
            return ix

        index, build_s, mem = faiss_build(faiss, make, base, args.build_threads)
        for ef in args.ef:
            index.hnsw.efSearch = max(ef, args.k)
            secs, found = measure(lambda q: index.search(q, args.k)[1], queries, args.runs, args.k)
            rec = recall_at_k(base, queries, gt_dist, found, args.k)
            emit(algo, {"M": args.m, "efC": args.ef_construction, "ef": ef,
                        "build_threads": args.build_threads},
                 n, dim, nq, args.k, build_s, mem, secs, rec, {"version": faiss.__version__})
        return
    bits = {"faiss-ivf-rabitq1": 1, "faiss-ivf-rabitq4": 4, "faiss-ivf-rabitq4-fs": 4}.get(algo)
    if bits is None:
        raise SystemExit(f"peers.py: unknown algorithm {algo!r}")
    fastscan = algo.endswith("-fs")

    def make():
        quantizer = faiss.IndexFlatL2(dim)
        if fastscan:
            ix = faiss.IndexIVFRaBitQFastScan(quantizer, dim, nlist, faiss.METRIC_L2, 32, True,
                                              bits)
        else:
            ix = faiss.IndexIVFRaBitQ(quantizer, dim, nlist, faiss.METRIC_L2, True, bits)
        ix.own_fields = True
        quantizer.this.disown()
        ix.qb = 8  # 8-bit query quantization (the non-FastScan default, 4, caps recall)
        return ix

    index, build_s, mem = faiss_build(faiss, make, base, args.build_threads, train=True)
    for nprobe in args.nprobe:
        index.nprobe = min(nprobe, nlist)
        secs, found = measure(lambda q: index.search(q, args.k)[1], queries, args.runs, args.k)
        rec = recall_at_k(base, queries, gt_dist, found, args.k)
        emit(algo, {"bits": bits, "nlist": nlist, "nprobe": nprobe, "qb": int(index.qb),
                    "build_threads": args.build_threads},
             n, dim, nq, args.k, build_s, mem, secs, rec, {"version": faiss.__version__})
    del index


def int_list(s):
    return [int(x) for x in s.split(",") if x]


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="directory written by ann_bench --prepare")
    p.add_argument("--algos", default=DEFAULT_ALGOS)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--ef-construction", type=int, default=200)
    p.add_argument("--ef", type=int_list, default=int_list("10,20,40,60,80,120,200"))
    p.add_argument("--nprobe", type=int_list, default=int_list("8,16,24,32,48,64"))
    p.add_argument("--nlist", type=int, default=0, help="0 = round(sqrt(n))")
    p.add_argument("--build-threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=100)
    args = p.parse_args()

    base = read_vecs(os.path.join(args.data, "base.fvecs"), np.float32)
    queries = read_vecs(os.path.join(args.data, "query.fvecs"), np.float32)
    gt_dist = read_vecs(os.path.join(args.data, "gt_dist.fvecs"), np.float32)
    if gt_dist.shape[0] != queries.shape[0] or gt_dist.shape[1] < args.k:
        raise SystemExit("peers.py: gt_dist.fvecs does not match the queries")
    for algo in [a for a in args.algos.split(",") if a]:
        print(f"peers.py: {algo} on {base.shape[0]} x {base.shape[1]}", file=sys.stderr,
              flush=True)
        if algo == "hnswlib":
            run_hnswlib(args, base, queries, gt_dist)
        else:
            run_faiss(args, algo, base, queries, gt_dist)
        trim()


if __name__ == "__main__":
    main()
