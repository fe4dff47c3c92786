#!/usr/bin/env bash
# Vector search benchmark (issue 4): DreamDB's IVF and graph indexes (bench/ann/ann_bench.cc) against
# hnswlib and faiss (bench/ann/peers.py) on the same SYN data, single thread, recall@10 the
# ann-benchmarks way. Builds ann_bench in the release preset, creates the peers' own venv
# (build/ann-venv, from bench/ann/requirements.txt; not the project's .venv), generates
# the data and ground truth once (cached under build/ann-data/), runs both, and writes a
# side-by-side summary (recall vs QPS, memory, build time, ratios vs hnswlib).
#
#   bench/ann/run.sh --smoke          # 20k x 128, CI: proves every part runs (< 2 min)
#   bench/ann/run.sh                  # SYN-768, n = 200k (1000 queries)
#   bench/ann/run.sh --n 200000 --n 1000000
#
# Options: --n N (repeatable), --nq Q (queries, default 1000), --dim D (768), --seed S (1),
# --runs R (3), --out DIR (build/release/bench-results/ann), --skip-peers, --skip-dreamdb,
# --peer-algos LIST (peers.py --algos), --skip-graph, --graph-args "ARGS" (the graph run's
# ann_bench options, default "--bits 4 --rerank 1 --ef 12,16,20,24,32,48"; the graph is
# cached under build/ann-data/ per parameters, see ann_bench --graph-cache), and after `--`
# extra ann_bench options for the IVF run (e.g. `-- --bits 4,5 --nprobe 8,16,32`).
# Environment: JOBS (build parallelism, default 2), ANN_BENCH (use this ann_bench binary
# instead of building one).
set -euo pipefail

cd "$(dirname "$0")/../.."
smoke=0
sizes=()
nq=1000
dim=768
seed=1
runs=3
out=build/release/bench-results/ann
skip_peers=0
skip_dreamdb=0
peer_algos=""
skip_graph=0
graph_args="--bits 4 --rerank 1 --ef 12,16,20,24,32,48"
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --smoke) smoke=1 ;;
    --n) sizes+=("$2"); shift ;;
    --nq) nq="$2"; shift ;;
    --dim) dim="$2"; shift ;;
    --seed) seed="$2"; shift ;;
    --runs) runs="$2"; shift ;;
    --out) out="$2"; shift ;;
    --skip-peers) skip_peers=1 ;;
    --skip-dreamdb) skip_dreamdb=1 ;;
    --peer-algos) peer_algos="$2"; shift ;;
    --skip-graph) skip_graph=1 ;;
    --graph-args) graph_args="$2"; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done

peer_args=()
dreamdb_args=()
if [[ $smoke == 1 ]]; then
  sizes=(20000)
  dim=128
  nq=200
  runs=1
  peer_args+=(--ef 10,40 --nprobe 8,32)
  dreamdb_args+=(--nprobe 8,32 --algo ivf,brute)
  graph_args="--bits 4 --rerank 1 --ef 16,64 --degree 16 --build-list 32"
  out=${out%/}-smoke
fi
[[ ${#sizes[@]} -eq 0 ]] && sizes=(200000)
[[ -n $peer_algos ]] && peer_args+=(--algos "$peer_algos")

# 1. The driver.
if [[ -z ${ANN_BENCH:-} ]]; then
  cmake --preset release >/dev/null
  cmake --build --preset release -j"${JOBS:-2}" --target ann_bench
  ANN_BENCH=build/release/bench/ann_bench
fi

# 2. The peers' venv, rebuilt when requirements.txt changes.
venv=build/ann-venv
stamp=$venv/.requirements.sha256
want=$(sha256sum bench/ann/requirements.txt | cut -d' ' -f1)
if [[ $skip_peers == 0 ]] && [[ ! -x $venv/bin/python || ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  echo "run.sh: creating $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r bench/ann/requirements.txt
  echo "$want" >"$stamp"
fi

mkdir -p "$out"
results=()
for n in "${sizes[@]}"; do
  data=build/ann-data/syn${dim}-n${n}-q${nq}-s${seed}
  tag=syn${dim}-n${n}
  echo "run.sh: data $data (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  "$ANN_BENCH" --data "$data" --n "$n" --nq "$nq" --dim "$dim" --seed "$seed" --prepare
  if [[ $skip_peers == 0 ]]; then
    echo "run.sh: peers on $tag (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    "$venv/bin/python" bench/ann/peers.py --data "$data" --runs "$runs" "${peer_args[@]}" \
      | tee "$out/peers-$tag.jsonl"
  fi
  if [[ $skip_dreamdb == 0 ]]; then
    echo "run.sh: dreamdb on $tag (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    "$ANN_BENCH" --data "$data" --runs "$runs" "${dreamdb_args[@]}" "${extra[@]}" \
      | tee "$out/dreamdb-$tag.jsonl"
    if [[ $skip_graph == 0 ]]; then
      echo "run.sh: dreamdb graph on $tag (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
      # shellcheck disable=SC2086  # graph_args is a list of options
      "$ANN_BENCH" --data "$data" --runs "$runs" --algo graph $graph_args \
        --graph-cache "$data/graph" | tee -a "$out/dreamdb-$tag.jsonl"
    fi
  fi
  echo "run.sh: done $tag (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  # The summary covers both sides, also when one of them came from an earlier run
  # (--skip-peers / --skip-dreamdb).
  for f in "$out/peers-$tag.jsonl" "$out/dreamdb-$tag.jsonl"; do
    [[ -f $f ]] && results+=("$f")
  done
done

python3 bench/ann/summarize.py "${results[@]}" | tee "$out/summary.md"
echo "run.sh: summary in $out/summary.md" >&2
