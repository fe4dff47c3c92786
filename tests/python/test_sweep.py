# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Dataset.sweep_init / sweep / sweeps / sweep_summarize / sweep_merge_best
(spec/14-semantics.md §17): run branches made from one version, the record in the
metadata of branch "sweeps/NAME", ranking by a record field or run metadata (NaN-aware),
runs with no value, bad names refused with nothing written, and the best run merged."""

import math
import uuid

import pytest

import dreamdb  # noqa: E402
from dreamdb import errors  # noqa: E402


@pytest.fixture
def ds() -> "dreamdb.Dataset":
    """Dataset "d" in a fresh memory store: anchors 0..9 on main."""
    schema = dreamdb.Schema().add_int("label")
    d = dreamdb.Dataset.create("d", schema, store=f"memory://{uuid.uuid4().hex}")
    d.append_many([{"label": a} for a in range(10)], anchors=list(range(10)))
    return d


def branch(ds, name):
    return dreamdb.Dataset.open(ds.name, store=ds.store, branch=name)


def assert_no_branch(ds, name):
    with pytest.raises(errors.NotFoundError):
        branch(ds, name)


def test_init_records_source_runs_and_params(ds):
    rec = ds.sweep_init("s", 3, params=[{"lr": 0.1}, {"lr": 0.01}, {"lr": 0.001}],
                        metric="val_loss")
    assert rec["source_branch"] == "main" and rec["source_manifest"] == ds.head
    assert [r["branch"] for r in rec["runs"]] == [f"sweep/s/run-{i}" for i in range(3)]
    assert [r["params"] for r in rec["runs"]] == [{"lr": "0.1"}, {"lr": "0.01"},
                                                  {"lr": "0.001"}]
    for r in rec["runs"]:  # runs start exactly at the source version
        assert branch(ds, r["branch"]).head == ds.head
    assert ds.sweep("s") == rec and [s["sweep"] for s in ds.sweeps()] == ["s"]
    assert ds.head == rec["source_manifest"]  # the source branch got no commit


def test_summarize_mean_of_field_meta_nan_and_no_value(ds):
    ds.sweep_init("s", 4)
    for i, scores in enumerate([[1.0, 3.0], [0.5, float("nan")], None, None]):
        b = branch(ds, f"sweep/s/run-{i}")
        if scores is not None:
            b.add_scalar_layer("score", [0, 1], scores)
    branch(ds, "sweep/s/run-3").set_meta({"score": "nan"})
    s = ds.sweep_summarize("s", metric="score")
    runs = s["runs"]
    assert runs[0]["value"] == 2.0 and runs[0]["values"] == 2 and runs[0]["source"] == "records"
    assert runs[1]["value"] == 0.5 and runs[1]["nans"] == 1  # NaN left out of the mean
    assert runs[2]["value"] is None and runs[2]["rank"] is None and runs[2]["note"]
    assert math.isnan(runs[3]["value"]) and runs[3]["rank"] is None
    assert (s["goal"], s["best"], s["worst"]) == ("min", "sweep/s/run-1", "sweep/s/run-0")
    s = ds.sweep_summarize("s", metric="score", goal="max")
    assert (s["best"], s["worst"]) == ("sweep/s/run-0", "sweep/s/run-1")
    assert [r["rank"] for r in s["runs"]] == [1, 2, None, None]


def test_bad_names_and_unknown_sweep_change_nothing(ds):
    head = ds.head
    for bad in ["", "a/b", ".x", "x" * 65]:
        with pytest.raises(errors.InvalidArgumentError):
            ds.sweep_init(bad, 2)
    with pytest.raises(errors.InvalidArgumentError):
        ds.sweep_init("s", 0)
    with pytest.raises(errors.InvalidArgumentError):
        ds.sweep_init("s", 2, params=[{"lr": 1}])  # one mapping for two runs
    with pytest.raises(errors.InvalidArgumentError):
        ds.sweep_init("s", 2, prefix="no-slash")
    with pytest.raises(errors.NotFoundError):
        ds.sweep_summarize("nope", metric="x")
    assert ds.sweeps() == [] and ds.head == head
    for name in ["sweeps/s", "sweep/s/run-0", "sweep/s/run-1"]:
        assert_no_branch(ds, name)
    ds.create_branch("sweep/s/run-1")
    with pytest.raises(errors.AlreadyExistsError):
        ds.sweep_init("s", 2)
    assert ds.sweeps() == []
    assert_no_branch(ds, "sweep/s/run-0")  # run 0 was not created either
    assert_no_branch(ds, "sweeps/s")


def test_merge_best_into_source(ds):
    ds.sweep_init("s", 3, metric="acc", goal="max")
    for i, acc in enumerate(["0.7", "0.9", "0.8"]):
        b = branch(ds, f"sweep/s/run-{i}")
        b.append_many([{"label": 100 + i}], anchors=[100 + i])
        b.set_meta({"acc": acc})
    out = ds.sweep_merge_best("s")
    assert out["best"] == "sweep/s/run-1" and out["into"] == "main"
    assert out["result"] == "fast-forward" and ds.head == out["head"]
    assert ds.meta["acc"] == "0.9" and ds.count() == 11


def test_merge_best_without_any_value_is_not_found(ds):
    ds.sweep_init("s", 2)
    with pytest.raises(errors.NotFoundError):
        ds.sweep_merge_best("s", metric="acc")
    with pytest.raises(errors.InvalidArgumentError):
        ds.sweep_summarize("s")  # no metric recorded, none given
