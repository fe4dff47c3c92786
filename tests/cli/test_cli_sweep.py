# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Transcript tests for `dreamdb sweep` (cli/README.md "Sweeps", spec/14-semantics.md §17):
init with parameters, ls/show, summarize as text and --json with --goal min and max, a
run with no value and a NaN run left unranked, bad names and an unknown sweep refused
with nothing written, and merge --best into the source branch."""

from __future__ import annotations

import json
import pathlib

import pytest

from cli_harness import Cli

SCHEMA = {"fields": [
    {"name": "label", "type": "int64"},
    {"name": "loss", "type": "float64", "optional": True},
    {"name": "note", "type": "string", "optional": True},
]}


def jsonl(*records: dict) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def refs(cli: Cli) -> str:
    return cli.ok("refs", "d").out


@pytest.fixture
def ds(cli: Cli, tmp_path: pathlib.Path) -> Cli:
    """Dataset "d": anchors 0..3 on main, and sweep "s" of 3 runs from main where run 0
    has mean loss 2.0, run 1 mean loss 0.5 (one NaN record left out) and run 2 none."""
    (tmp_path / "s.json").write_text(json.dumps(SCHEMA))
    cli.ok("create", "d", "--schema", str(tmp_path / "s.json"))
    cli.ok("ingest", "d", "-", input=jsonl(*({"anchor": a, "label": a} for a in range(4))))
    cli.ok("sweep", "init", "d", "s", "--runs", "3", "0=lr=0.1", "1=lr=0.01", "*=seed=7")
    runs = {0: [1.0, 3.0], 1: [0.5, "nan"]}
    for i, losses in runs.items():
        cli.ok("ingest", "d", "-", "--branch", f"sweep/s/run-{i}",
               input=jsonl(*({"anchor": a, "label": a, "loss": v} for a, v in enumerate(losses))))
    return cli


def test_init_records_the_sweep(ds: Cli) -> None:
    show = ds.ok("--json", "sweep", "show", "d", "s").json()
    main = ds.ok("--json", "count", "d").json()["manifest"]
    assert show["source_branch"] == "main" and show["source_manifest"] == main
    assert show["record_branch"] == "sweeps/s" and show["prefix"] == "sweep/"
    assert [r["params"] for r in show["runs"]] == [{"lr": "0.1", "seed": "7"},
                                                   {"lr": "0.01", "seed": "7"}, {"seed": "7"}]
    assert ds.ok("--json", "count", "d", "--at", "sweep/s/run-2").json()["manifest"] == main
    assert [s["sweep"] for s in ds.ok("--json", "sweep", "ls", "d").jsonl()] == ["s"]
    assert "lr=0.1 seed=7" in ds.ok("sweep", "show", "d", "s").out


def test_summarize_text_and_json_min_and_max(ds: Cli) -> None:
    out = ds.ok("--json", "sweep", "summarize", "d", "s", "--metric", "loss").json()
    assert [(r["value"], r["rank"]) for r in out["runs"]] == [(2.0, 2), (0.5, 1), (None, None)]
    assert out["runs"][1]["nans"] == 1 and out["runs"][2]["note"]
    assert out["best"]["branch"] == "sweep/s/run-1" and out["worst"]["run"] == 0
    mx = ds.ok("--json", "sweep", "summarize", "d", "s", "--metric", "loss", "--goal", "max")
    assert mx.json()["best"]["run"] == 0 and mx.json()["goal"] == "max"
    text = ds.ok("sweep", "summarize", "d", "s", "--metric", "loss").out
    assert "best: run 1 (sweep/s/run-1) 0.5" in text and "worst: run 0" in text
    assert "not ranked" in text


def test_run_level_metadata_value_and_nan(ds: Cli) -> None:
    ds.ok("meta", "d", "acc=0.9", "--branch", "sweep/s/run-0")
    ds.ok("meta", "d", "acc=nan", "--branch", "sweep/s/run-2")
    out = ds.ok("--json", "sweep", "summarize", "d", "s", "--metric", "acc").json()
    assert out["runs"][0]["source"] == "meta" and out["runs"][0]["rank"] == 1
    assert out["runs"][1]["value"] is None and out["runs"][2]["value"] == "nan"
    assert out["runs"][2]["rank"] is None and out["best"] == out["worst"]


def test_bad_names_and_unknown_sweep_change_nothing(ds: Cli) -> None:
    before = refs(ds)
    ds.fails("invalid_argument", "sweep", "init", "d", "a/b", "--runs", "2")
    ds.fails("invalid_argument", "sweep", "init", "d", "t", "--runs", "2", "--prefix", "x")
    ds.fails("invalid_argument", "sweep", "init", "d", "t", "--runs", "2", "5=lr=1")
    ds.fails("usage", "sweep", "init", "d", "t", "--runs", "0")
    ds.fails("usage", "sweep", "init", "d", "t", "--runs", "2", "lr=1")
    ds.fails("already_exists", "sweep", "init", "d", "s", "--runs", "2")
    err = ds.fails("not_found", "sweep", "summarize", "d", "nope", "--metric", "loss").err
    assert "no sweep 'nope'" in err
    ds.fails("not_found", "sweep", "init", "d", "t", "--runs", "2", "--from", "nope")
    ds.fails("usage", "sweep", "summarize", "d", "s", "--metric", "loss", "--goal", "up")
    ds.fails("invalid_argument", "sweep", "summarize", "d", "s", "--metric", "note")
    ds.fails("invalid_argument", "sweep", "summarize", "d", "s")  # no metric recorded
    ds.fails("usage", "sweep", "merge", "d", "s", "--metric", "loss")  # --best missing
    assert refs(ds) == before


def test_params_file(ds: Cli, tmp_path: pathlib.Path) -> None:
    (tmp_path / "p.json").write_text(json.dumps([{"lr": 0.5, "opt": "sgd"}, {"lr": 1}]))
    out = ds.ok("--json", "sweep", "init", "d", "t", "--runs", "2", "--params",
                str(tmp_path / "p.json"), "--prefix", "exp/").json()
    assert [r["branch"] for r in out["runs"]] == ["exp/t/run-0", "exp/t/run-1"]
    assert out["runs"][0]["params"] == {"lr": "0.5", "opt": "sgd"}
    ds.fails("invalid_argument", "sweep", "init", "d", "u", "--runs", "3", "--params",
             str(tmp_path / "p.json"))


def test_merge_best_into_source(ds: Cli) -> None:
    out = ds.ok("--json", "sweep", "merge", "d", "s", "--best", "--metric", "loss").json()
    assert out["best"] == "sweep/s/run-1" and out["into"] == "main"
    assert out["result"] == "fast-forward" and out["count"] == 4
    cat = ds.ok("cat", "d", "--fields", "loss", "--limit", "1").jsonl()
    assert cat[0]["loss"] == 0.5
    text = ds.ok("sweep", "merge", "d", "s", "--best", "--metric", "loss").out
    assert "best run of sweep s: sweep/s/run-1" in text and "up-to-date" in text
