# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Transcript tests for the plumbing commands of `dreamdb` (cli/README.md).

Each test runs the real binary against a fresh file:// store and checks stdout, stderr,
the --json shapes and the exit codes of the error table (spec/07-errors.md).
"""

from __future__ import annotations

import base64
import os
import pathlib
import re
import shutil
import subprocess

import pytest

from cli_harness import EXIT, Cli, clean_env

ID_RE = re.compile(r"^b[a-z2-7]{55}$")


def id_from_multihash(multihash: bytes) -> str:
    return "b" + base64.b32encode(multihash).decode().lower().rstrip("=")


def shard_of(object_id: str) -> str:
    text = object_id[1:].upper()
    multihash = base64.b32decode(text + "=" * (-len(text) % 8))
    return multihash[2:3].hex()


def blake3_id(data: bytes) -> str:
    """The expected id, computed independently with Debian's b3sum."""
    assert shutil.which("b3sum"), "b3sum is missing: scripts/bootstrap.sh installs it"
    digest = subprocess.run(["b3sum", "--no-names"], input=data, capture_output=True,
                            check=True).stdout.split()[0]
    return id_from_multihash(b"\x1e\x20" + bytes.fromhex(digest.decode()))


def missing_id() -> str:
    return blake3_id(b"this object is never stored")


# ---- version and help ----------------------------------------------------------------


def test_version(cli: Cli) -> None:
    r = cli.ok("--version", store=False)
    assert re.fullmatch(r"dreamdb \d+\.\d+\.\d+\n", r.out), r
    assert cli.ok("version", store=False).out == r.out
    version = r.out.split()[1]
    assert cli.ok("--json", "--version", store=False).json() == {"version": version}
    assert cli.ok("version", "--json", store=False).json() == {"version": version}


def test_help_lists_every_command(cli: Cli) -> None:
    r = cli.ok("--help", store=False)
    for command in ["object put", "object get", "object head", "object ls", "ref get",
                    "ref create", "ref update", "ref delete", "ref ls", "version", "help"]:
        assert re.search(rf"^  {command}\s", r.out, re.M), (command, r.out)
    assert "exit codes:" in r.out
    assert cli.ok("help", store=False).out == r.out


@pytest.mark.parametrize("argv", [
    ["help", "ref", "update"], ["ref", "update", "--help"], ["ref", "update", "-h"],
    ["--help", "ref", "update"], ["ref", "update", "x", "--help"],
])
def test_command_help(cli: Cli, argv: list[str]) -> None:
    r = cli.ok(*argv, store=False)
    assert r.out.startswith("usage: dreamdb ref update NAME NEW --expect OLD\n"), r
    assert "--expect OLD" in r.out and "global flags:" in r.out


def test_group_help(cli: Cli) -> None:
    r = cli.ok("object", "--help", store=False)
    assert "object put" in r.out and "ref get" not in r.out
    r = cli.ok("help", "ref", store=False)
    assert "ref update" in r.out and "object put" not in r.out


def test_no_arguments_is_usage_error(cli: Cli) -> None:
    r = cli.run(store=False)
    assert r.code == EXIT["usage"] and r.stdout == b"" and "usage: dreamdb" in r.err


def test_group_without_subcommand(cli: Cli) -> None:
    r = cli.run("object", store=False)
    assert r.code == 2 and "needs a subcommand" in r.err and "object put" in r.err


# ---- objects -------------------------------------------------------------------------


def test_put_get_roundtrip_file_and_stdin(cli: Cli, tmp_path: pathlib.Path) -> None:
    data = b"hello, dreamdb\n"
    f = tmp_path / "hello.txt"
    f.write_bytes(data)
    r = cli.ok("object", "put", str(f))
    object_id = r.out.strip()
    assert r.out == object_id + "\n" and ID_RE.match(object_id)
    assert object_id == blake3_id(data)
    assert cli.ok("object", "put", "-", input=data).out.strip() == object_id  # idempotent
    assert cli.ok("object", "get", object_id).stdout == data
    assert cli.ok("object", "head", object_id).out == f"{object_id} {len(data)}\n"


def test_put_empty_object(cli: Cli) -> None:
    object_id = cli.put(b"")
    assert object_id == blake3_id(b"")
    assert cli.ok("object", "get", object_id).stdout == b""
    assert cli.ok("--json", "object", "head", object_id).json() == {
        "id": object_id, "size_bytes": 0}


def test_put_many_files_prints_ids_in_order(cli: Cli, tmp_path: pathlib.Path) -> None:
    contents = [b"one", b"two", b"three", b"one"]
    paths = []
    for i, c in enumerate(contents):
        p = tmp_path / f"f{i}"
        p.write_bytes(c)
        paths.append(str(p))
    r = cli.ok("object", "put", *paths[:2], "-", paths[3], input=contents[2])
    assert r.out.splitlines() == [blake3_id(c) for c in contents]
    rows = cli.ok("object", "put", "--json", *paths).jsonl()
    assert rows == [{"id": blake3_id(c), "size_bytes": len(c)} for c in contents]


def test_put_json(cli: Cli) -> None:
    r = cli.ok("--json", "object", "put", "-", input=b"abc")
    assert r.json() == {"id": blake3_id(b"abc"), "size_bytes": 3}
    assert r.stderr == b""


def test_put_stdin_twice_is_usage_error(cli: Cli) -> None:
    r = cli.fails("usage", "object", "put", "-", "-", input=b"x")
    assert "'-'" in r.err


def test_put_missing_file(cli: Cli, tmp_path: pathlib.Path) -> None:
    r = cli.fails("not_found", "object", "put", str(tmp_path / "nope"))
    assert "nope" in r.err


def test_put_directory(cli: Cli, tmp_path: pathlib.Path) -> None:
    cli.fails("invalid_argument", "object", "put", str(tmp_path))


def test_get_to_file(cli: Cli, tmp_path: pathlib.Path) -> None:
    object_id = cli.put(b"to a file")
    out = tmp_path / "out.bin"
    r = cli.ok("object", "get", object_id, "-o", str(out))
    assert r.stdout == b"" and out.read_bytes() == b"to a file"
    out2 = tmp_path / "out2.bin"
    r = cli.ok("object", "get", "--json", object_id, f"--output={out2}")
    assert r.json() == {"id": object_id, "size_bytes": 9, "path": str(out2)}
    assert out2.read_bytes() == b"to a file"


def test_get_json_without_output_is_usage_error(cli: Cli) -> None:
    object_id = cli.put(b"x")
    r = cli.fails("usage", "--json", "object", "get", object_id)
    err = r.error_json()
    assert err["code"] == "usage" and "-o FILE" in err["message"]


def test_get_write_error_is_io_error(cli: Cli) -> None:
    object_id = cli.put(b"x" * 100)
    cli.fails("io_error", "object", "get", object_id, "-o", "/dev/full")


def test_missing_object(cli: Cli) -> None:
    absent = missing_id()
    for argv in [["get", absent], ["get", absent, "-o", os.devnull], ["head", absent]]:
        r = cli.fails("not_found", "object", *argv)
        assert absent in r.err, r
        if argv[0] == "head" or "-o" in argv:
            err = cli.fails("not_found", "--json", "object", *argv).error_json()
            assert err["code"] == "not_found" and absent in err["message"]


def test_ls(cli: Cli) -> None:
    assert cli.ok("object", "ls").stdout == b""
    assert cli.ok("object", "ls", "--json").stdout == b""
    blobs = [f"object {i}".encode() for i in range(40)]
    for i, b in enumerate(blobs):
        (cli.cwd / f"blob{i}").write_bytes(b)
    ids = cli.ok("object", "put", *(f"blob{i}" for i in range(len(blobs)))).out.split()
    assert ids == [blake3_id(b) for b in blobs]
    listed = cli.ok("object", "ls").out.splitlines()
    assert sorted(listed) == sorted(ids)
    # Within one shard, ids are in ascending order.
    by_shard: dict[str, list[str]] = {}
    for i in listed:
        by_shard.setdefault(shard_of(i), []).append(i)
    assert all(v == sorted(v) for v in by_shard.values())

    rows = cli.ok("--json", "object", "ls").jsonl()
    assert sorted(rows, key=lambda r: r["id"]) == sorted(
        ({"id": blake3_id(b), "size_bytes": len(b)} for b in blobs), key=lambda r: r["id"])
    long_rows = cli.ok("object", "ls", "-l").out.splitlines()
    assert sorted(long_rows) == sorted(f"{blake3_id(b)} {len(b)}" for b in blobs)

    shard = shard_of(ids[0])
    for prefix in [shard, shard[0]]:
        got = cli.ok("object", "ls", "--shard", prefix).out.splitlines()
        assert got == [i for i in listed if shard_of(i).startswith(prefix)]
    assert sorted(cli.ok("object", "ls", "--shard=").out.splitlines()) == sorted(ids)


@pytest.mark.parametrize("shard", ["xyz", "g", "AB", "abc", "0x"])
def test_ls_bad_shard(cli: Cli, shard: str) -> None:
    r = cli.fails("invalid_argument", "object", "ls", "--shard", shard)
    assert "--shard" in r.err


def test_large_object_roundtrip(cli: Cli, tmp_path: pathlib.Path) -> None:
    data = os.urandom(48 << 20) + b"tail"
    f = tmp_path / "big.bin"
    f.write_bytes(data)
    object_id = cli.ok("object", "put", str(f)).out.strip()
    assert object_id == blake3_id(data)
    assert cli.ok("object", "put", "-", input=data).out.strip() == object_id
    got = cli.ok("object", "get", object_id).stdout
    assert got == data
    out = tmp_path / "big.out"
    cli.ok("object", "get", object_id, "-o", str(out))
    assert out.read_bytes() == data
    assert cli.ok("--json", "object", "head", object_id).json()["size_bytes"] == len(data)


def test_corrupt_object_is_detected(cli: Cli, store_dir: pathlib.Path) -> None:
    object_id = cli.put(b"precious bytes")
    files = list(store_dir.rglob(object_id))
    assert len(files) == 1, f"object file for {object_id} not found in the file:// layout"
    os.chmod(files[0], 0o644)
    files[0].write_bytes(b"precious bytez")
    r = cli.fails("corrupt", "object", "get", object_id)
    assert object_id in r.err
    assert cli.fails("corrupt", "--json", "object", "get", object_id, "-o",
                     os.devnull).error_json()["code"] == "corrupt"


# ---- bad object ids ------------------------------------------------------------------


def sha256_multihash_id() -> str:
    return id_from_multihash(b"\x12\x20" + bytes(range(32)))


@pytest.mark.parametrize("bad", [
    "", "xyz", "b", "b" + "a" * 54, "b" + "a" * 56, "B" + "a" * 55, "b" + "A" * 55,
    "b" + "1" * 55, "z" + "a" * 55,
])
def test_bad_object_id(cli: Cli, bad: str) -> None:
    good = cli.put(b"good")
    for argv in [["object", "get", bad], ["object", "head", bad], ["ref", "create", "r", bad],
                 ["ref", "update", "r", bad, "--expect", good],
                 ["ref", "update", "r", good, "--expect", bad],
                 ["ref", "delete", "r", "--expect", bad]]:
        r = cli.fails("invalid_argument", *argv)
        assert "object id" in r.err, r


def test_unsupported_hash_id(cli: Cli) -> None:
    r = cli.fails("unsupported", "object", "get", sha256_multihash_id())
    assert "0x12" in r.err


def test_bad_id_does_not_create_default_store(cli: Cli, tmp_path: pathlib.Path) -> None:
    r = cli.run("object", "get", "xyz", store=False)
    assert r.code == EXIT["invalid_argument"]
    assert not (tmp_path / ".dreamdb").exists()


# ---- refs ----------------------------------------------------------------------------


def test_ref_lifecycle_text(cli: Cli) -> None:
    a, b = cli.put(b"a"), cli.put(b"b")
    name = "mydata/branches/main"
    assert cli.ok("ref", "create", name, a).stdout == b""
    assert cli.ok("ref", "get", name).out == a + "\n"
    assert cli.ok("ref", "update", name, b, "--expect", a).stdout == b""
    assert cli.ok("ref", "get", name).out == b + "\n"
    assert cli.ok("ref", "ls").out == f"{b} {name}\n"
    assert cli.ok("ref", "delete", name, "--expect", b).stdout == b""
    cli.fails("not_found", "ref", "get", name)
    assert cli.ok("ref", "ls").stdout == b""


def test_ref_lifecycle_json(cli: Cli) -> None:
    a, b = cli.put(b"a"), cli.put(b"b")
    name = "ds/branches/dev"
    assert cli.ok("--json", "ref", "create", name, a).json() == {"name": name, "target": a}
    assert cli.ok("ref", "get", name, "--json").json() == {"name": name, "target": a}
    assert cli.ok("ref", "update", "--json", name, b, "--expect", a).json() == {
        "name": name, "target": b, "previous": a}
    assert cli.ok("--json", "ref", "ls").jsonl() == [{"name": name, "target": b}]
    assert cli.ok("--json", "ref", "delete", name, "--expect", b).json() == {
        "name": name, "previous": b}
    assert cli.ok("--json", "ref", "ls").stdout == b""


def test_ref_ls_prefix_and_order(cli: Cli) -> None:
    a = cli.put(b"a")
    names = ["b/branches/main", "a/branches/x", "a/snapshots/v1", "a-b", "a/branches/main"]
    for n in names:
        cli.ok("ref", "create", n, a)
    rows = cli.ok("--json", "ref", "ls").jsonl()
    assert [r["name"] for r in rows] == sorted(names, key=lambda s: s.encode())
    assert [r["name"] for r in cli.ok("--json", "ref", "ls", "a/").jsonl()] == [
        "a/branches/main", "a/branches/x", "a/snapshots/v1"]
    assert cli.ok("ref", "ls", "a/branches/").out == (
        f"{a} a/branches/main\n{a} a/branches/x\n")
    assert cli.ok("ref", "ls", "zzz").stdout == b""


@pytest.mark.parametrize("prefix", ["a b", "x\x01", "a~b", "p" * 256])
def test_ref_ls_bad_prefix(cli: Cli, prefix: str) -> None:
    r = cli.fails("invalid_argument", "ref", "ls", prefix)
    assert "prefix" in r.err


def test_ref_create_twice(cli: Cli) -> None:
    a, b = cli.put(b"a"), cli.put(b"b")
    cli.ok("ref", "create", "main", a)
    r = cli.fails("already_exists", "ref", "create", "main", b)
    assert "main" in r.err
    err = cli.fails("already_exists", "--json", "ref", "create", "main", b).error_json()
    assert err["code"] == "already_exists" and err["exit_code"] == 5
    assert cli.ok("ref", "get", "main").out.strip() == a


def test_ref_cas_conflict(cli: Cli) -> None:
    a, b, c = cli.put(b"a"), cli.put(b"b"), cli.put(b"c")
    cli.ok("ref", "create", "main", a)
    cli.ok("ref", "update", "main", b, "--expect", a)
    r = cli.fails("conflict", "ref", "update", "main", c, "--expect", a)
    err = cli.fails("conflict", "--json", "ref", "update", "main", c, "--expect", a).error_json()
    assert err == {"code": "conflict", "exit_code": 6, "message": err["message"]}
    assert r.err.startswith("dreamdb: error: ")
    assert cli.ok("ref", "get", "main").out.strip() == b
    cli.fails("conflict", "ref", "delete", "main", "--expect", a)
    assert cli.ok("ref", "get", "main").out.strip() == b


def test_ref_not_found_cases(cli: Cli) -> None:
    a = cli.put(b"a")
    absent = missing_id()
    cli.fails("not_found", "ref", "get", "nope")
    cli.fails("not_found", "ref", "update", "nope", a, "--expect", a)
    cli.fails("not_found", "ref", "delete", "nope", "--expect", a)
    cli.fails("not_found", "ref", "create", "main", absent)  # never points at a missing object
    cli.fails("not_found", "ref", "get", "main")
    cli.ok("ref", "create", "main", a)
    cli.fails("not_found", "ref", "update", "main", absent, "--expect", a)
    assert cli.ok("ref", "get", "main").out.strip() == a


def test_snapshot_refs_never_move(cli: Cli) -> None:
    a, b = cli.put(b"a"), cli.put(b"b")
    snap = "mydata/snapshots/v1"
    cli.ok("ref", "create", snap, a)
    r = cli.fails("invalid_argument", "ref", "update", snap, b, "--expect", a)
    assert "snapshot" in r.err
    cli.fails("invalid_argument", "ref", "delete", snap, "--expect", a)
    cli.fails("already_exists", "ref", "create", snap, b)
    assert cli.ok("ref", "get", snap).out.strip() == a
    # "snapshots" as the last segment is an ordinary name.
    cli.ok("ref", "create", "mydata/snapshots", a)
    cli.ok("ref", "update", "mydata/snapshots", b, "--expect", a)


BAD_REF_NAMES = [
    "", "a" * 256, "..", ".", "/x", "x/", "a//b", "a\x01b", "a\x7fb", "tab\there", "a b",
    ".hidden", "a/.b", "main.lock", "a/b.lock/c", "a\\b", "a~b", "a:b", "é",
]


@pytest.mark.parametrize("name", BAD_REF_NAMES, ids=lambda n: repr(n)[:20])
def test_bad_ref_names(cli: Cli, name: str) -> None:
    a = cli.put(b"a")
    for argv in [["ref", "get", name], ["ref", "create", name, a],
                 ["ref", "update", name, a, "--expect", a],
                 ["ref", "delete", name, "--expect", a]]:
        r = cli.fails("invalid_argument", *argv)
        assert "\n" not in r.err.rstrip("\n"), r  # control characters are quoted
        err = cli.fails("invalid_argument", "--json", *argv).error_json()
        assert err["code"] == "invalid_argument"


def test_longest_ref_name(cli: Cli) -> None:
    a = cli.put(b"a")
    name = "/".join(["x" * 127, "y" * 127])  # 255 bytes
    assert len(name) == 255
    cli.ok("ref", "create", name, a)
    assert cli.ok("ref", "get", name).out.strip() == a


# ---- stores --------------------------------------------------------------------------


def test_unknown_scheme(cli: Cli) -> None:
    r = cli.run("--store", "foo://x", "object", "ls", store=False)
    assert r.code == EXIT["invalid_argument"], r
    assert "foo" in r.err
    r = cli.run("--json", "--store", "foo://x", "ref", "ls", store=False)
    assert r.code == 3 and r.error_json()["code"] == "invalid_argument"


def test_s3_uri_options_are_checked_and_never_echoed(cli: Cli) -> None:
    r = cli.run("--store", "s3://bucket/prefix?aws_secret_access_key=hunter2", "object", "ls",
                store=False)
    assert r.code == EXIT["invalid_argument"], r
    assert "unknown option 'aws_secret_access_key'" in r.err
    assert "hunter2" not in r.err and "hunter2" not in r.out


def test_store_in_non_empty_foreign_directory(cli: Cli, tmp_path: pathlib.Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "important.txt").write_text("do not touch")
    r = cli.run("--store", str(foreign), "object", "put", "-", input=b"x", store=False)
    assert r.code == EXIT["invalid_argument"], r
    assert sorted(p.name for p in foreign.iterdir()) == ["important.txt"]


def test_store_with_newer_layout_is_unsupported(cli: Cli, tmp_path: pathlib.Path) -> None:
    root = tmp_path / "future"
    root.mkdir()
    (root / "dreamdb-store").write_text("dreamdb-store 2\n")
    r = cli.run("--store", "file://" + str(root), "object", "ls", store=False)
    assert r.code == EXIT["unsupported"], r


def test_store_flag_env_and_default(cli: Cli, tmp_path: pathlib.Path) -> None:
    data = b"where am I stored"
    # --store after the command works too.
    object_id = cli.run("object", "put", "-", "--store", str(tmp_path / "s1"), input=data,
                        store=False).out.strip()
    assert object_id == blake3_id(data)
    # $DREAMDB_STORE (a relative local path, resolved against the working directory).
    env = clean_env(DREAMDB_STORE="s1")
    assert cli.run("object", "get", object_id, store=False, env=env).stdout == data
    # --store wins over $DREAMDB_STORE.
    env = clean_env(DREAMDB_STORE="elsewhere")
    r = cli.run("--store", "s1", "object", "head", object_id, store=False, env=env)
    assert r.code == 0, r
    # Default: ./.dreamdb
    r = cli.run("object", "put", "-", input=data, store=False)
    assert r.code == 0, r
    assert (tmp_path / ".dreamdb").is_dir()
    assert cli.run("object", "ls", store=False).out.strip() == object_id


def test_memory_store_is_per_process(cli: Cli) -> None:
    object_id = cli.ok("--store", "memory://", "object", "put", "-", input=b"m",
                       store=False).out.strip()
    cli.fails("not_found", "--store", "memory://", "object", "get", object_id, store=False)


# ---- usage errors --------------------------------------------------------------------


@pytest.mark.parametrize("argv,needle", [
    (["frob"], "'frob'"),
    (["object", "frob"], "'object frob'"),
    (["--frob", "object", "ls"], "'--frob'"),
    (["object", "ls", "--frob"], "'--frob'"),
    (["object", "ls", "--shard"], "'--shard'"),
    (["object", "ls", "--long=yes"], "'--long'"),
    (["object", "get"], "ID"),
    (["object", "get", "a", "b"], "'b'"),
    (["object", "put"], "FILE"),
    (["ref", "update", "main", "x"], "--expect"),
    (["ref", "update", "main", "x", "--expect"], "'--expect'"),
    (["ref", "update", "main", "x", "--expect", "a", "--expect", "b"], "'--expect'"),
    (["ref", "delete", "main"], "--expect"),
    (["ref", "create", "main"], "ID"),
    (["ref", "ls", "a", "b"], "'b'"),
    (["--store"], "'--store'"),
    (["help", "frob"], "'frob'"),
])
def test_usage_errors(cli: Cli, argv: list[str], needle: str) -> None:
    r = cli.fails("usage", *argv)
    first = r.err.splitlines()[0]
    assert needle in first, r
    err = cli.fails("usage", "--json", *argv).error_json()
    assert err["code"] == "usage" and err["exit_code"] == 2 and needle in err["message"]


def test_double_dash_ends_flags(cli: Cli, tmp_path: pathlib.Path) -> None:
    f = tmp_path / "--json"
    f.write_bytes(b"dash")
    r = cli.ok("object", "put", "--", "--json")
    assert r.out.strip() == blake3_id(b"dash")


def test_json_errors_keep_stdout_empty(cli: Cli) -> None:
    r = cli.run("--json", "ref", "get", "main")
    assert r.code == 4
    err = r.error_json()
    assert err["code"] == "not_found" and "main" in err["message"]
    # Human errors: one line with the message.
    r = cli.run("ref", "get", "main")
    assert r.stdout == b"" and re.fullmatch(r"dreamdb: error: .*main.*\n", r.err), r
