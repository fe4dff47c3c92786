#!/usr/bin/env bash
# Sharded ingest (spec/14-semantics.md §19) at scale: N records of JSON Lines (an int64
# id, a string, a float64) ingested by 1, 2 and 4 concurrent shard processes of
# `dreamdb ingest --job`, then `dreamdb commit`, on file:// and, when a local S3 server
# is configured (DREAMDB_S3_ENDPOINT/DREAMDB_S3_BUCKET, scripts/s3_server.sh), on s3://.
# Reports per run: ingest wall time and records/s, commit time, the peak RSS of the
# largest shard process and of the commit, open+count time afterwards, objects and bytes
# (file:// only), and checks the count.
#
#   bench/scale/sharded_ingest.sh [--records N] [--workers "1 2 4"] [--batch K]
#   bench/scale/sharded_ingest.sh --smoke      # 20,000 records, workers 1 2: a few s
#
# DREAMDB_BIN (default build/release/cli/dreamdb); DREAMDB_BENCH_DIR (default /tmp).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
records=1000000
workers="1 2 4"
batch=100000
while [[ $# -gt 0 ]]; do
  case "$1" in
  --records) records="$2"; shift ;;
  --workers) workers="$2"; shift ;;
  --batch) batch="$2"; shift ;;
  --smoke) records=20000; workers="1 2"; batch=5000 ;;
  *) echo "usage: $0 [--records N] [--workers LIST] [--batch K] [--smoke]" >&2; exit 2 ;;
  esac
  shift
done
dreamdb="$(realpath "${DREAMDB_BIN:-build/release/cli/dreamdb}")"
tmp="$(mktemp -d "${DREAMDB_BENCH_DIR:-/tmp}/dreamdb-scale.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

python3 - "$tmp/in.jsonl" "$records" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write(json.dumps({"id": i, "name": f"item-{i:09d}", "score": (i * 7919 % 1000) / 7.0}) + "\n")
PY
printf '{"fields": [{"name": "id", "type": "int64"}, {"name": "name", "type": "string"}, {"name": "score", "type": "float64"}]}\n' >"$tmp/schema.json"
size=$(stat -c %s "$tmp/in.jsonl")
echo "input: $records records, $((size / 1048576)) MiB of JSON Lines; batch $batch"
now() { date +%s.%N; }
secs() { awk "BEGIN{printf \"%.2f\", $2 - $1}"; }
# Peak RSS (KiB) of a command, from GNU time's %M.
rss_of() { sed -n 's/^rss=//p' "$1" | sort -n | tail -1; }

run() {
  local label="$1" store="$2" m="$3"
  local d=("$dreamdb" --store "$store")
  "${d[@]}" init >/dev/null
  "${d[@]}" create d --schema "$tmp/schema.json" >/dev/null
  local t0 t1 t2 t3 pids=()
  t0=$(now)
  for k in $(seq 0 $((m - 1))); do
    /usr/bin/time -f "rss=%M" -o "$tmp/rss-$k" "${d[@]}" ingest d "$tmp/in.jsonl" --job j \
      --shard "$k" --of "$m" --batch-size "$batch" >/dev/null &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  t1=$(now)
  /usr/bin/time -f "rss=%M" -o "$tmp/rss-commit" "${d[@]}" commit d --job j >/dev/null
  t2=$(now)
  local count
  count=$("${d[@]}" --json count d | sed -n 's/.*"count": \([0-9]*\).*/\1/p')
  t3=$(now)
  [[ "$count" == "$records" ]] || { echo "count $count != $records" >&2; exit 1; }
  local objs=""
  if [[ "$store" == file://* ]]; then
    local dir="${store#file://}"
    objs=", $(find "$dir" -type f -path '*objects*' | wc -l) objects, $(du -sm "$dir" | cut -f1) MiB"
  fi
  printf '%-7s workers=%d  ingest %6s s (%7.0f rec/s)  commit %5s s  open+count %4s s  peak RSS shard %d MiB, commit %d MiB%s\n' \
    "$label" "$m" "$(secs "$t0" "$t1")" "$(awk "BEGIN{print $records / ($t1 - $t0)}")" \
    "$(secs "$t1" "$t2")" "$(secs "$t2" "$t3")" "$(( $(cat "$tmp"/rss-[0-9]* | sed -n 's/^rss=//p' | sort -n | tail -1) / 1024 ))" \
    "$(( $(rss_of "$tmp/rss-commit") / 1024 ))" "$objs"
  rm -f "$tmp"/rss-*
}

for m in $workers; do
  run file "file://$tmp/store-$m" "$m"
  rm -rf "$tmp/store-$m"
done
if [[ -n "${DREAMDB_S3_ENDPOINT:-}" ]]; then
  for m in $workers; do
    run s3 "s3://$DREAMDB_S3_BUCKET/scale-$$-$m?endpoint=$DREAMDB_S3_ENDPOINT" "$m"
  done
fi
