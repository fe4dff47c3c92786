// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb.Store: a handle on a store URI (memory://, memory://NAME, file:///path or a
// local path), plus the store-wide operations: list datasets, verify.

#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <memory>
#include <string>
#include <vector>

#include "dreamdb/dataset.h"
#include "dreamdb/store.h"
#include "python/src/bindings.h"

namespace dreamdb::python {

void RegisterStore(nb::module_& m) {
  nb::class_<Store>(m, "Store",
                    "A store of objects and refs, opened by URI. Thread-safe; share one handle "
                    "among datasets. memory:// is private to the handle; memory://NAME is shared "
                    "by every handle in the process that names NAME.")
      .def_static(
          "open",
          [](const std::string& uri) {
            std::unique_ptr<Store> s;
            {
              nb::gil_scoped_release release;
              s = ValueOrThrow(Store::Open(uri));
            }
            return std::shared_ptr<Store>(std::move(s));
          },
          nb::arg("uri"),
          "Opens the store at `uri`: 'memory://' (a new private store), 'memory://NAME' (one "
          "per NAME per process), 'file:///abs/path' or a local path (created if absent). "
          "'s3://bucket/prefix?endpoint=...' (credentials from the AWS_* variables or "
          "~/.aws/credentials); other schemes are InvalidArgumentError.")
      .def_prop_ro("uri", &Store::uri, "The URI this store was opened with.")
      .def(
          "list_datasets",
          [](Store& s) {
            std::vector<std::string> names;
            nb::gil_scoped_release release;
            ThrowIfError(ListDatasets(s, [&](std::string_view n) {
              names.emplace_back(n);
              return true;
            }));
            return names;
          },
          "Names of the datasets in the store, sorted.")
      .def(
          "verify",
          [](Store& s, const std::string& name) {
            VerifyReport report;
            {
              nb::gil_scoped_release release;
              report = ValueOrThrow(Verify(s, name));
            }
            nb::dict d;
            d["refs"] = report.refs;
            d["objects"] = report.objects;
            d["bytes"] = report.bytes;
            d["problems"] = report.problems;
            return d;
          },
          nb::arg("name") = "",
          "Checks that every object reachable from the refs of dataset `name` (all datasets "
          "when empty) is present and intact. Returns {'refs', 'objects', 'bytes', "
          "'problems'}; 'problems' is empty when the data is healthy.")
      .def("__repr__", [](const Store& s) { return "Store(" + s.uri() + ")"; });
}

}  // namespace dreamdb::python
