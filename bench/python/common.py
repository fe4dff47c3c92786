# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Helpers shared by the benchmark workers (bench/python/w_*.py).

Imported by workers running in three different virtual environments (the project's
.venv, build/peer-venv and build/dreamdb-0016-venv), so it needs only the standard
library and NumPy. A worker reports each measurement as one line
``RESULT {json}`` on stdout; bench/python/run.py collects them.
"""

from __future__ import annotations

import json
import os
import pathlib
import time
from typing import Any, Dict

import numpy as np

DIM = 768
# Bytes of column data per record: 768 float32 + int64 id + float64 score. GB/s figures
# divide this payload (not file sizes, not the anchor column) by the time.
ROW_BYTES = DIM * 4 + 8 + 8
IMAGE_BYTES = 50 * 1024
# Every system streams in batches of this many rows (scan) unless stated.
SCAN_BATCH = 8192


def emit(kind: str, **fields: Any) -> None:
    """Reports one measurement to run.py."""
    fields["kind"] = kind
    print("RESULT " + json.dumps(fields), flush=True)


def now() -> float:
    return time.perf_counter()


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not found in /proc/self/status")


def rss_mib() -> float:
    """Current resident set size (VmRSS) in MiB."""
    return _status_kib("VmRSS") / 1024.0


def peak_rss_mib() -> float:
    """Peak resident set size (VmHWM) in MiB since start or the last reset_peak_rss()."""
    return _status_kib("VmHWM") / 1024.0


def reset_peak_rss() -> None:
    """Resets VmHWM to the current RSS (Linux: write 5 to /proc/self/clear_refs)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def read_chars() -> int:
    """Bytes this process (all threads) has read through read-type system calls
    (rchar in /proc/self/io): counts pread/read from the page cache too, not mmap."""
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise RuntimeError("rchar not found in /proc/self/io")


def du_bytes(path: str) -> int:
    """Sum of file sizes under path."""
    p = pathlib.Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def load_meta(data: str) -> Dict[str, Any]:
    with open(os.path.join(data, "meta.json")) as f:
        return json.load(f)


def load_rows(data: str, rows: int) -> Dict[str, np.ndarray]:
    """The first `rows` records, fully in memory (read before any timing starts)."""
    emb = np.load(os.path.join(data, "emb.npy"), mmap_mode="r")[:rows]
    ids = np.load(os.path.join(data, "id.npy"), mmap_mode="r")[:rows]
    score = np.load(os.path.join(data, "score.npy"), mmap_mode="r")[:rows]
    return {"emb": np.ascontiguousarray(emb), "id": np.array(ids), "score": np.array(score)}


def load_images(data: str, count: int) -> np.ndarray:
    """The first `count` image blobs as a (count, IMAGE_BYTES) uint8 array."""
    return np.array(np.load(os.path.join(data, "images.npy"), mmap_mode="r")[:count])


def load_anchors(data: str) -> np.ndarray:
    """Take anchor sets: (reps, k) int64 row indices, distinct within a set."""
    return np.load(os.path.join(data, "take_anchors.npy"))
