# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""The soak harness: real `dreamdb` processes (the CLI, and the Python SDK in a child
process) killed with SIGKILL at random points, then the store checked.

Every trial picks an operation from OPERATIONS, launches it as a child process against a
file:// store, reads what the child acknowledges (a commit is acknowledged once the child
reported it: an ingest progress line, a printed head, exit 0), and kills it with SIGKILL
after a random delay (some trials run to completion, which also calibrates the delays).
Then, in fresh processes:

  1. `dreamdb verify` passes (exit 0, no problem);
  2. every ref points at an object the store holds (`ref ls` against `object ls`);
  3. old or new: the branch head is the last acknowledged manifest, or the operation in
     flight landed whole (each operation checks its own outcome: the commits it added,
     their parents and counts);
  4. no acknowledged commit is lost: every manifest acknowledged so far, in this trial or
     an earlier one, still reads back with the count it had (`count --at M`), and the
     branch's records are exactly the model's (`cat`, every record's every field, compared
     exactly; every trial in CI, every CHECK_EVERY trials and at the end of an epoch on
     long runs).

Adding an operation is one entry in OPERATIONS: an
`Operation` with a `launch` (prepare the store, return the child's argv) and a `settle`
(after the child exited or was killed: check what landed, update the model).

Run on demand:  python tests/soak/soak.py --trials 1000 [--seed S] [--epoch 100]
(or DREAMDB_SOAK_TRIALS=1000 with pytest tests/soak). The binary is $DREAMDB_BIN.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Optional

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "cli"))

from cli_harness import Cli, Run, clean_env, dreamdb_binary  # noqa: E402

NAME = "soak"
DIM = 8
SCHEMA = {"fields": [
    {"name": "n", "type": "int64"},
    {"name": "s", "type": "string"},
    {"name": "e", "type": "embedding", "dim": DIM},
    {"name": "b", "type": "blob", "optional": True},
]}


class SoakFailure(AssertionError):
    """An invariant did not hold after a trial; the message names the trial and the check."""


# ---- records: a pure function of (anchor, generation), so the model is small ----

def record(anchor: int, gen: int = 0) -> dict:
    """The record the harness writes at `anchor` (generation `gen` rewrites it). Values
    are exact in float32 (k/16), so what `cat` prints compares exactly."""
    e = [((anchor * 7 + i * 3 + gen) % 33) / 16.0 - 1.0 for i in range(DIM)]
    if anchor % 5 == 0:
        e[0] = 1.5  # not all equal: index builds need some spread
    rec = {"anchor": anchor, "n": anchor * 1000 + gen, "s": f"r{anchor}.{gen}", "e": e}
    if anchor % 3 == 0:
        rec["b"] = {"base64": base64.b64encode(f"blob {anchor} {gen}".encode() * 3).decode()}
    return rec


def jsonl(records: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


# ---- the store under test ----

class SoakStore:
    """A store (file:// at `path` unless `uri` names another) and the CLI that drives it;
    `env` is the children's environment (default clean_env())."""

    def __init__(self, binary: pathlib.Path, path: pathlib.Path, workdir: pathlib.Path,
                 uri: str = "", env: Optional[dict[str, str]] = None):
        self.path = path
        self.workdir = workdir
        self.cli = Cli(binary, uri or "file://" + str(path), workdir)
        self.binary = binary
        self.env = env

    def run(self, *args: str, **kw) -> Run:
        kw.setdefault("env", self.env)
        return self.cli.run(*args, **kw)

    def ok(self, *args: str, **kw) -> Run:
        r = self.run(*args, **kw)
        if r.code != 0:
            raise SoakFailure(f"dreamdb {' '.join(args)} failed: {r}")
        return r

    def argv(self, *args: str) -> list[str]:
        return [str(self.binary), "--store", self.cli.store_uri, *args]

    def head(self, branch: str = "main") -> str:
        return self.ok("ref", "get", f"{NAME}/branches/{branch}").out.strip()

    def history(self, since: str, at: str = "main") -> list[dict]:
        """Commits after `since` up to the head of `at`, oldest first (first parents)."""
        out = []
        for entry in self.ok("--json", "log", NAME, "--at", at).jsonl():
            if entry["manifest"] == since:
                return list(reversed(out))
            out.append(entry)
        raise SoakFailure(f"{since} is not in the history of {at}")

    def records(self, at: str) -> dict[int, dict]:
        rows = self.ok("cat", NAME, "--at", at, "--blobs-base64").jsonl()
        return {r["anchor"]: r for r in rows}

    def reachability(self) -> dict:
        """Orphaned bytes: every object's bytes minus those `verify` reaches from a ref
        (verify fetches each reachable object once and sums distinct objects' sizes)."""
        total_objects = total_bytes = 0
        for line in self.ok("object", "ls", "-l").out.splitlines():
            _, size = line.split()
            total_objects += 1
            total_bytes += int(size)
        summary = self.ok("--json", "verify").jsonl()[-1]
        orphan_bytes = total_bytes - summary["bytes"]
        return {"objects": total_objects, "bytes": total_bytes,
                "reachable_objects": summary["objects"], "reachable_bytes": summary["bytes"],
                "orphan_objects": total_objects - summary["objects"],
                "orphan_bytes": orphan_bytes,
                "orphan_pct": 100.0 * orphan_bytes / total_bytes if total_bytes else 0.0}


def expected_row(rec: dict) -> dict:
    """How `cat --blobs-base64` prints a record the harness wrote."""
    out = {"anchor": rec["anchor"], "n": rec["n"], "s": rec["s"], "e": rec["e"]}
    if "b" in rec:
        raw = base64.b64decode(rec["b"]["base64"])
        out["b"] = {"size": len(raw), "mime": "application/octet-stream",
                    "base64": rec["b"]["base64"]}
    else:
        out["b"] = None
    return out


def digest_dir(path: pathlib.Path) -> str:
    """A digest of every file's path, size and bytes under `path` (the store unchanged?)."""
    h = hashlib.blake2b(digest_size=16)
    for p in sorted(path.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(path)).encode() + b"\0")
            h.update(p.read_bytes())
            h.update(b"\0")
    return h.hexdigest()


# ---- the model: what must be true of the store ----

@dataclass
class Model:
    records: dict[str, dict[int, dict]] = field(default_factory=lambda: {"main": {}})
    heads: dict[str, str] = field(default_factory=dict)
    # Every acknowledged manifest with the count it had: (manifest, count, trial).
    acked: list[tuple[str, int, int]] = field(default_factory=list)
    next_anchor: int = 0
    s3: Optional["S3Side"] = None  # the s3_fault operation's store and model

    def take_anchors(self, n: int) -> list[int]:
        a = list(range(self.next_anchor, self.next_anchor + n))
        self.next_anchor += n
        return a


@dataclass
class Trial:
    number: int
    rng: random.Random
    store: SoakStore
    model: Model
    prev_head: str = ""
    state: dict = field(default_factory=dict)
    acks: list[str] = field(default_factory=list)  # lines the child acknowledged
    exit_code: Optional[int] = None
    killed: bool = False
    stdout: bytes = b""
    stderr: bytes = b""

    def fail(self, what: str) -> SoakFailure:
        return SoakFailure(f"trial {self.number} ({self.state.get('op')}): {what}")


@dataclass
class Operation:
    """One kind of work to kill. `launch` prepares the store (not killed) and returns the
    child's argv; `settle` checks the outcome after the child exited or was killed and
    updates the model. `ack` tells which child output lines acknowledge a commit."""
    name: str
    launch: Callable[[Trial], list[str]]
    settle: Callable[[Trial], None]
    ack: Callable[[str], bool] = lambda line: False
    weight: int = 1
    needs_python: bool = False
    # Needs the local S3 server (DREAMDB_S3_ENDPOINT, scripts/s3_server.sh).
    needs_s3: bool = False
    # The child may exit non-zero without being killed (injected faults); settle checks
    # that the error is a clear one.
    may_fail: bool = False
    # Called once when the run ends (stops what the operation started).
    close: Optional[Callable[[], None]] = None


def _new_commits(t: Trial, branch: str = "main") -> list[dict]:
    return t.store.history(t.prev_head, at=f"branch:{branch}")


def _acknowledge(t: Trial, manifest: str, count: int) -> None:
    t.model.acked.append((manifest, count, t.number))


# ingest: one CLI `ingest` of several batches; each batch is one commit, acknowledged by
# its --progress line. The commits after the kill are the first k batches, k >= acked.
def _ingest_launch(t: Trial) -> list[str]:
    n = t.rng.randint(20, 240)
    batch = t.rng.randint(8, 60)
    anchors = t.model.take_anchors(n)
    # One in four ingests rewrites existing anchors too (a replace, generation 1).
    live = sorted(t.model.records["main"])
    if live and t.rng.random() < 0.25:
        anchors = sorted(set(anchors[: n // 2]) | set(t.rng.sample(live, min(len(live), n // 2))))
    gen = t.number
    recs = [record(a, gen) for a in anchors]
    path = t.store.workdir / f"ingest-{t.number}.jsonl"
    path.write_bytes(jsonl(recs))
    t.state.update(recs=recs, batch=batch, path=path)
    return t.store.argv("ingest", NAME, str(path), "--batch-size", str(batch), "--progress",
                        "-m", f"soak ingest {t.number}")


def _ingest_settle(t: Trial) -> None:
    recs, batch = t.state["recs"], t.state["batch"]
    batches = [recs[i:i + batch] for i in range(0, len(recs), batch)]
    acked = len(t.acks)
    new = _new_commits(t)
    if t.exit_code == 0 and len(new) != len(batches):
        raise t.fail(f"ingest exited 0 with {len(new)} commits for {len(batches)} batches")
    if not acked <= len(new) <= min(acked + 1, len(batches)):
        raise t.fail(f"{acked} batches acknowledged but {len(new)} commits landed")
    model = t.model.records["main"]
    for i, commit in enumerate(new):
        for r in batches[i]:
            model[r["anchor"]] = r
        if commit["count"] != len(model):
            raise t.fail(f"commit {i} of the ingest has count {commit['count']}, "
                         f"expected {len(model)}")
        if i < acked:
            _acknowledge(t, commit["manifest"], commit["count"])


# python_append: the Python SDK appends batches in a loop and prints each new head; the
# printed heads are the acknowledged manifests, exactly.
PY_APPEND = r"""
import json, sys, dreamdb
store, name, path = sys.argv[1:4]
ds = dreamdb.Dataset.open(name, store=store)
for line in open(path):
    batch = json.loads(line)
    rows = []
    for r in batch:
        r = dict(r)
        if "b" in r:
            import base64
            r["b"] = base64.b64decode(r["b"]["base64"])
        rows.append(r)
    anchors = [r.pop("anchor") for r in rows]
    head = ds.append_many(rows, anchors=anchors, message="soak py")
    print("head " + head, flush=True)
"""


def _py_launch(t: Trial) -> list[str]:
    n_batches = t.rng.randint(2, 8)
    batches = [[record(a, t.number) for a in t.model.take_anchors(t.rng.randint(5, 40))]
               for _ in range(n_batches)]
    path = t.store.workdir / f"py-{t.number}.json"
    path.write_text("".join(json.dumps(b) + "\n" for b in batches))
    t.state.update(batches=batches)
    return [sys.executable, "-c", PY_APPEND, t.store.cli.store_uri, NAME, str(path)]


def _py_settle(t: Trial) -> None:
    heads = [line.split()[1] for line in t.acks]
    new = _new_commits(t)
    if [c["manifest"] for c in new[:len(heads)]] != heads:
        raise t.fail(f"acknowledged heads {heads} are not the first commits {new}")
    if t.exit_code == 0 and len(new) != len(t.state["batches"]):
        raise t.fail("the SDK exited 0 but not every batch landed")
    if len(new) > len(heads) + 1:
        raise t.fail(f"{len(heads)} acknowledged but {len(new)} landed")
    model = t.model.records["main"]
    for i, commit in enumerate(new):
        for r in t.state["batches"][i]:
            model[r["anchor"]] = r
        if commit["count"] != len(model):
            raise t.fail(f"SDK commit {i}: count {commit['count']}, expected {len(model)}")
        if i < len(heads):
            _acknowledge(t, commit["manifest"], commit["count"])


# delete: one `delete` of a few live anchors: one commit or none.
def _delete_launch(t: Trial) -> list[str]:
    live = sorted(t.model.records["main"])
    victims = t.rng.sample(live, min(len(live), t.rng.randint(1, 12))) if live else [10**12]
    t.state.update(victims=sorted(victims))
    return t.store.argv("--json", "delete", NAME, *map(str, victims), "-m", f"soak del {t.number}")


def _delete_settle(t: Trial) -> None:
    new = _new_commits(t)
    landed = [a for a in t.state["victims"] if a in t.model.records["main"]]
    if len(new) > 1 or (t.exit_code == 0 and landed and len(new) != 1):
        raise t.fail(f"delete: {len(new)} commits")
    if new:
        for a in landed:
            del t.model.records["main"][a]
        if new[0]["count"] != len(t.model.records["main"]):
            raise t.fail(f"delete: count {new[0]['count']}")
        if t.exit_code == 0:
            _acknowledge(t, new[0]["manifest"], new[0]["count"])


# merge: a branch gets new records, main gets others (so the merge is three-way), then a
# killed `merge`: main is the old head, or one merge commit [old head, branch head].
def _merge_launch(t: Trial) -> list[str]:
    branch = f"m{t.number}"
    s = t.store
    s.ok("branch", NAME, branch)
    side = [record(a, t.number) for a in t.model.take_anchors(t.rng.randint(1, 30))]
    s.ok("ingest", NAME, "-", "--branch", branch, input=jsonl(side))
    ours = [record(a, t.number) for a in t.model.take_anchors(t.rng.randint(1, 10))]
    s.ok("ingest", NAME, "-", input=jsonl(ours))
    for r in ours:
        t.model.records["main"][r["anchor"]] = r
    t.prev_head = s.head()
    _acknowledge(t, t.prev_head, len(t.model.records["main"]))
    t.state.update(branch=branch, side=side, branch_head=s.head(branch))
    return s.argv("--json", "merge", NAME, branch, "-m", f"soak merge {t.number}")


def _merge_settle(t: Trial) -> None:
    new = _new_commits(t)
    if t.exit_code == 0 and len(new) != 1:
        raise t.fail("merge exited 0 without landing one commit")
    if len(new) > 1:
        raise t.fail(f"merge landed {len(new)} commits")
    if new:
        if new[0]["parents"] != [t.prev_head, t.state["branch_head"]]:
            raise t.fail(f"merge commit parents {new[0]['parents']}")
        for r in t.state["side"]:
            t.model.records["main"][r["anchor"]] = r
        if new[0]["count"] != len(t.model.records["main"]):
            raise t.fail(f"merge count {new[0]['count']}")
        if t.exit_code == 0:
            if json.loads(t.stdout.splitlines()[-1])["head"] != new[0]["manifest"]:
                raise t.fail("merge reported a head that is not the branch head")
            _acknowledge(t, new[0]["manifest"], new[0]["count"])
    # The branch keeps its records, whatever happened to the merge.
    t.model.records[t.state["branch"]] = None  # type: ignore[assignment]  (not re-read)


# index_build: a killed `index build` of the embedding field: main is the old head or one
# commit with the index (same records); a search over what landed answers.
def _index_launch(t: Trial) -> list[str]:
    cells = t.rng.choice([2, 4, 8])
    t.state.update(cells=cells)
    return t.store.argv("--json", "index", "build", NAME, "e", "--cells", str(cells))


def _index_settle(t: Trial) -> None:
    new = _new_commits(t)
    if t.exit_code == 0 and len(new) != 1:
        raise t.fail("index build exited 0 without landing one commit")
    if len(new) > 1:
        raise t.fail(f"index build landed {len(new)} commits")
    if new:
        if new[0]["count"] != len(t.model.records["main"]):
            raise t.fail("index build changed the count")
        status = t.store.ok("--json", "index", "status", NAME, "e").json()
        if not status["built"]:
            raise t.fail(f"index build landed but the index is not built: {status}")
        if t.exit_code == 0:
            _acknowledge(t, new[0]["manifest"], new[0]["count"])
    if t.model.records["main"]:
        q = ",".join(str(x) for x in record(t.number)["e"])
        hits = t.store.ok("--json", "search", NAME, "e", "--vector", q, "-k", "3").jsonl()
        anchors = {h["anchor"] for h in hits if "anchor" in h}
        if not anchors <= set(t.model.records["main"]):
            raise t.fail(f"search returned anchors that are not live: {anchors}")


# compact: a killed `compact` of main: main is the old head or one compaction commit whose
# records equal the old head's, field by field; an exit 0 landed one commit or found main
# already compact (no commit).
def _compact_launch(t: Trial) -> list[str]:
    t.state.update(before=t.store.records(t.prev_head))
    return t.store.argv("--json", "compact", NAME, "-m", f"soak compact {t.number}")


def _compact_settle(t: Trial) -> None:
    new = _new_commits(t)
    if len(new) > 1:
        raise t.fail(f"compact landed {len(new)} commits")
    if t.exit_code == 0:
        report = json.loads(t.stdout.splitlines()[-1])
        if report["changed"] != bool(new) or report["head"] != (new[0]["manifest"] if new
                                                                 else t.prev_head):
            raise t.fail(f"compact reported {report} but the branch has {len(new)} new commits")
    if new:
        if new[0]["parents"] != [t.prev_head] or new[0]["count"] != len(t.model.records["main"]):
            raise t.fail(f"compaction commit {new[0]}")
        if t.store.records(new[0]["manifest"]) != t.state["before"]:
            raise t.fail("compaction changed the records")
        if t.exit_code == 0:
            _acknowledge(t, new[0]["manifest"], new[0]["count"])
# gc: `dreamdb gc` killed at random while a writer commits and merges on main and a reader
# reads pinned (acknowledged) versions. Before the run, every stored object is made two
# hours old (what a long-lived store looks like to the grace period) and a few orphans are
# planted; the writer's new objects are young, and an object it deduplicates is Put again
# (spec/06 §6.3), so GC must delete only garbage. Checked: the writer and the reader never
# fail, the writer's commits all land, a completed GC deleted the planted orphans, and
# (as after every trial) verify passes and every acknowledged commit reads back. The GC is
# whole, in passes by id prefix (a tiny mark budget) or a sharded GC's sweep.
GC_READER = r"""
import hashlib, json, pathlib, subprocess, sys
base, stop, out, pinned = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
reads, failures = 0, []
while True:
    for manifest, count, digest in pinned:
        c = subprocess.run(base + ["--json", "count", "soak", "--at", manifest],
                           capture_output=True)
        r = subprocess.run(base + ["cat", "soak", "--at", manifest, "--blobs-base64"],
                           capture_output=True)
        reads += 1
        if c.returncode != 0 or json.loads(c.stdout)["count"] != count:
            failures.append(f"count --at {manifest}: {c.returncode} {c.stdout!r} {c.stderr!r}")
        if r.returncode != 0 or hashlib.sha256(r.stdout).hexdigest() != digest:
            failures.append(f"cat --at {manifest}: exit {r.returncode} {r.stderr[-500:]!r}")
    if pathlib.Path(stop).exists():
        break
pathlib.Path(out).write_text(json.dumps({"reads": reads, "failures": failures[:10]}))
"""

GC_REPORTS: list[dict] = []  # the JSON reports of GC runs that completed
S3_ERRORS: list[str] = []  # the clear errors ingests through the fault proxy failed with
# s3_fault checks: acknowledged s3 commits read back, reads through the proxy that returned
# the stored bytes, and those that failed with a clear error.
S3_CHECKS = {"acked_reads": 0, "proxied_reads_ok": 0, "proxied_reads_failed": 0}


def _gc_launch(t: Trial) -> list[str]:
    s = t.store
    # Orphans: objects no ref reaches, which a completed GC must delete.
    planted = [s.ok("object", "put", "-", input=f"orphan {t.number} {i} {t.rng.random()}"
                    .encode()).out.strip() for i in range(3)]
    old = time.time() - 2 * 3600
    for p in (s.path / "objects").rglob("*"):
        if p.is_file():
            os.utime(p, (old, old))
    branch = f"g{t.number}"
    s.ok("branch", NAME, branch)
    side = [record(a, t.number) for a in t.model.take_anchors(t.rng.randint(1, 20))]
    ours = [record(a, t.number) for a in t.model.take_anchors(t.rng.randint(5, 60))]
    batch = t.rng.randint(5, 30)
    (s.workdir / f"gc-side-{t.number}.jsonl").write_bytes(jsonl(side))
    (s.workdir / f"gc-main-{t.number}.jsonl").write_bytes(jsonl(ours))
    cli = " ".join(f"'{a}'" for a in s.argv())
    script = (f"set -e; cd '{s.workdir}'; "
              f"{cli} ingest {NAME} gc-side-{t.number}.jsonl --branch {branch}; "
              f"{cli} ingest {NAME} gc-main-{t.number}.jsonl --batch-size {batch}; "
              f"{cli} --json merge {NAME} {branch} -m 'soak gc merge {t.number}'")
    writer_log = s.workdir / f"gc-writer-{t.number}.log"
    with open(writer_log, "wb") as log:
        writer = subprocess.Popen(["bash", "-c", script], stdout=log, stderr=subprocess.STDOUT,
                                  env=clean_env())
    # Readers: up to three acknowledged versions, each read whole again and again.
    pinned = []
    for manifest, count, _ in t.rng.sample(t.model.acked, min(3, len(t.model.acked))):
        out = s.ok("cat", NAME, "--at", manifest, "--blobs-base64").stdout
        pinned.append((manifest, count, hashlib.sha256(out).hexdigest()))
    stop = s.workdir / f"gc-stop-{t.number}"
    result = s.workdir / f"gc-reader-{t.number}.json"
    reader = subprocess.Popen([sys.executable, "-c", GC_READER, json.dumps(s.argv()), str(stop),
                               str(result), json.dumps(pinned)], env=clean_env())
    t.state.update(planted=planted, side=side, ours=ours, batch=batch, writer=writer,
                   writer_log=writer_log, reader=reader, stop=stop, result=result)
    # One of three ways: a whole GC; one whose mark budget forces passes by id prefix
    # (spec/06 §6.8); or the sweep of a sharded GC (§6.11) against a mark stored just now,
    # while the writer runs (one shard of one: the whole id space).
    mode = t.rng.choice(["whole", "passes", "sharded"])
    t.state["mode"] = mode
    if mode == "passes":
        return s.argv("--json", "gc", "--grace", "1h", "--mark-memory", "64K")
    if mode == "sharded":
        s.ok("gc", "--mark-only", "--grace", "1h")
        return s.argv("--json", "gc", "--sweep", "--shard", "0", "--of", "1")
    return s.argv("--json", "gc", "--grace", "1h")


def _gc_settle(t: Trial) -> None:
    st = t.state
    try:
        code = st["writer"].wait(timeout=300)
    except subprocess.TimeoutExpired:
        st["writer"].kill()
        raise t.fail("the writer beside GC did not finish in 300 s")
    st["stop"].touch()
    try:
        st["reader"].wait(timeout=300)
    except subprocess.TimeoutExpired:
        st["reader"].kill()
        raise t.fail("the reader beside GC did not finish in 300 s")
    if code != 0:
        raise t.fail(f"the writer beside GC failed: {st['writer_log'].read_text()[-3000:]}")
    reader = json.loads(st["result"].read_text())
    if reader["failures"]:
        raise t.fail(f"a reader of a pinned version failed beside GC: {reader['failures']}")
    if t.exit_code == 0:
        report = json.loads(t.stdout.splitlines()[-1])
        GC_REPORTS.append(report)
        left = set(t.store.ok("object", "ls").out.split()) & set(st["planted"])
        if left:
            raise t.fail(f"GC ({st['mode']}) completed but kept the planted orphans "
                         f"{sorted(left)}: {report}")
    # The writer's commits: the main batches, then the merge of the side branch (the first
    # parents from main's head back to the old head; `log` lists the side commit too).
    entries = {e["manifest"]: e for e in t.store.ok("--json", "log", NAME).jsonl()}
    new, at = [], t.store.head()
    while at != t.prev_head:
        if at not in entries:
            raise t.fail(f"{t.prev_head} is not a first parent of main's head")
        new.append(entries[at])
        at = entries[at]["parents"][0]
    new.reverse()
    batches = [st["ours"][i:i + st["batch"]] for i in range(0, len(st["ours"]), st["batch"])]
    if len(new) != len(batches) + 1:
        raise t.fail(f"the writer made {len(batches) + 1} commits but {len(new)} landed: "
                     f"{[c.get('message') for c in new]}")
    model = t.model.records["main"]
    for i, commit in enumerate(new):
        for r in batches[i] if i < len(batches) else st["side"]:
            model[r["anchor"]] = r
        if commit["count"] != len(model):
            raise t.fail(f"commit {i} beside GC has count {commit['count']}, "
                         f"expected {len(model)}")
        _acknowledge(t, commit["manifest"], commit["count"])


# s3_fault: an ingest into an s3:// store through the fault-injecting proxy
# (s3_fault_proxy.py), killed at random like the others. Resets before and after the
# server applied a request (a lost answer to a conditional write included), truncated
# bodies, delays, 500s, 503 SlowDown and 409/412 to conditional writes. The ingest either
# lands its acknowledged batches or fails with a clear error (exit 6, 8 or 9); then,
# through a clean connection, verify passes, every ref reaches a stored object, every
# acknowledged commit reads back and main holds exactly the model's records; a read
# through the proxy returns exactly those bytes or a clear error, never other bytes.
class S3Side:
    """The s3:// store of one soak store's epoch, its model, and the shared proxy."""

    proxy = None  # one FaultProxy per process, started on first use
    proxy_stats: Optional[dict] = None  # its figures, kept when it stops

    def __init__(self, binary: pathlib.Path, workdir: pathlib.Path, seed: int):
        from s3_fault_proxy import FaultConfig, FaultProxy
        endpoint = os.environ["DREAMDB_S3_ENDPOINT"]
        bucket = os.environ["DREAMDB_S3_BUCKET"]
        if S3Side.proxy is None:
            rate = float(os.environ.get("DREAMDB_SOAK_S3_FAULT_RATE", "0.2"))
            S3Side.proxy = FaultProxy(endpoint, FaultConfig.uniform(rate, delay_ms=(20, 200)),
                                      seed=seed).start()
        self.env = clean_env(**{k: os.environ[k] for k in
                                ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if k in os.environ})
        # Unique per store: two soak runs in one process (pytest) may share pid, seed
        # and work directory name.
        prefix = f"soak-{os.getpid()}-{seed}-{workdir.name}-{uuid.uuid4().hex[:12]}"
        self.clean = SoakStore(binary, workdir, workdir,
                               uri=f"s3://{bucket}/{prefix}?endpoint={endpoint}", env=self.env)
        self.proxied_uri = f"s3://{bucket}/{prefix}?endpoint={S3Side.proxy.endpoint}"
        schema = workdir / "schema-s3.json"
        schema.write_text(json.dumps(SCHEMA))
        self.clean.ok("create", NAME, "--schema", str(schema))
        self.model = Model()
        recs = [record(a) for a in self.model.take_anchors(20)]
        self.clean.ok("ingest", NAME, "-", input=jsonl(recs))
        self.model.records["main"] = {r["anchor"]: r for r in recs}
        self.model.acked.append((self.clean.head(), 20, -1))

    @staticmethod
    def close() -> None:
        if S3Side.proxy is not None:
            S3Side.proxy.stop()
            S3Side.proxy_stats = S3Side.proxy.snapshot()
            S3Side.proxy = None


def s3_available() -> bool:
    return bool(os.environ.get("DREAMDB_S3_ENDPOINT") and os.environ.get("DREAMDB_S3_BUCKET"))


def _s3_side(t: Trial) -> S3Side:
    if t.model.s3 is None:
        t.model.s3 = S3Side(t.store.binary, t.store.workdir, t.number)
    return t.model.s3


def _s3_launch(t: Trial) -> list[str]:
    side = _s3_side(t)
    n = t.rng.randint(5, 60)
    batch = t.rng.randint(3, 20)
    recs = [record(a, t.number) for a in side.model.take_anchors(n)]
    path = t.store.workdir / f"s3-ingest-{t.number}.jsonl"
    path.write_bytes(jsonl(recs))
    t.state.update(recs=recs, batch=batch, env=side.env, s3_prev=side.clean.head())
    return [str(t.store.binary), "--store", side.proxied_uri, "ingest", NAME, str(path),
            "--batch-size", str(batch), "--progress", "-m", f"soak s3 {t.number}"]


def _s3_settle(t: Trial) -> None:
    side = _s3_side(t)
    clean = side.clean
    if not t.killed and t.exit_code != 0:
        err = t.stderr.decode(errors="replace").strip()
        last = err.splitlines()[-1] if err else ""
        if t.exit_code not in (6, 8, 9) or not last.startswith("dreamdb: error: "):
            raise t.fail(f"an ingest through the fault proxy failed without a clear error: "
                         f"exit {t.exit_code}, {err[-2000:]!r}")
        S3_ERRORS.append(last[:300])
    recs, batch = t.state["recs"], t.state["batch"]
    batches = [recs[i:i + batch] for i in range(0, len(recs), batch)]
    acked = len(t.acks)
    new = clean.history(t.state["s3_prev"], at="branch:main")
    if t.exit_code == 0 and len(new) != len(batches):
        raise t.fail(f"s3 ingest exited 0 with {len(new)} commits for {len(batches)} batches")
    if not acked <= len(new) <= min(acked + 1, len(batches)):
        raise t.fail(f"s3: {acked} batches acknowledged but {len(new)} commits landed")
    model = side.model.records["main"]
    for i, commit in enumerate(new):
        for r in batches[i]:
            model[r["anchor"]] = r
        if commit["count"] != len(model):
            raise t.fail(f"s3 commit {i}: count {commit['count']}, expected {len(model)}")
        if i < acked or t.exit_code == 0:
            side.model.acked.append((commit["manifest"], commit["count"], t.number))
    # Through a clean connection: verify, refs, acknowledged commits, the records.
    v = clean.run("--json", "verify")
    if v.code != 0:
        raise t.fail(f"s3 verify failed: {v}")
    objects = set(clean.ok("object", "ls").out.split())
    for line in clean.ok("ref", "ls").out.splitlines():
        target, name = line.split(" ", 1)
        if target not in objects:
            raise t.fail(f"s3 ref {name} points at a missing object {target}")
    for manifest, count, trial in side.model.acked:
        r = clean.run("--json", "count", NAME, "--at", manifest)
        if r.code != 0 or r.json()["count"] != count:
            raise t.fail(f"s3: acknowledged manifest {manifest} (trial {trial}, count {count}) "
                         f"reads back as {r}")
    S3_CHECKS["acked_reads"] += len(side.model.acked)
    got = clean.records("main")
    if got != {a: expected_row(r) for a, r in model.items()}:
        raise t.fail("s3: main's records differ from the model")
    # Through the proxy: the same bytes, or a clear error.
    proxied = Cli(t.store.binary, side.proxied_uri, t.store.workdir)
    want = clean.ok("cat", NAME, "--blobs-base64").stdout
    for _ in range(2):
        r = proxied.run("cat", NAME, "--blobs-base64", env=side.env)
        if r.code == 0 and r.stdout != want:
            raise t.fail("a read through the fault proxy returned other bytes than the store "
                         "holds")
        if r.code != 0 and (r.code not in (8, 9) or not r.err.startswith("dreamdb: error: ")):
            raise t.fail(f"a read through the fault proxy failed without a clear error: {r}")
        S3_CHECKS["proxied_reads_ok" if r.code == 0 else "proxied_reads_failed"] += 1


OPERATIONS: list[Operation] = [
    Operation("ingest", _ingest_launch, _ingest_settle,
              ack=lambda line: line.startswith("ingest: ") and "committed in" in line, weight=4),
    Operation("python_append", _py_launch, _py_settle,
              ack=lambda line: line.startswith("head "), weight=2, needs_python=True),
    Operation("delete", _delete_launch, _delete_settle, weight=1),
    Operation("merge", _merge_launch, _merge_settle, weight=2),
    Operation("index_build", _index_launch, _index_settle, weight=2),
    Operation("compact", _compact_launch, _compact_settle, weight=2),
    Operation("gc", _gc_launch, _gc_settle, weight=1),
    Operation("s3_fault", _s3_launch, _s3_settle,
              ack=lambda line: line.startswith("ingest: ") and "committed in" in line,
              weight=1, needs_s3=True, may_fail=True, close=S3Side.close),
]


def python_sdk_available() -> bool:
    r = subprocess.run([sys.executable, "-c", "import dreamdb"], capture_output=True)
    return r.returncode == 0


# ---- running a trial ----

def run_child(argv: list[str], ack: Callable[[str], bool], kill_after: Optional[float],
              timeout: float = 120, env: Optional[dict[str, str]] = None
              ) -> tuple[Optional[int], list[str], bytes, bool, float, bytes]:
    """Runs the child, collecting acknowledgement lines from stdout and stderr as they
    come; SIGKILLs it after `kill_after` seconds (None: never). Returns (exit code or None
    when killed, ack lines, stdout, killed, seconds, stderr)."""
    import selectors
    started = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env if env is not None else clean_env())
    sel = selectors.DefaultSelector()
    bufs = {p.stdout: b"", p.stderr: b""}
    out = b""
    err = b""
    acks: list[str] = []
    for f in bufs:
        os.set_blocking(f.fileno(), False)
        sel.register(f, selectors.EVENT_READ)
    killed = False
    deadline = started + (kill_after if kill_after is not None else timeout)
    while sel.get_map():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            if kill_after is None:
                p.kill()
                raise SoakFailure(f"child did not finish in {timeout}s: {argv}")
            p.send_signal(signal.SIGKILL)
            killed = True
            break
        for key, _ in sel.select(timeout=min(remaining, 0.5)):
            chunk = key.fileobj.read()
            if not chunk:
                sel.unregister(key.fileobj)
                continue
            if key.fileobj is p.stdout:
                out += chunk
            else:
                err += chunk
            bufs[key.fileobj] += chunk
            *lines, bufs[key.fileobj] = bufs[key.fileobj].split(b"\n")
            acks += [x.decode() for x in lines if ack(x.decode())]
    code = p.wait()
    seconds = time.monotonic() - started
    if killed and code != -signal.SIGKILL:
        # It finished just before the signal: what it printed last is still in the pipes
        # (its head, its acknowledgements), read it before judging the outcome.
        killed = False
        for f in bufs:
            os.set_blocking(f.fileno(), True)
            rest = f.read()
            if f is p.stdout:
                out += rest
            else:
                err += rest
            lines = (bufs[f] + rest).split(b"\n")
            acks += [x.decode() for x in lines if ack(x.decode())]
    for f in bufs:
        f.close()
    if killed:
        return None, acks, out, True, seconds, err
    return code, acks, out, False, seconds, err


class Soak:
    """Trials against one store at a time; a new store every `epoch` trials."""

    def __init__(self, binary: pathlib.Path, workdir: pathlib.Path, seed: int,
                 epoch: int = 100, check_every: int = 1, log: Callable[[str], None] = print,
                 operations: Optional[list[Operation]] = None, kill_ratio: float = 0.85):
        self.binary = binary
        self.workdir = workdir
        self.rng = random.Random(seed)
        self.seed = seed
        self.epoch = epoch
        self.check_every = check_every
        self.log = log
        self.kill_ratio = kill_ratio
        ops = operations if operations is not None else OPERATIONS
        if not python_sdk_available():
            if os.environ.get("DREAMDB_REQUIRE_PYTHON") == "1":
                raise SoakFailure("the dreamdb Python package is not importable")
            ops = [o for o in ops if not o.needs_python]
        if not s3_available():
            if os.environ.get("DREAMDB_REQUIRE_S3") == "1" and any(o.needs_s3 for o in ops):
                raise SoakFailure("DREAMDB_REQUIRE_S3=1 but DREAMDB_S3_ENDPOINT/_BUCKET are "
                                  "unset (scripts/s3_server.sh)")
            ops = [o for o in ops if not o.needs_s3]
        self.ops = ops
        # Seconds an uninterrupted run of each operation takes (None until one finished:
        # the first trial of each operation runs to completion and calibrates the delays).
        self.duration: dict[str, Optional[float]] = {o.name: None for o in ops}
        self.stats = {"trials": 0, "killed": 0, "completed": 0, "failed_exit": 0,
                      "verify_ok": 0, "acked_checked": 0, "full_checks": 0, "stores": 0,
                      "by_op": {o.name: [0, 0] for o in ops}, "orphans": []}
        self.store: Optional[SoakStore] = None
        self.model = Model()
        GC_REPORTS.clear()
        S3_ERRORS.clear()
        S3_CHECKS.update({k: 0 for k in S3_CHECKS})
        S3Side.proxy_stats = None

    def new_store(self) -> None:
        if self.store is not None:
            self.finish_store()
        n = self.stats["stores"]
        path = self.workdir / f"store-{n}"
        work = self.workdir / f"work-{n}"
        work.mkdir(parents=True, exist_ok=True)
        self.store = SoakStore(self.binary, path, work)
        self.stats["stores"] += 1
        schema = work / "schema.json"
        schema.write_text(json.dumps(SCHEMA))
        self.store.ok("create", NAME, "--schema", str(schema))
        self.model = Model()
        recs = [record(a) for a in self.model.take_anchors(50)]
        self.store.ok("ingest", NAME, "-", input=jsonl(recs))
        self.model.records["main"] = {r["anchor"]: r for r in recs}
        self.model.acked.append((self.store.head(), 50, -1))

    def finish_store(self) -> None:
        assert self.store is not None
        self.full_check(-1)
        self.check_acked(-1, None)
        reach = self.store.reachability()
        reach["store"] = self.stats["stores"] - 1
        self.stats["orphans"].append(reach)
        self.log(f"store {reach['store']}: {reach['objects']} objects, {reach['bytes']} bytes, "
                 f"orphaned {reach['orphan_objects']} objects, {reach['orphan_bytes']} bytes "
                 f"({reach['orphan_pct']:.1f}%)")

    def check(self, t: Trial, full: bool) -> None:
        s = self.store
        assert s is not None
        v = s.run("--json", "verify")
        if v.code != 0:
            raise t.fail(f"verify failed: {v}")
        self.stats["verify_ok"] += 1
        objects = set(s.ok("object", "ls").out.split())
        for line in s.ok("ref", "ls").out.splitlines():
            target, name = line.split(" ", 1)
            if target not in objects:
                raise t.fail(f"ref {name} points at a missing object {target}")
        # Every acknowledged manifest at a full check; otherwise this trial's.
        self.check_acked(t.number, None if full else t.number)
        if full:
            self.full_check(t.number)

    def check_acked(self, number: int, only_trial: Optional[int]) -> None:
        assert self.store is not None
        acked = [a for a in self.model.acked if only_trial is None or a[2] == only_trial]
        for manifest, count, trial in acked:
            r = self.store.run("--json", "count", NAME, "--at", manifest)
            if r.code != 0 or r.json()["count"] != count:
                raise SoakFailure(f"trial {number}: acknowledged manifest {manifest} (trial "
                                  f"{trial}, count {count}) reads back as {r}")
        self.stats["acked_checked"] += len(acked)

    def full_check(self, number: int) -> None:
        assert self.store is not None
        got = self.store.records("main")
        want = self.model.records["main"]
        if set(got) != set(want):
            missing = sorted(set(want) - set(got))[:10]
            extra = sorted(set(got) - set(want))[:10]
            raise SoakFailure(f"trial {number}: main's anchors differ from the model: "
                              f"missing {missing}, unexpected {extra}")
        for a, rec in want.items():
            if got[a] != expected_row(rec):
                raise SoakFailure(f"trial {number}: anchor {a} reads {got[a]}, "
                                  f"wrote {expected_row(rec)}")
        self.stats["full_checks"] += 1

    def trial(self, number: int) -> None:
        if self.store is None or (number > 0 and number % self.epoch == 0):
            self.new_store()
        assert self.store is not None
        op = self.rng.choices(self.ops, weights=[o.weight for o in self.ops])[0]
        t = Trial(number, random.Random(self.rng.random()), self.store, self.model)
        t.state["op"] = op.name
        t.prev_head = self.store.head()
        argv = op.launch(t)
        known = self.duration[op.name]
        kill = known is not None and self.rng.random() < self.kill_ratio
        delay = self.rng.uniform(0, 1.1 * known) if kill and known is not None else None
        code, acks, out, killed, seconds, err = run_child(argv, op.ack, delay,
                                                          env=t.state.get("env"))
        t.exit_code, t.acks, t.stdout, t.killed, t.stderr = code, acks, out, killed, err
        if not killed:
            self.duration[op.name] = seconds if known is None else 0.7 * known + 0.3 * seconds
            if code != 0 and not op.may_fail:
                raise t.fail(f"exit {code} without a kill: {argv}, stdout {out[-2000:]!r}")
        op.settle(t)
        self.model.records = {k: v for k, v in self.model.records.items() if v is not None}
        self.model.heads["main"] = self.store.head()
        self.check(t, full=(number % self.check_every == 0))
        self.stats["trials"] += 1
        self.stats["killed" if killed else "completed"] += 1
        self.stats["by_op"][op.name][0 if killed else 1] += 1

    def run(self, trials: int) -> dict:
        started = time.monotonic()
        try:
            for i in range(trials):
                self.trial(i)
                if (i + 1) % 50 == 0:
                    self.log(f"{i + 1}/{trials} trials, {time.monotonic() - started:.0f}s, "
                             f"{self.stats['killed']} killed")
            if self.store is not None:
                self.finish_store()
        finally:
            for op in self.ops:
                if op.close is not None:
                    op.close()
        if S3Side.proxy_stats is not None:
            self.stats["s3_proxy"] = S3Side.proxy_stats
        self.stats["s3_failed_clearly"] = len(S3_ERRORS)
        self.stats["s3_checks"] = dict(S3_CHECKS)
        self.stats["gc_runs"] = len(GC_REPORTS)
        self.stats["gc_deleted_objects"] = sum(r.get("deleted_objects", 0) for r in GC_REPORTS)
        self.stats["seconds"] = round(time.monotonic() - started, 1)
        return self.stats


def summarize(stats: dict) -> str:
    orphans = stats["orphans"]
    total = sum(o["bytes"] for o in orphans)
    orphan = sum(o["orphan_bytes"] for o in orphans)
    by_op = ", ".join(f"{k} {v[0]} killed/{v[1]} completed" for k, v in stats["by_op"].items())
    extra = ""
    if stats.get("gc_runs"):
        extra += (f"; {stats['gc_runs']} GC runs completed, {stats['gc_deleted_objects']} "
                  "objects deleted")
    if stats.get("s3_proxy"):
        proxy = stats["s3_proxy"]
        faults = ", ".join(f"{k} {v}" for k, v in proxy["by_fault"].items() if v)
        checks = stats["s3_checks"]
        extra += (f"; s3 proxy: {proxy['requests']} requests, faults injected: {faults}; "
                  f"{stats['s3_failed_clearly']} s3 ingests failed with a clear error; "
                  f"{checks['acked_reads']} acknowledged s3 commits read back; reads through "
                  f"the proxy: {checks['proxied_reads_ok']} exact, "
                  f"{checks['proxied_reads_failed']} failed clearly, 0 wrong")
    return (f"{stats['trials']} trials in {stats['seconds']}s on {stats['stores']} stores: "
            f"{stats['killed']} killed, {stats['completed']} completed ({by_op}); "
            f"verify ok {stats['verify_ok']}/{stats['trials']}; "
            f"{stats['acked_checked']} acknowledged-manifest reads; {stats['full_checks']} full "
            f"content checks; orphaned bytes {orphan}/{total} "
            f"({100.0 * orphan / total if total else 0:.1f}%), per store "
            + ", ".join(f"{o['orphan_pct']:.1f}%" for o in orphans) + extra)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int,
                    default=int(os.environ.get("DREAMDB_SOAK_TRIALS", "1000")))
    ap.add_argument("--seed", type=int, default=int(os.environ.get("DREAMDB_SOAK_SEED", "0"))
                    or random.SystemRandom().randrange(1, 2**31))
    ap.add_argument("--epoch", type=int, default=100, help="trials per store")
    ap.add_argument("--check-every", type=int, default=10,
                    help="full content check every N trials (verify and acknowledged "
                    "manifests are checked after every trial)")
    ap.add_argument("--ops", default="", help="comma-separated operation names (default all)")
    ap.add_argument("--json", action="store_true", help="print the statistics as JSON")
    args = ap.parse_args()
    ops = OPERATIONS
    if args.ops:
        wanted = args.ops.split(",")
        ops = [o for o in OPERATIONS if o.name in wanted]
    with tempfile.TemporaryDirectory(prefix="dreamdb-soak-") as d:
        print(f"soak: seed {args.seed}, {args.trials} trials, binary {dreamdb_binary()}",
              flush=True)
        soak = Soak(dreamdb_binary(), pathlib.Path(d), args.seed, epoch=args.epoch,
                    check_every=args.check_every, operations=ops,
                    log=lambda m: print(m, flush=True))
        stats = soak.run(args.trials)
    print(summarize(stats))
    if args.json:
        print(json.dumps(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
