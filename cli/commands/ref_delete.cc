// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb ref delete NAME --expect OLD
#include "cli/cli.h"

namespace dreamdb::cli {
namespace {

Status Run(Invocation& inv) {
  const std::string& name = inv.Arg("NAME");
  RETURN_IF_ERROR(ValidateRefName(name));
  ASSIGN_OR_RETURN(ObjectId expected, ParseIdArg("--expect", *inv.FlagValue("--expect")));
  ASSIGN_OR_RETURN(Store * store, inv.store());
  RETURN_IF_ERROR(store->DeleteRef(name, expected));
  if (inv.json()) {
    inv.PrintJson(JsonObject().Add("name", name).Add("previous", expected.ToString()));
  }
  return Status::Ok();
}

const Registrar kRegistrar({
    .path = "ref delete",
    .summary = "Delete a ref if it still points at --expect",
    .description =
        "Conflict (exit 6) if the ref points elsewhere, not_found (exit 4) if it does not\n"
        "exist, invalid_argument (exit 3) for snapshot refs. The objects stay stored.\n"
        "Text: prints nothing. JSON: {\"name\": ..., \"previous\": OLD}.",
    .positionals = {{.name = "NAME", .help = "the ref name"}},
    .flags = {{.name = "--expect",
               .value_name = "OLD",
               .help = "the id the ref must point at now",
               .required = true}},
    .run = Run,
});

}  // namespace
}  // namespace dreamdb::cli
