// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb object ls [--shard PREFIX] [--long]
#include "cli/cli.h"
#include "dreamdb/quote.h"

namespace dreamdb::cli {
namespace {

Status Run(Invocation& inv) {
  std::string_view shard = inv.FlagValue("--shard").value_or("");
  bool hex = shard.size() <= 2;
  for (char c : shard) hex = hex && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
  if (!hex) {
    return InvalidArgument("--shard " + Quote(shard) +
                           ": expected 0-2 lowercase hex digits (a shard prefix such as 'a' "
                           "or '3f')");
  }
  bool long_format = inv.HasFlag("--long");
  ASSIGN_OR_RETURN(Store * store, inv.store());
  // Streams: each entry is printed as it is visited; nothing is collected.
  return store->ListObjects(shard, [&](const ObjectInfo& info) {
    if (inv.json()) {
      inv.PrintJson(JsonObject().Add("id", info.id.ToString()).Add("size_bytes", info.size_bytes));
    } else if (long_format) {
      inv.PrintLine(info.id.ToString() + " " + std::to_string(info.size_bytes));
    } else {
      inv.PrintLine(info.id.ToString());
    }
    return true;
  });
}

const Registrar kRegistrar({
    .path = "object ls",
    .summary = "List stored objects",
    .description =
        "Prints one id per line (with --long: '<id> <size_bytes>'), in ascending id order\n"
        "within each shard. JSON: one {\"id\": ..., \"size_bytes\": ...} line per object\n"
        "(JSON Lines; no lines for an empty store). The listing is streamed.",
    .flags = {{.name = "--shard",
               .value_name = "PREFIX",
               .help = "only objects whose shard (first digest byte, hex) starts with PREFIX"},
              {.name = "--long", .short_name = "-l", .help = "also print each object's size"}},
    .run = Run,
});

}  // namespace
}  // namespace dreamdb::cli
