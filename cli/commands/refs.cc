// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb refs NAME
#include "cli/dataset_util.h"
#include "dreamdb/quote.h"

namespace dreamdb::cli {
namespace {

Status Run(Invocation& inv) {
  const std::string& name = inv.Arg("NAME");
  RETURN_IF_ERROR(ValidateDatasetNameArg(name));
  ASSIGN_OR_RETURN(Store * store, inv.store());
  const std::string branches = name + "/branches/";
  const std::string snapshots = name + "/snapshots/";
  bool any = false;
  // Streams in ref-name order: branches, then snapshots.
  RETURN_IF_ERROR(store->ListRefs(name + "/", [&](const RefValue& ref) {
    std::string_view kind;
    std::string_view short_name;
    if (ref.name.starts_with(branches)) {
      kind = "branch";
      short_name = std::string_view(ref.name).substr(branches.size());
    } else if (ref.name.starts_with(snapshots)) {
      kind = "snapshot";
      short_name = std::string_view(ref.name).substr(snapshots.size());
    } else {
      return true;  // not a dataset ref
    }
    any = true;
    if (inv.json()) {
      inv.PrintJson(JsonObject()
                        .Add("kind", kind)
                        .Add("name", short_name)
                        .Add("ref", ref.name)
                        .Add("manifest", ref.target.ToString()));
    } else {
      inv.PrintLine(ref.target.ToString() + " " + std::string(kind) + " " +
                    std::string(short_name));
    }
    return true;
  }));
  if (!any) return NotFound("dataset " + Quote(name) + " does not exist in " + store->uri());
  return Status::Ok();
}

const Registrar kRegistrar({
    .path = "refs",
    .summary = "List a dataset's branches and snapshots",
    .description =
        "Text: '<manifest id> branch|snapshot <name>' per ref, branches first, each in\n"
        "bytewise name order. JSON Lines: {\"kind\", \"name\", \"ref\", \"manifest\"} per ref.",
    .positionals = {{.name = "NAME", .help = "the dataset"}},
    .run = Run,
});

}  // namespace
}  // namespace dreamdb::cli
