# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Repeated full scans of a 768-d embedding + int64 + float64 in one process: GB/s per
pass (median and fastest), CPU seconds per pass, minor page faults per pass and the
process's peak RSS.

    python bench/python/scan_loop.py make --system dreamdb --store DIR --rows N
    python bench/python/scan_loop.py make --system lance --path DIR.lance --rows N
    python bench/python/scan_loop.py scan --system dreamdb --store DIR [--passes 5]
    python bench/python/scan_loop.py scan --system lance --path DIR.lance [--passes 5]

`make` writes the same rows for both systems (seeded; DreamDB dataset "bench" in
10,000-row commits, Lance in one write_dataset). `scan` reads fields emb, id, score with
batch size 8192 (`Dataset.iter_batches` / `LanceDataset.to_batches`) `--passes` times,
each pass a new reader; GB/s counts 3,088 bytes of column data per row. Run the systems
in fresh processes, alternated, and compare medians. Prints one line of JSON.
"""

import argparse
import json
import resource
import statistics
import time

import numpy as np
import pyarrow as pa

DIM = 768
ROW_BYTES = DIM * 4 + 8 + 8
FIELDS = ["emb", "id", "score"]


def _chunks(rows: int):
    rng = np.random.default_rng(5)
    for s in range(0, rows, 10000):
        e = min(rows, s + 10000)
        emb = pa.FixedSizeListArray.from_arrays(
            pa.array(rng.standard_normal((e - s) * DIM, dtype=np.float32)), DIM)
        yield s, e, {"emb": emb, "id": pa.array(np.arange(s, e, dtype=np.int64)),
                     "score": pa.array(rng.random(e - s))}


def make(args: argparse.Namespace) -> None:
    if args.system == "dreamdb":
        import dreamdb
        schema = dreamdb.Schema().add_embedding("emb", DIM).add_int("id").add_float("score")
        ds = dreamdb.Dataset.create("bench", schema, store="file://" + args.store)
        for s, e, cols in _chunks(args.rows):
            ds.append_many(pa.table(cols), anchors=np.arange(s, e, dtype=np.uint64))
    else:
        import lance
        schema = pa.schema([("emb", pa.list_(pa.float32(), DIM)), ("id", pa.int64()),
                            ("score", pa.float64())])
        batches = (pa.record_batch(cols, schema=schema) for _, _, cols in _chunks(args.rows))
        lance.write_dataset(pa.RecordBatchReader.from_batches(schema, batches), args.path)


def scan(args: argparse.Namespace) -> None:
    if args.system == "dreamdb":
        import dreamdb
        ds = dreamdb.Dataset.open("bench", store="file://" + args.store)
        batches = lambda: ds.iter_batches(fields=FIELDS, batch_size=8192)  # noqa: E731
    else:
        import lance
        ds = lance.dataset(args.path)
        batches = lambda: ds.to_batches(columns=FIELDS, batch_size=8192)  # noqa: E731
    rates, cpus, faults = [], [], []
    rows = 0
    for _ in range(args.passes):
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        rows = sum(b.num_rows for b in batches())
        dt = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        rates.append(rows * ROW_BYTES / dt / 1e9)
        cpus.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
        faults.append(r1.ru_minflt - r0.ru_minflt)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"system": args.system, "rows": rows, "gbps_median": statistics.median(rates),
                      "gbps_best": max(rates), "cpu_s_median": statistics.median(cpus),
                      "minflt_median": statistics.median(faults), "peak_rss_mib": peak / 1024,
                      "gbps": [round(r, 3) for r in rates]}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("action", choices=("make", "scan"))
    ap.add_argument("--system", choices=("dreamdb", "lance"), required=True)
    ap.add_argument("--store", help="DreamDB store directory")
    ap.add_argument("--path", help="Lance dataset directory")
    ap.add_argument("--rows", type=int, default=200000)
    ap.add_argument("--passes", type=int, default=5)
    args = ap.parse_args()
    if (args.system == "dreamdb") != (args.store is not None):
        ap.error("--store goes with --system dreamdb, --path with --system lance")
    (make if args.action == "make" else scan)(args)


if __name__ == "__main__":
    main()
