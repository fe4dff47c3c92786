# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Blob paths in ingest input are untrusted (cli/README.md "Blob files").

A JSON Lines or CSV file may name blob files, and any path used to be read: a record could
copy /etc/shadow or /proc/self/environ into the dataset, grow memory without bound from
/dev/zero, or hang the ingest forever on a FIFO. Now a blob path names a regular file
inside the blob root (--blob-root DIR, default the input file's directory), at most
--max-blob-bytes long; everything else is refused with the record's line and field, and
nothing of the failing batch is committed.
"""

from __future__ import annotations

import base64
import json
import os
import pathlib

import pytest

from cli_harness import Cli, jsonl, write

SCHEMA = {"fields": [{"name": "label", "type": "string"},
                     {"name": "img", "type": "blob", "mime": "image/png", "optional": True}]}


@pytest.fixture
def ds(cli: Cli, tmp_path: pathlib.Path) -> Cli:
    schema = write(tmp_path / "schema.json", json.dumps(SCHEMA))
    cli.ok("create", "pics", "--schema", str(schema))
    return cli


def count(cli: Cli) -> int:
    return int(cli.ok("count", "pics").out)


def ingest_fails(cli: Cli, code: str, inp: pathlib.Path, *flags: str, **kw) -> str:
    r = cli.fails(code, "ingest", "pics", str(inp), *flags, **kw)
    assert "(nothing was committed)" in r.err, r
    assert count(cli) == 0
    return r.err


def test_blob_path_inside_the_input_directory_is_read(ds: Cli, tmp_path: pathlib.Path):
    write(tmp_path / "in" / "imgs" / "a.png", b"PNG-A")
    write(tmp_path / "in" / "b.png", b"PNG-B")
    inp = write(tmp_path / "in" / "data.jsonl",
                jsonl({"label": "a", "img": "imgs/a.png"},
                      {"label": "b", "img": str(tmp_path / "in" / "b.png")},  # absolute, inside
                      {"label": "c", "img": "imgs/../b.png"},  # '..' that stays inside
                      {"label": "d", "img": {"base64": base64.b64encode(b"inline").decode()}}))
    ds.ok("ingest", "pics", str(inp))
    rows = ds.ok("cat", "pics", "--blobs-base64").jsonl()
    assert [base64.b64decode(r["img"]["base64"]) for r in rows] == [
        b"PNG-A", b"PNG-B", b"PNG-B", b"inline"]


def test_blob_path_dotdot_escape_is_refused(ds: Cli, tmp_path: pathlib.Path):
    write(tmp_path / "secret.txt", b"do not read")
    inp = write(tmp_path / "in" / "data.jsonl",
                jsonl({"label": "ok"}, {"label": "evil", "img": "../secret.txt"}))
    err = ingest_fails(ds, "permission_denied", inp)
    assert "line 2: field 'img': blob path '../secret.txt' resolves to '" in err
    assert "outside the blob root '" + str((tmp_path / "in").resolve()) + "'" in err


def test_blob_path_etc_shadow_and_proc_environ_are_refused(ds: Cli, tmp_path: pathlib.Path):
    for evil in ["../../../../../../../../etc/shadow", "/etc/shadow", "/proc/self/environ"]:
        inp = write(tmp_path / "in" / "data.jsonl", jsonl({"label": "x", "img": evil}))
        err = ingest_fails(ds, "permission_denied", inp)
        assert "outside the blob root" in err, err


def test_blob_symlink_pointing_outside_the_root_is_refused(ds: Cli, tmp_path: pathlib.Path):
    write(tmp_path / "secret.txt", b"do not read")
    (tmp_path / "in").mkdir()
    os.symlink(tmp_path / "secret.txt", tmp_path / "in" / "link.png")
    os.symlink(tmp_path, tmp_path / "in" / "up")  # a directory link leading out
    for path in ["link.png", "up/secret.txt"]:
        inp = write(tmp_path / "in" / "data.jsonl", jsonl({"label": "x", "img": path}))
        err = ingest_fails(ds, "permission_denied", inp)
        assert f"blob path '{path}' resolves to '{tmp_path.resolve()}/secret.txt'" in err, err
    # A link that stays inside the root is fine.
    write(tmp_path / "in" / "real.png", b"REAL")
    os.symlink("real.png", tmp_path / "in" / "alias.png")
    inp = write(tmp_path / "in" / "data.jsonl", jsonl({"label": "x", "img": "alias.png"}))
    ds.ok("ingest", "pics", str(inp))
    assert count(ds) == 1


def test_blob_device_dev_zero_is_refused_even_inside_the_root(ds: Cli, tmp_path: pathlib.Path):
    inp = write(tmp_path / "data.jsonl", jsonl({"label": "x", "img": "/dev/zero"}))
    err = ingest_fails(ds, "invalid_argument", inp, "--blob-root", "/")
    assert "line 1: field 'img': blob path '/dev/zero' is a character device; blob paths " \
           "must name regular files" in err


def test_blob_fifo_does_not_hang(ds: Cli, tmp_path: pathlib.Path):
    os.mkfifo(tmp_path / "fifo.png")
    inp = write(tmp_path / "data.jsonl", jsonl({"label": "x", "img": "fifo.png"}))
    err = ingest_fails(ds, "invalid_argument", inp, timeout=20)
    assert "blob path 'fifo.png' is a FIFO" in err


def test_blob_directory_is_refused(ds: Cli, tmp_path: pathlib.Path):
    (tmp_path / "in" / "dir").mkdir(parents=True)
    inp = write(tmp_path / "in" / "data.jsonl", jsonl({"label": "x", "img": "dir"}))
    assert "is a directory" in ingest_fails(ds, "invalid_argument", inp)


def test_blob_size_is_bounded(ds: Cli, tmp_path: pathlib.Path):
    write(tmp_path / "big.png", b"x" * 1001)
    inp = write(tmp_path / "data.jsonl", jsonl({"label": "x", "img": "big.png"}))
    err = ingest_fails(ds, "invalid_argument", inp, "--max-blob-bytes", "1000")
    assert "blob path 'big.png' is 1001 bytes; the limit is 1000 (raise it with " \
           "--max-blob-bytes)" in err
    ds.ok("ingest", "pics", str(inp), "--max-blob-bytes", "1001")
    assert count(ds) == 1
    # The default limit is 64 MiB, documented in --help.
    assert "64 MiB" in ds.ok("ingest", "--help").out


def test_blob_paths_from_stdin_need_blob_root(ds: Cli, tmp_path: pathlib.Path):
    write(tmp_path / "a.png", b"PNG-A")
    data = jsonl({"label": "x", "img": "a.png"}).encode()
    r = ds.fails("permission_denied", "ingest", "pics", "-", input=data)
    assert "line 1: field 'img': blob path 'a.png': blob files are not read from standard " \
           "input without --blob-root DIR" in r.err
    ds.ok("ingest", "pics", "-", "--blob-root", str(tmp_path), input=data)
    inline = jsonl({"label": "y", "img": {"base64": base64.b64encode(b"z").decode()}}).encode()
    ds.ok("ingest", "pics", "-", input=inline)  # inline bytes need no root
    assert count(ds) == 2


def test_blob_root_flag_confines_paths(ds: Cli, tmp_path: pathlib.Path):
    write(tmp_path / "media" / "a.png", b"PNG-A")
    write(tmp_path / "other" / "b.png", b"PNG-B")
    inp = write(tmp_path / "lists" / "data.jsonl", jsonl({"label": "x", "img": "a.png"}))
    ds.ok("ingest", "pics", str(inp), "--blob-root", str(tmp_path / "media"))
    inp = write(tmp_path / "lists" / "data.jsonl", jsonl({"label": "x", "img": "../other/b.png"}))
    r = ds.fails("permission_denied", "ingest", "pics", str(inp), "--blob-root",
                 str(tmp_path / "media"))
    assert "(--blob-root)" in r.err
    r = ds.fails("not_found", "ingest", "pics", str(inp), "--blob-root", str(tmp_path / "nope"))
    assert "--blob-root" in r.err


def test_csv_blob_path_escape_is_refused(ds: Cli, tmp_path: pathlib.Path):
    write(tmp_path / "secret.txt", b"do not read")
    inp = write(tmp_path / "in" / "data.csv", "label,img\r\nok,\r\nevil,../secret.txt\r\n")
    err = ingest_fails(ds, "permission_denied", inp)
    assert "line 3: field 'img': blob path '../secret.txt' resolves to" in err
