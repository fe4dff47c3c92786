#!/usr/bin/env bash
# Usage: scripts/test.sh [--fast | --lint]
#
# The whole test suite, as CI runs it (.ci/run). Installs its own dependencies on
# Debian 12 (scripts/bootstrap.sh), then, stopping at the first failure:
#   1. format check   clang-format --dry-run -Werror on every *.cc/*.h we own;
#      licenses       scripts/licenses.py: every dependency's license allows shipping
#                     under Apache-2.0 (under a second)
#   2. dev preset     Debug + ASan + UBSan build, clang-tidy over src/ (scripts/lint.sh),
#                     `ctest --preset dev` (all labels; the `s3` ones against a SeaweedFS
#                     server on 127.0.0.1 that scripts/s3_server.sh starts and stops)
#   3. release preset build, install .venv/bin/dreamdb and the Python package,
#                     pytest tests/python tests/cli, then the README demo on file://
#                     and again on s3:// (the same server); tests/slurm/run.sh (a
#                     sharded ingest and index build through a single-node Slurm on 127.0.0.1, file://
#                     and s3://) and tests/k8s/validate.sh (deploy/k8s/ templates,
#                     kubeconform against offline schemas)
#      web            scripts/build_web.sh (npm ci + Vite build of web/), then the
#                     dashboard's browser tests (web/tests/e2e.mjs: playwright-core
#                     drives Debian's chromium headless against `dreamdb serve` on
#                     127.0.0.1, on its own small store and on the demo's store;
#                     screenshots in build/test-logs/screenshots)
#   4. soak, hostile  tests/soak (random kill -9 trials, many writers, GC beside writers,
#                     s3:// through a fault-injecting proxy (the same server), disk-full
#                     tmpfs, read-only mounts; DREAMDB_SOAK_TRIALS, default 36) and the hostile
#                     input corpus tests/hostile, both through the release CLI and SDK
#   5. fuzz smoke     fuzz/smoke.sh (FUZZ_SECONDS per target, default 20)
#   6. bench smoke    bench/run_foundation.sh, bench/run_dataset.sh,
#                     bench/commit_beside_ingest.sh, bench/gc_bench.py, bench/python/run.sh,
#                     bench/python/search_bench.py (DreamDB side), bench/ann/run.sh and
#                     bench/scale/scale.py, each with --smoke
# and prints a summary whose last line is "N passed, N failed" (ctest + pytest counts;
# a failed step that is not a test run, such as a build, counts as one failure).
#
#   --fast   only the dev build and `ctest -L fast` (under a minute after the build)
#   --lint   only clang-tidy (scripts/lint.sh) over src/, using the dev build's
#            compile_commands.json (the full run includes it; ~4 min on 2 cores)
#
# Environment: DREAMDB_JOBS (build parallelism, default nproc), DREAMDB_RACE_ROUNDS
# (CLI race test rounds, default 1000), FUZZ_SECONDS (default 20), DREAMDB_SOAK_TRIALS
# (default 36; 1000 on demand: see docs/reliability.md).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"

mode=full
case "${1:-}" in
  "") ;;
  --fast) mode=fast ;;
  --lint) mode=lint ;;
  -h | --help)
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit 0
    ;;
  *)
    echo "usage: scripts/test.sh [--fast | --lint]" >&2
    exit 2
    ;;
esac

jobs="${DREAMDB_JOBS:-$(nproc)}"
export DREAMDB_RACE_ROUNDS="${DREAMDB_RACE_ROUNDS:-1000}"
export FUZZ_SECONDS="${FUZZ_SECONDS:-20}"
export DREAMDB_SOAK_TRIALS="${DREAMDB_SOAK_TRIALS:-36}"
logs="$root/build/test-logs"
mkdir -p "$logs"

passed=0
failed=0
skipped=0
summary=()
current=""
started=$SECONDS

finish() {
  local rc=$?
  if [[ -n "$current" ]]; then
    summary+=("FAIL  $current")
    if ((failed == 0)); then failed=1; fi
  fi
  echo
  echo "==================== summary ($mode, $((SECONDS - started)) s) ===================="
  local line
  for line in "${summary[@]}"; do echo "$line"; done
  if ((rc != 0)); then
    echo "FAILED${current:+ at: $current} (logs in build/test-logs/)"
  fi
  if ((skipped > 0)); then
    echo "$passed passed, $failed failed, $skipped skipped"
  else
    echo "$passed passed, $failed failed"
  fi
}
trap finish EXIT

# The local S3 server for the `s3` tests (scripts/s3_server.sh); stopped on any exit.
s3_state="$root/build/s3-server"
stop_s3_server() {
  local d
  for d in "$s3_state" "$s3_state-moto"; do
    if [[ -f "$d/pid" ]]; then bash scripts/s3_server.sh stop "$d" || true; fi
  done
}
start_s3_server() {
  stop_s3_server
  bash scripts/s3_server.sh start "$s3_state"
}
# finish reads the exit status from $?: keep it across stopping the server.
trap 'rc=$?; stop_s3_server >/dev/null 2>&1; (exit "$rc"); finish' EXIT

# step [--junit FILE] NAME COMMAND...: runs COMMAND (with `set -e` in a subshell) with its
# output shown and kept in build/test-logs/; adds the counts of the JUnit report FILE if
# the command wrote one; on failure exits, and the EXIT trap reports NAME.
step() {
  local junit=""
  if [[ "$1" == --junit ]]; then
    junit="$2"
    shift 2
    rm -f "$junit"
  fi
  local name="$1"
  shift
  current="$name"
  echo
  echo "==== $name"
  local t0=$SECONDS rc
  set +e
  (
    set -e
    "$@"
  ) 2>&1 | tee "$logs/${name//[^A-Za-z0-9_.-]/_}.log"
  rc=${PIPESTATUS[0]}
  set -e
  if [[ -n "$junit" && -f "$junit" ]]; then count_junit "$junit" "$name"; fi
  if ((rc != 0)); then exit "$rc"; fi
  summary+=("ok    $name ($((SECONDS - t0)) s)")
  current=""
}

# Adds the counts of a JUnit XML report (ctest --output-junit, pytest --junitxml).
count_junit() {
  local counts
  counts="$(python3 - "$1" <<'PY'
import sys
import xml.etree.ElementTree as ET
p = f = s = 0
for case in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    tags = {child.tag for child in case}
    if tags & {"failure", "error"} or case.get("status") == "fail":
        f += 1
    elif "skipped" in tags or case.get("status") in ("notrun", "disabled"):
        s += 1
    else:
        p += 1
print(p, f, s)
PY
)" || return 0
  local p f s
  read -r p f s <<<"$counts"
  passed=$((passed + p))
  failed=$((failed + f))
  skipped=$((skipped + s))
  summary+=("      $2: $p passed, $f failed, $s skipped")
}

run_pytest() {
  local dirs=()
  local d
  for d in tests/python tests/cli; do
    if [[ -d "$d" ]]; then dirs+=("$d"); fi
  done
  local rc=0
  DREAMDB_BIN="$root/build/release/cli/dreamdb" DREAMDB_SOURCE_DIR="$root" DREAMDB_REQUIRE_PYTHON=1 \
    .venv/bin/python -m pytest -q -rfE -p no:cacheprovider --timeout=900 \
    --junitxml="$1" "${dirs[@]}" || rc=$?
  # Exit status 5 means no tests were collected: not a failure by itself.
  if ((rc == 5)); then rc=0; fi
  return "$rc"
}

# The soak harness or the hostile corpus: pytest over DIR with the release CLI and SDK.
run_pytest_dir() {
  DREAMDB_BIN="$root/build/release/cli/dreamdb" DREAMDB_SOURCE_DIR="$root" DREAMDB_REQUIRE_PYTHON=1 \
    nice -n 5 .venv/bin/python -m pytest -q -rfEsx -p no:cacheprovider --timeout=900 \
    --junitxml="$2" "$1"
}

format_check() {
  local files=()
  mapfile -t files < <(find include src cli bench fuzz tests python -type f \( -name '*.cc' -o -name '*.h' \) \
    2>/dev/null | sort)
  local bad=()
  local f
  for f in "${files[@]}"; do
    if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then bad+=("$f"); fi
  done
  echo "clang-format: ${#files[@]} files checked, ${#bad[@]} not formatted"
  if ((${#bad[@]} > 0)); then
    printf '  %s\n' "${bad[@]}"
    echo "fix with: clang-format -i ${bad[*]}"
    return 1
  fi
}

configure_and_build() {
  cmake --preset "$1" >/dev/null
  cmake --build --preset "$1" -j"$jobs"
}

install_cli() {
  ln -sfn "$root/build/release/cli/dreamdb" .venv/bin/dreamdb
  echo "installed .venv/bin/dreamdb -> build/release/cli/dreamdb"
}

step bootstrap bash scripts/bootstrap.sh

case "$mode" in
  fast)
    step "build dev" configure_and_build dev
    step --junit "$logs/ctest-dev-fast.xml" "ctest dev -L fast" \
      ctest --preset dev -L fast --output-junit "$logs/ctest-dev-fast.xml"
    ;;
  lint)
    step "configure dev" cmake --preset dev
    step lint bash scripts/lint.sh
    ;;
  full)
    step "format check" format_check
    step "licenses" .venv/bin/python scripts/licenses.py
    step "build dev" configure_and_build dev
    step "clang-tidy (curated checks, src/)" bash scripts/lint.sh src
    step "start S3 server (SeaweedFS)" start_s3_server
    # shellcheck disable=SC1091
    source "$s3_state/env"
    export DREAMDB_REQUIRE_S3=1
    step --junit "$logs/ctest-dev.xml" "ctest dev" \
      ctest --preset dev --output-junit "$logs/ctest-dev.xml"
    # The s3 tests again on moto, the AWS-like second server.
    step "start S3 server (moto)" bash scripts/s3_server.sh start "$s3_state-moto" moto
    step --junit "$logs/ctest-dev-s3-moto.xml" "ctest dev -L s3 (moto)" \
      bash -c "source '$s3_state-moto/env' && ctest --preset dev -L s3 --output-junit '$logs/ctest-dev-s3-moto.xml'"
    step "stop S3 server (moto)" bash scripts/s3_server.sh stop "$s3_state-moto"
    step "build release" configure_and_build release
    step "install cli" install_cli
    step "install python package" env CMAKE_BUILD_PARALLEL_LEVEL="$jobs" \
      .venv/bin/python -m pip install -q --no-build-isolation ./python
    step --junit "$logs/pytest.xml" pytest run_pytest "$logs/pytest.xml"
    step "demo (README quick start)" env DEMO_SKIP_BUILD=1 bash scripts/demo.sh
    step "demo on s3:// (SeaweedFS)" env DEMO_SKIP_BUILD=1 \
      DEMO_STORE="s3://$DREAMDB_S3_BUCKET/demo?endpoint=$DREAMDB_S3_ENDPOINT" bash scripts/demo.sh
    step "slurm: sharded ingest and index build via sbatch --array + afterok commit (file://, s3://)" \
      env DREAMDB_BIN="$root/build/release/cli/dreamdb" bash tests/slurm/run.sh 4
    # The soak's s3_fault operation and tests/soak/test_s3_faults.py use the same server.
    step --junit "$logs/soak.xml" "soak (kill -9, writers, GC, s3 faults, disk full, read-only; ${DREAMDB_SOAK_TRIALS} trials)" \
      run_pytest_dir tests/soak "$logs/soak.xml"
    step "stop S3 server" stop_s3_server
    step "k8s templates: kubeconform strict, offline schemas" bash tests/k8s/validate.sh
    step "build web dashboard" bash scripts/build_web.sh
    step --junit "$logs/web-e2e.xml" "browser tests (dashboard, headless chromium)" \
      env DREAMDB_BIN="$root/build/release/cli/dreamdb" PYTHON="$root/.venv/bin/python" \
      node web/tests/e2e.mjs --junit "$logs/web-e2e.xml" --screenshots "$logs/screenshots" \
      --demo-store "file://$root/build/demo-store"
    step --junit "$logs/hostile.xml" "hostile input corpus" \
      run_pytest_dir tests/hostile "$logs/hostile.xml"
    step "fuzz smoke FUZZ_SECONDS=${FUZZ_SECONDS}" bash fuzz/smoke.sh
    step "bench smoke (foundation)" bash bench/run_foundation.sh --smoke
    step "bench smoke (datasets)" bash bench/run_dataset.sh --smoke
    step "bench smoke (commits beside a bulk ingest)" bash bench/commit_beside_ingest.sh --smoke
    step "bench smoke (gc + compaction)" env DREAMDB_BIN="$root/build/release/cli/dreamdb" \
      .venv/bin/python bench/gc_bench.py --smoke
    step "bench smoke (python SDK vs peers)" bash bench/python/run.sh --smoke
    step "bench smoke (ds.search, DreamDB side)" \
      .venv/bin/python bench/python/search_bench.py --smoke --systems dreamdb
    step "bench smoke (vector search vs hnswlib, faiss)" bash bench/ann/run.sh --smoke
    step "bench smoke (scale: sharded ingest, commit, open, scan, index, gc)" \
      env DREAMDB_BIN="$root/build/release/cli/dreamdb" .venv/bin/python bench/scale/scale.py --smoke
    ;;
esac
