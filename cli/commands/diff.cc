// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb diff NAME REF_A REF_B
#include "cli/dataset_util.h"

namespace dreamdb::cli {
namespace {

std::string_view KindName(DiffEntry::Kind kind) {
  switch (kind) {
    case DiffEntry::Kind::kAdded:
      return "added";
    case DiffEntry::Kind::kRemoved:
      return "removed";
    case DiffEntry::Kind::kChanged:
      return "changed";
  }
  return "?";
}

Status Run(Invocation& inv) {
  const std::string& name = inv.Arg("NAME");
  ASSIGN_OR_RETURN(std::shared_ptr<Store> store, SharedStore(inv));
  ASSIGN_OR_RETURN(auto a, Dataset::OpenAt(store, name, inv.Arg("REF_A")));
  ASSIGN_OR_RETURN(auto b, Dataset::OpenAt(store, name, inv.Arg("REF_B")));
  uint64_t added = 0, removed = 0, changed = 0;
  RETURN_IF_ERROR(a->Diff(b->head(), [&](const DiffEntry& e) {
    (e.kind == DiffEntry::Kind::kAdded     ? added
     : e.kind == DiffEntry::Kind::kRemoved ? removed
                                           : changed)++;
    if (inv.json()) {
      inv.PrintJson(JsonObject()
                        .Add("anchor", e.anchor)
                        .Add("change", KindName(e.kind))
                        .AddRaw("fields", JsonStringList(e.fields)));
    } else {
      std::string line = (e.kind == DiffEntry::Kind::kAdded     ? "+ "
                          : e.kind == DiffEntry::Kind::kRemoved ? "- "
                                                                : "~ ") +
                         std::to_string(e.anchor);
      if (e.kind == DiffEntry::Kind::kChanged && !e.fields.empty()) {
        line += " ";
        for (size_t i = 0; i < e.fields.size(); ++i) line += (i ? "," : "") + e.fields[i];
      }
      inv.PrintLine(line);
    }
    return true;
  }));
  if (inv.json()) {
    JsonObject summary;
    summary.Add("added", added).Add("removed", removed).Add("changed", changed);
    inv.PrintJson(JsonObject()
                      .AddRaw("summary", summary.Finish())
                      .Add("from", a->head().ToString())
                      .Add("to", b->head().ToString()));
  } else {
    inv.PrintLine(std::to_string(added) + " added, " + std::to_string(removed) + " removed, " +
                  std::to_string(changed) + " changed");
  }
  return Status::Ok();
}

const Registrar kRegistrar({
    .path = "diff",
    .summary = "Show the records that differ between two versions",
    .description =
        "REF_A and REF_B are snapshot labels, branches ('branch:B' forces a branch) or\n"
        "manifest ids of the same dataset. Streams, in ascending anchor order, what changed\n"
        "from A to B: '+ ANCHOR' added, '- ANCHOR' removed, '~ ANCHOR f,g' changed (the\n"
        "fields whose values were rewritten), then a summary line 'N added, N removed,\n"
        "N changed'. Diff compares value locations: rewriting an equal value is a change.\n"
        "JSON Lines: {\"anchor\", \"change\": \"added\"|\"removed\"|\"changed\", \"fields\"} per\n"
        "anchor, then {\"summary\": {\"added\", \"removed\", \"changed\"}, \"from\", \"to\"}.",
    .positionals = {{.name = "NAME", .help = "the dataset"},
                    {.name = "REF_A", .help = "the old version"},
                    {.name = "REF_B", .help = "the new version"}},
    .run = Run,
});

}  // namespace
}  // namespace dreamdb::cli
