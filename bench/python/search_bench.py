#!/usr/bin/env python3
# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Vector search through the product, side by side in one process (spec/21 §7.10):
DreamDB's `Dataset.search` on a warm handle and on a cold one (a fresh open per query),
hnswlib's `knn_query` (M=16, efConstruction=200) and Lance's `to_table(nearest=...)` with
an IVF_PQ index and refine, one query at a time, single thread, on the same random
Gaussian vectors (cosine). Prints, per system and setting, queries/s and recall@10
against exact answers, then the best queries/s reaching recall@10 0.95 and 0.99.

Run by bench/python/search_bench.sh, which creates build/search-venv (hnswlib and pylance
from PyPI, this DreamDB from .venv):

  bench/python/search_bench.sh                      # 100k x 128, 300 queries
  bench/python/search_bench.sh --n 200000 --dim 768
  bench/python/search_bench.sh --smoke              # 5k x 32, 50 queries (CI)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional

import numpy as np

os.environ.setdefault("LANCE_LOG", "error")
os.environ.setdefault("RUST_LOG", "error")


def exact_top10(base: np.ndarray, queries: np.ndarray) -> np.ndarray:
    bn = base / np.linalg.norm(base, axis=1, keepdims=True)
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    out = np.empty((len(queries), 10), dtype=np.int64)
    for i in range(0, len(queries), 64):
        sims = qn[i:i + 64] @ bn.T
        top = np.argpartition(-sims, 10, axis=1)[:, :10]
        for j in range(top.shape[0]):
            row = top[j]
            out[i + j] = row[np.argsort(-sims[j, row])]
    return out


def recall(found: List[np.ndarray], truth: np.ndarray) -> float:
    hits = sum(len(set(f[:10].tolist()) & set(t.tolist())) for f, t in zip(found, truth))
    return hits / (10 * len(truth))


def timed(run: Callable[[np.ndarray], np.ndarray], queries: np.ndarray, reps: int):
    """Median queries/s over `reps` passes, one query at a time, and the results."""
    found: List[np.ndarray] = []
    rates = []
    for _ in range(reps):
        found = []
        t = time.perf_counter()
        for q in queries:
            found.append(run(q))
        rates.append(len(queries) / (time.perf_counter() - t))
    return statistics.median(rates), found


def best_at(rows: List[Dict[str, Any]], system: str, target: float) -> Optional[Dict[str, Any]]:
    ok = [r for r in rows if r["system"] == system and r["recall"] >= target]
    return max(ok, key=lambda r: r["qps"]) if ok else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--nq", type=int, default=300)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--cold", type=int, default=50, help="queries for the cold-handle runs")
    ap.add_argument("--algos", default="ivf,graph")
    ap.add_argument("--systems", default="dreamdb,hnswlib,lance")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", default="")
    ap.add_argument("--work", default="")
    a = ap.parse_args()
    if a.smoke:
        a.n, a.dim, a.nq, a.reps, a.cold = 5_000, 32, 50, 1, 10
    systems = a.systems.split(",")
    rng = np.random.default_rng(7)
    base = rng.standard_normal((a.n, a.dim), dtype=np.float32)
    queries = rng.standard_normal((a.nq, a.dim), dtype=np.float32)
    truth = exact_top10(base, queries)
    work = a.work or tempfile.mkdtemp(prefix="search-bench-")
    os.makedirs(work, exist_ok=True)
    rows: List[Dict[str, Any]] = []
    meta: Dict[str, Any] = {"n": a.n, "dim": a.dim, "nq": a.nq, "reps": a.reps,
                            "load_before": os.getloadavg()[0]}

    def add(system: str, setting: str, qps: float, rec: float, **extra: Any) -> None:
        row = {"system": system, "setting": setting, "qps": round(qps, 1),
               "recall": round(rec, 4), **extra}
        rows.append(row)
        print(json.dumps(row), flush=True)

    if "dreamdb" in systems:
        import dreamdb

        for algo in a.algos.split(","):
            store = os.path.join(work, f"dreamdb-{algo}")
            shutil.rmtree(store, ignore_errors=True)
            ds = dreamdb.Dataset.create("v", dreamdb.Schema().add_embedding("emb", a.dim),
                                        store=store)
            for i in range(0, a.n, 50_000):
                ds.append_many({"emb": base[i:i + 50_000]})
            t = time.perf_counter()
            st = ds.build_index("emb", algorithm=algo)
            build_s = time.perf_counter() - t
            meta[f"build_s/{algo}"] = round(build_s, 2)
            meta[f"status/{algo}"] = {k: st[k] for k in ("cells", "nprobe", "ef", "calibration")}
            warm = dreamdb.Dataset.open("v", store=store)

            def ids(table: Any) -> np.ndarray:
                return table.column("anchor").to_numpy().astype(np.int64)

            # Anchors follow the append order: anchor = row + offset.
            offset = int(ids(warm.search("emb", base[3], k=1, exact=True))[0]) - 3
            assert int(ids(warm.search("emb", base[a.n - 1], k=1, exact=True))[0]) - offset \
                == a.n - 1, "anchors do not follow the append order"

            def row_of(t: Any) -> np.ndarray:
                return ids(t) - offset
            key = "nprobe" if algo != "graph" else "ef"
            cells = int(st["cells"]) or 1
            sweep: List[Dict[str, Any]] = [{}, {"recall": 0.99}]
            if algo == "graph":
                # The beam widths hnswlib's sweep below tries, so both reach a recall
                # target at comparable steps.
                sweep += [{"ef": e} for e in (16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024,
                                              2048)]
            else:
                sweep += [{"nprobe": p} for p in sorted({max(1, cells * f // 100)
                                                           for f in (1, 2, 4, 8, 16, 32, 64, 100)})]
            for kw in sweep:
                warm.search("emb", queries[0], k=10, **kw)  # the first query warms the cells
                qps, found = timed(lambda q: row_of(warm.search("emb", q, k=10, **kw)),
                                   queries, a.reps)
                label = algo + ("/default" if not kw else "/" + ",".join(
                    f"{k}={v}" for k, v in kw.items()))
                add("dreamdb-warm", label, qps, recall(found, truth))
            for kw in ({}, {"recall": 0.99}):
                sub = queries[:a.cold]

                def cold(q: np.ndarray, kw: Dict[str, Any] = kw) -> np.ndarray:
                    return row_of(dreamdb.Dataset.open("v", store=store).search(
                        "emb", q, k=10, **kw))

                qps, found = timed(cold, sub, 1)
                label = algo + ("/default" if not kw else "/recall=0.99")
                add("dreamdb-cold", label, qps, recall(found, truth[:a.cold]))
            del warm, ds
            print(json.dumps({"dreamdb": algo, key: st[key], "build_s": round(build_s, 2)}))

    if "hnswlib" in systems:
        import hnswlib

        index = hnswlib.Index(space="cosine", dim=a.dim)
        index.set_num_threads(1)
        t = time.perf_counter()
        index.init_index(max_elements=a.n, M=16, ef_construction=200, random_seed=1)
        index.set_num_threads(2)
        index.add_items(base, np.arange(a.n))
        index.set_num_threads(1)
        meta["build_s/hnswlib"] = round(time.perf_counter() - t, 2)
        for ef in (10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024, 2048, 4096):
            index.set_ef(max(ef, 10))
            qps, found = timed(lambda q: index.knn_query(q, k=10)[0][0].astype(np.int64),
                               queries, a.reps)
            add("hnswlib", f"ef={ef}", qps, recall(found, truth))
        del index

    if "lance" in systems:
        import lance
        import pyarrow as pa

        path = os.path.join(work, "lance.lance")
        shutil.rmtree(path, ignore_errors=True)
        table = pa.table({"id": pa.array(np.arange(a.n, dtype=np.int64)),
                          "emb": pa.FixedSizeListArray.from_arrays(
                              pa.array(base.reshape(-1)), a.dim)})
        lds = lance.write_dataset(table, path)
        t = time.perf_counter()
        parts = max(1, int(round(math.sqrt(a.n))))
        lds = lds.create_index("emb", index_type="IVF_PQ", metric="cosine",
                               num_partitions=parts, num_sub_vectors=max(1, a.dim // 8))
        meta["build_s/lance"] = round(time.perf_counter() - t, 2)
        for nprobes in sorted({max(1, parts * f // 100) for f in (1, 2, 4, 8, 16, 32, 64, 100)}):
            for refine in (5, 20, 100):
                def run(q: np.ndarray, nprobes: int = nprobes, refine: int = refine) -> np.ndarray:
                    t = lds.to_table(columns=["id"], nearest={
                        "column": "emb", "q": q, "k": 10, "nprobes": nprobes,
                        "refine_factor": refine})
                    return t.column("id").to_numpy()

                qps, found = timed(run, queries, max(1, a.reps - 1))
                add("lance", f"nprobes={nprobes},refine={refine}", qps, recall(found, truth))

    meta["load_after"] = os.getloadavg()[0]
    summary = []
    for system in ("dreamdb-warm", "dreamdb-cold", "hnswlib", "lance"):
        for target in (0.95, 0.99):
            b = best_at(rows, system, target)
            summary.append({"system": system, "target": target,
                            "qps": b["qps"] if b else None,
                            "setting": b["setting"] if b else None,
                            "recall": b["recall"] if b else None})
    print("\nbest queries/s at recall@10 >= target (one query at a time, single thread)")
    print(f"{'system':14} {'target':>6} {'qps':>9} {'recall':>7}  setting")
    for s in summary:
        qps = f"{s['qps']:.0f}" if s["qps"] else "-"
        rec = f"{s['recall']:.3f}" if s["recall"] else "-"
        print(f"{s['system']:14} {s['target']:>6} {qps:>9} {rec:>7}  {s['setting'] or '-'}")
    print(json.dumps(meta))
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"meta": meta, "rows": rows, "summary": summary}, f, indent=1)
    if not a.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
