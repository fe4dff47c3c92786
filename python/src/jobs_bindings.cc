// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb._core jobs: sharded jobs and the anchor allocator (dreamdb/jobs.h,
// spec/14-semantics.md §19). The Python layer is dreamdb.jobs. Store work runs with the
// GIL released.

#include <nanobind/stl/optional.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/unique_ptr.h>

#include <memory>
#include <optional>
#include <string>

#include "dreamdb/jobs.h"
#include "dreamdb/store.h"
#include "python/src/bindings.h"

namespace dreamdb::python {

void RegisterJobs(nb::module_& m) {
  m.def(
      "job_shard_index",
      [](const std::optional<std::string>& shard, const std::optional<std::string>& of) {
        ShardIndex index = ValueOrThrow(ResolveShardIndex(shard, of));
        return nb::make_tuple(index.shard, index.of, index.source);
      },
      nb::arg("shard").none(), nb::arg("of").none(),
      "(shard, of, source) from the given values, else from Slurm array or Kubernetes "
      "Indexed Job variables (spec/14-semantics.md §19.8); use dreamdb.jobs.shard_index.");

  nb::class_<ShardRun>(m, "ShardRun",
                       "One run of one shard of a sharded job (spec/14-semantics.md §19.5); use "
                       "dreamdb.jobs.ShardWriter.")
      .def_static(
          "begin",
          [](std::shared_ptr<Store> store, const std::string& name, const std::string& job,
             const std::string& branch, uint32_t shard, uint32_t of) {
            std::unique_ptr<ShardRun> run;
            {
              nb::gil_scoped_release release;
              run = ValueOrThrow(
                  ShardRun::Begin(store, name, job, branch, ShardIndex{shard, of, "arguments"}));
            }
            return run;
          },
          nb::arg("store"), nb::arg("name"), nb::arg("job"), nb::arg("branch"), nb::arg("shard"),
          nb::arg("of"), "Steps 1-3: the plan, the work branch at the job's base.")
      .def_prop_ro(
          "done", [](const ShardRun& r) { return r.done(); },
          "True when the shard had finished already (nothing to write).")
      .def_prop_ro(
          "result", [](const ShardRun& r) { return r.result().ToString(); },
          "The shard's result manifest (when done).")
      .def_prop_ro(
          "base", [](const ShardRun& r) { return r.base().ToString(); }, "The job's base manifest.")
      .def_prop_ro(
          "work_branch", [](const ShardRun& r) { return r.work_branch(); },
          "The branch this shard writes to (empty when done).")
      .def(
          "reserve",
          [](ShardRun& r, uint64_t n) {
            nb::gil_scoped_release release;
            return ValueOrThrow(r.Reserve(n));
          },
          nb::arg("n"), "Reserves n anchors; returns the first of [first, first + n).")
      .def(
          "finish",
          [](ShardRun& r) {
            nb::gil_scoped_release release;
            ThrowIfError(r.Finish());
          },
          "Publishes the shard's result ref and deletes its work branch.");

  m.def(
      "job_commit",
      [](std::shared_ptr<Store> store, const std::string& name, const std::string& job,
         const std::string& message) {
        JobCommitReport r;
        {
          nb::gil_scoped_release release;
          CommitOptions o;
          o.message = message;
          r = ValueOrThrow(CommitJob(store, name, job, o));
        }
        nb::dict d;
        d["job"] = job;
        d["branch"] = r.branch;
        d["shards"] = r.shards;
        d["already_committed"] = r.already_committed;
        d["added"] = r.added;
        d["count"] = r.info.count;
        d["manifest"] = r.manifest.ToString();
        if (r.index) {
          d["field"] = r.field;
          d["index"] = r.index->ToString();
        }
        return d;
      },
      nb::arg("store"), nb::arg("name"), nb::arg("job"), nb::arg("message"),
      "Publishes every shard of a job in one commit; use dreamdb.jobs.commit.");

  m.def(
      "job_status",
      [](std::shared_ptr<Store> store, const std::string& name, const std::string& job) {
        JobStatus s;
        {
          nb::gil_scoped_release release;
          s = ValueOrThrow(ReadJobStatus(*store, name, job));
        }
        nb::dict d;
        d["job"] = job;
        d["branch"] = s.branch;
        d["of"] = s.of;
        d["base"] = s.base.ToString();
        nb::list finished;
        for (uint32_t n : s.finished) finished.append(n);
        d["finished"] = finished;
        d["committed"] = s.committed ? nb::cast(s.committed->ToString()) : nb::none();
        if (s.trained) d["trained"] = s.trained->ToString();
        return d;
      },
      nb::arg("store"), nb::arg("name"), nb::arg("job"),
      "The job's plan, finished shards and commit; use dreamdb.jobs.status.");

  // The sharded index build (spec/14 §19.10): dreamdb.jobs.index_train / index_shard /
  // index_commit. Each returns the stage's report as a dict.
  auto report_dict = [](const IndexJobReport& r) {
    nb::dict d;
    d["already_done"] = r.already_done;
    d["field"] = r.field;
    d["branch"] = r.branch;
    d["of"] = r.of;
    d["base"] = r.base.ToString();
    d["index"] = r.index.ToString();
    d["cells"] = r.cells;
    d["entries"] = r.entries;
    d["buckets"] = r.buckets;
    d["start"] = r.start;
    d["end"] = r.end == UINT64_MAX ? nb::none() : nb::cast(r.end);
    d["manifest"] = r.manifest == ObjectId() ? nb::none() : nb::cast(r.manifest.ToString());
    return d;
  };
  m.def(
      "index_job_train",
      [report_dict](std::shared_ptr<Store> store, const std::string& name, const std::string& job,
                    const std::string& field, uint32_t of, const std::string& branch, bool rebuild,
                    const std::string& algorithm, const std::string& metric, uint32_t bits,
                    const std::string& quantizer, uint32_t cells, uint64_t seed) {
        IndexJobReport r;
        {
          nb::gil_scoped_release release;
          BuildIndexOptions o;
          if (rebuild) {
            o = ValueOrThrow(StoredIndexOptions(store, name, branch, field));
          } else {
            o.algorithm = algorithm;
            o.metric = metric;
            o.bits = bits;
            o.quantizer = quantizer;
            o.cells = cells;
            o.seed = seed;
          }
          r = ValueOrThrow(TrainIndexJob(store, name, job, branch, field, of, o));
        }
        return report_dict(r);
      },
      nb::arg("store"), nb::arg("name"), nb::arg("job"), nb::arg("field"), nb::arg("of"),
      nb::arg("branch"), nb::arg("rebuild"), nb::arg("algorithm"), nb::arg("metric"),
      nb::arg("bits"), nb::arg("quantizer"), nb::arg("cells"), nb::arg("seed"),
      "The train stage of a sharded index build; use dreamdb.jobs.index_train.");
  m.def(
      "index_job_shard",
      [report_dict](std::shared_ptr<Store> store, const std::string& name, const std::string& job,
                    uint32_t shard, uint32_t of) {
        IndexJobReport r;
        {
          nb::gil_scoped_release release;
          r = ValueOrThrow(RunIndexShard(store, name, job, ShardIndex{shard, of, "arguments"}));
        }
        return report_dict(r);
      },
      nb::arg("store"), nb::arg("name"), nb::arg("job"), nb::arg("shard"), nb::arg("of"),
      "One shard of a sharded index build; use dreamdb.jobs.index_shard.");
  m.def(
      "index_job_commit",
      [report_dict](std::shared_ptr<Store> store, const std::string& name, const std::string& job,
                    const std::string& message) {
        IndexJobReport r;
        {
          nb::gil_scoped_release release;
          CommitOptions c;
          c.message = message;
          r = ValueOrThrow(CommitIndexJob(store, name, job, {}, c));
        }
        return report_dict(r);
      },
      nb::arg("store"), nb::arg("name"), nb::arg("job"), nb::arg("message"),
      "Publishes a sharded index build; use dreamdb.jobs.index_commit.");
}

}  // namespace dreamdb::python
