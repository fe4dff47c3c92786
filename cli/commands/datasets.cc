// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb datasets
#include "cli/dataset_util.h"

namespace dreamdb::cli {
namespace {

Status Run(Invocation& inv) {
  ASSIGN_OR_RETURN(Store * store, inv.store());
  return ListDatasets(*store, [&](std::string_view name) {
    if (inv.json()) {
      inv.PrintJson(JsonObject().Add("dataset", name));
    } else {
      inv.PrintLine(name);
    }
    return true;
  });
}

const Registrar kRegistrar({
    .path = "datasets",
    .summary = "List the datasets in the store",
    .description = "One name per line, in the order of their refs (datasets with at least one\n"
                   "branch).\n"
                   "JSON Lines: {\"dataset\"} per dataset; no lines for an empty store.",
    .run = Run,
});

}  // namespace
}  // namespace dreamdb::cli
