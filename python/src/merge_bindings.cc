// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb._core.merge: merges sources into a branch (Dataset::MergeMany,
// spec/14-semantics.md §16). The Python layer (dreamdb.Dataset.merge / merge_many)
// passes the store, the dataset name and the branch to write, then refreshes its handle.
// Runs with the GIL released; a conflict becomes dreamdb.ConflictError (errors.cc).

#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <memory>
#include <string>
#include <vector>

#include "dreamdb/dataset.h"
#include "dreamdb/store.h"
#include "python/src/bindings.h"
#include "src/base/encoding.h"

namespace dreamdb::python {
namespace {

MergePolicy ParsePolicy(const std::string& policy) {
  if (policy == "fail") return MergePolicy::kFail;
  if (policy == "ours") return MergePolicy::kOurs;
  if (policy == "theirs") return MergePolicy::kTheirs;
  throw StatusError(
      InvalidArgument("merge: policy must be 'fail', 'ours' or 'theirs', not " + Quote(policy)));
}

nb::list Ids(const std::vector<ObjectId>& ids) {
  nb::list out;
  for (const ObjectId& id : ids) out.append(id.ToString());
  return out;
}

}  // namespace

void RegisterMerge(nb::module_& m) {
  m.def(
      "merge",
      [](std::shared_ptr<Store> store, const std::string& name, const std::string& branch,
         const std::vector<std::string>& sources, const std::string& policy, bool no_ff,
         const std::string& message, const std::string& writer) {
        MergeOptions options;
        options.policy = ParsePolicy(policy);
        options.no_ff = no_ff;
        options.message = message;
        options.writer = writer;
        CommitInfo info;
        MergeReport report;
        {
          nb::gil_scoped_release release;
          auto ds = ValueOrThrow(Dataset::Open(store, name, branch));
          info = ValueOrThrow(ds->MergeMany(sources, options, &report));
        }
        nb::dict d;
        d["manifest"] = info.manifest.ToString();
        d["parents"] = Ids(info.parents);
        d["writer"] = info.writer;
        d["message"] = info.message;
        d["time_ns"] = info.time_ns;
        d["count"] = info.count;
        d["added"] = info.added;
        d["replaced"] = info.replaced;
        d["deleted"] = info.deleted;
        d["fields"] = info.fields;
        d["schema_version"] = info.schema_version;
        d["attempts"] = info.attempts;
        d["objects_written"] = info.objects_written;
        d["result"] = report.up_to_date     ? "up-to-date"
                      : report.fast_forward ? "fast-forward"
                                            : "merged";
        d["sources"] = Ids(report.sources);
        nb::list bases;
        for (const auto& b : report.merge_bases) bases.append(Ids(b));
        d["merge_bases"] = bases;
        d["conflicts_resolved"] = report.conflicts;
        d["conflict_descriptions"] = report.conflict_descriptions;
        return d;
      },
      nb::arg("store"), nb::arg("name"), nb::arg("branch"), nb::arg("sources"), nb::arg("policy"),
      nb::arg("no_ff"), nb::arg("message"), nb::arg("writer"),
      "Merges sources into a branch (spec/14-semantics.md §16); use Dataset.merge.");
}

}  // namespace dreamdb::python
