# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Sharded jobs (spec/14-semantics.md §19): M workers write in parallel, one commit
publishes them all.

    from dreamdb import jobs
    shard, of = jobs.shard_index()       # from Slurm / Kubernetes, or jobs.shard_index(3, 16)
    with jobs.ShardWriter(store, "pets", job="ingest-42", shard=shard, of=of) as w:
        if not w.done:                   # finished before: nothing to write
            for rows in my_slice(shard, of):
                w.append_many(rows)      # anchors reserved through the store
    # ... once every shard has finished, in one process:
    jobs.commit(store, "pets", job="ingest-42")

Each shard writes on its own branch with anchors no other writer gets; the commit merges
every shard into the job's branch in one compare-and-swap. A shard or a commit run twice
changes nothing; a commit with a shard missing raises NotFoundError naming it.

A sharded index build (spec/14-semantics.md §19.10) publishes the index object a
one-machine `build_index` with the same options writes:

    jobs.index_train(store, "pets", job="ix-1", field="emb", of=16, algorithm="ivf", seed=7)
    jobs.index_shard(store, "pets", job="ix-1", shard=n, of=16)    # on each worker
    jobs.commit(store, "pets", job="ix-1")                          # or jobs.index_commit
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from . import _convert
from ._core import ShardRun
from ._core import index_job_commit as _index_commit
from ._core import index_job_shard as _index_shard
from ._core import index_job_train as _index_train
from ._core import job_commit as _commit
from ._core import job_shard_index as _shard_index
from ._core import job_status as _status
from .dataset import Dataset, StoreLike, open_store

MAX_SHARDS = 65536  # shards per job (spec/14-semantics.md §19)


def shard_index(shard: Optional[int] = None, of: Optional[int] = None) -> Tuple[int, int]:
    """(shard, of): the given values, else from a Slurm array (SLURM_ARRAY_TASK_ID
    normalised by _MIN and _STEP, of = _COUNT) or a Kubernetes Indexed Job
    (JOB_COMPLETION_INDEX, of = `of` or DREAMDB_SHARD_COUNT). InvalidArgumentError naming
    the variable when they are inconsistent; NotFoundError when nothing gives an index."""
    s, n, _ = _shard_index(None if shard is None else str(shard), None if of is None else str(of))
    return int(s), int(n)


class ShardWriter:
    """Shard `shard` of `of` of job `job` of dataset `name` (spec/14-semantics.md §19.5).

    `done` is true when this shard had finished already: then nothing may be written.
    Otherwise append with `append_many` (anchors are reserved through the store unless
    the rows carry their own) and call `finish` (a `with` block does it when no exception
    escaped). Not thread-safe: one writer per shard process."""

    def __init__(self, store: StoreLike, name: str, *, job: str, shard: int, of: int,
                 branch: str = "main") -> None:
        self._store = open_store(store)
        self._name = name
        self._run = ShardRun.begin(self._store, name, job, branch, int(shard), int(of))
        self._ds: Optional[Dataset] = None
        if not self._run.done:
            self._ds = Dataset.open(name, store=self._store, branch=self._run.work_branch)
        self.records = 0

    @property
    def done(self) -> bool:
        """True when the shard has finished (before this run, or after finish())."""
        return bool(self._run.done)

    @property
    def result(self) -> str:
        """The shard's result manifest id (once done)."""
        return str(self._run.result)

    @property
    def dataset(self) -> Optional[Dataset]:
        """The work branch's Dataset (None when done): read what this shard wrote."""
        return self._ds

    def append_many(self, rows: Any, message: str = "") -> str:
        """Appends rows (as Dataset.append_many takes them) with freshly reserved anchors;
        returns the work branch's new head."""
        if self._ds is None:
            raise RuntimeError("this shard is done: nothing more may be written")
        table = _convert.to_table(rows, self._ds.schema, None)
        n = table.num_rows
        if n == 0:
            return self._ds.head
        if "anchor" in table.column_names:  # the caller's own anchors
            head = self._ds.append_many(table, message=message)
            self.records += n
            return head
        first = int(self._run.reserve(n))
        head = self._ds.append_many(table, anchors=list(range(first, first + n)),
                                    message=message)
        self.records += n
        return head

    def finish(self) -> str:
        """Publishes the shard's result; returns its manifest id. Idempotent."""
        if not self._run.done:
            self._run.finish()
            self._ds = None
        return self.result

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.finish()


def commit(store: StoreLike, name: str, *, job: str, message: str = "") -> Dict[str, Any]:
    """Publishes every shard of `job` in one commit on the job's branch. Returns {"job",
    "branch", "shards", "already_committed", "added", "count", "manifest"} (and "field",
    "index" for a sharded index build). A committed
    job commits nothing again; a missing shard raises NotFoundError naming it."""
    return dict(_commit(open_store(store), name, job, message))


def status(store: StoreLike, name: str, *, job: str) -> Dict[str, Any]:
    """The job's plan and progress: {"job", "branch", "of", "base", "finished" (shard
    indices), "committed" (manifest id or None)}. NotFoundError when no shard has run."""
    return dict(_status(open_store(store), name, job))


def index_train(store: StoreLike, name: str, *, job: str, field: str, of: int,
                branch: str = "main", rebuild: bool = False, algorithm: str = "",
                metric: str = "", bits: int = 0, quantizer: str = "", cells: int = 0,
                seed: int = 0) -> Dict[str, Any]:
    """The train stage of sharded index build `job` (spec/14-semantics.md §19.10): plans
    `of` shards on `branch`'s head and trains `field`'s model there exactly as
    Dataset.build_index does with these options (rebuild=True: the stored index's
    settings, as `index rebuild`). Returns {"already_done", "field", "branch", "of", "base",
    "index" (the trained index object), "cells", ...}. Running it again writes nothing."""
    return dict(_index_train(open_store(store), name, job, field, int(of), branch, rebuild,
                             algorithm, metric, int(bits), quantizer, int(cells), int(seed)))


def index_shard(store: StoreLike, name: str, *, job: str, shard: Optional[int] = None,
                of: Optional[int] = None) -> Dict[str, Any]:
    """Shard `shard` of `of` (default: from Slurm / Kubernetes, as shard_index) of sharded
    index build `job`: assigns and encodes the base's records in its anchor range. Returns
    {"already_done", "entries", "buckets", "start", "end" (None: open-ended), "index", ...}.
    NotFoundError when the train stage has not run."""
    s, n = shard_index(shard, of)
    return dict(_index_shard(open_store(store), name, job, s, n))


def index_commit(store: StoreLike, name: str, *, job: str, message: str = "") -> Dict[str, Any]:
    """Publishes sharded index build `job` (as commit does for it): joins the shards'
    buckets per cell, calibrates and commits the index on the job's branch. Returns
    {"already_done", "index", "manifest", "entries", "buckets", ...}. A missing shard raises
    NotFoundError naming it."""
    return dict(_index_commit(open_store(store), name, job, message))
