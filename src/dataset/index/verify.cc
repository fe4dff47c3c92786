// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Spatial indexes: verify (spec/21 §9).

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

namespace dreamdb::vindex {

// ---------------------------------------------------------------------------------------
// Verify (spec/21 §9)

namespace {

// Checks one manifest's spatial indexes; see VerifyIndexes.
class IndexVerifier {
 public:
  IndexVerifier(VerifyMemo* memo,
                const std::function<int(const ObjectId&, const std::string&, Bytes*)>& check,
                const std::function<Result<Bytes>(const ObjectId&)>& load,
                const std::function<void(std::string)>& problem)
      : memo_(*memo), check_(check), load_(load), problem_(problem) {}

  void Run(const dataset::Manifest& m) {
    for (const auto& [field, id] : m.indexes) {
      const std::string what = "spatial index of field '" + field + "'";
      auto facts = memo_.indexes.find(id);
      if (facts == memo_.indexes.end()) facts = memo_.indexes.emplace(id, First(id, what)).first;
      if (!facts->second.intact) continue;
      // Per manifest: the index must fit this manifest's schema (search reads the field's
      // declaration and feeds queries of its dim to the model).
      const FieldSpec* spec = m.schema.Find(field);
      if (facts->second.field != field) {
        problem_(what + " " + id.ToString() + " names field " + Quote(facts->second.field));
      }
      if (spec == nullptr || spec->type != FieldType::kEmbedding) {
        problem_(what + " " + id.ToString() + ": the manifest's schema has no embedding field " +
                 Quote(field));
      } else if (spec->dim != facts->second.dim) {
        problem_(what + " " + id.ToString() + " has dim " + std::to_string(facts->second.dim) +
                 " but field " + Quote(field) + " has dim " + std::to_string(spec->dim));
      }
    }
  }

 private:
  // The bytes of an object verify reads in a new role: fetched and hash-checked the first
  // time, fetched again when it was checked before in another role (an id listed as a
  // bucket that is really a model must still be decoded as a bucket). False (reported)
  // when missing or damaged.
  bool Fetch(const ObjectId& id, const std::string& what, Bytes* out) {
    const int c = check_(id, what, out);
    if (c > 0) return true;
    if (c < 0) return false;
    auto again = load_(id);
    if (!again.ok()) {
      problem_(what + " " + id.ToString() + ": " + again.status().ToString());
      return false;
    }
    *out = std::move(again).value();
    return true;
  }

  // The first visit of an index object: everything under it.
  VerifyMemo::IndexFacts First(const ObjectId& id, const std::string& what) {
    VerifyMemo::IndexFacts facts;
    Bytes bytes;
    if (!Fetch(id, what, &bytes)) return facts;
    auto ix = DecodeIndex(bytes);
    if (!ix.ok()) {
      problem_(what + " " + id.ToString() + ": " + ix.status().ToString());
      return facts;
    }
    facts = {true, ix->field, ix->dim};
    const std::string here = what + " " + id.ToString();
    std::shared_ptr<const vector::IvfModel> model = Model(ix->model, what + " model");
    if (model != nullptr) CheckModel(*ix, *model, here);
    if (ix->graph) Graph(*ix, model.get(), what);
    uint64_t entries = 0, buckets = 0;
    bool complete = true;
    for (size_t p = 0; p < ix->pages.size(); ++p) {
      const VerifyMemo::DirFacts& d = DirPage(ix->pages[p], model.get(), what);
      if (!d.intact) {
        complete = false;
        continue;
      }
      const uint64_t first = uint64_t{p} * kCellsPerPage;
      const uint64_t cells = std::min<uint64_t>(kCellsPerPage, ix->cells - first);
      if (d.first != first || d.cells != cells) {
        problem_(here + ": directory page " + ix->pages[p].ToString() + " holds cells " +
                 std::to_string(d.first) + " + " + std::to_string(d.cells) + ", expected " +
                 std::to_string(first) + " + " + std::to_string(cells));
      }
      entries += d.entries;
      buckets += d.buckets;
      complete = complete && d.complete;
    }
    if (complete && (entries != ix->entries || buckets != ix->buckets)) {
      problem_(here + " says " + std::to_string(ix->entries) + " entries in " +
               std::to_string(ix->buckets) + " buckets, found " + std::to_string(entries) + " in " +
               std::to_string(buckets));
    }
    return facts;
  }

  // The decoded model (from the memo, else fetched), or null when missing or damaged
  // (reported once).
  std::shared_ptr<const vector::IvfModel> Model(const ObjectId& id, const std::string& what) {
    if (memo_.bad_models.count(id) != 0) return nullptr;
    for (auto it = memo_.models.begin(); it != memo_.models.end(); ++it) {
      if (it->first == id) {
        memo_.models.splice(memo_.models.begin(), memo_.models, it);
        return it->second;
      }
    }
    Bytes bytes;
    const int c = check_(id, what, &bytes);
    if (c < 0) {
      memo_.bad_models.insert(id);
      return nullptr;
    }
    if (c == 0) {  // checked before, evicted from the memo since
      auto again = load_(id);
      if (!again.ok()) {
        problem_(what + " " + id.ToString() + ": " + again.status().ToString());
        memo_.bad_models.insert(id);
        return nullptr;
      }
      bytes = std::move(again).value();
    }
    auto model = vector::IvfModel::Deserialize(bytes);
    if (!model.ok()) {
      problem_(what + " " + id.ToString() + ": " + model.status().ToString());
      memo_.bad_models.insert(id);
      return nullptr;
    }
    memo_.models.emplace_front(id, *model);
    constexpr size_t kModelsKept = 4;
    if (memo_.models.size() > kModelsKept) memo_.models.pop_back();
    return *model;
  }

  void CheckModel(const IndexObject& ix, const vector::IvfModel& model, const std::string& here) {
    const auto& params = model.params();
    const bool pq = model.pq() != nullptr;
    const auto algorithm =
        ix.algorithm == "graph"
            ? vector::IvfParams::Algorithm::kIvf
            : vector::ParseAlgorithm(ix.algorithm).value_or(vector::IvfParams::Algorithm::kIvf);
    std::string diff;
    auto note = [&](const std::string& what, const std::string& index, const std::string& m) {
      if (index != m) diff += (diff.empty() ? "" : ", ") + what + " " + index + " vs " + m;
    };
    note("dim", std::to_string(ix.dim), std::to_string(model.dim()));
    note("cells", std::to_string(ix.cells), std::to_string(model.num_cells()));
    note("metric", ix.metric, std::string(vector::MetricName(params.metric)));
    note("bits", std::to_string(ix.bits), std::to_string(params.bits));
    note("quantizer", ix.quantizer, pq ? "pq4" : "rabitq");
    note("algorithm", std::string(vector::AlgorithmName(algorithm)),
         std::string(vector::AlgorithmName(model.algorithm())));
    if (!diff.empty())
      problem_(here + " does not match its model " + ix.model.ToString() + ": " + diff);
  }

  // The memo's facts of object `id` when already checked (*fresh stays null). Otherwise
  // new facts (not intact), then the object fetched (`fetch_what` names it to check_) and
  // decoded; a fetch or decode failure is reported once (as `name`: the decode error) and
  // leaves *fresh null; on success *fresh points at the new facts and *decoded holds the
  // object, for the caller to fill the facts from.
  template <typename Facts, typename T>
  const Facts& FetchOnce(std::unordered_map<ObjectId, Facts>& memo, const ObjectId& id,
                         const std::string& fetch_what, const std::string& name,
                         Result<T> (*decode)(ByteView), Facts** fresh, std::optional<T>* decoded) {
    auto it = memo.find(id);
    if (it != memo.end()) return it->second;
    Facts& f = memo[id];
    Bytes bytes;
    if (!Fetch(id, fetch_what, &bytes)) return f;
    auto v = decode(bytes);
    if (!v.ok()) {
      problem_(name + ": " + v.status().ToString());
      return f;
    }
    decoded->emplace(std::move(*v));
    *fresh = &f;
    return f;
  }

  // A directory page's facts; on its first visit, its buckets are fetched, decoded and
  // checked against the cell that lists them and (with the model) their codes.
  const VerifyMemo::DirFacts& DirPage(const ObjectId& id, const vector::IvfModel* model,
                                      const std::string& what) {
    VerifyMemo::DirFacts* fresh = nullptr;
    std::optional<vindex::DirPage> page;
    const VerifyMemo::DirFacts& known =
        FetchOnce(memo_.dir_pages, id, what + " directory page",
                  what + " directory page " + id.ToString(), DecodeDirPage, &fresh, &page);
    if (fresh == nullptr) return known;
    VerifyMemo::DirFacts& d = *fresh;
    d.intact = true;
    d.first = page->first;
    d.cells = static_cast<uint32_t>(page->buckets.size());
    for (size_t c = 0; c < page->buckets.size(); ++c) {
      const uint32_t cell = page->first + static_cast<uint32_t>(c);
      for (const auto& bid : page->buckets[c]) {
        ++d.buckets;
        const VerifyMemo::BucketFacts& b = Bucket(bid, model, what);
        if (!b.intact) {
          d.complete = false;
          continue;
        }
        d.entries += b.entries;
        if (b.cell != cell) {
          problem_(what + " bucket " + bid.ToString() + " holds cell " + std::to_string(b.cell) +
                   " but is listed under cell " + std::to_string(cell));
        }
      }
    }
    return d;
  }

  // A bucket's facts; the first time, fetched, decoded and its codes checked against the
  // model (one code per entry).
  const VerifyMemo::BucketFacts& Bucket(const ObjectId& id, const vector::IvfModel* model,
                                        const std::string& what) {
    VerifyMemo::BucketFacts* fresh = nullptr;
    std::optional<vindex::Bucket> b;
    const VerifyMemo::BucketFacts& known =
        FetchOnce(memo_.buckets, id, what + " bucket", what + " bucket " + id.ToString(),
                  DecodeBucket, &fresh, &b);
    if (fresh == nullptr) return known;
    VerifyMemo::BucketFacts& f = *fresh;
    f = {true, b->cell, b->anchors.size()};
    if (model == nullptr) return f;
    auto count = model->CellCount(b->codes);
    if (!count.ok()) {
      problem_(what + " bucket " + id.ToString() + ": " + count.status().ToString());
    } else if (*count != b->anchors.size()) {
      problem_(what + " bucket " + id.ToString() + " holds " + std::to_string(b->anchors.size()) +
               " entries but codes for " + std::to_string(*count));
    }
    return f;
  }

  // Node pages (spec/21 §9): each page's position in every index object that lists it;
  // the first time, its envelope, its node block (with the model) and its neighbour ids
  // against the graph's size.
  void Graph(const IndexObject& ix, const vector::IvfModel* model, const std::string& what) {
    const GraphInfo& g = *ix.graph;
    for (size_t p = 0; p < g.pages.size(); ++p) {
      const std::string here = what + " node page " + g.pages[p].ToString();
      const VerifyMemo::NodePageFacts& f = NodePage(g.pages[p], model, here);
      if (!f.intact) continue;
      const uint64_t first = uint64_t{p} * g.block;
      const uint64_t count = std::min<uint64_t>(g.block, g.nodes - first);
      if (f.first != first || f.count != count) {
        problem_(here + " holds nodes " + std::to_string(f.first) + " + " +
                 std::to_string(f.count) + ", expected " + std::to_string(first) + " + " +
                 std::to_string(count));
      }
      if (f.neighbours_below > g.nodes) {
        problem_(here + " has a neighbour " + std::to_string(f.neighbours_below - 1) +
                 " beyond the graph's " + std::to_string(g.nodes) + " nodes");
      }
    }
  }

  const VerifyMemo::NodePageFacts& NodePage(const ObjectId& id, const vector::IvfModel* model,
                                            const std::string& here) {
    VerifyMemo::NodePageFacts* fresh = nullptr;
    std::optional<vindex::NodePage> page;
    const VerifyMemo::NodePageFacts& known = FetchOnce(
        memo_.node_pages, id, here.substr(0, here.rfind(' ')), here, DecodeNodePage, &fresh, &page);
    if (fresh == nullptr) return known;
    VerifyMemo::NodePageFacts& f = *fresh;
    f = {true, page->first, page->anchors.size()};
    if (model == nullptr) return f;
    auto block = vector::GraphNodeBlock::Decode(*model, page->block);
    if (!block.ok()) {
      problem_(here + ": " + block.status().ToString());
      return f;
    }
    if ((*block)->first() != page->first || (*block)->count() != page->anchors.size()) {
      problem_(here + ": its node block does not match the page's nodes");
      return f;
    }
    // Checked against the size of every graph that lists the page (Graph above).
    for (uint32_t i = 0; i < (*block)->count(); ++i) {
      for (uint32_t n : (*block)->neighbors(i)) {
        f.neighbours_below = std::max<uint64_t>(f.neighbours_below, uint64_t{n} + 1);
      }
    }
    return f;
  }

  VerifyMemo& memo_;
  const std::function<int(const ObjectId&, const std::string&, Bytes*)>& check_;
  const std::function<Result<Bytes>(const ObjectId&)>& load_;
  const std::function<void(std::string)>& problem_;
};

}  // namespace

void VerifyIndexes(const dataset::Manifest& m, VerifyMemo* memo,
                   const std::function<int(const ObjectId&, const std::string&, Bytes*)>& check,
                   const std::function<Result<Bytes>(const ObjectId&)>& load,
                   const std::function<void(std::string)>& problem) {
  IndexVerifier(memo, check, load, problem).Run(m);
}

uint32_t DefaultIndexNprobe(vector::IvfParams::Algorithm algorithm, uint32_t cells) {
  if (algorithm == vector::IvfParams::Algorithm::kIvf) return 0;
  const auto scaled = static_cast<uint32_t>(std::lround(1.25 * std::sqrt(double(cells))));
  return std::min(cells, std::max<uint32_t>(16, scaled));
}

}  // namespace dreamdb::vindex
