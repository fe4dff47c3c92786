#!/usr/bin/env python3
# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Prints Markdown tables of medians from Google Benchmark JSON files (GB/s = 1e9 B/s).

Usage: bench/summarize.py hash_bench.json store_bench.json

With repetitions, the "median" aggregate of each benchmark is used; a run without
repetitions (e.g. --smoke) reports its single measurement.
"""

from __future__ import annotations

import json
import sys


def load(path: str) -> dict[str, dict]:
    with open(path) as f:
        data = json.load(f)
    rows: dict[str, dict] = {}
    for b in data["benchmarks"]:
        if b.get("error_occurred"):
            rows[b.get("run_name", b["name"])] = {"error": b.get("error_message", "error")}
            continue
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                rows[b["run_name"]] = b
        else:
            rows.setdefault(b.get("run_name", b["name"]), b)
    return rows


def ns(b: dict) -> float:
    """The measured time per operation: wall-clock for UseRealTime benchmarks, else CPU."""
    scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b.get("time_unit", "ns")]
    real = b.get("run_name", b["name"]).endswith("/real_time")
    return (b["real_time"] if real else b["cpu_time"]) * scale


def fmt_time(t_ns: float) -> str:
    if t_ns >= 1e6:
        return f"{t_ns / 1e6:.2f} ms"
    if t_ns >= 1e3:
        return f"{t_ns / 1e3:.1f} µs"
    return f"{t_ns:.0f} ns"


def fmt_rate(bps: float | None) -> str:
    if not bps:
        return "—"
    if bps >= 1e9:
        return f"{bps / 1e9:.2f} GB/s"
    if bps >= 1e6:
        return f"{bps / 1e6:.1f} MB/s"
    return f"{bps / 1e3:.1f} kB/s"


def hash_table(rows: dict[str, dict]) -> None:
    print("| Buffer | BLAKE3 (ObjectId::Of) | SHA-256 (OpenSSL EVP) | BLAKE3 / SHA-256 |")
    print("|---|---|---|---|")
    for size in [4 << 10, 64 << 10, 1 << 20, 16 << 20]:
        b3, sha = rows.get(f"BM_Blake3/{size}"), rows.get(f"BM_Sha256/{size}")
        if not b3 or not sha or "error" in b3 or "error" in sha:
            continue
        r1, r2 = b3["bytes_per_second"], sha["bytes_per_second"]
        label = f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB"
        print(f"| {label} | {fmt_rate(r1)} | {fmt_rate(r2)} | {r1 / r2:.2f}× |")
    print()


def store_table(rows: dict[str, dict]) -> None:
    print("| Benchmark | time/op | ops/s | bytes/s | p50 (wall) | p99 (wall) |")
    print("|---|---|---|---|---|---|")
    for name, b in rows.items():
        if "error" in b:
            print(f"| {name} | error: {b['error']} | | | | |")
            continue
        p50 = fmt_time(b["p50_us"] * 1e3) if "p50_us" in b else "—"
        p99 = fmt_time(b["p99_us"] * 1e3) if "p99_us" in b else "—"
        label = name.removesuffix("/real_time")
        print(f"| {label} | {fmt_time(ns(b))} | {b.get('items_per_second', 0):,.0f} | "
              f"{fmt_rate(b.get('bytes_per_second'))} | {p50} | {p99} |")
    print()


def main(paths: list[str]) -> None:
    for path in paths:
        rows = load(path)
        if any(n.startswith("BM_Blake3") for n in rows):
            hash_table(rows)
        else:
            store_table(rows)


if __name__ == "__main__":
    main(sys.argv[1:])
