// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb._core.Dataset.merge / compact: merges sources into the handle's branch
// (Dataset::MergeMany, spec/14-semantics.md §16) and compacts it (§18), through the
// handle (dreamdb.Dataset.merge / merge_many / compact then refresh it); the module
// functions merge and compact do the same on a branch opened by name, and the sweep
// functions (§17). Runs with the GIL released; a conflict becomes dreamdb.ConflictError
// (errors.cc).

#include <nanobind/stl/map.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <memory>
#include <string>
#include <vector>

#include "dreamdb/dataset.h"
#include "dreamdb/quote.h"
#include "dreamdb/store.h"
#include "dreamdb/sweep.h"
#include "python/src/bindings.h"

namespace dreamdb::python {
namespace {

MergePolicy ParsePolicy(const std::string& policy) {
  Result<MergePolicy> parsed = ParseMergePolicy(policy);
  if (!parsed.ok()) throw StatusError(InvalidArgument("merge: " + parsed.status().message()));
  return *parsed;
}

nb::list Ids(const std::vector<ObjectId>& ids) {
  nb::list out;
  for (const ObjectId& id : ids) out.append(id.ToString());
  return out;
}

nb::dict InfoDict(const SweepInfo& info) {
  nb::dict d;
  d["sweep"] = info.name;
  d["record_branch"] = info.record_branch;
  d["from"] = info.source_ref;
  d["source_branch"] = info.source_branch;
  d["source_manifest"] = info.source_manifest.ToString();
  d["prefix"] = info.prefix;
  d["metric"] = info.metric;
  d["goal"] = info.goal;
  d["created_ns"] = info.created_ns;
  nb::list runs;
  for (const SweepRun& r : info.runs) {
    nb::dict run;
    run["run"] = r.index;
    run["branch"] = r.branch;
    run["params"] = r.params;
    runs.append(run);
  }
  d["runs"] = runs;
  return d;
}

nb::dict SummaryDict(const SweepSummary& s) {
  nb::dict d;
  d["sweep"] = s.name;
  d["metric"] = s.metric;
  d["goal"] = s.goal;
  nb::list runs;
  for (const SweepRunResult& r : s.runs) {
    nb::dict run;
    run["run"] = r.index;
    run["branch"] = r.branch;
    run["value"] = r.value ? nb::cast(*r.value) : nb::none();
    run["rank"] = r.rank ? nb::cast(r.rank) : nb::none();
    run["source"] = r.source;
    run["values"] = r.values;
    run["nulls"] = r.nulls;
    run["nans"] = r.nans;
    run["note"] = r.note;
    runs.append(run);
  }
  d["runs"] = runs;
  d["best"] = s.best ? nb::cast(s.runs[*s.best].branch) : nb::none();
  d["worst"] = s.worst ? nb::cast(s.runs[*s.worst].branch) : nb::none();
  return d;
}

// A merge's commit and report as a dict: the commit's figures (CommitDict) plus "result",
// "sources", "merge_bases", "conflicts_resolved", "conflict_descriptions",
// "indexes_updated" and "indexes_dropped".
nb::dict MergeOn(Dataset& ds, const std::vector<std::string>& sources, const std::string& policy,
                 bool no_ff, const std::string& message, const std::string& writer) {
  MergeOptions options;
  options.policy = ParsePolicy(policy);
  options.no_ff = no_ff;
  options.message = message;
  options.writer = writer;
  CommitInfo info;
  MergeReport report;
  {
    nb::gil_scoped_release release;
    info = ValueOrThrow(ds.MergeMany(sources, options, &report));
  }
  nb::dict d = CommitDict(info);
  d["result"] = report.up_to_date ? "up-to-date" : report.fast_forward ? "fast-forward" : "merged";
  d["sources"] = Ids(report.sources);
  nb::list bases;
  for (const auto& b : report.merge_bases) bases.append(Ids(b));
  d["merge_bases"] = bases;
  d["conflicts_resolved"] = report.conflicts;
  d["conflict_descriptions"] = report.conflict_descriptions;
  d["indexes_updated"] = report.indexes_updated;
  d["indexes_dropped"] = report.indexes_dropped;
  return d;
}

// A compaction's commit and report: CommitDict plus the before/after figures.
nb::dict CompactOn(Dataset& ds, const std::string& message) {
  CompactOptions options;
  options.message = message;
  CommitInfo info;
  CompactReport r;
  {
    nb::gil_scoped_release release;
    info = ValueOrThrow(ds.Compact(options, &r));
  }
  nb::dict d = CommitDict(info);
  d["changed"] = r.changed;
  d["records"] = r.records;
  d["segments_before"] = r.segments_before;
  d["segments_after"] = r.segments_after;
  d["segment_bytes_before"] = r.segment_bytes_before;
  d["segment_bytes_after"] = r.segment_bytes_after;
  d["pages_before"] = r.pages_before;
  d["pages_after"] = r.pages_after;
  d["spatial_indexes"] = r.spatial_indexes;
  return d;
}

std::shared_ptr<Dataset> OpenBranch(const std::shared_ptr<Store>& store, const std::string& name,
                                    const std::string& branch) {
  nb::gil_scoped_release release;
  return std::shared_ptr<Dataset>(ValueOrThrow(Dataset::Open(store, name, branch)));
}

}  // namespace

void AddMergeMethods(DatasetClass& cls) {
  cls.def(
      "merge",
      [](DatasetHandle& h, const std::vector<std::string>& sources, const std::string& policy,
         bool no_ff, const std::string& message, const std::string& writer) {
        return MergeOn(*h.ds, sources, policy, no_ff, message, writer);
      },
      nb::arg("sources"), nb::arg("policy") = "fail", nb::arg("no_ff") = false,
      nb::arg("message") = "", nb::arg("writer") = "",
      "Merges sources into the handle's branch (spec/14-semantics.md §16); use Dataset.merge.");
  cls.def(
      "compact",
      [](DatasetHandle& h, const std::string& message) { return CompactOn(*h.ds, message); },
      nb::arg("message") = "",
      "Compacts the handle's branch (spec/14-semantics.md §18); use Dataset.compact.");
}

// The module functions merge and compact: the same on a handle opened for the call.
void RegisterMerge(nb::module_& m) {
  m.def(
      "merge",
      [](std::shared_ptr<Store> store, const std::string& name, const std::string& branch,
         const std::vector<std::string>& sources, const std::string& policy, bool no_ff,
         const std::string& message, const std::string& writer) {
        return MergeOn(*OpenBranch(store, name, branch), sources, policy, no_ff, message, writer);
      },
      nb::arg("store"), nb::arg("name"), nb::arg("branch"), nb::arg("sources"), nb::arg("policy"),
      nb::arg("no_ff"), nb::arg("message"), nb::arg("writer"),
      "Merges sources into a branch (spec/14-semantics.md §16); use Dataset.merge.");
  m.def(
      "compact",
      [](std::shared_ptr<Store> store, const std::string& name, const std::string& branch,
         const std::string& message) {
        return CompactOn(*OpenBranch(store, name, branch), message);
      },
      nb::arg("store"), nb::arg("name"), nb::arg("branch"), nb::arg("message"),
      "Compacts a branch (spec/14-semantics.md §18); use Dataset.compact.");

  m.def(
      "sweep_init",
      [](std::shared_ptr<Store> store, const std::string& name, const std::string& sweep,
         const std::string& from, uint32_t runs, const std::string& prefix,
         const std::vector<std::map<std::string, std::string>>& params, const std::string& metric,
         const std::string& goal, const std::string& message) {
        SweepInitOptions o;
        o.from = from;
        o.runs = runs;
        o.prefix = prefix;
        o.params = params;
        o.metric = metric;
        o.goal = goal;
        o.commit.message = message;
        SweepInfo info;
        {
          nb::gil_scoped_release release;
          info = ValueOrThrow(SweepInit(store, name, sweep, o));
        }
        return InfoDict(info);
      },
      nb::arg("store"), nb::arg("name"), nb::arg("sweep"), nb::arg("from_"), nb::arg("runs"),
      nb::arg("prefix"), nb::arg("params"), nb::arg("metric"), nb::arg("goal"), nb::arg("message"),
      "Starts a sweep (spec/14-semantics.md §17); use Dataset.sweep_init.");
  m.def(
      "sweep_show",
      [](std::shared_ptr<Store> store, const std::string& name, const std::string& sweep) {
        SweepInfo info;
        {
          nb::gil_scoped_release release;
          info = ValueOrThrow(SweepShow(store, name, sweep));
        }
        return InfoDict(info);
      },
      nb::arg("store"), nb::arg("name"), nb::arg("sweep"),
      "A sweep's record (spec/14-semantics.md §17); use Dataset.sweep.");
  m.def(
      "sweep_list",
      [](std::shared_ptr<Store> store, const std::string& name) {
        std::vector<SweepInfo> list;
        {
          nb::gil_scoped_release release;
          list = ValueOrThrow(SweepList(store, name));
        }
        nb::list out;
        for (const SweepInfo& info : list) out.append(InfoDict(info));
        return out;
      },
      nb::arg("store"), nb::arg("name"), "A dataset's sweeps; use Dataset.sweeps.");
  m.def(
      "sweep_summarize",
      [](std::shared_ptr<Store> store, const std::string& name, const std::string& sweep,
         const std::string& metric, const std::string& goal) {
        SweepSummary s;
        {
          nb::gil_scoped_release release;
          s = ValueOrThrow(SweepSummarize(store, name, sweep, metric, goal));
        }
        return SummaryDict(s);
      },
      nb::arg("store"), nb::arg("name"), nb::arg("sweep"), nb::arg("metric"), nb::arg("goal"),
      "Ranks a sweep's runs by a metric; use Dataset.sweep_summarize.");
  m.def(
      "sweep_merge_best",
      [](std::shared_ptr<Store> store, const std::string& name, const std::string& sweep,
         const std::string& metric, const std::string& goal, const std::string& into,
         const std::string& policy, const std::string& message) {
        MergeOptions options;
        options.policy = ParsePolicy(policy);
        options.message = message;
        SweepMergeResult r;
        {
          nb::gil_scoped_release release;
          r = ValueOrThrow(SweepMergeBest(store, name, sweep, metric, goal, into, options));
        }
        nb::dict d = SummaryDict(r.summary);
        d["into"] = r.into;
        d["head"] = r.commit.manifest.ToString();
        d["count"] = r.commit.count;
        d["result"] = r.report.up_to_date     ? "up-to-date"
                      : r.report.fast_forward ? "fast-forward"
                                              : "merged";
        d["conflicts_resolved"] = r.report.conflicts;
        return d;
      },
      nb::arg("store"), nb::arg("name"), nb::arg("sweep"), nb::arg("metric"), nb::arg("goal"),
      nb::arg("into"), nb::arg("policy"), nb::arg("message"),
      "Merges a sweep's best run; use Dataset.sweep_merge_best.");
}

}  // namespace dreamdb::python
