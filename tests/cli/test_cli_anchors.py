# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Automatic anchors survive a record at the top of the anchor space
(spec/14-semantics.md §2.3): one row at 2^64 - 2 used to make every later ingest without
anchors fail on its branch, even after the row was deleted.
"""

from __future__ import annotations

import json
import pathlib

from cli_harness import Cli

SCHEMA = {"fields": [{"name": "emb", "type": "embedding", "dim": 3},
                     {"name": "x", "type": "float64", "optional": True}]}


def create(cli: Cli, tmp_path: pathlib.Path) -> None:
    (tmp_path / "schema.json").write_text(json.dumps(SCHEMA))
    cli.ok("create", "d", "--schema", str(tmp_path / "schema.json"))


def test_automatic_anchors_continue_after_a_record_at_the_top(cli: Cli,
                                                              tmp_path: pathlib.Path) -> None:
    create(cli, tmp_path)
    (tmp_path / "a.jsonl").write_text('{"emb": [1, 0, 0]}\n')
    (tmp_path / "top.jsonl").write_text('{"anchor": 18446744073709551614, "emb": [0, 1, 0]}\n')
    cli.ok("ingest", "d", str(tmp_path / "a.jsonl"))
    cli.ok("ingest", "d", str(tmp_path / "top.jsonl"))
    cli.ok("ingest", "d", str(tmp_path / "a.jsonl"))  # refused before: anchor space exhausted
    cli.ok("delete", "d", "18446744073709551614")
    cli.ok("ingest", "d", str(tmp_path / "a.jsonl"))
    assert [r["anchor"] for r in cli.ok("cat", "d", "--fields", "x").jsonl()] == [0, 1, 2]
