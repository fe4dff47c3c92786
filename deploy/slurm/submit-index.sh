#!/usr/bin/env bash
# Submits a sharded index build: the train stage, an array of SHARDS shards after it
# (afterok), and the commit after every shard succeeded (afterok). Prints
# "TRAIN_JOB_ID ARRAY_JOB_ID COMMIT_JOB_ID JOB".
#
#   deploy/slurm/submit-index.sh STORE DATASET FIELD SHARDS [JOB] [-- SBATCH_ARGS... [-- BUILD_ARGS...]]
#
# JOB (the dreamdb job id) defaults to index-<date>-<random>. SBATCH_ARGS go to every
# sbatch call; BUILD_ARGS (after a second --) to the train stage (`dreamdb index build`
# options such as --algorithm imi --seed 7). REBUILD=1 rebuilds with the stored settings.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ $# -lt 4 ]]; then
  echo "usage: $0 STORE DATASET FIELD SHARDS [JOB] [-- SBATCH_ARGS... [-- BUILD_ARGS...]]" >&2
  exit 2
fi
store="$1" dataset="$2" field="$3" shards="$4"
shift 4
job="index-$(date -u +%Y%m%d%H%M%S)-$RANDOM"
if [[ $# -gt 0 && "$1" != "--" ]]; then
  job="$1"
  shift
fi
[[ "${1:-}" == "--" ]] && shift
sbatch_args=()
while [[ $# -gt 0 && "$1" != "--" ]]; do
  sbatch_args+=("$1")
  shift
done
[[ "${1:-}" == "--" ]] && shift
if ! [[ "$shards" =~ ^[1-9][0-9]*$ ]]; then
  echo "$0: SHARDS must be a positive integer, got '$shards'" >&2
  exit 2
fi
train="$(sbatch --parsable "${sbatch_args[@]}" "$here/index-train.sbatch" \
  "$store" "$dataset" "$field" "$job" "$shards" main -- "$@")"
train="${train%%;*}"
array="$(sbatch --parsable "${sbatch_args[@]}" --array="0-$((shards - 1))" \
  --dependency="afterok:$train" --kill-on-invalid-dep=yes "$here/index-array.sbatch" \
  "$store" "$dataset" "$field" "$job")"
array="${array%%;*}"
commit="$(sbatch --parsable "${sbatch_args[@]}" --dependency="afterok:$array" \
  --kill-on-invalid-dep=yes "$here/commit.sbatch" "$store" "$dataset" "$job")"
commit="${commit%%;*}"
echo "$train $array $commit $job"
