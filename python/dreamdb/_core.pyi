"""
DreamDB C++ core bindings (use the `dreamdb` package, not this module).
"""

from collections.abc import Mapping, Sequence
from typing import Annotated

import numpy
from numpy.typing import NDArray


class Field:
    """One field of a schema (read-only; build with Schema)."""

    @property
    def name(self) -> str: ...

    @property
    def type(self) -> str:
        """
        'int64', 'float64', 'bool', 'string', 'categorical', 'timestamp', 'blob', 'embedding' or 'array'.
        """

    @property
    def optional(self) -> bool: ...

    @property
    def required(self) -> bool: ...

    @property
    def mime(self) -> str | None:
        """MIME type of a blob field; None for other types."""

    @property
    def dim(self) -> int | None:
        """Dimension of an embedding field; None for other types."""

    @property
    def dtype(self) -> str | None:
        """Element type of an array field ('u8' .. 'f64'); None for other types."""

    @property
    def shape(self) -> tuple | None:
        """Shape of an array field's values; None for other types."""

    def __eq__(self, arg: Field, /) -> bool: ...

    def __repr__(self) -> str: ...

    def __getstate__(self) -> str: ...

    def __setstate__(self, arg: str, /) -> None: ...

class Schema:
    """
    The fields of a dataset's records. Builder methods validate the field (InvalidArgumentError naming the problem) and return the schema, so calls chain. Fields are required unless required=False.
    """

    def __init__(self) -> None: ...

    def add_int(self, name: str, required: bool = True) -> Schema:
        """Adds an int64 field."""

    def add_scalar_int(self, name: str, required: bool = True) -> Schema:
        """Adds an int64 field."""

    def add_float(self, name: str, required: bool = True) -> Schema:
        """Adds a float64 field."""

    def add_scalar_float(self, name: str, required: bool = True) -> Schema:
        """Adds a float64 field."""

    def add_bool(self, name: str, required: bool = True) -> Schema:
        """Adds a bool field."""

    def add_scalar_bool(self, name: str, required: bool = True) -> Schema:
        """Adds a bool field."""

    def add_string(self, name: str, required: bool = True) -> Schema:
        """Adds a UTF-8 string field."""

    def add_scalar_string(self, name: str, required: bool = True) -> Schema:
        """Adds a UTF-8 string field."""

    def add_categorical(self, name: str, required: bool = True) -> Schema:
        """
        Adds a categorical field: strings from a small set, dictionary-encoded on disk.
        """

    def add_scalar_categorical(self, name: str, required: bool = True) -> Schema:
        """
        Adds a categorical field: strings from a small set, dictionary-encoded on disk.
        """

    def add_timestamp(self, name: str, required: bool = True) -> Schema:
        """Adds a timestamp field (int64 nanoseconds since the Unix epoch)."""

    def add_scalar_timestamp(self, name: str, required: bool = True) -> Schema:
        """Adds a timestamp field (int64 nanoseconds since the Unix epoch)."""

    def add_blob(self, name: str, mime: str = 'application/octet-stream', required: bool = True) -> Schema:
        """Adds a blob field (any bytes) with a MIME type."""

    def add_image(self, name: str, mime: str = 'image/png', required: bool = True) -> Schema:
        """
        Adds a blob field holding encoded images (default image/png). mime must be an image
        type: image/png, jpeg, gif, webp, bmp, tiff, avif, heic, heif, jxl, jp2, x-exr or
        x-portable-{anymap,bitmap,graymap,pixmap} (case-insensitive, parameters allowed);
        anything else raises InvalidArgumentError (use add_blob for other bytes).
        """

    def add_embedding(self, name: str, dim: int, index: str | None = None, bits: int = 4, metric: str = 'cosine', cells: int = 0, required: bool = True, quantizer: str = 'rabitq') -> Schema:
        """
        Adds an embedding field: dim float32 values per record. index: None (no declared
        index), "ivf", "imi", "lsh" or "graph" declares the field's vector index (spec/21
        section 2), with bits (1..8), metric ("cosine", "ip", "l2"), cells (0 = the
        algorithm's default; ignored by graph) and quantizer ("rabitq" or "pq4"; pq4 not with
        graph); Dataset.build_index then builds it. The index arguments are checked even
        without an index (InvalidArgumentError listing the valid values).
        """

    def add_array(self, name: str, dtype: str | type | object, shape: int | Sequence[int], required: bool = True) -> Schema:
        """
        Adds a fixed-shape array field. dtype: 'u8', 'i8', 'u16', 'i16', 'u32', 'i32', 'u64', 'i64', 'f32', 'f64' or the NumPy equivalent; shape: a sequence of sizes.
        """

    @property
    def fields(self) -> list[Field]:
        """The fields in declaration order."""

    @property
    def names(self) -> list[str]:
        """Field names in declaration order."""

    @property
    def version(self) -> int:
        """1 for a new schema, +1 per evolution."""

    def field(self, name: str) -> Field:
        """The field named `name`; NotFoundError (a KeyError) if absent."""

    def __getitem__(self, name: str) -> Field:
        """
        schema[name]: the field named `name`; NotFoundError (a KeyError) if absent.
        """

    def __contains__(self, arg: str, /) -> bool:
        """name in schema: whether a field is named `name`."""

    def __len__(self) -> int:
        """The number of fields."""

    def __eq__(self, arg: Schema, /) -> bool: ...

    def __repr__(self) -> str: ...

    @staticmethod
    def from_json(json: str) -> Schema:
        """
        Parses the JSON form accepted by `dreamdb create --schema`: {"fields": [{"name": ..., "type": ...}, ...]}.
        """

    def to_json(self) -> str:
        """The JSON form (see from_json)."""

    def __getstate__(self) -> str: ...

    def __setstate__(self, arg: str, /) -> None: ...

class Store:
    """
    A store of objects and refs, opened by URI. Thread-safe; share one handle among datasets. memory:// is private to the handle; memory://NAME is shared by every handle in the process that names NAME.
    """

    @staticmethod
    def open(uri: str, *, create: bool = False, cache: str | None = None, cache_size: str | None = None) -> Store:
        """
        Opens the store at `uri`: 'memory://' (a new private store), 'memory://NAME' (one per NAME per process), 'file:///abs/path', a local path, or 's3://bucket/prefix?endpoint=...' (credentials from the AWS_* variables or ~/.aws/credentials). A missing store is NotFoundError unless `create` is true, which creates it (so a mistyped path or prefix is an error, not a new empty store); other schemes are InvalidArgumentError. Messages and `uri` never show credentials. `cache` (a directory) caches immutable objects of a remote (s3://) store, shared by processes and bounded by `cache_size` (a byte count such as '2G'; default 1G).
        """

    @property
    def uri(self) -> str:
        """The canonical URI of this store, with any credential redacted."""

    @property
    def cache(self) -> str | None:
        """The object cache's directory, or None."""

    @property
    def cache_size(self) -> int:
        """The object cache's bound in bytes."""

    def stats(self) -> dict:
        """
        The storage requests this handle made so far: {'requests', 'by_verb': {'GET': {'2xx': n, ...}, ...}, 'retries', 'bytes_in', 'bytes_out', 'in_flight_ms', 'cache_hits', 'cache_misses', 'cache_bytes_read', 'cache_bytes_written', 'cache_corrupt', 'cache_evictions'}. For s3:// a request is one HTTP attempt.
        """

    def clone_to(self, dst: Store, *, refs: Sequence[str] = [], parallelism: int = 8, progress: object | None = None) -> dict:
        """
        Copies the closure of this store's refs (or of `refs`: ref or dataset names) to `dst`, skipping objects it has, objects first and refs last (see dreamdb.clone).
        """

    def list_datasets(self) -> list[str]:
        """Names of the datasets in the store, sorted."""

    def verify(self, name: str = '') -> dict:
        """
        Checks that every object reachable from the refs of dataset `name` (all datasets when empty) is present and intact. Returns {'refs', 'objects', 'bytes', 'problems', 'retained_without'}; 'problems' is empty when the data is healthy. 'retained_without' lists [{'manifest', 'field'}]: versions whose values of a field per-field retention reclaimed (spec/06-refs.md §6.12), which are not problems.
        """

    def gc(self, grace: str = '24h', dry_run: bool = False, no_writers_running: bool = False, keep_since: str | None = None, keep_last: int = 0, datasets: Sequence[str] = [], mark_memory: str = '1G', mark_only: bool = False, shard: int = 0, of: int = 0) -> dict:
        """
        Deletes the objects no ref or live reader lease reaches and that are older than `grace` (e.g. '30m', '24h', '7d', '0'; under 1h only with no_writers_running=True) (spec/06-refs.md §6). Returns the report: {'dry_run', 'grace_s', 'refs', 'leases', 'expired_leases', 'pruned_versions', 'obsolete_markers'} and '<found|reachable|leased|young|deleted>_<objects|bytes>'. CorruptError, deleting nothing, if a reachable object is missing or corrupt. Retention (spec/06-refs.md §6.10): with `keep_since` (a duration) and/or `keep_last` (versions), each ref's history older than that is pruned, for the datasets named in `datasets` (all when empty). `mark_memory` (e.g. '512M', '4G') bounds the mark: past it GC marks and sweeps in passes by object-id prefix ('mark_passes', 'mark_peak_objects'). Sharded GC (spec/06-refs.md §6.11): `mark_only=True` stores the mark (ref 'gc.mark'; 'mark', 'marked_objects'); then `shard=N, of=M` sweeps shard N of M against it. Per-field retention rules (set_field_retention) are applied on every run: 'field_retention' lists [{'dataset', 'field', 'keep_since_s', 'cutoff_ms', 'versions', 'objects', 'bytes'}], the versions kept without the field and what that rule alone reclaims (or would, with dry_run).
        """

    def set_field_retention(self, dataset: str, field: str, *, keep_since: str) -> None:
        """
        Sets the per-field retention rule of `field` (spec/06-refs.md §6.12): from the next gc on, versions older than `keep_since` (e.g. '30d') keep the field's values only where a branch, snapshot or live lease targets the version. Replaces an earlier rule of the field.
        """

    def clear_field_retention(self, dataset: str, field: str) -> None:
        """
        Removes the retention rule of `field` (NotFoundError when it has none); values gc already reclaimed stay reclaimed.
        """

    def field_retention(self, dataset: str = '') -> list:
        """
        The per-field retention rules of `dataset` (every dataset when empty): [{'dataset', 'field', 'keep_since_s', 'ref'}].
        """

    def take_lease(self, dataset: str, holder: str, manifest: str, expires_unix_s: int) -> str:
        """
        Takes a reader lease on a manifest id until `expires_unix_s` (spec/06-refs.md §8): GC keeps everything it reaches while it is live. Returns the lease ref name; renew by taking a later lease, then releasing this one.
        """

    def release_lease(self, lease_ref: str, manifest: str) -> None:
        """Deletes a lease taken with take_lease."""

    def __repr__(self) -> str: ...

class ArrowStream:
    """
    A one-shot stream of record batches; consume it with pyarrow.RecordBatchReader.from_stream(stream).
    """

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        """
        Exports the stream as a PyCapsule 'arrow_array_stream' (once). The requested schema is ignored, as the protocol allows: the stream has one fixed schema.
        """

    @property
    def consumed(self) -> bool: ...

    def raise_error(self) -> None:
        """
        Raises the DreamDB error that ended the stream (its class follows its code, like every error of the package); returns None while the stream has not failed.
        """

class Dataset:
    """Low-level dataset handle; use dreamdb.Dataset instead."""

    def search(self, field: str, queries: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], k: int = 10, nprobe: int = 0, where: Sequence[str] = [], fields: Sequence[str] = [], exact: bool = False, rerank: bool = True, start: int = 0, end: int = 18446744073709551615, ef: int = 0, recall: float = 0.0) -> tuple:
        """
        Vector search of the handle's head (spec/21-spatial-index.md); use Dataset.search.
        """

    def index_status(self, field: str, balance: bool = False, sample: int = 0) -> dict: ...

    def rebuild_index(self, field: str, message: str = '') -> dict: ...

    def step_index(self, field: str, message: str = '', split_above: float = 1.5, merge_below: float = 0.25) -> dict: ...

    def build_index(self, field: str, cells: int = 0, bits: int = 0, metric: str = '', seed: int = 0, message: str = '', algorithm: str = '', quantizer: str = '', degree: int = 0, calibrate: bool = True) -> dict: ...

    def merge(self, sources: Sequence[str], policy: str = 'fail', no_ff: bool = False, message: str = '', writer: str = '') -> dict:
        """
        Merges sources into the handle's branch (spec/14-semantics.md §16); use Dataset.merge.
        """

    def compact(self, message: str = '') -> dict:
        """
        Compacts the handle's branch (spec/14-semantics.md §18); use Dataset.compact.
        """

    @staticmethod
    def create(store: Store, name: str, schema: Schema, message: str = '') -> Dataset: ...

    @staticmethod
    def open(store: Store, name: str, branch: str = 'main') -> Dataset: ...

    @staticmethod
    def open_at(store: Store, name: str, at: str) -> Dataset: ...

    @property
    def store(self) -> Store: ...

    @property
    def name(self) -> str: ...

    @property
    def branch(self) -> str | None: ...

    @property
    def read_only(self) -> bool: ...

    @property
    def head(self) -> str: ...

    @property
    def schema(self) -> Schema: ...

    @property
    def meta(self) -> dict[str, str]: ...

    def count(self) -> int: ...

    def refresh(self) -> None: ...

    def append(self, stream: object, message: str = '') -> dict:
        """
        Appends the rows of an Arrow stream capsule (column 'anchor' optional).
        """

    def delete(self, anchors: Annotated[NDArray[numpy.uint64], dict(shape=(None,), order='C', device='cpu', writable=False)], message: str = '') -> dict: ...

    def add_layer(self, field: Field, anchors: Annotated[NDArray[numpy.uint64], dict(shape=(None,), order='C', device='cpu', writable=False)], stream: object, message: str = '') -> dict: ...

    def set_meta(self, meta: Mapping[str, str], message: str = '') -> dict: ...

    def snapshot(self, label: str) -> None: ...

    def create_branch(self, name: str) -> None: ...

    def scan(self, fields: Sequence[str], start: int = 0, end: int = 18446744073709551615, batch_rows: int = 8192, limit: int = 18446744073709551615, anchors_only: bool = False) -> ArrowStream:
        """
        Streams records in ascending anchor order (projected to `fields`, all when empty). anchors_only: only the anchor column, read from the index pages alone.
        """

    def anchors(self, start: int = 0, end: int = 18446744073709551615) -> Annotated[NDArray[numpy.uint64], dict(shape=(None,))]:
        """
        The live anchors in [start, end), ascending, as a NumPy uint64 array. Reads only the anchor index pages (no field data).
        """

    def read_units(self, fields: Sequence[str], min_records: int = 1, max_records: int = 18446744073709551615) -> Annotated[NDArray[numpy.uint64], dict(shape=(None, None))]:
        """
        Units of consecutive records for parallel readers that scan whole units, as a NumPy uint64 array of rows (first anchor, last anchor, records): a unit ends where a field's values move to another segment once it holds min_records, and at max_records at the latest. Reads only the anchor index pages.
        """

    def take(self, anchors: Annotated[NDArray[numpy.uint64], dict(shape=(None,), order='C', device='cpu', writable=False)], fields: Sequence[str], allow_missing: bool = False) -> ArrowStream: ...

    def history(self, limit: int = 0) -> list: ...

    def diff(self, other: str) -> list: ...

    def read_stats(self) -> dict: ...

    def verify(self) -> dict: ...

class Compare:
    """One comparison of refs; use dreamdb.compare_refs instead."""

    def stream(self) -> ArrowStream:
        """
        The rows as a one-shot Arrow stream: anchor, then <field>@<ref> columns.
        """

    def finish(self) -> dict:
        """Reads what is left without building rows; returns the final summary."""

    def summary(self) -> dict:
        """
        The summary of what has been read so far (final once the stream ended).
        """

    @property
    def columns(self) -> list[str]: ...

def compare_refs(store: Store, name: str, refs: Sequence[str], fields: Sequence[str], only_differing: bool = False, start: int = 0, end: int = 18446744073709551615, batch_rows: int = 8192, limit: int = 18446744073709551615, summary: bool = True, median_sample: int = 65536) -> Compare:
    """
    Starts comparing `fields` of dataset `name` across `refs` (the first is the baseline).
    """

def search(store: Store, name: str, at: str, field: str, queries: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], k: int, nprobe: int, where: Sequence[str], fields: Sequence[str], exact: bool, rerank: bool, start: int, end: int, ef: int = 0, recall: float = 0.0) -> tuple:
    """
    Vector search of one version, opened for the call; Dataset.search keeps it warm.
    """

def index_status(store: Store, name: str, at: str, field: str) -> dict: ...

def build_index(store: Store, name: str, branch: str, field: str, cells: int, bits: int, metric: str, seed: int, message: str, algorithm: str = '', quantizer: str = '', degree: int = 0, calibrate: bool = True) -> dict: ...

def merge(store: Store, name: str, branch: str, sources: Sequence[str], policy: str, no_ff: bool, message: str, writer: str) -> dict:
    """
    Merges sources into a branch (spec/14-semantics.md §16); use Dataset.merge.
    """

def compact(store: Store, name: str, branch: str, message: str) -> dict:
    """Compacts a branch (spec/14-semantics.md §18); use Dataset.compact."""

def sweep_init(store: Store, name: str, sweep: str, from_: str, runs: int, prefix: str, params: Sequence[Mapping[str, str]], metric: str, goal: str, message: str) -> dict:
    """Starts a sweep (spec/14-semantics.md §17); use Dataset.sweep_init."""

def sweep_show(store: Store, name: str, sweep: str) -> dict:
    """A sweep's record (spec/14-semantics.md §17); use Dataset.sweep."""

def sweep_list(store: Store, name: str) -> list:
    """A dataset's sweeps; use Dataset.sweeps."""

def sweep_summarize(store: Store, name: str, sweep: str, metric: str, goal: str) -> dict:
    """Ranks a sweep's runs by a metric; use Dataset.sweep_summarize."""

def sweep_merge_best(store: Store, name: str, sweep: str, metric: str, goal: str, into: str, policy: str, message: str) -> dict:
    """Merges a sweep's best run; use Dataset.sweep_merge_best."""

def job_shard_index(shard: str | None, of: str | None) -> tuple:
    """
    (shard, of, source) from the given values, else from Slurm array or Kubernetes Indexed Job variables (spec/14-semantics.md §19.8); use dreamdb.jobs.shard_index.
    """

class ShardRun:
    """
    One run of one shard of a sharded job (spec/14-semantics.md §19.5); use dreamdb.jobs.ShardWriter.
    """

    @staticmethod
    def begin(store: Store, name: str, job: str, branch: str, shard: int, of: int) -> ShardRun:
        """Steps 1-3: the plan, the work branch at the job's base."""

    @property
    def done(self) -> bool:
        """True when the shard had finished already (nothing to write)."""

    @property
    def result(self) -> str:
        """The shard's result manifest (when done)."""

    @property
    def base(self) -> str:
        """The job's base manifest."""

    @property
    def work_branch(self) -> str:
        """The branch this shard writes to (empty when done)."""

    def reserve(self, n: int) -> int:
        """Reserves n anchors; returns the first of [first, first + n)."""

    def finish(self) -> None:
        """Publishes the shard's result ref and deletes its work branch."""

def job_commit(store: Store, name: str, job: str, message: str) -> dict:
    """Publishes every shard of a job in one commit; use dreamdb.jobs.commit."""

def job_status(store: Store, name: str, job: str) -> dict:
    """The job's plan, finished shards and commit; use dreamdb.jobs.status."""

def index_job_train(store: Store, name: str, job: str, field: str, of: int, branch: str, rebuild: bool, algorithm: str, metric: str, bits: int, quantizer: str, cells: int, seed: int) -> dict:
    """
    The train stage of a sharded index build; use dreamdb.jobs.index_train.
    """

def index_job_shard(store: Store, name: str, job: str, shard: int, of: int) -> dict:
    """One shard of a sharded index build; use dreamdb.jobs.index_shard."""

def index_job_commit(store: Store, name: str, job: str, message: str) -> dict:
    """Publishes a sharded index build; use dreamdb.jobs.index_commit."""
