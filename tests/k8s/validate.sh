#!/usr/bin/env bash
# Validates the Kubernetes templates in deploy/k8s/ offline, since no cluster runs here:
#   1. kubeconform (from the Go module proxy, `go install`) in strict mode (unknown fields
#      are errors) against the Kubernetes API's JSON schemas for 1.30 and 1.37, which the
#      PyPI package kubernetes-validate vendors (made self-contained by
#      standalone_schemas.py; kubeconform ships none);
#   2. negative controls: two broken copies (an unknown field, a string count) must fail,
#      so a validator that accepts everything cannot pass;
#   3. DreamDB's own rules: the Indexed Job's completions equals its DREAMDB_SHARD_COUNT,
#      and the commit Job names the same DREAMDB_JOB, store and dataset as the ingest Job;
#      the index build's train Job plans as many shards as its Indexed Job runs.
# Tools are cached in ${DREAMDB_TOOLS_CACHE:-~/.cache/dreamdb-tools} (first run: ~60 s
# to build kubeconform, ~10 s to fetch the schemas; later runs: ~1 s).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root="$PWD"
kubeconform_version=v0.7.0
schemas_version=1.37.0
cache="${DREAMDB_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dreamdb-tools}"
python="$root/.venv/bin/python"
[[ -x "$python" ]] || python=python3

kubeconform="$cache/kubeconform-$kubeconform_version/kubeconform"
if [[ ! -x "$kubeconform" ]]; then
  go="$(command -v go || true)"
  [[ -z "$go" && -x /usr/local/go/bin/go ]] && go=/usr/local/go/bin/go
  if [[ -z "$go" ]]; then
    echo "k8s validate: kubeconform is not cached and no Go toolchain is on PATH" >&2
    exit 1
  fi
  echo "k8s validate: building kubeconform $kubeconform_version (go install)"
  GOBIN="$(dirname "$kubeconform")" GOFLAGS=-mod=mod "$go" install \
    "github.com/yannh/kubeconform/cmd/kubeconform@$kubeconform_version"
fi

site="$cache/kubernetes-validate-$schemas_version"
if [[ ! -f "$site/.complete" ]]; then
  echo "k8s validate: fetching kubernetes-validate $schemas_version (the schemas)"
  rm -rf "$site"
  "$python" -m pip install -q --no-deps --target "$site" "kubernetes-validate==$schemas_version"
  touch "$site/.complete"
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
kinds=(job-batch-v1 cronjob-batch-v1)
versions=(1.30.0 1.37.0)
for v in "${versions[@]}"; do
  PYTHONPATH="$site" "$python" tests/k8s/standalone_schemas.py "$tmp/schemas" "$v" "${kinds[@]}" >/dev/null
done
location="$tmp/schemas/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json"
validate() {
  local v="$1"
  shift
  "$kubeconform" -strict -summary -kubernetes-version "$v" -schema-location "$location" "$@"
}

for v in "${versions[@]}"; do
  echo "k8s validate: Kubernetes $v"
  validate "$v" deploy/k8s/*.yaml
done

# Negative controls.
sed 's/completionMode: Indexed/completionMod: Indexed/' deploy/k8s/ingest-job.yaml >"$tmp/unknown-field.yaml"
sed 's/completions: 16/completions: "16"/' deploy/k8s/ingest-job.yaml >"$tmp/string-count.yaml"
for bad in "$tmp/unknown-field.yaml" "$tmp/string-count.yaml"; do
  if validate "${versions[0]}" "$bad" >/dev/null 2>&1; then
    echo "k8s validate: the broken copy $(basename "$bad") passed; the validator checks nothing" >&2
    exit 1
  fi
done
echo "k8s validate: broken copies refused (unknown field, string count)"

# DreamDB's own consistency rules.
"$python" - deploy/k8s/ingest-job.yaml deploy/k8s/commit-job.yaml <<'PY'
import re, sys
ingest, commit = (open(p).read() for p in sys.argv[1:3])
def env(text, name):
    m = re.search(r"- name: %s\n\s+value: (\S+)" % name, text)
    if not m:
        sys.exit(f"k8s validate: {name} not set")
    return m.group(1).strip('"')
completions = int(re.search(r"^\s+completions: (\d+)$", ingest, re.M).group(1))
if "completionMode: Indexed" not in ingest:
    sys.exit("k8s validate: the ingest Job is not an Indexed Job")
if int(env(ingest, "DREAMDB_SHARD_COUNT")) != completions:
    sys.exit("k8s validate: DREAMDB_SHARD_COUNT differs from completions")
for name in ("DREAMDB_JOB", "DREAMDB_STORE", "DREAMDB_DATASET"):
    if env(ingest, name) != env(commit, name):
        sys.exit(f"k8s validate: {name} differs between the ingest and the commit Job")
print(f"k8s validate: Indexed Job of {completions} shards consistent with its commit Job")
PY
"$python" - deploy/k8s/verify-job.yaml deploy/k8s/verify-combine-job.yaml <<'PY'
import re, sys
verify, combine = (open(p).read() for p in sys.argv[1:3])
def env(text, name):
    m = re.search(r"- name: %s\n\s+value: (\S+)" % name, text)
    if not m:
        sys.exit(f"k8s validate: {name} not set")
    return m.group(1).strip('"')
completions = int(re.search(r"^\s+completions: (\d+)$", verify, re.M).group(1))
if "completionMode: Indexed" not in verify:
    sys.exit("k8s validate: the verify Job is not an Indexed Job")
if int(env(verify, "DREAMDB_SHARD_COUNT")) != completions:
    sys.exit("k8s validate: the verify Job's DREAMDB_SHARD_COUNT differs from completions")
if '--of "$DREAMDB_SHARD_COUNT"' not in verify:
    sys.exit("k8s validate: the verify shards do not pass --of (they would not shard)")
for name in ("DREAMDB_STORE", "DREAMDB_DATASET"):
    if env(verify, name) != env(combine, name):
        sys.exit(f"k8s validate: {name} differs between the verify and the combine Job")
claim = lambda t: re.findall(r"claimName: (\S+)", t)
if claim(verify) != claim(combine):
    sys.exit("k8s validate: the verify and combine Jobs mount different result volumes")
print(f"k8s validate: verify Indexed Job of {completions} shards consistent with its combine Job")
PY
"$python" - deploy/k8s/index-train-job.yaml deploy/k8s/index-build-job.yaml <<'PY'
import re, sys
train, build = (open(p).read() for p in sys.argv[1:3])
def env(text, name):
    m = re.search(r"- name: %s\n\s+value: (\S+)" % name, text)
    if not m:
        sys.exit(f"k8s validate: {name} not set")
    return m.group(1).strip('"')
completions = int(re.search(r"^\s+completions: (\d+)$", build, re.M).group(1))
if "completionMode: Indexed" not in build:
    sys.exit("k8s validate: the index build Job is not an Indexed Job")
if "- --train" not in train or "- --of=$(DREAMDB_SHARD_COUNT)" not in train:
    sys.exit("k8s validate: the index train Job does not run --train --of DREAMDB_SHARD_COUNT")
for text in (train, build):
    if int(env(text, "DREAMDB_SHARD_COUNT")) != completions:
        sys.exit("k8s validate: an index Job's DREAMDB_SHARD_COUNT differs from completions")
for name in ("DREAMDB_JOB", "DREAMDB_STORE", "DREAMDB_DATASET", "DREAMDB_FIELD"):
    if env(train, name) != env(build, name):
        sys.exit(f"k8s validate: {name} differs between the index train and build Jobs")
print(f"k8s validate: index build Indexed Job of {completions} shards consistent with its train Job")
PY
echo "k8s validate: passed"
