# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Sharded ingest (spec/14-semantics.md §19) through the CLI, on file:// and on the local
S3 server: 16 shard processes ingest their byte ranges at once, one `dreamdb commit`
publishes them, and every record is there exactly once with no caller-given anchors. A
shard or a commit run twice changes nothing; a missing shard fails the commit naming it;
shard indices come from Slurm and Kubernetes variables, inconsistent ones are refused."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import time
import uuid

import pytest

from cli_harness import Cli, clean_env

SCHEMA = {"fields": [
    {"name": "id", "type": "int64"},
    {"name": "text", "type": "string", "optional": True},
]}


def s3_settings() -> dict[str, str] | None:
    endpoint = os.environ.get("DREAMDB_S3_ENDPOINT")
    if not endpoint:
        return None
    return {"endpoint": endpoint, "bucket": os.environ["DREAMDB_S3_BUCKET"],
            # tests/python/conftest.py clears AWS_* for the whole pytest session and keeps
            # the local server's test credentials as DREAMDB_TEST_AWS_*.
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID")
            or os.environ.get("DREAMDB_TEST_AWS_ACCESS_KEY_ID", ""),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY")
            or os.environ.get("DREAMDB_TEST_AWS_SECRET_ACCESS_KEY", "")}


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, dreamdb_bin: pathlib.Path,
          tmp_path: pathlib.Path) -> tuple[Cli, dict[str, str]]:
    """A Cli on a fresh store and the environment its children need."""
    if request.param == "file":
        env = clean_env()
        cli = Cli(dreamdb_bin, "file://" + str(tmp_path / "store"), tmp_path)
    else:
        s3 = s3_settings()
        if s3 is None:
            if os.environ.get("CI") or os.environ.get("DREAMDB_REQUIRE_S3") == "1":
                pytest.fail("no local S3 server (DREAMDB_S3_ENDPOINT unset); "
                            "scripts/test.sh starts one with scripts/s3_server.sh")
            pytest.skip("no local S3 server: start one with scripts/s3_server.sh and source its env")
        env = clean_env(AWS_ACCESS_KEY_ID=s3["AWS_ACCESS_KEY_ID"],
                        AWS_SECRET_ACCESS_KEY=s3["AWS_SECRET_ACCESS_KEY"])
        prefix = f"jobs-{uuid.uuid4().hex[:12]}"
        cli = Cli(dreamdb_bin, f"s3://{s3['bucket']}/{prefix}?endpoint={s3['endpoint']}",
                  tmp_path)
    cli.ok("init", env=env)
    (tmp_path / "schema.json").write_text(json.dumps(SCHEMA))
    cli.ok("create", "d", "--schema", str(tmp_path / "schema.json"), env=env)
    return cli, env


def write_input(path: pathlib.Path, n: int) -> list[int]:
    """n records with ids 0..n-1, lines of varied length, and a few blank lines."""
    lines = []
    for i in range(n):
        lines.append(json.dumps({"id": i, "text": "x" * (i * 37 % 101)}))
        if i % 97 == 0:
            lines.append("")
    path.write_text("\n".join(lines) + "\n")
    return list(range(n))


def shard_argv(cli: Cli, *args: str) -> list[str]:
    return [str(cli.binary), "--store", cli.store_uri, *args]


def run_shards(cli: Cli, env: dict[str, str], input_path: pathlib.Path, job: str, of: int,
               shards: list[int], batch: int = 64) -> list[dict]:
    procs = [subprocess.Popen(shard_argv(cli, "--json", "ingest", "d", str(input_path),
                                         "--job", job, "--shard", str(k), "--of", str(of),
                                         "--batch-size", str(batch)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                              cwd=cli.cwd)
             for k in shards]
    out = []
    for k, p in zip(shards, procs):
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, (k, stdout, stderr)
        out.append(json.loads(stdout))
    return out


def ids(cli: Cli, env: dict[str, str]) -> list[int]:
    return sorted(r["id"] for r in cli.ok("cat", "d", env=env).jsonl())


def head(cli: Cli, env: dict[str, str]) -> str:
    return cli.ok("--json", "count", "d", env=env).json()["manifest"]


def test_sixteen_concurrent_shards_and_one_commit_give_every_record_once(
        store: tuple[Cli, dict[str, str]], tmp_path: pathlib.Path) -> None:
    cli, env = store
    cli.ok("ingest", "d", "-", input=b'{"id": -1}\n{"id": -2}\n', env=env)  # already there
    want = write_input(tmp_path / "in.jsonl", 2000)
    results = run_shards(cli, env, tmp_path / "in.jsonl", "j1", 16, list(range(16)))
    assert sum(r["records"] for r in results) == 2000
    assert [r["shard"] for r in results] == list(range(16))
    # Byte ranges tile the file.
    assert results[0]["bytes_begin"] == 0
    assert all(a["bytes_end"] == b["bytes_begin"] for a, b in zip(results, results[1:]))
    assert results[-1]["bytes_end"] == (tmp_path / "in.jsonl").stat().st_size
    assert ids(cli, env) == [-2, -1]  # nothing is published before the commit
    c = cli.ok("--json", "commit", "d", "--job", "j1", env=env).json()
    assert c["shards"] == 16 and c["added"] == 2000 and not c["already_committed"]
    assert c["count"] == 2002
    assert ids(cli, env) == [-2, -1] + want
    # No work branch is left behind.
    assert [b for b in cli.ok("refs", "d", env=env).out.split() if "jobs/" in b and
            "/branches/" in b] == []
    published = head(cli, env)

    # A shard run twice writes nothing.
    again = run_shards(cli, env, tmp_path / "in.jsonl", "j1", 16, [3])
    assert again[0]["already_done"] and again[0]["result"] == results[3]["result"]
    # A commit run twice writes nothing.
    c2 = cli.ok("--json", "commit", "d", "--job", "j1", env=env).json()
    assert c2["already_committed"] and c2["manifest"] == published
    assert head(cli, env) == published
    assert "already committed" in cli.ok("commit", "d", "--job", "j1", env=env).out
    # Plain appends afterwards never reuse a reserved anchor.
    cli.ok("ingest", "d", "-", input=b'{"id": 5000}\n', env=env)
    assert ids(cli, env) == [-2, -1] + want + [5000]
    assert cli.ok("verify", env=env).code == 0
    # GC deletes only superseded allocator objects: the current allocator and the job's
    # refs survive (an append reserves through it; the commit still knows it is done).
    cli.ok("--json", "gc", "--grace", "0", "--no-writers-running", env=env)
    cli.ok("ingest", "d", "-", input=b'{"id": 5001}\n', env=env)
    assert ids(cli, env) == [-2, -1] + want + [5000, 5001]
    assert "already committed" in cli.ok("commit", "d", "--job", "j1", env=env).out
    assert cli.ok("verify", env=env).code == 0


def test_missing_shard_fails_the_commit_naming_it(store: tuple[Cli, dict[str, str]],
                                                  tmp_path: pathlib.Path) -> None:
    cli, env = store
    write_input(tmp_path / "in.jsonl", 100)
    run_shards(cli, env, tmp_path / "in.jsonl", "j2", 4, [0, 1, 3])
    before = head(cli, env)
    r = cli.run("commit", "d", "--job", "j2", env=env)
    assert r.code == 4, r
    assert "shard 2 of 4 has not finished" in r.err and "d/jobs/j2/shards/" in r.err, r.err
    assert head(cli, env) == before
    run_shards(cli, env, tmp_path / "in.jsonl", "j2", 4, [2])
    assert cli.ok("--json", "commit", "d", "--job", "j2", env=env).json()["added"] == 100
    assert ids(cli, env) == list(range(100))


@pytest.fixture
def file_cli(cli: Cli, tmp_path: pathlib.Path) -> Cli:
    (tmp_path / "schema.json").write_text(json.dumps(SCHEMA))
    cli.ok("create", "d", "--schema", str(tmp_path / "schema.json"))
    write_input(tmp_path / "in.jsonl", 60)
    return cli


def test_shard_index_from_slurm_and_kubernetes_variables(file_cli: Cli,
                                                          tmp_path: pathlib.Path) -> None:
    cli = file_cli
    # --array=1-5:2 -> ids 1, 3, 5: shards 0, 1, 2 of 3.
    for task in (1, 3, 5):
        r = cli.ok("--json", "ingest", "d", "in.jsonl", "--job", "slurm",
                   env=clean_env(SLURM_ARRAY_TASK_ID=str(task), SLURM_ARRAY_TASK_MIN="1",
                                 SLURM_ARRAY_TASK_STEP="2", SLURM_ARRAY_TASK_COUNT="3")).json()
        assert (r["shard"], r["of"]) == ((task - 1) // 2, 3)
    assert cli.ok("--json", "commit", "d", "--job", "slurm").json()["added"] == 60
    # An Indexed Job of 2 completions, on a branch.
    cli.ok("branch", "d", "k8s")
    for index in (0, 1):
        r = cli.ok("--json", "ingest", "d", "in.jsonl", "--job", "k8s", "--branch", "k8s",
                   env=clean_env(JOB_COMPLETION_INDEX=str(index), DREAMDB_SHARD_COUNT="2")).json()
        assert (r["shard"], r["of"]) == (index, 2)
    c = cli.ok("--json", "commit", "d", "--job", "k8s").json()
    assert c["branch"] == "k8s" and c["added"] == 60


@pytest.mark.parametrize("args,env,needle", [
    (["--shard", "0", "--of", "2"], {}, "--shard/--of need --job"),
    (["--job", "j", "--shard", "2", "--of", "2"], {}, "is not below --of 2"),
    (["--job", "j", "--shard", "0"], {}, "needs --of"),
    (["--job", "j"], {}, "no shard index"),
    (["--job", "j"], {"SLURM_ARRAY_TASK_ID": "9", "SLURM_ARRAY_TASK_MIN": "1",
                      "SLURM_ARRAY_TASK_COUNT": "3"}, "SLURM_ARRAY_TASK_ID=9"),
    (["--job", "j", "--of", "4"], {"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_MIN": "0",
                                   "SLURM_ARRAY_TASK_COUNT": "3"}, "SLURM_ARRAY_TASK_COUNT=3"),
    (["--job", "j"], {"JOB_COMPLETION_INDEX": "1"}, "DREAMDB_SHARD_COUNT"),
    (["--job", "j"], {"JOB_COMPLETION_INDEX": "2", "DREAMDB_SHARD_COUNT": "2"},
     "is not below DREAMDB_SHARD_COUNT 2"),
    (["--job", "bad/id", "--shard", "0", "--of", "1"], {}, "job id 'bad/id'"),
])
def test_bad_shard_settings_are_refused_by_name(file_cli: Cli, args: list[str],
                                                env: dict[str, str], needle: str) -> None:
    r = file_cli.run("ingest", "d", "in.jsonl", *args, env=clean_env(**env))
    assert r.code in (2, 3, 4), r
    assert needle in r.err, r.err
    assert "/jobs/" not in file_cli.ok("refs", "d").out


def test_sharded_ingest_refuses_stdin_csv_and_plan_mismatches(file_cli: Cli,
                                                               tmp_path: pathlib.Path) -> None:
    cli = file_cli
    r = cli.run("ingest", "d", "-", "--job", "j", "--shard", "0", "--of", "1", input=b"")
    assert r.code == 3 and "standard input" in r.err, r
    (tmp_path / "in.csv").write_text("id\n1\n")
    r = cli.run("ingest", "d", "in.csv", "--job", "j", "--shard", "0", "--of", "1")
    assert r.code == 3 and "CSV" in r.err, r
    cli.ok("ingest", "d", "in.jsonl", "--job", "j", "--shard", "0", "--of", "2")
    r = cli.run("ingest", "d", "in.jsonl", "--job", "j", "--shard", "1", "--of", "3")
    assert r.code == 3 and "planned as branch 'main' with 2 shards" in r.err, r
    r = cli.run("commit", "d", "--job", "nope")
    assert r.code == 4 and "no plan" in r.err, r


def test_a_bad_record_names_its_shard_and_commits_nothing_of_it(file_cli: Cli,
                                                                tmp_path: pathlib.Path) -> None:
    cli = file_cli
    (tmp_path / "bad.jsonl").write_text('{"id": 1}\n{"id": 2}\n{"id": "x"}\n{"id": 4}\n')
    r = cli.run("ingest", "d", "bad.jsonl", "--job", "b", "--shard", "0", "--of", "1")
    assert r.code == 3, r
    assert "shard 0 of 1 of job 'b'" in r.err and "line 3" in r.err, r.err
    assert cli.run("commit", "d", "--job", "b").code == 4


def test_shard_killed_mid_way_runs_again_and_every_record_is_there_once(
        file_cli: Cli, tmp_path: pathlib.Path) -> None:
    """kill -9 after the shard's first batch landed on its work branch; the re-run starts
    from the job's base again (the dropped batch's reserved anchors stay unused)."""
    cli = file_cli
    want = write_input(tmp_path / "big.jsonl", 20000)
    p = subprocess.Popen(shard_argv(cli, "ingest", "d", "big.jsonl", "--job", "k", "--shard",
                                    "0", "--of", "1", "--batch-size", "50"),
                         cwd=cli.cwd, env=clean_env(), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and p.poll() is None:
        r = cli.run("--json", "count", "d", "--at", "jobs/k/shard-0")
        if r.code == 0 and r.json()["count"] > 0:
            break
        time.sleep(0.005)
    p.send_signal(signal.SIGKILL)
    p.wait()
    cli.ok("ingest", "d", "big.jsonl", "--job", "k", "--shard", "0", "--of", "1",
           "--batch-size", "5000")
    assert cli.ok("--json", "commit", "d", "--job", "k").json()["added"] == 20000
    assert sorted(r["id"] for r in cli.ok("cat", "d").jsonl()) == want
    cli.ok("verify")


def test_files_from_list_split_across_shards_gives_every_file_once(
        store: tuple[Cli, dict[str, str]], tmp_path: pathlib.Path) -> None:
    """`ingest --files-from LIST --shard N --of M`: shard N takes files [N*F/M, (N+1)*F/M)
    of the list, each whole (CSV too); a rerun of a shard or the commit changes nothing."""
    cli, env = store
    (tmp_path / "parts").mkdir()
    names = []
    for i in range(7):
        if i % 3 == 2:
            name = f"p{i}.csv"
            (tmp_path / "parts" / name).write_text(
                "id,text\n" + "".join(f"{i * 100 + j},c{j}\n" for j in range(20)))
        else:
            name = f"p{i}.jsonl"
            (tmp_path / "parts" / name).write_text(
                "".join(json.dumps({"id": i * 100 + j}) + "\n" for j in range(20)))
        names.append(name)
    # Relative paths resolve against the list's directory; comments and blanks skipped.
    (tmp_path / "parts" / "list.txt").write_text(
        "# the parts\n" + "\n".join(names[:-1]) + "\n\n" + str(tmp_path / "parts" / names[-1]) + "\n")
    want = sorted(i * 100 + j for i in range(7) for j in range(20))
    spans = []
    for k in range(3):
        r = cli.ok("--json", "ingest", "d", "--files-from", str(tmp_path / "parts" / "list.txt"),
                   "--job", "fl", "--shard", str(k), "--of", "3", "--batch-size", "15",
                   env=env).json()
        spans.append((r["files_begin"], r["files_end"]))
        assert r["records"] == 20 * (r["files_end"] - r["files_begin"])
    assert spans == [(0, 2), (2, 4), (4, 7)]
    again = cli.ok("--json", "ingest", "d", "--files-from", str(tmp_path / "parts" / "list.txt"),
                   "--job", "fl", "--shard", "1", "--of", "3", env=env).json()
    assert again["already_done"] and again["records"] == 0
    assert cli.ok("--json", "commit", "d", "--job", "fl", env=env).json()["added"] == 140
    assert ids(cli, env) == want
    # Unsharded: every file in order.
    cli.ok("branch", "d", "plain", env=env)
    r = cli.ok("--json", "ingest", "d", "--files-from", str(tmp_path / "parts" / "list.txt"),
               "--branch", "plain", env=env).json()
    assert r["files"] == 7 and r["records"] == 140


def test_files_from_refuses_a_file_too_and_an_empty_list_and_names_a_missing_file(
        file_cli: Cli, tmp_path: pathlib.Path) -> None:
    cli = file_cli
    (tmp_path / "list.txt").write_text("in.jsonl\nmissing.jsonl\n")
    r = cli.run("ingest", "d", "in.jsonl", "--files-from", "list.txt")
    assert r.code == 2 and "not both" in r.err, r
    r = cli.run("ingest", "d")
    assert r.code == 2 and "--files-from" in r.err, r
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    r = cli.run("ingest", "d", "--files-from", "empty.txt")
    assert r.code == 3 and "names no file" in r.err, r
    r = cli.run("ingest", "d", "--files-from", "list.txt", "--job", "m", "--shard", "0",
                "--of", "1")
    assert r.code == 4 and "missing.jsonl" in r.err, r
    assert cli.run("commit", "d", "--job", "m").code == 4  # the shard did not finish


def test_job_rm_removes_a_committed_job_and_an_abandoned_one_only_when_asked(
        file_cli: Cli, tmp_path: pathlib.Path) -> None:
    cli = file_cli
    for k in range(2):
        cli.ok("ingest", "d", "in.jsonl", "--job", "done", "--shard", str(k), "--of", "2")
    cli.ok("commit", "d", "--job", "done")
    st = cli.ok("--json", "job", "status", "d", "done").json()
    assert st["finished"] == 2 and st["of"] == 2 and st["committed"]
    published = head(cli, clean_env())
    r = cli.ok("--json", "job", "rm", "d", "done").json()
    assert r == {"dataset": "d", "job": "done", "committed": True, "refs": 4,
                 "work_branches": 0}
    assert "/jobs/done/" not in cli.ok("refs", "d").out
    assert head(cli, clean_env()) == published and len(ids(cli, clean_env())) == 60
    assert cli.run("job", "status", "d", "done").code == 4
    assert cli.run("job", "rm", "d", "done").code == 4
    # An abandoned job: one shard finished, never committed.
    cli.ok("ingest", "d", "in.jsonl", "--job", "old", "--shard", "0", "--of", "2")
    assert "not committed" in cli.ok("job", "status", "d", "old").out
    r = cli.run("job", "rm", "d", "old")
    assert r.code == 3 and "was not committed" in r.err and "--abandon" in r.err, r
    r = cli.ok("--json", "job", "rm", "d", "old", "--abandon").json()
    assert not r["committed"] and r["refs"] == 2
    assert "/jobs/" not in cli.ok("refs", "d").out
    # GC then reclaims what only the abandoned shard reached; the data stays intact.
    cli.ok("gc", "--grace", "0", "--no-writers-running")
    cli.ok("verify")
    assert len(ids(cli, clean_env())) == 60


def test_verify_shards_combined_find_what_one_verify_finds(file_cli: Cli,
                                                           tmp_path: pathlib.Path) -> None:
    cli = file_cli
    for i in range(6):
        cli.ok("ingest", "d", "in.jsonl", "--batch-size", "7")
    whole = cli.ok("--json", "verify", "d").jsonl()[-1]
    out = tmp_path / "verify"
    out.mkdir()
    objects = 0
    for k in range(3):
        r = cli.ok("--json", "verify", "d", "--shard", str(k), "--of", "3")
        (out / f"{k}.json").write_text(r.out)
        s = r.jsonl()[-1]
        assert (s["shard"], s["of"], s["problems"]) == (k, 3, 0)
        objects += s["objects"]
    assert objects < 3 * whole["objects"]  # segments are read by one shard each
    c = cli.ok("--json", "verify", "d", "--combine", str(out)).json()
    assert c["of"] == 3 and c["problems"] == 0 and c["objects"] == objects
    # A missing shard result is named.
    (out / "1.json").rename(tmp_path / "1.json")
    r = cli.run("verify", "d", "--combine", str(out))
    assert r.code == 4 and "shards 1 of 3 have no result" in r.err, r
    (tmp_path / "1.json").rename(out / "1.json")
    # The refs moved between shards: their union checked no single state.
    cli.ok("ingest", "d", "in.jsonl")
    (out / "2.json").write_text(cli.ok("--json", "verify", "d", "--shard", "2", "--of",
                                       "3").out)
    r = cli.run("verify", "d", "--combine", str(out))
    assert r.code == 6 and "different states" in r.err, r
    # A damaged segment: found by exactly one shard, reported by the combination.
    for k in range(3):
        (out / f"{k}.json").write_text(
            cli.run("--json", "verify", "d", "--shard", str(k), "--of", "3").out)
    store_dir = pathlib.Path(cli.store_uri.removeprefix("file://"))
    victim = max((p for p in store_dir.rglob("*") if p.is_file() and "objects" in p.parts),
                 key=lambda p: p.stat().st_size)
    victim.chmod(0o644)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    found = []
    for k in range(3):
        r = cli.run("--json", "verify", "d", "--shard", str(k), "--of", "3")
        (out / f"{k}.json").write_text(r.out)
        found.append(r.code)
    assert 7 in found
    one = cli.run("--json", "verify", "d")
    assert one.code == 7
    r = cli.run("--json", "verify", "d", "--combine", str(out))
    assert r.code == 7, r
    problems = sorted(x["problem"] for x in r.jsonl() if "problem" in x)
    assert problems == sorted(x["problem"] for x in one.jsonl() if "problem" in x)
