// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// What the sharded jobs (jobs.cc, spec/14-semantics.md §19) and the sharded index build
// (index/job.cc, §19.10) share: the job's ref names and its plan.
//
// Thread safety: stateless functions; the store coordinates concurrent callers.

#ifndef DREAMDB_SRC_DATASET_JOBS_INTERNAL_H_
#define DREAMDB_SRC_DATASET_JOBS_INTERNAL_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "dreamdb/jobs.h"
#include "dreamdb/object_id.h"
#include "dreamdb/status.h"
#include "dreamdb/store.h"

namespace dreamdb::jobs_internal {

// Ref names of job `job` of `dataset` (spec/14 §19.2).
std::string JobPrefix(std::string_view dataset, std::string_view job);
std::string PlanPrefix(std::string_view dataset, std::string_view job);
std::string ShardPrefix(std::string_view dataset, std::string_view job);
std::string CommittedRef(std::string_view dataset, std::string_view job);
// An index-build job's trained index object (§19.10).
inline std::string IndexRef(std::string_view dataset, std::string_view job) {
  return JobPrefix(dataset, job) + "index";
}

// Strict decimal: digits only, no sign, no spaces, fits in uint64.
std::optional<uint64_t> ParseDecimal(std::string_view s);
// 1 <= of <= kMaxShards, else kInvalidArgument naming `source`.
Status CheckCount(uint64_t of, const std::string& source);

// The plan ref `D/jobs/J/plan-B-of-M`.
struct Plan {
  std::string ref;
  std::string branch;
  uint32_t of = 0;
  ObjectId base;
};
// Parses "<prefix><branch>-of-<M>".
std::optional<Plan> ParsePlan(const RefValue& r, std::string_view prefix);
// The job's plan (nullopt: none); kConflict when it has several.
Result<std::optional<Plan>> ReadPlan(Store& store, std::string_view dataset, std::string_view job);
// The job's plan; none yet: creates `D/jobs/J/plan-B-of-M` at branch B's head (§19.5
// step 2). The caller checks that the plan's branch and count are its own.
Result<Plan> ReadOrCreatePlan(Store& store, std::string_view dataset, std::string_view job,
                              std::string_view branch, uint32_t of);
// A ref's target, nullopt when the ref does not exist.
Result<std::optional<ObjectId>> ReadOptionalRef(Store& store, const std::string& name);
// kNotFound naming the shards of `status` that have not finished (§19.6 step 3).
Status MissingShards(std::string_view dataset, std::string_view job, const JobStatus& status);

}  // namespace dreamdb::jobs_internal

#endif  // DREAMDB_SRC_DATASET_JOBS_INTERNAL_H_
