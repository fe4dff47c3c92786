// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
#include "cli/sweep_json.h"

#include <utility>
#include <vector>

#include "cli/dataset_util.h"

namespace dreamdb::cli {

std::string JsonNumber(double v) {
  std::string out;
  AppendJsonDouble(v, &out);
  return out;
}

std::string SweepParamsJson(const std::map<std::string, std::string>& params) {
  std::vector<std::pair<std::string, std::string>> items(params.begin(), params.end());
  return JsonStringMap(items);
}

std::string SweepInfoJson(const SweepInfo& info) {
  std::string runs = "[";
  for (const SweepRun& r : info.runs) {
    if (runs.size() > 1) runs += ",";
    runs += JsonObject()
                .Add("run", static_cast<uint64_t>(r.index))
                .Add("branch", r.branch)
                .AddRaw("params", SweepParamsJson(r.params))
                .Finish();
  }
  runs += "]";
  return JsonObject()
      .Add("sweep", info.name)
      .Add("record_branch", info.record_branch)
      .Add("from", info.source_ref)
      .Add("source_branch", info.source_branch)
      .Add("source_manifest", info.source_manifest.ToString())
      .Add("prefix", info.prefix)
      .Add("metric", info.metric)
      .Add("goal", info.goal)
      .Add("created", IsoTime(static_cast<int64_t>(info.created_ns)))
      .AddRaw("runs", runs)
      .Finish();
}

std::string SweepSummaryJson(
    const SweepSummary& s, const std::function<void(const SweepRunResult&, JsonObject&)>& extend) {
  std::string runs = "[";
  for (const SweepRunResult& r : s.runs) {
    if (runs.size() > 1) runs += ",";
    JsonObject o;
    o.Add("run", static_cast<uint64_t>(r.index)).Add("branch", r.branch);
    o.AddRaw("value", r.value ? JsonNumber(*r.value) : "null");
    o.AddRaw("rank", r.rank ? std::to_string(r.rank) : "null");
    o.Add("source", r.source).Add("values", r.values).Add("nulls", r.nulls).Add("nans", r.nans);
    o.Add("note", r.note);
    if (extend) extend(r, o);
    runs += o.Finish();
  }
  runs += "]";
  auto run = [&](const std::optional<uint32_t>& i) {
    return i ? JsonObject()
                   .Add("run", static_cast<uint64_t>(*i))
                   .Add("branch", s.runs[*i].branch)
                   .AddRaw("value", JsonNumber(*s.runs[*i].value))
                   .Finish()
             : std::string("null");
  };
  return JsonObject()
      .Add("sweep", s.name)
      .Add("metric", s.metric)
      .Add("goal", s.goal)
      .AddRaw("runs", runs)
      .AddRaw("best", run(s.best))
      .AddRaw("worst", run(s.worst))
      .Finish();
}

}  // namespace dreamdb::cli
