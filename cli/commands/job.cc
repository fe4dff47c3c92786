// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb job status NAME J
// dreamdb job rm NAME J [--abandon]
//
// The state of a sharded job, and the removal of its refs (spec/14-semantics.md §19).
#include "cli/dataset_util.h"
#include "dreamdb/jobs.h"
#include "dreamdb/quote.h"

namespace dreamdb::cli {
namespace {

Status RunStatus(Invocation& inv) {
  const std::string& name = inv.Arg("NAME");
  const std::string& job = inv.Arg("J");
  RETURN_IF_ERROR(ValidateDatasetNameArg(name));
  RETURN_IF_ERROR(ValidateJobId(job));
  ASSIGN_OR_RETURN(Store * store, inv.store());
  ASSIGN_OR_RETURN(JobStatus st, ReadJobStatus(*store, name, job));
  std::string committed = st.committed ? st.committed->ToString() : "";
  if (inv.json()) {
    JsonObject out;
    out.Add("dataset", name)
        .Add("job", job)
        .Add("branch", st.branch)
        .Add("of", uint64_t{st.of})
        .Add("base", st.base.ToString())
        .Add("finished", static_cast<uint64_t>(st.finished.size()));
    if (st.trained) out.Add("trained", st.trained->ToString());  // an index build (§19.10)
    if (st.committed) {
      out.Add("committed", committed);
    } else {
      out.AddRaw("committed", "null");
    }
    inv.PrintJson(out);
  } else {
    inv.PrintLine("job " + Quote(job) + " of " + Quote(name) + ": branch " + st.branch + ", " +
                  std::to_string(st.finished.size()) + " of " + std::to_string(st.of) +
                  " shards finished, " +
                  (st.committed ? "committed (" + committed + ")" : "not committed"));
  }
  return Status::Ok();
}

Status RunRm(Invocation& inv) {
  const std::string& name = inv.Arg("NAME");
  const std::string& job = inv.Arg("J");
  RETURN_IF_ERROR(ValidateDatasetNameArg(name));
  RETURN_IF_ERROR(ValidateJobId(job));
  ASSIGN_OR_RETURN(Store * store, inv.store());
  ASSIGN_OR_RETURN(JobRemoveReport r, RemoveJob(*store, name, job, inv.HasFlag("--abandon")));
  if (inv.json()) {
    inv.PrintJson(JsonObject()
                      .Add("dataset", name)
                      .Add("job", job)
                      .Add("committed", r.committed)
                      .Add("refs", r.refs)
                      .Add("work_branches", r.work_branches));
  } else {
    inv.PrintLine("removed job " + Quote(job) + " of " + Quote(name) + " (" +
                  (r.committed ? "committed" : "abandoned") + "): " + std::to_string(r.refs) +
                  " refs, " + std::to_string(r.work_branches) +
                  " work branches; `dreamdb gc` reclaims the objects only they reached");
  }
  return Status::Ok();
}

const std::vector<Positional> kPositionals = {{.name = "NAME", .help = "the dataset"},
                                              {.name = "J", .help = "the job id"}};

const Registrar kStatus({
    .path = "job status",
    .summary = "Show a sharded job's plan, finished shards and commit",
    .description =
        "Reads the job's refs (spec/14 §19.2). not_found (exit 4) when no shard has run.\n"
        "JSON: {\"dataset\", \"job\", \"branch\", \"of\", \"base\", \"finished\" (how many\n"
        "shards), \"committed\" (the manifest, or null)}.",
    .positionals = kPositionals,
    .run = RunStatus,
});

const Registrar kRm({
    .path = "job rm",
    .summary = "Remove a finished or abandoned sharded job's refs",
    .description =
        "Deletes the refs of job J (its plan, shard results and commit record) and the\n"
        "work branches of shards that did not finish (spec/14 §19.9); a later `dreamdb gc`\n"
        "reclaims the objects only they reached. What a commit published stays on its\n"
        "branch. A job not committed is refused (exit 3) unless --abandon: its shards'\n"
        "records are then dropped (stop its shards first). not_found (exit 4) when the job\n"
        "has no refs. JSON: {\"dataset\", \"job\", \"committed\", \"refs\", \"work_branches\"}.",
    .positionals = kPositionals,
    .flags = {{.name = "--abandon",
               .help = "remove a job that was never committed, dropping its shards' records"}},
    .run = RunRm,
});

}  // namespace
}  // namespace dreamdb::cli
