# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""The earlier DreamDB (`dreamdb==0.0.16` from PyPI) side of the Python benchmarks.

Runs in build/dreamdb-0016-venv: that package is a different code base (Rust, pyo3)
with the same import name as ours, so it never shares an environment with it. Its API
(inspected from the installed 0.0.16) and what each workload uses:

- ingest: ``Dataset.append_many(list of dicts)`` only (no Arrow/NumPy column input; each
  embedding is converted to a Python list by the package); anchors are ``_anchor``
  nanosecond time stamps, here row index + 1. Schema: ``add_embedding("emb", 768)``
  (default "dreamdb.lsh-cosine": the package builds its LSH buckets during the append).
- scan: ``iter_arrow_batches(batch_size, fields)`` (pyarrow RecordBatches).
- take: no multi-anchor take. Embeddings: ``get_by_anchor`` one anchor at a time over a
  primary-key index (``build_anchor_index``, which needs ``rerank=True`` in the schema,
  so take runs on a second dataset created that way); small fields: one
  ``iter_all_batches`` window ``[a, a+1)`` per anchor.
- loader: ``dreamdb.torch.DreamDbDataset`` (whole-dataset Arrow batches). Its constructor
  calls ``IterableDataset.register``, which torch 1.13 does not have, and the Rust
  runtime does not survive fork once a dataset is open, so the benchmark wraps its
  ``__iter__`` in an IterableDataset that opens the dataset inside each worker.
  Every worker reads every batch and keeps its share (documented by the package).

Commands: ingest, scan, take-prep, take, prep-images, loader (see run.py).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import dreamdb as vd  # noqa: E402  (0.0.16)

FIELDS = ["emb", "id", "score"]


def backend(path: str) -> str:
    return "file://" + os.path.abspath(path)


def rows_of(data: str, rows: int):
    cols = common.load_rows(data, rows)
    return [{"_anchor": i + 1, "emb": cols["emb"][i], "id": int(cols["id"][i]),
             "score": float(cols["score"][i])} for i in range(rows)]


def ingest(data: str, rows: int, batch: int, store: str, name: str, rerank: bool) -> float:
    work = rows_of(data, rows)
    schema = (vd.Schema().add_embedding("emb", common.DIM, rerank=rerank)
              .add_scalar_int("id").add_scalar_float("score"))
    t0 = common.now()
    ds = vd.Dataset.create(name, schema, backend=backend(store))
    for s in range(0, rows, batch):
        ds.append_many(work[s:s + batch])
    return common.now() - t0


def cmd_ingest(a: argparse.Namespace) -> None:
    dt = ingest(a.data, a.rows, a.batch, a.store, "bench", False)
    common.emit("ingest", seconds=dt, rows=a.rows, rows_per_s=a.rows / dt,
                mb_per_s=a.rows * common.ROW_BYTES / dt / 1e6, disk_bytes=common.du_bytes(a.store))


def scan_once(a: argparse.Namespace) -> int:
    ds = vd.Dataset.open("bench", backend=backend(a.store))
    n = 0
    for b in ds.iter_arrow_batches(batch_size=common.SCAN_BATCH, fields=FIELDS):
        n += b.num_rows
    return n


def cmd_scan(a: argparse.Namespace) -> None:
    # Page cache warmed by an untimed process first (run.py); VmHWM from process start.
    base = common.rss_mib()
    t0 = common.now()
    n = scan_once(a)
    dt = common.now() - t0
    assert n == a.rows, (n, a.rows)
    common.emit("scan", seconds=dt, rows=n, gb_per_s=n * common.ROW_BYTES / dt / 1e9,
                peak_rss_mib=common.peak_rss_mib(), base_rss_mib=base)


def cmd_take_prep(a: argparse.Namespace) -> None:
    dt = ingest(a.data, a.rows, a.batch, a.store, "take", True)
    ds = vd.Dataset.open("take", backend=backend(a.store))
    t0 = common.now()
    root = ds.build_anchor_index("emb")
    with open(os.path.join(a.store, "anchor-index-root"), "wb") as f:
        f.write(bytes(root))
    common.emit("take-prep", seconds=dt, index_seconds=common.now() - t0,
                rows_per_s=a.rows / dt)


def cmd_take(a: argparse.Namespace) -> None:
    sets = np.load(a.anchors)
    if a.limit:
        sets = sets[:, : a.limit]
    with open(os.path.join(a.store, "anchor-index-root"), "rb") as f:
        root = f.read()
    per_row = 16 if a.fields == "small" else common.DIM * 4

    def take(ds, anchors):
        if a.fields == "emb":
            return [ds.get_by_anchor("emb", root, int(x) + 1) for x in anchors]
        out = []
        for x in anchors:
            (b,) = ds.iter_all_batches(batch_size=16, fields=["id", "score"],
                                       start_ns=int(x) + 1, end_ns=int(x) + 2)
            out.append(b["id"][0])
        return out

    take(vd.Dataset.open("take", backend=backend(a.store)), sets[-1][:10])  # warm-up
    for anchors in sets:
        ds = vd.Dataset.open("take", backend=backend(a.store))
        r0 = common.read_chars()
        t0 = common.now()
        got = take(ds, anchors)
        dt = common.now() - t0
        read = common.read_chars() - r0
        if a.fields == "small":
            assert got == anchors.tolist()
        else:
            assert len(got) == len(anchors) and len(got[0]) == common.DIM
        returned = len(anchors) * per_row
        common.emit("take", seconds=dt, rows=len(anchors), rows_per_s=len(anchors) / dt,
                    read_bytes=read, read_ratio=read / returned)


def cmd_prep_images(a: argparse.Namespace) -> None:
    images = common.load_images(a.data, a.count)
    schema = vd.Schema().add_image("img", mime="png")
    t0 = common.now()
    ds = vd.Dataset.create("imgs", schema, backend=backend(a.store))
    for s in range(0, a.count, 1000):
        e = min(a.count, s + 1000)
        ds.append_many([{"_anchor": i + 1, "img": images[i].tobytes()} for i in range(s, e)])
    common.emit("prep-images", seconds=common.now() - t0, disk_bytes=common.du_bytes(a.store))


def cmd_loader(a: argparse.Namespace) -> None:
    import torch.utils.data

    class Lazy(torch.utils.data.IterableDataset):
        """dreamdb.torch.DreamDbDataset's own __iter__, with the dataset opened in the
        worker (see the module docstring)."""

        def __init__(self, store: str) -> None:
            self.store = store

        def __iter__(self):
            from dreamdb.torch import DreamDbDataset

            inner = DreamDbDataset.__new__(DreamDbDataset)
            inner._dataset = vd.Dataset.open("imgs", backend=backend(self.store))
            inner._fields = ["img"]
            inner._batch_size = 64
            inner._shuffle_seed = None
            return iter(inner)

    tds = Lazy(a.store)
    for epoch in range(a.epochs + 1):  # epoch 0 warms the page cache, not reported
        # batch_size=None: DreamDbDataset yields ready batches of 64 (its documented use).
        loader = torch.utils.data.DataLoader(tds, batch_size=None, num_workers=a.workers)
        n = 0
        nbytes = 0
        t0 = common.now()
        for batch in loader:
            n += len(batch["img"])
            nbytes += sum(len(x) for x in batch["img"])
        dt = common.now() - t0
        assert n == a.count and nbytes == a.count * common.IMAGE_BYTES, (n, nbytes)
        if epoch:
            common.emit("loader", seconds=dt, samples=n, samples_per_s=n / dt)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd")
    ap.add_argument("--data")
    ap.add_argument("--store")
    ap.add_argument("--rows", type=int)
    ap.add_argument("--batch", type=int, default=10000)
    ap.add_argument("--anchors")
    ap.add_argument("--fields", default="small")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--count", type=int)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    {"ingest": cmd_ingest, "scan": cmd_scan, "take-prep": cmd_take_prep, "take": cmd_take,
     "prep-images": cmd_prep_images, "loader": cmd_loader}[a.cmd](a)


if __name__ == "__main__":
    main()
