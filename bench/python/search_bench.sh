#!/usr/bin/env bash
# Vector search through the product against hnswlib and Lance, in one process
# (bench/python/search_bench.py; results in bench/RESULTS.md "Search through the product").
#
#   bench/python/search_bench.sh                    # 100k x 128 Gaussian, 300 queries
#   bench/python/search_bench.sh --n 200000 --dim 768
#   bench/python/search_bench.sh --smoke            # 5k x 32, 50 queries: proves it runs
#
# Environment: build/search-venv (created here when missing, --system-site-packages):
# bench/python/requirements-peers.txt (pylance, pyarrow) and hnswlib 0.8.0 from PyPI;
# DreamDB comes from the project's .venv (scripts/build.sh installs it), whose
# site-packages a .pth file appends to the venv's path. The .venv is never modified.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=build/search-venv
stamp="$venv/.stamp"
want="$(cat bench/python/requirements-peers.txt; echo hnswlib==0.8.0)"
if [[ ! -x $venv/bin/python || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  rm -rf "$venv"
  /usr/bin/python3 -m venv --system-site-packages "$venv"
  "$venv/bin/pip" install -q -r bench/python/requirements-peers.txt hnswlib==0.8.0
  printf '%s' "$want" > "$stamp"
fi
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
own=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$site" > "$own/dreamdb-dev.pth"
exec "$venv/bin/python" bench/python/search_bench.py "$@"
