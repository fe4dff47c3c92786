# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""One rank of the distributed loader test (tests/python/test_torch_distributed.py).

Joins a gloo process group, trains a few steps with an all_reduce per step over a
DreamDBDataset + DataLoader, and logs every batch's anchors (one JSON line per step).
With --save-at S it saves state_dict(consumed=S * batch) after step S and keeps going
slowly until it is killed; with --resume FILE it loads that state and finishes the epoch.
"""

import argparse
import datetime
import json
import os
import time

import torch
import torch.distributed as dist

from dreamdb.torch import DreamDBDataset


def main() -> None:
    ap = argparse.ArgumentParser()
    for name in ("--store", "--dataset", "--init", "--out"):
        ap.add_argument(name, required=True)
    for name in ("--rank", "--world", "--workers", "--batch", "--seed", "--epoch"):
        ap.add_argument(name, type=int, required=True)
    ap.add_argument("--save-at", type=int)
    ap.add_argument("--resume")
    args = ap.parse_args()
    dist.init_process_group("gloo", init_method=args.init, rank=args.rank,
                            world_size=args.world, timeout=datetime.timedelta(seconds=30))
    ds = DreamDBDataset(args.dataset, args.store, fields=["label"], shuffle_seed=args.seed,
                        loader_batch_size=args.batch)
    if args.resume:
        with open(args.resume) as f:
            ds.load_state_dict(json.load(f))
    ds.set_epoch(args.epoch)  # keeps a loaded position of this epoch
    loader = torch.utils.data.DataLoader(ds, batch_size=args.batch, num_workers=args.workers)
    weight = torch.zeros(1)
    log = open(os.path.join(args.out, f"rank{args.rank}.log"), "a")
    steps = 0
    for batch in loader:
        grad = batch["label"].float().sum().reshape(1)
        dist.all_reduce(grad)  # hangs (then times out) if the ranks' shares differ
        weight -= 1e-6 * grad
        steps += 1
        log.write(json.dumps({"step": steps, "anchors": batch["anchor"].tolist()}) + "\n")
        log.flush()
        if args.save_at is not None and steps == args.save_at:
            path = os.path.join(args.out, f"state{args.rank}.json")
            with open(path + ".tmp", "w") as f:
                json.dump(ds.state_dict(consumed=steps * args.batch), f)
            os.replace(path + ".tmp", path)
        if args.save_at is not None and steps >= args.save_at:
            time.sleep(0.2)  # the test kills the job while it is mid-epoch
    counts = [torch.zeros(1) for _ in range(args.world)]
    dist.all_gather(counts, torch.tensor([float(steps)]))
    with open(os.path.join(args.out, f"done{args.rank}.json"), "w") as f:
        json.dump({"steps": steps, "all_steps": [int(c.item()) for c in counts],
                   "weight": weight.item()}, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
