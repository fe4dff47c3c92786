// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb ref ls [PREFIX]
#include "cli/cli.h"

namespace dreamdb::cli {
namespace {

Status Run(Invocation& inv) {
  const std::string& prefix = inv.Arg("PREFIX");
  ASSIGN_OR_RETURN(Store * store, inv.store());
  // Streams: each ref is printed as it is visited.
  return store->ListRefs(prefix, [&](const RefValue& ref) {
    if (inv.json()) {
      inv.PrintJson(JsonObject().Add("name", ref.name).Add("target", ref.target.ToString()));
    } else {
      inv.PrintLine(ref.target.ToString() + " " + ref.name);
    }
    return true;
  });
}

const Registrar kRegistrar({
    .path = "ref ls",
    .summary = "List refs",
    .description =
        "Prints '<target> <name>' per ref in ascending bytewise name order. PREFIX is a\n"
        "plain string prefix ('mydata/' lists one dataset's refs). JSON: one\n"
        "{\"name\": ..., \"target\": ...} line per ref (JSON Lines). The listing is streamed.",
    .positionals = {{.name = "PREFIX",
                     .help = "only refs whose name starts with PREFIX",
                     .optional = true}},
    .run = Run,
});

}  // namespace
}  // namespace dreamdb::cli
