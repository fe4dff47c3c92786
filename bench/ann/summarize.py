#!/usr/bin/env python3
# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Side-by-side summary of ann_bench / peers.py JSON lines (bench/ann/run.sh).

Usage: summarize.py FILE.jsonl... > summary.md

Prints, per data set (n x dim): every configuration sorted by algorithm and recall, then
a headline table: for each algorithm the best QPS at recall@10 >= 0.95 (and >= 0.98),
its memory and build time, and the ratios against hnswlib at the same recall level.
"QPS cpu" divides the queries by the query thread's CPU time and "build cpu" is process
CPU time (all threads): on a shared, loaded machine these are the comparable figures;
wall-clock figures are shown too, with the load average during the run.
"""

import json
import sys
from collections import defaultdict


def load(paths):
    rows = []
    for p in paths:
        with open(p) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    rows.append(json.loads(line))
    return rows


def params_text(p):
    return " ".join(f"{k}={v}" for k, v in p.items() if k != "build_threads")


def mb(b):
    return f"{b / 2**20:.0f}"


def qcpu(r):
    return r.get("qps_cpu", r["qps"])


def bcpu(r):
    return r.get("build_cpu_s", r["build_s"])


def best_at(rows, level):
    ok = [r for r in rows if r["recall"] >= level]
    return max(ok, key=qcpu) if ok else None


def ratio(a, b, fmt="{:.2f}x"):
    return fmt.format(a / b) if b > 0 and a > 0 else "-"


def main():
    rows = load(sys.argv[1:])
    by_set = defaultdict(list)
    for r in rows:
        by_set[(r["n"], r["dim"])].append(r)
    for (n, dim), rs in sorted(by_set.items()):
        nq = rs[0]["nq"]
        loads = [r["load"] for r in rs if "load" in r]
        load_txt = f", load average {min(loads):.1f}-{max(loads):.1f}" if loads else ""
        print(f"### SYN-{dim}, n = {n:,}, {nq} queries, k = {rs[0]['k']}{load_txt}\n")
        print("| algorithm | params | recall@10 | QPS cpu | QPS wall | memory MiB | "
              "bytes/vector | build cpu s | build wall s |")
        print("|---|---|---|---|---|---|---|---|---|")
        algos = defaultdict(list)
        for r in rs:
            algos[r["algo"]].append(r)
        for algo in sorted(algos):
            for r in sorted(algos[algo], key=lambda r: r["recall"]):
                print(f"| {algo} | {params_text(r['params'])} | {r['recall']:.4f} | "
                      f"{qcpu(r):,.0f} | {r['qps']:,.0f} | {mb(r['memory_bytes'])} | "
                      f"{r['bytes_per_vector']:.0f} | {bcpu(r):.1f} | {r['build_s']:.1f} |")
        print()
        graph = [r for r in rs if "blocks_per_query" in r]
        if graph:
            print("**Graph walks** (per query: distinct node blocks fetched, nodes expanded, "
                  "nodes met (1-bit screened), full-code estimates, exact distances; bytes per "
                  "vector of the graph and codes in memory)\n")
            print("| algorithm | params | recall@10 | blocks / query | of blocks | expanded | "
                  "met | refined | exact | graph bytes/vector |")
            print("|---|---|---|---|---|---|---|---|---|---|")
            for r in sorted(graph, key=lambda r: (r["algo"], r["recall"])):
                print(f"| {r['algo']} | {params_text(r['params'])} | {r['recall']:.4f} | "
                      f"{r['blocks_per_query']:.1f} | {r['num_blocks']} | "
                      f"{r['expanded_per_query']:.1f} | {r['estimated_per_query']:.1f} | "
                      f"{r.get('refined_per_query', 0):.1f} | "
                      f"{r.get('exact_per_query', 0):.1f} | {r['graph_bytes_per_vector']:.0f} |")
            print()
        for level in (0.95, 0.98):
            ref = best_at(algos.get("hnswlib", []), level)
            print(f"**Best QPS (cpu) at recall@10 >= {level}**, ratios vs hnswlib at the same "
                  "level\n")
            print("| algorithm | params | recall@10 | QPS cpu | vs hnswlib | QPS wall | "
                  "vs hnswlib | memory MiB | vs hnswlib | build cpu s | hnswlib / this |")
            print("|---|---|---|---|---|---|---|---|---|---|---|")
            for algo in sorted(algos):
                b = best_at(algos[algo], level)
                if b is None:
                    print(f"| {algo} | - | < {level} | - | - | - | - | - | - | - | - |")
                    continue
                if ref:
                    q1 = ratio(qcpu(b), qcpu(ref))
                    q2 = ratio(b["qps"], ref["qps"])
                    m = ratio(b["memory_bytes"], ref["memory_bytes"], "{:.2f}")
                    bt = ratio(bcpu(ref), bcpu(b), "{:.1f}x")
                else:
                    q1 = q2 = m = bt = "-"
                print(f"| {algo} | {params_text(b['params'])} | {b['recall']:.4f} | "
                      f"{qcpu(b):,.0f} | {q1} | {b['qps']:,.0f} | {q2} | "
                      f"{mb(b['memory_bytes'])} | {m} | {bcpu(b):.1f} | {bt} |")
            print()


if __name__ == "__main__":
    main()
