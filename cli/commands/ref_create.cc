// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb ref create NAME ID
#include "cli/cli.h"

namespace dreamdb::cli {
namespace {

Status Run(Invocation& inv) {
  const std::string& name = inv.Arg("NAME");
  RETURN_IF_ERROR(ValidateRefName(name));
  ASSIGN_OR_RETURN(ObjectId target, ParseIdArg("ID", inv.Arg("ID")));
  ASSIGN_OR_RETURN(Store * store, inv.store());
  RETURN_IF_ERROR(store->CreateRef(name, target));
  if (inv.json()) {
    inv.PrintJson(JsonObject().Add("name", name).Add("target", target.ToString()));
  }
  return Status::Ok();
}

const Registrar kRegistrar({
    .path = "ref create",
    .summary = "Create a ref pointing at an object",
    .description =
        "Fails with already_exists (exit 5) if the ref exists and with not_found (exit 4)\n"
        "if the object is not stored. This is how snapshots (NAME with a 'snapshots'\n"
        "segment before the last, e.g. mydata/snapshots/v1) are made.\n"
        "Text: prints nothing. JSON: {\"name\": ..., \"target\": ...}.",
    .positionals = {{.name = "NAME", .help = "the ref name"},
                    {.name = "ID", .help = "the object id to point at"}},
    .run = Run,
});

}  // namespace
}  // namespace dreamdb::cli
