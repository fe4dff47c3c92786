# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""`ingest FILE` reads each line up to a bound (cli/README.md "Input files").

`dreamdb ingest d /dev/zero` read one line with getline(), which grows its buffer until
the process dies: the input is untrusted, so a line (a CSV record) longer than
--max-line-bytes now stops the run after reading little more than the limit, naming the
file and the line, with nothing of that batch committed. The default leaves room for
one inline base64 blob of --max-blob-bytes plus 1 MiB.
"""

from __future__ import annotations

import base64
import json
import os
import pathlib
import signal
import subprocess
import threading

from cli_harness import Cli, clean_env, write

SCHEMA = {"fields": [{"name": "n", "type": "int64"},
                     {"name": "img", "type": "blob", "optional": True}]}


def make(cli: Cli, tmp_path: pathlib.Path) -> Cli:
    cli.ok("create", "d", "--schema", str(write(tmp_path / "schema.json", json.dumps(SCHEMA))))
    return cli


def peak_rss_kib(cli: Cli, *args: str, stdin_path: str,
                 timeout: float = 60) -> tuple[int, str, int]:
    """Runs dreamdb with stdin from `stdin_path`; (exit code, stderr, peak RSS KiB)."""
    argv = [str(cli.binary), "--store", cli.store_uri, *args]
    with open(stdin_path, "rb") as stdin, open(os.devnull, "wb") as null:
        errfile = cli.cwd / "stderr.txt"
        with open(errfile, "wb") as err:
            p = subprocess.Popen(argv, stdin=stdin, stdout=null, stderr=err,
                                 env=clean_env(), cwd=cli.cwd)
            timer = threading.Timer(timeout, lambda: os.kill(p.pid, signal.SIGKILL))
            timer.start()
            try:
                _, status, usage = os.wait4(p.pid, 0)
            finally:
                timer.cancel()
            p.returncode = os.waitstatus_to_exitcode(status)
    assert p.returncode != -9, f"{args} killed after {timeout} s (unbounded read?)"
    return p.returncode, errfile.read_text(), usage.ru_maxrss


def test_ingest_line_from_dev_zero_is_bounded(cli: Cli, tmp_path: pathlib.Path):
    ds = make(cli, tmp_path)
    # Baseline: the same process ingesting one small record.
    small = write(tmp_path / "one.jsonl", '{"n": 1}\n')
    code, err, base_kib = peak_rss_kib(ds, "ingest", "d", "-", stdin_path=str(small))
    assert code == 0, err
    limit = 8 << 20
    # /dev/zero named as the file, and piped in as standard input: one endless line.
    code, err, kib = peak_rss_kib(ds, "ingest", "d", "/dev/zero", "--max-line-bytes",
                                  str(limit), stdin_path=os.devnull)
    assert code == 3, err
    assert f"line 1 of '/dev/zero' is longer than {limit} bytes, the limit (raise it with " \
           "--max-line-bytes)" in err, err
    assert "nothing was committed" in err, err
    # The line is held once (plus its growth slack), not the whole input.
    assert (kib - base_kib) * 1024 < 3 * limit, (kib, base_kib)
    code, err, _ = peak_rss_kib(ds, "ingest", "d", "-", "--max-line-bytes", str(limit),
                                stdin_path="/dev/zero")
    assert code == 3 and f"line 1 of standard input is longer than {limit}" in err, err
    assert ds.ok("count", "d").out.strip() == "1"  # only the baseline record


def test_ingest_long_line_names_file_and_line_and_commits_nothing(cli: Cli,
                                                                  tmp_path: pathlib.Path):
    ds = make(cli, tmp_path)
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"n": 1}\n{"n": 2}\n{"n": 3, "pad": "' + "x" * 5000 + '"}\n{"n": 4}\n')
    r = ds.fails("invalid_argument", "ingest", "d", str(inp), "--max-line-bytes", "4096")
    assert f"line 3 of '{inp}' is longer than 4096 bytes, the limit" in r.err, r
    assert "nothing was committed" in r.err, r
    assert ds.ok("count", "d").out.strip() == "0"
    # The same file within a larger limit fails only on its unknown key, later.
    r = ds.fails("invalid_argument", "ingest", "d", str(inp), "--max-line-bytes", "8192")
    assert "line 3: unknown field 'pad'" in r.err, r


def test_ingest_long_csv_record_is_refused(cli: Cli, tmp_path: pathlib.Path):
    ds = make(cli, tmp_path)
    inp = tmp_path / "in.csv"
    # A quoted cell that never ends, and a record of many empty cells.
    inp.write_text('n,img\n1,\n2,"' + "y" * 10000)
    r = ds.fails("invalid_argument", "ingest", "d", str(inp), "--max-line-bytes", "4096")
    assert f"line 3 of '{inp}' is longer than 4096 bytes, the limit" in r.err, r
    inp.write_text("n,img\n1,\n" + "," * 10000 + "\n")
    r = ds.fails("invalid_argument", "ingest", "d", str(inp), "--max-line-bytes", "4096")
    assert f"line 3 of '{inp}' is longer than 4096 bytes" in r.err, r
    assert ds.ok("count", "d").out.strip() == "0"
    inp.write_text("n,img\n1,\n")
    ds.ok("ingest", "d", str(inp), "--max-line-bytes", "4096")


def test_default_line_limit_admits_an_inline_blob_of_max_blob_bytes(cli: Cli,
                                                                    tmp_path: pathlib.Path):
    ds = make(cli, tmp_path)
    blob = os.urandom(3000)
    line = json.dumps({"n": 1, "img": {"base64": base64.b64encode(blob).decode()}})
    ok = write(tmp_path / "ok.jsonl", line + "\n")
    ds.ok("ingest", "d", str(ok), "--max-blob-bytes", "3000")
    # Default = base64 of --max-blob-bytes (4000) + 1 MiB.
    limit = 4000 + (1 << 20)
    long = write(tmp_path / "long.jsonl", '{"n": 2, "x": "' + "z" * limit + '"}\n')
    r = ds.fails("invalid_argument", "ingest", "d", str(long), "--max-blob-bytes", "3000")
    assert f"line 1 of '{long}' is longer than {limit} bytes" in r.err, r
    assert ds.ok("count", "d").out.strip() == "1"
    help_text = ds.ok("ingest", "--help", store=False).out
    assert "--max-line-bytes" in help_text and "90527064" in help_text


def test_max_line_bytes_flag_is_validated(cli: Cli, tmp_path: pathlib.Path):
    ds = make(cli, tmp_path)
    inp = write(tmp_path / "one.jsonl", '{"n": 1}\n')
    r = ds.fails("invalid_argument", "ingest", "d", str(inp), "--max-line-bytes",
                 str((1 << 42) + 1))
    assert "--max-line-bytes 4398046511105 is above 2^42" in r.err, r
