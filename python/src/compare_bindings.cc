// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb._core.compare_refs and dreamdb._core.Compare: the wide comparison of several
// versions of a dataset (include/dreamdb/compare.h). The rows leave as a one-shot
// ArrowStream (the same zero-copy export as scans: each batch's buffers are handed to
// Arrow, not copied); the summary as a dict. Every call that reads runs with the GIL
// released.

#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dreamdb/compare.h"
#include "dreamdb/store.h"
#include "python/src/arrow_bindings.h"
#include "python/src/bindings.h"

namespace dreamdb::python {
namespace {

// The Python object: one comparison, read once.
struct CompareHandle {
  std::shared_ptr<CompareReader> reader;
  bool streamed = false;
};

nb::object OptFloat(const std::optional<double>& v) {
  return v ? nb::object(nb::float_(*v)) : nb::none();
}

bool IsNumeric(FieldType t) {
  return t == FieldType::kInt64 || t == FieldType::kFloat64 || t == FieldType::kTimestamp;
}

nb::dict SummaryDict(const CompareSummary& s) {
  nb::dict d;
  d["refs"] = s.refs;
  nb::list manifests;
  for (const auto& m : s.manifests) manifests.append(m.ToString());
  d["manifests"] = manifests;
  d["fields"] = s.fields;
  d["present"] = s.present;
  d["anchors"] = s.anchors;
  d["differing"] = s.differing;
  d["emitted"] = s.emitted;
  d["complete"] = s.complete;
  nb::list stats;
  for (const auto& st : s.stats) {
    const bool numeric = IsNumeric(st.type);
    const bool embedding = st.type == FieldType::kEmbedding;
    nb::dict x;
    x["field"] = st.field;
    x["type"] = std::string(FieldTypeName(st.type));
    x["baseline"] = s.refs[st.a];
    x["ref"] = s.refs[st.b];
    x["both"] = st.both;
    x["only_baseline"] = st.only_a;
    x["only_ref"] = st.only_b;
    x["differing"] = st.differing;
    x["agreement"] = OptFloat(st.agreement);
    x["numeric_count"] = numeric ? nb::object(nb::int_(st.numeric_count)) : nb::none();
    x["mean_diff"] = OptFloat(st.mean_diff);
    x["median_diff"] = OptFloat(st.median_diff);
    x["median_approximate"] = numeric ? nb::object(nb::bool_(st.median_approximate)) : nb::none();
    x["mean_abs_diff"] = OptFloat(st.mean_abs_diff);
    x["mean_cosine"] = embedding ? OptFloat(st.mean_cosine) : nb::none();
    x["min_cosine"] = embedding ? OptFloat(st.min_cosine) : nb::none();
    stats.append(x);
  }
  d["stats"] = stats;
  return d;
}

}  // namespace

void RegisterCompare(nb::module_& m) {
  nb::class_<CompareHandle>(m, "Compare",
                            "One comparison of refs; use dreamdb.compare_refs instead.")
      .def(
          "stream",
          [](CompareHandle& h) {
            if (h.streamed) {
              ThrowIfError(InvalidArgument(
                  "compare_refs: the rows were already streamed; run compare_refs again"));
            }
            h.streamed = true;
            std::vector<FieldSpec> columns = h.reader->columns();
            BatchSource source = [reader = h.reader]() -> Result<std::optional<Batch>> {
              ReleaseGilIfHeld unlocked;
              return reader->Next();
            };
            return new ArrowStream(std::move(columns), std::move(source));
          },
          nb::rv_policy::take_ownership,
          "The rows as a one-shot Arrow stream: anchor, then <field>@<ref> columns.")
      .def(
          "finish",
          [](CompareHandle& h) {
            h.streamed = true;
            CompareSummary s;
            {
              nb::gil_scoped_release release;
              s = ValueOrThrow(h.reader->Finish());
            }
            return SummaryDict(s);
          },
          "Reads what is left without building rows; returns the final summary.")
      .def(
          "summary", [](const CompareHandle& h) { return SummaryDict(h.reader->Summary()); },
          "The summary of what has been read so far (final once the stream ended).")
      .def_prop_ro("columns", [](const CompareHandle& h) {
        std::vector<std::string> names;
        for (const auto& c : h.reader->columns()) names.push_back(c.name);
        return names;
      });

  m.def(
      "compare_refs",
      [](std::shared_ptr<Store> store, const std::string& name,
         const std::vector<std::string>& refs, const std::vector<std::string>& fields,
         bool only_differing, uint64_t start, uint64_t end, uint64_t batch_rows, uint64_t limit,
         bool summary, uint64_t median_sample) {
        CompareOptions o;
        o.only_differing = only_differing;
        o.start = start;
        o.end = end;
        o.batch_rows = batch_rows;
        o.limit = limit;
        o.summary = summary;
        o.median_sample = median_sample;
        CompareHandle h;
        {
          nb::gil_scoped_release release;
          h.reader = ValueOrThrow(CompareRefs(store, name, refs, fields, o));
        }
        return h;
      },
      nb::arg("store"), nb::arg("name"), nb::arg("refs"), nb::arg("fields"),
      nb::arg("only_differing") = false, nb::arg("start") = 0, nb::arg("end") = UINT64_MAX,
      nb::arg("batch_rows") = 8192, nb::arg("limit") = UINT64_MAX, nb::arg("summary") = true,
      nb::arg("median_sample") = 65536,
      "Starts comparing `fields` of dataset `name` across `refs` (the first is the baseline).");
}

}  // namespace dreamdb::python
