// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb sweep init|ls|show|summarize|merge: sweeps over run branches
// (spec/14-semantics.md §17; the implementation is dreamdb/sweep.h, shared with Python).
#include "dreamdb/sweep.h"

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/dataset_util.h"
#include "cli/sweep_json.h"
#include "dreamdb/quote.h"

namespace dreamdb::cli {
namespace {

std::string Short(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string Pad(std::string s, size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}

void PrintSummary(Invocation& inv, const SweepSummary& s) {
  size_t w = 6;
  for (const auto& r : s.runs) w = std::max(w, r.branch.size());
  inv.PrintLine("sweep " + s.name + ": " + s.goal + " " + s.metric + " over " +
                std::to_string(s.runs.size()) + " runs");
  inv.PrintLine(Pad("rank", 5) + Pad("run", 5) + Pad("branch", w + 2) + Pad("value", 12) +
                "source");
  for (const auto& r : s.runs) {
    std::string line = Pad(r.rank ? std::to_string(r.rank) : "-", 5) +
                       Pad(std::to_string(r.index), 5) + Pad(r.branch, w + 2);
    if (r.value)
      line += Pad(Short(*r.value), 12);
    else
      line += Pad("-", 12);
    line += r.source.empty() ? "" : r.source;
    if (r.source == "records") line += " (" + std::to_string(r.values) + " values)";
    if (r.nans) line += " " + std::to_string(r.nans) + " NaN skipped";
    if (!r.note.empty())
      line += (r.source.empty() ? "" : " ") + std::string("(not ranked: ") + r.note + ")";
    inv.PrintLine(line);
  }
  auto name = [&](const char* what, const std::optional<uint32_t>& i) {
    if (!i) return std::string(what) + ": none (no run has a value)";
    return std::string(what) + ": run " + std::to_string(*i) + " (" + s.runs[*i].branch + ") " +
           Short(*s.runs[*i].value);
  };
  inv.PrintLine(name("best", s.best));
  inv.PrintLine(name("worst", s.worst));
}

// "I=KEY=VALUE" or "*=KEY=VALUE" -> params.
Status AddParam(Invocation& inv, const std::string& arg, uint32_t runs,
                std::vector<std::map<std::string, std::string>>& params) {
  size_t a = arg.find('=');
  size_t b = a == std::string::npos ? a : arg.find('=', a + 1);
  if (b == std::string::npos) {
    return inv.Usage("expected RUN=KEY=VALUE (RUN an index or '*'), got " + Quote(arg));
  }
  std::string run = arg.substr(0, a), key = arg.substr(a + 1, b - a - 1), value = arg.substr(b + 1);
  if (params.empty()) params.resize(runs);
  if (run == "*") {
    for (auto& p : params) p[key] = value;
    return Status::Ok();
  }
  ASSIGN_OR_RETURN(uint64_t i, ParseU64("RUN of " + Quote(arg), run));
  if (i >= runs) {
    return InvalidArgument("parameter " + Quote(arg) + " names run " + std::to_string(i) +
                           ", but the sweep has runs 0.." + std::to_string(runs - 1));
  }
  params[i][key] = value;
  return Status::Ok();
}

// --params FILE: a JSON list with one object of parameters per run.
Status LoadParams(const std::string& path, uint32_t runs,
                  std::vector<std::map<std::string, std::string>>& params) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot read parameter file " + Quote(path));
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(text.str(), nullptr, false);
  if (j.is_discarded() || !j.is_array()) {
    return InvalidArgument("parameter file " + Quote(path) +
                           " must be a JSON list with one object per run");
  }
  if (j.size() != runs) {
    return InvalidArgument("parameter file " + Quote(path) + " has " + std::to_string(j.size()) +
                           " entries, but the sweep has " + std::to_string(runs) + " runs");
  }
  if (params.empty()) params.resize(runs);
  for (size_t i = 0; i < j.size(); ++i) {
    if (!j[i].is_object()) {
      return InvalidArgument("parameter file " + Quote(path) + ": entry " + std::to_string(i) +
                             " is not an object");
    }
    for (auto it = j[i].begin(); it != j[i].end(); ++it) {
      params[i][it.key()] = it->is_string() ? it->get<std::string>() : it->dump();
    }
  }
  return Status::Ok();
}

Status Init(Invocation& inv) {
  SweepInitOptions o;
  o.from = std::string(inv.FlagValue("--from").value_or("main"));
  ASSIGN_OR_RETURN(uint64_t runs, ParseU64("--runs", *inv.FlagValue("--runs")));
  if (runs == 0 || runs > 1000) return inv.Usage("--runs must be 1..1000");
  o.runs = static_cast<uint32_t>(runs);
  if (auto p = inv.FlagValue("--prefix")) o.prefix = std::string(*p);
  if (auto m = inv.FlagValue("--metric")) o.metric = std::string(*m);
  if (auto g = inv.FlagValue("--goal")) o.goal = std::string(*g);
  if (auto f = inv.FlagValue("--params"))
    RETURN_IF_ERROR(LoadParams(std::string(*f), o.runs, o.params));
  for (const std::string& arg : inv.Args("RUN=KEY=VALUE")) {
    RETURN_IF_ERROR(AddParam(inv, arg, o.runs, o.params));
  }
  o.commit = CommitOptionsFrom(inv);
  ASSIGN_OR_RETURN(auto store, SharedStore(inv));
  ASSIGN_OR_RETURN(SweepInfo info, SweepInit(store, inv.Arg("NAME"), inv.Arg("SWEEP"), o));
  if (inv.json()) {
    inv.PrintLine(SweepInfoJson(info));
  } else {
    inv.PrintLine("sweep " + info.name + ": " + std::to_string(info.runs.size()) + " runs from " +
                  info.source_ref + " (" + info.source_manifest.ToString() +
                  "), record on branch " + info.record_branch);
    for (const SweepRun& r : info.runs)
      inv.PrintLine("  run " + std::to_string(r.index) + ": " + r.branch);
  }
  return Status::Ok();
}

Status Ls(Invocation& inv) {
  ASSIGN_OR_RETURN(auto store, SharedStore(inv));
  ASSIGN_OR_RETURN(auto list, SweepList(store, inv.Arg("NAME")));
  for (const SweepInfo& info : list) {
    if (inv.json()) {
      inv.PrintLine(SweepInfoJson(info));
    } else {
      inv.PrintLine(info.name + "  " + std::to_string(info.runs.size()) + " runs from " +
                    info.source_ref + "  " + IsoTime(static_cast<int64_t>(info.created_ns)));
    }
  }
  return Status::Ok();
}

Status Show(Invocation& inv) {
  ASSIGN_OR_RETURN(auto store, SharedStore(inv));
  ASSIGN_OR_RETURN(SweepInfo info, SweepShow(store, inv.Arg("NAME"), inv.Arg("SWEEP")));
  if (inv.json()) {
    inv.PrintLine(SweepInfoJson(info));
    return Status::Ok();
  }
  inv.PrintLine("sweep " + info.name + " (record on branch " + info.record_branch + ")");
  inv.PrintLine("from: " + info.source_ref + " = " + info.source_manifest.ToString());
  if (!info.metric.empty()) {
    inv.PrintLine("metric: " + info.metric + " (goal " + (info.goal.empty() ? "min" : info.goal) +
                  ")");
  }
  for (const SweepRun& r : info.runs) {
    std::string line = "run " + std::to_string(r.index) + ": " + r.branch;
    for (const auto& [k, v] : r.params) line += " " + k + "=" + v;
    inv.PrintLine(line);
  }
  return Status::Ok();
}

Status GoalFlag(Invocation& inv, std::string& goal) {
  if (auto g = inv.FlagValue("--goal")) {
    if (*g != "min" && *g != "max") return inv.Usage("--goal must be min or max, not " + Quote(*g));
    goal = std::string(*g);
  }
  return Status::Ok();
}

Status Summarize(Invocation& inv) {
  std::string goal;
  RETURN_IF_ERROR(GoalFlag(inv, goal));
  ASSIGN_OR_RETURN(auto store, SharedStore(inv));
  ASSIGN_OR_RETURN(SweepSummary s, SweepSummarize(store, inv.Arg("NAME"), inv.Arg("SWEEP"),
                                                  inv.FlagValue("--metric").value_or(""), goal));
  if (inv.json()) {
    inv.PrintLine(SweepSummaryJson(s));
  } else {
    PrintSummary(inv, s);
  }
  return Status::Ok();
}

Status Merge(Invocation& inv) {
  if (!inv.HasFlag("--best")) return inv.Usage("say which run to merge: --best");
  std::string goal;
  RETURN_IF_ERROR(GoalFlag(inv, goal));
  MergeOptions options;
  if (auto p = inv.FlagValue("--policy")) {
    Result<MergePolicy> policy = ParseMergePolicy(*p);
    if (!policy.ok()) return inv.Usage("--" + policy.status().message());
    options.policy = *policy;
  }
  if (auto m = inv.FlagValue("--message")) options.message = std::string(*m);
  ASSIGN_OR_RETURN(auto store, SharedStore(inv));
  ASSIGN_OR_RETURN(SweepMergeResult r,
                   SweepMergeBest(store, inv.Arg("NAME"), inv.Arg("SWEEP"),
                                  inv.FlagValue("--metric").value_or(""), goal,
                                  inv.FlagValue("--into").value_or(""), options));
  const SweepRunResult& best = r.summary.runs[*r.summary.best];
  const std::string result = r.report.up_to_date     ? "up-to-date"
                             : r.report.fast_forward ? "fast-forward"
                                                     : "merged";
  if (inv.json()) {
    inv.PrintJson(JsonObject()
                      .Add("sweep", r.summary.name)
                      .Add("metric", r.summary.metric)
                      .Add("goal", r.summary.goal)
                      .Add("best", best.branch)
                      .AddRaw("value", JsonNumber(*best.value))
                      .Add("into", r.into)
                      .Add("result", result)
                      .Add("head", r.commit.manifest.ToString())
                      .Add("count", r.commit.count)
                      .Add("conflicts_resolved", r.report.conflicts));
  } else {
    inv.PrintLine("best run of sweep " + r.summary.name + ": " + best.branch + " (" +
                  r.summary.goal + " " + r.summary.metric + " = " + Short(*best.value) + ")");
    inv.PrintLine(result + " into branch " + r.into + ": head " + r.commit.manifest.ToString() +
                  " (" + std::to_string(r.commit.count) + " records)");
  }
  return Status::Ok();
}

constexpr Positional kName{.name = "NAME", .help = "the dataset"};
constexpr Positional kSweep{.name = "SWEEP", .help = "the sweep's name"};
constexpr Flag kMetricFlag{
    .name = "--metric",
    .value_name = "FIELD",
    .help =
        "a numeric record field (mean over the run) or run metadata key (default: "
        "the one recorded at init)"};
constexpr Flag kGoalFlag{
    .name = "--goal", .value_name = "G", .help = "min (default) or max: which end is best"};

const Registrar kInit({
    .path = "sweep init",
    .summary = "Start a sweep: N run branches from one version, recorded in metadata",
    .description =
        "Creates branches PREFIX+SWEEP/run-0 .. run-(N-1) at the manifest --from names and\n"
        "records the sweep (source, runs, per-run parameters) in the metadata of branch\n"
        "sweeps/SWEEP (spec/14-semantics.md §17). Parameters: RUN=KEY=VALUE arguments\n"
        "(RUN a run index or '*' for every run) and/or --params FILE, a JSON list with one\n"
        "object per run. Nothing is written unless every name is valid and free.\n"
        "JSON: {\"sweep\", \"record_branch\", \"from\", \"source_branch\", \"source_manifest\",\n"
        "\"prefix\", \"metric\", \"goal\", \"created\", \"runs\": [{\"run\", \"branch\", "
        "\"params\"}]}.",
    .positionals = {kName,
                    kSweep,
                    {.name = "RUN=KEY=VALUE",
                     .help = "a parameter of run RUN ('*': every run)",
                     .optional = true,
                     .repeated = true}},
    .flags =
        {{.name = "--from",
          .value_name = "REF",
          .help = "the source: a branch, snapshot label or manifest id (default: main)"},
         {.name = "--runs", .value_name = "N", .help = "how many runs (1..1000)", .required = true},
         {.name = "--prefix",
          .value_name = "P",
          .help = "run branch prefix, ending in '/' (default: sweep/)"},
         {.name = "--params", .value_name = "FILE", .help = "per-run parameters as JSON"},
         kMetricFlag,
         kGoalFlag,
         kMessageFlag},
    .run = Init,
});

const Registrar kLs({
    .path = "sweep ls",
    .summary = "List a dataset's sweeps",
    .description = "One line per sweep: name, runs, source, creation time. JSON: one object per\n"
                   "line, as `sweep show`.",
    .positionals = {kName},
    .run = Ls,
});

const Registrar kShow({
    .path = "sweep show",
    .summary = "Show a sweep's record: source, runs and their parameters",
    .description = "JSON: as `sweep init`.",
    .positionals = {kName, kSweep},
    .run = Show,
});

const Registrar kSummarize({
    .path = "sweep summarize",
    .summary = "Rank a sweep's runs by a metric",
    .description =
        "Each run's value of FIELD: the mean of a numeric (int64/float64) record field over\n"
        "the run branch's records, nulls and NaNs left out (NaNs are counted); when FIELD is\n"
        "not a field of the run, the number in the run branch's metadata key FIELD. Runs\n"
        "with no value (or NaN) are listed, not ranked. Names the best and the worst.\n"
        "JSON: {\"sweep\", \"metric\", \"goal\", \"runs\": [{\"run\", \"branch\", \"value\",\n"
        "\"rank\", \"source\", \"values\", \"nulls\", \"nans\", \"note\"}], \"best\", \"worst\"}.",
    .positionals = {kName, kSweep},
    .flags = {kMetricFlag, kGoalFlag},
    .run = Summarize,
});

const Registrar kMerge({
    .path = "sweep merge",
    .summary = "Merge a sweep's best run into its source branch",
    .description =
        "Ranks the runs as `sweep summarize` does and merges the best run's branch into\n"
        "--into (default: the branch the sweep was made from) like `dreamdb merge`.\n"
        "JSON: {\"sweep\", \"metric\", \"goal\", \"best\", \"value\", \"into\", \"result\",\n"
        "\"head\", \"count\", \"conflicts_resolved\"}.",
    .positionals = {kName, kSweep},
    .flags = {{.name = "--best", .help = "merge the best run (required)"},
              kMetricFlag,
              kGoalFlag,
              {.name = "--into",
               .value_name = "B",
               .help = "the branch to merge into (default: the sweep's source branch)"},
              {.name = "--policy",
               .value_name = "P",
               .help = "fail (default), ours or theirs: how conflicts are resolved"},
              kMessageFlag},
    .run = Merge,
});

}  // namespace
}  // namespace dreamdb::cli
