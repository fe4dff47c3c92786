#!/usr/bin/env bash
# Installs everything building and testing DreamDB needs on Debian 12, then creates the
# Python virtual environment .venv with requirements-dev.txt.
#
# Idempotent and quick on re-runs: apt-get runs only when a package is missing, pip only
# when requirements-dev.txt changed since the last install. Works as root or, when sudo
# exists, as a normal user.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# slurm-wlm and munge: a single-node Slurm for tests/slurm (8 s, ~45 MB; no daemon
# starts on install). chromium: the dashboard's browser tests (web/tests).
PACKAGES=(
  chromium
  build-essential cmake ninja-build clang clang-format clang-tidy libclang-rt-14-dev
  librust-blake3-dev b3sum libgtest-dev libgmock-dev libbenchmark-dev libssl-dev
  libcurl4-openssl-dev libexpat1-dev nlohmann-json3-dev python3 python3-venv python3-pip
  python3-dev python3-numpy python3-torch git ca-certificates fortunes
  slurm-wlm munge
  libcpp-httplib-dev
)
# The web dashboard (web/, scripts/build_web.sh) needs node >= 18 and npm: Debian's nodejs
# and npm when no node is installed (a node from elsewhere, with its own npm, is kept).
# chromium (above) runs the dashboard's browser tests headless (web/tests).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  PACKAGES+=(nodejs npm)
fi

log() { echo "bootstrap: $*"; }

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} > 0)); then
  sudo=()
  if [[ "$(id -u)" -ne 0 ]]; then
    if ! command -v sudo >/dev/null; then
      echo "bootstrap: missing packages (${missing[*]}) and not root; install them or run as root" >&2
      exit 1
    fi
    sudo=(sudo)
  fi
  log "installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
else
  log "system packages present"
fi

# The virtual environment: the first python3 on PATH, falling back to Debian's
# /usr/bin/python3 when that one cannot make a venv (e.g. a python3 without ensurepip).
# The venv is made from Debian's /usr/bin/python3 with --system-site-packages so that
# Debian's PyTorch (python3-torch, CPU) and NumPy are importable: PyPI's torch wheel pulls
# several GB of CUDA packages (python/README.md).
venv_ok() {
  [[ -x .venv/bin/python ]] &&
    grep -q '^include-system-site-packages = true' .venv/pyvenv.cfg 2>/dev/null &&
    .venv/bin/python -c 'import torch, numpy' 2>/dev/null
}
if ! venv_ok; then
  rm -rf .venv
  if ! /usr/bin/python3 -m venv --system-site-packages .venv || ! venv_ok; then
    echo "bootstrap: could not create .venv from /usr/bin/python3 with torch importable" >&2
    exit 1
  fi
  log "created .venv from /usr/bin/python3 ($(.venv/bin/python --version 2>&1), system torch)"
fi

# pip only when requirements-dev.txt changed since the last successful install.
stamp=.venv/.requirements-dev.sha256
want="$(sha256sum requirements-dev.txt | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  log "pip install -r requirements-dev.txt"
  .venv/bin/python -m pip install -q -r requirements-dev.txt
  echo "$want" >"$stamp"
else
  log ".venv up to date"
fi

# Packages installed without their declared dependencies (why: requirements-nodeps.txt).
stamp=.venv/.requirements-nodeps.sha256
want="$(sha256sum requirements-nodeps.txt | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  log "pip install --no-deps -r requirements-nodeps.txt"
  .venv/bin/python -m pip install -q --no-deps -r requirements-nodeps.txt
  echo "$want" >"$stamp"
fi
