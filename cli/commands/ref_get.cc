// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb ref get NAME
#include "cli/cli.h"

namespace dreamdb::cli {
namespace {

Status Run(Invocation& inv) {
  const std::string& name = inv.Arg("NAME");
  RETURN_IF_ERROR(ValidateRefName(name));  // before the store is opened (or created)
  ASSIGN_OR_RETURN(Store * store, inv.store());
  ASSIGN_OR_RETURN(RefValue ref, store->ReadRef(name));
  if (inv.json()) {
    inv.PrintJson(JsonObject().Add("name", ref.name).Add("target", ref.target.ToString()));
  } else {
    inv.PrintLine(ref.target.ToString());
  }
  return Status::Ok();
}

const Registrar kRegistrar({
    .path = "ref get",
    .summary = "Print the object id a ref points at",
    .description = "Text: the target id. JSON: {\"name\": ..., \"target\": ...}. Missing: exit 4.",
    .positionals = {{.name = "NAME", .help = "the ref name, e.g. mydata/branches/main"}},
    .run = Run,
});

}  // namespace
}  // namespace dreamdb::cli
