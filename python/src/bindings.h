// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Shared declarations of the dreamdb._core bindings: one Register* function per public
// area (errors, schema, store, arrow, dataset), each in its own file, all called from
// module.cc. Errors are translated in one place (errors.cc): binding code turns a non-OK
// Status into a C++ StatusError and never builds a Python exception itself.

#ifndef DREAMDB_PYTHON_BINDINGS_H_
#define DREAMDB_PYTHON_BINDINGS_H_

#include <nanobind/nanobind.h>

#include <exception>
#include <memory>
#include <string>
#include <utility>

#include "dreamdb/dataset.h"
#include "dreamdb/status.h"
#include "dreamdb/store.h"

namespace dreamdb::python {

namespace nb = nanobind;

// A non-OK Status crossing into Python; errors.cc maps it to dreamdb.errors.<Class>.
class StatusError : public std::exception {
 public:
  explicit StatusError(Status status) : status_(std::move(status)), what_(status_.ToString()) {}
  const Status& status() const { return status_; }
  const char* what() const noexcept override { return what_.c_str(); }

 private:
  Status status_;
  std::string what_;
};

inline void ThrowIfError(const Status& s) {
  if (!s.ok()) throw StatusError(s);
}

template <typename T>
T ValueOrThrow(Result<T> r) {
  if (!r.ok()) throw StatusError(r.status());
  return std::move(r).value();
}

// Releases the GIL for the lifetime of the object if this thread holds it (callbacks
// such as an Arrow stream's get_next may be called with or without it).
class ReleaseGilIfHeld {
 public:
  ReleaseGilIfHeld() {
    if (PyGILState_Check()) state_ = PyEval_SaveThread();
  }
  ~ReleaseGilIfHeld() {
    if (state_ != nullptr) PyEval_RestoreThread(state_);
  }
  ReleaseGilIfHeld(const ReleaseGilIfHeld&) = delete;
  ReleaseGilIfHeld& operator=(const ReleaseGilIfHeld&) = delete;

 private:
  PyThreadState* state_ = nullptr;
};

// The Python object dreamdb._core.Dataset: the dataset plus the store it came from (to
// resolve refs in diff). Its methods use the handle's warm caches (decoded index state,
// segments, pages). Thread-safe (Dataset is).
struct DatasetHandle {
  std::shared_ptr<Store> store;
  std::shared_ptr<Dataset> ds;
};
using DatasetClass = nb::class_<DatasetHandle>;

// A commit's figures as a dict (dataset_bindings.cc).
nb::dict CommitDict(const CommitInfo& c);

void RegisterErrors(nb::module_& m);
void RegisterSchema(nb::module_& m);
void RegisterStore(nb::module_& m);
void RegisterArrow(nb::module_& m);
void RegisterDataset(nb::module_& m);
void RegisterCompare(nb::module_& m);
void RegisterSearch(nb::module_& m);  // search_bindings.cc (vector search)
void RegisterMerge(nb::module_& m);   // merge_bindings.cc (branch merges)
// Dataset.search / build_index / index_status (search_bindings.cc) and merge / compact
// (merge_bindings.cc), added to the handle class by RegisterDataset.
void AddSearchMethods(DatasetClass& cls);
void AddMergeMethods(DatasetClass& cls);
void RegisterJobs(nb::module_& m);  // jobs_bindings.cc (sharded jobs)

}  // namespace dreamdb::python

#endif  // DREAMDB_PYTHON_BINDINGS_H_
