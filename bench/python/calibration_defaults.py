# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Default-search recall@10 with and without build-time calibration (spec/21 §8.5) on
Gaussian data. From the repository root, with the package installed:

    .venv/bin/python bench/python/calibration_defaults.py
"""

from __future__ import annotations

import sys
import time

import numpy as np

sys.path.insert(0, "tests/python")
from test_search_defaults import gaussian_dataset, recall_at_10  # noqa: E402


def main() -> None:
    for n, dim in [(3000, 32), (50000, 128)]:
        ds, _ = gaussian_dataset(n, dim, 1)
        q = np.random.default_rng(2).standard_normal((100, dim)).astype(np.float32)
        t = time.time()
        st = ds.build_index("emb", calibrate=False)
        t0 = time.time() - t
        r0, np0 = recall_at_10(ds, q), st["nprobe"]
        t = time.time()
        st = ds.build_index("emb")
        t1 = time.time() - t
        r1, cal = recall_at_10(ds, q), st["calibration"]
        print(f"n={n} dim={dim}: uncalibrated nprobe={np0} recall@10={r0:.3f} build {t0:.2f}s"
              f" | calibrated nprobe={st['nprobe']} recall@10={r1:.3f} build {t1:.2f}s"
              f" (sample {cal['queries']}, sample recall {cal['recall']:.4f})", flush=True)


if __name__ == "__main__":
    main()
