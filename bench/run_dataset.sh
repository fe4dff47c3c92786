#!/usr/bin/env bash
# Dataset benchmarks (bench/dataset_bench.cc): small commits as the history grows, bulk
# ingest of 768-d embeddings + 2 scalars, streaming scan with peak RSS measured in a fresh
# process, and take (random and contiguous anchors). Configures and builds the release
# preset, runs the driver, and keeps its tables and JSON.
#
#   bench/run_dataset.sh             # full: 10^4 file:// + 10^5 memory:// commits,
#                                    #   200k records (snapshot at 100k), take x5 (~10 min)
#   bench/run_dataset.sh --smoke     # < 60 s once built, for CI: proves every part runs
#   bench/run_dataset.sh --large     # full, with 1M records (snapshots at 100k and 200k)
#   bench/run_dataset.sh --strace    # also: strace -c -f of 200 file:// small commits
#                                    #   (system calls per commit, fsync time)
#
# Options: --out DIR (default build/release/bench-results), and after `--` any option of
# dataset_bench (e.g. `-- --only commits --commits 100000`). Environment: JOBS (build
# parallelism, default 2), DREAMDB_BENCH_DIR (where the file:// stores live; default
# $TMPDIR or /tmp; removed afterwards).
set -euo pipefail

cd "$(dirname "$0")/.."
smoke=0
large=0
trace=0
out=build/release/bench-results
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --smoke) smoke=1 ;;
    --large) large=1 ;;
    --strace) trace=1 ;;
    --out) out="$2"; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "run_dataset.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done

cmake --preset release >/dev/null
cmake --build --preset release -j"${JOBS:-2}" --target dataset_bench

args=()
name=dataset
if [[ $smoke == 1 ]]; then
  args+=(--smoke)
  name=dataset-smoke
elif [[ $large == 1 ]]; then
  args+=(--records 1000000 --snapshots 100000,200000)
  name=dataset-large
fi
bench_dir="${DREAMDB_BENCH_DIR:-${TMPDIR:-/tmp}}"
args+=(--dir "$bench_dir")

mkdir -p "$out"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (dirty)')"
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) cores)"
  echo "memory: $(free -g | awk '/^Mem:/ {print $2}') GiB"
  echo "kernel: $(uname -r)"
  echo "load average at start: $(cut -d" " -f1-3 /proc/loadavg) (other work on the machine inflates wall-clock times)"
  echo "compiler: $(c++ --version | head -1)"
  echo "bench dir: $bench_dir ($(df -T "$bench_dir" | awk 'NR==2 {print $2}'))"
  echo "args: ${args[*]} ${extra[*]:-}"
} | tee "$out/$name-machine.txt"

build/release/bench/dataset_bench "${args[@]}" "${extra[@]}" --json "$out/$name.json" \
  | tee "$out/$name.md"

if [[ $trace == 1 ]]; then
  if ! command -v strace >/dev/null; then
    echo "run_dataset.sh: strace not installed; skipping --strace" >&2
    exit 0
  fi
  echo "== strace -c -f: 200 one-record commits on file:// (plus dataset creation)"
  strace -c -f -o "$out/$name-strace.txt" \
    build/release/bench/dataset_bench --only commits --no-memory --commits 200 --window 200 \
    --dir "$bench_dir" >/dev/null
  cat "$out/$name-strace.txt"
fi
