// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Spatial-index maintenance (spec/21 §8.6, §8.7): cell balance and recall drift for
// `index status`, `index rebuild` (a fresh build with the stored settings) and
// `index step` (split overfull cells, merge tiny ones, re-encode only the touched cells).
//
// A step is staged so that each stage can later run as shards: (1) the centroid work —
// cell sizes, the cells to split and merge, k-means inside each split cell — gives a new
// centroid table, published as a new model object; (2) the reassignment of the touched
// cells' entries, which partitions by cell range; (3) one commit of the new directory
// pages and index object.

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <unordered_map>

#include "src/base/encoding.h"
#include "src/dataset/dataset_impl.h"
#include "src/dataset/index/internal.h"
#include "src/dataset/index/parallel.h"
#include "src/index/ivf.h"
#include "src/index/kernels/distance.h"
#include "src/index/partition/kmeans.h"

namespace dreamdb {

namespace vindex {

Result<std::vector<uint64_t>> CellEntries(const DatasetImpl& impl, const IndexObject& ix) {
  std::vector<uint64_t> out(ix.cells, 0);
  for (uint32_t first = 0; first < ix.cells; first += kCellsPerPage) {
    const uint32_t end = std::min<uint32_t>(ix.cells, first + kCellsPerPage);
    std::vector<uint32_t> cells(end - first);
    for (uint32_t c = first; c < end; ++c) cells[c - first] = c;
    ASSIGN_OR_RETURN(auto lists, BucketsOf(impl, ix, cells));
    std::vector<ObjectId> ids;
    std::vector<uint32_t> cell_of;
    for (size_t i = 0; i < lists.size(); ++i) {
      for (const ObjectId& id : lists[i]) {
        ids.push_back(id);
        cell_of.push_back(cells[i]);
      }
    }
    ASSIGN_OR_RETURN(auto buckets, FetchBuckets(impl, ids));
    for (size_t i = 0; i < buckets.size(); ++i) out[cell_of[i]] += buckets[i]->anchors.size();
  }
  return out;
}

Status MeasureBalance(const DatasetImpl& impl, const IndexObject& ix, IndexInfo* info) {
  ASSIGN_OR_RETURN(std::vector<uint64_t> sizes, CellEntries(impl, ix));
  // ivf: every cell should hold entries; imi/lsh leave many cells empty by design.
  const bool all = ix.algorithm == "ivf";
  uint64_t total = 0, counted = 0;
  for (uint64_t s : sizes) {
    total += s;
    if (s != 0) ++info->cells_nonempty;
    if (all || s != 0) ++counted;
    info->cell_max = std::max(info->cell_max, s);
  }
  info->balance_measured = true;
  if (counted == 0) return Status::Ok();
  const double mean = double(total) / double(counted);
  double var = 0;
  for (uint64_t s : sizes) {
    if (!all && s == 0) continue;
    var += (double(s) - mean) * (double(s) - mean);
    if (double(s) > 2 * mean) ++info->cells_over;
    if (double(s) < mean / 4) ++info->cells_under;
  }
  info->cell_mean = mean;
  info->cell_cv = mean > 0 ? std::sqrt(var / double(counted)) / mean : 0;
  return Status::Ok();
}

Status MeasureDrift(const DatasetImpl& impl, const Version& version, const FieldSpec& spec,
                    const IndexObject& ix, uint32_t queries, IndexInfo* info) {
  ASSIGN_OR_RETURN(ModelPtr model, LoadModel(impl, ix.model));
  ASSIGN_OR_RETURN(const Metric metric, MetricOf(ix.metric));
  ASSIGN_OR_RETURN(RecallSample sample,
                   SampleRecall(impl, version, spec, metric, info->live,
                                std::min<uint64_t>(queries, info->live / 2), nullptr, 2));
  if (sample.relevant == 0) return Status::Ok();
  std::vector<uint32_t> sizes;
  if (model->algorithm() != vector::IvfParams::Algorithm::kIvf) {
    ASSIGN_OR_RETURN(sizes, CellBucketCounts(impl, ix));
  }
  const uint32_t setting = DefaultSettingOf(ix, 0).nprobe;
  ASSIGN_OR_RETURN(const uint32_t recall,
                   SampleRecallAt(impl, version, spec, *model, ix, sample, setting,
                                  sizes.empty() ? nullptr : sizes.data(), 2));
  info->sample_queries = static_cast<uint32_t>(sample.self.size());
  info->sample_recall = recall / 10000.0;
  if (info->calibration_queries != 0) {
    info->recall_drift = info->calibration_recall - info->sample_recall;
  }
  return Status::Ok();
}

namespace {

// The entries of the touched cells with their stored vectors (live entries only).
struct Moved {
  std::vector<uint64_t> anchors, tags;
  std::vector<uint32_t> rows;
  std::vector<uint32_t> from;  // the old cell
  std::vector<float> data;
};

// One slot of the new centroid table.
struct Slot {
  int64_t old = -1;   // the old cell whose buckets it keeps; -1: a new cell (no buckets)
  bool free = false;  // a merged cell's slot, not yet reused
  std::vector<float> centroid;
};

// Concatenates buckets (same model) into one bucket of `cell`.
Result<Bucket> Concat(const vector::IvfModel& model, uint32_t cell,
                      const std::vector<const Bucket*>& parts) {
  Bucket out;
  out.cell = cell;
  bool first = true;
  for (const Bucket* part : parts) {
    out.anchors.insert(out.anchors.end(), part->anchors.begin(), part->anchors.end());
    out.seg_tags.insert(out.seg_tags.end(), part->seg_tags.begin(), part->seg_tags.end());
    out.rows.insert(out.rows.end(), part->rows.begin(), part->rows.end());
    if (first) {
      out.codes = part->codes;
      first = false;
    } else {
      RETURN_IF_ERROR(model.AppendCodes(&out.codes, part->codes));
    }
  }
  return out;
}

// 0 .. n - 1.
std::vector<uint32_t> AllCells(uint32_t n) {
  std::vector<uint32_t> out(n);
  for (uint32_t c = 0; c < n; ++c) out[c] = c;
  return out;
}

// One round of a step (spec/21 §8.7 steps 1-4 and the pages of step 5) on `ix`, whose
// objects are in the store: the next index object (put objects counted in *objects; not
// calibrated, not put), or nullopt when every cell is within bounds.
Result<std::optional<IndexObject>> StepRound(DatasetImpl& impl, const Version& version,
                                             const FieldSpec& spec, const IndexObject& ix,
                                             const StepIndexOptions& options, StepIndexReport* r,
                                             uint64_t* objects, const BuildProgress& progress) {
  auto phase = [&](std::string_view p, uint64_t done, uint64_t total) {
    if (progress) progress(p, done, total);
  };
  ASSIGN_OR_RETURN(ModelPtr model, LoadModel(impl, ix.model));
  ASSIGN_OR_RETURN(const Metric metric, MetricOf(ix.metric));
  const size_t dim = ix.dim;
  const uint32_t cells = ix.cells;
  // Stage 1: centroid work. Cell sizes and the target size.
  phase("plan", 0, 1);
  ASSIGN_OR_RETURN(std::vector<uint64_t> sizes, CellEntries(impl, ix));
  uint64_t total = 0;
  for (uint64_t s : sizes) total += s;
  const uint32_t declared = spec.index ? spec.index->cells : 0;
  const double target_cells =
      declared != 0 ? declared : std::max(1.0, std::round(std::sqrt(double(total))));
  const double target = double(total) / target_cells;
  std::vector<uint32_t> split, merge;
  for (uint32_t c = 0; c < cells; ++c) {
    if (double(sizes[c]) > options.split_above * target && sizes[c] >= 2) {
      split.push_back(c);
    } else if (double(sizes[c]) < options.merge_below * target) {
      merge.push_back(c);
    }
  }
  // At least one cell stays, and a merged cell needs a neighbour to go to.
  if (merge.size() >= cells) merge.resize(cells - 1);
  phase("plan", 1, 1);
  if (split.empty() && merge.empty()) return std::optional<IndexObject>();
  std::vector<char> touched(cells, 0);
  for (uint32_t c : split) touched[c] = 1;
  for (uint32_t c : merge) touched[c] = 1;
  std::vector<uint32_t> touched_cells;
  for (uint32_t c = 0; c < cells; ++c) {
    if (touched[c]) touched_cells.push_back(c);
  }
  ASSIGN_OR_RETURN(auto old_lists, BucketsOf(impl, ix, touched_cells));
  // The live entries of the touched cells and their stored vectors (stale ones dropped).
  Moved moved;
  {
    SearchOptions so;
    SearchContext ctx;
    ctx.impl = &impl;
    ctx.version = &version;
    ctx.spec = &spec;
    ctx.metric = metric;
    ctx.options = &so;
    for (size_t t = 0; t < touched_cells.size(); ++t) {
      ASSIGN_OR_RETURN(auto buckets, FetchBuckets(impl, old_lists[t]));
      std::vector<EntryList> lists;
      for (size_t b = 0; b < buckets.size(); ++b) {
        lists.push_back(
            {old_lists[t][b], &buckets[b]->anchors, &buckets[b]->seg_tags, &buckets[b]->rows});
      }
      ASSIGN_OR_RETURN(auto states, LoadLive(ctx, lists));
      std::vector<RowKey> keys;
      std::vector<std::pair<size_t, size_t>> where;
      for (size_t b = 0; b < buckets.size(); ++b) {
        for (size_t e = 0; e < buckets[b]->anchors.size(); ++e) {
          if (!states[b]->live[e]) {
            ++r->stale_dropped;
            continue;
          }
          keys.push_back(states[b]->RowOf(e));
          where.emplace_back(b, e);
        }
      }
      ASSIGN_OR_RETURN(auto vecs, LoadRows(ctx, keys));
      for (size_t i = 0; i < keys.size(); ++i) {
        const auto& v = vecs[i];
        const Bucket& b = *buckets[where[i].first];
        const size_t e = where[i].second;
        if (v == nullptr || !AllFinite(v->data(), dim) ||
            (metric == Metric::kCosine && vector::NormSqr(v->data(), dim) == 0)) {
          ++r->stale_dropped;
          continue;
        }
        moved.anchors.push_back(b.anchors[e]);
        moved.tags.push_back(b.seg_tags[e]);
        moved.rows.push_back(b.rows[e]);
        moved.from.push_back(touched_cells[t]);
        moved.data.insert(moved.data.end(), v->begin(), v->end());
      }
    }
  }
  const size_t n_moved = moved.anchors.size();
  r->entries_moved += n_moved;
  // The new centroid table: a split cell's first part takes its slot, the others take
  // freed (merged) slots, then new slots at the end; freed slots left over are filled by
  // the last cells (renumbered), so the table stays dense.
  std::vector<Slot> slots(cells);
  for (uint32_t c = 0; c < cells; ++c) {
    slots[c].old = c;
    slots[c].centroid.assign(model->centroid(c), model->centroid(c) + dim);
  }
  std::set<uint32_t> freed;
  for (uint32_t c : merge) {
    slots[c].old = -1;
    slots[c].free = true;
    freed.insert(c);
  }
  phase("split", 0, split.size());
  {
    std::map<uint32_t, std::vector<size_t>> members;
    for (size_t i = 0; i < n_moved; ++i) members[moved.from[i]].push_back(i);
    for (size_t si = 0; si < split.size(); ++si) {
      const uint32_t c = split[si];
      const std::vector<size_t>& m = members[c];
      const auto k = static_cast<uint32_t>(
          std::min<double>(std::max(2.0, std::round(double(sizes[c]) / target)), double(m.size())));
      slots[c].old = -1;  // its entries are all reassigned: a fresh cell
      if (k >= 2) {
        std::vector<float> data(m.size() * dim);
        for (size_t j = 0; j < m.size(); ++j) {
          std::memcpy(data.data() + j * dim, moved.data.data() + m[j] * dim, dim * sizeof(float));
        }
        vector::KMeansOptions ko;
        ko.seed = model->params().seed ^ (uint64_t{c} * 0x9e3779b97f4a7c15ULL);
        ko.spherical = metric == Metric::kCosine;
        ko.threads = options.threads;
        ASSIGN_OR_RETURN(std::vector<float> parts,
                         vector::TrainKMeans(data.data(), m.size(), dim, k, ko));
        const size_t got = parts.size() / dim;
        for (size_t p = 0; p < got; ++p) {
          std::vector<float> cen(parts.begin() + p * dim, parts.begin() + (p + 1) * dim);
          if (p == 0) {
            slots[c].centroid = std::move(cen);
          } else if (!freed.empty()) {
            const uint32_t f = *freed.begin();
            freed.erase(freed.begin());
            slots[f] = Slot{-1, false, std::move(cen)};
          } else {
            slots.push_back(Slot{-1, false, std::move(cen)});
          }
        }
      }
      ++r->split;
      phase("split", si + 1, split.size());
    }
  }
  r->merged += static_cast<uint32_t>(merge.size());
  while (!freed.empty()) {
    const size_t last = slots.size() - 1;
    if (slots[last].free) {
      freed.erase(static_cast<uint32_t>(last));
      slots.pop_back();
      continue;
    }
    const uint32_t f = *freed.begin();
    freed.erase(freed.begin());
    slots[f] = std::move(slots[last]);
    slots.pop_back();
  }
  const auto new_cells = static_cast<uint32_t>(slots.size());
  std::vector<float> table(size_t{new_cells} * dim);
  for (uint32_t s = 0; s < new_cells; ++s) {
    std::memcpy(table.data() + size_t{s} * dim, slots[s].centroid.data(), dim * sizeof(float));
  }
  ASSIGN_OR_RETURN(ModelPtr next_model, model->WithCentroids(table));
  const Bytes model_bytes = next_model->Serialize();
  ASSIGN_OR_RETURN(ObjectId model_id, impl.store().Put(model_bytes));
  impl.vectors()->Insert(model_id, next_model, model_bytes.size() * 2);
  ++*objects;

  // Stage 2: reassignment of the touched cells' entries to the new cells.
  phase("assign", 0, n_moved);
  std::vector<uint32_t> dest(n_moved);
  if (n_moved != 0) {
    RETURN_IF_ERROR(next_model->Assign(moved.data.data(), n_moved, dest.data(), options.threads));
  }
  std::map<uint32_t, std::vector<size_t>> by_cell;
  for (size_t i = 0; i < n_moved; ++i) by_cell[dest[i]].push_back(i);
  // Every old cell's bucket list, keyed by its new slot (untouched cells only).
  std::vector<uint32_t> kept_old;
  std::vector<uint32_t> kept_slot;
  for (uint32_t s = 0; s < new_cells; ++s) {
    if (slots[s].old >= 0) {
      kept_old.push_back(static_cast<uint32_t>(slots[s].old));
      kept_slot.push_back(s);
    }
  }
  ASSIGN_OR_RETURN(auto kept_lists, BucketsOf(impl, ix, kept_old));
  std::vector<std::vector<ObjectId>> dir(new_cells);
  for (size_t i = 0; i < kept_slot.size(); ++i) dir[kept_slot[i]] = std::move(kept_lists[i]);
  std::vector<uint32_t> work;  // slots that get written: renumbered or receiving entries
  for (uint32_t s = 0; s < new_cells; ++s) {
    const bool renumbered = slots[s].old >= 0 && static_cast<uint32_t>(slots[s].old) != s;
    if (renumbered) ++r->renumbered;
    if (renumbered || by_cell.count(s) != 0) work.push_back(s);
  }
  std::vector<uint64_t> written(work.size(), 0);
  const Status wrote = ParallelFor(work.size(), 2, [&](size_t w) -> Status {
    const uint32_t s = work[w];
    std::vector<ObjectId>& list = dir[s];
    // A renumbered cell's buckets carry the new cell number (same entries and codes).
    std::vector<std::shared_ptr<const Bucket>> olds;
    const bool renumbered = slots[s].old >= 0 && static_cast<uint32_t>(slots[s].old) != s;
    if (renumbered || list.size() + 1 >= kMaxBucketsPerCell) {
      ASSIGN_OR_RETURN(olds, FetchBuckets(impl, list));
    }
    Bucket fresh;
    auto members = by_cell.find(s);
    if (members != by_cell.end()) {
      fresh.cell = s;
      std::vector<float> cv(members->second.size() * dim);
      for (size_t j = 0; j < members->second.size(); ++j) {
        const size_t i = members->second[j];
        fresh.anchors.push_back(moved.anchors[i]);
        fresh.seg_tags.push_back(moved.tags[i]);
        fresh.rows.push_back(moved.rows[i]);
        std::memcpy(cv.data() + j * dim, moved.data.data() + i * dim, dim * sizeof(float));
      }
      ASSIGN_OR_RETURN(fresh.codes, next_model->EncodeCell(s, cv.data(), members->second.size()));
    }
    std::vector<Bucket> out;
    if (list.size() + 1 >= kMaxBucketsPerCell) {
      // As an append's compaction (spec/21 §5.5): the cell's buckets and the new entries
      // become one bucket.
      std::vector<const Bucket*> parts;
      for (const auto& b : olds) parts.push_back(b.get());
      if (members != by_cell.end()) parts.push_back(&fresh);
      ASSIGN_OR_RETURN(Bucket merged, Concat(*next_model, s, parts));
      out.push_back(std::move(merged));
      list.clear();
    } else {
      if (renumbered) {
        for (const auto& b : olds) {
          Bucket moved_bucket = *b;
          moved_bucket.cell = s;
          out.push_back(std::move(moved_bucket));
        }
        list.clear();
      }
      if (members != by_cell.end()) out.push_back(std::move(fresh));
    }
    for (const Bucket& b : out) {
      ASSIGN_OR_RETURN(ObjectId id, impl.store().Put(EncodeBucket(b)));
      list.push_back(id);
    }
    written[w] = out.size();
    return Status::Ok();
  });
  RETURN_IF_ERROR(wrote);
  phase("assign", n_moved, n_moved);
  IndexObject next = ix;
  next.model = model_id;
  next.cells = new_cells;
  next.nprobe = DefaultIndexNprobe(vector::IvfParams::Algorithm::kIvf, new_cells);
  next.calibration.reset();
  next.pages.clear();
  next.buckets = 0;
  next.entries = 0;
  for (uint64_t w : written) *objects += w;
  {
    // Entries: the untouched cells' (as counted) plus the moved live ones.
    uint64_t untouched = 0;
    for (uint32_t c = 0; c < cells; ++c) {
      if (!touched[c]) untouched += sizes[c];
    }
    next.entries = untouched + n_moved;
  }
  for (const auto& list : dir) next.buckets += list.size();
  for (uint32_t p = 0; p * kCellsPerPage < new_cells; ++p) {
    DirPage page;
    page.first = p * kCellsPerPage;
    const uint32_t end = std::min<uint32_t>(new_cells, page.first + kCellsPerPage);
    for (uint32_t c = page.first; c < end; ++c) page.buckets.push_back(std::move(dir[c]));
    ASSIGN_OR_RETURN(Bytes pb, EncodeDirPage(page));
    ASSIGN_OR_RETURN(ObjectId pid, impl.store().Put(pb));
    if (p >= ix.pages.size() || ix.pages[p] != pid) ++*objects;
    next.pages.push_back(pid);
  }
  r->cells_after = new_cells;
  return std::optional<IndexObject>(std::move(next));
}

}  // namespace
}  // namespace vindex

namespace vindex {

Result<BuildIndexOptions> RebuildOptions(const DatasetImpl& impl, const Version& version,
                                         std::string_view field) {
  ASSIGN_OR_RETURN(const FieldSpec* spec,
                   EmbeddingField(version.manifest.schema, field, "index rebuild"));
  auto it = version.manifest.indexes.find(spec->name);
  if (it == version.manifest.indexes.end()) {
    return NotFound("index rebuild: field " + Quote(field) +
                    " has no index to rebuild; build one with index build");
  }
  ASSIGN_OR_RETURN(auto ix, LoadIndex(impl, it->second));
  ASSIGN_OR_RETURN(ModelPtr model, LoadModel(impl, ix->model));
  BuildIndexOptions o;
  o.algorithm = ix->algorithm;
  o.metric = ix->metric;
  o.bits = ix->bits;
  o.quantizer = ix->quantizer;
  o.seed = model->params().seed;
  if (ix->graph) o.degree = ix->graph->degree;
  // cells stay 0: the schema's declared count, else the algorithm's default for today's N.
  return o;
}

}  // namespace vindex

Result<CommitInfo> Dataset::RebuildIndex(std::string_view field, const BuildProgress& progress,
                                         const CommitOptions& commit) {
  if (read_only()) return PermissionDenied("dataset " + Quote(name()) + " is open read-only");
  ASSIGN_OR_RETURN(BuildIndexOptions o, vindex::RebuildOptions(*impl_, *impl_->current(), field));
  return BuildIndex(field, o, progress, commit);
}

Result<CommitInfo> Dataset::StepIndex(std::string_view field, const StepIndexOptions& options,
                                      StepIndexReport* report, const BuildProgress& progress,
                                      const CommitOptions& commit) {
  StepIndexReport local;
  StepIndexReport& r = report != nullptr ? *report : local;
  r = StepIndexReport{};
  auto phase = [&](std::string_view p, uint64_t done, uint64_t total) {
    if (progress) progress(p, done, total);
  };
  if (read_only()) return PermissionDenied("dataset " + Quote(name()) + " is open read-only");
  if (!(options.split_above > 1) || !(options.merge_below >= 0) || !(options.merge_below < 1)) {
    return InvalidArgument("index step: split_above must be > 1 and merge_below in [0, 1)");
  }
  ASSIGN_OR_RETURN(auto version, impl_->ReadHead());
  impl_->set_current(version);
  ASSIGN_OR_RETURN(const FieldSpec* spec_ptr,
                   vindex::EmbeddingField(version->manifest.schema, field, "index step"));
  const FieldSpec spec = *spec_ptr;
  auto it = version->manifest.indexes.find(spec.name);
  if (it == version->manifest.indexes.end()) {
    return NotFound("index step: field " + Quote(field) +
                    " has no index; build one with index build");
  }
  const ObjectId old_id = it->second;
  ASSIGN_OR_RETURN(auto ix, vindex::LoadIndex(*impl_, old_id));
  if (ix->algorithm != "ivf") {
    return InvalidArgument("index step: field " + Quote(field) + " has a " + ix->algorithm +
                           " index; step splits and merges ivf cells only (use index rebuild)");
  }
  r.cells_before = r.cells_after = ix->cells;
  r.nprobe_before = r.nprobe_after = vindex::DefaultSettingOf(*ix, 0).nprobe;

  // Rounds of a step, each on the previous round's (uncommitted) index object: the
  // first round's splits leave parts of uneven sizes that a second round evens out.
  std::optional<vindex::IndexObject> next;
  uint64_t objects = 0;
  for (uint32_t round = 0; round < std::max<uint32_t>(1, options.rounds); ++round) {
    ASSIGN_OR_RETURN(auto stepped, vindex::StepRound(*impl_, *version, spec, next ? *next : *ix,
                                                     options, &r, &objects, progress));
    if (!stepped) break;
    next = std::move(stepped);
  }
  if (!next) {
    CommitInfo info = InfoFromManifest(version->id, version->manifest);
    info.added = info.replaced = info.deleted = 0;
    info.fields.clear();
    info.attempts = 0;
    return info;
  }
  next->parents = {old_id};
  r.changed = true;
  {
    // Bucket objects of the old index still listed, and the new ones.
    std::set<ObjectId> old_buckets;
    ASSIGN_OR_RETURN(auto old_lists, vindex::BucketsOf(*impl_, *ix, vindex::AllCells(ix->cells)));
    for (const auto& l : old_lists) old_buckets.insert(l.begin(), l.end());
    ASSIGN_OR_RETURN(auto new_lists,
                     vindex::BucketsOf(*impl_, *next, vindex::AllCells(next->cells)));
    for (const auto& l : new_lists) {
      for (const ObjectId& id : l) (old_buckets.count(id) ? r.buckets_kept : r.buckets_written)++;
    }
  }
  // Stage 3: recalibrate and commit.
  phase("calibrate", 0, 1);
  BuildIndexOptions calibration;
  calibration.threads = options.threads;
  RETURN_IF_ERROR(vindex::Calibrate(*impl_, *version, spec, calibration, &*next, nullptr));
  phase("calibrate", 1, 1);
  r.nprobe_after = vindex::DefaultSettingOf(*next, 0).nprobe;
  ASSIGN_OR_RETURN(Bytes ib, vindex::EncodeIndex(*next));
  ASSIGN_OR_RETURN(ObjectId ix_id, impl_->store().Put(ib));
  ++objects;
  return vindex::CommitBuiltIndex(*impl_, version, spec, ix_id, objects, progress, commit);
}

}  // namespace dreamdb
