"""A hyperparameter sweep where every run writes its results on its own branch, then compare.

The sweep workflow (spec/14-semantics.md, "Comparing refs"):

1. open the source dataset (a small synthetic one is created if the store has none);
2. pin it: snapshot the source head as ``<sweep>/base`` — every run trains on exactly
   these bytes;
3. ``Dataset.sweep_init``: branch ``<sweep>/run-<i>`` N times from the snapshot, one per
   hyperparameter setting, and record the sweep (source, runs, hyperparameters) in the
   metadata of branch ``sweeps/<sweep>`` (spec/14-semantics.md §17);
4. per run, train a small PyTorch model through ``dreamdb.torch.DreamDBDataset`` (anchors
   with ``anchor % 5 == 0`` held out for validation), then write its outputs on its branch
   as layers — ``pred`` (probability, ``add_scalar_layer``) and ``feat`` (the hidden
   activations, ``add_embedding_layer``) — without re-ingesting anything, and record the
   hyperparameters and the validation metrics in the branch's metadata;
5. ``Dataset.sweep_summarize`` ranks the runs by the validation loss in their metadata;
   ``dreamdb.compare_refs`` over the run branches (best run first, as the baseline)
   prints how far each run's predictions are from the best one's;
6. with ``--merge-best BRANCH``, ``Dataset.sweep_merge_best`` merges the best run into
   that branch.

Usage: python examples/sweep_runner.py --store file:///tmp/store [--dataset sweep-demo]
           [--runs 3] [--records 2000] [--epochs 3] [--sweep NAME] [--workers 0]
           [--merge-best BRANCH]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import Any, Dict, List

import numpy as np
import torch
from torch.utils.data import DataLoader

import dreamdb
from dreamdb.torch import DreamDBDataset
from make_demo_data import png

DIM = 16
HIDDEN = 8


def make_source(name: str, store: str, records: int, seed: int) -> dreamdb.Dataset:
    """The demo dataset of make_demo_data.py (images, captions, labels, scores, 16-d
    embeddings whose direction depends on the label), written straight from Python."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=DIM)
    labels = rng.random(records) < 0.5
    sign = np.where(labels, 1.0, -1.0)[:, None]
    noise = rng.normal(scale=0.3, size=(records, DIM))
    emb = (sign * direction * 0.5 + noise).astype(np.float32)
    red, blue = png(8, 8, (200, 60, 60)), png(8, 8, (60, 60, 200))
    schema = (dreamdb.Schema().add_image("image").add_string("caption").add_int("label")
              .add_float("score", required=False).add_embedding("emb", DIM))
    ds = dreamdb.Dataset.create(name, schema, store=store, message="synthetic demo data")
    ds.append_many({
        "image": [red if lab else blue for lab in labels],
        "caption": [("a red square" if lab else "a blue square") + f" #{i}"
                    for i, lab in enumerate(labels)],
        "label": labels.astype(np.int64),
        "score": np.round(rng.random(records), 4),
        "emb": emb,
    }, anchors=np.arange(records, dtype=np.uint64), message=f"{records} synthetic records")
    print(f"created dataset {name!r} with {records} synthetic records")
    return ds


def hyperparameters(i: int) -> Dict[str, Any]:
    """Run i of the grid: learning rate x weight decay, each run with its own seed."""
    return {"lr": round(0.5 * 0.1 ** (i % 3), 10), "weight_decay": [0.0, 0.01][(i // 3) % 2],
            "seed": i}


class Model(torch.nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(dim, HIDDEN)
        self.out = torch.nn.Linear(HIDDEN, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.hidden(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x)).squeeze(1)


def train(args: argparse.Namespace, base: str, dim: int, hp: Dict[str, Any]) -> Model:
    torch.manual_seed(hp["seed"])
    data = DreamDBDataset(args.dataset, args.store, at=base, fields=["emb", "label"],
                          shuffle_seed=hp["seed"], block_size=256)
    loader = DataLoader(data, batch_size=32, num_workers=args.workers)
    model = Model(dim)
    opt = torch.optim.SGD(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
    for epoch in range(args.epochs):
        data.set_epoch(epoch)
        for batch in loader:
            keep = batch["anchor"] % 5 != 0  # anchors % 5 == 0 are the validation set
            if not bool(keep.any()):
                continue
            x = batch["emb"][keep].float()
            y = batch["label"][keep].float()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model


def predict_and_write(branch: dreamdb.Dataset, model: Model, dim: int) -> Dict[str, float]:
    """Writes layers "pred" and "feat" for every record of the branch; returns the
    validation metrics."""
    anchors, preds, feats, labels = [], [], [], []
    with torch.no_grad():
        for rb in branch.iter_batches(fields=["emb", "label"], batch_size=4096):
            x = torch.tensor(rb.column("emb").values.to_numpy(zero_copy_only=False)
                             .reshape(-1, dim))
            f = model.features(x)
            anchors.append(rb.column("anchor").to_numpy())
            feats.append(f.numpy().copy())
            preds.append(torch.sigmoid(model.out(f).squeeze(1)).numpy().astype(np.float64))
            labels.append(rb.column("label").to_numpy())
    a, p, f, y = (np.concatenate(v) for v in (anchors, preds, feats, labels))
    branch.add_scalar_layer("pred", a, p, message="sweep: predictions")
    branch.add_embedding_layer("feat", a, f, message="sweep: hidden features")
    val = a % 5 == 0
    pv = np.clip(p[val], 1e-7, 1 - 1e-7)
    yv = y[val]
    loss = float(-np.mean(yv * np.log(pv) + (1 - yv) * np.log(1 - pv)))
    acc = float(np.mean((pv > 0.5) == (yv == 1)))
    return {"val_loss": loss, "val_accuracy": acc, "val_records": int(val.sum())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--dataset", default="sweep-demo")
    ap.add_argument("--runs", type=int, default=3, help="branches (one run each)")
    ap.add_argument("--records", type=int, default=2000,
                    help="records of the synthetic source (only when it is created)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--sweep", default=None, help="sweep name (default: sweep-<UTC time>)")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers per run")
    ap.add_argument("--merge-best", default=None, metavar="BRANCH",
                    help="merge the best run into this branch at the end")
    args = ap.parse_args()
    if args.runs < 2:
        raise SystemExit("--runs must be at least 2 (a sweep compares runs)")
    started = time.monotonic()
    sweep = args.sweep or time.strftime("sweep-%Y%m%d-%H%M%S", time.gmtime())

    try:
        source = dreamdb.Dataset.open(args.dataset, store=args.store)
    except dreamdb.NotFoundError:  # no such dataset, or no store yet: make both
        source = make_source(args.dataset, args.store, args.records, seed=1)
    dim = next(f for f in source.schema.fields if f.name == "emb").dim
    base = f"{sweep}/base"
    manifest = source.snapshot(base)
    print(f"sweep {sweep!r}: source {args.dataset}@{base} = manifest {manifest} "
          f"({source.count()} records)")

    grid = [hyperparameters(i) for i in range(args.runs)]
    record = source.sweep_init(sweep, args.runs, from_=base, prefix="", params=grid,
                               metric="val_loss", goal="min",
                               message=f"sweep {sweep}: {args.runs} runs")
    runs: List[Dict[str, Any]] = []
    for i, run in enumerate(record["runs"]):
        hp = grid[i]
        name = run["branch"]
        t0 = time.monotonic()
        model = train(args, base, dim, hp)
        branch = dreamdb.Dataset.open(args.dataset, store=args.store, branch=name)
        metrics = predict_and_write(branch, model, dim)
        meta = {"sweep": sweep, "trained_on": manifest, "epochs": str(args.epochs)}
        meta.update({k: repr(v) for k, v in hp.items()})
        meta.update({k: repr(v) for k, v in metrics.items()})
        branch.set_meta(meta, message="sweep: hyperparameters and metrics")
        runs.append({"branch": name, **hp, **metrics})
        print(f"run {i}: lr={hp['lr']:.4g} weight_decay={hp['weight_decay']:g} -> "
              f"val_loss {metrics['val_loss']:.4f}, val_accuracy {metrics['val_accuracy']:.3f} "
              f"({time.monotonic() - t0:.1f} s) on branch {name!r}")

    # Rank by validation loss (the sweep reads it back from each run branch's metadata;
    # a diverged run's NaN is left unranked), then compare the runs' outputs record by
    # record, the best run being the baseline.
    summary = source.sweep_summarize(sweep)
    if any(r["rank"] is None for r in summary["runs"]):
        raise SystemExit(f"a run has no usable val_loss: {summary['runs']}")
    by_branch = {r["branch"]: r for r in runs}
    ranked = [by_branch[r["branch"]] for r in sorted(summary["runs"], key=lambda r: r["rank"])]
    for r, s in zip(ranked, sorted(summary["runs"], key=lambda r: r["rank"])):
        r["val_loss"] = s["value"]
    refs = [r["branch"] for r in ranked]
    res = dreamdb.compare_refs(source, refs, ["pred", "feat"])
    assert res.summary["complete"] and res.table.num_rows == source.count()

    print(f"\nranked runs of sweep {sweep!r} (baseline for the comparison: {refs[0]})")
    header = (f"{'rank':>4}  {'branch':<{max(len(b) for b in refs)}}  {'lr':>8}  {'wd':>5}  "
              f"{'val_loss':>8}  {'val_acc':>7}  {'|dpred| vs best':>15}  "
              f"{'agree@0.5':>9}  {'feat cos':>8}")
    print(header)
    table = res.table
    best = table.column(f"pred@{refs[0]}").to_numpy(zero_copy_only=False) > 0.5
    rows_out = []
    for rank, r in enumerate(ranked, 1):
        if rank == 1:
            mad, cos, agree = 0.0, 1.0, 1.0
        else:
            pred = res.stats("pred", r["branch"])[0]
            feat = res.stats("feat", r["branch"])[0]
            mad, cos = pred["mean_abs_diff"], feat["mean_cosine"]
            mine = table.column(f"pred@{r['branch']}").to_numpy(zero_copy_only=False) > 0.5
            agree = float(np.mean(mine == best))
        rows_out.append({"rank": rank, "branch": r["branch"], "lr": r["lr"],
                         "weight_decay": r["weight_decay"], "val_loss": r["val_loss"],
                         "val_accuracy": r["val_accuracy"], "mean_abs_pred_diff": mad,
                         "decision_agreement": agree, "feat_mean_cosine": cos})
        print(f"{rank:>4}  {r['branch']:<{max(len(b) for b in refs)}}  {r['lr']:>8.4g}  "
              f"{r['weight_decay']:>5g}  {r['val_loss']:>8.4f}  {r['val_accuracy']:>7.3f}  "
              f"{mad:>15.4f}  {agree:>9.3f}  {cos:>8.3f}")
    print()
    print(res)
    if any(math.isnan(r["val_loss"]) for r in runs):
        raise SystemExit("a run diverged (val_loss is NaN)")
    merged = None
    if args.merge_best:
        out = source.sweep_merge_best(sweep, into=args.merge_best,
                                      message=f"sweep {sweep}: best run")
        merged = {"into": out["into"], "best": out["best"], "result": out["result"],
                  "head": out["head"]}
        print(f"\nmerged the best run {out['best']} into {out['into']!r} ({out['result']})")
    print("\nSWEEP_RESULT " + json.dumps({"sweep": sweep, "dataset": args.dataset,
                                          "base": manifest, "ranked": rows_out,
                                          "best": summary["best"], "merged": merged,
                                          "seconds": round(time.monotonic() - started, 2)}))


if __name__ == "__main__":
    main()
