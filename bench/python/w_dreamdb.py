# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""DreamDB (this repository's `dreamdb` package) side of the Python benchmarks.

Runs in the project's .venv (where `pip install ./python` put dreamdb). One command per
process; each prints RESULT lines (see common.py). Commands:

    ingest  --data D --rows N --batch B --store DIR     append_many of B-row batches
    scan    --store DIR --rows N --mode iter|capsule    warm pass, then timed pass
    take    --store DIR --anchors F --fields small|emb  fresh handle per call
            [--same-handle]                              one handle for every call
    prep-images --data D --count M --store DIR          blob dataset for the loader
    loader  --store DIR --count M --epochs E            DataLoader over DreamDBDataset
    loader-v2 --impl after|batched|units|before --store DIR --kind img|emb --count M
              --workers W [--shuffle S] --epochs E      samples/s, 0/2/4 workers, this loader
                                                        per sample or batched=True, or the
                                                        one before the loader rewrite
    prep-resume --rows N --store DIR                    N records, one bool field
    resume  --impl after|before --store DIR --rows N    time to resume at N/2
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import pyarrow as pa

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import dreamdb  # noqa: E402

NAME = "bench"
FIELDS = ["emb", "id", "score"]


def batches(data: str, rows: int, batch: int):
    cols = common.load_rows(data, rows)
    out = []
    for s in range(0, rows, batch):
        e = min(rows, s + batch)
        emb = pa.FixedSizeListArray.from_arrays(pa.array(cols["emb"][s:e].reshape(-1)),
                                                common.DIM)
        out.append((np.arange(s, e, dtype=np.uint64),
                    pa.table({"emb": emb, "id": pa.array(cols["id"][s:e]),
                              "score": pa.array(cols["score"][s:e])})))
    return out


def cmd_ingest(a: argparse.Namespace) -> None:
    work = batches(a.data, a.rows, a.batch)
    schema = dreamdb.Schema().add_embedding("emb", common.DIM).add_int("id").add_float("score")
    t0 = common.now()
    ds = dreamdb.Dataset.create(NAME, schema, store=a.store)
    for anchors, table in work:
        ds.append_many(table, anchors=anchors)
    dt = common.now() - t0
    assert ds.count() == a.rows, (ds.count(), a.rows)
    common.emit("ingest", seconds=dt, rows=a.rows, rows_per_s=a.rows / dt,
                mb_per_s=a.rows * common.ROW_BYTES / dt / 1e6, disk_bytes=common.du_bytes(a.store))


def scan_once(a: argparse.Namespace) -> int:
    ds = dreamdb.Dataset.open(NAME, store=a.store)
    if a.mode == "iter":
        reader = ds.iter_batches(fields=FIELDS, batch_size=common.SCAN_BATCH)
    else:  # the dataset itself through the Arrow PyCapsule protocol (all fields)
        reader = pa.RecordBatchReader.from_stream(ds)
    n = 0
    for b in reader:
        n += b.num_rows
    return n


def cmd_scan(a: argparse.Namespace) -> None:
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
    sets = np.load(a.anchors)
    fields = ["id", "score"] if a.fields == "small" else ["emb"]
    per_row = 16 if a.fields == "small" else common.DIM * 4
    # One untimed call first (one-time costs of the process: lazy imports, thread pools).
    first = dreamdb.Dataset.open(NAME, store=a.store)
    first.take(sets[-1].astype(np.uint64), fields=fields)
    for anchors in sets:
        ds = first if a.same_handle else dreamdb.Dataset.open(NAME, store=a.store)
        f0 = ds.read_stats()["bytes_fetched"]
        r0 = common.read_chars()
        t0 = common.now()
        t = ds.take(anchors.astype(np.uint64), fields=fields)
        dt = common.now() - t0
        read = common.read_chars() - r0
        if a.fields == "small":
            assert t.column("id").to_numpy().tolist() == anchors.tolist()
        returned = len(anchors) * per_row
        common.emit("take", seconds=dt, rows=len(anchors), rows_per_s=len(anchors) / dt,
                    read_bytes=read, read_ratio=read / returned,
                    fetched_ratio=(ds.read_stats()["bytes_fetched"] - f0) / returned,
                    read_per_anchor=read / len(anchors))


def cmd_prep_images(a: argparse.Namespace) -> None:
    images = common.load_images(a.data, a.count)
    schema = dreamdb.Schema().add_image("img", mime="image/png")
    t0 = common.now()
    ds = dreamdb.Dataset.create("imgs", schema, store=a.store)
    for s in range(0, a.count, 1000):
        e = min(a.count, s + 1000)
        col = pa.array([images[i].tobytes() for i in range(s, e)], type=pa.large_binary())
        ds.append_many(pa.table({"img": col}), anchors=np.arange(s, e, dtype=np.uint64))
    common.emit("prep-images", seconds=common.now() - t0, disk_bytes=common.du_bytes(a.store))


def cmd_loader(a: argparse.Namespace) -> None:
    import torch.utils.data

    from dreamdb.torch import DreamDBDataset

    tds = DreamDBDataset("imgs", store=a.store, fields=["img"], batch_size=256)
    for epoch in range(a.epochs + 1):  # epoch 0 warms the page cache, not reported
        loader = torch.utils.data.DataLoader(tds, batch_size=64, num_workers=a.workers)
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


# The loader before the rewrite (equal shares, global order): its source is given by
# --before-src (run.py extracts it with git show), loaded as a module of this dreamdb.
BEFORE_REV = "05c505b"


def loader_class(a: argparse.Namespace):
    if a.impl in ("after", "batched", "units"):
        from dreamdb.torch import DreamDBDataset
        return DreamDBDataset
    import importlib.util
    spec = importlib.util.spec_from_file_location("dreamdb._torch_before", a.before_src)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["dreamdb._torch_before"] = mod
    spec.loader.exec_module(mod)
    return mod.DreamDBDataset


def cmd_loader_v2(a: argparse.Namespace) -> None:
    import torch.utils.data

    cls = loader_class(a)
    name, field = ("imgs", "img") if a.kind == "img" else (NAME, "emb")
    kw = {"shuffle_seed": a.shuffle if a.shuffle >= 0 else None}
    if a.impl in ("after", "batched", "units"):
        kw["loader_batch_size"] = 64
    if a.impl in ("batched", "units"):  # whole batches as tensors, not collated
        kw["batched"] = True
    if a.impl == "units":  # each worker scans contiguous ranges cut at segment boundaries
        kw.update(shuffle_mode="units", shuffle_buffer=1024)
    tds = cls(name, store=a.store, fields=[field], batch_size=256, **kw)
    for epoch in range(a.epochs + 1):  # epoch 0 warms the page cache, not reported
        tds.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(tds, batch_size=None if kw.get("batched") else 64,
                                             num_workers=a.workers)
        n = 0
        t0 = common.now()
        for batch in loader:
            n += len(batch["anchor"])
        dt = common.now() - t0
        assert n == a.count, (n, a.count)
        if epoch:
            common.emit("loader", seconds=dt, samples=n, samples_per_s=n / dt)


def cmd_prep_resume(a: argparse.Namespace) -> None:
    ds = dreamdb.Dataset.create("resume", dreamdb.Schema().add_bool("b"), store=a.store)
    t0 = common.now()
    step = 1_000_000
    for s in range(0, a.rows, step):
        e = min(a.rows, s + step)
        ds.append_many({"b": np.zeros(e - s, dtype=bool)},
                       anchors=np.arange(s, e, dtype=np.uint64))
    common.emit("prep-resume", seconds=common.now() - t0, disk_bytes=common.du_bytes(a.store))


def cmd_resume(a: argparse.Namespace) -> None:
    """A restarted job: make the dataset, load a state at the middle of the epoch, take
    the first sample. Reports each step and the bytes read."""
    cls = loader_class(a)
    half = a.rows // 2
    t0 = common.now()
    ds = cls("resume", store=a.store, fields=["b"], shuffle_seed=a.shuffle)
    t1 = common.now()
    state = ds.state_dict() if a.impl == "before" else ds.state_dict(consumed=0)
    state["position"] = half
    r0 = common.read_chars()
    t2 = common.now()
    ds.load_state_dict(state)
    it = iter(ds)
    first = next(it)
    t3 = common.now()
    common.emit("resume", seconds=t3 - t0, construct_s=t1 - t0, seek_first_s=t3 - t2,
                read_bytes=common.read_chars() - r0, first_anchor=int(first["anchor"]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd")
    ap.add_argument("--data")
    ap.add_argument("--store")
    ap.add_argument("--rows", type=int)
    ap.add_argument("--batch", type=int, default=10000)
    ap.add_argument("--mode", default="iter")
    ap.add_argument("--anchors")
    ap.add_argument("--fields", default="small")
    ap.add_argument("--count", type=int)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--impl", default="after")
    ap.add_argument("--before-src")
    ap.add_argument("--kind", default="img")
    ap.add_argument("--shuffle", type=int, default=-1, help="seed; -1: unshuffled")
    ap.add_argument("--same-handle", action="store_true", help="take: one handle for all calls")
    a = ap.parse_args()
    {"ingest": cmd_ingest, "scan": cmd_scan, "take": cmd_take,
     "prep-images": cmd_prep_images, "loader": cmd_loader, "loader-v2": cmd_loader_v2,
     "prep-resume": cmd_prep_resume, "resume": cmd_resume}[a.cmd](a)


if __name__ == "__main__":
    main()
