#!/usr/bin/env bash
# Submits a sharded ingest: an array of SHARDS ingest tasks and a commit job that runs
# after all of them succeeded (afterok). Prints "ARRAY_JOB_ID COMMIT_JOB_ID JOB".
#
#   deploy/slurm/submit-ingest.sh STORE DATASET FILE SHARDS [JOB] [-- SBATCH_ARGS...]
#
# JOB (the dreamdb job id) defaults to ingest-<date>-<random>. SBATCH_ARGS go to both
# sbatch calls (e.g. --partition, --output, --time).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ $# -lt 4 ]]; then
  echo "usage: $0 STORE DATASET FILE SHARDS [JOB] [-- SBATCH_ARGS...]" >&2
  exit 2
fi
store="$1" dataset="$2" file="$3" shards="$4"
shift 4
job="ingest-$(date -u +%Y%m%d%H%M%S)-$RANDOM"
if [[ $# -gt 0 && "$1" != "--" ]]; then
  job="$1"
  shift
fi
[[ "${1:-}" == "--" ]] && shift
if ! [[ "$shards" =~ ^[1-9][0-9]*$ ]]; then
  echo "$0: SHARDS must be a positive integer, got '$shards'" >&2
  exit 2
fi
array="$(sbatch --parsable "$@" --array="0-$((shards - 1))" "$here/ingest-array.sbatch" \
  "$store" "$dataset" "$file" "$job")"
array="${array%%;*}"
commit="$(sbatch --parsable "$@" --dependency="afterok:$array" --kill-on-invalid-dep=yes \
  "$here/commit.sbatch" "$store" "$dataset" "$job")"
commit="${commit%%;*}"
echo "$array $commit $job"
