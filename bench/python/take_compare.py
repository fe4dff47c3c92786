# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Random take, before and after a change, beside Lance, in one run.

    python3 bench/python/take_compare.py BENCH_DIR ANCHORS [--reps N]
        [--before-python P] [--after-python P] [--peer-python P]

BENCH_DIR holds three stores of the same rows (bench/python/run.sh --only take --keep
makes `dreamdb` and `lance.lance`; `dreamdb-before` is `w_dreamdb.py ingest` run with the
other package, so each package reads the format it writes). ANCHORS is the
take_anchors.npy of gen_data.py. For each repetition, field set (id+score, 768-d emb) and
handle mode (a new handle per take, one handle for every take) the three workers run in
turn (w_dreamdb.py take / w_peers.py take: 5 timed takes of 1,000 anchors each, after an
untimed one); prints a Markdown table of medians: rows/s, the ratios, and bytes read per
anchor (rchar of the worker process).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("bench_dir")
    ap.add_argument("anchors")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--before-python", default="/work/main/.venv/bin/python")
    ap.add_argument("--after-python", default=os.path.join(ROOT, ".venv", "bin", "python"))
    ap.add_argument("--peer-python",
                    default=os.path.join(ROOT, "build", "peer-venv", "bin", "python"))
    a = ap.parse_args()
    w_db = os.path.join(HERE, "w_dreamdb.py")
    systems = {
        "before": [a.before_python, w_db, "take", "--store",
                   os.path.join(a.bench_dir, "dreamdb-before")],
        "after": [a.after_python, w_db, "take", "--store", os.path.join(a.bench_dir, "dreamdb")],
        "lance": [a.peer_python, os.path.join(HERE, "w_peers.py"), "take", "--path",
                  os.path.join(a.bench_dir, "lance.lance")],
    }
    res = {}
    for rep in range(a.reps):
        for fields in ("small", "emb"):
            for same in ("", "--same-handle"):
                for name, cmd in systems.items():
                    c = cmd + ["--anchors", a.anchors, "--fields", fields] + ([same] if same else [])
                    out = subprocess.run(c, capture_output=True, text=True, cwd=ROOT)
                    if out.returncode != 0:
                        print(name, out.stderr[-3000:], file=sys.stderr)
                        return 1
                    for line in out.stdout.splitlines():
                        if line.startswith("RESULT "):
                            res.setdefault((fields, same, name), []).append(json.loads(line[7:]))
        print(f"rep {rep} done, load {os.getloadavg()}", file=sys.stderr)
    print("| Take | before rows/s | after rows/s | after ÷ before | Lance rows/s | after ÷ Lance "
          "| B/anchor before → after | Lance B/anchor |")
    print("|---|---|---|---|---|---|---|---|")
    for fields in ("small", "emb"):
        for same in ("", "--same-handle"):
            rows = {n: statistics.median(r["rows_per_s"] for r in res[(fields, same, n)])
                    for n in systems}
            per = {n: statistics.median(r["read_per_anchor"] for r in res[(fields, same, n)])
                   for n in systems}
            label = ("id+score" if fields == "small" else "emb") + (
                ", one handle" if same else ", fresh handle")
            print(f"| {label} | {rows['before']:,.0f} | {rows['after']:,.0f} | "
                  f"{rows['after'] / rows['before']:.2f} | {rows['lance']:,.0f} | "
                  f"{rows['after'] / rows['lance']:.2f} | {per['before']:,.0f} → "
                  f"{per['after']:,.0f} | {per['lance']:,.0f} |")
    print(f"load average at the end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
