#!/usr/bin/env bash
# Python SDK benchmarks, side by side with the peers in one run (issue 5; targets in
# ../shared/design/TARGETS.md "Writes" and "Reads"): the same generated rows, the same
# machine, every measurement in a fresh process, systems alternating within each
# repetition, medians and DreamDB/peer ratios printed and written to JSON.
#
#   bench/python/run.sh                # full: 200k rows x (768-d f32 + int64 + float64),
#                                      #   10k images of 50 KiB, 3 reps (~10-15 min)
#   bench/python/run.sh --smoke        # tiny data, 1 rep, < 3 min (CI): proves it all runs
#   bench/python/run.sh --rows 100000  # other sizes; any run.py option passes through
#   bench/python/run.sh --only loaders,resume   # the training-loader workloads (f), (g)
#
# Workloads: (a) ingest: DreamDB append_many in 10k batches vs Lance write_dataset (one
# call over a reader of the batches, and one append per batch) vs Parquet write_table;
# (b) warm streaming scan into pyarrow, GB/s and peak RSS: DreamDB iter_batches and the
# dataset's __arrow_c_stream__ vs Lance to_batches vs Parquet iter_batches; (c) take of
# 1,000 random anchors, small fields and embeddings: DreamDB vs Lance, with bytes read
# per byte returned; (d) torch DataLoader (2 workers) over 50 KiB blobs: DreamDBDataset vs
# WebDataset tar shards holding the same bytes; (e) dreamdb 0.0.16 (PyPI) on what it
# supports, beside this DreamDB on the same smaller data set; (f) loaders: DataLoader
# samples/s with 0, 2 and 4 workers over the 50 KiB blobs and the 768-d embeddings:
# DreamDBDataset now (per sample, and batched=True: whole batches as tensors) and before
# the loader rewrite (--before-rev), unshuffled and shuffled,
# WebDataset and Lance's LanceDataset; (g) resume: time for a restarted job to make the
# dataset, seek to the middle of a --resume-rows epoch (default 10M) and yield a sample.
#
# Environments (created here when missing; the project's .venv is never modified):
#   .venv                    this DreamDB (scripts/test.sh installs it with pip install ./python)
#   build/peer-venv          --system-site-packages (Debian's torch 1.13 and numpy 1.24)
#                            + bench/python/requirements-peers.txt. pylance 14.0.2 has no
#                            numpy floor above 1.24 and runs with numpy 1.24.2 and our
#                            pyarrow pin 25.0.1, so Lance, Parquet and WebDataset share one
#                            venv; the DreamDB side runs from .venv and both read the same
#                            .npy files, so no numpy-2 venv is needed.
#   build/dreamdb-0016-venv  --system-site-packages + requirements-dreamdb0016.txt: the old
#                            package has the same import name as ours, so it gets its own.
# Each venv is rebuilt when its requirements file changes (a stamp file records it).
#
# Output: build/bench-python/{results,smoke}.{json,md}. Environment: DREAMDB_BENCH_DIR (where
# the stores and tar shards live; default build/bench-python/work; removed afterwards).
set -euo pipefail

cd "$(dirname "$0")/../.."
root="$PWD"
here="$root/bench/python"
out="$root/build/bench-python"
smoke=0
args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --smoke) smoke=1 ;;
    -h | --help) sed -n '2,40p' "$0"; exit 0 ;;
    *) args+=("$1") ;;
  esac
  shift
done

py=/usr/bin/python3
if [[ ! -x $py ]]; then py="$(command -v python3)"; fi

# make_venv DIR REQUIREMENTS: a --system-site-packages venv with REQUIREMENTS installed.
make_venv() {
  local dir="$1" req="$2" stamp="$1/.bench-requirements"
  if [[ -x "$dir/bin/python" && -f "$stamp" ]] && cmp -s "$req" "$stamp"; then return 0; fi
  echo "bench/python: creating $dir from ${req#"$root"/}" >&2
  rm -rf "$dir"
  "$py" -m venv --system-site-packages "$dir"
  "$dir/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
  cp "$req" "$stamp"
}

make_venv "$root/build/peer-venv" "$here/requirements-peers.txt"
make_venv "$root/build/dreamdb-0016-venv" "$here/requirements-dreamdb0016.txt"

# Fail loudly (never skip) when an environment cannot do its part.
"$root/.venv/bin/python" -c 'import dreamdb, dreamdb.torch, pyarrow, numpy, torch
assert hasattr(dreamdb.Dataset, "iter_batches"), "this is not the project dreamdb"' || {
  echo "bench/python: .venv lacks this DreamDB (pip install --no-build-isolation ./python) or torch" >&2
  exit 1
}
"$root/build/peer-venv/bin/python" -c 'import lance, pyarrow.parquet, webdataset, torch' || {
  echo "bench/python: build/peer-venv is broken (delete it to rebuild)" >&2
  exit 1
}
"$root/build/dreamdb-0016-venv/bin/python" -c '
import importlib.metadata as m, dreamdb, torch, pyarrow
assert m.version("dreamdb") == "0.0.16", m.version("dreamdb")' || {
  echo "bench/python: build/dreamdb-0016-venv is broken (delete it to rebuild)" >&2
  exit 1
}

work=()
if [[ -n "${DREAMDB_BENCH_DIR:-}" ]]; then work=(--work "$DREAMDB_BENCH_DIR/bench-python"); fi

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (dirty)')"
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) cores)"
  echo "memory: $(free -g | awk '/^Mem:/ {print $2}') GiB"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "peers: $("$root/build/peer-venv/bin/python" -m pip freeze 2>/dev/null | grep -iE '^(pylance|pyarrow|webdataset)==' | tr '\n' ' ')"
  echo "torch: $("$root/.venv/bin/python" -c 'import torch; print(torch.__version__)')"
  # .venv is shared: record which build of this DreamDB was measured.
  echo "dreamdb in .venv: $("$root/.venv/bin/python" -c '
import dreamdb, hashlib, pathlib
so = next(pathlib.Path(dreamdb.__file__).parent.glob("_core*.so"))
print(dreamdb.__version__, "_core sha256", hashlib.sha256(so.read_bytes()).hexdigest()[:16],
      "installed", __import__("time").strftime("%H:%M:%SZ", __import__("time").gmtime(so.stat().st_mtime)))')"
} >&2

if [[ $smoke == 1 ]]; then
  exec "$root/build/peer-venv/bin/python" "$here/run.py" --out "$out" --name smoke \
    --rows 4000 --batch 1000 --images 400 --old-rows 1000 --old-small-take 10 --reps 1 \
    --take-k 100 --take-reps 2 --loader-workers 0,2 --resume-rows 200000 \
    "${work[@]}" "${args[@]}"
fi
exec "$root/build/peer-venv/bin/python" "$here/run.py" --out "$out" "${work[@]}" "${args[@]}"
