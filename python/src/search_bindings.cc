// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb._core.search / build_index / index_status: vector search over a dataset
// (include/dreamdb/search.h, spec/21-spatial-index.md). The Python layer
// (dreamdb.Dataset.search, build_index, index_status) passes the store, the dataset name
// and the version to read (the handle's head manifest) or the branch to write.
//
// Read handles are kept in a small per-process cache keyed by (store, name, manifest), so
// repeated searches of one version reuse the handle's caches (models, directory pages,
// buckets, segments) instead of starting cold. Every call runs with the GIL released.

#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "dreamdb/dataset.h"
#include "dreamdb/search.h"
#include "dreamdb/store.h"
#include "python/src/arrow_bindings.h"
#include "python/src/bindings.h"

namespace dreamdb::python {
namespace {

using Queries = nb::ndarray<const float, nb::ndim<2>, nb::c_contig, nb::device::cpu>;

// Read-only handles on recently searched versions (immutable, so never stale). Cleared
// at interpreter exit (the handles hold Python-owned stores).
std::mutex cache_mu;
std::list<std::tuple<const Store*, std::string, std::string, std::shared_ptr<Dataset>>>
    handle_cache;  // guarded by cache_mu; front = newest

void ClearHandles() {
  std::list<std::tuple<const Store*, std::string, std::string, std::shared_ptr<Dataset>>> old;
  {
    std::lock_guard<std::mutex> lock(cache_mu);
    old.swap(handle_cache);
  }
}

std::shared_ptr<Dataset> ReadHandle(const std::shared_ptr<Store>& store, const std::string& name,
                                    const std::string& at) {
  auto& mu = cache_mu;
  auto& cache = handle_cache;
  {
    std::lock_guard<std::mutex> lock(mu);
    for (auto it = cache.begin(); it != cache.end(); ++it) {
      if (std::get<0>(*it) == store.get() && std::get<1>(*it) == name && std::get<2>(*it) == at) {
        cache.splice(cache.begin(), cache, it);
        return std::get<3>(cache.front());
      }
    }
  }
  std::shared_ptr<Dataset> ds = ValueOrThrow(Dataset::OpenAt(store, name, at));
  std::lock_guard<std::mutex> lock(mu);
  cache.emplace_front(store.get(), name, at, ds);
  while (cache.size() > 4) cache.pop_back();
  return ds;
}

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
  return d;
}

template <typename T>
nb::ndarray<nb::numpy, T, nb::ndim<1>> ToNumpy(std::vector<T> v) {
  auto* heap = new std::vector<T>(std::move(v));
  nb::capsule owner(heap, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
  return nb::ndarray<nb::numpy, T, nb::ndim<1>>(heap->data(), {heap->size()}, owner);
}

}  // namespace

void RegisterSearch(nb::module_& m) {
  nb::module_::import_("atexit").attr("register")(nb::cpp_function([] { ClearHandles(); }));
  m.def(
      "search",
      [](std::shared_ptr<Store> store, const std::string& name, const std::string& at,
         const std::string& field, const Queries& q, uint32_t k, uint32_t nprobe,
         const std::vector<std::string>& where, const std::vector<std::string>& fields, bool exact,
         bool rerank, uint64_t start, uint64_t end, uint32_t ef, double recall) {
        SearchResults r;
        {
          nb::gil_scoped_release release;
          SearchOptions o;
          o.k = k;
          o.nprobe = nprobe;
          o.ef = ef;
          o.recall = recall;
          o.exact = exact;
          o.rerank = rerank;
          o.start = start;
          o.end = end;
          o.fields = fields;
          for (const auto& w : where) o.where.push_back(ValueOrThrow(ParsePredicate(w)));
          std::shared_ptr<Dataset> ds = ReadHandle(store, name, at);
          r = ValueOrThrow(ds->Search(field, q.data(), q.shape(0), q.shape(1), o));
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
      },
      nb::arg("store"), nb::arg("name"), nb::arg("at"), nb::arg("field"), nb::arg("queries"),
      nb::arg("k"), nb::arg("nprobe"), nb::arg("where"), nb::arg("fields"), nb::arg("exact"),
      nb::arg("rerank"), nb::arg("start"), nb::arg("end"), nb::arg("ef") = 0,
      nb::arg("recall") = 0.0,
      "Vector search of one version (spec/21-spatial-index.md); use Dataset.search.");
  m.def(
      "index_status",
      [](std::shared_ptr<Store> store, const std::string& name, const std::string& at,
         const std::string& field) {
        IndexInfo info;
        {
          nb::gil_scoped_release release;
          info = ValueOrThrow(ReadHandle(store, name, at)->IndexStatus(field));
        }
        return InfoDict(info);
      },
      nb::arg("store"), nb::arg("name"), nb::arg("at"), nb::arg("field"));
  m.def(
      "build_index",
      [](std::shared_ptr<Store> store, const std::string& name, const std::string& branch,
         const std::string& field, uint32_t cells, uint32_t bits, const std::string& metric,
         uint64_t seed, const std::string& message, const std::string& algorithm,
         const std::string& quantizer, uint32_t degree, bool calibrate) {
        IndexInfo info;
        std::string head;
        {
          nb::gil_scoped_release release;
          std::shared_ptr<Dataset> ds = ValueOrThrow(Dataset::Open(store, name, branch));
          BuildIndexOptions o;
          o.cells = cells;
          o.bits = bits;
          o.metric = metric;
          o.algorithm = algorithm;
          o.quantizer = quantizer;
          o.degree = degree;
          o.seed = seed;
          o.calibrate = calibrate;
          CommitOptions c;
          c.message = message.empty() ? "index build " + field : message;
          CommitInfo ci = ValueOrThrow(ds->BuildIndex(field, o, {}, c));
          head = ci.manifest.ToString();
          info = ValueOrThrow(ds->IndexStatus(field));
        }
        nb::dict d = InfoDict(info);
        d["head"] = head;
        return d;
      },
      nb::arg("store"), nb::arg("name"), nb::arg("branch"), nb::arg("field"), nb::arg("cells"),
      nb::arg("bits"), nb::arg("metric"), nb::arg("seed"), nb::arg("message"),
      nb::arg("algorithm") = "", nb::arg("quantizer") = "", nb::arg("degree") = 0,
      nb::arg("calibrate") = true);
}

}  // namespace dreamdb::python
