#!/usr/bin/env bash
# Usage: scripts/build_web.sh
#
# Builds the web dashboard (web/) into web/dist, which `dreamdb serve` serves (its default
# --web-root when run from this source tree). Needs node >= 18 and npm (scripts/bootstrap.sh
# installs Debian's nodejs and npm when they are missing). Installs exactly the versions of
# web/package-lock.json with `npm ci` (only when the lock changed since the last install),
# type-checks with tsc and bundles with Vite. Nothing is fetched at run time: the bundle
# has no CDN link and no web font.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../web"

for tool in node npm; do
  if ! command -v "$tool" >/dev/null; then
    echo "build_web: $tool not found; run scripts/bootstrap.sh (installs nodejs and npm)" >&2
    exit 1
  fi
done
major="$(node -p 'process.versions.node.split(".")[0]')"
if ((major < 18)); then
  echo "build_web: node $(node --version) is too old; the build needs node >= 18" >&2
  exit 1
fi

stamp=node_modules/.package-lock.sha256
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  echo "build_web: npm ci (node $(node --version), npm $(npm --version))"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" >"$stamp"
fi
echo "build_web: npm run build"
npm run --silent build
# The bundle must work offline: no absolute http(s) URL may be loaded by the page.
if grep -RInE '(src|href)="https?://|url\(https?://|@import +["'"'"']?https?://' dist >/dev/null; then
  echo "build_web: dist/ refers to a URL outside the server:" >&2
  grep -RInE '(src|href)="https?://|url\(https?://|@import +["'"'"']?https?://' dist >&2
  exit 1
fi
echo "build_web: built $(cd dist && find . -type f | wc -l) files in web/dist ($(du -sh dist | cut -f1))"
