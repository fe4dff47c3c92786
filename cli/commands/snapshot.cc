// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb snapshot NAME LABEL [--branch B]
#include "cli/dataset_util.h"
#include "dreamdb/quote.h"

namespace dreamdb::cli {
namespace {

Status Run(Invocation& inv) {
  const std::string& name = inv.Arg("NAME");
  const std::string& label = inv.Arg("LABEL");
  ASSIGN_OR_RETURN(auto ds, OpenForWrite(inv, name));  // the branch head; nothing is written
  RETURN_IF_ERROR(ds->Snapshot(label));
  std::string manifest = ds->head().ToString();
  if (inv.json()) {
    inv.PrintJson(JsonObject()
                      .Add("dataset", name)
                      .Add("snapshot", label)
                      .Add("ref", name + "/snapshots/" + label)
                      .Add("manifest", manifest));
  } else {
    inv.PrintLine("snapshot " + Quote(label) + " of " + Quote(name) + " at " + manifest);
  }
  return Status::Ok();
}

const Registrar kRegistrar({
    .path = "snapshot",
    .summary = "Name the current version of a branch, for ever",
    .description =
        "Creates the ref NAME/snapshots/LABEL at the head of the branch. Snapshots never\n"
        "move; an existing label is already_exists (exit 5). Read it with --at LABEL.\n"
        "JSON: {\"dataset\", \"snapshot\", \"ref\", \"manifest\"}.",
    .positionals = {{.name = "NAME", .help = "the dataset"},
                    {.name = "LABEL", .help = "the snapshot label, e.g. v1 or 2024/q1"}},
    .flags = {{.name = "--branch", .value_name = "B", .help = "the branch (default: main)"}},
    .run = Run,
});

}  // namespace
}  // namespace dreamdb::cli
