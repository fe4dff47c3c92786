# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Writes self-contained Kubernetes JSON schemas for kubeconform, offline.

kubeconform ships no schemas and fetches them over the network by default. The PyPI
package kubernetes-validate (requirements-dev.txt) vendors the Kubernetes API's JSON
schemas for each minor version, but as "local" schemas whose $refs point into a shared
/api/_definitions.json. This script inlines those definitions into each requested kind's
schema, so kubeconform's file loader can use them:

    python tests/k8s/standalone_schemas.py OUT_DIR VERSION KIND-GROUP-VERSION...
    e.g. OUT_DIR 1.30.0 job-batch-v1 cronjob-batch-v1

writes OUT_DIR/vVERSION-standalone-strict/<kind>.json (kubeconform's default layout:
-schema-location 'OUT_DIR/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/
{{ .ResourceKind }}{{ .KindSuffix }}.json').
"""

from __future__ import annotations

import importlib.util
import json
import pathlib
import sys


def main() -> int:
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    out, version, kinds = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
    # Found, not imported: only its data files are needed (not its dependencies).
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:
        print("kubernetes-validate is not installed (pip install kubernetes-validate)",
              file=sys.stderr)
        return 1
    package = pathlib.Path(list(spec.submodule_search_locations)[0])
    src = package / "kubernetes-json-schema" / f"v{version}-local-strict"
    if not src.is_dir():
        have = sorted(p.name for p in src.parent.glob("v*-local-strict"))
        print(f"no schemas for Kubernetes {version} in kubernetes-validate (has {have})",
              file=sys.stderr)
        return 1
    prefix = "/api/_definitions.json#"
    defs_text = (src / "_definitions.json").read_text().replace(f'"{prefix}', '"#')
    defs = json.loads(defs_text)["$defs"]
    dest = out / f"v{version}-standalone-strict"
    dest.mkdir(parents=True, exist_ok=True)
    for kind in kinds:
        text = (src / f"{kind}.json").read_text().replace(f'"{prefix}', '"#')
        schema = json.loads(text)
        schema["$defs"] = defs
        (dest / f"{kind}.json").write_text(json.dumps(schema))
    print(f"wrote {len(kinds)} standalone schemas for Kubernetes {version} to {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
