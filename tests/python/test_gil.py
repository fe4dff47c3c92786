# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""The bindings release the GIL during I/O and real work: Python code in another thread
keeps running while a long scan, take, append or verify is inside the C++ core.

Method: a worker thread makes one long call; the main thread spins, noting the longest
pause between two of its iterations. A call that held the GIL would stall the main thread
for (about) the whole call; a call that releases it stalls it for at most a few switch
intervals.
"""

import sys
import threading
import time

import numpy as np
import pyarrow as pa
import pytest

import dreamdb

RECORDS = 1500
BLOB = 64 * 1024  # ~100 MB of blobs: each call below takes a good fraction of a second


@pytest.fixture(scope="module")
def big():
    s = dreamdb.Schema().add_int("label").add_blob("raw")
    ds = dreamdb.Dataset.create("gil", s, store="memory://gil-test")
    rng = np.random.default_rng(0)
    payload = rng.bytes(BLOB)
    ds.append_many({"label": np.arange(RECORDS),
                     "raw": [payload[i:] + payload[:i] for i in range(RECORDS)]})
    return ds


@pytest.fixture(autouse=True)
def short_switch_interval():
    old = sys.getswitchinterval()
    sys.setswitchinterval(0.001)
    yield
    sys.setswitchinterval(old)


def longest_stall(call):
    """(duration of call() in a worker thread, longest pause of the main thread meanwhile)."""
    done = threading.Event()
    out = {}

    def run():
        t0 = time.perf_counter()
        try:
            call()
        finally:
            out["duration"] = time.perf_counter() - t0
            done.set()

    worker = threading.Thread(target=run)
    last = time.perf_counter()
    stall = 0.0
    worker.start()
    while not done.is_set():
        now = time.perf_counter()
        stall = max(stall, now - last)
        last = now
    worker.join()
    return out["duration"], stall


def fresh(big):
    # A new handle: nothing cached, so the call really reads.
    return dreamdb.Dataset.open_at("gil", big.head, store="memory://gil-test")


CALLS = {
    "scan": lambda ds: ds.to_table(["raw"]),
    "take": lambda ds: ds.take(np.arange(RECORDS, dtype=np.uint64)[::-1].copy(), ["raw"]),
    "verify": lambda ds: ds.verify(),
    "store_verify": lambda ds: ds.store.verify("gil"),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_reads_release_the_gil(big, name):
    ds = fresh(big)
    duration, stall = longest_stall(lambda: CALLS[name](ds))
    assert duration > 0.02, f"{name} took only {duration:.4f} s: make the data bigger"
    assert stall < duration / 2, f"{name}: main thread stalled {stall:.3f} s of {duration:.3f} s"


def test_append_releases_the_gil(tmp_path):
    ds = dreamdb.Dataset.create("w", dreamdb.Schema().add_blob("raw"), store=str(tmp_path / "s"))
    payload = np.random.default_rng(1).bytes(BLOB)
    table = pa.table({"raw": pa.array([payload] * 800, pa.binary())})
    duration, stall = longest_stall(lambda: ds.append_many(table))
    assert ds.count() == 800
    assert duration > 0.02
    assert stall < duration / 2, f"append: main thread stalled {stall:.3f} s of {duration:.3f} s"
