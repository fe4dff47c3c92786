"""Train with plain NumPy batches (JAX, tf.data, or NumPy itself) and resume exactly.

``dreamdb.loader.NumpyLoader`` gives the guarantees of the PyTorch loader without PyTorch:
a seeded order per epoch that is the same on every machine, equal shares per process
(``rank``/``world_size``; in JAX: ``jax.process_index()``/``jax.process_count()``), and a
small state that resumes mid-epoch exactly. Each batch is a dict of NumPy arrays, so it
feeds ``jax.device_put`` directly, or tf.data:

    tf.data.Dataset.from_generator(lambda: iter(loader), output_signature={...})

This script trains a logistic regression in NumPy on two simulated processes, "crashes"
half-way through epoch 1, restarts from the saved state, and checks that the samples seen
are exactly those of an uninterrupted run.

Usage: python examples/numpy_loader.py --store /tmp/store [--records 2000] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

import dreamdb
from dreamdb.loader import NumpyLoader

DIM = 16


def make_data(store: str, records: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(records, DIM)).astype(np.float32)
    w = rng.normal(size=DIM)
    y = (x @ w > 0).astype(np.int64)
    schema = dreamdb.Schema().add_embedding("x", DIM).add_int("y")
    ds = dreamdb.Dataset.create("numpy-demo", schema, store=store)
    ds.append_many({"x": x, "y": y})
    ds.snapshot("v1")


def train(store: str, rank: int, world: int, epochs: int, state: dict = None,
          crash_at: int = None):
    """Trains on this process's share; returns (weights, anchors seen, saved state)."""
    loader = NumpyLoader("numpy-demo", store, at="v1", fields=["x", "y"], batch_size=32,
                         shuffle_seed=7, rank=rank, world_size=world)
    w = np.zeros(DIM)
    seen, saved = [], None
    if state is not None:
        loader.load_state_dict(state["loader"])
        w = np.array(state["weights"])
    first = loader.epoch if state is not None else 0
    for epoch in range(first, epochs):
        loader.set_epoch(epoch)  # keeps a loaded position of this epoch
        for step, batch in enumerate(loader):
            p = 1 / (1 + np.exp(-(batch["x"] @ w)))
            w -= 0.5 * batch["x"].T @ (p - batch["y"]) / len(p)
            seen += batch["anchor"].tolist()
            if crash_at is not None and (epoch, step) == crash_at:
                # A checkpoint: the loader's state goes next to the model's.
                saved = {"loader": loader.state_dict(), "weights": w.tolist()}
                return w, seen, json.loads(json.dumps(saved))  # JSON-serializable
    return w, seen, saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    t0 = time.time()
    make_data(args.store, args.records)
    world = 2
    result = {"per_rank": [], "exact": True}
    for rank in range(world):  # each would be its own process (or host) in a real job
        w_ref, seen_ref, _ = train(args.store, rank, world, args.epochs)
        crash = (1, len(seen_ref) // (2 * 32 * args.epochs))  # mid-epoch 1
        _, head, state = train(args.store, rank, world, args.epochs, crash_at=crash)
        w, tail, _ = train(args.store, rank, world, args.epochs, state=state)
        exact = head + tail == seen_ref and np.allclose(w, w_ref)
        result["exact"] = result["exact"] and exact
        result["per_rank"].append(len(seen_ref))
        print(f"rank {rank}: {len(seen_ref)} samples over {args.epochs} epochs; crashed at "
              f"epoch {crash[0]} step {crash[1]}, resumed: {'identical' if exact else 'DIFFERENT'}")
    data = NumpyLoader("numpy-demo", args.store, at="v1", fields=["x", "y"], batch_size=256)
    x = np.concatenate([b["x"] for b in data])
    y = np.concatenate([b["y"] for b in data])
    result["accuracy"] = float(((x @ w > 0) == (y == 1)).mean())
    result["seconds"] = round(time.time() - t0, 2)
    result["torch_imported"] = "torch" in sys.modules
    print("NUMPY_LOADER_RESULT " + json.dumps(result))
    if not result["exact"]:
        raise SystemExit("resume was not exact")


if __name__ == "__main__":
    main()
