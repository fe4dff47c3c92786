// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb.Store: a handle on a store URI (memory://, memory://NAME, file:///path or a
// local path), plus the store-wide operations: list datasets, verify, gc.

#include <nanobind/stl/optional.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <memory>
#include <string>
#include <vector>

#include "dreamdb/clone.h"
#include "dreamdb/dataset.h"
#include "dreamdb/gc.h"
#include "dreamdb/store.h"
#include "dreamdb/store_stats.h"
#include "python/src/bindings.h"

namespace dreamdb::python {
namespace {

nb::dict StatsDict(const StoreStats& s) {
  nb::dict by_verb;
  for (int v = 0; v < StoreStats::kVerbCount; ++v) {
    nb::dict by_class;
    for (int c = 0; c < StoreStats::kClassCount; ++c) {
      if (s.requests[v][c] != 0) by_class[StoreStats::ClassName(c)] = s.requests[v][c];
    }
    if (by_class.size() != 0) by_verb[StoreStats::VerbName(v)] = by_class;
  }
  nb::dict d;
  d["requests"] = s.TotalRequests();
  d["by_verb"] = by_verb;
  d["retries"] = s.retries;
  d["bytes_in"] = s.bytes_in;
  d["bytes_out"] = s.bytes_out;
  d["in_flight_ms"] = s.in_flight_ns / 1000000;
  d["cache_hits"] = s.cache_hits;
  d["cache_misses"] = s.cache_misses;
  d["cache_bytes_read"] = s.cache_bytes_read;
  d["cache_bytes_written"] = s.cache_bytes_written;
  d["cache_corrupt"] = s.cache_corrupt;
  d["cache_evictions"] = s.cache_evictions;
  return d;
}

}  // namespace

void RegisterStore(nb::module_& m) {
  nb::class_<Store>(m, "Store",
                    "A store of objects and refs, opened by URI. Thread-safe; share one handle "
                    "among datasets. memory:// is private to the handle; memory://NAME is shared "
                    "by every handle in the process that names NAME.")
      .def_static(
          "open",
          [](const std::string& uri, bool create, const std::optional<std::string>& cache,
             const std::optional<std::string>& cache_size) {
            StoreOptions options;
            options.open_mode =
                create ? StoreOpenMode::kCreateIfMissing : StoreOpenMode::kMustExist;
            if (cache) options.cache_dir = *cache;
            if (cache_size) {
              options.cache_size_bytes = ValueOrThrow(ParseByteSize("cache_size", *cache_size));
              if (options.cache_size_bytes == 0) {
                ThrowIfError(InvalidArgument("cache_size must be at least 1 byte"));
              }
            }
            std::unique_ptr<Store> s;
            {
              nb::gil_scoped_release release;
              s = ValueOrThrow(Store::Open(uri, options));
            }
            return std::shared_ptr<Store>(std::move(s));
          },
          nb::arg("uri"), nb::kw_only(), nb::arg("create") = false, nb::arg("cache") = nb::none(),
          nb::arg("cache_size") = nb::none(),
          "Opens the store at `uri`: 'memory://' (a new private store), 'memory://NAME' (one "
          "per NAME per process), 'file:///abs/path', a local path, or "
          "'s3://bucket/prefix?endpoint=...' (credentials from the AWS_* variables or "
          "~/.aws/credentials). A missing store is NotFoundError unless `create` is true, "
          "which creates it (so a mistyped path or prefix is an error, not a new empty store); "
          "other schemes are InvalidArgumentError. Messages and `uri` never show credentials. "
          "`cache` (a directory) caches immutable objects of a remote (s3://) store, shared "
          "by processes and bounded by `cache_size` (a byte count such as '2G'; default 1G).")
      .def_prop_ro("uri", &Store::uri,
                   "The canonical URI of this store, with any credential redacted.")
      .def_prop_ro(
          "cache",
          [](const Store& s) -> std::optional<std::string> {
            if (s.options().cache_dir.empty()) return std::nullopt;
            return s.options().cache_dir;
          },
          "The object cache's directory, or None.")
      .def_prop_ro(
          "cache_size", [](const Store& s) { return s.options().cache_size_bytes; },
          "The object cache's bound in bytes.")
      .def(
          "stats", [](const Store& s) { return StatsDict(s.stats()); },
          "The storage requests this handle made so far: {'requests', 'by_verb': {'GET': "
          "{'2xx': n, ...}, ...}, 'retries', 'bytes_in', 'bytes_out', 'in_flight_ms', "
          "'cache_hits', 'cache_misses', 'cache_bytes_read', 'cache_bytes_written', "
          "'cache_corrupt', 'cache_evictions'}. For s3:// a request is one HTTP attempt.")
      .def(
          "clone_to",
          [](Store& src, Store& dst, const std::vector<std::string>& refs, int parallelism,
             nb::object progress) {
            CloneOptions options;
            options.refs = refs;
            options.parallelism = parallelism;
            if (!progress.is_none()) {
              options.progress = [progress](const CloneProgress& p) {
                nb::gil_scoped_acquire acquire;
                progress(std::string(p.phase), p.done, p.total, p.bytes_copied);
              };
            }
            CloneReport r;
            Status st;
            {
              nb::gil_scoped_release release;
              st = Clone(src, dst, options, &r);
            }
            ThrowIfError(st);
            nb::dict d;
            d["refs"] = r.refs;
            d["refs_created"] = r.refs_created;
            d["refs_updated"] = r.refs_updated;
            d["refs_unchanged"] = r.refs_unchanged;
            d["objects"] = r.objects;
            d["objects_copied"] = r.objects_copied;
            d["objects_present"] = r.objects_present;
            d["bytes_copied"] = r.bytes_copied;
            d["conflicts"] = r.conflicts;
            return d;
          },
          nb::arg("dst"), nb::kw_only(), nb::arg("refs") = std::vector<std::string>(),
          nb::arg("parallelism") = 8, nb::arg("progress") = nb::none(),
          "Copies the closure of this store's refs (or of `refs`: ref or dataset names) to "
          "`dst`, skipping objects it has, objects first and refs last (see dreamdb.clone).")
      .def(
          "list_datasets",
          [](Store& s) {
            std::vector<std::string> names;
            nb::gil_scoped_release release;
            ThrowIfError(ListDatasets(s, [&](std::string_view n) {
              names.emplace_back(n);
              return true;
            }));
            return names;
          },
          "Names of the datasets in the store, sorted.")
      .def(
          "verify",
          [](Store& s, const std::string& name) {
            VerifyReport report;
            {
              nb::gil_scoped_release release;
              report = ValueOrThrow(Verify(s, name));
            }
            nb::dict d;
            d["refs"] = report.refs;
            d["objects"] = report.objects;
            d["bytes"] = report.bytes;
            d["problems"] = report.problems;
            nb::list retained;
            for (const auto& r : report.retained_without) {
              nb::dict e;
              e["manifest"] = r.manifest.ToString();
              e["field"] = r.field;
              retained.append(e);
            }
            d["retained_without"] = retained;
            return d;
          },
          nb::arg("name") = "",
          "Checks that every object reachable from the refs of dataset `name` (all datasets "
          "when empty) is present and intact. Returns {'refs', 'objects', 'bytes', "
          "'problems', 'retained_without'}; 'problems' is empty when the data is healthy. "
          "'retained_without' lists [{'manifest', 'field'}]: versions whose values of a field "
          "per-field retention reclaimed (spec/06-refs.md §6.12), which are not problems.")
      .def(
          "gc",
          [](Store& s, const std::string& grace, bool dry_run, bool no_writers_running,
             const std::optional<std::string>& keep_since, uint64_t keep_last,
             const std::vector<std::string>& datasets, const std::string& mark_memory,
             bool mark_only, uint32_t shard, uint32_t of) {
            GcOptions options;
            options.mark_only = mark_only;
            options.shard = shard;
            options.shard_of = of;
            options.mark_memory_bytes = ValueOrThrow(ParseByteSize(mark_memory));
            options.grace_ms = ValueOrThrow(ParseDurationMs(grace));
            options.dry_run = dry_run;
            options.no_writers_running = no_writers_running;
            if (keep_since) options.keep_since_ms = ValueOrThrow(ParseDurationMs(*keep_since));
            options.keep_last = keep_last;
            options.datasets = datasets;
            GcReport r;
            {
              nb::gil_scoped_release release;
              ThrowIfError(CollectGarbage(s, options, &r));
            }
            nb::dict d;
            d["dry_run"] = r.dry_run;
            d["grace_s"] = r.grace_ms / 1000;
            d["refs"] = r.refs;
            d["leases"] = r.leases;
            d["expired_leases"] = r.expired_leases;
            d["pruned_versions"] = r.pruned_versions;
            d["obsolete_markers"] = r.obsolete_markers;
            d["found_objects"] = r.found_objects;
            d["found_bytes"] = r.found_bytes;
            d["reachable_objects"] = r.reachable_objects;
            d["reachable_bytes"] = r.reachable_bytes;
            d["leased_objects"] = r.leased_objects;
            d["leased_bytes"] = r.leased_bytes;
            d["young_objects"] = r.young_objects;
            d["young_bytes"] = r.young_bytes;
            d["deleted_objects"] = r.deleted_objects;
            d["deleted_bytes"] = r.deleted_bytes;
            d["mark_passes"] = r.mark_passes;
            d["mark_peak_objects"] = r.mark_peak_objects;
            d["mark"] = r.mark;
            d["marked_objects"] = r.marked_objects;
            nb::list fields;
            for (const auto& f : r.field_retention) {
              nb::dict e;
              e["dataset"] = f.dataset;
              e["field"] = f.field;
              e["keep_since_s"] = f.keep_since_ms < 0 ? -1 : f.keep_since_ms / 1000;
              e["cutoff_ms"] = f.cutoff_ms;
              e["versions"] = f.versions;
              e["objects"] = f.objects;
              e["bytes"] = f.bytes;
              fields.append(e);
            }
            d["field_retention"] = fields;
            return d;
          },
          nb::arg("grace") = "24h", nb::arg("dry_run") = false,
          nb::arg("no_writers_running") = false, nb::arg("keep_since") = nb::none(),
          nb::arg("keep_last") = 0, nb::arg("datasets") = std::vector<std::string>(),
          nb::arg("mark_memory") = "1G", nb::arg("mark_only") = false, nb::arg("shard") = 0,
          nb::arg("of") = 0,
          "Deletes the objects no ref or live reader lease reaches and that are older than "
          "`grace` (e.g. '30m', '24h', '7d', '0'; under 1h only with no_writers_running=True) "
          "(spec/06-refs.md §6). Returns the report: {'dry_run', 'grace_s', 'refs', 'leases', "
          "'expired_leases', 'pruned_versions', 'obsolete_markers'} and "
          "'<found|reachable|leased|young|deleted>_<objects|bytes>'. CorruptError, deleting "
          "nothing, if a reachable object is missing or corrupt. Retention (spec/06-refs.md "
          "§6.10): with `keep_since` (a duration) and/or `keep_last` (versions), each ref's "
          "history older than that is pruned, for the datasets named in `datasets` (all "
          "when empty). `mark_memory` (e.g. '512M', '4G') bounds the mark: past it GC marks "
          "and sweeps in passes by object-id prefix ('mark_passes', 'mark_peak_objects'). "
          "Sharded GC (spec/06-refs.md §6.11): `mark_only=True` stores the mark (ref "
          "'gc.mark'; 'mark', 'marked_objects'); then `shard=N, of=M` sweeps shard N of M "
          "against it. Per-field retention rules (set_field_retention) are applied on every "
          "run: 'field_retention' lists [{'dataset', 'field', 'keep_since_s', 'cutoff_ms', "
          "'versions', 'objects', 'bytes'}], the versions kept without the field and what "
          "that rule alone reclaims (or would, with dry_run).")
      .def(
          "set_field_retention",
          [](Store& s, const std::string& dataset, const std::string& field,
             const std::string& keep_since) {
            const int64_t ms = ValueOrThrow(ParseDurationMs(keep_since));
            nb::gil_scoped_release release;
            ThrowIfError(SetFieldRetention(s, dataset, field, ms));
          },
          nb::arg("dataset"), nb::arg("field"), nb::kw_only(), nb::arg("keep_since"),
          "Sets the per-field retention rule of `field` (spec/06-refs.md §6.12): from the next "
          "gc on, versions older than `keep_since` (e.g. '30d') keep the field's values only "
          "where a branch, snapshot or live lease targets the version. Replaces an earlier "
          "rule of the field.")
      .def(
          "clear_field_retention",
          [](Store& s, const std::string& dataset, const std::string& field) {
            nb::gil_scoped_release release;
            ThrowIfError(ClearFieldRetention(s, dataset, field));
          },
          nb::arg("dataset"), nb::arg("field"),
          "Removes the retention rule of `field` (NotFoundError when it has none); values gc "
          "already reclaimed stay reclaimed.")
      .def(
          "field_retention",
          [](Store& s, const std::string& dataset) {
            std::vector<FieldRetentionRule> rules;
            {
              nb::gil_scoped_release release;
              rules = ValueOrThrow(ListFieldRetention(s, dataset));
            }
            nb::list out;
            for (const auto& r : rules) {
              nb::dict e;
              e["dataset"] = r.dataset;
              e["field"] = r.field;
              e["keep_since_s"] = r.keep_since_ms / 1000;
              e["ref"] = r.ref;
              out.append(e);
            }
            return out;
          },
          nb::arg("dataset") = "",
          "The per-field retention rules of `dataset` (every dataset when empty): "
          "[{'dataset', 'field', 'keep_since_s', 'ref'}].")
      .def(
          "take_lease",
          [](Store& s, const std::string& dataset, const std::string& holder,
             const std::string& manifest, int64_t expires_unix_s) {
            ObjectId id = ValueOrThrow(ObjectId::Parse(manifest));
            nb::gil_scoped_release release;
            return ValueOrThrow(TakeLease(s, dataset, holder, id, expires_unix_s));
          },
          nb::arg("dataset"), nb::arg("holder"), nb::arg("manifest"), nb::arg("expires_unix_s"),
          "Takes a reader lease on a manifest id until `expires_unix_s` (spec/06-refs.md §8): "
          "GC keeps everything it reaches while it is live. Returns the lease ref name; renew "
          "by taking a later lease, then releasing this one.")
      .def(
          "release_lease",
          [](Store& s, const std::string& lease_ref, const std::string& manifest) {
            ObjectId id = ValueOrThrow(ObjectId::Parse(manifest));
            nb::gil_scoped_release release;
            ThrowIfError(ReleaseLease(s, lease_ref, id));
          },
          nb::arg("lease_ref"), nb::arg("manifest"), "Deletes a lease taken with take_lease.")
      .def("__repr__", [](const Store& s) { return "Store(" + s.uri() + ")"; });
}

}  // namespace dreamdb::python
