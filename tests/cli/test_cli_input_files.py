# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Input the CLI parses is bounded (cli/README.md "Input files").

`dreamdb create --schema /dev/zero` used to read without bound and abort with
std::bad_alloc, and a JSON Lines record nested 100,000 levels deep overflowed the stack
(SIGSEGV). Files named on the command line (--schema, delete --from-file, object put) are
now read only when they are regular files, up to a documented limit, and JSON nested
deeper than a limit is refused naming the file or line; the store is left unchanged.
"""

from __future__ import annotations

import json
import os
import pathlib

import pytest

from cli_harness import Cli, jsonl, write

SCHEMA = {"fields": [{"name": "n", "type": "int64"},
                     {"name": "e", "type": "embedding", "dim": 2, "optional": True}]}


@pytest.fixture
def ds(cli: Cli, tmp_path: pathlib.Path) -> Cli:
    cli.ok("create", "d", "--schema", str(write(tmp_path / "schema.json", json.dumps(SCHEMA))))
    return cli


def test_schema_from_dev_zero_is_refused_not_read(cli: Cli):
    r = cli.fails("invalid_argument", "create", "x", "--schema", "/dev/zero", timeout=20)
    assert "--schema '/dev/zero' is a character device; only regular files are read" in r.err, r
    assert cli.ok("datasets").out == ""  # nothing was created


def test_schema_from_fifo_is_refused_without_blocking(cli: Cli, tmp_path: pathlib.Path):
    fifo = tmp_path / "schema.fifo"
    os.mkfifo(fifo)
    r = cli.fails("invalid_argument", "create", "x", "--schema", str(fifo), timeout=20)
    assert "is a FIFO; only regular files are read ('-' reads standard input)" in r.err, r


def test_schema_file_larger_than_the_limit_is_refused(cli: Cli, tmp_path: pathlib.Path):
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate((16 << 20) + 1)  # sparse: costs no disk
    r = cli.fails("invalid_argument", "create", "x", "--schema", str(big))
    assert f"is {(16 << 20) + 1} bytes; the limit is {16 << 20}" in r.err, r


def test_schema_from_standard_input_is_bounded_too(cli: Cli):
    cli.ok("create", "x", "--schema", "-", input=json.dumps(SCHEMA).encode())
    r = cli.fails("invalid_argument", "create", "y", "--schema", "-",
                  input=b" " * ((16 << 20) + 1))
    assert "--schema (standard input) is more than 16777216 bytes" in r.err, r


def test_schema_nested_too_deep_is_refused(cli: Cli, tmp_path: pathlib.Path):
    deep = write(tmp_path / "deep.json", '{"fields": ' + "[" * 100000 + "]" * 100000 + "}")
    r = cli.fails("invalid_argument", "create", "x", "--schema", str(deep))
    assert "schema JSON: nested more than 32 levels deep" in r.err, r


def test_jsonl_record_nested_too_deep_is_refused_naming_its_line(ds: Cli, tmp_path: pathlib.Path):
    deep = '{"n": ' + "[" * 100000 + "]" * 100000 + "}\n"
    inp = write(tmp_path / "r.jsonl", jsonl({"n": 1}) + deep)
    r = ds.fails("invalid_argument", "ingest", "d", str(inp))
    assert "line 2: invalid JSON: JSON nested more than 64 levels deep" in r.err, r
    assert "(nothing was committed)" in r.err, r
    assert ds.ok("count", "d").out.strip() == "0"
    # 64 levels is still parsed (and refused for its type, not its depth).
    ok_depth = '{"n": ' + "[" * 63 + "]" * 63 + "}\n"
    r = ds.fails("invalid_argument", "ingest", "d", str(write(tmp_path / "s.jsonl", ok_depth)))
    assert "nested" not in r.err, r


def test_csv_cell_nested_too_deep_is_refused(ds: Cli, tmp_path: pathlib.Path):
    inp = write(tmp_path / "r.csv", "n,e\n1,\"" + "[" * 100000 + "]" * 100000 + "\"\n")
    r = ds.fails("invalid_argument", "ingest", "d", str(inp))
    assert "JSON nested more than 64 levels deep" in r.err, r
    assert ds.ok("count", "d").out.strip() == "0"


def test_delete_from_file_reads_only_regular_files(ds: Cli, tmp_path: pathlib.Path):
    r = ds.fails("invalid_argument", "delete", "d", "--from-file", "/dev/zero", timeout=20)
    assert "--from-file '/dev/zero' is a character device" in r.err, r
    anchors = write(tmp_path / "anchors.txt", "1\n2\n")
    ds.ok("delete", "d", "--from-file", str(anchors))
    ds.ok("delete", "d", "--from-file", "-", input=b"3\n")


def test_object_put_reads_regular_files_and_standard_input(cli: Cli, tmp_path: pathlib.Path):
    r = cli.fails("invalid_argument", "object", "put", "/dev/zero", timeout=20)
    assert "FILE '/dev/zero' is a character device" in r.err, r
    fifo = tmp_path / "obj.fifo"
    os.mkfifo(fifo)
    r = cli.fails("invalid_argument", "object", "put", str(fifo), timeout=20)
    assert "is a FIFO; only regular files are read ('-' reads standard input)" in r.err, r
    r = cli.fails("not_found", "object", "put", str(tmp_path / "missing"))
    # A pipe is read through '-'.
    piped = cli.ok("object", "put", "-", input=b"from a pipe").out.strip()
    filed = cli.ok("object", "put", str(write(tmp_path / "o.bin", b"from a pipe"))).out.strip()
    assert piped == filed
