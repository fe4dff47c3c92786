# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""The hostile-input corpus: every case in corpus.jsonl (CLI) and PYTHON_CASES (the SDK)
must fail cleanly and leave the store as it was.

A CLI case is one JSON object per line of corpus.jsonl:
  id        unique, "<area>.<what>.<variant>" (XFAIL below is keyed by it)
  argv      the dreamdb arguments; placeholders: {store} the store path, {tmp} a scratch
            directory, {schema} a valid schema file, {head} / {v1} / {segment} the ids of
            main's head, snapshot v1 and one of its segments, {file:NAME} the file NAME of
            `files`, written into {tmp} first
  files     NAME -> content (a string, or a list of [text, count] pairs repeated and
            joined; null makes a FIFO)
  store     false: no --store is added (the case names its own)
  env       extra environment variables
  expect    "error" (default) or "ok"
  code      the exit code an error must have (default: any of 2..11)
  secret    a string that must not appear in the output
  absent    a path that must not exist afterwards
  no_control  ("ok" cases) stdout holds no control characters but newline and tab
  timeout   seconds (default 60)

An "error" must exit with a DreamDB code (2..11, never 1 "internal", a signal or a
sanitizer report), print nothing on stdout and exactly one line on stderr starting with
"dreamdb: error: " with no raw control character (usage errors, exit 2, may add the
command's "usage: ..." and "Run 'dreamdb ... --help'" lines). Every case must leave the store's
files byte for byte as they were (a digest of the directory before and after).

Cases that fail today because their fix lands separately are listed in XFAIL with the
fix they wait for; they run with xfail(strict=True), so a fix makes them XPASS and fail
until their ids are taken out of the list.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import resource
import shutil
import subprocess
import sys
from typing import Any

import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "cli"))
sys.path.insert(0, str(HERE.parent / "soak"))

from cli_harness import clean_env, dreamdb_binary  # noqa: E402
from soak import digest_dir  # noqa: E402

CORPUS = HERE / "corpus.jsonl"

SCHEMA = {"fields": [
    {"name": "n", "type": "int64"}, {"name": "s", "type": "string"},
    {"name": "e", "type": "embedding", "dim": 4},
    {"name": "b", "type": "blob", "optional": True},
    {"name": "f", "type": "float64", "optional": True},
    {"name": "t", "type": "timestamp", "optional": True},
    {"name": "flag", "type": "bool", "optional": True},
    {"name": "arr", "type": "array", "dtype": "i32", "shape": [2], "optional": True},
]}
ESC = "\x1b"

# id -> the fix it waits for. Ids are exact; a trailing "*" matches a prefix.
XFAIL: dict[str, str] = {}

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def xfail_reason(cid: str) -> str | None:
    for key, reason in XFAIL.items():
        if cid == key or (key.endswith("*") and cid.startswith(key[:-1])):
            return reason
    return None


def load_corpus() -> list[Any]:
    params = []
    for raw in CORPUS.read_text().splitlines():
        if not raw.strip() or raw.startswith("#"):
            continue
        c = json.loads(raw)
        marks = []
        reason = xfail_reason(c["id"])
        if reason is not None:
            marks.append(pytest.mark.xfail(strict=True, reason=f"fixed by: {reason}"))
        params.append(pytest.param(c, id=c["id"], marks=marks))
    return params


class Fixture:
    """One store with dataset d (main: records, a snapshot v1, a branch dev, stored data
    holding control characters) and a pristine copy to restore after a case changed it."""

    def __init__(self, root: pathlib.Path, binary: pathlib.Path):
        self.root = root
        self.binary = binary
        self.store = root / "store"
        self.pristine = root / "pristine"
        w = root / "setup"
        w.mkdir()
        (w / "schema.json").write_text(json.dumps(SCHEMA))
        self.schema = w / "schema.json"

        def run(*args: str, input: bytes | None = None) -> str:
            p = subprocess.run([str(binary), "--store", str(self.store), *args], input=input,
                               capture_output=True, env=clean_env(), timeout=120)
            assert p.returncode == 0, (args, p.stderr)
            return p.stdout.decode()

        run("create", "d", "--schema", str(self.schema))
        recs = [{"anchor": a, "n": a, "s": f"s{a}", "e": [a / 4, 0.5, 0.25, 1.0], "f": a / 2,
                 "flag": a % 2 == 0, "arr": [a, -a], "b": {"base64": "aGVsbG8="}}
                for a in range(12)]
        run("ingest", "d", "-", input="".join(json.dumps(r) + "\n" for r in recs).encode())
        run("snapshot", "d", "v1")
        run("branch", "d", "dev")
        # Stored data with control characters, for the output cases.
        evil = {"anchor": 7, "n": 7, "s": "red" + ESC + "[31m" + ESC + "]0;title\x07\r",
                "e": [0.5, 0.5, 0.25, 1.0]}
        run("ingest", "d", "-", "-m", "msg " + ESC + "[2J" + ESC + "[31mred\r",
            input=(json.dumps(evil) + "\n").encode())
        run("meta", "d", "note=" + ESC + "[5mblink")
        self.head = run("ref", "get", "d/branches/main").strip()
        self.v1 = run("ref", "get", "d/snapshots/v1").strip()
        # Any object that is not a manifest (object ids sort by content, so the first
        # one listed may be an older manifest, which `cat --at` would read).
        manifests = {json.loads(line)["manifest"] for line in run("log", "d", "--json").splitlines()}
        self.segment = ""
        for line in run("object", "ls", "-l").splitlines():
            oid, size = line.split()
            if oid not in manifests:
                self.segment = oid
                break
        shutil.copytree(self.store, self.pristine)
        self.digest = digest_dir(self.store)

    def restore(self) -> None:
        shutil.rmtree(self.store)
        shutil.copytree(self.pristine, self.store)


@pytest.fixture(scope="module")
def fixture(tmp_path_factory: pytest.TempPathFactory) -> Fixture:
    binary = dreamdb_binary()
    if not binary.exists():
        pytest.fail(f"dreamdb binary not found at {binary}; set DREAMDB_BIN")
    return Fixture(tmp_path_factory.mktemp("hostile"), binary)


def content(spec: Any) -> bytes:
    if isinstance(spec, str):
        return spec.encode("utf-8", "surrogatepass")
    return b"".join(text.encode() * count for text, count in spec)


def _sanitized(binary: pathlib.Path) -> bool:
    # ASan reserves terabytes of address space: no address-space limit for such builds.
    return b"__asan_init" in binary.read_bytes()


SANITIZED = _sanitized(dreamdb_binary()) if dreamdb_binary().exists() else False


def limit_memory() -> None:
    # A case that reads without bound must fail, not take the machine with it.
    if not SANITIZED:
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


@pytest.mark.parametrize("case", load_corpus())
def test_cli_case(case: dict, fixture: Fixture, tmp_path: pathlib.Path) -> None:
    subst = {"{store}": str(fixture.store), "{tmp}": str(tmp_path),
             "{schema}": str(fixture.schema), "{head}": fixture.head, "{v1}": fixture.v1,
             "{segment}": fixture.segment}
    for name, spec in case.get("files", {}).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        if spec is None:
            os.mkfifo(tmp_path / name)
        else:
            (tmp_path / name).write_bytes(content(spec))

    def fill(a: str) -> str:
        for k, v in subst.items():
            a = a.replace(k, v)
        return re.sub(r"\{file:([^}]+)\}", lambda m: str(tmp_path / m.group(1)), a)

    argv = [fill(a) for a in case["argv"]]
    if case.get("store", True):
        argv = ["--store", str(fixture.store), *argv]
    env = clean_env(**{k: fill(v) for k, v in case.get("env", {}).items()})
    try:
        try:
            p = subprocess.run([str(fixture.binary), *argv], capture_output=True, env=env,
                               cwd=tmp_path, timeout=case.get("timeout", 60),
                               preexec_fn=limit_memory, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            pytest.fail(f"no answer in {case.get('timeout', 60)}s: {argv}")
        out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
        what = f"{argv} -> exit {p.returncode}\nstdout: {out[:800]!r}\nstderr: {err[:800]!r}"
        for bad in ("Sanitizer", "runtime error:", "terminate called", "Traceback",
                    "Segmentation", "Aborted"):
            assert bad not in err, what
        if case.get("secret"):
            assert case["secret"] not in out + err, what
        if case.get("absent"):
            assert not os.path.exists(fill(case["absent"])), f"{what}\ncreated {case['absent']}"
        if case.get("expect", "error") == "ok":
            assert p.returncode == 0, what
            if case.get("no_control"):
                assert not CONTROL.search(out), what
        else:
            if "code" in case:
                assert p.returncode == case["code"], what
            assert 2 <= p.returncode <= 11, what
            assert out == "", what
            lines = err.splitlines()
            if p.returncode == 2:  # usage errors add the command's usage and where to look
                lines = [x for x in lines if not x.startswith(("usage: ", "Run 'dreamdb"))]
            assert len(lines) == 1 and lines[0].startswith("dreamdb: error: "), what
            assert not CONTROL.search(err.rstrip("\n")), what
        assert digest_dir(fixture.store) == fixture.digest, f"{what}\nthe store changed"
    finally:
        if digest_dir(fixture.store) != fixture.digest:
            fixture.restore()


# ---- the Python SDK: each call must raise a dreamdb.Error (or TypeError/ValueError for
# arguments of the wrong Python type) with a one-line message, and change nothing ----

PY_SETUP = """
import json, sys, traceback
import numpy as np
import dreamdb
S = sys.argv[1]
ds = dreamdb.Dataset.open("d", store=S)
ro = dreamdb.Dataset.open_at("d", "v1", store=S)
E4 = [0.25, 0.5, 0.75, 1.0]
"""

PYTHON_CASES: dict[str, str] = {
    "open.bad_name": "dreamdb.Dataset.open('../x', store=S)",
    "open.empty_name": "dreamdb.Dataset.open('', store=S)",
    "open.esc_name": "dreamdb.Dataset.open('\\x1b[2J', store=S)",
    "open.missing": "dreamdb.Dataset.open('nope', store=S)",
    "open.bad_branch": "dreamdb.Dataset.open('d', store=S, branch='a/../b')",
    "open_at.bad_ref": "dreamdb.Dataset.open_at('d', 'nope', store=S)",
    "open_at.bad_manifest": "dreamdb.Dataset.open_at('d', 'b' + 'a' * 58, store=S)",
    "store.unknown_scheme": "dreamdb.open_store('gopher://x')",
    "store.s3_secret": "dreamdb.open_store('s3://AK:SuperSecretKey123@b/p').list_datasets()",
    "store.empty": "dreamdb.open_store('')",
    "create.exists": "dreamdb.Dataset.create('d', dreamdb.Schema().add_int('x'), store=S)",
    "create.empty_schema": "dreamdb.Dataset.create('zz', dreamdb.Schema(), store=S)",
    "schema.dim_zero": "dreamdb.Schema().add_embedding('e', 0)",
    "schema.dim_negative": "dreamdb.Schema().add_embedding('e', -1)",
    "schema.bad_name": "dreamdb.Schema().add_int('a/b')",
    "schema.dup_name": "dreamdb.Schema().add_int('a').add_int('a')",
    "schema.from_json_bad": "dreamdb.Schema.from_json('{')",
    "schema.from_json_deep": "dreamdb.Schema.from_json('[' * 100000 + ']' * 100000)",
    "schema.array_bad_shape": "dreamdb.Schema().add_array('a', 'i32', [0])",
    "schema.array_bad_dtype": "dreamdb.Schema().add_array('a', 'complex', [2])",
    "schema.metric": "dreamdb.Schema().add_embedding('e', 4, metric='hamming')",
    "schema.image_mime_html": "dreamdb.Schema().add_image('i', mime='text/html')",
    "schema.image_mime_svg": "dreamdb.Schema().add_image('i', mime='image/svg+xml')",
    "append.wrong_type": "ds.append_many([{'n': 'x', 's': 'a', 'e': E4}])",
    "append.unknown_field": "ds.append_many([{'n': 1, 's': 'a', 'e': E4, 'zz': 1}])",
    "append.short_embedding": "ds.append_many([{'n': 1, 's': 'a', 'e': [1.0]}])",
    "append.missing_required": "ds.append_many([{'s': 'a', 'e': E4}], anchors=[500])",
    "append.anchors_mismatch": "ds.append_many([{'n': 1, 's': 'a', 'e': E4}], anchors=[1, 2])",
    "append.anchor_negative": "ds.append_many([{'n': 1, 's': 'a', 'e': E4}], anchors=[-1])",
    "append.anchor_overflow": "ds.append_many([{'n': 1, 's': 'a', 'e': E4}], anchors=[2**64])",
    "append.dup_anchors": "ds.append_many([{'n': 1, 's': 'a', 'e': E4}] * 2, anchors=[3, 3])",
    "append.empty": "ds.append_many([])",
    "append.read_only": "ro.append_many([{'n': 1, 's': 'a', 'e': E4}], anchors=[600])",
    "append.nan_embedding": "ds.append_many([{'n': 1, 's': 'a', 'e': [float('nan'), 0, 0, 1]}], anchors=[601])",
    "append.inf_embedding": "ds.append_many([{'n': 1, 's': 'a', 'e': [float('inf'), 0, 0, 1]}], anchors=[602])",
    "append.int_overflow": "ds.append_many([{'n': 2**70, 's': 'a', 'e': E4}], anchors=[603])",
    "delete.negative": "ds.delete([-5])",
    "delete.read_only": "ro.delete([1])",
    "take.negative": "ds.take([-1])",
    "take.unknown_field": "ds.take([1], fields=['zz'])",
    "take.absent": "ds.take([10**15])",
    "iter.unknown_field": "list(ds.iter_batches(fields=['zz']))",
    "snapshot.bad": "ds.snapshot('a/../b')",
    "snapshot.exists": "ds.snapshot('v1')",
    "branch.bad": "ds.create_branch('..')",
    "branch.exists": "ds.create_branch('dev')",
    "merge.unknown": "ds.merge('nope')",
    "merge.bad_policy": "ds.merge('dev', policy='whatever')",
    "merge_many.bad_source": "ds.merge_many([5])",
    "merge.read_only": "ro.merge('dev')",
    "diff.unknown": "ds.diff('nope')",
    "search.wrong_dim": "ds.search('e', [1.0, 2.0])",
    "search.unknown_field": "ds.search('zz', E4)",
    "search.k_zero": "ds.search('e', E4, k=0)",
    "search.nan_query": "ds.search('e', [float('nan'), 0, 0, 1])",
    "build_index.not_embedding": "ds.build_index('n')",
    "build_index.bad_algorithm": "ds.build_index('e', algorithm='magic')",
    "meta.bad_key": "ds.set_meta({'': 'x'})",
    "layer.bad_name": "ds.add_scalar_layer('a/b', [1], [1.0])",
    "layer.mismatch": "ds.add_scalar_layer('zz', [1, 2], [1.0])",
    "layer.embedding_dim": "ds.add_embedding_layer('e', [1], [[1.0, 2.0]])",
    "compare.unknown_ref": "dreamdb.compare_refs(ds, ['main', 'nope'])",
    "verify.bad_name": "dreamdb.verify(S, '../x')",
}
PY_XFAIL: dict[str, str] = {}

PY_RUNNER = PY_SETUP + """
import hashlib, pathlib
root = pathlib.Path(S[len("file://"):])
def digest():
    h = hashlib.blake2b(digest_size=16)
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + b"\\0" + p.read_bytes() + b"\\0")
    return h.hexdigest()
before = digest()
cases = json.loads(sys.stdin.read())
for cid, expr in cases:
    print("START " + cid, flush=True)
    try:
        eval(expr)
        res = {"id": cid, "raised": None}
    except Exception as e:  # noqa: BLE001
        res = {"id": cid, "raised": type(e).__name__, "mro": [c.__name__ for c in type(e).__mro__],
               "message": str(e)}
    res["changed"] = digest() != before
    print("RESULT " + json.dumps(res), flush=True)
    if res["changed"]:
        sys.exit(3)  # the parent restores the store and goes on with the next case
"""


@pytest.fixture(scope="module")
def python_results(fixture: Fixture) -> dict[str, dict]:
    """Runs every Python case in one interpreter (restarted after a crash); the result of
    each, or {"crashed": ...} for the case that took the interpreter down."""
    probe = subprocess.run([sys.executable, "-c", "import dreamdb"], capture_output=True)
    if probe.returncode != 0:
        if os.environ.get("DREAMDB_REQUIRE_PYTHON") == "1":
            pytest.fail("the dreamdb Python package is not importable")
        pytest.skip("the dreamdb Python package is not installed")
    todo = list(PYTHON_CASES.items())
    results: dict[str, dict] = {}
    while todo:
        p = subprocess.run([sys.executable, "-c", PY_RUNNER, "file://" + str(fixture.store)],
                           input=json.dumps(todo), capture_output=True, text=True, timeout=600,
                           env=clean_env(), preexec_fn=limit_memory)
        started = None
        for line in p.stdout.splitlines():
            if line.startswith("START "):
                started = line[6:]
            elif line.startswith("RESULT "):
                r = json.loads(line[7:])
                results[r["id"]] = r
                started = None
        done = set(results)
        if digest_dir(fixture.store) != fixture.digest:
            fixture.restore()
        if started is not None:
            results[started] = {"id": started, "crashed": p.returncode, "stderr": p.stderr[-2000:]}
            done.add(started)
        elif p.returncode not in (0, 3) and len(done) < len(PYTHON_CASES):
            pytest.fail(f"the Python runner failed: {p.stderr[-2000:]}")
        todo = [(c, e) for c, e in todo if c not in done]
    return results


def py_params() -> list[Any]:
    out = []
    for cid in PYTHON_CASES:
        marks = []
        if cid in PY_XFAIL:
            marks.append(pytest.mark.xfail(strict=True, reason=f"fixed by: {PY_XFAIL[cid]}"))
        out.append(pytest.param(cid, id=f"py.{cid}", marks=marks))
    return out


@pytest.mark.parametrize("cid", py_params())
def test_python_case(cid: str, python_results: dict[str, dict]) -> None:
    r = python_results[cid]
    try:
        assert "crashed" not in r, f"{PYTHON_CASES[cid]} crashed the interpreter: {r}"
        assert r["raised"] is not None, f"{PYTHON_CASES[cid]} raised nothing"
        assert "Error" in r["mro"] or r["raised"] in ("TypeError", "ValueError",
                                                      "OverflowError"), r
        assert "\n" not in r["message"].strip() and r["message"].strip(), r
        assert "SuperSecretKey123" not in r["message"], r
    finally:
        assert not r.get("changed"), f"{PYTHON_CASES[cid]} changed the store"
