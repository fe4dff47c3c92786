// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb commit NAME --job J [--message M]
//
// Publishes every shard of a sharded job in one commit (spec/14-semantics.md §19.6).
#include "cli/dataset_util.h"
#include "dreamdb/jobs.h"
#include "dreamdb/quote.h"

namespace dreamdb::cli {
namespace {

Status Run(Invocation& inv) {
  const std::string& name = inv.Arg("NAME");
  RETURN_IF_ERROR(ValidateDatasetNameArg(name));
  auto job = inv.FlagValue("--job");
  if (!job) return inv.Usage("--job J is required (the job whose shards to publish)");
  const std::string job_id(*job);
  RETURN_IF_ERROR(ValidateJobId(job_id));
  ASSIGN_OR_RETURN(std::shared_ptr<Store> store, SharedStore(inv));
  ASSIGN_OR_RETURN(JobCommitReport r, CommitJob(store, name, job_id, CommitOptionsFrom(inv)));
  const std::string manifest = r.manifest.ToString();
  if (inv.json()) {
    JsonObject o;
    o.Add("dataset", name)
        .Add("job", job_id)
        .Add("branch", r.branch)
        .Add("shards", uint64_t{r.shards})
        .Add("already_committed", r.already_committed)
        .Add("added", r.added)
        .Add("count", r.info.count)
        .Add("manifest", manifest);
    if (r.index) o.Add("field", r.field).Add("index", r.index->ToString());
    inv.PrintJson(o);
  } else if (r.already_committed) {
    inv.PrintLine("job " + Quote(job_id) + " was already committed to " + Quote(name) +
                  " (branch " + r.branch + ", " + manifest + "); nothing written");
  } else if (r.index) {
    inv.PrintLine("committed job " + Quote(job_id) + " (" + std::to_string(r.shards) +
                  (r.shards == 1 ? " shard): " : " shards): index of ") + r.field + " " +
                  r.index->ToString() + " on " + Quote(name) + " (branch " + r.branch + "); head " +
                  manifest);
  } else {
    inv.PrintLine("committed job " + Quote(job_id) + " (" + std::to_string(r.shards) +
                  (r.shards == 1 ? " shard, " : " shards, ") + std::to_string(r.added) +
                  " records added) to " + Quote(name) + " (branch " + r.branch + "); head " +
                  manifest);
  }
  return Status::Ok();
}

const Registrar kRegistrar({
    .path = "commit",
    .summary = "Publish the shards of a sharded job in one commit",
    .description =
        "Merges the results of shards 0..M-1 of job J (written by `dreamdb ingest --job J`)\n"
        "into the job's branch in one compare-and-swap (spec/14 §19.6): an octopus merge, or\n"
        "a fast-forward for one shard. A shard that has not finished is not_found naming it\n"
        "(exit 4); nothing is written then. Run again after\n"
        "success, it writes nothing and says so. A sharded index build (`dreamdb index build\n"
        "--job J`, spec/14 §19.10) is published the same way: the shards' buckets joined per\n"
        "cell, calibrated, committed as the field's index. JSON: {\"dataset\", \"job\",\n"
        "\"branch\", \"shards\", \"already_committed\", \"added\", \"count\", \"manifest\",\n"
        "\"field\"? and \"index\"? (index builds)}.",
    .positionals = {{.name = "NAME", .help = "the dataset"}},
    .flags = {{.name = "--job", .value_name = "J", .help = "the job id (required)"}, kMessageFlag},
    .run = Run,
});

}  // namespace
}  // namespace dreamdb::cli
