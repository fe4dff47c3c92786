#!/usr/bin/env bash
# A sharded ingest through a real Slurm: starts a single-node Slurm on 127.0.0.1
# (tests/slurm/cluster.sh), submits deploy/slurm/submit-ingest.sh (an sbatch --array of
# ingest shards and an afterok commit job) against a file:// store and against the local
# S3 server, waits, checks the result record by record, re-submits the array and the
# commit (nothing may change), runs a sharded verify through deploy/slurm/submit-verify.sh
# (an array of verify shards and an afterany combination), runs a sharded index build
# through deploy/slurm/submit-index.sh (train, afterok array, afterok commit) and checks it
# published the one-machine build's index object, and stops every daemon it started.
#
#   tests/slurm/run.sh [SHARDS]        (default 4; DREAMDB_BIN = the dreamdb executable)
#
# The S3 server: the one named by DREAMDB_S3_ENDPOINT/DREAMDB_S3_BUCKET (scripts/test.sh
# exports them), else one started here with scripts/s3_server.sh and stopped on exit.
# Needs root and Debian's slurm-wlm and munge (scripts/bootstrap.sh installs them).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root="$PWD"
shards="${1:-4}"
records="${SLURM_TEST_RECORDS:-3000}"
dreamdb="$(realpath "${DREAMDB_BIN:-$root/build/release/cli/dreamdb}")"
python="$root/.venv/bin/python"
[[ -x "$python" ]] || python=python3
if [[ ! -x "$dreamdb" ]]; then
  echo "slurm test: no dreamdb at $dreamdb (build it, or set DREAMDB_BIN)" >&2
  exit 1
fi

tmp="$(mktemp -d /tmp/dreamdb-slurm.XXXXXX)"
chmod 0755 "$tmp"
own_s3=""
cleanup() {
  local rc=$?
  bash tests/slurm/cluster.sh stop "$tmp/cluster" || true
  if [[ -n "$own_s3" ]]; then bash scripts/s3_server.sh stop "$own_s3" >/dev/null 2>&1 || true; fi
  if [[ $rc -ne 0 ]]; then
    echo "slurm test: FAILED; job output:" >&2
    tail -n 5 "$tmp"/out/* >&2 2>/dev/null || true
  fi
  rm -rf "$tmp"
  exit $rc
}
trap cleanup EXIT

t0=$(date +%s.%N)
bash tests/slurm/cluster.sh start "$tmp/cluster"
# shellcheck disable=SC1091
source "$tmp/cluster/env"
t1=$(date +%s.%N)

if [[ -z "${DREAMDB_S3_ENDPOINT:-}" ]]; then
  own_s3="$tmp/s3"
  bash scripts/s3_server.sh start "$own_s3"
  # shellcheck disable=SC1091
  source "$own_s3/env"
fi

mkdir -p "$tmp/out"
"$python" - "$tmp/in.jsonl" "$records" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write(json.dumps({"id": i, "text": "r%d-" % i + "y" * (i * 31 % 89)}) + "\n")
PY
printf '{"fields": [{"name": "id", "type": "int64"}, {"name": "text", "type": "string"}]}\n' \
  >"$tmp/schema.json"

# Waits for Slurm job $1 to end; fails unless it COMPLETED.
wait_job() {
  local id="$1" state=""
  for _ in $(seq 1 600); do
    state="$(scontrol show job "$id" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | head -1)"
    case "$state" in
    COMPLETED) return 0 ;;
    FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | DEADLINE | BOOT_FAIL)
      echo "slurm test: job $id ended $state" >&2
      return 1
      ;;
    esac
    sleep 0.2
  done
  echo "slurm test: job $id did not end (state '$state')" >&2
  return 1
}

# Every array task of job $1 ended COMPLETED.
array_completed() {
  local id="$1" states
  states="$(scontrol show job "$id" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | sort -u)"
  [[ "$states" == COMPLETED ]]
}

check_store() {
  local label="$1" store="$2"
  local d=(env DREAMDB="$dreamdb" "$dreamdb" --store "$store")
  "${d[@]}" init >/dev/null
  "${d[@]}" create d --schema "$tmp/schema.json" >/dev/null
  local s0 s1
  s0=$(date +%s.%N)
  read -r array commit job < <(DREAMDB="$dreamdb" bash deploy/slurm/submit-ingest.sh "$store" d \
    "$tmp/in.jsonl" "$shards" "slurm-$label" -- --output="$tmp/out/%x-%A_%a.out")
  wait_job "$commit"
  array_completed "$array"
  s1=$(date +%s.%N)
  # Record by record: every id once, with its text.
  "${d[@]}" cat d >"$tmp/cat-$label.jsonl"
  "$python" - "$tmp/in.jsonl" "$tmp/cat-$label.jsonl" <<'PY'
import json, sys
want = sorted((json.loads(l)["id"], json.loads(l)["text"]) for l in open(sys.argv[1]))
got = sorted((r["id"], r["text"]) for r in map(json.loads, open(sys.argv[2])))
if got != want:
    missing = sorted(set(want) - set(got))[:5]
    extra = len(got) - len(set(got))
    sys.exit(f"records differ: {len(got)} read, {len(want)} written, first missing {missing}, "
             f"{extra} duplicates")
PY
  local head
  head="$("${d[@]}" --json count d | "$python" -c 'import json,sys; print(json.load(sys.stdin)["manifest"])')"
  # Re-submit the same job: shards say "already done", the commit "already committed".
  read -r array2 commit2 _ < <(DREAMDB="$dreamdb" bash deploy/slurm/submit-ingest.sh "$store" d \
    "$tmp/in.jsonl" "$shards" "slurm-$label" -- --output="$tmp/out/%x-%A_%a.out")
  wait_job "$commit2"
  array_completed "$array2"
  grep -q "already done" "$tmp"/out/dreamdb-ingest-"$array2"_*.out
  grep -q "already committed" "$tmp/out/dreamdb-commit-$commit2"*.out
  local head2
  head2="$("${d[@]}" --json count d | "$python" -c 'import json,sys; print(json.load(sys.stdin)["manifest"])')"
  if [[ "$head" != "$head2" ]]; then
    echo "slurm test: re-running job slurm-$label moved main ($head -> $head2)" >&2
    return 1
  fi
  "${d[@]}" verify >/dev/null
  # A sharded verify through sbatch: an array of verify shards, then the combination.
  local vdir="$tmp/verify-$label"
  read -r varray vcombine < <(DREAMDB="$dreamdb" bash deploy/slurm/submit-verify.sh "$store" d \
    "$shards" "$vdir" -- --output="$tmp/out/%x-%A_%a.out")
  wait_job "$vcombine"
  array_completed "$varray"
  grep -q "ok: dataset 'd' is intact ($shards shards" "$tmp/out/dreamdb-verify-combine-$vcombine"*.out
  printf 'slurm test: %s: %d records in %d shards via sbatch --array + afterok commit: every record once (%.1f s); re-run changed nothing; sharded verify ok\n' \
    "$label" "$records" "$shards" "$(awk "BEGIN{print $s1 - $s0}")"
}

# A sharded index build through sbatch: the train job, an afterok array of shards, an
# afterok commit; the index must be the object a one-machine `index build` with the same
# options writes (on a branch at the same head), and searches must agree.
check_index() {
  local label="$1" store="$2"
  local d=(env DREAMDB="$dreamdb" "$dreamdb" --store "$store")
  "${d[@]}" create v --schema "$tmp/vschema.json" >/dev/null
  "${d[@]}" ingest v "$tmp/vec.jsonl" >/dev/null
  "${d[@]}" branch v one >/dev/null
  "${d[@]}" index build v emb --branch one --algorithm imi --seed 3 >/dev/null
  local s0 s1
  s0=$(date +%s.%N)
  read -r train array commit job < <(DREAMDB="$dreamdb" bash deploy/slurm/submit-index.sh \
    "$store" v emb "$shards" "slurm-index-$label" -- --output="$tmp/out/%x-%A_%a.out" \
    -- --algorithm imi --seed 3)
  wait_job "$commit"
  wait_job "$train"
  array_completed "$array"
  s1=$(date +%s.%N)
  local want got
  want="$("${d[@]}" --json index status v emb --at one --sample 0 | "$python" -c 'import json,sys; print(json.load(sys.stdin)["index"])')"
  got="$("${d[@]}" --json index status v emb --sample 0 | "$python" -c 'import json,sys; print(json.load(sys.stdin)["index"])')"
  if [[ "$want" != "$got" ]]; then
    echo "slurm test: $label: the sharded index $got differs from the one-machine build's $want" >&2
    return 1
  fi
  local q="0.5,-1,2,0.25,1,-0.5,0,1.5"
  if [[ "$("${d[@]}" --json search v emb --vector "$q" -k 10)" != \
    "$("${d[@]}" --json search v emb --vector "$q" -k 10 --at one)" ]]; then
    echo "slurm test: $label: searches through the sharded and the one-machine index differ" >&2
    return 1
  fi
  # Re-submitted: every stage says it was done, the branch does not move.
  local head head2
  head="$("${d[@]}" --json count v | "$python" -c 'import json,sys; print(json.load(sys.stdin)["manifest"])')"
  read -r train2 array2 commit2 _ < <(DREAMDB="$dreamdb" bash deploy/slurm/submit-index.sh \
    "$store" v emb "$shards" "slurm-index-$label" -- --output="$tmp/out/%x-%A_%a.out" \
    -- --algorithm imi --seed 3)
  wait_job "$commit2"
  grep -q "already done" "$tmp/out/dreamdb-index-train-$train2"*.out
  grep -q "already done" "$tmp"/out/dreamdb-index-"$array2"_*.out
  grep -q "already committed" "$tmp/out/dreamdb-commit-$commit2"*.out
  head2="$("${d[@]}" --json count v | "$python" -c 'import json,sys; print(json.load(sys.stdin)["manifest"])')"
  if [[ "$head" != "$head2" ]]; then
    echo "slurm test: re-running index job slurm-index-$label moved main ($head -> $head2)" >&2
    return 1
  fi
  printf 'slurm test: %s: sharded index build (train + %d shards + commit via sbatch afterok) equals the one-machine build (%.1f s); re-run changed nothing\n' \
    "$label" "$shards" "$(awk "BEGIN{print $s1 - $s0}")"
}

"$python" - "$tmp/vec.jsonl" <<'PY'
import json, random, sys
rng = random.Random(5)
centers = [[rng.gauss(0, 3) for _ in range(8)] for _ in range(10)]
with open(sys.argv[1], "w") as f:
    for i in range(2000):
        f.write(json.dumps({"emb": [x + rng.gauss(0, 0.5) for x in centers[i % 10]]}) + "\n")
PY
printf '{"fields": [{"name": "emb", "type": "embedding", "dim": 8}]}\n' >"$tmp/vschema.json"

check_store file "file://$tmp/store"
check_index file "file://$tmp/store"
s3_store="s3://$DREAMDB_S3_BUCKET/slurm-$$-$RANDOM?endpoint=$DREAMDB_S3_ENDPOINT"
check_store s3 "$s3_store"
check_index s3 "$s3_store"
t2=$(date +%s.%N)
printf 'slurm test: passed (cluster start %.1f s, total %.1f s)\n' "$(awk "BEGIN{print $t1 - $t0}")" \
  "$(awk "BEGIN{print $t2 - $t0}")"
