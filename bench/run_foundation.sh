#!/usr/bin/env bash
# Foundation benchmarks: the store (memory://, file://: put/get/CAS) and object hashing
# (BLAKE3 vs OpenSSL SHA-256). Configures and builds the release preset, runs both
# benchmarks and prints a table of medians (bench/summarize.py).
#
#   bench/run_foundation.sh            # full run: 5 repetitions, medians (~10 minutes)
#   bench/run_foundation.sh --smoke    # a few seconds, for CI: proves the benches run
#
# Options: --out DIR (default build/release/bench-results), --filter REGEX (passed to
# --benchmark_filter). Environment: JOBS (build parallelism, default 2),
# DREAMDB_BENCH_DIR (where the file:// store lives; default $TMPDIR or /tmp).
set -euo pipefail

cd "$(dirname "$0")/.."
smoke=0
out=build/release/bench-results
filter=
while [[ $# -gt 0 ]]; do
  case "$1" in
    --smoke) smoke=1 ;;
    --out) out="$2"; shift ;;
    --filter) filter="$2"; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "run_foundation.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done

cmake --preset release >/dev/null
cmake --build --preset release -j"${JOBS:-2}" --target store_bench hash_bench

if [[ $smoke == 1 ]]; then
  # Google Benchmark 1.7 takes --benchmark_min_time in seconds as a plain number
  # (1.8+ also accepts "0.01s"; a plain number still works there).
  args=(--benchmark_min_time=0.01)
else
  args=(--benchmark_repetitions=5 --benchmark_report_aggregates_only=true)
fi
[[ -n $filter ]] && args+=("--benchmark_filter=$filter")

mkdir -p "$out"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (dirty)')"
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) cores)"
  echo "memory: $(free -g | awk '/^Mem:/ {print $2}') GiB"
  echo "kernel: $(uname -r)"
  echo "load average at start: $(cut -d" " -f1-3 /proc/loadavg) (other work on the machine inflates wall-clock times)"
  echo "compiler: $(c++ --version | head -1)"
  echo "bench dir: ${DREAMDB_BENCH_DIR:-${TMPDIR:-/tmp}} ($(df -T "${DREAMDB_BENCH_DIR:-${TMPDIR:-/tmp}}" | awk 'NR==2 {print $2}'))"
  echo "args: ${args[*]}"
} | tee "$out/machine.txt"

for bench in hash_bench store_bench; do
  echo "== $bench"
  "build/release/bench/$bench" "${args[@]}" \
    --benchmark_out="$out/$bench.json" --benchmark_out_format=json
done

python3 bench/summarize.py "$out/hash_bench.json" "$out/store_bench.json" | tee "$out/summary.md"
