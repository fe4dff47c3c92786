// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb verify [NAME] [--progress] [--shard N --of M | --combine DIR]
//
// Sharded (spec/14-semantics.md §12.6): shard N of M checks its part of the segments and
// prints its result; `--combine DIR` reads the M results (`dreamdb --json verify ...
// --shard N --of M > DIR/N.json`) and gives the verdict of the whole.
#include <dirent.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "cli/dataset_util.h"
#include "dreamdb/jobs.h"
#include "dreamdb/quote.h"

namespace dreamdb::cli {
namespace {

// Prints the problems (they are the result, so stdout), then the summary; corrupt when
// there were problems.
Status Report(Invocation& inv, const std::string& name, const VerifyReport& report,
              std::optional<ShardIndex> shard) {
  for (const std::string& problem : report.problems) {
    if (inv.json()) {
      inv.PrintJson(JsonObject().Add("problem", problem));
    } else {
      inv.PrintLine("problem: " + problem);
    }
  }
  // Values reclaimed by per-field retention (spec/06 §6.12) are not problems.
  for (const VerifyReport::RetainedWithout& r : report.retained_without) {
    if (inv.json()) {
      inv.PrintJson(
          JsonObject().Add("retained_without", r.field).Add("manifest", r.manifest.ToString()));
    } else {
      inv.PrintLine("version " + r.manifest.ToString() + " is retained without field " +
                    Quote(r.field) + " (per-field retention)");
    }
  }
  std::string scope = name.empty() ? "the store" : "dataset " + Quote(name);
  if (shard) {
    scope = "shard " + std::to_string(shard->shard) + " of " + std::to_string(shard->of) + " of " +
            scope;
  }
  if (inv.json()) {
    JsonObject summary;
    if (!name.empty()) summary.Add("dataset", name);
    if (shard) {
      summary.Add("shard", uint64_t{shard->shard})
          .Add("of", uint64_t{shard->of})
          .Add("roots", report.roots.ToString())
          .Add("segments_skipped", report.segments_skipped);
    }
    summary.Add("refs", report.refs)
        .Add("objects", report.objects)
        .Add("bytes", report.bytes)
        .Add("problems", static_cast<uint64_t>(report.problems.size()));
    if (!report.retained_without.empty()) {
      summary.Add("retained_without", static_cast<uint64_t>(report.retained_without.size()));
    }
    inv.PrintJson(summary);
  } else if (report.problems.empty()) {
    inv.PrintLine("ok: " + scope + " is intact (" + std::to_string(report.refs) + " refs, " +
                  std::to_string(report.objects) + " objects, " + std::to_string(report.bytes) +
                  " bytes checked)");
  }
  if (!report.problems.empty()) {
    return Corrupt("verify found " + std::to_string(report.problems.size()) +
                   (report.problems.size() == 1 ? " problem" : " problems") + " in " + scope +
                   " (" + std::to_string(report.objects) + " objects checked)");
  }
  return Status::Ok();
}

// One shard's result file: its problems and its summary line.
struct ShardResult {
  std::string file;
  std::string dataset;
  uint64_t shard = 0;
  uint64_t of = 0;
  std::string roots;
  VerifyReport report;
};

Result<ShardResult> ReadShardResult(const std::string& path) {
  std::ifstream in(path);
  if (!in) return ErrnoStatus(errno, "cannot open", path);
  ShardResult out;
  out.file = path;
  bool summary = false;
  std::string line;
  for (uint64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      return InvalidArgument(Quote(path) + " line " + std::to_string(n) +
                             ": not a JSON object (expected `dreamdb --json verify` output)");
    }
    if (j.contains("problem") && j["problem"].is_string()) {
      out.report.problems.push_back(j["problem"].get<std::string>());
      continue;
    }
    if (j.contains("retained_without") && j["retained_without"].is_string()) {
      auto id = ObjectId::Parse(j.value("manifest", ""));
      if (id.ok()) out.report.retained_without.push_back({*id, j["retained_without"]});
      continue;
    }
    auto u64 = [&](const char* key) -> std::optional<uint64_t> {
      if (!j.contains(key) || !j[key].is_number_unsigned()) return std::nullopt;
      return j[key].get<uint64_t>();
    };
    auto shard = u64("shard");
    auto of = u64("of");
    auto objects = u64("objects");
    if (!shard || !of || !objects || !j.contains("roots") || !j["roots"].is_string()) {
      return InvalidArgument(Quote(path) + " line " + std::to_string(n) +
                             ": not the summary of a sharded verify (no shard, of, roots or "
                             "objects; run `dreamdb --json verify ... --shard N --of M`)");
    }
    out.shard = *shard;
    out.of = *of;
    out.roots = j["roots"].get<std::string>();
    out.dataset = j.value("dataset", "");
    out.report.refs = u64("refs").value_or(0);
    out.report.objects = *objects;
    out.report.bytes = u64("bytes").value_or(0);
    out.report.segments_skipped = u64("segments_skipped").value_or(0);
    summary = true;
  }
  if (!summary) {
    return InvalidArgument(Quote(path) + " has no summary line: the shard did not finish");
  }
  return out;
}

// The verdict of M shard results in `dir` (every *.json file).
Status Combine(Invocation& inv, const std::string& name, const std::string& dir) {
  std::vector<std::string> files;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return ErrnoStatus(errno, "cannot open", dir);
  while (const dirent* e = ::readdir(d)) {
    std::string f = e->d_name;
    if (f.size() > 5 && f.ends_with(".json")) files.push_back(dir + "/" + f);
  }
  ::closedir(d);
  std::sort(files.begin(), files.end());
  if (files.empty()) return NotFound("no shard results (*.json) in " + Quote(dir));
  std::map<uint64_t, ShardResult> shards;
  uint64_t of = 0;
  for (const std::string& f : files) {
    ASSIGN_OR_RETURN(ShardResult r, ReadShardResult(f));
    if (r.dataset != name) {
      return InvalidArgument(
          Quote(f) + " is a result for " +
          (r.dataset.empty() ? "the whole store" : "dataset " + Quote(r.dataset)) + ", not " +
          (name.empty() ? "the whole store" : Quote(name)));
    }
    if (of == 0) of = r.of;
    if (r.of != of) {
      return InvalidArgument(Quote(f) + " is shard " + std::to_string(r.shard) + " of " +
                             std::to_string(r.of) + ", but " + Quote(files[0]) + " says of " +
                             std::to_string(of));
    }
    if (shards.count(r.shard) != 0) {
      return InvalidArgument("shard " + std::to_string(r.shard) + " has two results: " +
                             Quote(shards[r.shard].file) + " and " + Quote(f));
    }
    shards.emplace(r.shard, std::move(r));
  }
  std::string missing;
  for (uint64_t n = 0; n < of; ++n) {
    if (shards.count(n) == 0) missing += (missing.empty() ? "" : ", ") + std::to_string(n);
  }
  if (!missing.empty()) {
    return NotFound("shards " + missing + " of " + std::to_string(of) + " have no result in " +
                    Quote(dir) + "; run them, then combine again");
  }
  const std::string& roots = shards.begin()->second.roots;
  for (const auto& [n, r] : shards) {
    if (r.roots != roots) {
      return Conflict("shards 0 and " + std::to_string(n) +
                      " walked different states of the store (refs moved while they ran; "
                      "roots " +
                      roots + " and " + r.roots +
                      "): run the shards again while nothing writes, or verify a snapshot");
    }
  }
  VerifyReport total;
  std::set<std::string> seen;  // a manifest or page problem is found by every shard
  for (auto& [n, r] : shards) {
    total.refs = std::max(total.refs, r.report.refs);
    total.objects += r.report.objects;
    total.bytes += r.report.bytes;
    for (std::string& p : r.report.problems) {
      if (seen.insert(p).second) total.problems.push_back(std::move(p));
    }
  }
  // Every shard reads the manifests and index pages: objects and bytes are summed reads.
  if (inv.json()) {
    for (const std::string& problem : total.problems) {
      inv.PrintJson(JsonObject().Add("problem", problem));
    }
    JsonObject summary;
    if (!name.empty()) summary.Add("dataset", name);
    summary.Add("of", of)
        .Add("roots", roots)
        .Add("refs", total.refs)
        .Add("objects", total.objects)
        .Add("bytes", total.bytes)
        .Add("problems", static_cast<uint64_t>(total.problems.size()));
    inv.PrintJson(summary);
  } else {
    for (const std::string& problem : total.problems) inv.PrintLine("problem: " + problem);
    if (total.problems.empty()) {
      inv.PrintLine("ok: " + std::string(name.empty() ? "the store" : "dataset " + Quote(name)) +
                    " is intact (" + std::to_string(of) + " shards, " + std::to_string(total.refs) +
                    " refs, " + std::to_string(total.objects) + " objects read, " +
                    std::to_string(total.bytes) + " bytes)");
    }
  }
  if (!total.problems.empty()) {
    return Corrupt("verify found " + std::to_string(total.problems.size()) +
                   (total.problems.size() == 1 ? " problem" : " problems") + " in " +
                   std::to_string(of) + " shards");
  }
  return Status::Ok();
}

Status Run(Invocation& inv) {
  const std::string& name = inv.Arg("NAME");
  auto shard_flag = inv.FlagValue("--shard");
  auto of_flag = inv.FlagValue("--of");
  if (auto dir = inv.FlagValue("--combine")) {
    if (shard_flag || of_flag) return inv.Usage("--combine reads results; give no --shard/--of");
    if (!name.empty()) RETURN_IF_ERROR(ValidateDatasetNameArg(name));
    return Combine(inv, name, std::string(*dir));
  }
  std::optional<ShardIndex> shard;
  if (shard_flag || of_flag) {
    ASSIGN_OR_RETURN(shard, ResolveShardIndex(std::optional<std::string>(shard_flag),
                                              std::optional<std::string>(of_flag)));
  }
  ASSIGN_OR_RETURN(Store * store, inv.store());
  Progress progress(inv.HasFlag("--progress"));
  VerifyShard part;
  if (shard) part = VerifyShard{shard->shard, shard->of};
  ASSIGN_OR_RETURN(VerifyReport report,
                   Verify(
                       *store, name,
                       [&](uint64_t objects) {
                         progress.Report("verify: " + std::to_string(objects) + " objects checked");
                       },
                       part));
  progress.Done();
  return Report(inv, name, report, shard);
}

const Registrar kRegistrar({
    .path = "verify",
    .summary = "Check that every object the datasets reach is present and intact",
    .description =
        "Walks every branch and snapshot of NAME (default: every dataset), fetching each\n"
        "manifest, index page and segment once and checking it against its id and format.\n"
        "Exit 0 when healthy; otherwise each problem is printed ('problem: ...', JSON\n"
        "{\"problem\"}) and the exit code is 7 (corrupt). JSON: the problems, then\n"
        "{\"dataset\"?, \"refs\", \"objects\", \"bytes\", \"problems\"}. Progress goes to stderr\n"
        "when it is a terminal, or with --progress.\n"
        "Sharded (spec/14 §12.6): with --shard N --of M (or one of them, the other from a\n"
        "Slurm array or Kubernetes Indexed Job), every shard walks the manifests and index\n"
        "pages and checks the segments in its 1/M of the id space (shard 0 also the spatial\n"
        "indexes); JSON adds \"shard\", \"of\", \"roots\" (a digest of the refs walked) and\n"
        "\"segments_skipped\". Save each shard's `--json` output as DIR/<anything>.json, then\n"
        "`dreamdb verify [NAME] --combine DIR` checks that shards 0..M-1 are all there and\n"
        "walked the same refs (conflict, exit 6, if refs moved meanwhile), prints every\n"
        "problem and exits 7 if there was one.",
    .positionals = {{.name = "NAME", .help = "the dataset (default: all)", .optional = true}},
    .flags = {kProgressFlag,
              {.name = "--shard",
               .value_name = "N",
               .help = "check shard N's part of the segments (0..M-1; default: from "
                       "SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX when --of is given)"},
              {.name = "--of",
               .value_name = "M",
               .help = "the number of shards (default: SLURM_ARRAY_TASK_COUNT or "
                       "DREAMDB_SHARD_COUNT when --shard is given)"},
              {.name = "--combine",
               .value_name = "DIR",
               .help = "the verdict of the shard results (*.json) in DIR"}},
    .run = Run,
});

}  // namespace
}  // namespace dreamdb::cli
