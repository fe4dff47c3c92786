// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb take NAME ANCHOR... [--at REF] [--fields A,B] [--blobs-base64]
#include "cli/dataset_util.h"

namespace dreamdb::cli {
namespace {

Status Run(Invocation& inv) {
  ASSIGN_OR_RETURN(std::vector<uint64_t> anchors, ParseAnchors(inv.Args("ANCHOR")));
  ASSIGN_OR_RETURN(std::vector<std::string> fields, FieldsFlag(inv));
  RenderOptions render{.blobs_base64 = inv.HasFlag("--blobs-base64")};
  ASSIGN_OR_RETURN(auto ds, OpenForRead(inv, inv.Arg("NAME")));
  ASSIGN_OR_RETURN(Batch batch, ds->Take(anchors, fields));
  PrintRecords(inv, batch, render, nullptr);
  return Status::Ok();
}

const Registrar kRegistrar({
    .path = "take",
    .summary = "Print the records of some anchors",
    .description =
        "Prints one JSON line per anchor, in the order given (repeats included), rendered\n"
        "as by 'dreamdb cat'. An anchor that is not live is not_found (exit 4) and nothing\n"
        "is printed.",
    .positionals = {{.name = "NAME", .help = "the dataset"},
                    {.name = "ANCHOR",
                     .help = "anchors (non-negative integers)",
                     .repeated = true}},
    .flags = {kAtFlag, kFieldsFlag, kBlobsBase64Flag},
    .run = Run,
});

}  // namespace
}  // namespace dreamdb::cli
