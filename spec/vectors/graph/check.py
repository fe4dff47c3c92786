#!/usr/bin/env python3
# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Independent check of spec/vectors/graph/graph.txt against spec/22-graph-index.md.

Written from the spec (numpy; the rotation and RaBitQ factor arithmetic of spec/20 come
from ../vector/check.py, itself written from spec/20; BLAKE3 from the `b3sum` tool). For
every case it parses the one-cell model (spec/22 §1) and every node block (§4): header
fields, size, counts, padding and checksum; it checks that the neighbour lists are valid,
that node 0 is the medoid and that the numbering is the block-local breadth-first order of §3.3; it
re-derives each node's rotated residual from its input row and checks the sign plane
exactly and the factors within float tolerance; and it recomputes the reported distances
of the query (full-code estimates of §5.1, or exact distances when re-ranked).

Usage: python3 spec/vectors/graph/check.py   (exit 1 on any mismatch)
"""

import importlib.util
import pathlib
import struct
import subprocess
import sys
from collections import deque

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("vector_check", HERE.parent / "vector" / "check.py")
vc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(vc)


def blake3_16(data):
    out = subprocess.run(["b3sum", "--no-names", "--num-threads", "1"], input=data,
                         capture_output=True, check=True).stdout.decode().strip()
    return bytes.fromhex(out)[:16]


def parse(path):
    cases, cur = [], None
    for line in path.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, rest = line.partition(" ")
        if key == "case":
            cur = {"name": rest, "vector": [], "block": []}
            cases.append(cur)
        elif key == "vector":
            cur[key].append(np.array([float(v) for v in rest.split()], dtype=np.float32))
        elif key == "block":
            cur[key].append(bytes.fromhex(rest))
        elif key == "query":
            cur[key] = np.array([float(v) for v in rest.split()], dtype=np.float32)
        elif key in ("results", "reranked"):
            vals = rest.split()
            cur[key] = [(int(vals[i]), float(vals[i + 1])) for i in range(0, len(vals), 2)]
        elif key == "order":
            cur[key] = [int(v) for v in rest.split()]
        else:
            cur[key] = rest
    return cases


def normalise(v):
    return (v / np.float32(np.linalg.norm(v.astype(np.float64)))).astype(np.float32)


def parse_block(b, bits, D, degree, errors, name):
    """Returns (first, count, lists, codes) where codes[i] = (planes u8 array, f1, fB)."""
    magic, ver, bbits, res7, bd, first, count, bdeg, edges, res28 = struct.unpack_from(
        "<4sHBBIIIIII", b, 0)
    if (magic, ver, bbits, res7, bd, bdeg, res28) != (b"DVGB", 1, bits, 0, D, degree, 0):
        errors.append(f"{name}: header")
    if not 1 <= count <= 4096 or edges > count * bdeg:
        errors.append(f"{name}: count/edges")
    adj = 4 * count + 4 * edges
    pad = (8 - adj % 8) % 8
    code_bytes = bits * D // 8 + (24 if bits > 1 else 12)
    if len(b) != 32 + adj + pad + count * code_bytes + 16:
        errors.append(f"{name}: size")
        return first, 0, [], []
    if blake3_16(b[:-16]) != b[-16:]:
        errors.append(f"{name}: checksum")
    counts = struct.unpack_from(f"<{count}I", b, 32)
    if sum(counts) != edges or max(counts) > bdeg:
        errors.append(f"{name}: neighbour counts")
    nbrs = struct.unpack_from(f"<{edges}I", b, 32 + 4 * count)
    if any(b[32 + adj:32 + adj + pad]):
        errors.append(f"{name}: padding")
    lists, pos = [], 0
    for c in counts:
        lists.append(list(nbrs[pos:pos + c]))
        pos += c
    codes = []
    off = 32 + adj + pad
    for _ in range(count):
        planes = np.frombuffer(b, dtype=np.uint8, count=bits * D // 8, offset=off)
        off += bits * D // 8
        f1 = struct.unpack_from("<3f", b, off)
        off += 12
        fb = f1
        if bits > 1:
            fb = struct.unpack_from("<3f", b, off)
            off += 12
        codes.append((planes, f1, fb))
    return first, count, lists, codes


def check(case):
    errors = []
    metric = {"l2": 0, "ip": 1, "cosine": 2}[case["metric"]]
    bits, seed, dim, n = int(case["bits"]), int(case["seed"]), int(case["dim"]), int(case["n"])
    degree, per_block = int(case["degree"]), int(case["nodes_per_block"])
    rows = np.stack(case["vector"])
    work = np.stack([normalise(v) for v in rows]) if metric == 2 else rows
    # §1: the one-cell model, centre = mean of the work vectors.
    model = bytes.fromhex(case["model"])
    magic, ver, m, rot, b, r0, r1, r2, mdim, D, ncells, mseed = struct.unpack_from(
        "<4sHBBBBBBIIIQ", model, 0)
    if (magic, ver, m, rot, b, mdim, ncells, mseed) != (b"DVIM", 1, metric, 0, bits, dim, 1, seed):
        errors.append("model header")
    centre = np.frombuffer(model, dtype="<f4", offset=32, count=dim)
    want = work.astype(np.float64).mean(axis=0).astype(np.float32)
    if metric == 2:
        want = normalise(want)
    if not np.allclose(centre, want, atol=1e-6):
        errors.append("model centre is not the mean")
    D2, rotate = vc.hadamard(dim, seed)
    if D != D2:
        errors.append("model D")
    order = case["order"]
    if sorted(order) != list(range(n)):
        errors.append("order is not a permutation")
        return errors
    # §4: blocks.
    lists, codes = [], []
    for bi, blk in enumerate(case["block"]):
        first, count, ls, cs = parse_block(blk, bits, D, degree, errors, f"block {bi}")
        if first != bi * per_block or count != min(per_block, n - first):
            errors.append(f"block {bi}: first/count")
        lists += ls
        codes += cs
    if len(lists) != n:
        errors.append("blocks do not hold n nodes")
        return errors
    for v, ls in enumerate(lists):
        if len(set(ls)) != len(ls) or v in ls or any(u >= n for u in ls) or not ls:
            errors.append(f"node {v}: neighbour list {ls}")
    # §3.3: node 0 is the medoid; numbering is breadth-first from it.
    mean = work.astype(np.float64).mean(axis=0)
    medoid = int(np.argmin(((work.astype(np.float64) - mean) ** 2).sum(axis=1)))
    if order[0] != medoid:
        errors.append(f"node 0 is row {order[0]}, the medoid is row {medoid}")
    # Block-local breadth-first numbering (§3.3), in input rows; compare with `order`.
    adj_rows = {order[v]: [order[w] for w in lists[v]] for v in range(n)}
    numbered, got = set(), []
    frontier, next_input = deque([medoid]), 0
    while len(got) < n:
        seed = None
        while frontier and seed is None:
            cand = frontier.popleft()
            if cand not in numbered:
                seed = cand
        if seed is None:
            while next_input in numbered:
                next_input += 1
            seed = next_input
        room = per_block - len(got) % per_block
        ball = [seed]
        numbered.add(seed)
        got.append(seed)
        head = 0
        while head < len(ball):
            u = ball[head]
            head += 1
            for w in adj_rows[u]:
                if w in numbered:
                    continue
                if len(ball) < room:
                    numbered.add(w)
                    got.append(w)
                    ball.append(w)
                else:
                    frontier.append(w)
    if got != order:
        errors.append("node numbers are not the block-local breadth-first order")
    # §1.2: codes of every node.
    c = centre
    c_r = rotate(c)
    for v in range(n):
        planes, f1, fb = codes[v]
        r = rotate((work[order[v]] - c).astype(np.float32))
        bitsv = np.unpackbits(planes, bitorder="little").reshape(bits, D).astype(np.int64)
        u = sum(bitsv[p] << p for p in range(bits))
        s = bitsv[bits - 1]
        if not np.array_equal(s, (r > 0).astype(np.int64)):
            errors.append(f"node {v}: sign plane")
            continue
        w1 = vc.factors(r, c_r, s - 0.5, metric)
        wb = vc.factors(r, c_r, u - (2 ** bits - 1) / 2, metric)
        for got, want in ((f1, w1), (fb, wb)):
            if not all(vc.close(g, w) for g, w in zip(got, want)):
                errors.append(f"node {v}: factors {got} vs {want}")
    # §5: the query's results.
    q = case["query"].astype(np.float32)
    qn = normalise(q) if metric == 2 else q
    x = rotate(qn).astype(np.float64)
    S = float(x.sum())
    q64, c64 = qn.astype(np.float64), c.astype(np.float64)
    l2c = max(0.0, float(q64 @ q64) + float(c64 @ c64) - 2 * float(q64 @ c64))
    g_add = l2c if metric == 0 else -float(q64 @ c64)

    def report(est):
        return max(0.0, est) if metric == 0 else (1.0 + est if metric == 2 else est)

    for key in ("results", "reranked"):
        res = case[key]
        if len(res) != int(case["k"]) or any(res[i][1] > res[i + 1][1] for i in range(len(res) - 1)):
            errors.append(f"{key}: not k results in increasing distance")
        for v, dist in res:
            planes, f1, fb = codes[v]
            bitsv = np.unpackbits(planes, bitorder="little").reshape(bits, D).astype(np.int64)
            u = sum(bitsv[p] << p for p in range(bits))
            if key == "results":
                est = fb[0] + g_add + fb[1] * (float(u @ x) - (2 ** bits - 1) / 2 * S)
                want = report(est)
            else:
                o = rows[order[v]].astype(np.float64)
                qq = q.astype(np.float64)
                if metric == 0:
                    want = float(((o - qq) ** 2).sum())
                elif metric == 1:
                    want = -float(o @ qq)
                else:
                    want = 1.0 - float(o @ qq) / np.sqrt(float(o @ o) * float(qq @ qq))
            if not vc.close(dist, want, 1e-4):
                errors.append(f"{key}: node {v} distance {dist} vs {want}")
    return errors


def main():
    failed = 0
    for case in parse(HERE / "graph.txt"):
        errs = check(case)
        print(("ok    " if not errs else "FAIL  ") + case["name"])
        for e in errs:
            print("   ", e)
        failed += bool(errs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
