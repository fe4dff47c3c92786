# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Stored text is shown, never obeyed by the terminal (cli/README.md "Output safety").

`log` used to print commit messages with raw ANSI escape sequences, so whoever could
commit could recolour, clear or retitle the terminal of whoever read the history (and
forge lines). Every human-readable line the CLI prints now escapes C0 and C1 controls,
DEL and invalid UTF-8; ordinary non-ASCII text stays as it is, and JSON output stays valid
JSON with the controls escaped by the encoder.
"""

from __future__ import annotations

import json
import pathlib

import pytest

from cli_harness import Cli

# ESC [ 2 J (clear screen), an OSC title sequence, CR, a C1 CSI (U+009B), DEL, a newline
# that would forge a log line and NUL (JSON input only: argv cannot hold it) — and
# ordinary non-ASCII text. (Stored text is valid UTF-8 by the format; invalid bytes are
# covered by cli/cli_test.cc.)
EVIL = "red\x1b[31m\x1b[2J\x1b]0;pwned\x07\rCR\u009b6n\x7f\nmanifest forged é 漢字"
LABEL = EVIL + "\x00"
RAW_CONTROLS = [b"\x1b", b"\x07", b"\r", b"\xc2\x9b", b"\x7f", b"\x00"]

SCHEMA = {"fields": [{"name": "label", "type": "string"},
                     {"name": "kind", "type": "categorical", "optional": True}]}


@pytest.fixture
def ds(cli: Cli, tmp_path: pathlib.Path) -> Cli:
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SCHEMA))
    cli.ok("create", "d", "--schema", str(schema))
    cli.ok("meta", "d", "note=" + EVIL)
    record = json.dumps({"label": LABEL, "kind": EVIL}).encode() + b"\n"
    cli.ok("ingest", "d", "-", "-m", EVIL, input=record)  # the newest commit
    return cli


def assert_no_raw_controls(out: bytes, lines: int | None = None) -> None:
    for raw in RAW_CONTROLS:
        assert raw not in out, (raw, out)
    if lines is not None:
        assert out.count(b"\n") == lines, out


def test_log_escapes_ansi_sequences_in_commit_messages(ds: Cli):
    out = ds.ok("log", "d", "--limit", "1").stdout
    assert_no_raw_controls(out, lines=6)  # 5 lines per entry + the blank line
    text = out.decode()
    assert ("message  red\\u001b[31m\\u001b[2J\\u001b]0;pwned\\u0007\\rCR\\u009b6n\\u007f"
            "\\nmanifest forged é 漢字\n") in text
    assert text.count("manifest ") == 1 + 1  # the real line, and the escaped forged text


def test_log_json_stays_valid_json_with_controls_escaped(ds: Cli):
    out = ds.ok("--json", "log", "d", "--limit", "1").stdout
    assert_no_raw_controls(out, lines=1)
    entry = json.loads(out)
    assert entry["message"] == EVIL


def test_meta_cat_take_escape_stored_strings(ds: Cli):
    for args in (["meta", "d"], ["cat", "d"], ["take", "d", "0"]):
        out = ds.ok(*args).stdout
        assert_no_raw_controls(out)
        assert "é 漢字".encode() in out, (args, out)
    assert_no_raw_controls(ds.ok("cat", "d", "--format", "table").stdout)
    meta = ds.ok("meta", "d").out
    assert meta.startswith("note=red\\u001b[31m")
    # JSON Lines records parse back to the stored text exactly.
    row = json.loads(ds.ok("take", "d", "0").out)
    assert row["label"] == LABEL and row["kind"] == EVIL
    assert json.loads(ds.ok("--json", "meta", "d").out)["meta"]["note"] == EVIL


def test_compare_refs_escapes_stored_strings(ds: Cli):
    ds.ok("branch", "d", "other")
    for flags in ([], ["--json"]):
        r = ds.ok(*flags, "compare-refs", "d", "main", "other")
        assert_no_raw_controls(r.stdout)


def test_error_messages_quoting_stored_data_are_escaped(ds: Cli):
    # A field name from the user echoed back in an error, and a stored label.
    r = ds.fails("invalid_argument", "cat", "d", "--fields", "no\x1b[31mpe")
    assert_no_raw_controls(r.stderr)
    r = ds.run("--json", "cat", "d", "--fields", "no\x1b[31mpe")
    assert_no_raw_controls(r.stderr)
    assert "no" in r.error_json()["message"]


# U+202E RIGHT-TO-LEFT OVERRIDE and the other invisible bidi/line format characters.
BIDI = ["\u202e", "\u202a", "\u202b", "\u202c", "\u202d", "\u2066", "\u2067", "\u2068",
        "\u2069", "\u200e", "\u200f", "\u061c", "\u2028", "\u2029"]


def test_log_escapes_bidi_override_in_commit_messages(ds: Cli):
    # `log` printed U+202E raw: "invoice\u202efdp.exe" shows as "invoiceexe.pdf".
    message = "invoice\u202efdp.exe " + "".join(BIDI)
    ds.ok("meta", "d", "k=v", "--message", message)
    out = ds.ok("log", "d", "--limit", "1").stdout
    for ch in BIDI:
        assert ch.encode() not in out, (ch, out)
    text = out.decode()
    assert "invoice\\u202efdp.exe \\u202e\\u202a" in text
    assert "\\u2066\\u2067\\u2068\\u2069\\u200e\\u200f\\u061c\\u2028\\u2029" in text
    # JSON output escapes them too and parses back to the stored message.
    out = ds.ok("--json", "log", "d", "--limit", "1").stdout
    for ch in BIDI:
        assert ch.encode() not in out, (ch, out)
    assert json.loads(out)["message"] == message
