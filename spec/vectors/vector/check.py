#!/usr/bin/env python3
# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Independent check of spec/vectors/vector/{codes,partitions}.txt against spec/20.

Written from the spec only (numpy, no DreamDB code): for every case it rebuilds the
Hadamard rotation from the seed (§2), parses the model bytes (§4) and the cell codes
block (§5), re-derives each vector's residual, sign bits, code values and factors (§3),
and recomputes the distance estimates for the query (§6). For partitions.txt (imi and
lsh models, §4.2-§4.3) it also rebuilds the cell centres from the algorithm's arrays and
recomputes each vector's cell and the query's probe order (§6.4). Sign bits must match exactly;
magnitudes are the encoder's choice (§3.3), so the factors are recomputed from the stored
codes and compared with a float tolerance, as are the estimates. For pq.txt (pq4, §8) it
parses the version-3 model (partition arrays + codebooks) and the version-2 codes block,
re-encodes every vector from the codebooks (nearest centroid per sub-space, f64; another
choice is accepted only when its distance equals the best within rounding) and recomputes
the estimates from the reconstruction.

Usage: python3 spec/vectors/vector/check.py   (exit 1 on any mismatch)
"""

import pathlib
import struct
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
M64 = (1 << 64) - 1


def mix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


class Rng:
    def __init__(self, seed, stream):
        self.state = mix(seed ^ mix((stream + 0x632BE59BD9B4E019) & M64))

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & M64
        return mix(self.state)


def padded(dim):
    return max(64, (dim + 63) // 64 * 64)


def fwht(x):
    n = len(x)
    h = 1
    while h < n:
        for i in range(0, n, 2 * h):
            a = x[i:i + h].copy()
            b = x[i + h:i + 2 * h].copy()
            x[i:i + h] = a + b
            x[i + h:i + 2 * h] = a - b
        h *= 2


def hadamard(dim, seed):
    d = padded(dim)
    window = 1
    while window * 2 <= d:
        window *= 2
    rng = Rng(seed, 0x5349474E)
    signs = np.empty(4 * d, dtype=np.float32)
    word = 0
    for j in range(4 * d):
        if j % 64 == 0:
            word = rng.next()
        signs[j] = -1.0 if (word >> (j % 64)) & 1 else 1.0
    scale = np.float32(1.0) / np.sqrt(np.float32(window))

    def apply(v):
        out = np.zeros(d, dtype=np.float32)
        out[:dim] = v
        for r in range(4):
            out *= signs[r * d:(r + 1) * d]
            lo = 0 if r % 2 == 0 else d - window
            w = out[lo:lo + window]
            fwht(w)
            out[lo:lo + window] = w * scale
        return out

    return d, apply


def factors(r, c_r, y, metric):
    r = r.astype(np.float64)
    c_r = c_r.astype(np.float64)
    ip_yr, ip_yc = float(y @ r), float(y @ c_r)
    nr2, ip_rc = float(r @ r), float(r @ c_r)
    rescale, err = 0.0, 0.0
    if nr2 > 0 and ip_yr > 0:
        rescale = nr2 / ip_yr
        cosv = min(1.0, ip_yr / (np.linalg.norm(y) * np.sqrt(nr2)))
        err = np.sqrt(nr2) * np.sqrt(max(0.0, 1 - cosv * cosv)) / cosv * 1.9 / np.sqrt(len(r) - 1)
    if metric == 0:
        return nr2 + 2 * rescale * ip_yc, -2 * rescale, 2 * err
    return -ip_rc + rescale * ip_yc, -rescale, err


def lut_ip(x, s):
    """<s, x> through the 8-bit FastScan table of spec §6.3."""
    x = x.astype(np.float32)
    groups = len(x) // 4
    lows = np.array([x[4 * g:4 * g + 4][x[4 * g:4 * g + 4] < 0].sum() for g in range(groups)])
    highs = np.array([x[4 * g:4 * g + 4][x[4 * g:4 * g + 4] > 0].sum() for g in range(groups)])
    delta = np.float32(max(highs - lows)) / np.float32(255)
    acc = 0
    for g in range(groups):
        t = float(sum(x[4 * g + k] for k in range(4) if s[4 * g + k]))
        acc += int(min(255, max(0, np.rint((t - lows[g]) / delta))))
    return float(delta) * acc + float(lows.sum())


def parse(path):
    cases, cur = [], None
    for line in path.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, rest = line.partition(" ")
        if key == "case":
            cur = {"name": rest, "centroid": [], "vector": [], "first": [], "second": [],
                   "plane": [], "centre": []}
            cases.append(cur)
        elif key == "codebook":
            cur.setdefault("codebook", []).append(
                np.array([float(v) for v in rest.split()], dtype=np.float32))
        elif key in ("centroid", "vector", "first", "second", "plane", "centre"):
            cur[key].append(np.array([float(v) for v in rest.split()], dtype=np.float32))
        elif key in ("query", "estimates", "offset"):
            cur[key] = np.array([float(v) for v in rest.split()], dtype=np.float32)
        else:
            cur[key] = rest
    return cases


def close(a, b, tol=2e-4):
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


def check(case):
    errors = []
    metric = {"l2": 0, "ip": 1, "cosine": 2}[case["metric"]]
    bits, seed, dim = int(case["bits"]), int(case["seed"]), int(case["dim"])
    cells, cell = int(case["cells"]), int(case["cell"])
    model = bytes.fromhex(case["model"])
    magic, ver, m, rot, b, r0, r1, r2, mdim, d, ncells, mseed = struct.unpack_from(
        "<4sHBBBBBBIIIQ", model, 0)
    if (magic, ver, m, rot, b, mdim, ncells, mseed) != (b"DVIM", 1, metric, 0, bits, dim, cells, seed):
        errors.append("model header")
    cents = np.frombuffer(model, dtype="<f4", offset=32).reshape(cells, dim)
    want = np.stack(case["centroid"])
    if metric == 2:
        want = want / np.linalg.norm(want, axis=1, keepdims=True)
    if not np.allclose(cents, want, atol=1e-6):
        errors.append("centroids")
    D, rotate = hadamard(dim, seed)
    if d != D or len(model) != 32 + 4 * cells * dim:
        errors.append("model size")
    check_codes(case, cents, errors)
    return errors


def check_codes(case, cents, errors):
    """Checks the cell codes block and the estimates for the cell's centre cents[cell]."""
    metric = {"l2": 0, "ip": 1, "cosine": 2}[case["metric"]]
    bits, seed, dim = int(case["bits"]), int(case["seed"]), int(case["dim"])
    cell = int(case["cell"])
    D, rotate = hadamard(dim, seed)
    codes = bytes.fromhex(case["codes"])
    cmagic, cver, cbits, cres, cd, count = struct.unpack_from("<4sHBBII", codes, 0)
    if (cmagic, cver, cbits, cres, cd, count) != (b"DVIC", 1, bits, 0, D, len(case["vector"])):
        errors.append("codes header")
    nb = (count + 31) // 32
    sign_bytes = 4 * D + 384
    plane_bytes = 4 * bits * D + 384 if bits > 1 else 0
    if len(codes) != 16 + nb * (sign_bytes + plane_bytes):
        errors.append("codes size")
    c = cents[cell]
    c_r = rotate(c)
    q = case["query"].astype(np.float32)
    if metric == 2:
        q = (q / np.linalg.norm(q.astype(np.float64))).astype(np.float32)
    x = rotate(q).astype(np.float64)
    S = float(x.sum())
    l2c = max(0.0, float(q.astype(np.float64) @ q) + float(c.astype(np.float64) @ c)
              - 2 * float(q.astype(np.float64) @ c))
    g_add = l2c if metric == 0 else -float(q.astype(np.float64) @ c)
    for p, v in enumerate(case["vector"]):
        blk, lane = divmod(p, 32)
        o = v / np.float32(np.linalg.norm(v.astype(np.float64))) if metric == 2 else v
        r = rotate((o - c).astype(np.float32))
        sb = 16 + blk * sign_bytes
        s = np.zeros(D, dtype=np.int64)
        for g in range(D // 4):
            byte = codes[sb + 16 * g + (lane % 16)]
            nib = byte & 15 if lane < 16 else byte >> 4
            for k in range(4):
                s[4 * g + k] = (nib >> k) & 1
        if not np.array_equal(s, (r > 0).astype(np.int64)):
            errors.append(f"vector {p}: sign bits")
        f1 = [struct.unpack_from("<f", codes, sb + 4 * D + 128 * t + 4 * lane)[0] for t in range(3)]
        w1 = factors(r, c_r, s - 0.5, metric)
        if not all(close(a, b) for a, b in zip(f1, w1)):
            errors.append(f"vector {p}: 1-bit factors {f1} vs {w1}")
        u, f, nbits = s, f1, 1
        if bits > 1:
            pb = 16 + nb * sign_bytes + blk * plane_bytes
            row = pb + lane * bits * D // 8
            u = np.zeros(D, dtype=np.int64)
            for bb in range(bits):
                for i in range(D):
                    u[i] |= ((codes[row + bb * D // 8 + i // 8] >> (i % 8)) & 1) << bb
            if not np.array_equal(u >> (bits - 1), s):
                errors.append(f"vector {p}: top plane != signs")
            f = [struct.unpack_from("<f", codes, pb + 32 * bits * D // 8 + 128 * t + 4 * lane)[0]
                 for t in range(3)]
            wf = factors(r, c_r, u - (2**bits - 1) / 2, metric)
            if not all(close(a, b) for a, b in zip(f, wf)):
                errors.append(f"vector {p}: {bits}-bit factors {f} vs {wf}")
            nbits = bits
        ip = float(u @ x)
        if bits == 1:
            ip = lut_ip(x, s)  # 1-bit estimates come from the FastScan table (§6.3)
        est = f[0] + g_add + f[1] * (ip - (2**nbits - 1) / 2 * S)
        if metric == 0:
            est = max(0.0, est)
        if not close(est, float(case["estimates"][p]), 1e-3):
            errors.append(f"vector {p}: estimate {est} vs {case['estimates'][p]}")


def check_partition(case):
    """imi / lsh cases of partitions.txt (§4.2, §4.3, §6.4)."""
    errors = []
    algo = {"imi": 1, "lsh": 2}[case["algorithm"]]
    metric = {"l2": 0, "ip": 1, "cosine": 2}[case["metric"]]
    bits, seed, dim = int(case["bits"]), int(case["seed"]), int(case["dim"])
    model = bytes.fromhex(case["model"])
    magic, ver, m, rot, b, alg, r1, r2, mdim, d, ncells, mseed, a0, a1 = struct.unpack_from(
        "<4sHBBBBBBIIIQII", model, 0)
    D, _ = hadamard(dim, seed)
    if (magic, ver, m, rot, b, alg, r1, r2, mdim, d, mseed) != (
            b"DVIM", 2, metric, 0, bits, algo, 0, 0, dim, D, seed):
        errors.append("model header")
    body = np.frombuffer(model, dtype="<f4", offset=40)
    q = case["query"].astype(np.float32)
    vecs = np.stack(case["vector"])
    if metric == 2:
        q = q / np.linalg.norm(q)
        vecs = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    if algo == 1:
        s, h1 = int(case["s"]), (dim + 1) // 2
        first, second = np.stack(case["first"]), np.stack(case["second"])
        if (a0, a1, ncells) != (s, h1, s * s) or len(model) != 40 + 4 * s * dim:
            errors.append("imi header/size")
        if not (np.array_equal(body[:s * h1].reshape(s, h1), first) and
                np.array_equal(body[s * h1:].reshape(s, dim - h1), second)):
            errors.append("imi codebooks")
        # Cell i * s + j: centre = first[i] ++ second[j].
        cents = np.array([np.concatenate([first[i], second[j]])
                          for i in range(s) for j in range(s)], dtype=np.float32)

        def sub(x, book):  # per sub-centroid distance (l2, cosine: L2^2; ip: -dot)
            x64, b64 = x.astype(np.float64), book.astype(np.float64)
            return -(b64 @ x64) if metric == 1 else ((b64 - x64) ** 2).sum(axis=1)

        def pair_dist(x):
            d1, d2 = sub(x[:h1], first), sub(x[h1:], second)
            return np.array([d1[i] + d2[j] for i in range(s) for j in range(s)])

        assign = [int(np.argmin(sub(v[:h1], first))) * s + int(np.argmin(sub(v[h1:], second)))
                  for v in vecs]
        key = pair_dist(q)
        keys = [(float(key[c]),) for c in range(s * s)]
    else:
        nb = int(case["planes"])
        planes, offset = np.stack(case["plane"]), case["offset"]
        centres = np.stack(case["centre"])
        cells = 1 << nb
        if (a0, a1, ncells) != (nb, 0, cells) or len(model) != 40 + 4 * (nb + 1 + cells) * dim:
            errors.append("lsh header/size")
        if not (np.array_equal(body[:nb * dim].reshape(nb, dim), planes) and
                np.array_equal(body[nb * dim:(nb + 1) * dim], offset) and
                np.array_equal(body[(nb + 1) * dim:].reshape(cells, dim), centres)):
            errors.append("lsh arrays")
        cents = centres

        def margins(x):
            p64 = planes.astype(np.float64)
            return p64 @ x.astype(np.float64) - p64 @ offset.astype(np.float64)

        def pattern(x):
            return sum(1 << i for i, mg in enumerate(margins(x)) if mg > 0)

        assign = [pattern(v) for v in vecs]
        qp, qm = pattern(q), margins(q)
        keys = []
        for c in range(cells):
            diff = c ^ qp
            keys.append((bin(diff).count("1"),
                         sum(abs(qm[i]) for i in range(nb) if (diff >> i) & 1)))
    if assign != [int(v) for v in case["assign"].split()]:
        errors.append(f"assignment {assign} vs {case['assign']}")
    if int(case["cell"]) != assign[0]:
        errors.append("cell is not the first vector's cell")
    probe = [int(v) for v in case["probe"].split()]
    if sorted(probe) != list(range(len(cents))):
        errors.append("probe order is not a permutation of the cells")
    # Non-decreasing key, compared lexicographically with a small slack for f32 sums (ties
    # may be ordered either way, §6.4).
    def le(x, y, tol=1e-6):
        for xi, yi in zip(x, y):
            if xi < yi - tol * max(1.0, abs(yi)):
                return True
            if xi > yi + tol * max(1.0, abs(yi)):
                return False
        return True

    for a, b in zip(probe, probe[1:]):
        if not le(keys[a], keys[b]):
            errors.append(f"probe order: cell {a} {keys[a]} before {b} {keys[b]}")
    check_codes(case, cents, errors)
    return errors


def check_pq(case):
    """pq4 cases of pq.txt (§8.2 model, §8.3 codes block, §8.4 estimates)."""
    errors = []
    algo = {"ivf": 0, "imi": 1, "lsh": 2}[case["algorithm"]]
    metric = {"l2": 0, "ip": 1, "cosine": 2}[case["metric"]]
    seed, dim, m = int(case["seed"]), int(case["dim"]), int(case["m"])
    cells, cell = int(case["cells"]), int(case["cell"])
    model = bytes.fromhex(case["model"])
    magic, ver, met, rot, bits, alg, quant, res, mdim, d, ncells, mseed = struct.unpack_from(
        "<4sHBBBBBBIIIQ", model, 0)
    if (magic, ver, met, rot, bits, alg, quant, res, mdim, d, ncells, mseed) != (
            b"DVIM", 3, metric, 0, 4, algo, 1, 0, dim, padded(dim), cells, seed):
        errors.append("model header")
    f32 = lambda off, n: np.frombuffer(model, dtype="<f4", count=n, offset=off)
    # Partition body (§4.1-§4.4) -> cell centres.
    if algo == 0:
        cents = f32(32, cells * dim).reshape(cells, dim)
        at = 32 + 4 * cells * dim
    else:
        a0, a1 = struct.unpack_from("<II", model, 32)
        if algo == 1:
            s, h1 = a0, (dim + 1) // 2
            if (s * s, a1) != (cells, h1):
                errors.append("imi header")
            first = f32(40, s * h1).reshape(s, h1)
            second = f32(40 + 4 * s * h1, s * (dim - h1)).reshape(s, dim - h1)
            cents = np.array([np.concatenate([first[i], second[j]])
                              for i in range(s) for j in range(s)], dtype=np.float32)
            at = 40 + 4 * s * dim
        else:
            b = a0
            if (1 << b, a1) != (cells, 0):
                errors.append("lsh header")
            cents = f32(40 + 4 * (b + 1) * dim, cells * dim).reshape(cells, dim)
            at = 40 + 4 * (b + 1 + cells) * dim
    # pq section (§8.2).
    pm, zero = struct.unpack_from("<II", model, at)
    w = dim // m
    if (pm, zero) != (m, 0) or dim % m or len(model) != at + 8 + 4 * 16 * dim:
        errors.append("pq section header/size")
    books = f32(at + 8, 16 * dim).reshape(m, 16, w)
    want_books = np.stack(case["codebook"]).reshape(m, 16, w)
    if not np.array_equal(books, want_books):
        errors.append("codebooks")
    # Codes block (§8.3).
    codes = bytes.fromhex(case["codes"])
    cmagic, cver, cq, cres, cm, count = struct.unpack_from("<4sHBBII", codes, 0)
    if (cmagic, cver, cq, cres, cm, count) != (b"DVIC", 2, 1, 0, m, len(case["vector"])):
        errors.append("codes header")
    G = (m + 15) // 16 * 16
    nb = (count + 31) // 32
    if len(codes) != 16 + nb * 16 * G:
        errors.append("codes size")

    def nibble(blk, s, lane):
        byte = codes[16 + blk * 16 * G + 16 * s + (lane % 16)]
        return byte & 15 if lane < 16 else byte >> 4

    for blk in range(nb):  # padding sub-spaces and unused lanes are zero
        for lane in range(32):
            used = blk * 32 + lane < count
            for s in range(G):
                if (not used or s >= m) and nibble(blk, s, lane) != 0:
                    errors.append(f"block {blk} lane {lane} sub-space {s}: padding not zero")
    c = cents[cell].astype(np.float32)
    q = case["query"].astype(np.float64)
    if metric == 2:
        q = q / np.linalg.norm(q)
    b64 = books.astype(np.float64)
    for p, v in enumerate(case["vector"]):
        blk, lane = divmod(p, 32)
        o = v.astype(np.float32)
        if metric == 2:
            o = (v / np.float32(np.linalg.norm(v.astype(np.float64)))).astype(np.float32)
        r = (o - c).astype(np.float32).astype(np.float64)
        rec = np.zeros(dim)
        for s in range(m):
            dist = ((b64[s] - r[s * w:(s + 1) * w]) ** 2).sum(axis=1)
            j = nibble(blk, s, lane)
            best = int(np.argmin(dist))  # first minimum = lowest j on exact ties
            if j != best and dist[j] > dist[best] + 1e-6 * max(1.0, dist[best]):
                errors.append(f"vector {p} sub-space {s}: code {j}, nearest is {best}")
            rec[s * w:(s + 1) * w] = b64[s, j]
        o_hat = c.astype(np.float64) + rec
        est = float(((q - o_hat) ** 2).sum()) if metric == 0 else -float(q @ o_hat)
        if not close(est, float(case["estimates"][p]), 1e-4):
            errors.append(f"vector {p}: estimate {est} vs {case['estimates'][p]}")
    return errors


def main():
    failed = 0
    for case in parse(HERE / "codes.txt"):
        errs = check(case)
        print(("ok    " if not errs else "FAIL  ") + case["name"])
        for e in errs:
            print("   ", e)
        failed += bool(errs)
    for case in parse(HERE / "partitions.txt"):
        errs = check_partition(case)
        print(("ok    " if not errs else "FAIL  ") + case["name"])
        for e in errs:
            print("   ", e)
        failed += bool(errs)
    for case in parse(HERE / "pq.txt"):
        errs = check_pq(case)
        print(("ok    " if not errs else "FAIL  ") + case["name"])
        for e in errs:
            print("   ", e)
        failed += bool(errs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
