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

#include "dreamdb/dataset.h"
#include "dreamdb/gc.h"
#include "dreamdb/store.h"
#include "python/src/bindings.h"

namespace dreamdb::python {

void RegisterStore(nb::module_& m) {
  nb::class_<Store>(m, "Store",
                    "A store of objects and refs, opened by URI. Thread-safe; share one handle "
                    "among datasets. memory:// is private to the handle; memory://NAME is shared "
                    "by every handle in the process that names NAME.")
      .def_static(
          "open",
          [](const std::string& uri, bool create) {
            StoreOptions options;
            options.open_mode =
                create ? StoreOpenMode::kCreateIfMissing : StoreOpenMode::kMustExist;
            std::unique_ptr<Store> s;
            {
              nb::gil_scoped_release release;
              s = ValueOrThrow(Store::Open(uri, options));
            }
            return std::shared_ptr<Store>(std::move(s));
          },
          nb::arg("uri"), nb::kw_only(), nb::arg("create") = false,
          "Opens the store at `uri`: 'memory://' (a new private store), 'memory://NAME' (one "
          "per NAME per process), 'file:///abs/path', a local path, or "
          "'s3://bucket/prefix?endpoint=...' (credentials from the AWS_* variables or "
          "~/.aws/credentials). A missing store is NotFoundError unless `create` is true, "
          "which creates it (so a mistyped path or prefix is an error, not a new empty store); "
          "other schemes are InvalidArgumentError. Messages and `uri` never show credentials.")
      .def_prop_ro("uri", &Store::uri,
                   "The canonical URI of this store, with any credential redacted.")
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
            return d;
          },
          nb::arg("name") = "",
          "Checks that every object reachable from the refs of dataset `name` (all datasets "
          "when empty) is present and intact. Returns {'refs', 'objects', 'bytes', "
          "'problems'}; 'problems' is empty when the data is healthy.")
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
          "against it.")
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
