#!/usr/bin/env bash
# Usage: scripts/build.sh [PRESET]   (PRESET: release (default), dev, tsan, fuzz)
#
# Installs dependencies (scripts/bootstrap.sh), configures and builds the CMake preset
# into build/PRESET, and installs the CLI as .venv/bin/dreamdb (a symlink into the build
# tree, so a rebuild updates it). Parallelism: DREAMDB_JOBS (default: number of cores).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

preset="${1:-release}"
jobs="${DREAMDB_JOBS:-$(nproc)}"

bash scripts/bootstrap.sh

echo "build: cmake --preset $preset"
cmake --preset "$preset" >/dev/null
echo "build: cmake --build --preset $preset -j$jobs"
cmake --build --preset "$preset" -j"$jobs"

cli="$PWD/build/$preset/cli/dreamdb"
if [[ ! -x "$cli" ]]; then
  echo "build: $cli was not built" >&2
  exit 1
fi
ln -sfn "$cli" .venv/bin/dreamdb
echo "build: installed .venv/bin/dreamdb -> build/$preset/cli/dreamdb"

echo "build: pip install ./python (the dreamdb package; builds the C++ core once more, cached)"
CMAKE_BUILD_PARALLEL_LEVEL="$jobs" .venv/bin/python -m pip install -q --no-build-isolation ./python
.venv/bin/python -c 'import dreamdb; print("build: python package", dreamdb.__file__)'

