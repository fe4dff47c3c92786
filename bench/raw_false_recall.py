#!/usr/bin/env python3
# Usage: .venv/bin/python bench/raw_false_recall.py DIM N   (bench/RESULTS.md, "raw: false")
"""recall@10 and segment bytes per vector, raw true vs false, on the same seeded data."""
import json, os, shutil, sys, tempfile, time
import numpy as np
import dreamdb

DIM, N, NQ, K = int(sys.argv[1]), int(sys.argv[2]), 200, 10
# SYN recipe (shared/design/TARGETS.md) at a small N: anisotropic spectrum, ~sqrt(N)
# centres with Dirichlet(1) weights, unit vectors.
g0 = np.random.default_rng(0)
U, _ = np.linalg.qr(g0.normal(size=(DIM, DIM)))
lam = np.arange(1, DIM + 1) ** -0.75
lam /= np.linalg.norm(lam)
B = U * lam
KC = int(round(np.sqrt(N)))
C = g0.normal(size=(KC, DIM)) @ B.T
w = g0.dirichlet(np.ones(KC))
def gen(n, seed):
    r = np.random.default_rng(seed)
    x = C[r.choice(KC, size=n, p=w)] + r.normal(size=(n, DIM)) @ B.T
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
base, queries = gen(N, 1), gen(NQ, 2)
bn = base / np.linalg.norm(base, axis=1, keepdims=True)
qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
truth = [set(np.argsort(-(bn @ q), kind="stable")[:K].tolist()) for q in qn]

def recall(t):
    qs, an = t.column("query").to_numpy(), t.column("anchor").to_numpy()
    return sum(len(truth[q] & set(an[qs == q].tolist())) for q in range(NQ)) / (K * NQ)

for raw in (True, False):
    d = tempfile.mkdtemp()
    ix = {"algorithm": "ivf", "metric": "cosine", "bits": 4}
    if not raw: ix["raw"] = False
    s = dreamdb.Schema.from_json(json.dumps({"fields": [{"name": "emb", "type": "embedding", "dim": DIM, "index": ix}]}))
    ds = dreamdb.Dataset.create("v", s, store="file://" + d)
    ds.append_many({"emb": base})
    seg = 0
    for root, _, files in os.walk(os.path.join(d, "objects")):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                if fh.read(8) == b"DDBSEG01": seg += os.path.getsize(p)
    st = ds.build_index("emb", seed=1)
    out = [f"raw={str(raw).lower():5s} segment bytes/vector {seg / N:7.1f} cells {st['cells']}"]
    out.append(f"exact {recall(ds.search('emb', queries, k=K, exact=True)):.3f}")
    for nprobe in (4, 8, 16, 32):
        out.append(f"nprobe {nprobe} {recall(ds.search('emb', queries, k=K, nprobe=nprobe)):.3f}")
    print("  ".join(out), flush=True)
    shutil.rmtree(d)
