# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""Sharded jobs on Ray (`pip install "dreamdb[ray]"`): each shard of a job
(spec/14-semantics.md §19) runs as one Ray task, and the driver commits them all in one
compare-and-swap once every task has finished.

    import ray, dreamdb.ray
    ray.init()
    r = dreamdb.ray.ingest("s3://bucket/store?endpoint=...", "images",
                           ["part-0.parquet", "part-1.parquet", ...], num_shards=16)
    r["commit"]["added"]    # records the job added

Shard N of M takes the files [⌊N·F/M⌋, ⌊(N+1)·F/M⌋) of the F files given (the rule of
`dreamdb ingest --files-from`), reads them with `reader` and appends them with anchors
reserved through the store. The job id defaults to one derived from the dataset, branch,
files and shard count, so calling `ingest` again after a failure reruns only the shards
that had not finished and commits once; a job that was committed commits nothing again.

Ray is imported only when the default executor runs. `executor` may be any object with
`map(fn, items) -> list` (results in the order of `items`): `LocalExecutor` runs the
shards one after another in this process, which is how the adapter is tested without
Ray, and how a job is finished on one machine.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

from . import jobs
from .dataset import StoreLike, open_store
from .errors import InvalidArgumentError

Reader = Callable[[str], Iterable[Any]]


def shard_files(files: Sequence[str], shard: int, of: int) -> List[str]:
    """The files shard `shard` of `of` takes: [⌊shard·F/of⌋, ⌊(shard+1)·F/of⌋) of the F
    files, in order. Every file goes to exactly one shard; shards differ by at most one
    file."""
    if of < 1 or not 0 <= shard < of:
        raise InvalidArgumentError(f"shard {shard} of {of}: need 0 <= shard < of")
    n = len(files)
    return list(files[shard * n // of:(shard + 1) * n // of])


def default_job_id(name: str, branch: str, files: Sequence[str], of: int) -> str:
    """A job id determined by what the job ingests: the same call gives the same job, so
    a rerun resumes it instead of ingesting the files twice."""
    h = hashlib.sha256(json.dumps([name, branch, list(files), of]).encode()).hexdigest()
    return "ingest-" + h[:24]


def read_file(path: str) -> Iterable[Any]:
    """Record batches of one file, chosen by extension: .parquet, .jsonl/.ndjson/.json
    (JSON Lines), .csv, .arrow/.feather/.ipc (Arrow IPC file)."""
    import pyarrow as pa

    lower = path.lower()
    if lower.endswith(".parquet"):
        import pyarrow.parquet as pq

        yield from pq.ParquetFile(path).iter_batches()
    elif lower.endswith((".jsonl", ".ndjson", ".json")):
        import pyarrow.json as pj

        yield pj.read_json(path)
    elif lower.endswith(".csv"):
        import pyarrow.csv as pc

        yield from pc.open_csv(path)
    elif lower.endswith((".arrow", ".feather", ".ipc")):
        with pa.memory_map(path) as source:
            reader = pa.ipc.open_file(source)
            for i in range(reader.num_record_batches):
                yield reader.get_batch(i)
    else:
        raise InvalidArgumentError(
            f"cannot read {path!r}: unknown extension (.parquet, .jsonl, .ndjson, .json, "
            ".csv, .arrow, .feather, .ipc); pass reader= to read it")


def run_shard(store: str, name: str, job: str, branch: str, shard: int, of: int,
              files: Sequence[str], reader: Optional[Reader] = None) -> Dict[str, Any]:
    """One shard: appends every batch `reader` yields for each of its files. Returns
    {"shard", "files", "records", "done_before", "result"}; a shard that had finished
    before writes nothing (done_before true, records 0). This is the body of each Ray
    task; it runs anywhere the store URI opens."""
    read = reader or read_file
    with jobs.ShardWriter(store, name, job=job, shard=shard, of=of, branch=branch) as w:
        done_before = w.done
        if not done_before:
            for path in files:
                for batch in read(path):
                    w.append_many(batch)
    return {"shard": shard, "files": len(files), "records": w.records,
            "done_before": done_before, "result": w.result}


class LocalExecutor:
    """Runs the shards one after another in this process (no Ray): for tests, and to
    finish a job on one machine. Stores opened as memory://NAME are shared with it."""

    def map(self, fn: Callable[..., Any], items: Sequence[tuple]) -> List[Any]:
        return [fn(*args) for args in items]


class RayExecutor:
    """One Ray task per item (`ray.remote(fn).options(**remote_args)`), then ray.get of
    all of them; Ray retries a task whose worker died (`max_retries`), and a shard
    retried skips or redoes its work as spec/14 §19.5 says. Needs ray.init() (or it
    starts a local Ray as ray.remote does)."""

    def __init__(self, **remote_args: Any) -> None:
        self.remote_args = remote_args

    def map(self, fn: Callable[..., Any], items: Sequence[tuple]) -> List[Any]:
        try:
            import ray
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError(
                'dreamdb.ray needs Ray: pip install "dreamdb[ray]" (or pass executor=)') from e
        task = ray.remote(fn)
        if self.remote_args:
            task = task.options(**self.remote_args)
        return ray.get([task.remote(*args) for args in items])


def _store_uri(store: StoreLike, executor: Any) -> str:
    uri = store if isinstance(store, str) else (
        os.fspath(store) if isinstance(store, os.PathLike) else open_store(store).uri)
    if "://" not in uri:  # a local path: workers may run in another directory
        uri = "file://" + os.path.abspath(uri)
    if uri.startswith("memory://") and not isinstance(executor, LocalExecutor):
        raise InvalidArgumentError(
            f"store {uri!r} lives in this process only; Ray tasks run in other processes: "
            "use a file:// or s3:// store (or executor=LocalExecutor())")
    return uri


def ingest(store: StoreLike, name: str, files: Sequence[str], *, num_shards: Optional[int] = None,
           job: Optional[str] = None, branch: str = "main", reader: Optional[Reader] = None,
           message: str = "", executor: Any = None,
           ray_remote_args: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Ingests `files` into dataset `name` as job `job` of `num_shards` shards (default:
    one per file, at most 256), one task per shard, then commits the job in this process.

    `reader(path)` yields what Dataset.append_many takes (pyarrow Tables or RecordBatches,
    dicts of columns, lists of dicts); default `read_file`. Every worker must see the
    files and the store (file:// on a shared file system, or s3://). Returns {"job",
    "shards" (each shard's run_shard result, by shard), "records" (appended by this call),
    "commit" (jobs.commit's result)}. A shard that failed raises (Ray's error naming
    it); the shards that finished keep their results, so calling again with the same
    arguments finishes the job."""
    files = [os.fspath(f) for f in files]
    if not files:
        raise InvalidArgumentError("no files to ingest")
    of = int(num_shards) if num_shards is not None else min(len(files), 256)
    if not 1 <= of <= jobs.MAX_SHARDS:
        raise InvalidArgumentError(f"num_shards must be in 1..{jobs.MAX_SHARDS}, not {of}")
    if executor is None:
        executor = RayExecutor(**(ray_remote_args or {}))
    uri = _store_uri(store, executor)
    job_id = job or default_job_id(name, branch, files, of)
    items = [(uri, name, job_id, branch, k, of, shard_files(files, k, of), reader)
             for k in range(of)]
    results = list(executor.map(run_shard, items))
    committed = jobs.commit(uri, name, job=job_id, message=message)
    return {"job": job_id, "shards": results,
            "records": sum(int(r["records"]) for r in results), "commit": committed}


def write_dataset(ds: Any, store: StoreLike, name: str, *, num_shards: int, job: str,
                  branch: str = "main", message: str = "",
                  ray_remote_args: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Writes a Ray Dataset `ds` into dataset `name` as job `job`: `ds.split(num_shards,
    equal=False)` (whole blocks, in order) feeds one Ray task per shard, each appending
    its blocks as Arrow batches, and the driver commits. Returns what `ingest` returns.

    A rerun with the same job skips the shards that finished, which is right when `ds`
    yields the same blocks in the same order (read from the same files, not shuffled).
    Otherwise run it as a new job, and remove the old one's shards with
    `dreamdb job rm`."""
    import ray

    of = int(num_shards)
    if not 1 <= of <= jobs.MAX_SHARDS:
        raise InvalidArgumentError(f"num_shards must be in 1..{jobs.MAX_SHARDS}, not {of}")
    uri = _store_uri(store, None)
    parts = ds.split(of, equal=False)

    def write_part(k: int, part: Any) -> Dict[str, Any]:
        def batches(_: str) -> Iterable[Any]:
            return part.iter_batches(batch_format="pyarrow")

        return run_shard(uri, name, job, branch, k, of, ["<ray block split>"], batches)

    task = ray.remote(write_part)
    if ray_remote_args:
        task = task.options(**ray_remote_args)
    results = ray.get([task.remote(k, parts[k]) for k in range(of)])
    committed = jobs.commit(uri, name, job=job, message=message)
    return {"job": job, "shards": results,
            "records": sum(int(r["records"]) for r in results), "commit": committed}


__all__ = ["LocalExecutor", "RayExecutor", "default_job_id", "ingest", "read_file",
           "run_shard", "shard_files", "write_dataset"]
