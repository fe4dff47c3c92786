#!/usr/bin/env bash
# Usage: tests/slurm/cluster.sh start DIR | stop DIR
#
# A single-node Slurm for tests, all of it under DIR (made fresh by `start`): munged on
# its own socket and key, slurmctld and slurmd on 127.0.0.1 on free ports, a generated
# slurm.conf, state, spool, pid and log files. `start` waits until the node is idle and
# writes DIR/env (export SLURM_CONF=...). `stop` stops every daemon it started, by the
# pids in DIR, and nothing else. Needs Debian's slurm-wlm and munge (scripts/bootstrap.sh)
# and root (slurmd runs jobs as their submitter).
set -euo pipefail

cmd="${1:-}"
dir="${2:-}"
if [[ -z "$cmd" || -z "$dir" ]]; then
  echo "usage: $0 start|stop DIR" >&2
  exit 2
fi

stop_pidfile() {
  local f="$1" pid
  [[ -f "$f" ]] || return 0
  pid="$(cat "$f" 2>/dev/null || true)"
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

case "$cmd" in
stop)
  stop_pidfile "$dir/slurmd.pid"
  stop_pidfile "$dir/slurmctld.pid"
  stop_pidfile "$dir/munge/munged.pid"
  ;;
start)
  for tool in munged mungekey slurmctld slurmd sbatch scontrol; do
    if ! command -v "$tool" >/dev/null && [[ ! -x "/usr/sbin/$tool" ]]; then
      echo "slurm cluster: $tool not found (install slurm-wlm and munge: scripts/bootstrap.sh)" >&2
      exit 1
    fi
  done
  if [[ "$(id -u)" -ne 0 ]]; then
    echo "slurm cluster: needs root (slurmd runs jobs as the user who submits them)" >&2
    exit 1
  fi
  PATH="$PATH:/usr/sbin"
  rm -rf "$dir"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  chmod 0755 "$dir"
  # munged refuses group/world-writable directories and keys not owned by its user, and
  # its socket directory must be searchable by every user.
  install -d -m 0711 -o munge -g munge "$dir/munge"
  runuser -u munge -- mungekey --create --keyfile="$dir/munge/munge.key" --bits=1024
  runuser -u munge -- munged --socket="$dir/munge/munge.socket" \
    --key-file="$dir/munge/munge.key" --pid-file="$dir/munge/munged.pid" \
    --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed"
  mkdir -p "$dir/state" "$dir/spool"
  ports="$(python3 -c 'import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))')"
  read -r ctld_port slurmd_port <<<"$ports"
  host="$(hostname -s)"
  cpus="$(nproc)"
  cat >"$dir/slurm.conf" <<CONF
ClusterName=dreamdbtest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
  export SLURM_CONF="$dir/slurm.conf"
  echo "export SLURM_CONF=$dir/slurm.conf" >"$dir/env"
  slurmctld -i
  slurmd
  for _ in $(seq 1 150); do
    state="$(sinfo -h -o %t 2>/dev/null || true)"
    if [[ "$state" == idle* ]]; then
      echo "slurm cluster: node $host idle (slurmctld 127.0.0.1:$ctld_port, slurmd :$slurmd_port)"
      exit 0
    fi
    sleep 0.2
  done
  echo "slurm cluster: the node did not become idle (state '${state:-none}'); logs:" >&2
  tail -n 20 "$dir/slurmctld.log" "$dir/slurmd.log" "$dir/munge/munged.log" >&2 || true
  exit 1
  ;;
*)
  echo "usage: $0 start|stop DIR" >&2
  exit 2
  ;;
esac
