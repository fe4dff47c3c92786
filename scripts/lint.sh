#!/usr/bin/env bash
# Usage: scripts/lint.sh [DIR...]   (default: src)
#
# Runs clang-tidy (checks in .clang-tidy) over the .cc files under DIR, using the dev
# preset's compilation database (build/dev/compile_commands.json; configured if absent).
# Prints the findings per file and ends with "N passed, N failed" counting files.
# Parallelism: DREAMDB_JOBS (default: number of cores).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

dirs=("$@")
if ((${#dirs[@]} == 0)); then dirs=(src); fi
jobs="${DREAMDB_JOBS:-$(nproc)}"
db=build/dev/compile_commands.json
if [[ ! -f "$db" ]]; then cmake --preset dev >/dev/null; fi

# Only files the build knows how to compile can be checked.
mapfile -t known < <(python3 -c '
import json, os, sys
for e in json.load(open(sys.argv[1])):
    print(os.path.relpath(os.path.join(e["directory"], e["file"])))
' "$db" | sort -u)
mapfile -t files < <(find "${dirs[@]}" -type f -name '*.cc' | sort | comm -12 - <(printf '%s\n' "${known[@]}"))
if ((${#files[@]} == 0)); then
  echo "lint: no compiled .cc files under ${dirs[*]}"
  echo "0 passed, 0 failed"
  exit 0
fi

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
echo "lint: clang-tidy on ${#files[@]} files with $jobs jobs"
export out
printf '%s\n' "${files[@]}" | xargs -P "$jobs" -I{} bash -c '
  f="$1"
  log="$out/$(echo "$f" | tr / _).log"
  if clang-tidy -p build/dev --quiet "$f" >"$log" 2>&1; then
    touch "$log.ok"
  fi
' _ {}

passed=0
failed=0
for f in "${files[@]}"; do
  log="$out/$(echo "$f" | tr / _).log"
  if [[ -f "$log.ok" ]]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "---- $f"
    grep -v -E '^[0-9]+ warnings? (and [0-9]+ errors? )?generated|^Suppressed|^Use -header-filter|^Error while processing' "$log" || true
  fi
done
echo "lint: $passed files clean, $failed with findings"
echo "$passed passed, $failed failed"
((failed == 0))
