// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb delete NAME [ANCHOR...] [--from-file FILE] [--branch B] [--message M]
#include "cli/blob_files.h"
#include "cli/dataset_util.h"
#include "dreamdb/quote.h"

namespace dreamdb::cli {
namespace {

// One anchor per line; blank lines are skipped.
Status ReadAnchorFile(const std::string& path, std::vector<uint64_t>* anchors) {
  ASSIGN_OR_RETURN(Bytes text, ReadCommandLineFile(path, "--from-file", kMaxAnchorFileBytes));
  std::string_view rest = text;
  uint64_t line = 0;
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    std::string_view item = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    ++line;
    while (!item.empty() && (item.back() == '\r' || item.back() == ' ' || item.back() == '\t')) {
      item.remove_suffix(1);
    }
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    if (item.empty()) continue;
    auto a = ParseU64("anchor", item);
    if (!a.ok()) {
      return a.status().WithContext("--from-file " + Quote(path) + " line " + std::to_string(line));
    }
    anchors->push_back(*a);
  }
  return Status::Ok();
}

Status Run(Invocation& inv) {
  const std::string& name = inv.Arg("NAME");
  ASSIGN_OR_RETURN(std::vector<uint64_t> anchors, ParseAnchors(inv.Args("ANCHOR")));
  if (auto file = inv.FlagValue("--from-file")) {
    RETURN_IF_ERROR(ReadAnchorFile(std::string(*file), &anchors));
  } else if (anchors.empty()) {
    return inv.Usage("give the anchors to delete as arguments or with --from-file");
  }
  if (anchors.empty()) return InvalidArgument("delete: no anchors given (the file is empty)");
  ASSIGN_OR_RETURN(auto ds, OpenForWrite(inv, name));
  ASSIGN_OR_RETURN(CommitInfo info, ds->Delete(anchors, CommitOptionsFrom(inv, "delete")));
  std::string head = info.manifest.ToString();
  if (inv.json()) {
    inv.PrintJson(JsonObject()
                      .Add("dataset", name)
                      .Add("branch", ds->branch())
                      .Add("requested", static_cast<uint64_t>(anchors.size()))
                      .Add("deleted", info.deleted)
                      .Add("count", info.count)
                      .Add("head", head));
  } else {
    inv.PrintLine("deleted " + std::to_string(info.deleted) + " of " +
                  std::to_string(anchors.size()) + " anchors; " + std::to_string(info.count) +
                  " records remain; head " + head);
  }
  return Status::Ok();
}

const Registrar kRegistrar({
    .path = "delete",
    .summary = "Delete records by anchor",
    .description =
        "One commit. Anchors that are not live are ignored (and not counted as deleted).\n"
        "Older versions and snapshots keep the records.\n"
        "JSON: {\"dataset\", \"branch\", \"requested\", \"deleted\", \"count\", \"head\"}.",
    .positionals = {{.name = "NAME", .help = "the dataset"},
                    {.name = "ANCHOR",
                     .help = "anchors (non-negative integers)",
                     .optional = true,
                     .repeated = true}},
    .flags = {{.name = "--from-file",
               .value_name = "FILE",
               .help = "also delete the anchors in FILE, one per line ('-' = stdin; a regular "
                       "file, at most 256 MiB)"},
              kBranchFlag,
              kMessageFlag},
    .run = Run,
});

}  // namespace
}  // namespace dreamdb::cli
