// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb log NAME [--at REF] [--limit N]
#include "cli/dataset_util.h"

namespace dreamdb::cli {
namespace {

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

void Print(Invocation& inv, const CommitInfo& c) {
  if (inv.json()) {
    std::vector<std::string> parents;
    for (const ObjectId& p : c.parents) parents.push_back(p.ToString());
    JsonObject j;
    j.Add("manifest", c.manifest.ToString())
        .AddRaw("parents", JsonStringList(parents))
        .Add("time", IsoTime(static_cast<int64_t>(c.time_ns)))
        .Add("time_ns", c.time_ns)
        .Add("writer", c.writer)
        .Add("message", c.message)
        .Add("count", c.count)
        .Add("added", c.added)
        .Add("replaced", c.replaced)
        .Add("deleted", c.deleted)
        .AddRaw("fields", JsonStringList(c.fields))
        .Add("schema_version", uint64_t{c.schema_version});
    // Only when true, so the lines of unpruned history keep their keys.
    if (c.history_pruned) j.Add("history_pruned", true);
    inv.PrintJson(j);
    return;
  }
  inv.PrintLine("manifest " + c.manifest.ToString());
  inv.PrintLine("time     " + IsoTime(static_cast<int64_t>(c.time_ns)));
  inv.PrintLine("writer   " + c.writer);
  std::string delta = std::to_string(c.added) + " added, " + std::to_string(c.replaced) +
                      " replaced, " + std::to_string(c.deleted) + " deleted; count " +
                      std::to_string(c.count);
  if (!c.fields.empty()) delta += "; fields " + Join(c.fields);
  inv.PrintLine("delta    " + delta);
  inv.PrintLine("message  " + c.message);
  if (c.history_pruned) {
    inv.PrintLine("note     older history was pruned by gc retention (spec/06 §6.10)");
  }
  inv.PrintLine("");
}

Status Run(Invocation& inv) {
  uint64_t limit = 0;
  if (auto flag = inv.FlagValue("--limit")) {
    ASSIGN_OR_RETURN(limit, ParseU64("--limit", *flag));
    if (limit == 0) return Status::Ok();
  }
  ASSIGN_OR_RETURN(auto ds, OpenForRead(inv, inv.Arg("NAME")));
  return ds->History(
      [&](const CommitInfo& c) {
        Print(inv, c);
        return true;
      },
      limit);
}

const Registrar kRegistrar({
    .path = "log",
    .summary = "Show a dataset's history, newest first",
    .description =
        "One entry per manifest reachable from the version read (default: branch main),\n"
        "newest first: its id, time (ISO 8601, UTC), writer, delta (records added,\n"
        "replaced, deleted; the fields written; the live count after it) and message.\n"
        "JSON: one line per commit: {\"manifest\", \"parents\", \"time\", \"time_ns\",\n"
        "\"writer\", \"message\", \"count\", \"added\", \"replaced\", \"deleted\", \"fields\",\n"
        "\"schema_version\"}.",
    .positionals = {{.name = "NAME", .help = "the dataset"}},
    .flags = {kAtFlag, {.name = "--limit", .value_name = "N", .help = "at most N commits"}},
    .run = Run,
});

}  // namespace
}  // namespace dreamdb::cli
