# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""DreamDB: versioned, content-addressed datasets.

    import dreamdb
    schema = dreamdb.Schema().add_int("label").add_image("img").add_embedding("emb", 512)
    ds = dreamdb.Dataset.create("pets", schema, store="file:///data/store")
    ds.append_many([{"label": 1, "img": png_bytes, "emb": vector}])
    for batch in ds.iter_batches(fields=["label", "emb"]):   # pyarrow.RecordBatch
        ...

PyTorch: ``dreamdb.torch.DreamDBDataset`` (imported on demand, needs torch).
Errors: ``dreamdb.Error`` and its subclasses (``dreamdb.errors``).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from . import errors
from ._core import Field, Schema, Store
from .compare import CompareResult, compare_refs
from .dataset import Dataset, StoreLike, open_store
from .errors import (
    AlreadyExistsError,
    ConflictError,
    CorruptError,
    Error,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    StorageIOError,
    UnavailableError,
    UnsupportedError,
)

__version__ = "0.1.0"

__all__ = [
    "Dataset",
    "Field",
    "Schema",
    "Store",
    "StoreLike",
    "open_store",
    "compare_refs",
    "CompareResult",
    "list_datasets",
    "verify",
    "gc",
    "set_field_retention",
    "clear_field_retention",
    "field_retention",
    "clone",
    "Error",
    "InvalidArgumentError",
    "NotFoundError",
    "AlreadyExistsError",
    "ConflictError",
    "CorruptError",
    "UnavailableError",
    "StorageIOError",
    "UnsupportedError",
    "PermissionDeniedError",
    "InternalError",
    "errors",
]


def list_datasets(store: StoreLike) -> List[str]:
    """Names of the datasets in `store`."""
    return open_store(store).list_datasets()


def verify(store: StoreLike, name: Optional[str] = None) -> Dict[str, Any]:
    """Checks the objects reachable from the refs of dataset `name` (all when None)."""
    return open_store(store).verify(name or "")


def gc(store: StoreLike, grace: str = "24h", dry_run: bool = False,
       no_writers_running: bool = False, keep_since: Optional[str] = None,
       keep_last: int = 0, datasets: Sequence[str] = (),
       mark_memory: str = "1G", mark_only: bool = False, shard: int = 0,
       of: int = 0) -> Dict[str, Any]:
    """Deletes what no ref or live reader lease reaches, past `grace`; returns the report.
    With `keep_since` (e.g. "30d") and/or `keep_last` (versions), history older than that
    is pruned (for `datasets`, default all); `mark_memory` bounds the mark; `mark_only`
    and `shard`/`of` run a sharded GC's two steps: see Store.gc."""
    return open_store(store).gc(grace, dry_run, no_writers_running, keep_since, keep_last,
                                list(datasets), mark_memory, mark_only, shard, of)


def set_field_retention(store: StoreLike, dataset: str, field: str, keep_since: str) -> None:
    """Keeps `field`'s values in versions of `dataset` older than `keep_since` (e.g. "30d")
    only where a branch, snapshot or live lease targets the version, from the next gc on
    (spec/06-refs.md §6.12; ``dreamdb retention set``). Reading the field in a version gc
    reclaimed it from raises NotFoundError naming the field and the version."""
    open_store(store).set_field_retention(dataset, field, keep_since=keep_since)


def clear_field_retention(store: StoreLike, dataset: str, field: str) -> None:
    """Removes `field`'s retention rule (NotFoundError when it has none)."""
    open_store(store).clear_field_retention(dataset, field)


def field_retention(store: StoreLike, dataset: Optional[str] = None) -> List[Dict[str, Any]]:
    """The per-field retention rules of `dataset` (all datasets when None)."""
    return open_store(store).field_retention(dataset or "")


def clone(src: StoreLike, dst: StoreLike, refs: Optional[Sequence[str]] = None, *,
          parallelism: int = 8, progress: Optional[Any] = None) -> Dict[str, Any]:
    """Copies the closure of `src`'s refs (or of `refs`: ref or dataset names) to `dst`
    (created if missing), as ``dreamdb clone``: objects `dst` has are skipped, objects go
    first and refs last, so an interrupted clone resumes when run again. `progress`, if
    given, is called as progress(phase, done, total, bytes_copied). Returns {"refs",
    "refs_created", "refs_updated", "refs_unchanged", "objects", "objects_copied",
    "objects_present", "bytes_copied", "conflicts"}. ConflictError when a ref diverged in
    `dst` (everything else is copied); CorruptError, moving no ref, when `src`'s refs reach
    a missing or damaged object."""
    source = open_store(src)
    target = open_store(dst, create=True)
    return source.clone_to(target, refs=list(refs or []), parallelism=parallelism,
                           progress=progress)
