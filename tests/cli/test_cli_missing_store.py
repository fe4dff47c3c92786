# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Commands that only read never create a store (cli/README.md "The store").

`dreamdb --store ./typo verify` used to create an empty store at the mistyped path and
answer "ok: the store is intact (0 refs)" with exit 0. Now every command that does not
write reports the missing store as not_found (exit 4) naming the path, and leaves no
directory behind; only `init`, `create` and `object put` create a store.
"""

from __future__ import annotations

import json
import pathlib

import pytest

from cli_harness import Cli, clean_env

ID = "{id}"  # replaced by the id of an object in another store

READ_ONLY = [
    ["verify"], ["datasets"], ["count", "d"], ["cat", "d"], ["take", "d", "0"], ["log", "d"],
    ["refs", "d"], ["schema", "d"], ["meta", "d"], ["diff", "d", "main", "main"],
    ["compare-refs", "d", "main", "main2"], ["search", "d", "e", "--vector", "1,0"],
    ["index", "status", "d", "e"], ["object", "ls"], ["object", "head", ID],
    ["object", "get", ID], ["ref", "get", "d/branches/main"], ["ref", "ls"],
    # Writes that need an existing dataset or object: a missing store is not_found too.
    ["ingest", "d", "-"], ["delete", "d", "0"], ["snapshot", "d", "v1"],
    ["branch", "d", "dev"], ["merge", "d", "dev"], ["meta", "d", "k=v"],
    ["index", "build", "d", "e"], ["ref", "create", "d/branches/x", ID],
    ["ref", "update", "d/branches/x", ID, "--expect", ID],
    ["ref", "delete", "d/branches/x", "--expect", ID],
]


@pytest.mark.parametrize("args", READ_ONLY, ids=lambda a: " ".join(a[:2]))
def test_read_only_command_does_not_create_a_store_at_a_typo(cli: Cli, tmp_path: pathlib.Path,
                                                             args: list[str]):
    typo = tmp_path / "typo"
    object_id = cli.put(b"an object in the fixture's store")
    args = [a.replace(ID, object_id) for a in args]
    r = cli.run("--store", str(typo), *args, store=False, input=b"")
    assert r.code == 4, r
    assert r.stdout == b"", r
    assert f"no DreamDB store at '{typo}' (the directory does not exist)" in r.err, r
    assert not typo.exists(), "a read created the store"


def test_verify_of_a_typo_is_not_ok(cli: Cli, tmp_path: pathlib.Path):
    r = cli.run("--store", "./typo", "--json", "verify", store=False)
    assert r.code == 4, r
    err = r.error_json()
    assert err["code"] == "not_found"
    assert err["message"].startswith("opening store './typo': no DreamDB store at '")
    assert "only commands that write create a store" in err["message"]
    assert not (tmp_path / "typo").exists()
    # The default store ./.dreamdb and $DREAMDB_STORE follow the same rule.
    assert cli.run("datasets", store=False).code == 4
    assert cli.run("datasets", store=False, env=clean_env(DREAMDB_STORE="typo2")).code == 4
    assert not (tmp_path / ".dreamdb").exists() and not (tmp_path / "typo2").exists()


def test_an_empty_directory_is_not_a_store_for_readers(cli: Cli, tmp_path: pathlib.Path):
    (tmp_path / "empty").mkdir()
    r = cli.run("--store", str(tmp_path / "empty"), "verify", store=False)
    assert r.code == 4 and "(the directory is empty)" in r.err, r
    assert list((tmp_path / "empty").iterdir()) == []


def test_writers_create_the_store(cli: Cli, tmp_path: pathlib.Path):
    schema = json.dumps({"fields": [{"name": "x", "type": "int64"}]}).encode()
    for args, stdin in ((["init"], None), (["create", "d", "--schema", "-"], schema),
                        (["object", "put", "-"], b"bytes")):
        store = tmp_path / ("new-" + args[0])
        cli.ok("--store", str(store), *args, store=False, input=stdin)
        assert (store / "dreamdb-store").exists()
        assert cli.ok("--store", str(store), "verify", store=False).out.startswith("ok: ")


def test_init_says_whether_it_created_the_store(cli: Cli, tmp_path: pathlib.Path):
    store = tmp_path / "s"
    first = cli.ok("--store", str(store), "--json", "init", store=False).json()
    assert first == {"store": f"file://{store}", "created": True}
    again = cli.ok("--store", str(store), "--json", "init", store=False).json()
    assert again == {"store": f"file://{store}", "created": False}
    assert cli.ok("--store", str(store), "init", store=False).out == \
        f"a store already exists at file://{store}\n"
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"jpeg")
    r = cli.run("--store", str(tmp_path / "photos"), "init", store=False)
    assert r.code == 3 and "is not a DreamDB store" in r.err, r
