# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""dreamdb cat --since/--until: the time window [since, until) of a dataset whose anchors
are times (ns since the epoch), given as RFC 3339 times."""

from __future__ import annotations

import json
import pathlib

from cli_harness import Cli

NS = 1_000_000_000
T0 = 1_767_225_600 * NS  # 2026-01-01T00:00:00Z


def make(cli: Cli, tmp_path: pathlib.Path) -> None:
    (tmp_path / "schema.json").write_text(json.dumps({"fields": [{"name": "m", "type": "int64"}]}))
    cli.ok("create", "ev", "--schema", str(tmp_path / "schema.json"))
    rows = "".join(json.dumps({"anchor": T0 + m * 60 * NS, "m": m}) + "\n" for m in range(180))
    (tmp_path / "rows.jsonl").write_text(rows)
    cli.ok("ingest", "ev", str(tmp_path / "rows.jsonl"))


def test_cat_since_until_prints_the_window(cli: Cli, tmp_path: pathlib.Path) -> None:
    make(cli, tmp_path)
    out = cli.ok("cat", "ev", "--since", "2026-01-01T01:00:00Z",
                 "--until", "2026-01-01T03:00:00+01:00").jsonl()
    assert [r["m"] for r in out] == list(range(60, 120))
    assert out[0]["anchor"] == T0 + 60 * 60 * NS
    assert len(cli.ok("cat", "ev", "--since", "2026-01-01T02:30:00Z").jsonl()) == 30
    assert len(cli.ok("cat", "ev", "--until", "2026-01-01T00:10:00Z").jsonl()) == 10


def test_cat_time_window_errors_name_the_flag(cli: Cli, tmp_path: pathlib.Path) -> None:
    make(cli, tmp_path)
    assert "--since" in cli.fails("invalid_argument", "cat", "ev", "--since", "noon").err
    r = cli.fails("invalid_argument", "cat", "ev", "--since", "2026-01-02T00:00:00Z",
                  "--until", "2026-01-01T00:00:00Z")
    assert "after --until" in r.err
    assert "1970" in cli.fails("invalid_argument", "cat", "ev", "--until",
                               "1969-12-31T23:59:59Z").err
    r = cli.fails("usage", "cat", "ev", "--range", "0:5", "--since", "2026-01-01T00:00:00Z")
    assert "--range cannot be combined" in r.err
