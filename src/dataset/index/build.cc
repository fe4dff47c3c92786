// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Spatial indexes: build, calibration and Dataset::BuildIndex (spec/21 §8).

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <queue>
#include <random>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "src/base/encoding.h"
#include "src/columnar/segment.h"
#include "src/dataset/dataset_impl.h"
#include "src/dataset/index/internal.h"
#include "src/dataset/index/parallel.h"
#include "src/index/graph/graph.h"
#include "src/index/ivf.h"
#include "src/index/kernels/distance.h"
#include "src/index/metric.h"

namespace dreamdb {

namespace vindex {
namespace {

// The next setting a calibration measures: +1 up to 8, then +25% (8, 10, 12, 15, 18, ...).
uint32_t NextSetting(uint32_t s) { return s < 8 ? s + 1 : s + std::max<uint32_t>(1, s / 4); }

// Calibration (spec/21 §8.5): recall@k of `ix` (its objects already put) against brute
// force over `version`, on a sample of the vectors it indexes, per setting; stores the
// curve and the setting reaching kCalibrationTarget in ix->calibration. Each sample vector
// is a query whose own record is left out of both answers (it would match itself), so
// the sample measures how well the index finds a vector's neighbours among the others.
constexpr uint32_t kCalibrationK = 10;
constexpr double kCalibrationTarget = 0.95;
constexpr uint32_t kCalibrationQueries = 200;
// Brute force over the sample costs queries x values x dim multiply-adds; above this
// budget the sample shrinks (to no fewer than 50 queries).
constexpr uint64_t kCalibrationBudget = uint64_t{1} << 34;
// The largest beam width a graph's calibration tries.
constexpr uint32_t kMaxCalibratedEf = 2048;
// Graphs of fewer values are not calibrated (and hold no sample out): their default beam
// width, DefaultEf (64 for k = 10), covers a large part of them.
constexpr uint64_t kGraphCalibrationMinNodes = 5000;

// The calibration sample size for `values` indexed vectors of `dim` (0: none).
uint64_t CalibrationQueries(const BuildIndexOptions& options, uint64_t values, size_t dim) {
  uint64_t nq =
      options.calibration_queries != 0 ? options.calibration_queries : kCalibrationQueries;
  if (options.calibration_queries == 0) {
    nq = std::clamp<uint64_t>(kCalibrationBudget / std::max<uint64_t>(1, values * dim), 50, nq);
  }
  return std::min<uint64_t>(nq, values / 2);
}

}  // namespace

Result<RecallSample> SampleRecall(const DatasetImpl& impl, const Version& version,
                                  const FieldSpec& spec, Metric metric, uint64_t values,
                                  uint64_t nq, const HeldOut* held, uint32_t threads) {
  RecallSample out;
  const size_t dim = spec.dim;
  const bool cosine = metric == Metric::kCosine;
  if (held != nullptr) {
    out.self = held->anchors;
    out.queries = held->vectors;
  } else if (nq != 0 && values != 0) {
    // The sample: every stride-th indexed value in anchor order.
    const uint64_t stride = std::max<uint64_t>(1, values / nq);
    uint64_t seen = 0;
    RETURN_IF_ERROR(WalkVectors(impl, version, spec, 0, UINT64_MAX,
                                [&](size_t n, const uint64_t* anchors, const ObjectId* const*,
                                    const uint32_t*, const float* const* vecs) -> Status {
                                  for (size_t i = 0; i < n && out.self.size() < nq; ++i) {
                                    if (!AllFinite(vecs[i], dim)) continue;
                                    if (cosine && vector::NormSqr(vecs[i], dim) == 0) continue;
                                    if (seen++ % stride != stride / 2) continue;
                                    out.self.push_back(anchors[i]);
                                    out.queries.insert(out.queries.end(), vecs[i], vecs[i] + dim);
                                  }
                                  return Status::Ok();
                                }));
  }
  const size_t n = out.self.size();
  if (n == 0) return out;
  SearchOptions so;
  so.k = kCalibrationK + 1;
  so.threads = threads == 1 ? 1 : 2;
  SearchContext ctx;
  ctx.impl = &impl;
  ctx.version = &version;
  ctx.spec = &spec;
  ctx.metric = metric;
  ctx.options = &so;
  std::vector<std::vector<Cand>> exact;
  uint64_t scanned = 0;
  RETURN_IF_ERROR(ExactSearch(ctx, out.queries.data(), n, dim, &exact, &scanned));
  out.truth.resize(n);
  for (size_t q = 0; q < n; ++q) {
    out.truth[q] = out.Others(exact[q], q);
    std::sort(out.truth[q].begin(), out.truth[q].end());
    out.relevant += out.truth[q].size();
  }
  return out;
}

std::vector<uint64_t> RecallSample::Others(const std::vector<Cand>& cands, size_t q) const {
  std::vector<uint64_t> out;
  for (const Cand& c : cands) {
    if (c.anchor != self[q] && out.size() < kCalibrationK) out.push_back(c.anchor);
  }
  return out;
}

Result<uint32_t> SampleRecallAt(const DatasetImpl& impl, const Version& version,
                                const FieldSpec& spec, const vector::IvfModel& model,
                                const IndexObject& ix, const RecallSample& sample, uint32_t setting,
                                const uint32_t* cell_sizes, uint32_t threads) {
  if (sample.relevant == 0) return 0u;
  ASSIGN_OR_RETURN(const Metric metric, MetricOf(ix.metric));
  const size_t dim = ix.dim;
  const size_t nq = sample.self.size();
  SearchOptions at;
  at.k = kCalibrationK + 1;
  at.threads = threads == 1 ? 1 : 2;
  at.ef = setting;  // the graph's beam width travels in the options
  SearchContext ctx;
  ctx.impl = &impl;
  ctx.version = &version;
  ctx.spec = &spec;
  ctx.metric = metric;
  ctx.options = &at;
  // Hits of queries [b, e).
  auto hits_of = [&](size_t b, size_t e) -> Result<uint64_t> {
    uint64_t hits = 0, s = 0;
    for (size_t q = b; q < e; ++q) {
      const float* qv = sample.queries.data() + q * dim;
      std::vector<Cand> got;
      if (ix.graph) {
        ASSIGN_OR_RETURN(got, GraphSearchOne(ctx, model, ix, qv, &s));
      } else {
        ASSIGN_OR_RETURN(got, IvfSearchOne(ctx, model, ix, qv, setting, cell_sizes, &s));
      }
      for (uint64_t a : sample.Others(got, q)) {
        hits += std::binary_search(sample.truth[q].begin(), sample.truth[q].end(), a) ? 1 : 0;
      }
    }
    return hits;
  };
  uint64_t half_hits[2] = {0, 0};
  const Status measured = ParallelFor(2, threads == 1 ? 1 : 2, [&](size_t h) -> Status {
    ASSIGN_OR_RETURN(half_hits[h], hits_of(h == 0 ? 0 : nq / 2, h == 0 ? nq / 2 : nq));
    return Status::Ok();
  });
  RETURN_IF_ERROR(measured);
  return static_cast<uint32_t>((half_hits[0] + half_hits[1]) * 10000 / sample.relevant);
}

Status Calibrate(const DatasetImpl& impl, const Version& version, const FieldSpec& spec,
                 const BuildIndexOptions& options, IndexObject* ix, const HeldOut* held) {
  if (!options.calibrate) return Status::Ok();
  const bool graph = ix->graph.has_value();
  if (graph && (held == nullptr || held->anchors.empty())) return Status::Ok();
  const uint64_t values = ix->entries;
  const size_t dim = ix->dim;
  const uint64_t nq = graph ? held->anchors.size() : CalibrationQueries(options, values, dim);
  if (nq == 0) return Status::Ok();
  ASSIGN_OR_RETURN(ModelPtr model, LoadModel(impl, ix->model));
  ASSIGN_OR_RETURN(const Metric metric, MetricOf(ix->metric));
  ASSIGN_OR_RETURN(RecallSample sample, SampleRecall(impl, version, spec, metric, values, nq,
                                                     graph ? held : nullptr, options.threads));
  if (sample.relevant == 0) return Status::Ok();
  std::vector<uint32_t> sizes;
  if (!graph && model->algorithm() != vector::IvfParams::Algorithm::kIvf) {
    ASSIGN_OR_RETURN(sizes, CellBucketCounts(impl, *ix));
  }
  const uint32_t* cell_sizes = sizes.empty() ? nullptr : sizes.data();
  // ivf/imi/lsh: cells probed, 1 .. cells; graph: beam width, k .. the graph's size
  // (at most kMaxCalibratedEf).
  const uint32_t max_setting = graph ? static_cast<uint32_t>(std::clamp<uint64_t>(
                                           ix->graph->nodes, kCalibrationK, kMaxCalibratedEf))
                                     : ix->cells;
  Calibration c;
  c.k = kCalibrationK;
  c.queries = static_cast<uint32_t>(sample.self.size());
  c.target = static_cast<uint32_t>(std::lround(kCalibrationTarget * 10000));
  for (uint32_t setting = graph ? kCalibrationK : 1;; setting = NextSetting(setting)) {
    setting = std::min(setting, max_setting);
    ASSIGN_OR_RETURN(const uint32_t recall, SampleRecallAt(impl, version, spec, *model, *ix, sample,
                                                           setting, cell_sizes, options.threads));
    c.curve.emplace_back(setting, recall);
    // Enough points to pick a setting for recall 0.99 (with its margin) too.
    if (recall >= 9950 || setting >= max_setting) break;
  }
  c.setting = PickSetting(c, kCalibrationTarget);
  ix->calibration = std::move(c);
  return Status::Ok();
}

// Commits a built index (spec/21 §8.1 step 6), rebasing onto a moved branch (§8.2).
Result<CommitInfo> CommitBuiltIndex(DatasetImpl& impl,
                                    const std::shared_ptr<const Version>& version,
                                    const FieldSpec& spec, const ObjectId& ix_id, uint64_t objects,
                                    const BuildProgress& progress, const CommitOptions& commit) {
  auto report = [&](std::string_view phase, uint64_t done, uint64_t total) {
    if (progress) progress(phase, done, total);
  };
  const std::string_view field = spec.name;
  report("commit", 0, 1);
  const ObjectId built_from = version->id;
  const std::string fname(field);
  auto result = impl.Commit(
      [&](const Version& base, uint32_t) -> Result<DatasetImpl::Built> {
        DatasetImpl::Built out;
        out.manifest = base.manifest;
        out.manifest.delta = {};
        if (base.id == built_from) {
          out.manifest.indexes[fname] = ix_id;
          return out;
        }
        // The branch moved while the index was built (spec/21 §8.2): assign the values
        // written since, like an append would have (§6.1); deletes need nothing (§6.2).
        const FieldSpec* now = base.manifest.schema.Find(fname);
        if (now == nullptr || now->type != FieldType::kEmbedding || now->dim != spec.dim) {
          return Conflict("index build: field " + Quote(fname) +
                          " was dropped or changed while the index was built");
        }
        std::vector<uint64_t> moved;
        RETURN_IF_ERROR(btree::Diff(
            impl.store(), impl.pages(), version->index, base.index, [&](const btree::Change& c) {
              if (c.kind != btree::ChangeKind::kRemoved &&
                  std::find(c.fields.begin(), c.fields.end(), fname) != c.fields.end()) {
                moved.push_back(c.anchor);
              }
              return true;
            }));
        out.manifest.indexes[fname] = ix_id;
        std::map<std::string, std::vector<uint64_t>> changed{{fname, std::move(moved)}};
        std::vector<std::string> updated;
        RETURN_IF_ERROR(vindex::IndexMerged(impl, base.index, changed, &out.manifest,
                                            &out.objects_written, &updated));
        return out;
      },
      commit);
  if (result.ok()) result->objects_written += objects;
  report("commit", 1, 1);
  return result;
}

namespace {

// Vectors a graph build may hold in memory (spec/21 §8.4, §10).
constexpr uint64_t kGraphBuildMaxBytes = uint64_t{4} << 30;

// A graph index build (spec/21 §8.4): all live vectors in memory, GraphIndex::Build, node
// pages, an empty one-cell directory, the index object, the commit.
Result<CommitInfo> BuildGraphIndex(DatasetImpl& impl, const std::shared_ptr<const Version>& version,
                                   const FieldSpec& spec, const BuildIndexOptions& options,
                                   Metric metric, uint32_t bits, const BuildProgress& progress,
                                   const CommitOptions& commit) {
  auto report = [&](std::string_view phase, uint64_t done, uint64_t total) {
    if (progress) progress(phase, done, total);
  };
  const std::string& field = spec.name;
  const size_t dim = spec.dim;
  vector::GraphParams gp;
  gp.dim = static_cast<uint32_t>(dim);
  gp.metric = metric;
  gp.bits = bits;
  gp.seed = options.seed;
  if (options.degree != 0) gp.degree = options.degree;
  if (gp.degree < 4 || gp.degree > 256) {
    return InvalidArgument("index build: graph degree must be 4 to 256, got " +
                           std::to_string(gp.degree));
  }
  gp.build_list =
      options.build_list != 0 ? options.build_list : std::max<uint32_t>(gp.build_list, gp.degree);
  if (gp.build_list < gp.degree) {
    return InvalidArgument("index build: graph build_list (" + std::to_string(gp.build_list) +
                           ") must be at least the degree (" + std::to_string(gp.degree) + ")");
  }
  const bool cosine = metric == Metric::kCosine;
  const uint64_t n_est = version->manifest.count;
  std::vector<uint64_t> anchors, tags;
  std::vector<uint32_t> rows;
  std::vector<float> data;
  report("read", 0, n_est);
  RETURN_IF_ERROR(WalkVectors(
      impl, *version, spec, 0, UINT64_MAX,
      [&](size_t n, const uint64_t* a, const ObjectId* const* segs, const uint32_t* r,
          const float* const* vecs) -> Status {
        for (size_t i = 0; i < n; ++i) {
          if (!AllFinite(vecs[i], dim)) continue;                      // left out (spec/21 §6.4)
          if (cosine && vector::NormSqr(vecs[i], dim) == 0) continue;  // spec/21 §6.3
          if ((data.size() + dim) * sizeof(float) > kGraphBuildMaxBytes) {
            return InvalidArgument(
                "index build: field " + Quote(field) +
                " holds more than 4 GiB of vectors, too many for a graph index (built in "
                "memory); use --algorithm ivf, whose build memory is bounded");
          }
          anchors.push_back(a[i]);
          tags.push_back(SegmentTag(*segs[i]));
          rows.push_back(r[i]);
          data.insert(data.end(), vecs[i], vecs[i] + dim);
        }
        report("read", anchors.size(), n_est);
        return Status::Ok();
      }));
  const size_t n = anchors.size();
  if (n == 0) {
    return InvalidArgument("index build: field " + Quote(field) +
                           " has no values to build a graph on; append records first");
  }
  // The calibration sample, held out of the graph (see HeldOut): every stride-th value in
  // anchor order, moved to the end of the arrays so the graph is built on the others.
  HeldOut held;
  std::vector<uint64_t> held_tags;
  std::vector<uint32_t> held_rows;
  const uint64_t nq =
      options.calibrate && n >= kGraphCalibrationMinNodes ? CalibrationQueries(options, n, dim) : 0;
  if (nq != 0 && n - nq >= 2) {
    const uint64_t stride = n / nq;
    size_t kept = 0;
    for (size_t i = 0; i < n; ++i) {
      if (i % stride == stride / 2 && held.anchors.size() < nq) {
        held.anchors.push_back(anchors[i]);
        held_tags.push_back(tags[i]);
        held_rows.push_back(rows[i]);
        held.vectors.insert(held.vectors.end(), data.begin() + i * dim,
                            data.begin() + (i + 1) * dim);
        continue;
      }
      if (kept != i) {
        anchors[kept] = anchors[i];
        tags[kept] = tags[i];
        rows[kept] = rows[i];
        std::copy(data.begin() + i * dim, data.begin() + (i + 1) * dim, data.begin() + kept * dim);
      }
      ++kept;
    }
    anchors.resize(kept);
    tags.resize(kept);
    rows.resize(kept);
    data.resize(kept * dim);
  }
  const size_t nodes = anchors.size();
  std::vector<uint32_t> order;
  std::function<void(uint64_t, uint64_t)> build_progress = [&](uint64_t done, uint64_t total) {
    report("build", done, total);
  };
  ASSIGN_OR_RETURN(auto graph, vector::GraphIndex::Build(gp, data.data(), nodes, options.threads,
                                                         &order, &build_progress));
  data.clear();
  data.shrink_to_fit();
  if (order.size() != nodes) return Internal("graph build returned no node order");
  std::shared_ptr<const vector::IvfModel> model = graph->shared_model();
  Bytes model_bytes = model->Serialize();
  ASSIGN_OR_RETURN(ObjectId model_id, impl.store().Put(model_bytes));
  impl.vectors()->Insert(model_id, model, model_bytes.size() * 2);
  uint64_t objects = 1;
  const uint32_t block = graph->params().nodes_per_block;
  const uint32_t num_blocks = graph->num_blocks();
  std::vector<ObjectId> node_pages(num_blocks);
  std::atomic<uint64_t> written{0};
  const Status pages_put = ParallelFor(num_blocks, 2, [&](size_t bi) -> Status {
    const auto b = static_cast<uint32_t>(bi);
    NodePage page;
    page.first = b * block;
    const size_t end = std::min<size_t>(nodes, size_t{page.first} + block);
    for (size_t i = page.first; i < end; ++i) {
      const uint32_t row = order[i];
      page.anchors.push_back(anchors[row]);
      page.seg_tags.push_back(tags[row]);
      page.rows.push_back(rows[row]);
    }
    ASSIGN_OR_RETURN(page.block, graph->EncodeBlock(b));
    ASSIGN_OR_RETURN(node_pages[b], impl.store().Put(EncodeNodePage(page)));
    report("assign", written.fetch_add(end - page.first) + (end - page.first), nodes);
    return Status::Ok();
  });
  RETURN_IF_ERROR(pages_put);
  objects += num_blocks;
  DirPage dir;
  dir.first = 0;
  dir.buckets.resize(1);
  if (!held.anchors.empty()) {
    // The held-out sample is the graph's tail: cell 0's one bucket (spec/21 §4.5, §8.5).
    Bucket tail;
    tail.cell = 0;
    tail.anchors = held.anchors;
    tail.seg_tags = held_tags;
    tail.rows = held_rows;
    ASSIGN_OR_RETURN(tail.codes, model->EncodeCell(0, held.vectors.data(), held.anchors.size()));
    Bytes tail_bytes = EncodeBucket(tail);
    ASSIGN_OR_RETURN(ObjectId tail_id, impl.store().Put(tail_bytes));
    ++objects;
    impl.vectors()->Insert(tail_id, std::make_shared<const Bucket>(std::move(tail)),
                           tail_bytes.size() + 64);
    dir.buckets[0].push_back(tail_id);
  }
  ASSIGN_OR_RETURN(Bytes dir_bytes, EncodeDirPage(dir));
  ASSIGN_OR_RETURN(ObjectId dir_id, impl.store().Put(dir_bytes));
  ++objects;
  IndexObject ix;
  ix.field = field;
  ix.algorithm = "graph";
  ix.metric = std::string(vector::MetricName(metric));
  ix.bits = bits;
  ix.dim = static_cast<uint32_t>(dim);
  ix.cells = 1;
  ix.nprobe = 0;
  ix.model = model_id;
  if (auto old = version->manifest.indexes.find(field); old != version->manifest.indexes.end()) {
    ix.parents = {old->second};
  }
  ix.pages = {dir_id};
  ix.entries = held.anchors.size();
  ix.buckets = held.anchors.empty() ? 0 : 1;
  GraphInfo g;
  g.entry = graph->entry();
  g.nodes = nodes;
  g.degree = graph->params().degree;
  g.block = block;
  g.pages = std::move(node_pages);
  ix.graph = std::move(g);
  report("calibrate", 0, 1);
  RETURN_IF_ERROR(Calibrate(impl, *version, spec, options, &ix, &held));
  report("calibrate", 1, 1);
  ASSIGN_OR_RETURN(Bytes ib, EncodeIndex(ix));
  ASSIGN_OR_RETURN(ObjectId ix_id, impl.store().Put(ib));
  ++objects;
  return CommitBuiltIndex(impl, version, spec, ix_id, objects, progress, commit);
}

}  // namespace

Result<BuildSettings> ResolveBuildSettings(const FieldSpec& spec, const BuildIndexOptions& options,
                                           std::string_view op) {
  const IndexSpec declared = spec.index.value_or(IndexSpec{});
  const std::string prefix = std::string(op) + ": ";
  BuildSettings out;
  // raw = false: the field's segments hold 8-bit reconstructions (spec/12-segments.md §9);
  // training and re-ranking read them through the same decoders.
  const std::string metric_name = options.metric.empty() ? declared.metric : options.metric;
  auto metric = MetricOf(metric_name);
  if (!metric.ok()) return InvalidArgument(prefix + metric.status().message());
  out.metric = *metric;
  out.bits = options.bits != 0 ? options.bits : declared.bits;
  if (out.bits < 1 || out.bits > 8) {
    return InvalidArgument(prefix + "bits must be 1 to 8, got " + std::to_string(out.bits));
  }
  if (options.chunk_rows == 0) return InvalidArgument(prefix + "chunk_rows must be >= 1");
  out.algorithm_name = options.algorithm.empty() ? declared.algorithm : options.algorithm;
  const std::string quantizer_name =
      options.quantizer.empty() ? declared.quantizer : options.quantizer;
  auto quantizer = vector::ParseQuantizer(quantizer_name);
  if (!quantizer.ok()) return InvalidArgument(prefix + quantizer.status().message());
  out.quantizer = *quantizer;
  if (out.algorithm_name == "graph") {
    if (*quantizer != vector::IvfParams::Quantizer::kRaBitQ) {
      return InvalidArgument(prefix + "quantizer " + Quote(quantizer_name) +
                             " does not apply to a graph index (its nodes carry RaBitQ codes); "
                             "use --algorithm ivf with pq4");
    }
    out.graph = true;
    return out;
  }
  auto algorithm = vector::ParseAlgorithm(out.algorithm_name);
  if (!algorithm.ok()) return InvalidArgument(prefix + algorithm.status().message());
  out.algorithm = *algorithm;
  return out;
}

Result<TrainedIndex> TrainIvf(DatasetImpl& impl, const Version& version, const FieldSpec& spec,
                              const BuildIndexOptions& options, const BuildSettings& settings,
                              const BuildProgress& progress) {
  auto report = [&](std::string_view phase, uint64_t done, uint64_t total) {
    if (progress) progress(phase, done, total);
  };
  const std::string_view field = spec.name;
  const IndexSpec declared = spec.index.value_or(IndexSpec{});
  const bool is_ivf = settings.algorithm == vector::IvfParams::Algorithm::kIvf;
  const size_t dim = spec.dim;
  const bool cosine = settings.metric == vector::Metric::kCosine;
  // Pass 1: a seeded reservoir sample of the field's vectors.
  uint64_t n_est = version.manifest.count;
  uint32_t cells = options.cells != 0 ? options.cells : declared.cells;
  // imi/lsh: 0 stays 0 (IvfModel::Train picks the algorithm's default and clamps it).
  if (cells == 0 && is_ivf) {
    cells = static_cast<uint32_t>(std::max<double>(1.0, std::round(std::sqrt(double(n_est)))));
  }
  // imi trains two codebooks of s ~ sqrt(cells) centroids; lsh trains no k-means.
  const uint64_t train_k =
      is_ivf ? cells
             : static_cast<uint64_t>(std::ceil(std::sqrt(double(std::max<uint32_t>(cells, 1)))));
  uint64_t sample_cap =
      options.sample != 0
          ? options.sample
          : std::min<uint64_t>(std::max<uint64_t>(uint64_t{64} * train_k, 20000), 131072);
  std::vector<float> sample;
  uint64_t seen = 0;
  std::mt19937_64 rng(options.seed ^ 0x5eed5eedULL);
  RETURN_IF_ERROR(
      WalkVectors(impl, version, spec, 0, UINT64_MAX,
                  [&](size_t n, const uint64_t*, const ObjectId* const*, const uint32_t*,
                      const float* const* vecs) -> Status {
                    for (size_t i = 0; i < n; ++i) {
                      if (!AllFinite(vecs[i], dim)) continue;  // left out (spec/21 §6.4)
                      if (cosine && vector::NormSqr(vecs[i], dim) == 0) continue;  // spec/21 §6.3
                      if (sample.size() < sample_cap * dim) {
                        sample.insert(sample.end(), vecs[i], vecs[i] + dim);
                      } else {
                        uint64_t j = std::uniform_int_distribution<uint64_t>(0, seen)(rng);
                        if (j < sample_cap)
                          std::memcpy(sample.data() + j * dim, vecs[i], dim * sizeof(float));
                      }
                      ++seen;
                    }
                    report("sample", seen, n_est);
                    return Status::Ok();
                  }));
  if (seen == 0) {
    return InvalidArgument("index build: field " + Quote(field) +
                           " has no values to train on; append records first");
  }
  if (options.cells == 0 && declared.cells == 0 && is_ivf) {
    cells = static_cast<uint32_t>(std::max<double>(1.0, std::round(std::sqrt(double(seen)))));
  }
  const size_t sample_n = sample.size() / dim;
  if (is_ivf && cells > sample_n) cells = static_cast<uint32_t>(sample_n);
  vector::IvfParams params;
  params.algorithm = settings.algorithm;
  params.dim = static_cast<uint32_t>(dim);
  params.metric = settings.metric;
  params.num_cells = cells;
  params.bits = settings.bits;
  params.quantizer = settings.quantizer;
  params.seed = options.seed;
  params.kmeans.seed = options.seed;
  params.kmeans.threads = options.threads;
  params.kmeans.spherical = settings.metric == vector::Metric::kCosine;
  report("train", 0, 1);
  TrainedIndex out;
  ASSIGN_OR_RETURN(out.model, vector::IvfModel::Train(params, sample.data(), sample_n));
  sample.clear();
  sample.shrink_to_fit();
  report("train", 1, 1);
  Bytes model_bytes = out.model->Serialize();
  ASSIGN_OR_RETURN(ObjectId model_id, impl.store().Put(model_bytes));
  impl.vectors()->Insert(model_id, out.model, model_bytes.size() * 2);
  out.values = seen;
  const uint32_t num_cells = out.model->num_cells();
  IndexObject& ix = out.ix;
  ix.field = std::string(field);
  ix.algorithm = std::string(vector::AlgorithmName(settings.algorithm));
  ix.nprobe = DefaultIndexNprobe(settings.algorithm, num_cells);
  ix.metric = std::string(vector::MetricName(settings.metric));
  ix.bits = out.model->params().bits;
  ix.quantizer = std::string(vector::QuantizerName(settings.quantizer));
  ix.dim = static_cast<uint32_t>(dim);
  ix.cells = num_cells;
  ix.model = model_id;
  if (auto old = version.manifest.indexes.find(std::string(field));
      old != version.manifest.indexes.end()) {
    ix.parents = {old->second};
  }
  return out;
}

Status AssignRange(DatasetImpl& impl, const Version& version, const FieldSpec& spec,
                   const vector::IvfModel& model, const BuildIndexOptions& options, uint64_t start,
                   uint64_t end, uint64_t total, IndexObject* ix,
                   std::vector<std::vector<ObjectId>>* dir, uint64_t* objects,
                   const BuildProgress& progress) {
  const size_t dim = spec.dim;
  const bool cosine = model.params().metric == vector::Metric::kCosine;
  const uint32_t num_cells = model.num_cells();
  dir->resize(num_cells);
  std::vector<uint64_t> c_anchors, c_tags;
  std::vector<uint32_t> c_rows;
  std::vector<float> c_data;
  uint64_t assigned = 0;
  // Encoded entries wait per cell until `flush_bytes` accumulate (or the end), then each
  // cell with entries becomes one bucket: one bucket per cell for N * code bytes below
  // the bound (spec/21 §5.4), with memory bounded by it and by one chunk of vectors.
  struct PendingCell {
    Bucket b;
    bool any = false;
  };
  std::vector<PendingCell> pending(num_cells);
  uint64_t pending_bytes = 0;
  const uint64_t flush_bytes = options.flush_bytes != 0 ? options.flush_bytes : uint64_t{256} << 20;
  auto write_pending = [&]() -> Status {
    std::vector<uint32_t> cells_with;
    for (uint32_t c = 0; c < num_cells; ++c) {
      if (pending[c].any) cells_with.push_back(c);
    }
    std::vector<ObjectId> ids(cells_with.size());
    const Status buckets_put = ParallelFor(cells_with.size(), 2, [&](size_t g) -> Status {
      ASSIGN_OR_RETURN(ids[g], impl.store().Put(EncodeBucket(pending[cells_with[g]].b)));
      return Status::Ok();
    });
    RETURN_IF_ERROR(buckets_put);
    for (size_t g = 0; g < cells_with.size(); ++g) {
      (*dir)[cells_with[g]].push_back(ids[g]);
      pending[cells_with[g]] = PendingCell{};
    }
    *objects += cells_with.size();
    ix->buckets += cells_with.size();
    pending_bytes = 0;
    return Status::Ok();
  };
  auto flush = [&]() -> Status {
    const size_t n = c_anchors.size();
    if (n == 0) return Status::Ok();
    std::vector<uint32_t> cell_of(n);
    RETURN_IF_ERROR(model.Assign(c_data.data(), n, cell_of.data()));
    std::map<uint32_t, std::vector<size_t>> by_cell;
    for (size_t i = 0; i < n; ++i) by_cell[cell_of[i]].push_back(i);
    std::vector<std::pair<uint32_t, std::vector<size_t>>> groups(by_cell.begin(), by_cell.end());
    std::vector<Bytes> codes(groups.size());
    const Status encoded = ParallelFor(groups.size(), 2, [&](size_t g) -> Status {
      const auto& [cell, members] = groups[g];
      std::vector<float> cv(members.size() * dim);
      for (size_t j = 0; j < members.size(); ++j) {
        std::memcpy(cv.data() + j * dim, c_data.data() + members[j] * dim, dim * sizeof(float));
      }
      ASSIGN_OR_RETURN(codes[g], model.EncodeCell(cell, cv.data(), members.size()));
      return Status::Ok();
    });
    RETURN_IF_ERROR(encoded);
    for (size_t g = 0; g < groups.size(); ++g) {
      const auto& [cell, members] = groups[g];
      PendingCell& p = pending[cell];
      const uint64_t code_bytes = codes[g].size();
      p.b.cell = cell;
      for (size_t i : members) {
        p.b.anchors.push_back(c_anchors[i]);
        p.b.seg_tags.push_back(c_tags[i]);
        p.b.rows.push_back(c_rows[i]);
      }
      if (!p.any) {
        p.b.codes = std::move(codes[g]);
        p.any = true;
      } else {
        RETURN_IF_ERROR(model.AppendCodes(&p.b.codes, codes[g]));
      }
      pending_bytes += code_bytes + 20 * members.size();
    }
    ix->entries += n;
    assigned += n;
    if (progress) progress("assign", assigned, total);
    c_anchors.clear();
    c_tags.clear();
    c_rows.clear();
    c_data.clear();
    if (pending_bytes >= flush_bytes) RETURN_IF_ERROR(write_pending());
    return Status::Ok();
  };
  RETURN_IF_ERROR(WalkVectors(impl, version, spec, start, end,
                              [&](size_t n, const uint64_t* anchors, const ObjectId* const* segs,
                                  const uint32_t* rows, const float* const* vecs) -> Status {
                                for (size_t i = 0; i < n; ++i) {
                                  if (!AllFinite(vecs[i], dim)) continue;  // §6.4
                                  if (cosine && vector::NormSqr(vecs[i], dim) == 0) continue;
                                  c_anchors.push_back(anchors[i]);
                                  c_tags.push_back(SegmentTag(*segs[i]));
                                  c_rows.push_back(rows[i]);
                                  c_data.insert(c_data.end(), vecs[i], vecs[i] + dim);
                                  if (c_anchors.size() >= options.chunk_rows) {
                                    RETURN_IF_ERROR(flush());
                                  }
                                }
                                return Status::Ok();
                              }));
  RETURN_IF_ERROR(flush());
  return write_pending();
}

Status PutDirPages(DatasetImpl& impl, std::vector<std::vector<ObjectId>> dir, IndexObject* ix,
                   uint64_t* objects) {
  const auto num_cells = static_cast<uint32_t>(dir.size());
  ix->pages.clear();
  for (uint32_t p = 0; p * kCellsPerPage < num_cells; ++p) {
    DirPage page;
    page.first = p * kCellsPerPage;
    const uint32_t end = std::min<uint32_t>(num_cells, page.first + kCellsPerPage);
    for (uint32_t c = page.first; c < end; ++c) page.buckets.push_back(std::move(dir[c]));
    ASSIGN_OR_RETURN(Bytes pb, EncodeDirPage(page));
    ASSIGN_OR_RETURN(ObjectId pid, impl.store().Put(pb));
    ix->pages.push_back(pid);
    ++*objects;
  }
  return Status::Ok();
}

Result<CommitInfo> FinishIndex(DatasetImpl& impl, const std::shared_ptr<const Version>& version,
                               const FieldSpec& spec, const BuildIndexOptions& options,
                               IndexObject ix, uint64_t objects, const BuildProgress& progress,
                               const CommitOptions& commit) {
  if (progress) progress("calibrate", 0, 1);
  RETURN_IF_ERROR(Calibrate(impl, *version, spec, options, &ix, nullptr));
  if (progress) progress("calibrate", 1, 1);
  ASSIGN_OR_RETURN(Bytes ib, EncodeIndex(ix));
  ASSIGN_OR_RETURN(ObjectId ix_id, impl.store().Put(ib));
  ++objects;
  return CommitBuiltIndex(impl, version, spec, ix_id, objects, progress, commit);
}

}  // namespace vindex

Result<CommitInfo> Dataset::BuildIndex(std::string_view field, const BuildIndexOptions& options,
                                       const BuildProgress& progress, const CommitOptions& commit) {
  if (read_only()) return PermissionDenied("dataset " + Quote(name()) + " is open read-only");
  auto version = impl_->current();
  ASSIGN_OR_RETURN(const FieldSpec* spec_ptr,
                   vindex::EmbeddingField(version->manifest.schema, field, "index build"));
  const FieldSpec spec = *spec_ptr;
  ASSIGN_OR_RETURN(const vindex::BuildSettings settings,
                   vindex::ResolveBuildSettings(spec, options, "index build"));
  if (settings.graph) {
    return vindex::BuildGraphIndex(*impl_, version, spec, options, settings.metric, settings.bits,
                                   progress, commit);
  }
  ASSIGN_OR_RETURN(vindex::TrainedIndex trained,
                   vindex::TrainIvf(*impl_, *version, spec, options, settings, progress));
  uint64_t objects = 1;
  // Pass 2: assign in chunks; each chunk puts one bucket per touched cell.
  std::vector<std::vector<ObjectId>> dir;
  RETURN_IF_ERROR(vindex::AssignRange(*impl_, *version, spec, *trained.model, options, 0,
                                      UINT64_MAX, trained.values, &trained.ix, &dir, &objects,
                                      progress));
  RETURN_IF_ERROR(vindex::PutDirPages(*impl_, std::move(dir), &trained.ix, &objects));
  return vindex::FinishIndex(*impl_, version, spec, options, std::move(trained.ix), objects,
                             progress, commit);
}

}  // namespace dreamdb
