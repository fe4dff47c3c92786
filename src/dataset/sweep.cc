// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Sweeps (include/dreamdb/sweep.h, spec/14-semantics.md §17). The record of sweep NAME is
// the `sweep.*` metadata of branch "sweeps/NAME", one commit on top of the source
// manifest: nothing here writes a byte of a new kind, and the run branches stay exactly
// at the source manifest until the runs write to them.

#include "dreamdb/sweep.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "src/base/encoding.h"
#include "src/dataset/manifest.h"

namespace dreamdb {
namespace {

constexpr std::string_view kRecordPrefix = "sweeps/";
constexpr std::string_view kKey = "sweep.";
constexpr uint32_t kMaxRuns = 1000;

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

std::string RecordBranch(std::string_view name) {
  return std::string(kRecordPrefix) + std::string(name);
}

std::string RunBranch(std::string_view prefix, std::string_view name, uint32_t i) {
  return std::string(prefix) + std::string(name) + "/run-" + std::to_string(i);
}

std::string RunKey(uint32_t i, std::string_view rest) {
  return std::string(kKey) + "run." + std::to_string(i) + "." + std::string(rest);
}

Status ValidateGoal(std::string_view goal) {
  if (goal.empty() || goal == "min" || goal == "max") return Status::Ok();
  return InvalidArgument("sweep goal must be 'min' or 'max', not " + Quote(goal));
}

Status ValidateParamKey(std::string_view key) {
  if (key.empty() || key.size() > 128) {
    return InvalidArgument("sweep parameter name " + Quote(key) + " must be 1..128 bytes");
  }
  for (char c : key) {
    if (!IsNameChar(c)) {
      return InvalidArgument("sweep parameter name " + Quote(key) +
                             " may only contain letters, digits, '.', '_' and '-'");
    }
  }
  return Status::Ok();
}

bool RefExists(Store& store, const std::string& ref) { return store.ReadRef(ref).ok(); }

Result<uint64_t> ParseCount(std::string_view what, std::string_view text) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size()) {
    return Corrupt("sweep record: " + std::string(what) + " is not a number: " + Quote(text));
  }
  return v;
}

// A metadata value as a number: the whole text must parse ("nan" and "inf" included).
std::optional<double> ParseNumber(std::string_view text) {
  double v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || text.empty()) return std::nullopt;
  return v;
}

Result<SweepInfo> FromMeta(std::string_view name, const std::map<std::string, std::string>& meta) {
  auto get = [&](std::string_view k) -> std::string {
    auto it = meta.find(std::string(kKey) + std::string(k));
    return it == meta.end() ? std::string() : it->second;
  };
  if (get("format") != "1" || get("name") != name) {
    return NotFound("branch " + Quote(RecordBranch(name)) + " holds no record of sweep " +
                    Quote(name));
  }
  SweepInfo info;
  info.name = std::string(name);
  info.record_branch = RecordBranch(name);
  info.source_ref = get("from");
  info.source_branch = get("source_branch");
  ASSIGN_OR_RETURN(info.source_manifest, ObjectId::Parse(get("source_manifest")));
  info.prefix = get("prefix");
  info.metric = get("metric");
  info.goal = get("goal");
  ASSIGN_OR_RETURN(info.created_ns, ParseCount("created_ns", get("created_ns")));
  ASSIGN_OR_RETURN(uint64_t runs, ParseCount("runs", get("runs")));
  if (runs == 0 || runs > kMaxRuns) return Corrupt("sweep record: runs out of range");
  for (uint32_t i = 0; i < runs; ++i) {
    SweepRun run;
    run.index = i;
    auto it = meta.find(RunKey(i, "branch"));
    if (it == meta.end()) return Corrupt("sweep record: run " + std::to_string(i) + " missing");
    run.branch = it->second;
    const std::string param_prefix = RunKey(i, "param.");
    for (auto p = meta.lower_bound(param_prefix);
         p != meta.end() && p->first.starts_with(param_prefix); ++p) {
      run.params.emplace(p->first.substr(param_prefix.size()), p->second);
    }
    info.runs.push_back(std::move(run));
  }
  return info;
}

// The mean of a numeric record field over the run branch (nulls and NaNs left out).
Status MeanOfField(Dataset& ds, const FieldSpec& field, SweepRunResult& r) {
  ScanOptions scan;
  scan.fields = {field.name};
  ASSIGN_OR_RETURN(auto reader, ds.Scan(scan));
  double sum = 0;
  for (;;) {
    ASSIGN_OR_RETURN(std::optional<Batch> batch, reader->Next());
    if (!batch) break;
    const Column& col = batch->columns[0];
    for (uint64_t row = 0; row < col.length(); ++row) {
      if (!col.IsValid(row)) {
        ++r.nulls;
        continue;
      }
      double v = field.type == FieldType::kInt64 ? static_cast<double>(col.Int64At(row))
                                                 : col.Float64At(row);
      if (std::isnan(v)) {
        ++r.nans;
        continue;
      }
      sum += v;
      ++r.values;
    }
  }
  r.source = "records";
  if (r.values > 0) {
    r.value = sum / static_cast<double>(r.values);
  } else {
    r.note = "no record has a value of " + Quote(field.name);
  }
  return Status::Ok();
}

}  // namespace

Status ValidateSweepName(std::string_view name) {
  if (name.empty() || name.size() > 64) {
    return InvalidArgument("sweep name " + Quote(name) + " must be 1..64 bytes");
  }
  if (name[0] == '.') return InvalidArgument("sweep name " + Quote(name) + " starts with '.'");
  for (char c : name) {
    if (!IsNameChar(c)) {
      return InvalidArgument("sweep name " + Quote(name) +
                             " may only contain letters, digits, '.', '_' and '-'");
    }
  }
  return Status::Ok();
}

Result<SweepInfo> SweepInit(std::shared_ptr<Store> store, std::string_view dataset,
                            std::string_view name, const SweepInitOptions& options) {
  RETURN_IF_ERROR(ValidateSweepName(name));
  RETURN_IF_ERROR(ValidateGoal(options.goal));
  if (options.runs == 0 || options.runs > kMaxRuns) {
    return InvalidArgument("a sweep has 1.." + std::to_string(kMaxRuns) + " runs, not " +
                           std::to_string(options.runs));
  }
  if (!options.params.empty() && options.params.size() != options.runs) {
    return InvalidArgument("sweep parameters are given for " +
                           std::to_string(options.params.size()) + " runs, but the sweep has " +
                           std::to_string(options.runs));
  }
  for (const auto& run : options.params) {
    for (const auto& [k, v] : run) {
      RETURN_IF_ERROR(ValidateParamKey(k));
      if (v.empty()) return InvalidArgument("sweep parameter " + Quote(k) + " has an empty value");
    }
  }
  if (!options.prefix.empty() && !options.prefix.ends_with('/')) {
    return InvalidArgument("sweep prefix " + Quote(options.prefix) + " must end with '/'");
  }
  if (!options.metric.empty()) RETURN_IF_ERROR(ValidateParamKey(options.metric));
  ASSIGN_OR_RETURN(auto source, Dataset::OpenAt(store, dataset, options.from));

  SweepInfo info;
  info.name = std::string(name);
  info.record_branch = RecordBranch(name);
  info.source_ref = options.from;
  info.source_manifest = source->head();
  info.prefix = options.prefix;
  info.metric = options.metric;
  info.goal = options.goal;
  if (options.from.starts_with("branch:")) {
    info.source_branch = options.from.substr(7);
  } else if (!RefExists(*store, dataset::SnapshotRef(dataset, options.from)) &&
             dataset::ValidateBranchName(options.from).ok() &&
             RefExists(*store, dataset::BranchRef(dataset, options.from))) {
    info.source_branch = options.from;
  }
  // Every name is checked and free before anything is written.
  std::vector<std::string> branches = {info.record_branch};
  for (uint32_t i = 0; i < options.runs; ++i) {
    SweepRun run{.index = i, .branch = RunBranch(options.prefix, name, i), .params = {}};
    if (!options.params.empty()) run.params = options.params[i];
    branches.push_back(run.branch);
    info.runs.push_back(std::move(run));
  }
  for (const std::string& b : branches) {
    RETURN_IF_ERROR(dataset::ValidateBranchName(b));
    if (RefExists(*store, dataset::BranchRef(dataset, b))) {
      return AlreadyExists("branch " + Quote(b) + " of dataset " + Quote(dataset) +
                           " already exists" +
                           (b == info.record_branch ? " (sweep " + Quote(name) + " exists)" : ""));
    }
  }
  info.created_ns = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                              std::chrono::system_clock::now().time_since_epoch())
                                              .count());
  std::map<std::string, std::string> meta;
  for (const auto& [k, v] : source->Meta()) {
    if (k.starts_with(kKey)) meta[k] = "";  // a record inherited from the source is dropped
  }
  auto put = [&](std::string_view k, std::string v) {
    meta[std::string(kKey) + std::string(k)] = std::move(v);
  };
  put("format", "1");
  put("name", info.name);
  put("from", info.source_ref);
  put("source_branch", info.source_branch);
  put("source_manifest", info.source_manifest.ToString());
  put("prefix", info.prefix);
  put("runs", std::to_string(options.runs));
  put("metric", info.metric);
  put("goal", info.goal);
  put("created_ns", std::to_string(info.created_ns));
  for (const SweepRun& run : info.runs) {
    meta[RunKey(run.index, "branch")] = run.branch;
    for (const auto& [k, v] : run.params) meta[RunKey(run.index, "param." + k)] = v;
  }
  for (auto it = meta.begin(); it != meta.end();) {  // empty values delete keys
    if (it->second.empty() && !source->Meta().contains(it->first)) {
      it = meta.erase(it);
    } else {
      ++it;
    }
  }
  for (const SweepRun& run : info.runs) RETURN_IF_ERROR(source->Branch(run.branch));
  RETURN_IF_ERROR(source->Branch(info.record_branch));
  ASSIGN_OR_RETURN(auto record, Dataset::Open(store, dataset, info.record_branch));
  CommitOptions commit = options.commit;
  if (commit.message.empty()) commit.message = "sweep " + info.name + ": record";
  RETURN_IF_ERROR(record->SetMeta(meta, commit).status());
  return info;
}

Result<SweepInfo> SweepShow(std::shared_ptr<Store> store, std::string_view dataset,
                            std::string_view name) {
  RETURN_IF_ERROR(ValidateSweepName(name));
  auto record = Dataset::Open(store, dataset, RecordBranch(name));
  if (record.status().code() == StatusCode::kNotFound) {
    // Tell a missing dataset from a missing sweep.
    RETURN_IF_ERROR(Dataset::Open(store, dataset).status());
    return NotFound("dataset " + Quote(dataset) + " has no sweep " + Quote(name));
  }
  RETURN_IF_ERROR(record.status());
  return FromMeta(name, (*record)->Meta());
}

Result<std::vector<SweepInfo>> SweepList(std::shared_ptr<Store> store, std::string_view dataset) {
  RETURN_IF_ERROR(Dataset::Open(store, dataset).status());
  const std::string prefix = dataset::BranchRef(dataset, kRecordPrefix);
  std::vector<std::string> names;
  RETURN_IF_ERROR(store->ListRefs(prefix, [&](const RefValue& r) {
    std::string n = r.name.substr(prefix.size());
    if (ValidateSweepName(n).ok()) names.push_back(std::move(n));
    return true;
  }));
  std::vector<SweepInfo> out;
  for (const std::string& n : names) {
    auto info = SweepShow(store, dataset, n);
    if (info.status().code() == StatusCode::kNotFound) continue;  // a branch, not a sweep
    RETURN_IF_ERROR(info.status());
    out.push_back(std::move(*info));
  }
  return out;
}

Result<SweepSummary> SweepSummarize(std::shared_ptr<Store> store, std::string_view dataset,
                                    std::string_view name, std::string_view metric,
                                    std::string_view goal) {
  RETURN_IF_ERROR(ValidateGoal(goal));
  ASSIGN_OR_RETURN(SweepInfo info, SweepShow(store, dataset, name));
  SweepSummary s;
  s.name = info.name;
  s.metric = std::string(metric.empty() ? std::string_view(info.metric) : metric);
  s.goal = std::string(goal.empty() ? std::string_view(info.goal) : goal);
  if (s.goal.empty()) s.goal = "min";
  if (s.metric.empty()) {
    return InvalidArgument("sweep " + Quote(name) +
                           " records no metric: name one (--metric FIELD / metric=)");
  }
  for (const SweepRun& run : info.runs) {
    SweepRunResult r;
    r.index = run.index;
    r.branch = run.branch;
    auto ds = Dataset::Open(store, dataset, run.branch);
    if (ds.status().code() == StatusCode::kNotFound) {
      r.branch_exists = false;
      r.note = "run branch " + Quote(run.branch) + " is gone";
      s.runs.push_back(std::move(r));
      continue;
    }
    RETURN_IF_ERROR(ds.status());
    Schema schema = (*ds)->schema();
    if (const FieldSpec* f = schema.Find(s.metric)) {
      if (f->type != FieldType::kInt64 && f->type != FieldType::kFloat64) {
        return InvalidArgument("sweep metric " + Quote(s.metric) + " is a " +
                               std::string(FieldTypeName(f->type)) + " field of run " +
                               Quote(run.branch) + "; only int64 and float64 fields average");
      }
      RETURN_IF_ERROR(MeanOfField(**ds, *f, r));
    } else {
      auto meta = (*ds)->Meta();
      auto it = meta.find(s.metric);
      if (it == meta.end()) {
        r.note = "no field or metadata key " + Quote(s.metric);
      } else if (auto v = ParseNumber(it->second)) {
        r.value = *v;
        r.values = 1;
        r.source = "meta";
      } else {
        r.note = "metadata " + Quote(s.metric) + " is not a number: " + Quote(it->second);
      }
    }
    if (r.value && std::isnan(*r.value)) r.note = "the value is NaN";
    s.runs.push_back(std::move(r));
  }
  std::vector<SweepRunResult*> ranked;
  for (SweepRunResult& r : s.runs) {
    if (r.value && !std::isnan(*r.value)) ranked.push_back(&r);
  }
  const bool max = s.goal == "max";
  std::stable_sort(ranked.begin(), ranked.end(), [&](const auto* a, const auto* b) {
    return max ? *a->value > *b->value : *a->value < *b->value;
  });
  for (size_t i = 0; i < ranked.size(); ++i) ranked[i]->rank = static_cast<uint32_t>(i + 1);
  if (!ranked.empty()) {
    s.best = ranked.front()->index;
    s.worst = ranked.back()->index;
  }
  return s;
}

Result<SweepMergeResult> SweepMergeBest(std::shared_ptr<Store> store, std::string_view dataset,
                                        std::string_view name, std::string_view metric,
                                        std::string_view goal, std::string_view into,
                                        const MergeOptions& options) {
  ASSIGN_OR_RETURN(SweepInfo info, SweepShow(store, dataset, name));
  SweepMergeResult out;
  ASSIGN_OR_RETURN(out.summary, SweepSummarize(store, dataset, name, metric, goal));
  if (!out.summary.best) {
    return NotFound("sweep " + Quote(name) + ": no run has a value of " +
                    Quote(out.summary.metric) + ", so there is no best run");
  }
  out.into = std::string(into.empty() ? std::string_view(info.source_branch) : into);
  if (out.into.empty()) {
    return InvalidArgument("sweep " + Quote(name) + " was made from " + Quote(info.source_ref) +
                           ", not a branch: name the branch to merge into (--into)");
  }
  const std::string& best = out.summary.runs[*out.summary.best].branch;
  MergeOptions merge = options;
  if (merge.message.empty()) {
    merge.message = "sweep " + info.name + ": merge best run " + best + " (" + out.summary.goal +
                    " " + out.summary.metric + ")";
  }
  ASSIGN_OR_RETURN(auto ds, Dataset::Open(store, dataset, out.into));
  ASSIGN_OR_RETURN(out.commit, ds->MergeMany({best}, merge, &out.report));
  return out;
}

}  // namespace dreamdb
