# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Peer side of the Python benchmarks: Lance (pylance), Parquet (pyarrow) and WebDataset.

Runs in build/peer-venv (bench/python/requirements-peers.txt). One command per process;
each prints RESULT lines (see common.py). Commands:

    ingest --system lance|lance-append|parquet --data D --rows N --batch B --out PATH
        lance:        one write_dataset() over a reader of B-row batches (one version)
        lance-append: write_dataset(mode="append") per B-row batch (one version each,
                      like DreamDB's one commit per append_many)
        parquet:      pyarrow.parquet.write_table(row_group_size=B), default options
    scan --system lance|parquet --path PATH --rows N     warm pass, then timed pass
    take --path PATH --anchors F --fields small|emb      lance take(), fresh handle per call
    prep-wds --data D --count M --out DIR                tar shards of 1,000 samples
    loader --path DIR --count M --epochs E               DataLoader over wds.WebDataset
    prep-wds-emb --data D --rows N --out DIR             tar shards of raw float32 vectors
    prep-lance-images --data D --count M --out PATH      the blobs as a Lance dataset
    loader-v2 --system wds|lance --kind img|emb --path P --count M --workers W --epochs E
        wds:   wds.WebDataset (split by worker), DataLoader(batch_size=64)
        lance: lance.torch.data.LanceDataset(batch_size=64) with DataLoader(batch_size=None),
               sharded per worker by batch (it does not split across workers itself)
"""

from __future__ import annotations

import argparse
import glob
import os
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

FIELDS = ["emb", "id", "score"]


def batches(data: str, rows: int, batch: int):
    cols = common.load_rows(data, rows)
    out = []
    for s in range(0, rows, batch):
        e = min(rows, s + batch)
        emb = pa.FixedSizeListArray.from_arrays(pa.array(cols["emb"][s:e].reshape(-1)),
                                                common.DIM)
        out.append(pa.record_batch({"emb": emb, "id": pa.array(cols["id"][s:e]),
                                    "score": pa.array(cols["score"][s:e])}))
    return out


def cmd_ingest(a: argparse.Namespace) -> None:
    import lance

    work = batches(a.data, a.rows, a.batch)
    schema = work[0].schema
    t0 = common.now()
    if a.system == "lance":
        lance.write_dataset(pa.RecordBatchReader.from_batches(schema, iter(work)), a.out)
    elif a.system == "lance-append":
        for i, b in enumerate(work):
            lance.write_dataset(pa.Table.from_batches([b]), a.out,
                                mode="create" if i == 0 else "append")
    elif a.system == "parquet":
        pq.write_table(pa.Table.from_batches(work), a.out, row_group_size=a.batch)
    else:
        raise SystemExit(f"unknown system {a.system!r}")
    dt = common.now() - t0
    common.emit("ingest", seconds=dt, rows=a.rows, rows_per_s=a.rows / dt,
                mb_per_s=a.rows * common.ROW_BYTES / dt / 1e6, disk_bytes=common.du_bytes(a.out))


def scan_once(a: argparse.Namespace) -> int:
    n = 0
    if a.system == "lance":
        import lance

        it = lance.dataset(a.path).to_batches(columns=FIELDS, batch_size=common.SCAN_BATCH)
    else:
        it = pq.ParquetFile(a.path).iter_batches(batch_size=common.SCAN_BATCH, columns=FIELDS)
    for b in it:
        n += b.num_rows
    return n


def cmd_scan(a: argparse.Namespace) -> None:
    if a.system == "lance":
        import lance  # noqa: F401  (imported before the baseline RSS is read)
    # run.py warms the page cache with an untimed process first; peak RSS is this
    # process's VmHWM from its start (imports included; base_rss_mib is before the scan).
    base = common.rss_mib()
    t0 = common.now()
    n = scan_once(a)
    dt = common.now() - t0
    assert n == a.rows, (n, a.rows)
    common.emit("scan", seconds=dt, rows=n, gb_per_s=n * common.ROW_BYTES / dt / 1e9,
                peak_rss_mib=common.peak_rss_mib(), base_rss_mib=base)


def cmd_take(a: argparse.Namespace) -> None:
    import lance

    sets = np.load(a.anchors)
    fields = ["id", "score"] if a.fields == "small" else ["emb"]
    per_row = 16 if a.fields == "small" else common.DIM * 4
    first = lance.dataset(a.path)
    first.take(sets[-1].tolist(), columns=fields)  # untimed warm-up call
    for anchors in sets:
        ds = first if a.same_handle else lance.dataset(a.path)
        r0 = common.read_chars()
        t0 = common.now()
        t = ds.take(pa.array(anchors.astype(np.uint64)), columns=fields)
        dt = common.now() - t0
        read = common.read_chars() - r0
        if a.fields == "small":
            assert t.column("id").to_numpy().tolist() == anchors.tolist()
        returned = len(anchors) * per_row
        common.emit("take", seconds=dt, rows=len(anchors), rows_per_s=len(anchors) / dt,
                    read_bytes=read, read_ratio=read / returned,
                    read_per_anchor=read / len(anchors))


def cmd_prep_wds(a: argparse.Namespace) -> None:
    import webdataset as wds

    images = common.load_images(a.data, a.count)
    os.makedirs(a.out, exist_ok=True)
    t0 = common.now()
    with wds.ShardWriter(os.path.join(a.out, "shard-%06d.tar"), maxcount=1000,
                         verbose=0) as sink:
        for i in range(a.count):
            sink.write({"__key__": f"{i:08d}", "png": images[i].tobytes()})
    common.emit("prep-wds", seconds=common.now() - t0, disk_bytes=common.du_bytes(a.out))


def cmd_loader(a: argparse.Namespace) -> None:
    import torch.utils.data
    import webdataset as wds

    urls = sorted(glob.glob(os.path.join(a.path, "shard-*.tar")))
    ds = wds.WebDataset(urls, shardshuffle=False, empty_check=False)
    for epoch in range(a.epochs + 1):  # epoch 0 warms the page cache, not reported
        loader = torch.utils.data.DataLoader(ds, batch_size=64, num_workers=a.workers)
        n = 0
        nbytes = 0
        t0 = common.now()
        for batch in loader:
            n += len(batch["png"])
            nbytes += sum(len(x) for x in batch["png"])
        dt = common.now() - t0
        assert n == a.count and nbytes == a.count * common.IMAGE_BYTES, (n, nbytes)
        if epoch:
            common.emit("loader", seconds=dt, samples=n, samples_per_s=n / dt)


def cmd_prep_wds_emb(a: argparse.Namespace) -> None:
    import webdataset as wds

    emb = common.load_rows(a.data, a.rows)["emb"]
    os.makedirs(a.out, exist_ok=True)
    t0 = common.now()
    with wds.ShardWriter(os.path.join(a.out, "shard-%06d.tar"), maxcount=10000,
                         verbose=0) as sink:
        for i in range(a.rows):
            sink.write({"__key__": f"{i:08d}", "emb": emb[i].tobytes()})
    common.emit("prep-wds-emb", seconds=common.now() - t0, disk_bytes=common.du_bytes(a.out))


def cmd_prep_lance_images(a: argparse.Namespace) -> None:
    import lance

    images = common.load_images(a.data, a.count)
    t0 = common.now()
    table = pa.table({"img": pa.array([images[i].tobytes() for i in range(a.count)],
                                      type=pa.large_binary())})
    lance.write_dataset(table, a.out)
    common.emit("prep-lance-images", seconds=common.now() - t0,
                disk_bytes=common.du_bytes(a.out))


def _blob_lists(batch, **_):
    """Lance's to_tensor_fn for blobs: lists of bytes (as DreamDB and WebDataset give)."""
    return {"img": batch["img"].to_pylist()}


try:  # module level, so that spawned DataLoader workers can unpickle it
    from lance.torch.data import LanceDataset as _LanceDataset
except ImportError:  # pragma: no cover - only build/peer-venv runs this file
    _LanceDataset = object


class LancePerWorker(_LanceDataset):  # type: ignore[misc, valid-type]
    """LanceDataset reads everything in every worker: shard it by worker."""

    def __iter__(self):
        import torch.utils.data

        info = torch.utils.data.get_worker_info()
        if info is not None:
            self.rank, self.world_size = info.id, info.num_workers
            self.shard_granularity = "batch"
        return super().__iter__()


def cmd_loader_v2(a: argparse.Namespace) -> None:
    import torch
    import torch.utils.data

    field = "img" if a.kind == "img" else "emb"
    if a.system == "wds":
        import webdataset as wds

        urls = sorted(glob.glob(os.path.join(a.path, "shard-*.tar")))
        key = "png" if a.kind == "img" else "emb"
        ds = wds.WebDataset(urls, shardshuffle=False, empty_check=False)
        if a.kind == "emb":
            ds = ds.map(lambda s: {"emb": torch.from_numpy(
                np.frombuffer(s["emb"], dtype=np.float32).copy())})
        make = lambda: torch.utils.data.DataLoader(ds, batch_size=64,  # noqa: E731
                                                   num_workers=a.workers)
    else:
        kw = {"to_tensor_fn": _blob_lists} if a.kind == "img" else {}
        ds = LancePerWorker(a.path, batch_size=64, columns=[field],
                            auto_detect_rank=False, **kw)
        key = field
        # Lance is not fork-safe (its workers crash under fork): spawn, as its
        # get_safe_loader does, with persistent workers so the spawn is paid once (in the
        # untimed warm-up epoch).
        loader = torch.utils.data.DataLoader(
            ds, batch_size=None, num_workers=a.workers,
            multiprocessing_context="spawn" if a.workers else None,
            persistent_workers=a.workers > 0)
        make = lambda: loader  # noqa: E731
    for epoch in range(a.epochs + 1):  # epoch 0 warms the page cache, not reported
        n = 0
        t0 = common.now()
        for batch in make():
            n += len(batch[key] if isinstance(batch, dict) else batch)
        dt = common.now() - t0
        assert n == a.count, (n, a.count)
        if epoch:
            common.emit("loader", seconds=dt, samples=n, samples_per_s=n / dt)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd")
    ap.add_argument("--system", default="lance")
    ap.add_argument("--data")
    ap.add_argument("--path")
    ap.add_argument("--out")
    ap.add_argument("--rows", type=int)
    ap.add_argument("--batch", type=int, default=10000)
    ap.add_argument("--anchors")
    ap.add_argument("--fields", default="small")
    ap.add_argument("--count", type=int)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--kind", default="img")
    ap.add_argument("--same-handle", action="store_true", help="take: one handle for all calls")
    a = ap.parse_args()
    {"ingest": cmd_ingest, "scan": cmd_scan, "take": cmd_take, "prep-wds": cmd_prep_wds,
     "loader": cmd_loader, "prep-wds-emb": cmd_prep_wds_emb,
     "prep-lance-images": cmd_prep_lance_images, "loader-v2": cmd_loader_v2}[a.cmd](a)


if __name__ == "__main__":
    main()
