// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb branch NAME NEW [--from REF]
#include "cli/dataset_util.h"
#include "dreamdb/quote.h"

namespace dreamdb::cli {
namespace {

Status Run(Invocation& inv) {
  const std::string& name = inv.Arg("NAME");
  const std::string& branch = inv.Arg("NEW");
  std::optional<std::string_view> from = inv.FlagValue("--from");
  ASSIGN_OR_RETURN(std::shared_ptr<Store> store, SharedStore(inv));
  std::unique_ptr<Dataset> ds;
  if (from) {
    ASSIGN_OR_RETURN(ds, Dataset::OpenAt(store, name, *from));
  } else {
    ASSIGN_OR_RETURN(ds, Dataset::Open(store, name, "main"));
  }
  RETURN_IF_ERROR(ds->Branch(branch));
  std::string manifest = ds->head().ToString();
  if (inv.json()) {
    inv.PrintJson(JsonObject()
                      .Add("dataset", name)
                      .Add("branch", branch)
                      .Add("ref", name + "/branches/" + branch)
                      .Add("manifest", manifest));
  } else {
    inv.PrintLine("branch " + Quote(branch) + " of " + Quote(name) + " at " + manifest);
  }
  return Status::Ok();
}

const Registrar kRegistrar({
    .path = "branch",
    .summary = "Create a branch",
    .description =
        "Creates NAME/branches/NEW at the version --from names: a snapshot label, a branch\n"
        "('branch:B' forces a branch), or a manifest id (default: the head of main). An\n"
        "existing branch is already_exists (exit 5). Write to it with --branch NEW.\n"
        "JSON: {\"dataset\", \"branch\", \"ref\", \"manifest\"}.",
    .positionals = {{.name = "NAME", .help = "the dataset"},
                    {.name = "NEW", .help = "the new branch name, e.g. exp or sweep/run-1"}},
    .flags = {{.name = "--from",
               .value_name = "REF",
               .help = "snapshot, branch or manifest id to start from (default: main)"}},
    .run = Run,
});

}  // namespace
}  // namespace dreamdb::cli
