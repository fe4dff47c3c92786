#!/usr/bin/env bash
# Usage: scripts/demo.sh
#   DEMO_SKIP_BUILD=1 DREAMDB_BIN=path/to/dreamdb scripts/demo.sh   # demo an existing build
#
# The end-to-end demo, from nothing: installs dependencies (Debian 12), builds the release
# preset and the web dashboard, installs .venv/bin/dreamdb, then walks through DreamDB on a
# fresh file:// store (build/demo-store, kept for the dashboard), checking every result.
# Exits non-zero on any failure.
#
# Each part of the demo is one function `demo_<name>` listed in DEMO_SECTIONS; a new
# workflow (create, ingest, snapshot, branch, query, PyTorch) is one more function.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"

DEMO_SECTIONS=(objects refs compare_and_swap snapshots listing dataset_ingest dataset_branch dataset_train dataset_compare dataset_search dataset_merge dataset_sweep dataset_verify dataset_gc)

if [[ "${DEMO_SKIP_BUILD:-0}" != 1 ]]; then
  bash scripts/build.sh release
  bash scripts/build_web.sh  # the dashboard that the last line's `dreamdb serve` opens
fi
DREAMDB_BIN="${DREAMDB_BIN:-$root/.venv/bin/dreamdb}"
# One ordered stream: commands are echoed on stderr while results are captured from stdout.
exec 2>&1

work="$(mktemp -d -t dreamdb-demo.XXXXXX)"
trap 'rm -rf "$work"' EXIT
# DEMO_STORE runs the demo on another store (an s3:// prefix, for example). The default
# store outlives the demo (build/demo-store, emptied first) so that the dashboard can be
# opened on it afterwards (the last line printed).
if [[ -z "${DEMO_STORE:-}" ]]; then
  rm -rf "$root/build/demo-store"
  mkdir -p "$root/build"
fi
STORE="${DEMO_STORE:-file://$root/build/demo-store}"

# ---- helpers ----

section() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() {
  echo "demo: FAILED: $*" >&2
  exit 1
}
# Shows a command the way a user would type it, then runs it.
dreamdb() {
  echo "\$ dreamdb --store $STORE $*" >&2
  "$DREAMDB_BIN" --store "$STORE" "$@"
}
# expect_exit CODE COMMAND...: runs a dreamdb command that must fail with exit CODE.
expect_exit() {
  local want="$1" rc=0
  shift
  dreamdb "$@" || rc=$?
  ((rc == want)) || die "expected exit $want from 'dreamdb $*', got $rc"
  echo "(exit $rc, as expected)" >&2
}
is_id() { [[ "$1" =~ ^b[a-z2-7]{55}$ ]]; }

# ---- sections ----

demo_objects() {
  section "Objects: immutable bytes addressed by their BLAKE3 hash"
  printf 'hello, dreamdb\n' >"$work/hello.txt"
  HELLO="$(dreamdb object put "$work/hello.txt")"
  is_id "$HELLO" || die "object put printed '$HELLO', not an object id"
  echo "$HELLO"
  # The id is the multihash of the bytes: b3sum agrees.
  local digest
  digest="$(b3sum --no-names "$work/hello.txt")"
  echo "b3sum: $digest"
  # Putting the same bytes again is idempotent and gives the same id.
  [[ "$(dreamdb object put "$work/hello.txt")" == "$HELLO" ]] || die "same bytes, different id"
  dreamdb object get "$HELLO" >"$work/hello.out"
  cmp -s "$work/hello.txt" "$work/hello.out" || die "object get returned other bytes"
  cat "$work/hello.out"
  V2="$(printf 'version 2\n' | dreamdb object put -)"
  V3="$(printf 'version 3\n' | dreamdb object put -)"
  is_id "$V2" && is_id "$V3" || die "object put - did not print ids"
}

demo_refs() {
  section "Refs: named pointers; a ref never points at a missing object"
  dreamdb ref create demo/branches/main "$HELLO"
  [[ "$(dreamdb ref get demo/branches/main)" == "$HELLO" ]] || die "ref get disagrees"
  dreamdb ref get demo/branches/main
  expect_exit 5 ref create demo/branches/main "$V2"  # already_exists
  expect_exit 4 ref get demo/branches/nope           # not_found
}

demo_compare_and_swap() {
  section "Compare-and-swap: a stale writer gets a conflict, never a lost update"
  dreamdb ref update demo/branches/main "$V2" --expect "$HELLO"
  [[ "$(dreamdb ref get demo/branches/main)" == "$V2" ]] || die "ref did not move"
  # A second writer still believes the ref is at HELLO: its swap must fail.
  expect_exit 6 ref update demo/branches/main "$V3" --expect "$HELLO"  # conflict
  [[ "$(dreamdb ref get demo/branches/main)" == "$V2" ]] || die "stale CAS moved the ref"
  # It re-reads and retries.
  dreamdb ref update demo/branches/main "$V3" --expect "$(dreamdb ref get demo/branches/main)"
  [[ "$(dreamdb ref get demo/branches/main)" == "$V3" ]] || die "retry did not land"
}

demo_snapshots() {
  section "Snapshots: created once, never moved"
  dreamdb ref create demo/snapshots/v1 "$V2"
  expect_exit 3 ref update demo/snapshots/v1 "$V3" --expect "$V2"  # invalid_argument
  [[ "$(dreamdb ref get demo/snapshots/v1)" == "$V2" ]] || die "snapshot moved"
}

demo_listing() {
  section "Listing"
  dreamdb ref ls
  dreamdb object ls --long
  local n
  n="$(dreamdb object ls | wc -l)"
  ((n == 3)) || die "expected 3 objects, listed $n"
  dreamdb --json ref ls demo/snapshots/
}


# ---- Datasets: the workflow users come for ----

PY="$root/.venv/bin/python"

demo_dataset_ingest() {
  section "Datasets: create, ingest images + captions + labels + embeddings, snapshot"
  "$PY" "$root/examples/make_demo_data.py" "$work/data" --records 2000
  head -c 300 "$work/data/records.jsonl"; echo " ..."
  dreamdb create pets --schema "$work/data/schema.json"
  dreamdb ingest pets "$work/data/records.jsonl" --batch-size 500
  [[ "$(dreamdb count pets)" == 2000 ]] || die "expected 2000 records"
  dreamdb snapshot pets v1
  dreamdb schema pets
}

demo_dataset_branch() {
  section "Branches: an experiment adds records and deletes some, main is untouched"
  dreamdb branch pets experiment
  "$PY" "$root/examples/make_demo_data.py" "$work/more" --records 300 --start 2000 --seed 2
  dreamdb ingest pets "$work/more/records.jsonl" --branch experiment --message "300 more"
  dreamdb delete pets 5 6 7 --branch experiment
  [[ "$(dreamdb count pets --at experiment)" == 2297 ]] || die "experiment should hold 2297"
  [[ "$(dreamdb count pets)" == 2000 ]] || die "main must still hold 2000"
  dreamdb cat pets --at experiment --fields caption,label --range 2000:2003
  dreamdb take pets 0 1999 --fields caption,score
  dreamdb log pets --at experiment --limit 3
}

demo_dataset_train() {
  section "Train: stream snapshot v1 into a PyTorch DataLoader (2 workers), write predictions as a layer"
  "$PY" "$root/examples/training_recipe.py" --store "$STORE" --dataset pets \
    --snapshot v1 --branch experiment --epochs 3 --workers 2
}

demo_dataset_compare() {
  section "Compare: what changed between the snapshot and the experiment"
  dreamdb diff pets v1 experiment >"$work/diff.txt"
  tail -n 1 "$work/diff.txt"
  grep -q '^- 5$' "$work/diff.txt" || die "diff should list anchor 5 as removed"
  dreamdb cat pets --at experiment --fields label,pred --limit 4
  dreamdb meta pets --at experiment
  dreamdb compare-refs pets v1 experiment --fields label,score,pred --summary-only
  dreamdb refs pets
}

demo_dataset_search() {
  section "Search: IVF and graph indexes with RaBitQ codes on the embeddings, queried with filters"
  dreamdb index build pets emb --branch experiment
  dreamdb index status pets emb --at experiment
  dreamdb search pets emb --at experiment --like 42 -k 5 --fields label,caption
  dreamdb search pets emb --at experiment --like 42 -k 5 --where "label == 1" --fields label \
    --json >"$work/search.json"
  "$PY" - "$work/search.json" <<'PY' || die "filtered search returned a record with label != 1"
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
assert len(rows) == 5 and all(r["label"] == 1 for r in rows), rows
print(f"{len(rows)} nearest records with label 1 (record 42 itself has label 0)")
PY
  dreamdb search pets emb --at v1 --like 42 -k 3 --exact
  # The same records through a graph (Vamana) index, on a branch of its own: the exact
  # search and the graph walk must agree on the nearest five.
  dreamdb branch pets graph-trial --from experiment
  dreamdb index build pets emb --algorithm graph --degree 16 --branch graph-trial
  dreamdb search pets emb --at graph-trial --like 42 -k 5 --json >"$work/graph.json"
  dreamdb search pets emb --at graph-trial --like 42 -k 5 --exact --json >"$work/exact.json"
  "$PY" - "$work/graph.json" "$work/exact.json" <<'PY' || die "graph search disagrees with exact search"
import json, sys
graph, exact = ([json.loads(line)["anchor"] for line in open(p) if line.strip()] for p in sys.argv[1:])
assert graph == exact, (graph, exact)
print(f"graph index: the same nearest five as brute force: {graph}")
PY
}

demo_dataset_merge() {
  section "Merge: main moved on too; a three-way merge brings the experiment back"
  dreamdb delete pets 1999 --message "drop a bad record on main"
  # The experiment wrote a prediction for record 1999, which main just deleted: a conflict,
  # reported (exit 6) with nothing written, until a policy decides it.
  expect_exit 6 merge pets experiment --into main
  dreamdb merge pets experiment --into main --policy ours --message "merge the experiment"
  [[ "$(dreamdb count pets)" == 2296 ]] || die "main should hold 2000 - 1 + 300 - 3 = 2296"
  dreamdb cat pets --fields label,pred --range 2000:2002
  dreamdb log pets --limit 2
}

demo_dataset_sweep() {
  section "Sweep: three runs from snapshot v1, each records its metric; rank them, merge the best"
  dreamdb sweep init pets tune --from v1 --runs 3 0=lr=0.1 1=lr=0.01 2=lr=0.001 \
    --metric val_error --goal min
  # Each run writes its result on its own branch (here a run-level value in its metadata;
  # a numeric record field, such as a scalar layer, is averaged over the records instead).
  local i errors=(0.31 0.24 0.42)
  for i in 0 1 2; do
    dreamdb meta pets --branch "sweep/tune/run-$i" "val_error=${errors[$i]}" >/dev/null
  done
  dreamdb sweep summarize pets tune
  dreamdb --json sweep summarize pets tune >"$work/sweep.json"
  "$PY" - "$work/sweep.json" <<'PY' || die "the sweep ranked the runs wrongly"
import json, sys
s = json.load(open(sys.argv[1]))
assert [r["rank"] for r in s["runs"]] == [2, 1, 3], s
assert s["best"]["branch"] == "sweep/tune/run-1" and s["worst"]["run"] == 2, s
print(f"best run: {s['best']['branch']} (val_error {s['best']['value']})")
PY
  dreamdb sweep merge pets tune --best --into main
  [[ "$(dreamdb meta pets | grep '^val_error=')" == "val_error=0.24" ]] ||
    die "main should carry the best run's val_error"
}

demo_dataset_verify() {
  section "Verify: every object reachable from every ref is present and intact"
  dreamdb verify pets
}

demo_dataset_gc() {
  section "Compact and GC: few large segments; an abandoned branch's objects reclaimed"
  local before
  before="$(dreamdb cat pets --fields label,caption | b3sum --no-names)"
  dreamdb compact pets
  [[ "$(dreamdb cat pets --fields label,caption | b3sum --no-names)" == "$before" ]] ||
    die "compaction changed main's content"
  # A scratch branch with data of its own, then abandoned: its ref is deleted.
  dreamdb branch pets scratch
  "$PY" "$root/examples/make_demo_data.py" "$work/scratch" --records 40 >/dev/null
  dreamdb ingest pets "$work/scratch/records.jsonl" --branch scratch --message "scratch work" \
    >/dev/null
  dreamdb ref delete pets/branches/scratch --expect "$(dreamdb ref get pets/branches/scratch)"
  # No writer runs in this demo, so the grace period may be 0 (the default is 24h).
  dreamdb --json gc --grace 0 --no-writers-running >"$work/gc.json"
  "$PY" - "$work/gc.json" <<'PY' || die "gc did not reclaim the abandoned branch"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["deleted_objects"] > 0 and r["deleted_bytes"] > 0, r
assert r["found_objects"] == (r["reachable_objects"] + r["leased_objects"] +
                              r["young_objects"] + r["deleted_objects"]), r
print(f"gc reclaimed {r['deleted_objects']} objects ({r['deleted_bytes']} bytes); "
      f"kept {r['reachable_objects']} reachable objects ({r['reachable_bytes']} bytes)")
PY
  dreamdb verify pets
}

for s in "${DEMO_SECTIONS[@]}"; do
  "demo_$s"
done

section "Demo finished: every step checked (store was $STORE)"
echo "Open the dashboard on this store (then browse http://127.0.0.1:8470/):"
echo "  $DREAMDB_BIN serve --store '$STORE'"
