// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb version (also: dreamdb --version)
#include "cli/cli.h"

namespace dreamdb::cli {
namespace {

Status Run(Invocation& inv) {
  if (inv.json()) {
    inv.PrintJson(JsonObject().Add("version", Version()));
  } else {
    inv.PrintLine("dreamdb " + std::string(Version()));
  }
  return Status::Ok();
}

const Registrar kRegistrar({
    .path = "version",
    .summary = "Print the version of this dreamdb",
    .description = "Text: 'dreamdb X.Y.Z'. JSON: {\"version\": \"X.Y.Z\"}.",
    .run = Run,
});

}  // namespace
}  // namespace dreamdb::cli
