// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb verify [NAME] [--progress]
#include "cli/dataset_util.h"
#include "dreamdb/quote.h"

namespace dreamdb::cli {
namespace {

Status Run(Invocation& inv) {
  const std::string& name = inv.Arg("NAME");
  ASSIGN_OR_RETURN(Store * store, inv.store());
  Progress progress(inv.HasFlag("--progress"));
  ASSIGN_OR_RETURN(VerifyReport report, Verify(*store, name, [&](uint64_t objects) {
                     progress.Report("verify: " + std::to_string(objects) + " objects checked");
                   }));
  progress.Done();
  // Problems are the result, so they go to stdout (then the error says how many).
  for (const std::string& problem : report.problems) {
    if (inv.json()) {
      inv.PrintJson(JsonObject().Add("problem", problem));
    } else {
      inv.PrintLine("problem: " + problem);
    }
  }
  std::string scope = name.empty() ? "the store" : "dataset " + Quote(name);
  if (inv.json()) {
    JsonObject summary;
    if (!name.empty()) summary.Add("dataset", name);
    summary.Add("refs", report.refs)
        .Add("objects", report.objects)
        .Add("bytes", report.bytes)
        .Add("problems", static_cast<uint64_t>(report.problems.size()));
    inv.PrintJson(summary);
  } else if (report.problems.empty()) {
    inv.PrintLine("ok: " + scope + " is intact (" + std::to_string(report.refs) + " refs, " +
                  std::to_string(report.objects) + " objects, " + std::to_string(report.bytes) +
                  " bytes checked)");
  }
  if (!report.problems.empty()) {
    return Corrupt("verify found " + std::to_string(report.problems.size()) +
                   (report.problems.size() == 1 ? " problem" : " problems") + " in " + scope +
                   " (" + std::to_string(report.objects) + " objects checked)");
  }
  return Status::Ok();
}

const Registrar kRegistrar({
    .path = "verify",
    .summary = "Check that every object the datasets reach is present and intact",
    .description =
        "Walks every branch and snapshot of NAME (default: every dataset), fetching each\n"
        "manifest, index page and segment once and checking it against its id and format.\n"
        "Exit 0 when healthy; otherwise each problem is printed ('problem: ...', JSON\n"
        "{\"problem\"}) and the exit code is 7 (corrupt). JSON: the problems, then\n"
        "{\"dataset\"?, \"refs\", \"objects\", \"bytes\", \"problems\"}. Progress goes to stderr\n"
        "when it is a terminal, or with --progress.",
    .positionals = {{.name = "NAME", .help = "the dataset (default: all)", .optional = true}},
    .flags = {kProgressFlag},
    .run = Run,
});

}  // namespace
}  // namespace dreamdb::cli
