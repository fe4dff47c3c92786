# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Time-window reads (the C++ TimeAnchorIter) from Python: iter_batches(since=, until=)
over a dataset whose anchors are times in ns since the epoch, reading only the window."""

import datetime as dt

import numpy as np
import pytest

import dreamdb

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
NS = 1_000_000_000


def ns(t: dt.datetime) -> int:
    return int((t - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)).total_seconds()) * NS


@pytest.fixture
def ds(tmp_path) -> dreamdb.Dataset:
    s = dreamdb.Schema().add_int("minute").add_blob("raw")
    d = dreamdb.Dataset.create("events", s, store=str(tmp_path / "s"))
    # One record a minute for 48 hours, in 4 commits; each carries a 2 KiB blob.
    for day_half in range(4):
        minutes = np.arange(day_half * 720, (day_half + 1) * 720)
        anchors = [ns(T0) + int(m) * 60 * NS for m in minutes]
        d.append_many({"minute": minutes, "raw": [b"x" * 2048] * len(minutes)}, anchors=anchors)
    return d


def test_since_until_returns_exactly_the_window(ds):
    since, until = T0 + dt.timedelta(hours=30), T0 + dt.timedelta(hours=31)
    t = ds.to_table(["minute"], since=since, until=until)
    assert t.column("minute").to_pylist() == list(range(30 * 60, 31 * 60))
    assert t.column("anchor").to_pylist()[0] == ns(since)
    # RFC 3339 strings, numpy datetime64 and integer ns name the same window.
    for a, b in (("2026-01-02T06:00:00Z", "2026-01-02T07:00:00+00:00"),
                 (np.datetime64("2026-01-02T06:00:00"), np.datetime64("2026-01-02T07:00:00")),
                 (ns(since), ns(until))):
        assert ds.to_table(["minute"], since=a, until=b).equals(t)
    # Open-ended on either side.
    assert ds.to_table(["minute"], since=T0 + dt.timedelta(hours=47)).num_rows == 60
    assert ds.to_table(["minute"], until=T0 + dt.timedelta(minutes=5)).num_rows == 5


def test_time_window_reads_only_the_window(ds):
    fresh = dreamdb.Dataset.open("events", store=ds.store)
    window = fresh.to_table(["raw"], since=T0 + dt.timedelta(hours=1),
                            until=T0 + dt.timedelta(hours=2))
    assert window.num_rows == 60
    fetched = fresh.read_stats()["bytes_fetched"]
    # The window's 60 blobs (~120 KiB) and at most the rest of their segment; never the
    # other three segments (~1.5 MiB each).
    assert fetched < 2 * 720 * 2048, fetched


def test_time_window_bad_bounds_are_clear_errors(ds):
    with pytest.raises(dreamdb.InvalidArgumentError, match="no timezone"):
        ds.to_table(since=dt.datetime(2026, 1, 1))
    with pytest.raises(dreamdb.InvalidArgumentError, match="RFC 3339"):
        ds.to_table(since="yesterday")
    with pytest.raises(dreamdb.InvalidArgumentError, match="after until"):
        ds.to_table(since=T0 + dt.timedelta(hours=2), until=T0)
    with pytest.raises(dreamdb.InvalidArgumentError, match="not both"):
        ds.to_table(since=T0, start=5)
    with pytest.raises(dreamdb.InvalidArgumentError, match="1970"):
        ds.to_table(since=dt.datetime(1960, 1, 1, tzinfo=dt.timezone.utc))
    with pytest.raises(dreamdb.InvalidArgumentError, match="expected a datetime"):
        ds.to_table(since=1.5)
