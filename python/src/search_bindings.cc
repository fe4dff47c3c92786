// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Vector search over a dataset (include/dreamdb/search.h, spec/21-spatial-index.md):
// the handle methods dreamdb._core.Dataset.search / build_index / index_status, which use
// the handle's warm state (decoded index objects, directory pages, buckets and the live
// entries' re-rank vectors, spec/21 §7.10), and the module functions of the same names,
// thin wrappers that open the version by name first (cold). Every call runs with the GIL
// released; results leave as NumPy arrays.

#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dreamdb/dataset.h"
#include "dreamdb/search.h"
#include "dreamdb/store.h"
#include "python/src/arrow_bindings.h"
#include "python/src/bindings.h"

namespace dreamdb::python {
namespace {

using Queries = nb::ndarray<const float, nb::ndim<2>, nb::c_contig, nb::device::cpu>;

nb::dict InfoDict(const IndexInfo& i) {
  nb::dict d;
  d["field"] = i.field;
  d["built"] = i.built;
  d["algorithm"] = i.algorithm;
  d["metric"] = i.metric;
  d["bits"] = i.bits;
  d["dim"] = i.dim;
  d["cells"] = i.cells;
  d["nprobe"] = i.nprobe;
  d["ef"] = i.ef;
  if (i.calibration_queries != 0) {
    nb::dict c;
    c["queries"] = i.calibration_queries;
    c["k"] = i.calibration_k;
    c["recall"] = i.calibration_recall;
    nb::list curve;
    for (const auto& [setting, recall] : i.calibration_curve) {
      curve.append(nb::make_tuple(setting, recall));
    }
    c["curve"] = curve;
    d["calibration"] = c;
  } else {
    d["calibration"] = nb::none();
  }
  d["quantizer"] = i.quantizer.empty() ? std::string("rabitq") : i.quantizer;
  d["nodes"] = i.nodes;
  d["tail"] = i.tail;
  d["degree"] = i.degree;
  d["entries"] = i.entries;
  d["buckets"] = i.buckets;
  d["live"] = i.live;
  d["stale"] = i.stale;
  d["index"] = i.built ? nb::object(nb::str(i.index.ToString().c_str())) : nb::none();
  d["model"] = i.built ? nb::object(nb::str(i.model.ToString().c_str())) : nb::none();
  nb::object balance = nb::none();
  if (i.balance_measured) {
    nb::dict b;
    b["nonempty"] = i.cells_nonempty;
    b["max"] = i.cell_max;
    b["mean"] = i.cell_mean;
    b["max_over_mean"] = i.cell_mean > 0 ? double(i.cell_max) / i.cell_mean : 0.0;
    b["cv"] = i.cell_cv;
    b["over_2x"] = i.cells_over;
    b["under_quarter"] = i.cells_under;
    balance = b;
  }
  d["balance"] = balance;
  nb::object drift = nb::none();
  if (i.sample_queries != 0) {
    nb::dict r;
    r["queries"] = i.sample_queries;
    r["nprobe"] = i.nprobe;
    r["recall"] = i.sample_recall;
    r["calibrated_recall"] =
        i.calibration_queries != 0 ? nb::object(nb::float_(i.calibration_recall)) : nb::none();
    r["drift"] = i.recall_drift;
    drift = r;
  }
  d["drift"] = drift;
  return d;
}

template <typename T>
nb::ndarray<nb::numpy, T, nb::ndim<1>> ToNumpy(std::vector<T> v) {
  auto* heap = new std::vector<T>(std::move(v));
  nb::capsule owner(heap, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
  return nb::ndarray<nb::numpy, T, nb::ndim<1>>(heap->data(), {heap->size()}, owner);
}

struct SearchArgs {
  std::string field;
  uint32_t k = 10;
  uint32_t nprobe = 0;
  std::vector<std::string> where;
  std::vector<std::string> fields;
  bool exact = false;
  bool rerank = true;
  uint64_t start = 0;
  uint64_t end = UINT64_MAX;
  uint32_t ef = 0;
  double recall = 0;
};

// (query, anchors, scores, projected stream or None, info) of one search of `ds`'s head.
nb::tuple SearchOn(const Dataset& ds, const Queries& q, const SearchArgs& a) {
  SearchResults r;
  {
    nb::gil_scoped_release release;
    SearchOptions o;
    o.k = a.k;
    o.nprobe = a.nprobe;
    o.ef = a.ef;
    o.recall = a.recall;
    o.exact = a.exact;
    o.rerank = a.rerank;
    o.start = a.start;
    o.end = a.end;
    o.fields = a.fields;
    for (const auto& w : a.where) o.where.push_back(ValueOrThrow(ParsePredicate(w)));
    r = ValueOrThrow(ds.Search(a.field, q.data(), q.shape(0), q.shape(1), o));
  }
  nb::object stream = nb::none();
  if (!r.columns.empty()) {
    std::vector<FieldSpec> specs;
    for (const auto& c : r.columns) specs.push_back(c.field());
    auto holder = std::make_shared<std::optional<Batch>>(Batch{r.anchors, r.columns});
    BatchSource source = [holder]() -> Result<std::optional<Batch>> {
      std::optional<Batch> out = std::move(*holder);
      holder->reset();
      return out;
    };
    stream = nb::cast(new ArrowStream(std::move(specs), std::move(source)),
                      nb::rv_policy::take_ownership);
  }
  nb::dict info;
  info["metric"] = r.metric;
  info["used_index"] = r.used_index;
  info["nprobe"] = r.nprobe;
  info["ef"] = r.ef;
  info["candidates"] = r.candidates;
  return nb::make_tuple(ToNumpy(std::move(r.query)), ToNumpy(std::move(r.anchors)),
                        ToNumpy(std::move(r.scores)), stream, info);
}

nb::dict StatusOn(const Dataset& ds, const std::string& field, bool balance = false,
                  uint32_t sample = 0) {
  IndexInfo info;
  {
    nb::gil_scoped_release release;
    IndexStatusOptions o;
    o.balance = balance;
    o.sample = sample;
    info = ValueOrThrow(ds.IndexStatus(field, o));
  }
  return InfoDict(info);
}

// index rebuild (step false) or index step on the writable handle `ds`.
nb::dict MaintainOn(Dataset& ds, const std::string& field, bool step, const std::string& message,
                    double split_above, double merge_below) {
  IndexInfo info;
  std::string head;
  StepIndexReport r;
  {
    nb::gil_scoped_release release;
    CommitOptions c;
    c.message = !message.empty() ? message : (step ? "index step " : "index rebuild ") + field;
    StepIndexOptions so;
    so.split_above = split_above;
    so.merge_below = merge_below;
    CommitInfo ci =
        ValueOrThrow(step ? ds.StepIndex(field, so, &r, {}, c) : ds.RebuildIndex(field, {}, c));
    head = ci.manifest.ToString();
    info = ValueOrThrow(ds.IndexStatus(field));
  }
  nb::dict d = InfoDict(info);
  d["head"] = head;
  if (step) {
    nb::dict s;
    s["changed"] = r.changed;
    s["cells_before"] = r.cells_before;
    s["cells_after"] = r.cells_after;
    s["split"] = r.split;
    s["merged"] = r.merged;
    s["renumbered"] = r.renumbered;
    s["entries_moved"] = r.entries_moved;
    s["stale_dropped"] = r.stale_dropped;
    s["buckets_written"] = r.buckets_written;
    s["buckets_kept"] = r.buckets_kept;
    s["nprobe_before"] = r.nprobe_before;
    s["nprobe_after"] = r.nprobe_after;
    d["step"] = s;
  }
  return d;
}

struct BuildArgs {
  std::string field;
  uint32_t cells = 0;
  uint32_t bits = 0;
  std::string metric;
  uint64_t seed = 0;
  std::string message;
  std::string algorithm;
  std::string quantizer;
  uint32_t degree = 0;
  bool calibrate = true;
};

// Builds on the writable handle `ds` (its head moves to the build's commit).
nb::dict BuildOn(Dataset& ds, const BuildArgs& a) {
  IndexInfo info;
  std::string head;
  {
    nb::gil_scoped_release release;
    BuildIndexOptions o;
    o.cells = a.cells;
    o.bits = a.bits;
    o.metric = a.metric;
    o.algorithm = a.algorithm;
    o.quantizer = a.quantizer;
    o.degree = a.degree;
    o.seed = a.seed;
    o.calibrate = a.calibrate;
    CommitOptions c;
    c.message = a.message.empty() ? "index build " + a.field : a.message;
    CommitInfo ci = ValueOrThrow(ds.BuildIndex(a.field, o, {}, c));
    head = ci.manifest.ToString();
    info = ValueOrThrow(ds.IndexStatus(a.field));
  }
  nb::dict d = InfoDict(info);
  d["head"] = head;
  return d;
}

std::shared_ptr<Dataset> OpenOrThrow(const std::shared_ptr<Store>& store, const std::string& name,
                                     const std::string& at, bool branch) {
  nb::gil_scoped_release release;
  return branch ? std::shared_ptr<Dataset>(ValueOrThrow(Dataset::Open(store, name, at)))
                : std::shared_ptr<Dataset>(ValueOrThrow(Dataset::OpenAt(store, name, at)));
}

}  // namespace

void AddSearchMethods(DatasetClass& cls) {
  cls.def(
      "search",
      [](const DatasetHandle& h, const std::string& field, const Queries& q, uint32_t k,
         uint32_t nprobe, std::vector<std::string> where, std::vector<std::string> fields,
         bool exact, bool rerank, uint64_t start, uint64_t end, uint32_t ef, double recall) {
        return SearchOn(*h.ds, q,
                        SearchArgs{field, k, nprobe, std::move(where), std::move(fields), exact,
                                   rerank, start, end, ef, recall});
      },
      nb::arg("field"), nb::arg("queries"), nb::arg("k") = 10, nb::arg("nprobe") = 0,
      nb::arg("where") = std::vector<std::string>{}, nb::arg("fields") = std::vector<std::string>{},
      nb::arg("exact") = false, nb::arg("rerank") = true, nb::arg("start") = 0,
      nb::arg("end") = UINT64_MAX, nb::arg("ef") = 0, nb::arg("recall") = 0.0,
      "Vector search of the handle's head (spec/21-spatial-index.md); use Dataset.search.");
  cls.def(
      "index_status",
      [](const DatasetHandle& h, const std::string& field, bool balance, uint32_t sample) {
        return StatusOn(*h.ds, field, balance, sample);
      },
      nb::arg("field"), nb::arg("balance") = false, nb::arg("sample") = 0);
  cls.def(
      "rebuild_index",
      [](DatasetHandle& h, const std::string& field, const std::string& message) {
        return MaintainOn(*h.ds, field, false, message, 2.0, 0.25);
      },
      nb::arg("field"), nb::arg("message") = "");
  cls.def(
      "step_index",
      [](DatasetHandle& h, const std::string& field, const std::string& message, double split_above,
         double merge_below) {
        return MaintainOn(*h.ds, field, true, message, split_above, merge_below);
      },
      nb::arg("field"), nb::arg("message") = "", nb::arg("split_above") = 1.5,
      nb::arg("merge_below") = 0.25);
  cls.def(
      "build_index",
      [](DatasetHandle& h, const std::string& field, uint32_t cells, uint32_t bits,
         const std::string& metric, uint64_t seed, const std::string& message,
         const std::string& algorithm, const std::string& quantizer, uint32_t degree,
         bool calibrate) {
        return BuildOn(*h.ds, BuildArgs{field, cells, bits, metric, seed, message, algorithm,
                                        quantizer, degree, calibrate});
      },
      nb::arg("field"), nb::arg("cells") = 0, nb::arg("bits") = 0, nb::arg("metric") = "",
      nb::arg("seed") = 0, nb::arg("message") = "", nb::arg("algorithm") = "",
      nb::arg("quantizer") = "", nb::arg("degree") = 0, nb::arg("calibrate") = true);
}

// The module functions: the same operations on a handle opened for the call.
void RegisterSearch(nb::module_& m) {
  m.def(
      "search",
      [](std::shared_ptr<Store> store, const std::string& name, const std::string& at,
         const std::string& field, const Queries& q, uint32_t k, uint32_t nprobe,
         std::vector<std::string> where, std::vector<std::string> fields, bool exact, bool rerank,
         uint64_t start, uint64_t end, uint32_t ef, double recall) {
        auto ds = OpenOrThrow(store, name, at, false);
        return SearchOn(*ds, q,
                        SearchArgs{field, k, nprobe, std::move(where), std::move(fields), exact,
                                   rerank, start, end, ef, recall});
      },
      nb::arg("store"), nb::arg("name"), nb::arg("at"), nb::arg("field"), nb::arg("queries"),
      nb::arg("k"), nb::arg("nprobe"), nb::arg("where"), nb::arg("fields"), nb::arg("exact"),
      nb::arg("rerank"), nb::arg("start"), nb::arg("end"), nb::arg("ef") = 0,
      nb::arg("recall") = 0.0,
      "Vector search of one version, opened for the call; Dataset.search keeps it warm.");
  m.def(
      "index_status",
      [](std::shared_ptr<Store> store, const std::string& name, const std::string& at,
         const std::string& field) {
        return StatusOn(*OpenOrThrow(store, name, at, false), field);
      },
      nb::arg("store"), nb::arg("name"), nb::arg("at"), nb::arg("field"));
  m.def(
      "build_index",
      [](std::shared_ptr<Store> store, const std::string& name, const std::string& branch,
         const std::string& field, uint32_t cells, uint32_t bits, const std::string& metric,
         uint64_t seed, const std::string& message, const std::string& algorithm,
         const std::string& quantizer, uint32_t degree, bool calibrate) {
        auto ds = OpenOrThrow(store, name, branch, true);
        return BuildOn(*ds, BuildArgs{field, cells, bits, metric, seed, message, algorithm,
                                      quantizer, degree, calibrate});
      },
      nb::arg("store"), nb::arg("name"), nb::arg("branch"), nb::arg("field"), nb::arg("cells"),
      nb::arg("bits"), nb::arg("metric"), nb::arg("seed"), nb::arg("message"),
      nb::arg("algorithm") = "", nb::arg("quantizer") = "", nb::arg("degree") = 0,
      nb::arg("calibrate") = true);
}

}  // namespace dreamdb::python
