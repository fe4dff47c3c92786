// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb object get ID [-o FILE]
#include "cli/cli.h"

namespace dreamdb::cli {
namespace {

Status Run(Invocation& inv) {
  std::optional<std::string_view> output = inv.FlagValue("--output");
  bool to_stdout = !output || *output == "-";
  if (inv.json() && to_stdout) {
    return inv.Usage("--json needs -o FILE: object bytes and JSON cannot share standard output");
  }
  ASSIGN_OR_RETURN(ObjectId id, ParseIdArg("", inv.Arg("ID")));
  ASSIGN_OR_RETURN(Store * store, inv.store());
  ASSIGN_OR_RETURN(Bytes data, store->Get(id));  // verified against the id
  if (to_stdout) return inv.WriteStdout(data);
  RETURN_IF_ERROR(WriteOutput(std::string(*output), data));
  if (inv.json()) {
    inv.PrintJson(
        JsonObject().Add("id", id.ToString()).Add("size_bytes", data.size()).Add("path", *output));
  }
  return Status::Ok();
}

const Registrar kRegistrar({
    .path = "object get",
    .summary = "Write an object's bytes to stdout or a file",
    .description =
        "The bytes are checked against the id before anything is written (corrupt, exit 7,\n"
        "if they do not match). With --json, -o FILE is required and the result is\n"
        "{\"id\": ..., \"size_bytes\": ..., \"path\": ...}.",
    .positionals = {{.name = "ID", .help = "the object id"}},
    .flags = {{.name = "--output",
               .short_name = "-o",
               .value_name = "FILE",
               .help = "write to FILE instead of stdout ('-' = stdout)"}},
    .run = Run,
});

}  // namespace
}  // namespace dreamdb::cli
