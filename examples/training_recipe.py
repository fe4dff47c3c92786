"""Train a PyTorch model on a pinned DreamDB snapshot, then write its predictions as a layer.

The recipe every ML engineer needs from a dataset store:

1. pin the exact data: open a snapshot (its manifest id never changes);
2. stream it into a ``torch.utils.data.DataLoader`` with several workers, shuffled per epoch;
3. write the model's outputs for the branch's records back as a new field ("layer") on a branch — no re-ingest;
4. label the snapshot's metadata with the model's hash, so the model can be traced to the
   bytes it saw;
5. compare the branch with the snapshot.

Usage: python examples/training_recipe.py --store file:///tmp/store --dataset demo \
           --snapshot v1 --branch experiment [--epochs 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import hashlib
import io

import numpy as np
import torch
from torch.utils.data import DataLoader

import dreamdb
from dreamdb.torch import DreamDBDataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--snapshot", required=True, help="snapshot label to train on")
    ap.add_argument("--branch", required=True, help="branch that receives the predictions")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    torch.manual_seed(0)

    pinned = dreamdb.Dataset.open_at(args.dataset, args.snapshot, store=args.store)
    dim = next(f for f in pinned.schema.fields if f.name == "emb").dim
    print(f"training on {args.dataset}@{args.snapshot} = manifest {pinned.head} "
          f"({pinned.count()} records)")

    # loader_batch_size = the DataLoader's batch_size: workers are dealt whole batches, so
    # the loader yields one fixed order per epoch whatever the number of workers, and
    # data.state_dict(consumed=samples) resumes it exactly.
    data = DreamDBDataset(args.dataset, args.store, at=args.snapshot,
                          fields=["emb", "label"], shuffle_seed=7, loader_batch_size=64)
    loader = DataLoader(data, batch_size=64, num_workers=args.workers)
    model = torch.nn.Linear(dim, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for epoch in range(args.epochs):
        data.set_epoch(epoch)
        total, n = 0.0, 0
        for batch in loader:
            x = batch["emb"].float()
            y = batch["label"].float().unsqueeze(1)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * len(y)
            n += len(y)
        print(f"epoch {epoch}: {n} samples, mean loss {total / n:.4f}")

    # Predictions for every record of the branch (it may have moved on from the snapshot:
    # new records, deletions), in anchor order, as one layer.
    branch = dreamdb.Dataset.open(args.dataset, store=args.store, branch=args.branch)
    anchors, scores = [], []
    with torch.no_grad():
        for rb in branch.iter_batches(fields=["emb"], batch_size=4096):
            emb = rb.column("emb").values.to_numpy(zero_copy_only=False).reshape(-1, dim)
            anchors.append(rb.column("anchor").to_numpy())
            scores.append(torch.sigmoid(model(torch.tensor(emb))).squeeze(1).numpy())  # copy: zero-copy views are read-only
    anchors = np.concatenate(anchors)
    scores = np.concatenate(scores).astype(np.float64)

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    model_hash = hashlib.blake2b(buf.getvalue(), digest_size=16).hexdigest()

    head = branch.add_scalar_layer("pred", anchors, scores,
                                   message=f"predictions of model {model_hash}")
    branch.set_meta({"model": model_hash, "trained_on": pinned.head})
    print(f"wrote layer 'pred' for {len(anchors)} records on branch {args.branch!r}: {head}")

    # Compare: accuracy of the predictions against the labels, read back by anchor.
    table = branch.take(anchors[:2000].tolist(), fields=["label", "pred"])
    labels = table.column("label").to_numpy()
    preds = table.column("pred").to_numpy()
    accuracy = float(((preds > 0.5) == (labels == 1)).mean())
    print(f"accuracy of 'pred' vs 'label' on {len(labels)} records: {accuracy:.3f}")
    if accuracy < 0.8:
        raise SystemExit(f"training did not learn the labels (accuracy {accuracy:.3f})")


if __name__ == "__main__":
    main()
