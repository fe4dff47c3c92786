#!/usr/bin/env bash
# Small-commit latency on file:// while a bulk ingest runs beside it in another process
# (issue 11: a commit must not wait for another writer's dirty pages; target p50 <= 2 ms).
#
#   bench/commit_beside_ingest.sh                  # 1,000 one-record commits, 200k-record bulk loop
#   bench/commit_beside_ingest.sh --smoke          # 100 commits, 20k-record bulk loop (CI-sized)
#   BIN=/path/to/dataset_bench bench/commit_beside_ingest.sh   # another build (before/after)
#   bench/commit_beside_ingest.sh --dd 2048   # the neighbour instead writes 2 GiB files with
#                                             # dd, never fsynced (dirty pages, as a writer
#                                             # that does not fsync leaves them)
#
# The bulk writer is dataset_bench's ingest (768-d float32 + int64 + float64, batches of
# 10,000, every commit durable) restarted in a loop until the commits are done. Prints
# dataset_bench's commit table; --json FILE keeps its JSON. Environment: DREAMDB_BENCH_DIR
# (where both stores live; default build/release/bench-beside; removed afterwards).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${BIN:-build/release/bench/dataset_bench}"
commits=1000
records=200000
json=()
dd_mib=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --smoke) commits=100; records=20000 ;;
    --commits) commits="$2"; shift ;;
    --records) records="$2"; shift ;;
    --json) json=(--json "$2"); shift ;;
    --dd) dd_mib="$2"; shift ;;
    -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "commit_beside_ingest.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[[ -x $bin ]] || { echo "commit_beside_ingest.sh: $bin not built" >&2; exit 2; }
dir="${DREAMDB_BENCH_DIR:-$PWD/build/release/bench-beside}"
rm -rf "$dir"
mkdir -p "$dir/bulk" "$dir/small"
# The bulk loop runs in its own process group so it can be stopped as a whole.
if [[ $dd_mib -gt 0 ]]; then
  setsid bash -c "while true; do dd if=/dev/zero of='$dir/bulk/big' bs=1M count=$dd_mib \
    status=none || exit 1; rm -f '$dir/bulk/big'; done" &
  what="dd of $dd_mib MiB files, not fsynced"
else
  setsid bash -c "while true; do '$bin' --only ingest --no-memory --reps 1 --records $records \
    --dir '$dir/bulk' >/dev/null 2>&1 || exit 1; done" &
  what="ingest of $records records a run"
fi
bulk=$!
trap 'kill -- -$bulk 2>/dev/null || true; wait $bulk 2>/dev/null || true; rm -rf "$dir"' EXIT
sleep 2  # let the bulk writer get going
echo "bulk writer beside: $what, in a loop (pid $bulk); load: $(cut -d' ' -f1-3 /proc/loadavg)"
"$bin" --only commits --no-memory --commits "$commits" --window "$commits" --dir "$dir/small" \
  "${json[@]}"
kill -0 "$bulk" 2>/dev/null || { echo "commit_beside_ingest.sh: the bulk writer stopped early" >&2; exit 1; }
