#!/usr/bin/env bash
# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
#
# Fuzz smoke test: configures and builds the `fuzz` preset (clang, libFuzzer + ASan +
# UBSan) and runs every fuzz target for a bounded time. Exits non-zero if a build fails
# or any target crashes, leaks, times out or aborts on a property violation.
#
# Usage: fuzz/smoke.sh [--long] [target ...]   (default: every target in fuzz/CMakeLists.txt)
#   --long  the on-demand run: each target to FUZZ_RUNS executions (default 10^7) with no
#           time limit, one after another, at nice 19; the figures (executions, seconds,
#           findings) are summarised in build/fuzz/long-summary.txt
# Env:   FUZZ_SECONDS   run time per target in seconds (default 20; smoke mode)
#        FUZZ_RUNS      executions per target in --long mode (default 10000000)
#        FUZZ_MAX_LEN   largest input libFuzzer generates (default 4096)
#        FUZZ_SKIP_BUILD=1  use the targets already in build/fuzz
#
# Seeds come from fuzz/corpus/<name>, where <name> is the target without "_fuzz"
# (cbor_decode) or, if that directory is absent, its first word (cbor). The seed
# directory is never written to: new inputs go to build/fuzz/corpus-work/<target>, crash
# reproducers to build/fuzz/artifacts/<target>/, logs to build/fuzz/logs/<target>.log.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
seconds=${FUZZ_SECONDS:-20}
max_len=${FUZZ_MAX_LEN:-4096}
long=0
if [[ "${1:-}" == --long ]]; then
  long=1
  shift
fi
runs=${FUZZ_RUNS:-10000000}

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

if [[ "${FUZZ_SKIP_BUILD:-0}" != 1 ]]; then
  echo "== configure + build (preset fuzz): ${targets[*]}"
  cmake --preset fuzz >/dev/null
  cmake --build --preset fuzz --target "${targets[@]}"
fi

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
  if ((long)); then
    limit=(-runs="$runs")
    echo "== $t: $runs runs, -max_len=$max_len, seeds ${seeds} ($(ls "$seeds" 2>/dev/null | wc -l) files)"
  else
    limit=(-max_total_time="$seconds")
    echo "== $t: ${seconds}s, -max_len=$max_len, seeds ${seeds} ($(ls "$seeds" 2>/dev/null | wc -l) files)"
  fi
  t0=$SECONDS
  set +e
  nice_cmd=()
  ((long)) && nice_cmd=(nice -n 19)
  "${nice_cmd[@]}" "$bin" "${limit[@]}" -max_len="$max_len" -timeout=25 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "${corpus[@]}" >"$log" 2>&1
  rc=$?
  set -e
  if ((long)); then
    execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -1)
    findings=$(find "$artifacts" -type f | wc -l)
    echo "$t executions=${execs:-?} seconds=$((SECONDS - t0)) exit=$rc findings=$findings" |
      tee -a "$out/long-summary.txt"
  fi
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
if ((long)); then
  echo "FUZZ LONG PASSED: ${targets[*]} ($runs runs each)"
else
  echo "FUZZ SMOKE PASSED: ${targets[*]} (${seconds}s each)"
fi
