#!/usr/bin/env bash
# dreamdb.ray on a real local Ray (on demand: Ray is ~0.8 GB and ~8 s to start; CI runs
# the same adapter without Ray in tests/python/test_ray_adapter.py).
#
#   tests/ray/run.sh            # after scripts/build.sh (this checkout's .venv)
#
# Creates build/ray-venv (--system-site-packages + tests/ray/requirements.txt) when
# missing or when the requirements changed; this checkout's DreamDB comes from .venv
# through a .pth file, so Ray's workers (the same interpreter) import it too. Ray binds
# 127.0.0.1 only and is shut down by the test.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/build/ray-venv"
req="$root/tests/ray/requirements.txt"
py=/usr/bin/python3
[[ -x $py ]] || py="$(command -v python3)"
if [[ ! -x "$venv/bin/python" ]] || ! cmp -s "$req" "$venv/.ray-requirements"; then
  echo "tests/ray: creating $venv from tests/ray/requirements.txt" >&2
  rm -rf "$venv"
  "$py" -m venv --system-site-packages "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
  cp "$req" "$venv/.ray-requirements"
fi
site="$("$root/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
ray_site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$site" >"$ray_site/dreamdb-checkout.pth"
"$venv/bin/python" -c 'import dreamdb.jobs, ray' || {
  echo "tests/ray: $venv cannot import dreamdb and ray (run scripts/build.sh; delete $venv to rebuild)" >&2
  exit 1
}
cd "$root"
# Ray's license, read from its metadata (scripts/licenses.py records it for .venv).
"$root/.venv/bin/python" scripts/licenses.py --python-path "$ray_site" >/dev/null
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/ray/test_ray.py "$@"
