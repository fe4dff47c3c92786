#!/usr/bin/env python3
# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Builds the small store the dashboard's browser tests open (a few seconds).

Dataset `pets` (examples/make_demo_data.py: 8x8 PNG images, captions, labels, scores,
16-d embeddings), with
  * snapshot v1 of the first records, a branch `experiment` that adds records, deletes
    three and is merged back into main (a merge commit), and records the snapshot it
    trained on (`trained_on`, as examples/training_recipe.py does);
  * an IVF index on `emb` at main (search by example);
  * sweep `tune` of 3 runs from v1 (lr 0.1, 0.01, 0.001), each writing its own per-record
    `pred` layer and a run-level `val_error` (run 1 best, run 2 worst).

Usage: python web/tests/make_store.py STORE_DIR   (prints the store URI)
Needs the release CLI (DREAMDB_BIN, default .venv/bin/dreamdb) and the dreamdb package.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

import dreamdb

ROOT = pathlib.Path(__file__).resolve().parents[2]
RECORDS = 240
MORE = 40
VAL_ERRORS = ["0.31", "0.24", "0.42"]


def main() -> None:
    out = pathlib.Path(sys.argv[1]).resolve()
    store = f"file://{out}"
    cli = os.environ.get("DREAMDB_BIN", str(ROOT / ".venv" / "bin" / "dreamdb"))

    def run(*args: str) -> str:
        r = subprocess.run([cli, "--store", store, *args], capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"dreamdb {' '.join(args)} failed ({r.returncode}): {r.stderr}")
        return r.stdout

    with tempfile.TemporaryDirectory() as tmp:
        data, more = pathlib.Path(tmp, "data"), pathlib.Path(tmp, "more")
        gen = [sys.executable, str(ROOT / "examples" / "make_demo_data.py")]
        subprocess.run([*gen, str(data), "--records", str(RECORDS)], check=True, capture_output=True)
        subprocess.run([*gen, str(more), "--records", str(MORE), "--start", str(RECORDS), "--seed", "2"],
                       check=True, capture_output=True)
        run("init")
        run("create", "pets", "--schema", str(data / "schema.json"))
        run("ingest", "pets", str(data / "records.jsonl"), "--message", f"{RECORDS} pets")
        run("snapshot", "pets", "v1")
        run("branch", "pets", "experiment")
        run("ingest", "pets", str(more / "records.jsonl"), "--branch", "experiment", "--message", f"{MORE} more")
        run("delete", "pets", "5", "6", "7", "--branch", "experiment", "--message", "drop three blurry ones")
        arrays = pathlib.Path(tmp, "arrays")
        arrays.mkdir()
        (arrays / "schema.json").write_text(json.dumps({"fields": [
            {"name": "grid", "type": "array", "dtype": "f32", "shape": [4, 4]},
            {"name": "curve", "type": "array", "dtype": "f64", "shape": [32]},
            {"name": "note", "type": "string"}]}))
        with open(arrays / "records.jsonl", "w") as f:
            for i in range(3):
                f.write(json.dumps({
                    "anchor": i,
                    "grid": [[(r * 4 + c) * (i + 1) for c in range(4)] for r in range(4)],
                    "curve": [round(math.sin(x / 4 + i), 6) for x in range(32)],
                    "note": f"array record {i}"}) + "\n")
        run("create", "arrays", "--schema", str(arrays / "schema.json"))
        run("ingest", "arrays", str(arrays / "records.jsonl"))
    v1 = dreamdb.Dataset.open_at("pets", "v1", store=store).head
    exp = dreamdb.Dataset.open("pets", store=store, branch="experiment")
    exp.set_meta({"trained_on": v1, "model": "5f3a9c0e1d2b4a6f"}, message="training run: model and data")
    run("delete", "pets", "200", "--message", "drop a mislabeled one")  # main moves on too
    run("merge", "pets", "experiment", "--into", "main", "--message", "merge the experiment")
    run("index", "build", "pets", "emb", "--message", "ivf index on emb")

    params = [f"{i}=lr={lr}" for i, lr in enumerate(["0.1", "0.01", "0.001"])]
    run("sweep", "init", "pets", "tune", "--from", "v1", "--runs", "3", *params,
        "--metric", "val_error", "--goal", "min")
    anchors = np.arange(RECORDS, dtype=np.uint64)
    rng = np.random.default_rng(7)
    for i, err in enumerate(VAL_ERRORS):
        branch = dreamdb.Dataset.open("pets", store=store, branch=f"sweep/tune/run-{i}")
        pred = np.clip(rng.normal(0.5, 0.2 + 0.1 * i, size=RECORDS), 0, 1)
        branch.add_scalar_layer("pred", anchors, pred, message=f"run {i}: predictions")
        branch.set_meta({"val_error": err}, message=f"run {i}: val_error {err}")
    print(store)


if __name__ == "__main__":
    main()
