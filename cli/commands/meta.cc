// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb meta NAME [KEY=VALUE...] [--at REF] [--branch B] [--message M]
#include "cli/dataset_util.h"
#include "dreamdb/quote.h"

namespace dreamdb::cli {
namespace {

Status Run(Invocation& inv) {
  const std::string& name = inv.Arg("NAME");
  const std::vector<std::string>& pairs = inv.Args("KEY=VALUE");
  std::unique_ptr<Dataset> ds;
  if (pairs.empty()) {
    if (inv.HasFlag("--branch") || inv.HasFlag("--message")) {
      return inv.Usage("--branch and --message are for setting metadata (KEY=VALUE...)");
    }
    ASSIGN_OR_RETURN(ds, OpenForRead(inv, name));
  } else {
    if (inv.HasFlag("--at"))
      return inv.Usage("--at is for showing metadata; changes go to --branch");
    std::map<std::string, std::string> meta;
    for (const std::string& pair : pairs) {
      size_t eq = pair.find('=');
      if (eq == std::string::npos) {
        return inv.Usage("expected KEY=VALUE, got " + Quote(pair) + " (KEY= deletes KEY)");
      }
      if (!meta.emplace(pair.substr(0, eq), pair.substr(eq + 1)).second) {
        return InvalidArgument("metadata key " + Quote(pair.substr(0, eq)) + " is given twice");
      }
    }
    ASSIGN_OR_RETURN(ds, OpenForWrite(inv, name));
    RETURN_IF_ERROR(ds->SetMeta(meta, CommitOptionsFrom(inv, "set metadata")).status());
  }
  std::map<std::string, std::string> meta = ds->Meta();
  if (inv.json()) {
    std::vector<std::pair<std::string, std::string>> items(meta.begin(), meta.end());
    inv.PrintJson(JsonObject()
                      .Add("dataset", name)
                      .Add("manifest", ds->head().ToString())
                      .AddRaw("meta", JsonStringMap(items)));
  } else {
    for (const auto& [key, value] : meta) inv.PrintLine(key + "=" + value);
  }
  return Status::Ok();
}

const Registrar kRegistrar({
    .path = "meta",
    .summary = "Show or set a dataset's metadata",
    .description =
        "Without pairs: prints the metadata, one KEY=VALUE per line in key order. With\n"
        "pairs: sets them in one commit on --branch (KEY= deletes KEY; other keys are kept)\n"
        "and prints the result. JSON: {\"dataset\", \"manifest\", \"meta\": {...}}.",
    .positionals = {{.name = "NAME", .help = "the dataset"},
                    {.name = "KEY=VALUE",
                     .help = "pairs to set (empty VALUE deletes)",
                     .optional = true,
                     .repeated = true}},
    .flags = {kAtFlag, kBranchFlag, kMessageFlag},
    .run = Run,
});

}  // namespace
}  // namespace dreamdb::cli
