# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Driver of the Python SDK benchmarks (bench/python/run.sh sets up the environments).

Every measurement runs in a fresh worker process in the environment of the system it
measures (DreamDB: the project's .venv; Lance/Parquet/WebDataset: build/peer-venv;
dreamdb 0.0.16: build/dreamdb-0016-venv) on the same generated rows, and systems
alternate within each repetition so that load drift on the shared machine hits them
alike. Prints a Markdown table of medians and DreamDB/peer ratios and writes all samples
to OUT/results.json. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


class Runner:
    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        self.py = {"dreamdb": a.dreamdb_python, "peers": a.peer_python, "old": a.old_python,
                   "baseline": a.baseline_python}
        self.samples: Dict[str, List[Dict[str, Any]]] = {}
        self.log: List[Dict[str, Any]] = []

    def run(self, env: str, script: str, args: List[str], key: Optional[str] = None,
            timeout: float = 1800) -> List[Dict[str, Any]]:
        cmd = [self.py[env], os.path.join(HERE, script)] + [str(x) for x in args]
        t0 = time.time()
        penv = dict(os.environ, LANCE_LOG="error", RUST_LOG="error", PYTHONWARNINGS="ignore")
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=penv)
        if p.returncode != 0:
            sys.stderr.write(p.stdout + p.stderr)
            raise SystemExit(f"run.py: worker failed ({p.returncode}): {' '.join(cmd)}")
        out = [json.loads(line[7:]) for line in p.stdout.splitlines()
               if line.startswith("RESULT ")]
        if not out:
            sys.stderr.write(p.stdout + p.stderr)
            raise SystemExit(f"run.py: worker reported nothing: {' '.join(cmd)}")
        self.log.append({"cmd": " ".join(cmd[1:]), "wall_s": round(time.time() - t0, 2),
                         "load": loadavg()})
        if key:
            self.samples.setdefault(key, []).extend(out)
        if self.a.verbose:
            print(f"  [{time.time() - t0:6.1f} s] {key or ''} {out}", file=sys.stderr)
        return out

    def median(self, key: str, metric: str) -> Optional[float]:
        vals = [s[metric] for s in self.samples.get(key, []) if metric in s]
        return statistics.median(vals) if vals else None

    def values(self, key: str, metric: str) -> List[float]:
        return [s[metric] for s in self.samples.get(key, []) if metric in s]


def fresh(path: str) -> str:
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--old-rows", type=int, default=10_000)
    ap.add_argument("--old-small-take", type=int, default=100,
                    help="anchors per small-field take on dreamdb 0.0.16 (one scan each)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--take-k", type=int, default=1000)
    ap.add_argument("--take-reps", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=1, help="timed epochs per loader process")
    ap.add_argument("--skip-old", action="store_true")
    ap.add_argument("--loader-workers", default="0,2,4",
                    help="DataLoader worker counts of the loaders workload")
    ap.add_argument("--resume-rows", type=int, default=10_000_000,
                    help="records of the dataset the resume workload seeks into")
    ap.add_argument("--loader-impls", default="units,batched,after,before",
                    help="DreamDBDataset variants of workload (f) (w_dreamdb.py loader-v2 --impl)")
    ap.add_argument("--baseline-python", default=None,
                    help="loaders: also run every DreamDB variant with this interpreter (another "
                         "build of the package, e.g. main's .venv), interleaved, as '... baseline'")
    ap.add_argument("--before-rev", default="05c505b",
                    help="commit whose python/dreamdb/torch.py is the loader 'before'")
    ap.add_argument("--only", default="ingest,scan,take,loader,loaders,resume,old",
                    help="comma list of workloads (scan/take ingest once, untimed, if needed)")
    ap.add_argument("--keep", action="store_true", help="keep the stores afterwards")
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "bench-python"))
    ap.add_argument("--work", default=None, help="where stores live (default OUT/work)")
    ap.add_argument("--dreamdb-python", default=os.path.join(ROOT, ".venv", "bin", "python"))
    ap.add_argument("--peer-python",
                    default=os.path.join(ROOT, "build", "peer-venv", "bin", "python"))
    ap.add_argument("--old-python",
                    default=os.path.join(ROOT, "build", "dreamdb-0016-venv", "bin", "python"))
    ap.add_argument("--name", default="results")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    only = set(a.only.split(","))
    if a.skip_old:
        only.discard("old")
    a.skip_old = "old" not in only
    work = a.work or os.path.join(a.out, "work")
    data = os.path.join(a.out, "data")
    os.makedirs(work, exist_ok=True)
    r = Runner(a)
    started = time.time()
    info = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "argv": sys.argv[1:], "machine": platform.machine(), "cpus": os.cpu_count(),
            "load_start": loadavg(), "work_dir": work}
    try:
        info["commit"] = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                        capture_output=True, text=True).stdout.strip()
    except OSError:
        info["commit"] = "unknown"
    print(f"bench/python: rows={a.rows} batch={a.batch} images={a.images} "
          f"old_rows={a.old_rows} reps={a.reps} load={loadavg()}", file=sys.stderr)

    def phase(name: str) -> None:
        print(f"== {name} ({time.time() - started:.0f} s, load {loadavg()})", file=sys.stderr)

    phase("generate data")
    subprocess.run([a.dreamdb_python, os.path.join(HERE, "gen_data.py"), data,
                    "--rows", str(a.rows), "--images", str(a.images),
                    "--take-k", str(a.take_k), "--take-reps", str(a.take_reps),
                    "--old-rows", str(a.old_rows)], check=True)
    anchors = os.path.join(data, "take_anchors.npy")
    anchors_old = os.path.join(data, "take_anchors_old.npy")
    db = os.path.join(work, "dreamdb")
    lance_p = os.path.join(work, "lance.lance")
    lance_app = os.path.join(work, "lance-append.lance")
    parquet = os.path.join(work, "data.parquet")
    n = a.rows

    # (a) ingest
    def ingest(key: Optional[str]) -> None:
        r.run("dreamdb", "w_dreamdb.py", ["ingest", "--data", data, "--rows", n, "--batch",
                                          a.batch, "--store", fresh(db)],
              key and "ingest/dreamdb")
        r.run("peers", "w_peers.py", ["ingest", "--system", "lance", "--data", data, "--rows",
                                      n, "--batch", a.batch, "--out", fresh(lance_p)],
              key and "ingest/lance")
        if key:
            r.run("peers", "w_peers.py", ["ingest", "--system", "lance-append", "--data", data,
                                          "--rows", n, "--batch", a.batch, "--out",
                                          fresh(lance_app)], "ingest/lance-append")
        r.run("peers", "w_peers.py", ["ingest", "--system", "parquet", "--data", data,
                                      "--rows", n, "--batch", a.batch, "--out",
                                      fresh(parquet)], key and "ingest/parquet")

    if "ingest" in only:
        phase("ingest")
        for _ in range(a.reps):
            ingest("ingest")
        fresh(lance_app)
    elif only & {"scan", "take", "loaders"} and not (os.path.isdir(db) and os.path.isdir(lance_p)
                                          and os.path.exists(parquet)):
        phase("ingest (setup, untimed)")
        ingest(None)

    # (b) scan: one untimed process per system warms the page cache; then fresh processes.
    scans = [("dreamdb", "w_dreamdb.py", ["scan", "--store", db, "--rows", n]),
             ("peers", "w_peers.py", ["scan", "--system", "lance", "--path", lance_p,
                                      "--rows", n]),
             ("peers", "w_peers.py", ["scan", "--system", "parquet", "--path", parquet,
                                      "--rows", n])]
    for _ in range(a.reps if "scan" in only else 0):
        if _ == 0:
            phase("scan")
            for env, script, args in scans:
                r.run(env, script, args)
        r.run("dreamdb", "w_dreamdb.py", ["scan", "--store", db, "--rows", n, "--mode", "iter"],
              "scan/dreamdb-iter_batches")
        r.run("dreamdb", "w_dreamdb.py",
              ["scan", "--store", db, "--rows", n, "--mode", "capsule"],
              "scan/dreamdb-arrow_c_stream")
        r.run("peers", "w_peers.py", ["scan", "--system", "lance", "--path", lance_p, "--rows",
                                      n], "scan/lance")
        r.run("peers", "w_peers.py", ["scan", "--system", "parquet", "--path", parquet,
                                      "--rows", n], "scan/parquet")

    # (c) take
    if "take" in only:
        phase("take")
    # Fresh handle per call, and one handle for every call (a training job's case).
    for fields, same in ([(f, s) for f in ("small", "emb") for s in ("", "-same")]
                         if "take" in only else ()):
        flag = ["--same-handle"] if same else []
        r.run("dreamdb", "w_dreamdb.py", ["take", "--store", db, "--anchors", anchors,
                                          "--fields", fields] + flag,
              f"take-{fields}{same}/dreamdb")
        r.run("peers", "w_peers.py", ["take", "--path", lance_p, "--anchors", anchors,
                                      "--fields", fields] + flag, f"take-{fields}{same}/lance")

    # (d) DataLoader over image blobs
    img_db = os.path.join(work, "dreamdb-images")
    wds_dir = os.path.join(work, "wds")
    if only & {"loader", "loaders", "old"}:
        phase("loader")
        r.run("dreamdb", "w_dreamdb.py", ["prep-images", "--data", data, "--count", a.images,
                                      "--store", fresh(img_db)], "prep/dreamdb-images")
        r.run("peers", "w_peers.py", ["prep-wds", "--data", data, "--count", a.images,
                                      "--out", fresh(wds_dir)], "prep/wds")
    for _ in range(a.reps if "loader" in only or "old" in only else 0):
        r.run("dreamdb", "w_dreamdb.py", ["loader", "--store", img_db, "--count", a.images,
                                          "--epochs", a.epochs], "loader/dreamdb")
        r.run("peers", "w_peers.py", ["loader", "--path", wds_dir, "--count", a.images,
                                      "--epochs", a.epochs], "loader/webdataset")

    # (f) loaders: 0/2/4 workers, blobs and embeddings, this loader and the one before it,
    # unshuffled and shuffled, WebDataset and Lance's torch loader on the same data.
    if "loaders" in only:
        phase("loaders")
        before = os.path.join(work, "torch_before.py")
        with open(before, "w") as f:
            f.write(subprocess.run(["git", "-C", ROOT, "show",
                                    f"{a.before_rev}:python/dreamdb/torch.py"],
                                   capture_output=True, text=True, check=True).stdout)
        wds_emb = os.path.join(work, "wds-emb")
        lance_img = os.path.join(work, "lance-images.lance")
        r.run("peers", "w_peers.py", ["prep-wds-emb", "--data", data, "--rows", n, "--out",
                                      fresh(wds_emb)], "prep/wds-emb")
        r.run("peers", "w_peers.py", ["prep-lance-images", "--data", data, "--count",
                                      a.images, "--out", fresh(lance_img)],
              "prep/lance-images")
        paths = {"img": (img_db, wds_dir, lance_img, a.images), "emb": (db, wds_emb, lance_p, n)}
        for _ in range(a.reps):
            for kind, (store, wds_path, lance_path, count) in paths.items():
                for w in a.loader_workers.split(","):
                    key = f"loaders-{kind}-w{w}"
                    shared = ["--store", store, "--kind", kind, "--count", count,
                              "--workers", w, "--epochs", a.epochs, "--before-src", before]
                    for impl in a.loader_impls.split(","):
                        for seed in ("-1", "1"):
                            tag = impl + ("-shuffled" if seed == "1" else "")
                            r.run("dreamdb", "w_dreamdb.py",
                                  ["loader-v2", "--impl", impl, "--shuffle", seed] + shared,
                                  f"{key}/{tag}")
                            if a.baseline_python:
                                r.run("baseline", "w_dreamdb.py",
                                      ["loader-v2", "--impl", impl, "--shuffle", seed] + shared,
                                      f"{key}/{tag}-baseline")
                    for system, path in (("wds", wds_path), ("lance", lance_path)):
                        r.run("peers", "w_peers.py",
                              ["loader-v2", "--system", system, "--path", path, "--kind", kind,
                               "--count", count, "--workers", w, "--epochs", a.epochs],
                              f"{key}/{system}")
        if not a.keep:
            fresh(wds_emb)
            fresh(lance_img)
    if not a.keep:
        for p in (lance_p, parquet, wds_dir):
            fresh(p)

    # (g) resume at the middle of an epoch of --resume-rows records (one bool field).
    if "resume" in only:
        phase("resume")
        before = os.path.join(work, "torch_before.py")
        with open(before, "w") as f:
            f.write(subprocess.run(["git", "-C", ROOT, "show",
                                    f"{a.before_rev}:python/dreamdb/torch.py"],
                                   capture_output=True, text=True, check=True).stdout)
        rdb = os.path.join(work, "dreamdb-resume")
        r.run("dreamdb", "w_dreamdb.py", ["prep-resume", "--rows", a.resume_rows, "--store",
                                          fresh(rdb)], "prep/resume")
        for _ in range(a.reps):
            for impl in ("after", "before"):
                for seed in ("-1", "1"):
                    tag = impl + ("-shuffled" if seed == "1" else "")
                    args = ["resume", "--impl", impl, "--store", rdb, "--rows", a.resume_rows,
                            "--before-src", before]
                    if seed == "1":
                        args += ["--shuffle", seed]
                    r.run("dreamdb", "w_dreamdb.py", args, f"resume/{tag}")
        if not a.keep:
            fresh(rdb)

    # (e) dreamdb 0.0.16, with this DreamDB on the same (smaller) rows
    if not a.skip_old:
        phase("dreamdb 0.0.16")
        n0 = a.old_rows
        b0 = min(a.batch, n0)
        old_db = os.path.join(work, "old")
        db0 = os.path.join(work, "dreamdb-old-rows")
        for _ in range(a.reps):
            r.run("old", "w_dreamdb0016.py", ["ingest", "--data", data, "--rows", n0, "--batch",
                                              b0, "--store", fresh(old_db)], "old-ingest/old")
            r.run("dreamdb", "w_dreamdb.py", ["ingest", "--data", data, "--rows", n0,
                                              "--batch", b0, "--store", fresh(db0)],
                  "old-ingest/dreamdb")
        r.run("old", "w_dreamdb0016.py", ["scan", "--store", old_db, "--rows", n0])  # warm
        r.run("dreamdb", "w_dreamdb.py", ["scan", "--store", db0, "--rows", n0])  # warm
        for _ in range(a.reps):
            r.run("old", "w_dreamdb0016.py", ["scan", "--store", old_db, "--rows", n0],
                  "old-scan/old")
            r.run("dreamdb", "w_dreamdb.py", ["scan", "--store", db0, "--rows", n0, "--mode",
                                              "iter"], "old-scan/dreamdb")
        old_take = os.path.join(work, "old-take")
        r.run("old", "w_dreamdb0016.py", ["take-prep", "--data", data, "--rows", n0, "--batch",
                                          b0, "--store", fresh(old_take)], "old-take-prep/old")
        for fields in ("small", "emb"):
            limit = a.old_small_take if fields == "small" else 0
            r.run("old", "w_dreamdb0016.py", ["take", "--store", old_take, "--anchors",
                                              anchors_old, "--fields", fields, "--limit",
                                              limit], f"old-take-{fields}/old")
            r.run("dreamdb", "w_dreamdb.py", ["take", "--store", db0, "--anchors", anchors_old,
                                              "--fields", fields], f"old-take-{fields}/dreamdb")
        old_img = os.path.join(work, "old-images")
        r.run("old", "w_dreamdb0016.py", ["prep-images", "--data", data, "--count", a.images,
                                          "--store", fresh(old_img)], "prep/old-images")
        for _ in range(a.reps):
            r.run("old", "w_dreamdb0016.py", ["loader", "--store", old_img, "--count",
                                              a.images, "--epochs", a.epochs], "loader/old")
        if not a.keep:
            for p in (old_db, db0, old_take, old_img):
                fresh(p)
    if not a.keep:
        fresh(db)
        fresh(img_db)
    info["load_end"] = loadavg()
    info["seconds"] = round(time.time() - started, 1)

    table = report(r, a)
    print(table)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, a.name + ".json"), "w") as f:
        json.dump({"info": info, "config": vars(a), "samples": r.samples, "runs": r.log},
                  f, indent=1)
    with open(os.path.join(a.out, a.name + ".md"), "w") as f:
        f.write(table + "\n")
    print(f"\nload average {info['load_start']} -> {info['load_end']}; "
          f"{info['seconds']} s; JSON: {os.path.join(a.out, a.name + '.json')}", file=sys.stderr)


def fmt(v: Optional[float], unit: str) -> str:
    if v is None:
        return "—"
    if unit == "GB/s":
        return f"{v:.2f}" if v >= 0.1 else f"{v:.4f}"
    if unit == "MiB":
        return f"{v:.0f}"
    if unit in ("x", "ratio"):
        return f"{v:.2f}"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.1f}"


def report(r: Runner, a: argparse.Namespace) -> str:
    lines = ["| Workload | System | Median | Runs | DreamDB / this | Other |",
             "|---|---|---|---|---|---|"]

    def row(workload: str, key: str, label: str, metric: str, unit: str, base: Optional[str],
            other: str = "", lower_better: bool = False) -> None:
        if key not in r.samples:  # workload not selected (--only)
            return
        med = r.median(key, metric)
        runs = " · ".join(fmt(v, unit) for v in r.values(key, metric))
        ratio = "—"
        if base and base != key and med:
            bm = r.median(base, metric)
            if bm:
                ratio = f"{bm / med:.2f}×" + (" (lower is better)" if lower_better else "")
        elif base == key:
            ratio = "(DreamDB)"
        lines.append(f"| {workload} | {label} | **{fmt(med, unit)}** {unit} | {runs} | "
                     f"{ratio} | {other} |")

    def disk(key: str) -> str:
        d = r.median(key, "disk_bytes")
        return f"{d / 1e6:.0f} MB on disk" if d else ""

    n = f"{a.rows:,} rows"
    w = f"ingest ({n}, {a.batch:,}/batch)"
    row(w, "ingest/dreamdb", "DreamDB append_many (file://)", "rows_per_s", "rows/s",
        "ingest/dreamdb", disk("ingest/dreamdb"))
    row(w, "ingest/lance", "Lance write_dataset (one call)", "rows_per_s", "rows/s",
        "ingest/dreamdb", disk("ingest/lance"))
    row(w, "ingest/lance-append", "Lance write_dataset append per batch", "rows_per_s",
        "rows/s", "ingest/dreamdb", disk("ingest/lance-append"))
    row(w, "ingest/parquet", "Parquet write_table", "rows_per_s", "rows/s", "ingest/dreamdb",
        disk("ingest/parquet"))
    w = f"scan ({n}, warm)"
    for key, label in (("scan/dreamdb-iter_batches", "DreamDB iter_batches"),
                       ("scan/dreamdb-arrow_c_stream", "DreamDB __arrow_c_stream__"),
                       ("scan/lance", "Lance to_batches"),
                       ("scan/parquet", "Parquet iter_batches")):
        rss = r.median(key, "peak_rss_mib")
        base = r.median(key, "base_rss_mib")
        row(w, key, label, "gb_per_s", "GB/s", "scan/dreamdb-iter_batches",
            f"peak RSS {fmt(rss, 'MiB')} MiB ({fmt(base, 'MiB')} before the scan)")
    for fields, what, same in (("small", "id+score", ""), ("emb", "emb", ""),
                               ("small", "id+score, one handle", "-same"),
                               ("emb", "emb, one handle", "-same")):
        w = f"take {a.take_k:,} random of {n}, {what}"
        for key, label in ((f"take-{fields}{same}/dreamdb", "DreamDB take"),
                           (f"take-{fields}{same}/lance", "Lance take")):
            rr = r.median(key, "read_ratio")
            other = f"read/returned {fmt(rr, 'x')}×" if rr else ""
            pa_ = r.median(key, "read_per_anchor")
            if pa_ is not None:
                other += f", {pa_:,.0f} B read/anchor"
            fr = r.median(key, "fetched_ratio")
            if fr:
                other += f" (segment bytes {fmt(fr, 'x')}×)"
            row(w, key, label, "rows_per_s", "rows/s", f"take-{fields}{same}/dreamdb", other)
    w = f"DataLoader, 2 workers, {a.images:,} × 50 KiB blobs"
    row(w, "loader/dreamdb", "DreamDB DreamDBDataset", "samples_per_s", "samples/s",
        "loader/dreamdb", disk("prep/dreamdb-images"))
    row(w, "loader/webdataset", "WebDataset tar shards", "samples_per_s", "samples/s",
        "loader/dreamdb", disk("prep/wds"))
    labels = {"units": "DreamDBDataset batched=True, shuffle_mode=units",
              "units-shuffled": "DreamDBDataset batched=True, shuffle_mode=units, shuffled",
              "batched": "DreamDBDataset batched=True",
              "batched-shuffled": "DreamDBDataset batched=True, shuffled",
              "after": "DreamDBDataset", "before": f"DreamDBDataset before ({a.before_rev})",
              "after-shuffled": "DreamDBDataset, shuffled",
              "before-shuffled": f"DreamDBDataset before ({a.before_rev}), shuffled",
              "wds": "WebDataset tar shards", "lance": "Lance LanceDataset"}
    labels = {k: v for tag, label in labels.items()  # each variant, then its baseline
              for k, v in ((tag, label), (f"{tag}-baseline", label + " (baseline package)"))}
    for kind, what in (("img", f"{a.images:,} × 50 KiB blobs"),
                       ("emb", f"{a.rows:,} × 768-d embeddings")):
        for w in a.loader_workers.split(","):
            key = f"loaders-{kind}-w{w}"
            for tag, label in labels.items():
                row(f"loader, {w} workers, {what}", f"{key}/{tag}", label, "samples_per_s",
                    "samples/s", f"{key}/units")
    for tag, label in (("after", "DreamDBDataset"), ("after-shuffled", "DreamDBDataset, shuffled"),
                       ("before", labels["before"]), ("before-shuffled",
                                                      labels["before-shuffled"])):
        key = f"resume/{tag}"
        if key in r.samples:
            rb = r.median(key, "read_bytes")
            seek = r.median(key, "seek_first_s")
            row(f"resume at {a.resume_rows // 2:,} of {a.resume_rows:,}", key, label,
                "seconds", "s", "resume/after" if "shuffled" not in tag
                else "resume/after-shuffled",
                f"seek + first sample {fmt(seek, 's')} s, {fmt(rb / 1e6 if rb else 0, 'MB')} MB "
                "read after the object was made", lower_better=True)
    if not a.skip_old and "old-ingest/old" in r.samples:
        n0 = f"{a.old_rows:,} rows"
        w = f"0.0.16: ingest ({n0})"
        row(w, "old-ingest/dreamdb", "DreamDB append_many", "rows_per_s", "rows/s",
            "old-ingest/dreamdb", disk("old-ingest/dreamdb"))
        row(w, "old-ingest/old", "dreamdb 0.0.16 append_many (dicts)", "rows_per_s", "rows/s",
            "old-ingest/dreamdb", disk("old-ingest/old"))
        w = f"0.0.16: scan ({n0}, warm)"
        for key, label in (("old-scan/dreamdb", "DreamDB iter_batches"),
                           ("old-scan/old", "dreamdb 0.0.16 iter_arrow_batches")):
            row(w, key, label, "gb_per_s", "GB/s", "old-scan/dreamdb",
                f"peak RSS {fmt(r.median(key, 'peak_rss_mib'), 'MiB')} MiB")
        for fields, what, how in (("small", "id+score", f"{a.old_small_take} one-row windows"),
                                  ("emb", "emb", "get_by_anchor per anchor")):
            w = f"0.0.16: take random of {n0}, {what}"
            row(w, f"old-take-{fields}/dreamdb", f"DreamDB take ({a.take_k:,})", "rows_per_s",
                "rows/s", f"old-take-{fields}/dreamdb",
                f"read/returned {fmt(r.median(f'old-take-{fields}/dreamdb', 'read_ratio'), 'x')}×")
            row(w, f"old-take-{fields}/old", f"dreamdb 0.0.16 ({how})", "rows_per_s", "rows/s",
                f"old-take-{fields}/dreamdb",
                f"read/returned {fmt(r.median(f'old-take-{fields}/old', 'read_ratio'), 'x')}×")
        w = f"0.0.16: DataLoader, 2 workers, {a.images:,} blobs"
        row(w, "loader/old", "dreamdb 0.0.16 DreamDbDataset", "samples_per_s", "samples/s",
            "loader/dreamdb", disk("prep/old-images"))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
