// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb count NAME [--at REF]
#include "cli/dataset_util.h"

namespace dreamdb::cli {
namespace {

Status Run(Invocation& inv) {
  const std::string& name = inv.Arg("NAME");
  ASSIGN_OR_RETURN(auto ds, OpenForRead(inv, name));
  if (inv.json()) {
    inv.PrintJson(JsonObject()
                      .Add("dataset", name)
                      .Add("manifest", ds->head().ToString())
                      .Add("count", ds->Count()));
  } else {
    inv.PrintLine(std::to_string(ds->Count()));
  }
  return Status::Ok();
}

const Registrar kRegistrar({
    .path = "count",
    .summary = "Print the number of live records",
    .description = "Text: the count. JSON: {\"dataset\", \"manifest\", \"count\"}.",
    .positionals = {{.name = "NAME", .help = "the dataset"}},
    .flags = {kAtFlag},
    .run = Run,
});

}  // namespace
}  // namespace dreamdb::cli
