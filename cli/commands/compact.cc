// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb compact NAME [--branch B] [--message M] [--progress]
#include "cli/dataset_util.h"

namespace dreamdb::cli {
namespace {

Status Run(Invocation& inv) {
  const std::string& name = inv.Arg("NAME");
  ASSIGN_OR_RETURN(auto ds, OpenForWrite(inv, name));
  Progress progress(inv.HasFlag("--progress"));
  CompactOptions options;
  options.message = CommitOptionsFrom(inv, "compact").message;
  options.progress = [&](std::string_view phase, uint64_t done) {
    progress.Report("compact: " + std::string(phase) + ": " + std::to_string(done));
  };
  CompactReport r;
  auto info = ds->Compact(options, &r);
  progress.Done();
  RETURN_IF_ERROR(info.status());
  const std::string head = info->manifest.ToString();
  if (inv.json()) {
    inv.PrintJson(JsonObject()
                      .Add("dataset", name)
                      .Add("branch", ds->branch())
                      .Add("changed", r.changed)
                      .Add("records", r.records)
                      .Add("segments_before", r.segments_before)
                      .Add("segments_after", r.segments_after)
                      .Add("segment_bytes_before", r.segment_bytes_before)
                      .Add("segment_bytes_after", r.segment_bytes_after)
                      .Add("pages_before", r.pages_before)
                      .Add("pages_after", r.pages_after)
                      .Add("spatial_indexes", r.spatial_indexes)
                      .Add("attempts", static_cast<uint64_t>(r.attempts))
                      .Add("head", head));
    return Status::Ok();
  }
  if (!r.changed) {
    inv.PrintLine("already compact: " + std::to_string(r.records) + " records in " +
                  std::to_string(r.segments_before) + " segments and " +
                  std::to_string(r.pages_before) + " index pages; head " + head);
    return Status::Ok();
  }
  inv.PrintLine("compacted " + std::to_string(r.records) + " records: segments " +
                std::to_string(r.segments_before) + " -> " + std::to_string(r.segments_after) +
                " (" + std::to_string(r.segment_bytes_before) + " -> " +
                std::to_string(r.segment_bytes_after) + " bytes), index pages " +
                std::to_string(r.pages_before) + " -> " + std::to_string(r.pages_after) +
                (r.spatial_indexes == 0
                     ? std::string()
                     : ", " + std::to_string(r.spatial_indexes) + " spatial indexes carried over") +
                "; head " + head);
  return Status::Ok();
}

const Registrar kRegistrar({
    .path = "compact",
    .summary = "Rewrite a branch's records into few large segments (spec/14 §18)",
    .description =
        "One commit whose content is the head's (anchors, values, order, tombstones,\n"
        "schema, meta): the live values are copied into segments of about 64 MiB and a\n"
        "fresh anchor index; values of deleted and replaced records and of dropped fields\n"
        "are no longer reached by the new head (older versions keep them until GC drops\n"
        "those versions). Spatial indexes keep their live codes, moved to the new\n"
        "locations, and drop the entries of deleted and replaced records (a graph keeps\n"
        "its nodes until `index build`).\n"
        "A head that is already compact lands nothing. A commit that lands on the branch\n"
        "meanwhile makes it start again (3 attempts, then exit 6: conflict).\n"
        "JSON: {\"dataset\", \"branch\", \"changed\", \"records\", \"segments_before\",\n"
        "\"segments_after\", \"segment_bytes_before\", \"segment_bytes_after\",\n"
        "\"pages_before\", \"pages_after\", \"spatial_indexes\", \"attempts\", \"head\"}.",
    .positionals = {{.name = "NAME", .help = "the dataset"}},
    .flags = {kBranchFlag, kMessageFlag, kProgressFlag},
    .run = Run,
});

}  // namespace
}  // namespace dreamdb::cli
