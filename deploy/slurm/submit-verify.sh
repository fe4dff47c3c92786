#!/usr/bin/env bash
# Submits a sharded verify: an array of SHARDS verify tasks writing RESULTS_DIR/N.json
# and a combine job that runs after all of them ended (afterany: a shard that found a
# problem exits 7, and the combination must still report it). Prints
# "ARRAY_JOB_ID COMBINE_JOB_ID".
#
#   deploy/slurm/submit-verify.sh STORE DATASET SHARDS RESULTS_DIR [-- SBATCH_ARGS...]
#
# DATASET "" verifies every dataset. RESULTS_DIR must be on a file system every node
# sees, and empty (old results of another run would be combined too).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ $# -lt 4 ]]; then
  echo "usage: $0 STORE DATASET SHARDS RESULTS_DIR [-- SBATCH_ARGS...]" >&2
  exit 2
fi
store="$1" dataset="$2" shards="$3" dir="$4"
shift 4
[[ "${1:-}" == "--" ]] && shift
if ! [[ "$shards" =~ ^[1-9][0-9]*$ ]]; then
  echo "$0: SHARDS must be a positive integer, got '$shards'" >&2
  exit 2
fi
mkdir -p "$dir"
array="$(sbatch --parsable "$@" --array="0-$((shards - 1))" "$here/verify-array.sbatch" \
  "$store" "$dataset" "$dir")"
array="${array%%;*}"
combine="$(sbatch --parsable "$@" --dependency="afterany:$array" \
  "$here/verify-combine.sbatch" "$store" "$dataset" "$dir")"
combine="${combine%%;*}"
echo "$array $combine"
