#!/usr/bin/env bash
# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
#
# Fuzz smoke test: configures and builds the `fuzz` preset (clang, libFuzzer + ASan +
# UBSan) and runs every fuzz target for a bounded time. Exits non-zero if a build fails
# or any target crashes, leaks, times out or aborts on a property violation.
#
# Usage: fuzz/smoke.sh [target ...]      (default: every target in fuzz/CMakeLists.txt)
# Env:   FUZZ_SECONDS   run time per target in seconds (default 60)
#        FUZZ_MAX_LEN   largest input libFuzzer generates (default 4096)
#
# Seeds come from fuzz/corpus/<name>, where <name> is the target without "_fuzz"
# (cbor_decode) or, if that directory is absent, its first word (cbor). The seed
# directory is never written to: new inputs go to build/fuzz/corpus-work/<target>, crash
# reproducers to build/fuzz/artifacts/<target>/, logs to build/fuzz/logs/<target>.log.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
seconds=${FUZZ_SECONDS:-60}
max_len=${FUZZ_MAX_LEN:-4096}

# Default: every target registered with dreamdb_add_fuzzer() in fuzz/CMakeLists.txt. A
# fuzz/*_fuzz.cc without a registration is reported, not silently skipped.
registered=$(sed -nE 's/^[[:space:]]*dreamdb_add_fuzzer\([[:space:]]*NAME[[:space:]]+([A-Za-z0-9_]+).*/\1/p' \
  fuzz/CMakeLists.txt)
for src in fuzz/*_fuzz.cc; do
  name=$(basename "$src" .cc)
  grep -qx "$name" <<<"$registered" || echo "warning: $src has no dreamdb_add_fuzzer() in fuzz/CMakeLists.txt"
done
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  mapfile -t targets <<<"$registered"
fi

echo "== configure + build (preset fuzz): ${targets[*]}"
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz --target "${targets[@]}"

out=build/fuzz
failed=()
for t in "${targets[@]}"; do
  bin=$out/fuzz/$t
  name=${t%_fuzz}
  seeds=fuzz/corpus/$name
  [[ -d $seeds ]] || seeds=fuzz/corpus/${name%%_*}
  work=$out/corpus-work/$t
  artifacts=$out/artifacts/$t
  log=$out/logs/$t.log
  mkdir -p "$work" "$artifacts" "$(dirname "$log")"
  corpus=("$work")
  [[ -d $seeds ]] && corpus+=("$seeds")
  echo "== $t: ${seconds}s, -max_len=$max_len, seeds ${seeds} ($(ls "$seeds" 2>/dev/null | wc -l) files)"
  set +e
  "$bin" -max_total_time="$seconds" -max_len="$max_len" -timeout=25 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "${corpus[@]}" >"$log" 2>&1
  rc=$?
  set -e
  grep -E "^(#[0-9]+ +DONE|Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb)" "$log" || true
  if [[ $rc -ne 0 ]]; then
    echo "!! $t FAILED (exit $rc); last lines of $log:"
    tail -n 40 "$log"
    failed+=("$t")
  else
    echo "ok $t"
  fi
done

if [[ ${#failed[@]} -ne 0 ]]; then
  echo "FUZZ SMOKE FAILED: ${failed[*]}"
  exit 1
fi
echo "FUZZ SMOKE PASSED: ${targets[*]} (${seconds}s each)"
