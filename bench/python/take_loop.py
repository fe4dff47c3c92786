# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Many random takes in one process: median and fastest ms per take, and for DreamDB the
storage requests and bytes per take (Dataset.read_stats).

    python bench/python/take_loop.py --system dreamdb --store DIR --anchors F [--fresh] [--takes N]
    python bench/python/take_loop.py --system lance --path DIR.lance --anchors F [--fresh]

The stores are those of `bench/python/run.sh --only take --keep` (ids and scores of 200k
rows; DreamDB dataset "bench"); ANCHORS is an .npy of R x K row indices (take_anchors.npy
or any other). Fields id + score (--fields small) or emb. One untimed take first; take i
uses row i mod R of ANCHORS; --fresh opens a new handle (dataset) before each take, outside
the timing. On a shared machine the median moves with the load; the fastest take is the
steadier figure. Prints one line of JSON.
"""

import argparse
import json
import statistics
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--system", choices=("dreamdb", "lance"), required=True)
    ap.add_argument("--store", help="DreamDB store directory")
    ap.add_argument("--path", help="Lance dataset directory")
    ap.add_argument("--anchors", required=True)
    ap.add_argument("--fields", choices=("small", "emb"), default="small")
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--takes", type=int, default=200)
    a = ap.parse_args()
    sets = np.load(a.anchors)
    fields = ["id", "score"] if a.fields == "small" else ["emb"]
    if a.system == "dreamdb":
        import dreamdb

        def open_ds():
            return dreamdb.Dataset.open("bench", store=a.store)

        def take(ds, anchors):
            return ds.take(anchors.astype(np.uint64), fields=fields)
    else:
        import lance

        def open_ds():
            return lance.dataset(a.path)

        def take(ds, anchors):
            return ds.take(anchors.astype(np.int64), columns=fields)

    first = open_ds()
    take(first, sets[-1])
    times, requests, fetched = [], 0, 0
    for i in range(a.takes):
        ds = open_ds() if a.fresh else first
        before = ds.read_stats() if a.system == "dreamdb" else None
        t0 = time.perf_counter()
        take(ds, sets[i % len(sets)])
        times.append(time.perf_counter() - t0)
        if before is not None:
            after = ds.read_stats()
            requests += after["requests"] - before["requests"]
            fetched += after["bytes_fetched"] - before["bytes_fetched"]
    out = {"system": a.system, "fields": a.fields, "fresh": a.fresh, "takes": a.takes,
           "anchors_per_take": int(sets.shape[1]),
           "median_ms": round(statistics.median(times) * 1e3, 3),
           "min_ms": round(min(times) * 1e3, 3)}
    if a.system == "dreamdb":
        out["requests_per_take"] = round(requests / a.takes, 1)
        out["fetched_per_anchor"] = round(fetched / a.takes / sets.shape[1], 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
