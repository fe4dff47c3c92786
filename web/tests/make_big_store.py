#!/usr/bin/env python3
# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Builds a large dataset for measuring the dashboard's first page (web/README.md).

Dataset `big` of N records (default 1,000,000): an 8x8 PNG image, a caption, a label, a
score and a 16-d embedding each, appended in batches of 100,000.

Usage: python web/tests/make_big_store.py STORE_DIR [--records N]   (prints the store URI)
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np

import dreamdb

# The demo data's solid-colour PNG writer (examples/make_demo_data.py).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "examples"))
from make_demo_data import png  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=100_000)
    args = ap.parse_args()
    store = f"file://{pathlib.Path(args.out).resolve()}"
    schema = (dreamdb.Schema().add_image("image").add_string("caption").add_int("label")
              .add_float("score", required=False).add_embedding("emb", 16))
    ds = dreamdb.Dataset.create("big", schema, store=store, message="empty")
    rng = np.random.default_rng(1)
    red, blue = png(8, 8, (200, 60, 60)), png(8, 8, (60, 60, 200))
    t0 = time.monotonic()
    for start in range(0, args.records, args.batch):
        n = min(args.batch, args.records - start)
        labels = rng.random(n) < 0.5
        ds.append_many({
            "image": [red if lab else blue for lab in labels],
            "caption": [f"record {start + i}" for i in range(n)],
            "label": labels.astype(np.int64),
            "score": np.round(rng.random(n), 4),
            "emb": rng.normal(size=(n, 16)).astype(np.float32),
        }, anchors=np.arange(start, start + n, dtype=np.uint64), message=f"batch at {start}")
        print(f"{start + n} records ({time.monotonic() - t0:.0f} s)", file=sys.stderr)
    print(store)


if __name__ == "__main__":
    main()
