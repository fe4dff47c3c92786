// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb gc [NAME...] [--keep-since DURATION] [--keep-last N] [--grace DURATION]
//            [--no-writers-running] [--mark-memory SIZE] [--dry-run] [--progress]
// dreamdb gc --mark-only [...]; dreamdb gc --sweep [--shard N --of M] [--dry-run]
#include "dreamdb/gc.h"

#include <algorithm>

#include "cli/dataset_util.h"
#include "dreamdb/jobs.h"
#include "dreamdb/quote.h"

namespace dreamdb::cli {
namespace {

std::string Figure(uint64_t objects, uint64_t bytes) {
  return std::to_string(objects) + (objects == 1 ? " object (" : " objects (") +
         std::to_string(bytes) + " bytes)";
}

Status Run(Invocation& inv) {
  GcOptions options;
  if (auto grace = inv.FlagValue("--grace")) {
    ASSIGN_OR_RETURN(options.grace_ms, ParseDurationMs(*grace));
  }
  if (auto keep = inv.FlagValue("--keep-since")) {
    ASSIGN_OR_RETURN(options.keep_since_ms, ParseDurationMs(*keep));
  }
  if (auto keep = inv.FlagValue("--keep-last")) {
    ASSIGN_OR_RETURN(options.keep_last, ParseU64("--keep-last", *keep));
    if (options.keep_last == 0) return InvalidArgument("--keep-last must be at least 1");
  }
  for (const std::string& name : inv.Args("NAME")) {
    RETURN_IF_ERROR(ValidateDatasetNameArg(name));
    options.datasets.push_back(name);
  }
  if (auto size = inv.FlagValue("--mark-memory")) {
    ASSIGN_OR_RETURN(options.mark_memory_bytes, ParseByteSize(*size));
  }
  options.mark_only = inv.HasFlag("--mark-only");
  std::optional<std::string> shard_flag(inv.FlagValue("--shard"));
  std::optional<std::string> of_flag(inv.FlagValue("--of"));
  if (inv.HasFlag("--sweep") || shard_flag || of_flag) {
    ASSIGN_OR_RETURN(ShardIndex index, ResolveShardIndex(shard_flag, of_flag));
    options.shard = index.shard;
    options.shard_of = index.of;
  }
  options.no_writers_running = inv.HasFlag("--no-writers-running");
  options.dry_run = inv.HasFlag("--dry-run");
  ASSIGN_OR_RETURN(Store * store, inv.store());
  Progress progress(inv.HasFlag("--progress"));
  options.progress = [&](std::string_view phase, uint64_t objects) {
    progress.Report("gc: " + std::string(phase) + ": " + std::to_string(objects) + " objects");
  };
  GcReport r;
  Status status = CollectGarbage(*store, options, &r);
  progress.Done();
  for (const std::string& problem : r.problems) {
    if (inv.json()) {
      inv.PrintJson(JsonObject().Add("problem", problem));
    } else {
      inv.PrintLine("problem: " + problem);
    }
  }
  RETURN_IF_ERROR(status);
  if (inv.json()) {
    std::string fields = "[";
    for (const GcReport::FieldRetention& f : r.field_retention) {
      if (fields.size() > 1) fields += ",";
      fields += JsonObject()
                    .Add("dataset", f.dataset)
                    .Add("field", f.field)
                    .Add("keep_since_s",
                         static_cast<uint64_t>(std::max<int64_t>(f.keep_since_ms, 0) / 1000))
                    .Add("cutoff_ms", static_cast<uint64_t>(f.cutoff_ms))
                    .Add("versions", f.versions)
                    .Add("objects", f.objects)
                    .Add("bytes", f.bytes)
                    .Finish();
    }
    fields += "]";
    inv.PrintJson(JsonObject()
                      .Add("dry_run", r.dry_run)
                      .Add("grace_s", static_cast<uint64_t>(r.grace_ms / 1000))
                      .Add("refs", r.refs)
                      .Add("leases", r.leases)
                      .Add("expired_leases", r.expired_leases)
                      .Add("pruned_versions", r.pruned_versions)
                      .Add("obsolete_markers", r.obsolete_markers)
                      .Add("found_objects", r.found_objects)
                      .Add("found_bytes", r.found_bytes)
                      .Add("reachable_objects", r.reachable_objects)
                      .Add("reachable_bytes", r.reachable_bytes)
                      .Add("leased_objects", r.leased_objects)
                      .Add("leased_bytes", r.leased_bytes)
                      .Add("young_objects", r.young_objects)
                      .Add("young_bytes", r.young_bytes)
                      .Add("deleted_objects", r.deleted_objects)
                      .Add("deleted_bytes", r.deleted_bytes)
                      .Add("mark_passes", static_cast<uint64_t>(r.mark_passes))
                      .Add("mark_peak_objects", r.mark_peak_objects)
                      .Add("mark", r.mark)
                      .Add("marked_objects", r.marked_objects)
                      .AddRaw("field_retention", fields));
    return Status::Ok();
  }
  if (options.mark_only) {
    inv.PrintLine("marked " + std::to_string(r.marked_objects) + " objects from " +
                  std::to_string(r.refs) + " refs and " + std::to_string(r.leases) +
                  " live leases; stored as mark " + r.mark + " (ref " + std::string(kGcMarkRef) +
                  "): sweep with `dreamdb gc --sweep --shard N --of M`");
    return Status::Ok();
  }
  if (options.shard_of != 0) {
    inv.PrintLine("shard " + std::to_string(options.shard) + " of " +
                  std::to_string(options.shard_of) + " against mark " + r.mark);
  }
  inv.PrintLine("found " + Figure(r.found_objects, r.found_bytes) + " from " +
                std::to_string(r.refs) + " refs and " + std::to_string(r.leases) + " live leases");
  inv.PrintLine("kept " + Figure(r.reachable_objects, r.reachable_bytes) + " reachable, " +
                Figure(r.leased_objects, r.leased_bytes) + " leased, " +
                Figure(r.young_objects, r.young_bytes) + " younger than the grace period");
  if (r.mark_passes > 1) {
    inv.PrintLine("marked in " + std::to_string(r.mark_passes) + " passes by id prefix (at most " +
                  std::to_string(r.mark_peak_objects) +
                  " objects held at once; --mark-memory sets the budget)");
  }
  if (r.pruned_versions != 0 || r.obsolete_markers != 0) {
    inv.PrintLine("retention: history cut before " + std::to_string(r.pruned_versions) +
                  " versions (" + std::to_string(r.obsolete_markers) +
                  " older cut markers dropped)");
  }
  for (const GcReport::FieldRetention& f : r.field_retention) {
    inv.PrintLine("retention of field " + Quote(f.field) + " of " + Quote(f.dataset) + ": " +
                  std::to_string(f.versions) + " versions made before cutoff " +
                  std::to_string(f.cutoff_ms) + " ms kept without it; " +
                  (r.dry_run ? "would reclaim " : "reclaimed ") + Figure(f.objects, f.bytes));
  }
  inv.PrintLine(std::string(r.dry_run ? "would delete " : "deleted ") +
                Figure(r.deleted_objects, r.deleted_bytes) +
                (r.expired_leases == 0
                     ? std::string()
                     : " and " + std::to_string(r.expired_leases) + " expired leases"));
  return Status::Ok();
}

const Registrar kRegistrar({
    .path = "gc",
    .summary = "Delete the objects no ref or reader lease reaches (spec/06 §6)",
    .description =
        "Marks every object reachable from every ref (branches, snapshots, other refs) and\n"
        "from every live reader lease (<dataset>/leases/<holder>/<expires>), then deletes\n"
        "the unmarked objects modified longer ago than the grace period (default 24h; under\n"
        "1h only with --no-writers-running). A missing or corrupt reachable object is\n"
        "printed ('problem: ...') and nothing is deleted (exit 7). --dry-run deletes nothing\n"
        "and reports the same figures.\n"
        "Retention: with --keep-since and/or --keep-last, a branch's (snapshot's, lease's)\n"
        "history is kept back to the last version within N versions of it or not older\n"
        "than DURATION; older history survives only where another ref pins it. GC marks\n"
        "where it cut with a ref <dataset>/pruned/<manifest>, and `log` stops there with a\n"
        "note. NAME... limits retention to those datasets (marking always covers every\n"
        "ref). JSON: {\"dry_run\", \"grace_s\", \"refs\", \"leases\", \"expired_leases\",\n"
        "\"pruned_versions\", \"obsolete_markers\", \"found_*\", \"reachable_*\",\n"
        "\"leased_*\", \"young_*\",\n"
        "\"deleted_*\"} with _objects and _bytes each, \"mark_passes\",\n"
        "\"mark_peak_objects\", \"field_retention\": [{\"dataset\", \"field\",\n"
        "\"keep_since_s\", \"cutoff_ms\", \"versions\", \"objects\", \"bytes\"}] (per-field\n"
        "rules, `dreamdb retention set`: objects and bytes that rule alone reclaims).\n"
        "Memory: the mark holds about 416 bytes per live object;\n"
        "past --mark-memory (default 1G) it runs in passes by object-id prefix, each\n"
        "marking and sweeping its share of the ids (spec/06 §6.8).\n"
        "Sharded: `gc --mark-only` marks and stores the result in the store (ref gc.mark);\n"
        "then `gc --sweep --shard N --of M` (or --sweep alone in a Slurm array or a\n"
        "Kubernetes Indexed Job) sweeps shard N of M of the object-id space against it;\n"
        "shards may run at once and again (spec/06 §6.11). Progress goes to stderr when it is a\n"
        "terminal, or with --progress.",
    .positionals = {{.name = "NAME",
                     .help = "datasets whose history retention prunes (default: all)",
                     .optional = true,
                     .repeated = true}},
    .flags = {{.name = "--keep-since",
               .value_name = "DURATION",
               .help = "retention: keep history not older than this (e.g. 30d; 0 = head only)"},
              {.name = "--keep-last",
               .value_name = "N",
               .help = "retention: keep at least the last N versions of each ref's history"},
              {.name = "--grace",
               .value_name = "DURATION",
               .help = "keep unreachable objects younger than this (e.g. 30m, 24h, 7d; 0)"},
              {.name = "--no-writers-running",
               .help = "allow a grace period under one hour: no writer is running"},
              {.name = "--mark-memory",
               .value_name = "SIZE",
               .help = "memory budget of the mark, e.g. 512M, 4G (default 1G)"},
              {.name = "--mark-only",
               .help = "sharded GC, step 1: mark and store the mark (ref gc.mark); no sweep"},
              {.name = "--sweep",
               .help = "sharded GC, step 2: sweep one shard against the stored mark"},
              {.name = "--shard",
               .value_name = "N",
               .help = "the shard to sweep, 0..M-1 (default: from SLURM_ARRAY_TASK_ID or "
                       "JOB_COMPLETION_INDEX)"},
              {.name = "--of",
               .value_name = "M",
               .help = "the number of shards, at most 256 (default: SLURM_ARRAY_TASK_COUNT "
                       "or DREAMDB_SHARD_COUNT)"},
              {.name = "--dry-run", .help = "delete nothing; report what would be deleted"},
              kProgressFlag},
    .run = Run,
});

}  // namespace
}  // namespace dreamdb::cli
