# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Dataset.merge / merge_many (spec/14-semantics.md §16): fast-forward, three-way union by
anchor, policies and ConflictError, sources given as names, ids or Dataset objects,
layers written on a branch merged back, and parallel writers merged with merge_many."""

import threading
import uuid

import pytest

import dreamdb  # noqa: E402
from dreamdb import errors  # noqa: E402


@pytest.fixture
def ds() -> "dreamdb.Dataset":
    """Dataset "d" in a fresh memory store: anchors 0..9 (label = anchor) on main."""
    schema = dreamdb.Schema().add_int("label").add_string("note", required=False)
    d = dreamdb.Dataset.create("d", schema, store=f"memory://{uuid.uuid4().hex}")
    d.append_many([{"label": a} for a in range(10)], anchors=list(range(10)))
    return d


def labels(d: "dreamdb.Dataset") -> dict:
    t = d.to_table(fields=["label"])
    return dict(zip(t.column("anchor").to_pylist(), t.column("label").to_pylist()))


def test_fast_forward_and_up_to_date(ds):
    dev = ds.create_branch("dev")
    dev.append_many([{"label": 100}], anchors=[100])
    head = ds.merge("dev")
    assert head == dev.head == ds.head
    assert ds.last_commit["result"] == "fast-forward"
    assert ds.merge(dev) == head
    assert ds.last_commit["result"] == "up-to-date" and ds.last_commit["attempts"] == 0


def test_three_way_union_with_dataset_source(ds):
    dev = ds.create_branch("dev")
    dev.append_many([{"label": 200 + a} for a in range(5)], anchors=[200 + a for a in range(5)])
    dev.delete([1])
    ds.append_many([{"label": 300}], anchors=[300])
    head = ds.merge(dev, message="bring dev in")
    info = ds.last_commit
    assert info["result"] == "merged" and info["message"] == "bring dev in"
    assert info["parents"] == [info["parents"][0], dev.head] and head == ds.head
    assert (info["added"], info["deleted"]) == (5, 1)
    got = labels(ds)
    assert len(got) == 15 and 1 not in got and got[204] == 204 and got[300] == 300
    assert ds.verify()["problems"] == []


def test_conflict_error_and_policies(ds):
    dev = ds.create_branch("dev")
    dev.append_many([{"label": 55}], anchors=[5])
    ds.append_many([{"label": -5}], anchors=[5])
    before = ds.head
    with pytest.raises(errors.ConflictError) as e:
        ds.merge("dev")
    assert "anchor 5 field 'label'" in str(e.value)
    assert isinstance(e.value, dreamdb.Error)
    assert ds.head == before
    ours = ds.create_branch("ours")
    ours.merge("dev", policy="ours")
    assert labels(ours)[5] == -5 and ours.last_commit["conflicts_resolved"] == 1
    ds.merge("dev", policy="theirs")
    assert labels(ds)[5] == 55
    with pytest.raises(errors.InvalidArgumentError):
        ds.merge("dev", policy="mine")


def test_no_ff_and_snapshot_and_manifest_id_sources(ds):
    dev = ds.create_branch("dev")
    dev.append_many([{"label": 7}], anchors=[70])
    dev.snapshot("s1")
    ds.merge("s1", no_ff=True)
    assert len(ds.last_commit["parents"]) == 2
    dev.append_many([{"label": 8}], anchors=[80])
    ds.merge(dev.head)  # a manifest id
    assert {70, 80} <= set(labels(ds))
    at = dreamdb.Dataset.open_at("d", "s1", store=ds.store)
    with pytest.raises(errors.PermissionDeniedError):
        at.merge("dev")
    ds.merge(at)  # a read-only handle merges its version: already merged
    assert ds.last_commit["result"] == "up-to-date"


def test_missing_source_and_other_dataset(ds):
    with pytest.raises(errors.NotFoundError):
        ds.merge("nope")
    other = dreamdb.Dataset.create("e", ds.schema, store=ds.store)
    with pytest.raises(errors.InvalidArgumentError):
        ds.merge(other)
    with pytest.raises(errors.InvalidArgumentError):
        ds.merge(other.head)


def test_layer_written_on_a_branch_merges_back(ds):
    run = ds.create_branch("sweep/run-1")
    run.add_scalar_layer("pred", list(range(10)), [a * 0.5 for a in range(10)])
    ds.append_many([{"label": 10}], anchors=[10])
    ds.merge("sweep/run-1")
    assert "pred" in [f.name for f in ds.schema.fields]
    t = ds.take([3, 10], fields=["pred"])
    assert t.column("pred").to_pylist() == [1.5, None]


def test_merge_many_sixteen_parallel_writers(ds):
    branches = [ds.create_branch(f"w{i}") for i in range(16)]

    def write(i: int, b: "dreamdb.Dataset") -> None:
        first = 1_000_000 * (i + 1)
        for c in range(3):
            b.append_many([{"label": i} for _ in range(10)],
                          anchors=list(range(first + 10 * c, first + 10 * c + 10)))

    threads = [threading.Thread(target=write, args=(i, b)) for i, b in enumerate(branches)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ds.merge_many([f"w{i}" for i in range(16)])
    assert len(ds.last_commit["parents"]) == 17
    assert ds.count() == 10 + 16 * 30
    assert ds.verify()["problems"] == []
