// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb object head ID
#include "cli/cli.h"

namespace dreamdb::cli {
namespace {

Status Run(Invocation& inv) {
  ASSIGN_OR_RETURN(ObjectId id, ParseIdArg("", inv.Arg("ID")));
  ASSIGN_OR_RETURN(Store * store, inv.store());
  ASSIGN_OR_RETURN(ObjectInfo info, store->Head(id));
  if (inv.json()) {
    inv.PrintJson(JsonObject().Add("id", info.id.ToString()).Add("size_bytes", info.size_bytes));
  } else {
    inv.PrintLine(info.id.ToString() + " " + std::to_string(info.size_bytes));
  }
  return Status::Ok();
}

const Registrar kRegistrar({
    .path = "object head",
    .summary = "Print an object's id and size",
    .description =
        "Text: '<id> <size_bytes>'. JSON: {\"id\": ..., \"size_bytes\": ...}. Not found: exit 4.\n"
        "Does not read or verify the bytes.",
    .positionals = {{.name = "ID", .help = "the object id"}},
    .run = Run,
});

}  // namespace
}  // namespace dreamdb::cli
