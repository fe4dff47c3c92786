// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb object put FILE|-...
#include <algorithm>

#include "cli/blob_files.h"
#include "cli/cli.h"

namespace dreamdb::cli {
namespace {

Status Run(Invocation& inv) {
  const std::vector<std::string>& inputs = inv.Args("FILE");
  if (std::count(inputs.begin(), inputs.end(), "-") > 1) {
    return inv.Usage("'-' (standard input) may be given only once");
  }
  ASSIGN_OR_RETURN(Store * store, inv.store());
  std::vector<std::pair<ObjectId, uint64_t>> stored;
  for (const std::string& input : inputs) {
    ASSIGN_OR_RETURN(Bytes data, ReadCommandLineFile(input, "FILE", kMaxObjectPutBytes));
    ASSIGN_OR_RETURN(ObjectId id, store->Put(data));
    stored.emplace_back(id, data.size());
  }
  // An id is printed only once its object is durable: one sync for all of them.
  RETURN_IF_ERROR(store->Sync());
  for (const auto& [id, size] : stored) {
    if (inv.json()) {
      inv.PrintJson(JsonObject().Add("id", id.ToString()).Add("size_bytes", size));
    } else {
      inv.PrintLine(id.ToString());
    }
  }
  return Status::Ok();
}

const Registrar kRegistrar({
    .path = "object put",
    .summary = "Store files as objects and print their ids",
    .description =
        "Stores each FILE (or standard input for '-') as one object and prints its id, one\n"
        "per line, in argument order. Putting an object that is already stored succeeds. FILE\n"
        "must be a regular file (pipe other inputs through '-'); each input is at most 4 GiB.\n"
        "Creates the store if it does not exist.\n"
        "JSON: one {\"id\": ..., \"size_bytes\": ...} line per FILE.",
    .positionals = {{.name = "FILE",
                     .help = "a file to store; '-' reads standard input",
                     .repeated = true}},
    .run = Run,
    .creates_store = true,
});

}  // namespace
}  // namespace dreamdb::cli
