# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""`dreamdb ingest` refuses non-finite embedding values (spec/10-schema.md §1.6), naming
the line, the field, the element and the anchor, with nothing committed.
"""

from __future__ import annotations

import json
import pathlib

from cli_harness import EXIT, Cli

SCHEMA = {"fields": [{"name": "emb", "type": "embedding", "dim": 3},
                     {"name": "x", "type": "float64", "optional": True}]}


def create(cli: Cli, tmp_path: pathlib.Path) -> None:
    (tmp_path / "schema.json").write_text(json.dumps(SCHEMA))
    cli.ok("create", "d", "--schema", str(tmp_path / "schema.json"))


def error(cli: Cli, *args: str) -> str:
    r = cli.fails("invalid_argument", "--json", *args)
    e = r.error_json()
    assert e["exit_code"] == EXIT["invalid_argument"]
    return e["message"]


# (file name, content, the message's start)
CASES = [
    ("nan.jsonl",
     '{"anchor": 1, "emb": [1, 0, 0]}\n{"anchor": 2, "emb": [1, "nan", 0]}\n',
     "line 2: field 'emb': element 1 is NaN in the record at anchor 2; embedding values must "
     "be finite (nothing was committed)"),
    ("inf.jsonl", '{"emb": [1, 0, 0]}\n{"emb": [1, 0, "-Infinity"]}\n',
     "line 2: field 'emb': element 2 is -inf; embedding values must be finite"),
    ("nan.csv", 'anchor,emb\n7,"[0, 0, 1]"\n8,"[""inf"", 0, 1]"\n',
     "line 3: field 'emb': element 0 is +inf in the record at anchor 8; embedding values "
     "must be finite"),
]


def test_non_finite_embedding_refused_at_ingest(cli: Cli, tmp_path: pathlib.Path) -> None:
    create(cli, tmp_path)
    for name, content, message in CASES:
        path = tmp_path / name
        path.write_text(content)
        got = error(cli, "ingest", "d", str(path))
        assert got.startswith(message), (name, got)
    assert cli.ok("count", "d").out == "0\n"
    assert len(cli.ok("log", "d", "--json").jsonl()) == 1  # only the create
    # float64 fields keep NaN and infinities; search over what landed is right.
    (tmp_path / "ok.jsonl").write_text(
        '{"emb": [1, 0, 0], "x": "nan"}\n{"emb": [0, 1, 0], "x": "inf"}\n')
    cli.ok("ingest", "d", str(tmp_path / "ok.jsonl"))
    hits = cli.ok("--json", "search", "d", "emb", "--vector", "0,1,0", "-k", "2").jsonl()
    assert [h["anchor"] for h in hits] == [1, 0]

