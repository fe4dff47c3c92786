// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb merge NAME SOURCE... [--into B] [--policy fail|ours|theirs] [--no-ff] [-m M]
#include "cli/dataset_util.h"
#include "dreamdb/quote.h"

namespace dreamdb::cli {
namespace {

std::string IdList(const std::vector<ObjectId>& ids) {
  std::vector<std::string> text;
  for (const ObjectId& id : ids) text.push_back(id.ToString());
  return JsonStringList(text);
}

Status Run(Invocation& inv) {
  const std::string& name = inv.Arg("NAME");
  std::vector<std::string> sources = inv.Args("SOURCE");
  MergeOptions options;
  if (auto p = inv.FlagValue("--policy")) {
    Result<MergePolicy> policy = ParseMergePolicy(*p);
    if (!policy.ok()) return inv.Usage("--" + policy.status().message());
    options.policy = *policy;
  }
  options.no_ff = inv.HasFlag("--no-ff");
  if (auto m = inv.FlagValue("--message")) options.message = std::string(*m);
  ASSIGN_OR_RETURN(std::shared_ptr<Store> store, SharedStore(inv));
  const std::string into = std::string(inv.FlagValue("--into").value_or("main"));
  ASSIGN_OR_RETURN(auto ds, Dataset::Open(store, name, into));
  MergeReport report;
  ASSIGN_OR_RETURN(CommitInfo info, ds->MergeMany(sources, options, &report));
  const std::string result = report.up_to_date     ? "up-to-date"
                             : report.fast_forward ? "fast-forward"
                                                   : "merged";
  const std::string head = info.manifest.ToString();
  if (inv.json()) {
    std::string bases = "[";
    for (size_t i = 0; i < report.merge_bases.size(); ++i) {
      bases += (i ? "," : "") + IdList(report.merge_bases[i]);
    }
    bases += "]";
    inv.PrintJson(JsonObject()
                      .Add("dataset", name)
                      .Add("branch", into)
                      .AddRaw("sources", JsonStringList(sources))
                      .Add("result", result)
                      .Add("head", head)
                      .AddRaw("parents", IdList(info.parents))
                      .AddRaw("merge_bases", bases)
                      .Add("added", info.added)
                      .Add("replaced", info.replaced)
                      .Add("deleted", info.deleted)
                      .Add("count", info.count)
                      .Add("conflicts_resolved", report.conflicts)
                      .AddRaw("indexes_updated", JsonStringList(report.indexes_updated))
                      .AddRaw("indexes_dropped", JsonStringList(report.indexes_dropped)));
  } else if (report.up_to_date) {
    inv.PrintLine("already up to date: branch " + Quote(into) + " of " + Quote(name) + " at " +
                  head);
  } else if (report.fast_forward) {
    inv.PrintLine("fast-forward: branch " + Quote(into) + " of " + Quote(name) + " now at " + head +
                  " (" + std::to_string(info.count) + " records)");
  } else {
    std::string line = "merged " + std::to_string(report.merge_bases.size()) + " source" +
                       (report.merge_bases.size() == 1 ? "" : "s") + " into branch " + Quote(into) +
                       " of " + Quote(name) + ": " + std::to_string(info.added) + " added, " +
                       std::to_string(info.replaced) + " replaced, " +
                       std::to_string(info.deleted) + " deleted; " + std::to_string(info.count) +
                       " records; head " + head;
    if (report.conflicts > 0) {
      line += " (" + std::to_string(report.conflicts) + " conflicts resolved by policy " +
              std::string(inv.FlagValue("--policy").value_or("fail")) + ")";
    }
    inv.PrintLine(line);
    for (const std::string& f : report.indexes_updated) {
      inv.PrintLine("spatial index of field " + Quote(f) +
                    ": merged vectors assigned to its cells");
    }
    for (const std::string& f : report.indexes_dropped) {
      inv.PrintLine("spatial index of field " + Quote(f) +
                    " dropped: the merged schema no longer has it as an embedding");
    }
  }
  return Status::Ok();
}

const Registrar kRegistrar({
    .path = "merge",
    .summary = "Merge branches, snapshots or versions into a branch",
    .description =
        "Merges each SOURCE (a branch, snapshot label, 'branch:NAME' or manifest id) into\n"
        "branch --into (default main), three-way by anchor against the common ancestor\n"
        "(spec/14-semantics.md §16). One source the branch is behind: a fast-forward\n"
        "(unless --no-ff). Otherwise one merge commit whose parents are the branch head and\n"
        "the sources. A record or field changed differently on both sides, a record deleted\n"
        "on one side and changed on the other, or a metadata key set differently is a\n"
        "conflict: with --policy fail (default) nothing is committed and the conflicting\n"
        "anchors are named (exit 6); ours keeps the branch's side, theirs takes the\n"
        "source's (the later source among several). A field added on both sides with\n"
        "different types is exit 6 under every policy.\n"
        "JSON: {\"dataset\", \"branch\", \"sources\", \"result\" (merged|fast-forward|\n"
        "up-to-date), \"head\", \"parents\", \"merge_bases\", \"added\", \"replaced\",\n"
        "\"deleted\", \"count\", \"conflicts_resolved\"}.",
    .positionals = {{.name = "NAME", .help = "the dataset"},
                    {.name = "SOURCE",
                     .help = "branches, snapshot labels or manifest ids to merge",
                     .repeated = true}},
    .flags = {{.name = "--into",
               .value_name = "B",
               .help = "the branch to merge into (default: main)"},
              {.name = "--policy",
               .value_name = "P",
               .help = "fail (default), ours or theirs: how conflicts are resolved"},
              {.name = "--no-ff", .help = "write a merge commit even when a fast-forward would do"},
              kMessageFlag},
    .run = Run,
});

}  // namespace
}  // namespace dreamdb::cli
