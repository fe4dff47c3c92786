// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Sweeps (spec/14-semantics.md §17): N run branches made from one source version, a
// record of the sweep (source, runs, per-run parameters) kept in the metadata of the
// dataset's branch "sweeps/<NAME>", a summary that ranks the runs by a metric, and a
// merge of the best run. One implementation shared by the CLI and the Python SDK.
//
// Thread safety: these are free functions over a thread-safe Store; concurrent calls
// are safe. Two SweepInit calls with the same name race on ref creation: one wins, the
// other fails kAlreadyExists (its run branches may remain; see spec §17.2).

#ifndef DREAMDB_SWEEP_H_
#define DREAMDB_SWEEP_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dreamdb/dataset.h"
#include "dreamdb/status.h"
#include "dreamdb/store.h"

namespace dreamdb {

struct SweepInitOptions {
  std::string from = "main";      // source: a branch, snapshot label or manifest id
  uint32_t runs = 0;              // 1..1000
  std::string prefix = "sweep/";  // run i is branch "<prefix><name>/run-<i>"
  std::vector<std::map<std::string, std::string>> params;  // per run; empty or `runs` maps
  std::string metric;  // optional default metric for summaries and merges
  std::string goal;    // "", "min" or "max"
  CommitOptions commit;
};

struct SweepRun {
  uint32_t index = 0;
  std::string branch;
  std::map<std::string, std::string> params;
};

// A sweep as recorded in the metadata of branch "sweeps/<name>".
struct SweepInfo {
  std::string name;
  std::string record_branch;  // "sweeps/<name>"
  std::string source_ref;     // --from as given
  std::string source_branch;  // the branch --from names; empty for a snapshot or id
  ObjectId source_manifest;   // what every run starts from
  std::string prefix;
  std::string metric, goal;  // defaults recorded at init ("" when none)
  uint64_t created_ns = 0;
  std::vector<SweepRun> runs;
};

struct SweepRunResult {
  uint32_t index = 0;
  std::string branch;
  bool branch_exists = true;
  std::optional<double> value;  // none: no value (listed, not ranked); NaN: not ranked
  std::string source;           // "records", "meta" or "" (no value)
  uint64_t values = 0;          // records averaged ("records"); 1 for "meta"
  uint64_t nulls = 0;           // records with a null value
  uint64_t nans = 0;            // records with NaN (left out of the mean)
  uint32_t rank = 0;            // 1 = best; 0 = not ranked
  std::string note;             // why there is no value, for people
};

struct SweepSummary {
  std::string name, metric, goal;
  std::vector<SweepRunResult> runs;     // in run order
  std::optional<uint32_t> best, worst;  // run indexes
};

// Checks a sweep name: 1..64 bytes of A-Z a-z 0-9 . _ - (not starting with '.').
Status ValidateSweepName(std::string_view name);

// Creates the run branches at the source manifest and the record branch. Every name and
// parameter is checked, and no run or record branch may exist, before anything is written.
Result<SweepInfo> SweepInit(std::shared_ptr<Store> store, std::string_view dataset,
                            std::string_view name, const SweepInitOptions& options);
// The recorded sweep; kNotFound naming the sweep when there is none.
Result<SweepInfo> SweepShow(std::shared_ptr<Store> store, std::string_view dataset,
                            std::string_view name);
// Every recorded sweep of the dataset, by name.
Result<std::vector<SweepInfo>> SweepList(std::shared_ptr<Store> store, std::string_view dataset);
// Each run's metric: the mean of record field `metric` (int64 or float64; nulls and NaNs
// left out) over the run branch, else the run branch's metadata value `metric` parsed as
// a number. `metric`/`goal` empty: the ones recorded at init.
Result<SweepSummary> SweepSummarize(std::shared_ptr<Store> store, std::string_view dataset,
                                    std::string_view name, std::string_view metric = {},
                                    std::string_view goal = {});

struct SweepMergeResult {
  SweepSummary summary;
  std::string into;
  CommitInfo commit;
  MergeReport report;
};
// Merges the best run into `into` (default: the source branch) with Dataset::MergeMany.
Result<SweepMergeResult> SweepMergeBest(std::shared_ptr<Store> store, std::string_view dataset,
                                        std::string_view name, std::string_view metric = {},
                                        std::string_view goal = {}, std::string_view into = {},
                                        const MergeOptions& options = {});

}  // namespace dreamdb

#endif  // DREAMDB_SWEEP_H_
