// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb._core.Dataset: a thin handle on dreamdb::Dataset (include/dreamdb/dataset.h).
// Inputs arrive as Arrow C streams (the Python layer converts lists, dicts and pyarrow
// tables) and NumPy uint64 anchor arrays; reads leave as ArrowStream objects. Every call
// that may do I/O or real work runs with the GIL released.

#include <nanobind/ndarray.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dreamdb/dataset.h"
#include "dreamdb/quote.h"
#include "dreamdb/store.h"
#include "python/src/arrow_bindings.h"
#include "python/src/arrow_import.h"
#include "python/src/bindings.h"

namespace dreamdb::python {
namespace {

using Anchors = nb::ndarray<const uint64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

std::vector<uint64_t> ToVector(const Anchors& a) {
  return std::vector<uint64_t>(a.data(), a.data() + a.shape(0));
}

DatasetHandle Wrap(std::shared_ptr<Store> store, std::unique_ptr<Dataset> ds) {
  return DatasetHandle{std::move(store), std::shared_ptr<Dataset>(std::move(ds))};
}

// Moves the stream out of a capsule (the capsule keeps an empty shell).
ArrowArrayStream TakeStream(nb::handle capsule) {
  ArrowArrayStream* p = StreamFromCapsule(capsule);
  ArrowArrayStream moved = *p;
  p->release = nullptr;
  return moved;
}

// Exports one batch (Take) as a stream.
ArrowStream* OneBatchStream(Batch batch) {
  std::vector<FieldSpec> fields;
  for (const auto& c : batch.columns) fields.push_back(c.field());
  auto holder = std::make_shared<std::optional<Batch>>(std::move(batch));
  BatchSource source = [holder]() -> Result<std::optional<Batch>> {
    std::optional<Batch> out = std::move(*holder);
    holder->reset();
    return out;
  };
  return new ArrowStream(std::move(fields), std::move(source));
}

}  // namespace

nb::dict CommitDict(const CommitInfo& c) {
  nb::dict d;
  d["manifest"] = c.manifest.ToString();
  nb::list parents;
  for (const auto& p : c.parents) parents.append(p.ToString());
  d["parents"] = parents;
  d["writer"] = c.writer;
  d["message"] = c.message;
  d["time_ns"] = c.time_ns;
  d["count"] = c.count;
  d["added"] = c.added;
  d["replaced"] = c.replaced;
  d["deleted"] = c.deleted;
  d["fields"] = c.fields;
  d["schema_version"] = c.schema_version;
  d["attempts"] = c.attempts;
  d["objects_written"] = c.objects_written;
  if (c.history_pruned) d["history_pruned"] = true;  // spec/06-refs.md §6.10
  return d;
}

void RegisterDataset(nb::module_& m) {
  DatasetClass cls(m, "Dataset", "Low-level dataset handle; use dreamdb.Dataset instead.");
  AddSearchMethods(cls);
  AddMergeMethods(cls);
  cls.def_static(
         "create",
         [](std::shared_ptr<Store> store, const std::string& name, const Schema& schema,
            const std::string& message) {
           nb::gil_scoped_release release;
           CommitOptions o;
           o.message = message;
           return Wrap(store, ValueOrThrow(Dataset::Create(store, name, schema, o)));
         },
         nb::arg("store"), nb::arg("name"), nb::arg("schema"), nb::arg("message") = "")
      .def_static(
          "open",
          [](std::shared_ptr<Store> store, const std::string& name, const std::string& branch) {
            nb::gil_scoped_release release;
            return Wrap(store, ValueOrThrow(Dataset::Open(store, name, branch)));
          },
          nb::arg("store"), nb::arg("name"), nb::arg("branch") = "main")
      .def_static(
          "open_at",
          [](std::shared_ptr<Store> store, const std::string& name, const std::string& at) {
            nb::gil_scoped_release release;
            return Wrap(store, ValueOrThrow(Dataset::OpenAt(store, name, at)));
          },
          nb::arg("store"), nb::arg("name"), nb::arg("at"))
      .def_prop_ro("store", [](const DatasetHandle& h) { return h.store; })
      .def_prop_ro("name", [](const DatasetHandle& h) { return h.ds->name(); })
      .def_prop_ro("branch",
                   [](const DatasetHandle& h) -> std::optional<std::string> {
                     if (h.ds->read_only()) return std::nullopt;
                     return h.ds->branch();
                   })
      .def_prop_ro("read_only", [](const DatasetHandle& h) { return h.ds->read_only(); })
      .def_prop_ro("head", [](const DatasetHandle& h) { return h.ds->head().ToString(); })
      .def_prop_ro("schema", [](const DatasetHandle& h) { return h.ds->schema(); })
      .def_prop_ro("meta", [](const DatasetHandle& h) { return h.ds->Meta(); })
      .def("count", [](const DatasetHandle& h) { return h.ds->Count(); })
      .def("refresh",
           [](DatasetHandle& h) {
             nb::gil_scoped_release release;
             ThrowIfError(h.ds->Refresh());
           })
      .def(
          "append",
          [](DatasetHandle& h, nb::handle capsule, const std::string& message) {
            ArrowArrayStream stream = TakeStream(capsule);
            CommitInfo info;
            {
              nb::gil_scoped_release release;
              const Schema schema = h.ds->schema();
              FieldLookup lookup = [&](std::string_view name) -> Result<FieldSpec> {
                if (const FieldSpec* f = schema.Find(name)) return *f;
                std::string known;
                for (const auto& k : schema.fields()) known += (known.empty() ? "" : ", ") + k.name;
                return InvalidArgument("append: unknown field " + Quote(name) +
                                       " (the schema has: " + known + ")");
              };
              Batch batch = ValueOrThrow(ImportStream(&stream, lookup));
              CommitOptions o;
              o.message = message;
              info = ValueOrThrow(h.ds->AppendMany(batch, o));
            }
            return CommitDict(info);
          },
          nb::arg("stream"), nb::arg("message") = "",
          "Appends the rows of an Arrow stream capsule (column 'anchor' optional).")
      .def(
          "delete",
          [](DatasetHandle& h, const Anchors& anchors, const std::string& message) {
            std::vector<uint64_t> a = ToVector(anchors);
            CommitInfo info;
            {
              nb::gil_scoped_release release;
              CommitOptions o;
              o.message = message;
              info = ValueOrThrow(h.ds->Delete(a, o));
            }
            return CommitDict(info);
          },
          nb::arg("anchors"), nb::arg("message") = "")
      .def(
          "add_layer",
          [](DatasetHandle& h, const FieldSpec& field, const Anchors& anchors, nb::handle capsule,
             const std::string& message) {
            std::vector<uint64_t> a = ToVector(anchors);
            ArrowArrayStream stream = TakeStream(capsule);
            CommitInfo info;
            {
              nb::gil_scoped_release release;
              FieldLookup lookup = [&](std::string_view name) -> Result<FieldSpec> {
                if (name == field.name) return field;
                return InvalidArgument("layer " + Quote(field.name) + ": unexpected column " +
                                       Quote(name));
              };
              Batch batch = ValueOrThrow(ImportStream(&stream, lookup));
              if (batch.columns.size() != 1) {
                ThrowIfError(InvalidArgument("layer " + Quote(field.name) + ": no values given"));
              }
              CommitOptions o;
              o.message = message;
              info = ValueOrThrow(h.ds->AddLayer(field, a, batch.columns[0], o));
            }
            return CommitDict(info);
          },
          nb::arg("field"), nb::arg("anchors"), nb::arg("stream"), nb::arg("message") = "")
      .def(
          "set_meta",
          [](DatasetHandle& h, const std::map<std::string, std::string>& meta,
             const std::string& message) {
            CommitInfo info;
            {
              nb::gil_scoped_release release;
              CommitOptions o;
              o.message = message;
              info = ValueOrThrow(h.ds->SetMeta(meta, o));
            }
            return CommitDict(info);
          },
          nb::arg("meta"), nb::arg("message") = "")
      .def(
          "snapshot",
          [](DatasetHandle& h, const std::string& label) {
            nb::gil_scoped_release release;
            ThrowIfError(h.ds->Snapshot(label));
          },
          nb::arg("label"))
      .def(
          "create_branch",
          [](DatasetHandle& h, const std::string& name) {
            nb::gil_scoped_release release;
            ThrowIfError(h.ds->Branch(name));
          },
          nb::arg("name"))
      .def(
          "scan",
          [](DatasetHandle& h, std::vector<std::string> fields, uint64_t start, uint64_t end,
             uint64_t batch_rows, uint64_t limit, bool anchors_only) {
            ScanOptions o;
            o.fields = std::move(fields);
            o.start = start;
            o.end = end;
            o.batch_rows = batch_rows;
            o.limit = limit;
            o.anchors_only = anchors_only;
            std::shared_ptr<BatchReader> reader;
            {
              nb::gil_scoped_release release;
              reader = ValueOrThrow(h.ds->Scan(o));
            }
            std::vector<FieldSpec> specs = reader->schema().fields();
            // The reader borrows the dataset: the stream keeps both alive.
            BatchSource source = [ds = h.ds, reader]() -> Result<std::optional<Batch>> {
              ReleaseGilIfHeld unlocked;
              return reader->Next();
            };
            return new ArrowStream(std::move(specs), std::move(source));
          },
          nb::arg("fields"), nb::arg("start") = 0, nb::arg("end") = UINT64_MAX,
          nb::arg("batch_rows") = 8192, nb::arg("limit") = UINT64_MAX,
          nb::arg("anchors_only") = false, nb::rv_policy::take_ownership,
          "Streams records in ascending anchor order (projected to `fields`, all when empty). "
          "anchors_only: only the anchor column, read from the index pages alone.")
      .def(
          "anchors",
          [](DatasetHandle& h, uint64_t start, uint64_t end) {
            auto* out = new std::vector<uint64_t>();
            try {
              nb::gil_scoped_release release;
              ScanOptions o;
              o.start = start;
              o.end = end;
              o.batch_rows = 65536;
              o.anchors_only = true;
              auto reader = ValueOrThrow(h.ds->Scan(o));
              if (start == 0 && end == UINT64_MAX) out->reserve(h.ds->Count());
              while (true) {
                std::optional<Batch> b = ValueOrThrow(reader->Next());
                if (!b) break;
                out->insert(out->end(), b->anchors.begin(), b->anchors.end());
              }
              out->shrink_to_fit();
            } catch (...) {
              delete out;
              throw;
            }
            nb::capsule owner(
                out, [](void* p) noexcept { delete static_cast<std::vector<uint64_t>*>(p); });
            return nb::ndarray<nb::numpy, uint64_t, nb::ndim<1>>(out->data(), {out->size()}, owner);
          },
          nb::arg("start") = 0, nb::arg("end") = UINT64_MAX,
          "The live anchors in [start, end), ascending, as a NumPy uint64 array. Reads only "
          "the anchor index pages (no field data).")
      .def(
          "read_units",
          [](DatasetHandle& h, const std::vector<std::string>& fields, uint64_t min_records,
             uint64_t max_records) {
            auto* out = new std::vector<uint64_t>();
            try {
              nb::gil_scoped_release release;
              std::vector<ReadUnit> units =
                  ValueOrThrow(h.ds->ReadUnits(fields, min_records, max_records));
              out->reserve(3 * units.size());
              for (const ReadUnit& u : units) out->insert(out->end(), {u.first, u.last, u.records});
            } catch (...) {
              delete out;
              throw;
            }
            nb::capsule owner(
                out, [](void* p) noexcept { delete static_cast<std::vector<uint64_t>*>(p); });
            return nb::ndarray<nb::numpy, uint64_t, nb::ndim<2>>(out->data(), {out->size() / 3, 3},
                                                                 owner);
          },
          nb::arg("fields"), nb::arg("min_records") = 1, nb::arg("max_records") = UINT64_MAX,
          "Units of consecutive records for parallel readers that scan whole units, as a NumPy "
          "uint64 array of rows (first anchor, last anchor, records): a unit ends where a "
          "field's values move to another segment once it holds min_records, and at "
          "max_records at the latest. Reads only the anchor index pages.")
      .def(
          "take",
          [](DatasetHandle& h, const Anchors& anchors, const std::vector<std::string>& fields,
             bool allow_missing) {
            std::vector<uint64_t> a = ToVector(anchors);
            Batch batch;
            {
              nb::gil_scoped_release release;
              batch = ValueOrThrow(h.ds->Take(a, fields, allow_missing));
            }
            return OneBatchStream(std::move(batch));
          },
          nb::arg("anchors"), nb::arg("fields"), nb::arg("allow_missing") = false,
          nb::rv_policy::take_ownership)
      .def(
          "history",
          [](DatasetHandle& h, uint64_t limit) {
            std::vector<CommitInfo> commits;
            {
              nb::gil_scoped_release release;
              ThrowIfError(h.ds->History(
                  [&](const CommitInfo& c) {
                    commits.push_back(c);
                    return true;
                  },
                  limit));
            }
            nb::list out;
            for (const auto& c : commits) out.append(CommitDict(c));
            return out;
          },
          nb::arg("limit") = 0)
      .def(
          "diff",
          [](DatasetHandle& h, const std::string& other) {
            std::vector<DiffEntry> entries;
            {
              nb::gil_scoped_release release;
              // A manifest id, snapshot label or branch name of this dataset.
              auto at = ValueOrThrow(Dataset::OpenAt(h.store, h.ds->name(), other));
              ThrowIfError(h.ds->Diff(at->head(), [&](const DiffEntry& e) {
                entries.push_back(e);
                return true;
              }));
            }
            nb::list out;
            for (const auto& e : entries) {
              nb::dict d;
              d["anchor"] = e.anchor;
              d["kind"] = e.kind == DiffEntry::Kind::kAdded     ? "added"
                          : e.kind == DiffEntry::Kind::kRemoved ? "removed"
                                                                : "changed";
              d["fields"] = e.fields;
              out.append(d);
            }
            return out;
          },
          nb::arg("other"))
      .def("read_stats",
           [](const DatasetHandle& h) {
             ReadStats s = h.ds->read_stats();
             nb::dict d;
             d["requests"] = s.requests;
             d["bytes_fetched"] = s.bytes_fetched;
             d["cache_hits"] = s.cache_hits;
             return d;
           })
      .def("verify", [](DatasetHandle& h) {
        VerifyReport report;
        {
          nb::gil_scoped_release release;
          report = ValueOrThrow(Verify(*h.store, h.ds->name()));
        }
        nb::dict d;
        d["refs"] = report.refs;
        d["objects"] = report.objects;
        d["bytes"] = report.bytes;
        d["problems"] = report.problems;
        return d;
      });
}

}  // namespace dreamdb::python
