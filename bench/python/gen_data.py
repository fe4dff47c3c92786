# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Generates the benchmark rows once, as .npy files every worker reads.

    python gen_data.py OUT --rows N --images M --take-k K --take-reps R --old-rows N0

Writes OUT/emb.npy (N x 768 float32, standard normal), id.npy (int64 0..N-1),
score.npy (float64 uniform), images.npy (M x 51,200 uint8: a PNG signature and IHDR
chunk, then random bytes, so nothing compresses), take_anchors.npy (R x K distinct
random row indices of N), take_anchors_old.npy (the same for N0) and meta.json.
Deterministic for a given seed; skipped when meta.json already matches the arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import zlib

import numpy as np

DIM = 768
IMAGE_BYTES = 50 * 1024


def png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + body
            + struct.pack(">I", zlib.crc32(body)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--rows", type=int, required=True)
    ap.add_argument("--images", type=int, required=True)
    ap.add_argument("--take-k", type=int, required=True)
    ap.add_argument("--take-reps", type=int, required=True)
    ap.add_argument("--old-rows", type=int, required=True)
    ap.add_argument("--seed", type=int, default=5)
    a = ap.parse_args()
    meta = {"rows": a.rows, "images": a.images, "take_k": a.take_k, "take_reps": a.take_reps,
            "old_rows": a.old_rows, "seed": a.seed, "dim": DIM, "image_bytes": IMAGE_BYTES,
            "version": 1}
    os.makedirs(a.out, exist_ok=True)
    meta_path = os.path.join(a.out, "meta.json")
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            if json.load(f) == meta:
                print(f"gen_data: {a.out} is up to date")
                return
        os.remove(meta_path)
    rng = np.random.default_rng(a.seed)
    emb = np.lib.format.open_memmap(os.path.join(a.out, "emb.npy"), mode="w+",
                                    dtype=np.float32, shape=(a.rows, DIM))
    step = 20000
    for s in range(0, a.rows, step):
        e = min(a.rows, s + step)
        emb[s:e] = rng.standard_normal((e - s, DIM), dtype=np.float32)
    emb.flush()
    del emb
    np.save(os.path.join(a.out, "id.npy"), np.arange(a.rows, dtype=np.int64))
    np.save(os.path.join(a.out, "score.npy"), rng.random(a.rows))
    images = np.lib.format.open_memmap(os.path.join(a.out, "images.npy"), mode="w+",
                                       dtype=np.uint8, shape=(a.images, IMAGE_BYTES))
    header = np.frombuffer(png_header(128, 128), dtype=np.uint8)
    for s in range(0, a.images, 1000):
        e = min(a.images, s + 1000)
        images[s:e] = rng.integers(0, 256, size=(e - s, IMAGE_BYTES), dtype=np.uint8)
        images[s:e, : len(header)] = header
    images.flush()
    del images
    k = min(a.take_k, a.rows)
    np.save(os.path.join(a.out, "take_anchors.npy"),
            np.stack([rng.choice(a.rows, size=k, replace=False) for _ in range(a.take_reps)]))
    k0 = min(a.take_k, a.old_rows)
    np.save(os.path.join(a.out, "take_anchors_old.npy"),
            np.stack([rng.choice(a.old_rows, size=k0, replace=False)
                      for _ in range(a.take_reps)]))
    with open(meta_path, "w") as f:
        json.dump(meta, f)
    print(f"gen_data: wrote {a.rows} rows, {a.images} images to {a.out}")


if __name__ == "__main__":
    main()
