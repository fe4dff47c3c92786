// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Sharded jobs and the anchor allocator (spec/14-semantics.md §19).
#include "dreamdb/jobs.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <utility>

#include "src/base/encoding.h"
#include "src/cbor/cbor.h"
#include "src/dataset/jobs_internal.h"
#include "src/dataset/manifest.h"

namespace dreamdb {
namespace jobs_internal {

std::string JobPrefix(std::string_view dataset, std::string_view job) {
  return std::string(dataset) + "/jobs/" + std::string(job) + "/";
}
std::string PlanPrefix(std::string_view dataset, std::string_view job) {
  return JobPrefix(dataset, job) + "plan-";
}
std::string ShardPrefix(std::string_view dataset, std::string_view job) {
  return JobPrefix(dataset, job) + "shards/";
}
std::string CommittedRef(std::string_view dataset, std::string_view job) {
  return JobPrefix(dataset, job) + "committed";
}

// Strict decimal: digits only, no sign, no spaces, fits in uint64.
std::optional<uint64_t> ParseDecimal(std::string_view s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

Status CheckCount(uint64_t of, const std::string& source) {
  if (of == 0 || of > kMaxShards) {
    return InvalidArgument("shard count " + std::to_string(of) + " (" + source +
                           ") is out of range: 1.." + std::to_string(kMaxShards));
  }
  return Status::Ok();
}

// Parses "<prefix><branch>-of-<M>".
std::optional<Plan> ParsePlan(const RefValue& r, std::string_view prefix) {
  std::string_view rest = std::string_view(r.name).substr(prefix.size());
  size_t at = rest.rfind("-of-");
  if (at == std::string_view::npos || at == 0) return std::nullopt;
  auto of = ParseDecimal(rest.substr(at + 4));
  if (!of || *of == 0 || *of > kMaxShards) return std::nullopt;
  return Plan{r.name, std::string(rest.substr(0, at)), static_cast<uint32_t>(*of), r.target};
}

Result<std::optional<Plan>> ReadPlan(Store& store, std::string_view dataset, std::string_view job) {
  std::vector<Plan> plans;
  const std::string prefix = PlanPrefix(dataset, job);
  RETURN_IF_ERROR(store.ListRefs(prefix, [&](const RefValue& r) {
    if (auto p = ParsePlan(r, prefix)) plans.push_back(std::move(*p));
    return true;
  }));
  if (plans.empty()) return std::optional<Plan>();
  if (plans.size() > 1) {
    return Conflict("job " + Quote(job) + " of dataset " + Quote(dataset) + " has " +
                    std::to_string(plans.size()) + " plans (" + Quote(plans[0].ref) + ", " +
                    Quote(plans[1].ref) + "); delete the job's refs and run it again");
  }
  return std::optional<Plan>(std::move(plans[0]));
}

Result<std::optional<ObjectId>> ReadOptionalRef(Store& store, const std::string& name) {
  auto r = store.ReadRef(name);
  if (r.ok()) return std::optional<ObjectId>(r->target);
  if (r.status().code() == StatusCode::kNotFound) return std::optional<ObjectId>();
  return r.status();
}

Result<Plan> ReadOrCreatePlan(Store& store, std::string_view dataset, std::string_view job,
                              std::string_view branch, uint32_t of) {
  for (int attempt = 0; attempt < 10; ++attempt) {
    ASSIGN_OR_RETURN(std::optional<Plan> plan, ReadPlan(store, dataset, job));
    if (plan) return std::move(*plan);
    auto head = store.ReadRef(dataset::BranchRef(dataset, branch));
    if (!head.ok()) {
      if (head.status().code() == StatusCode::kNotFound) {
        return NotFound("dataset " + Quote(dataset) + " has no branch " + Quote(branch) + " in " +
                        store.uri());
      }
      return head.status();
    }
    const std::string name =
        PlanPrefix(dataset, job) + std::string(branch) + "-of-" + std::to_string(of);
    Status s = store.CreateRef(name, head->target);
    if (!s.ok() && s.code() != StatusCode::kAlreadyExists) return s;
  }
  return Conflict("job " + Quote(job) + ": cannot read or create its plan");
}

Status MissingShards(std::string_view dataset, std::string_view job, const JobStatus& status) {
  std::vector<uint32_t> missing;
  size_t j = 0;
  for (uint32_t n = 0; n < status.of; ++n) {
    if (j < status.finished.size() && status.finished[j] == n) {
      ++j;
    } else {
      missing.push_back(n);
    }
  }
  std::string list;
  for (size_t i = 0; i < missing.size() && i < 20; ++i) {
    list += (i == 0 ? "" : ", ") + std::to_string(missing[i]);
  }
  if (missing.size() > 20) list += ", ...";
  return NotFound("job " + Quote(job) + ": " + (missing.size() == 1 ? "shard " : "shards ") + list +
                  " of " + std::to_string(status.of) + (missing.size() == 1 ? " has" : " have") +
                  " not finished (no ref " + ShardPrefix(dataset, job) + "N); run " +
                  (missing.size() == 1 ? "it" : "them") + " again, then commit");
}

}  // namespace jobs_internal

using jobs_internal::CheckCount;
using jobs_internal::CommittedRef;
using jobs_internal::JobPrefix;
using jobs_internal::ParseDecimal;
using jobs_internal::Plan;
using jobs_internal::ReadOptionalRef;
using jobs_internal::ReadPlan;
using jobs_internal::ShardPrefix;

namespace {

constexpr std::string_view kAllocatorKind = "dreamdb.anchor-allocator";
constexpr uint64_t kAllocatorFormat = 1;
constexpr uint64_t kMaxReserve = uint64_t{1} << 32;
constexpr int kMaxReserveAttempts = 1000;

std::string AllocatorRef(std::string_view dataset) {
  return std::string(dataset) + "/anchors/allocator";
}
std::string WorkBranch(std::string_view job, uint32_t shard) {
  return "jobs/" + std::string(job) + "/shard-" + std::to_string(shard);
}

std::optional<std::string> GetEnv(std::string_view name) {
  const char* v = std::getenv(std::string(name).c_str());
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

Result<uint64_t> EnvNumber(std::string_view name, const std::string& value) {
  auto v = ParseDecimal(value);
  if (!v) {
    return InvalidArgument(std::string(name) + "=" + Quote(value) +
                           " is not a non-negative decimal integer");
  }
  return *v;
}

Result<dataset::Manifest> ManifestOf(Store& store, const ObjectId& manifest) {
  ASSIGN_OR_RETURN(Bytes bytes, store.Get(manifest));
  return dataset::DecodeManifest(bytes);
}
Result<uint64_t> NextAnchorOf(Store& store, const ObjectId& manifest) {
  ASSIGN_OR_RETURN(dataset::Manifest m, ManifestOf(store, manifest));
  return m.next_anchor;
}
Result<uint64_t> CountOf(Store& store, const ObjectId& manifest) {
  ASSIGN_OR_RETURN(dataset::Manifest m, ManifestOf(store, manifest));
  return m.count;
}

}  // namespace

Result<ShardIndex> ResolveShardIndex(const std::optional<std::string>& shard_flag,
                                     const std::optional<std::string>& of_flag,
                                     const EnvLookup& env_in) {
  const EnvLookup env = env_in ? env_in : EnvLookup(GetEnv);
  std::optional<uint64_t> of;
  if (of_flag) {
    of = ParseDecimal(*of_flag);
    if (!of) return InvalidArgument("--of " + Quote(*of_flag) + ": expected a decimal integer");
    RETURN_IF_ERROR(CheckCount(*of, "--of"));
  }
  ShardIndex out;
  if (shard_flag) {
    auto n = ParseDecimal(*shard_flag);
    if (!n) {
      return InvalidArgument("--shard " + Quote(*shard_flag) + ": expected a decimal integer");
    }
    if (!of) {
      return InvalidArgument("--shard " + *shard_flag + " needs --of M (the number of shards)");
    }
    if (*n >= *of) {
      return InvalidArgument("--shard " + std::to_string(*n) + " is not below --of " +
                             std::to_string(*of) + " (shards are numbered 0..M-1)");
    }
    out.shard = static_cast<uint32_t>(*n);
    out.of = static_cast<uint32_t>(*of);
    out.source = "--shard/--of";
    return out;
  }
  if (auto id_text = env("SLURM_ARRAY_TASK_ID")) {
    ASSIGN_OR_RETURN(uint64_t id, EnvNumber("SLURM_ARRAY_TASK_ID", *id_text));
    auto min_text = env("SLURM_ARRAY_TASK_MIN");
    auto count_text = env("SLURM_ARRAY_TASK_COUNT");
    if (!min_text || !count_text) {
      return InvalidArgument(
          "SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_MIN or SLURM_ARRAY_TASK_COUNT is "
          "not; give --shard N --of M");
    }
    ASSIGN_OR_RETURN(uint64_t min, EnvNumber("SLURM_ARRAY_TASK_MIN", *min_text));
    ASSIGN_OR_RETURN(uint64_t count, EnvNumber("SLURM_ARRAY_TASK_COUNT", *count_text));
    uint64_t step = 1;
    if (auto step_text = env("SLURM_ARRAY_TASK_STEP")) {
      ASSIGN_OR_RETURN(step, EnvNumber("SLURM_ARRAY_TASK_STEP", *step_text));
      if (step == 0) return InvalidArgument("SLURM_ARRAY_TASK_STEP=0 is not a valid step");
    }
    const std::string vars = "SLURM_ARRAY_TASK_ID=" + *id_text + ", _MIN=" + *min_text +
                             ", _STEP=" + std::to_string(step) + ", _COUNT=" + *count_text;
    RETURN_IF_ERROR(CheckCount(count, "SLURM_ARRAY_TASK_COUNT"));
    if (id < min || (id - min) % step != 0 || (id - min) / step >= count) {
      return InvalidArgument("the Slurm array is not a range MIN, MIN+STEP, ... (" + vars +
                             "); give --shard N --of M");
    }
    if (of && *of != count) {
      return InvalidArgument(
          "--of " + std::to_string(*of) +
          " differs from the Slurm array's SLURM_ARRAY_TASK_COUNT=" + *count_text);
    }
    out.shard = static_cast<uint32_t>((id - min) / step);
    out.of = static_cast<uint32_t>(count);
    out.source = vars;
    return out;
  }
  if (auto index_text = env("JOB_COMPLETION_INDEX")) {
    ASSIGN_OR_RETURN(uint64_t index, EnvNumber("JOB_COMPLETION_INDEX", *index_text));
    std::string of_source = "--of";
    if (!of) {
      auto count_text = env("DREAMDB_SHARD_COUNT");
      if (!count_text) {
        return InvalidArgument(
            "JOB_COMPLETION_INDEX is set but the number of shards is not: give --of M or set "
            "DREAMDB_SHARD_COUNT to the Job's completions");
      }
      ASSIGN_OR_RETURN(uint64_t count, EnvNumber("DREAMDB_SHARD_COUNT", *count_text));
      RETURN_IF_ERROR(CheckCount(count, "DREAMDB_SHARD_COUNT"));
      of = count;
      of_source = "DREAMDB_SHARD_COUNT";
    }
    if (index >= *of) {
      return InvalidArgument("JOB_COMPLETION_INDEX=" + *index_text + " is not below " + of_source +
                             " " + std::to_string(*of));
    }
    out.shard = static_cast<uint32_t>(index);
    out.of = static_cast<uint32_t>(*of);
    out.source =
        "JOB_COMPLETION_INDEX=" + *index_text + ", " + of_source + "=" + std::to_string(*of);
    return out;
  }
  if (of) {
    return InvalidArgument("--of " + *of_flag +
                           " needs --shard N (or a Slurm array / Kubernetes Indexed Job)");
  }
  return NotFound(
      "no shard index: give --shard N --of M, or run as a Slurm array task "
      "(SLURM_ARRAY_TASK_ID) or a Kubernetes Indexed Job pod (JOB_COMPLETION_INDEX)");
}

Status ValidateJobId(std::string_view job) {
  auto bad = [&](const std::string& why) {
    return InvalidArgument("job id " + Quote(job) + ": " + why);
  };
  if (job.empty()) return bad("empty");
  if (job.size() > 64) return bad("longer than 64 bytes");
  if (job[0] == '.') return bad("starts with '.'");
  for (char c : job) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return bad("only A-Z a-z 0-9 . _ - are allowed");
  }
  if (job.ends_with(".lock")) return bad("ends with '.lock'");
  return Status::Ok();
}

ByteRange ShardByteRange(uint64_t size, uint32_t shard, uint32_t of) {
  auto at = [&](uint64_t k) {
    // floor(k * size / of) without overflow: size < 2^64, k <= of <= 2^16.
    return static_cast<uint64_t>((static_cast<unsigned __int128>(k) * size) / of);
  };
  return {at(shard), at(uint64_t{shard} + 1)};
}

Result<Bytes> EncodeAnchorAllocator(uint64_t next) {
  cbor::Map m;
  m.Set("kind", cbor::Value::Text(std::string(kAllocatorKind)));
  m.Set("format", cbor::Value::UInt(kAllocatorFormat));
  m.Set("next", cbor::Value::UInt(next));
  return cbor::Encode(cbor::Value::FromMap(std::move(m)));
}

Result<uint64_t> DecodeAnchorAllocator(ByteView bytes) {
  ASSIGN_OR_RETURN(cbor::Value v, cbor::Decode(bytes));
  ASSIGN_OR_RETURN(const cbor::Map* m, v.AsMap("anchor allocator"));
  ASSIGN_OR_RETURN(const cbor::Value* kind, cbor::Require(*m, "kind"));
  ASSIGN_OR_RETURN(std::string_view k, kind->AsText("kind"));
  if (k != kAllocatorKind) {
    return Corrupt("expected a " + std::string(kAllocatorKind) + " object, got " + Quote(k));
  }
  ASSIGN_OR_RETURN(const cbor::Value* format, cbor::Require(*m, "format"));
  ASSIGN_OR_RETURN(uint64_t f, format->AsUInt("format"));
  if (f == 0) return Corrupt(std::string(kAllocatorKind) + ": format 0 is not valid");
  if (f > kAllocatorFormat) {
    return Unsupported(std::string(kAllocatorKind) + " format " + std::to_string(f) +
                       " is newer than this reader (knows up to " +
                       std::to_string(kAllocatorFormat) + "); upgrade DreamDB");
  }
  ASSIGN_OR_RETURN(const cbor::Value* next, cbor::Require(*m, "next"));
  return next->AsUInt("anchor allocator next");
}

Result<uint64_t> ReserveAnchors(Store& store, std::string_view dataset, uint64_t n,
                                uint64_t floor) {
  if (n == 0 || n > kMaxReserve) {
    return InvalidArgument("cannot reserve " + std::to_string(n) + " anchors: 1..2^32 at a time");
  }
  const std::string ref = AllocatorRef(dataset);
  for (int attempt = 0; attempt < kMaxReserveAttempts; ++attempt) {
    ASSIGN_OR_RETURN(std::optional<ObjectId> current, ReadOptionalRef(store, ref));
    uint64_t next = 0;
    if (current) {
      ASSIGN_OR_RETURN(Bytes bytes, store.Get(*current));
      auto decoded = DecodeAnchorAllocator(bytes);
      if (!decoded.ok()) return decoded.status().WithContext("ref " + Quote(ref));
      next = *decoded;
    }
    const uint64_t first = std::max(next, floor);
    if (first > UINT64_MAX - 1 - n) {
      return InvalidArgument("cannot reserve " + std::to_string(n) +
                             " anchors: the anchor space above " + std::to_string(first) +
                             " is exhausted; give the records anchors explicitly");
    }
    ASSIGN_OR_RETURN(Bytes bytes, EncodeAnchorAllocator(first + n));
    ASSIGN_OR_RETURN(ObjectId id, store.Put(bytes));
    Status s = current ? store.UpdateRef(ref, *current, id) : store.CreateRef(ref, id);
    if (s.ok()) return first;
    if (s.code() != StatusCode::kConflict && s.code() != StatusCode::kAlreadyExists &&
        s.code() != StatusCode::kNotFound) {
      return s;
    }
  }
  return Conflict("cannot reserve anchors of dataset " + Quote(dataset) + ": " +
                  std::to_string(kMaxReserveAttempts) + " compare-and-swap attempts lost");
}

Result<std::optional<uint64_t>> ReserveAnchorsIfAllocated(Store& store, std::string_view dataset,
                                                          uint64_t n, uint64_t floor) {
  ASSIGN_OR_RETURN(std::optional<ObjectId> current, ReadOptionalRef(store, AllocatorRef(dataset)));
  if (!current) return std::optional<uint64_t>();
  if (n > kMaxReserve || floor > UINT64_MAX - 1 - n) return std::optional<uint64_t>();
  auto first = ReserveAnchors(store, dataset, n, floor);
  if (!first.ok()) {
    if (first.status().code() == StatusCode::kInvalidArgument) return std::optional<uint64_t>();
    return first.status();
  }
  return std::optional<uint64_t>(*first);
}

// ---------------------------------------------------------------------------------------

ShardRun::~ShardRun() = default;

Result<std::unique_ptr<ShardRun>> ShardRun::Begin(std::shared_ptr<Store> store,
                                                  std::string_view dataset, std::string_view job,
                                                  std::string_view branch,
                                                  const ShardIndex& index) {
  RETURN_IF_ERROR(dataset::ValidateDatasetName(dataset));
  RETURN_IF_ERROR(ValidateJobId(job));
  RETURN_IF_ERROR(dataset::ValidateBranchName(branch));
  RETURN_IF_ERROR(CheckCount(index.of, index.source));
  if (index.shard >= index.of) {
    return InvalidArgument("shard " + std::to_string(index.shard) + " is not below " +
                           std::to_string(index.of));
  }
  std::unique_ptr<ShardRun> run(new ShardRun());
  run->store_ = store;
  run->dataset_ = std::string(dataset);
  run->job_ = std::string(job);
  run->index_ = index;
  const std::string result_ref = ShardPrefix(dataset, job) + std::to_string(index.shard);

  ASSIGN_OR_RETURN(std::optional<ObjectId> trained,
                   ReadOptionalRef(*store, jobs_internal::IndexRef(dataset, job)));
  if (trained) {
    return InvalidArgument("job " + Quote(job) + " of dataset " + Quote(dataset) +
                           " is an index build (§19.10), not a sharded ingest; choose another "
                           "job id");
  }
  // The plan: the first shard fixes the base; the others check they agree with it.
  ASSIGN_OR_RETURN(Plan plan_read,
                   jobs_internal::ReadOrCreatePlan(*store, dataset, job, branch, index.of));
  const Plan* plan = &plan_read;
  if (plan->branch != branch || plan->of != index.of) {
    return InvalidArgument("job " + Quote(job) + " was planned as branch " + Quote(plan->branch) +
                           " with " + std::to_string(plan->of) +
                           " shards; this shard says branch " + Quote(branch) + " with " +
                           std::to_string(index.of) + " (" + index.source + ")");
  }
  run->base_ = plan->base;

  ASSIGN_OR_RETURN(std::optional<ObjectId> result, ReadOptionalRef(*store, result_ref));
  if (result) {
    run->done_ = true;
    run->result_ = *result;
    return run;
  }
  ASSIGN_OR_RETURN(run->floor_, NextAnchorOf(*store, run->base_));

  // The work branch, at the base (a crashed run's commits are dropped).
  run->work_branch_ = WorkBranch(job, index.shard);
  const std::string work_ref = dataset::BranchRef(dataset, run->work_branch_);
  for (int attempt = 0;; ++attempt) {
    ASSIGN_OR_RETURN(std::optional<ObjectId> at, ReadOptionalRef(*store, work_ref));
    Status s = !at                 ? store->CreateRef(work_ref, run->base_)
               : *at == run->base_ ? Status::Ok()
                                   : store->UpdateRef(work_ref, *at, run->base_);
    if (s.ok()) break;
    if (attempt >= 10 ||
        (s.code() != StatusCode::kConflict && s.code() != StatusCode::kAlreadyExists)) {
      return s.WithContext("job " + Quote(job) + " shard " + std::to_string(index.shard));
    }
  }
  ASSIGN_OR_RETURN(run->work_, Dataset::Open(store, dataset, run->work_branch_));
  return run;
}

Result<uint64_t> ShardRun::Reserve(uint64_t n) {
  return ReserveAnchors(*store_, dataset_, n, floor_);
}

Status ShardRun::Finish() {
  if (done_) return Status::Ok();
  if (!work_) return Internal("shard run has no work branch");
  // The branch's head in the store: other handles on the work branch may have committed.
  const std::string work_ref = dataset::BranchRef(dataset_, work_branch_);
  ASSIGN_OR_RETURN(RefValue work_head, store_->ReadRef(work_ref));
  result_ = work_head.target;
  const std::string result_ref = ShardPrefix(dataset_, job_) + std::to_string(index_.shard);
  Status s = store_->CreateRef(result_ref, result_);
  if (s.code() == StatusCode::kAlreadyExists) {
    // Another run of this shard finished first: its result stands.
    ASSIGN_OR_RETURN(RefValue r, store_->ReadRef(result_ref));
    result_ = r.target;
  } else if (!s.ok()) {
    return s;
  }
  done_ = true;
  work_.reset();
  Status d = store_->DeleteRef(work_ref, work_head.target);
  if (!d.ok() && d.code() != StatusCode::kNotFound && d.code() != StatusCode::kConflict) return d;
  return Status::Ok();
}

Result<JobStatus> ReadJobStatus(Store& store, std::string_view dataset, std::string_view job) {
  RETURN_IF_ERROR(dataset::ValidateDatasetName(dataset));
  RETURN_IF_ERROR(ValidateJobId(job));
  ASSIGN_OR_RETURN(std::optional<Plan> plan, ReadPlan(store, dataset, job));
  if (!plan) {
    return NotFound("job " + Quote(job) + " of dataset " + Quote(dataset) +
                    " has no plan: no shard has run");
  }
  JobStatus out;
  out.branch = plan->branch;
  out.of = plan->of;
  out.base = plan->base;
  const std::string prefix = ShardPrefix(dataset, job);
  RETURN_IF_ERROR(store.ListRefs(prefix, [&](const RefValue& r) {
    auto n = ParseDecimal(std::string_view(r.name).substr(prefix.size()));
    if (n && *n < plan->of) out.finished.push_back(static_cast<uint32_t>(*n));
    return true;
  }));
  std::sort(out.finished.begin(), out.finished.end());
  ASSIGN_OR_RETURN(out.committed, ReadOptionalRef(store, CommittedRef(dataset, job)));
  ASSIGN_OR_RETURN(out.trained, ReadOptionalRef(store, jobs_internal::IndexRef(dataset, job)));
  return out;
}

Result<JobCommitReport> CommitJob(std::shared_ptr<Store> store, std::string_view dataset,
                                  std::string_view job, const CommitOptions& options) {
  ASSIGN_OR_RETURN(JobStatus status, ReadJobStatus(*store, dataset, job));
  JobCommitReport report;
  report.branch = status.branch;
  report.shards = status.of;
  if (status.trained) {
    // An index-build job (§19.10): its commit publishes an index, not records.
    ASSIGN_OR_RETURN(IndexJobReport r, CommitIndexJob(store, dataset, job, {}, options));
    report.already_committed = r.already_done;
    report.manifest = r.manifest;
    report.info = r.info;
    report.field = r.field;
    report.index = r.index;
    return report;
  }
  if (status.committed) {
    report.already_committed = true;
    report.manifest = *status.committed;
    report.info.manifest = *status.committed;
    report.info.attempts = 0;
    return report;
  }
  if (status.finished.size() != status.of)
    return jobs_internal::MissingShards(dataset, job, status);
  std::vector<std::string> sources;
  const std::string prefix = ShardPrefix(dataset, job);
  ASSIGN_OR_RETURN(uint64_t base_count, CountOf(*store, status.base));
  for (uint32_t n = 0; n < status.of; ++n) {
    ASSIGN_OR_RETURN(RefValue r, store->ReadRef(prefix + std::to_string(n)));
    sources.push_back(r.target.ToString());
    ASSIGN_OR_RETURN(uint64_t count, CountOf(*store, r.target));
    report.added += count > base_count ? count - base_count : 0;
  }
  ASSIGN_OR_RETURN(auto ds, Dataset::Open(store, dataset, status.branch));
  MergeOptions merge;
  merge.policy = MergePolicy::kFail;
  merge.message = options.message.empty()
                      ? "commit job " + std::string(job) + " (" + std::to_string(status.of) +
                            (status.of == 1 ? " shard)" : " shards)")
                      : options.message;
  merge.writer = options.writer;
  MergeReport merge_report;
  auto info = ds->MergeMany(sources, merge, &merge_report);
  if (!info.ok()) return info.status().WithContext("commit job " + Quote(job));
  report.info = *info;
  report.manifest = ds->head();
  Status s = store->CreateRef(CommittedRef(dataset, job), report.manifest);
  if (s.code() == StatusCode::kAlreadyExists) {
    // A concurrent commit of the same job recorded it first; ours merged nothing new.
    ASSIGN_OR_RETURN(RefValue r, store->ReadRef(CommittedRef(dataset, job)));
    report.manifest = r.target;
  } else if (!s.ok()) {
    return s;
  }
  return report;
}

Result<JobRemoveReport> RemoveJob(Store& store, std::string_view dataset, std::string_view job,
                                  bool abandon) {
  RETURN_IF_ERROR(dataset::ValidateDatasetName(dataset));
  RETURN_IF_ERROR(ValidateJobId(job));
  // The job's refs, and the work branches shards left behind (crashed or running).
  std::vector<RefValue> refs;
  RETURN_IF_ERROR(store.ListRefs(JobPrefix(dataset, job), [&](const RefValue& r) {
    refs.push_back(r);
    return true;
  }));
  const std::string work_prefix = dataset::BranchRef(dataset, "jobs/" + std::string(job) + "/");
  RETURN_IF_ERROR(store.ListRefs(work_prefix, [&](const RefValue& r) {
    refs.push_back(r);
    return true;
  }));
  if (refs.empty()) {
    return NotFound("job " + Quote(job) + " of dataset " + Quote(dataset) +
                    " has no refs: nothing to remove");
  }
  JobRemoveReport report;
  const std::string committed = CommittedRef(dataset, job);
  report.committed =
      std::any_of(refs.begin(), refs.end(), [&](const RefValue& r) { return r.name == committed; });
  if (!report.committed && !abandon) {
    return InvalidArgument(
        "job " + Quote(job) + " of dataset " + Quote(dataset) +
        " was not committed: removing it drops what its shards wrote; commit it first, or "
        "abandon it (`dreamdb job rm --abandon`), with no shard of it still running");
  }
  // The committed ref goes last: a removal cut short leaves a job that still says it was
  // committed (so it is never committed twice), and running it again finishes.
  std::stable_partition(refs.begin(), refs.end(),
                        [&](const RefValue& r) { return r.name != committed; });
  for (const RefValue& r : refs) {
    Status s = store.DeleteRef(r.name, r.target);
    if (s.code() == StatusCode::kNotFound) continue;  // removed concurrently
    if (!s.ok()) return s.WithContext("remove job " + Quote(job));
    if (r.name.starts_with(work_prefix)) {
      ++report.work_branches;
    } else {
      ++report.refs;
    }
  }
  return report;
}

}  // namespace dreamdb
