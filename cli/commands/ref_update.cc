// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb ref update NAME NEW --expect OLD
#include "cli/cli.h"

namespace dreamdb::cli {
namespace {

Status Run(Invocation& inv) {
  const std::string& name = inv.Arg("NAME");
  RETURN_IF_ERROR(ValidateRefName(name));
  ASSIGN_OR_RETURN(ObjectId desired, ParseIdArg("NEW", inv.Arg("NEW")));
  ASSIGN_OR_RETURN(ObjectId expected, ParseIdArg("--expect", *inv.FlagValue("--expect")));
  ASSIGN_OR_RETURN(Store * store, inv.store());
  RETURN_IF_ERROR(store->UpdateRef(name, expected, desired));
  if (inv.json()) {
    inv.PrintJson(JsonObject()
                      .Add("name", name)
                      .Add("target", desired.ToString())
                      .Add("previous", expected.ToString()));
  }
  return Status::Ok();
}

const Registrar kRegistrar({
    .path = "ref update",
    .summary = "Move a ref if it still points at --expect (compare-and-swap)",
    .description =
        "Atomic, also across processes: of any number of concurrent updates from the same\n"
        "OLD, exactly one succeeds and the others fail with conflict (exit 6). Re-read the\n"
        "ref and retry. Snapshot refs never move (invalid_argument, exit 3); a missing ref\n"
        "or NEW object is not_found (exit 4).\n"
        "Text: prints nothing. JSON: {\"name\": ..., \"target\": NEW, \"previous\": OLD}.",
    .positionals = {{.name = "NAME", .help = "the ref name"},
                    {.name = "NEW", .help = "the object id to point at"}},
    .flags = {{.name = "--expect",
               .value_name = "OLD",
               .help = "the id the ref must point at now",
               .required = true}},
    .run = Run,
});

}  // namespace
}  // namespace dreamdb::cli
