// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// The sharded index build (spec/14-semantics.md §19.10, spec/21-spatial-index.md §8.8):
// a train stage (the model, as Dataset::BuildIndex trains it), M shards that assign and
// encode an anchor range each, and one commit that joins the shards' buckets cell by cell
// and publishes the index in one compare-and-swap.

#include <algorithm>
#include <atomic>
#include <utility>

#include "dreamdb/jobs.h"
#include "dreamdb/quote.h"
#include "src/dataset/dataset_impl.h"
#include "src/dataset/index/internal.h"
#include "src/dataset/index/parallel.h"
#include "src/dataset/jobs_internal.h"
#include "src/dataset/manifest.h"

namespace dreamdb {
namespace {

using jobs_internal::CommittedRef;
using jobs_internal::IndexRef;
using jobs_internal::Plan;
using jobs_internal::ReadOptionalRef;
using jobs_internal::ReadPlan;
using jobs_internal::ShardPrefix;

// The job's state once trained: its plan, base version and trained index object.
struct TrainedJob {
  Plan plan;
  std::unique_ptr<DatasetImpl> impl;  // on the plan's branch
  std::shared_ptr<const Version> base;
  ObjectId index_id;
  vindex::IndexObject ix;
  FieldSpec spec;
};

Status ValidateNames(std::string_view dataset, std::string_view job) {
  RETURN_IF_ERROR(dataset::ValidateDatasetName(dataset));
  return ValidateJobId(job);
}

// The base version of `plan`, through an impl on the plan's branch.
Result<std::pair<std::unique_ptr<DatasetImpl>, std::shared_ptr<const Version>>> OpenBase(
    const std::shared_ptr<Store>& store, std::string_view dataset, const Plan& plan) {
  auto impl = std::make_unique<DatasetImpl>(store, std::string(dataset), plan.branch);
  ASSIGN_OR_RETURN(auto base, impl->LoadVersion(plan.base));
  impl->set_current(base);
  return std::make_pair(std::move(impl), std::move(base));
}

// The job-state manifest of a stage (§19.10): the base's manifest with `field`'s index set
// to `ix`, the base as its one parent and one nanosecond after it. Refs name it so GC and
// verify walk the stage's objects as they walk any version; it is on no branch. The same
// stage output gives the same bytes.
Result<ObjectId> PutStageManifest(Store& store, const Version& base, const std::string& field,
                                  const ObjectId& ix, std::string message) {
  dataset::Manifest m = base.manifest;
  m.parents = {base.id};
  m.indexes[field] = ix;
  m.delta = {};
  m.time_ns = base.manifest.time_ns + 1;
  m.writer = "dreamdb index job";
  m.message = std::move(message);
  ASSIGN_OR_RETURN(Bytes bytes, dataset::EncodeManifest(m));
  return store.Put(bytes);
}

// The index object a job-state manifest names for the job's field: the one entry of its
// `indexes` that differs from its parent's (the base's).
Result<std::pair<std::string, ObjectId>> StageIndex(Store& store, const ObjectId& manifest,
                                                    const Version& base) {
  ASSIGN_OR_RETURN(Bytes bytes, store.Get(manifest));
  ASSIGN_OR_RETURN(dataset::Manifest m, dataset::DecodeManifest(bytes));
  std::optional<std::pair<std::string, ObjectId>> found;
  for (const auto& [field, id] : m.indexes) {
    auto it = base.manifest.indexes.find(field);
    if (it != base.manifest.indexes.end() && it->second == id) continue;
    if (found || m.parents.size() != 1 || m.parents[0] != base.id) {
      found.reset();
      break;
    }
    found.emplace(field, id);
  }
  if (!found) {
    return Corrupt("job-state manifest " + manifest.ToString() +
                   " does not name one index on top of its base " + base.id.ToString());
  }
  return *found;
}

// Reads a trained job (stages 2 and 3); failed_precondition when the train stage has not
// run.
Result<TrainedJob> ReadTrainedJob(const std::shared_ptr<Store>& store, std::string_view dataset,
                                  std::string_view job, std::string_view stage) {
  ASSIGN_OR_RETURN(std::optional<ObjectId> index_id,
                   ReadOptionalRef(*store, IndexRef(dataset, job)));
  ASSIGN_OR_RETURN(std::optional<Plan> plan, ReadPlan(*store, dataset, job));
  if (!index_id || !plan) {
    return NotFound("job " + Quote(job) + " of dataset " + Quote(dataset) +
                    " has no trained index (no ref " + IndexRef(dataset, job) +
                    "): run its train stage before the " + std::string(stage) +
                    " (dreamdb index build NAME FIELD --job J --train --of M)");
  }
  TrainedJob out;
  out.plan = std::move(*plan);
  ASSIGN_OR_RETURN(auto opened, OpenBase(store, dataset, out.plan));
  out.impl = std::move(opened.first);
  out.base = std::move(opened.second);
  ASSIGN_OR_RETURN(auto named, StageIndex(*store, *index_id, *out.base));
  out.index_id = named.second;
  ASSIGN_OR_RETURN(auto ix, vindex::LoadIndex(*out.impl, out.index_id));
  out.ix = *ix;
  ASSIGN_OR_RETURN(const FieldSpec* spec,
                   vindex::EmbeddingField(out.base->manifest.schema, out.ix.field, stage));
  out.spec = *spec;
  return out;
}

// Shard n of m's anchors: [⌊n·A/m⌋, ⌊(n+1)·A/m⌋) of A = the base's next_anchor, the
// last shard open-ended (§19.10).
std::pair<uint64_t, uint64_t> ShardAnchors(uint64_t next_anchor, uint32_t n, uint32_t m) {
  auto at = [&](uint64_t k) {
    return static_cast<uint64_t>(static_cast<unsigned __int128>(next_anchor) * k / m);
  };
  return {at(n), n + 1 == m ? UINT64_MAX : at(n + 1)};
}

Status GraphNotSharded() {
  return InvalidArgument(
      "index build: a graph index is built in memory on one machine and cannot be sharded; "
      "use --algorithm ivf or imi with --job, or build the graph without --job");
}

void FillReport(const TrainedJob& t, IndexJobReport* r) {
  r->field = t.ix.field;
  r->branch = t.plan.branch;
  r->of = t.plan.of;
  r->base = t.plan.base;
  r->cells = t.ix.cells;
}

}  // namespace

Result<BuildIndexOptions> StoredIndexOptions(std::shared_ptr<Store> store, std::string_view dataset,
                                             std::string_view branch, std::string_view field) {
  RETURN_IF_ERROR(dataset::ValidateDatasetName(dataset));
  RETURN_IF_ERROR(dataset::ValidateBranchName(branch));
  DatasetImpl impl(std::move(store), std::string(dataset), std::string(branch));
  ASSIGN_OR_RETURN(auto head, impl.ReadHead());
  return vindex::RebuildOptions(impl, *head, field);
}

Result<IndexJobReport> TrainIndexJob(std::shared_ptr<Store> store, std::string_view dataset,
                                     std::string_view job, std::string_view branch,
                                     std::string_view field, uint32_t of,
                                     const BuildIndexOptions& options,
                                     const BuildProgress& progress) {
  RETURN_IF_ERROR(ValidateNames(dataset, job));
  RETURN_IF_ERROR(dataset::ValidateBranchName(branch));
  RETURN_IF_ERROR(jobs_internal::CheckCount(of, "--of"));
  ASSIGN_OR_RETURN(std::optional<Plan> planned, ReadPlan(*store, dataset, job));
  if (planned) {
    // A job of this id already ran: an index build's train stage (its index ref), or a
    // sharded ingest (shard refs but no index ref), whose id cannot be reused.
    ASSIGN_OR_RETURN(std::optional<ObjectId> trained,
                     ReadOptionalRef(*store, IndexRef(dataset, job)));
    ASSIGN_OR_RETURN(JobStatus st, ReadJobStatus(*store, dataset, job));
    if (!trained && (!st.finished.empty() || st.committed)) {
      return InvalidArgument("job " + Quote(job) + " of dataset " + Quote(dataset) +
                             " is a sharded ingest, not an index build; choose another job id");
    }
  } else {
    // Nothing planned yet: check the field and options on B's head before the plan fixes
    // it as the base, so a mistyped option leaves no job behind.
    DatasetImpl head_impl(store, std::string(dataset), std::string(branch));
    auto head = head_impl.ReadHead();
    if (head.ok()) {
      ASSIGN_OR_RETURN(const FieldSpec* f,
                       vindex::EmbeddingField((*head)->manifest.schema, field, "index build"));
      ASSIGN_OR_RETURN(const vindex::BuildSettings checked,
                       vindex::ResolveBuildSettings(*f, options, "index build"));
      if (checked.graph) return GraphNotSharded();
    }
  }
  // The plan: the train stage fixes the base (branch B's head now).
  ASSIGN_OR_RETURN(const Plan read,
                   jobs_internal::ReadOrCreatePlan(*store, dataset, job, branch, of));
  const Plan* plan = &read;
  if (plan->branch != branch || plan->of != of) {
    return InvalidArgument("job " + Quote(job) + " was planned as branch " + Quote(plan->branch) +
                           " with " + std::to_string(plan->of) +
                           " shards; this train stage says branch " + Quote(branch) + " with " +
                           std::to_string(of));
  }
  ASSIGN_OR_RETURN(auto opened, OpenBase(store, dataset, *plan));
  DatasetImpl& impl = *opened.first;
  const std::shared_ptr<const Version>& base = opened.second;
  ASSIGN_OR_RETURN(const FieldSpec* spec_ptr,
                   vindex::EmbeddingField(base->manifest.schema, field, "index build"));
  const FieldSpec spec = *spec_ptr;
  IndexJobReport report;
  report.field = spec.name;
  report.branch = plan->branch;
  report.of = plan->of;
  report.base = plan->base;
  const std::string index_ref = IndexRef(dataset, job);
  ASSIGN_OR_RETURN(std::optional<ObjectId> trained, ReadOptionalRef(*store, index_ref));
  if (trained) {
    ASSIGN_OR_RETURN(auto named, StageIndex(*store, *trained, *base));
    if (named.first != spec.name) {
      return InvalidArgument("job " + Quote(job) + " trains field " + Quote(named.first) +
                             "; this train stage says " + Quote(spec.name));
    }
    ASSIGN_OR_RETURN(auto ix, vindex::LoadIndex(impl, named.second));
    report.already_done = true;
    report.index = named.second;
    report.cells = ix->cells;
    return report;
  }
  ASSIGN_OR_RETURN(const vindex::BuildSettings settings,
                   vindex::ResolveBuildSettings(spec, options, "index build"));
  if (settings.graph) return GraphNotSharded();
  ASSIGN_OR_RETURN(vindex::TrainedIndex t,
                   vindex::TrainIvf(impl, *base, spec, options, settings, progress));
  // The trained index object: the settings and model, every cell empty.
  uint64_t objects = 1;
  RETURN_IF_ERROR(
      vindex::PutDirPages(impl, std::vector<std::vector<ObjectId>>(t.ix.cells), &t.ix, &objects));
  ASSIGN_OR_RETURN(Bytes ib, vindex::EncodeIndex(t.ix));
  ASSIGN_OR_RETURN(report.index, store->Put(ib));
  ASSIGN_OR_RETURN(const ObjectId state,
                   PutStageManifest(*store, *base, spec.name, report.index,
                                    "job " + std::string(job) + ": trained index of " + spec.name));
  Status s = store->CreateRef(index_ref, state);
  if (s.code() == StatusCode::kAlreadyExists) {
    // Another run trained first; with the same options it wrote the same objects.
    ASSIGN_OR_RETURN(RefValue r, store->ReadRef(index_ref));
    if (r.target != state) {
      return Conflict("job " + Quote(job) + " was trained concurrently with other options (" +
                      index_ref + " names " + r.target.ToString() + ", this run made " +
                      state.ToString() + ")");
    }
    report.already_done = true;
  } else if (!s.ok()) {
    return s;
  }
  report.cells = t.ix.cells;
  return report;
}

Result<IndexJobReport> RunIndexShard(std::shared_ptr<Store> store, std::string_view dataset,
                                     std::string_view job, const ShardIndex& index,
                                     const BuildIndexOptions& options,
                                     const BuildProgress& progress) {
  RETURN_IF_ERROR(ValidateNames(dataset, job));
  RETURN_IF_ERROR(jobs_internal::CheckCount(index.of, index.source));
  if (index.shard >= index.of) {
    return InvalidArgument("shard " + std::to_string(index.shard) + " is not below " +
                           std::to_string(index.of));
  }
  if (options.chunk_rows == 0) return InvalidArgument("index build: chunk_rows must be >= 1");
  ASSIGN_OR_RETURN(TrainedJob t, ReadTrainedJob(store, dataset, job, "index shard"));
  if (t.plan.of != index.of) {
    return InvalidArgument("job " + Quote(job) + " was planned with " + std::to_string(t.plan.of) +
                           " shards; this shard says " + std::to_string(index.of) + " (" +
                           index.source + ")");
  }
  IndexJobReport report;
  FillReport(t, &report);
  std::tie(report.start, report.end) =
      ShardAnchors(t.base->manifest.next_anchor, index.shard, index.of);
  const std::string result_ref = ShardPrefix(dataset, job) + std::to_string(index.shard);
  ASSIGN_OR_RETURN(std::optional<ObjectId> result, ReadOptionalRef(*store, result_ref));
  if (result) {
    ASSIGN_OR_RETURN(auto named, StageIndex(*store, *result, *t.base));
    ASSIGN_OR_RETURN(auto ix, vindex::LoadIndex(*t.impl, named.second));
    report.already_done = true;
    report.index = named.second;
    report.entries = ix->entries;
    report.buckets = ix->buckets;
    return report;
  }
  ASSIGN_OR_RETURN(vindex::ModelPtr model, vindex::LoadModel(*t.impl, t.ix.model));
  // The shard's index object: the trained one with the shard's buckets.
  vindex::IndexObject ix = t.ix;
  std::vector<std::vector<ObjectId>> dir;
  uint64_t objects = 0;
  const uint64_t span = report.end == UINT64_MAX ? t.base->manifest.next_anchor - report.start
                                                 : report.end - report.start;
  RETURN_IF_ERROR(vindex::AssignRange(*t.impl, *t.base, t.spec, *model, options, report.start,
                                      report.end, span, &ix, &dir, &objects, progress));
  RETURN_IF_ERROR(vindex::PutDirPages(*t.impl, std::move(dir), &ix, &objects));
  ASSIGN_OR_RETURN(Bytes ib, vindex::EncodeIndex(ix));
  ASSIGN_OR_RETURN(report.index, store->Put(ib));
  ASSIGN_OR_RETURN(
      const ObjectId state,
      PutStageManifest(*store, *t.base, t.ix.field, report.index,
                       "job " + std::string(job) + ": shard " + std::to_string(index.shard) +
                           " of " + std::to_string(index.of) + " of index " + t.ix.field));
  Status s = store->CreateRef(result_ref, state);
  if (s.code() == StatusCode::kAlreadyExists) {
    // Another run of this shard finished first: the same buckets, its result stands.
    ASSIGN_OR_RETURN(RefValue r, store->ReadRef(result_ref));
    ASSIGN_OR_RETURN(auto named, StageIndex(*store, r.target, *t.base));
    report.index = named.second;
    report.already_done = true;
  } else if (!s.ok()) {
    return s;
  }
  report.entries = ix.entries;
  report.buckets = ix.buckets;
  return report;
}

Result<IndexJobReport> CommitIndexJob(std::shared_ptr<Store> store, std::string_view dataset,
                                      std::string_view job, const BuildIndexOptions& options,
                                      const CommitOptions& commit, const BuildProgress& progress) {
  RETURN_IF_ERROR(ValidateNames(dataset, job));
  ASSIGN_OR_RETURN(TrainedJob t, ReadTrainedJob(store, dataset, job, "commit"));
  IndexJobReport report;
  FillReport(t, &report);
  ASSIGN_OR_RETURN(JobStatus status, ReadJobStatus(*store, dataset, job));
  if (status.committed) {
    report.already_done = true;
    report.manifest = *status.committed;
    report.info.manifest = *status.committed;
    report.info.attempts = 0;
    ASSIGN_OR_RETURN(auto version, t.impl->LoadVersion(*status.committed));
    if (auto it = version->manifest.indexes.find(t.ix.field);
        it != version->manifest.indexes.end()) {
      report.index = it->second;
    }
    return report;
  }
  if (status.finished.size() != status.of) {
    return jobs_internal::MissingShards(dataset, job, status);
  }
  DatasetImpl& impl = *t.impl;
  std::vector<std::shared_ptr<const vindex::IndexObject>> shards(status.of);
  for (uint32_t n = 0; n < status.of; ++n) {
    ASSIGN_OR_RETURN(RefValue r, store->ReadRef(ShardPrefix(dataset, job) + std::to_string(n)));
    ASSIGN_OR_RETURN(auto named, StageIndex(*store, r.target, *t.base));
    ASSIGN_OR_RETURN(shards[n], vindex::LoadIndex(impl, named.second));
    if (named.first != t.ix.field || shards[n]->model != t.ix.model ||
        shards[n]->cells != t.ix.cells || shards[n]->pages.size() != t.ix.pages.size()) {
      return Corrupt("job " + Quote(job) + ": shard " + std::to_string(n) + "'s index object " +
                     named.second.ToString() + " does not use the job's trained model " +
                     t.ix.model.ToString());
    }
  }
  ASSIGN_OR_RETURN(vindex::ModelPtr model, vindex::LoadModel(impl, t.ix.model));
  // Per cell, the shards' buckets in shard (= anchor) order joined into one bucket: the
  // bucket a one-machine build writes for the cell (§8.8). A cell one shard alone fills
  // keeps that shard's bucket.
  vindex::IndexObject ix = t.ix;
  std::vector<std::vector<ObjectId>> dir(ix.cells);
  uint64_t objects = 0;
  for (const auto& s : shards) ix.entries += s->entries;
  for (size_t p = 0; p < ix.pages.size(); ++p) {
    if (progress) progress("join", p, ix.pages.size());
    std::vector<std::shared_ptr<const vindex::DirPage>> pages(status.of);
    for (uint32_t n = 0; n < status.of; ++n) {
      ASSIGN_OR_RETURN(pages[n], vindex::LoadPage(impl, shards[n]->pages[p]));
    }
    const uint32_t first = pages[0]->first;
    const size_t in_page = pages[0]->buckets.size();
    std::atomic<uint64_t> written{0};
    const Status joined = vindex::ParallelFor(in_page, 2, [&](size_t i) -> Status {
      std::vector<ObjectId> parts;
      for (uint32_t n = 0; n < status.of; ++n) {
        if (i >= pages[n]->buckets.size() || pages[n]->first != first) {
          return Corrupt("job " + Quote(job) + ": shard " + std::to_string(n) +
                         "'s directory page " + std::to_string(p) + " does not match shard 0's");
        }
        const auto& ids = pages[n]->buckets[i];
        parts.insert(parts.end(), ids.begin(), ids.end());
      }
      if (parts.size() <= 1) {
        dir[first + i] = std::move(parts);
        return Status::Ok();
      }
      ASSIGN_OR_RETURN(auto buckets, vindex::FetchBuckets(impl, parts));
      vindex::Bucket b;
      b.cell = first + static_cast<uint32_t>(i);
      bool any = false;
      for (const auto& part : buckets) {
        b.anchors.insert(b.anchors.end(), part->anchors.begin(), part->anchors.end());
        b.seg_tags.insert(b.seg_tags.end(), part->seg_tags.begin(), part->seg_tags.end());
        b.rows.insert(b.rows.end(), part->rows.begin(), part->rows.end());
        if (!any) {
          b.codes = part->codes;
          any = true;
        } else {
          RETURN_IF_ERROR(model->AppendCodes(&b.codes, part->codes));
        }
      }
      ASSIGN_OR_RETURN(ObjectId id, store->Put(vindex::EncodeBucket(b)));
      written.fetch_add(1);
      dir[first + i] = {id};
      return Status::Ok();
    });
    RETURN_IF_ERROR(joined);
    objects += written.load();
  }
  for (const auto& cell : dir) ix.buckets += cell.size();
  RETURN_IF_ERROR(vindex::PutDirPages(impl, std::move(dir), &ix, &objects));
  if (progress) progress("calibrate", 0, 1);
  RETURN_IF_ERROR(vindex::Calibrate(impl, *t.base, t.spec, options, &ix, nullptr));
  if (progress) progress("calibrate", 1, 1);
  ASSIGN_OR_RETURN(Bytes ib, vindex::EncodeIndex(ix));
  ASSIGN_OR_RETURN(report.index, store->Put(ib));
  ++objects;
  // A commit that stopped after publishing the index and before recording it finds the
  // index on the branch: it records the head and lands nothing.
  ASSIGN_OR_RETURN(auto head, impl.ReadHead());
  impl.set_current(head);
  if (auto it = head->manifest.indexes.find(ix.field);
      it != head->manifest.indexes.end() && it->second == report.index) {
    report.info.manifest = head->id;
    report.info.attempts = 0;
  } else {
    CommitOptions c = commit;
    if (c.message.empty()) {
      c.message = "commit job " + std::string(job) + ": index build " + ix.field + " (" +
                  std::to_string(status.of) + (status.of == 1 ? " shard)" : " shards)");
    }
    ASSIGN_OR_RETURN(report.info, vindex::CommitBuiltIndex(impl, t.base, t.spec, report.index,
                                                           objects, progress, c));
  }
  report.manifest = report.info.manifest;
  Status s = store->CreateRef(CommittedRef(dataset, job), report.manifest);
  if (s.code() == StatusCode::kAlreadyExists) {
    ASSIGN_OR_RETURN(RefValue r, store->ReadRef(CommittedRef(dataset, job)));
    report.manifest = r.target;
  } else if (!s.ok()) {
    return s;
  }
  report.entries = ix.entries;
  report.buckets = ix.buckets;
  return report;
}

}  // namespace dreamdb
