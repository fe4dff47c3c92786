// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Implements include/dreamdb/clone.h.
#include "dreamdb/clone.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "src/base/encoding.h"
#include "src/dataset/manifest.h"
#include "src/dataset/reach.h"

namespace dreamdb {
namespace {

bool IsLease(std::string_view name) { return name.find("/leases/") != std::string_view::npos; }

// Whether manifest `ancestor` is `id` or one of its ancestors in `store`.
Result<bool> Descends(Store& store, const ObjectId& id, const ObjectId& ancestor) {
  std::deque<ObjectId> queue{id};
  std::unordered_set<ObjectId> seen{id};
  while (!queue.empty()) {
    ObjectId next = queue.front();
    queue.pop_front();
    if (next == ancestor) return true;
    ASSIGN_OR_RETURN(Bytes bytes, store.Get(next));
    auto m = dataset::DecodeManifest(bytes);
    if (!m.ok()) return false;  // not a manifest: nothing descends from it
    for (const ObjectId& p : m->parents) {
      if (seen.insert(p).second) queue.push_back(p);
    }
  }
  return false;
}

// The source as the closure walk sees it: every call goes to `src` (verified and counted
// there), and the bytes of each object read whole are kept, up to `budget` bytes, so the
// copy does not read them again. Thread-safe.
class RetainingReads final : public ObjectBackend {
 public:
  RetainingReads(Store& src, uint64_t budget) : src_(src), budget_(budget) {}

  Status Put(const ObjectId& id, ByteView data) override { return src_.PutWithId(id, data); }
  Result<Bytes> Get(const ObjectId& id) override {
    {
      std::lock_guard lock(mu_);
      auto it = kept_.find(id);
      if (it != kept_.end()) return it->second;
    }
    ASSIGN_OR_RETURN(Bytes data, src_.Get(id));
    std::lock_guard lock(mu_);
    if (used_ + data.size() <= budget_ && kept_.emplace(id, data).second) used_ += data.size();
    return data;
  }
  Result<Bytes> GetRange(const ObjectId& id, uint64_t offset, uint64_t length) override {
    return src_.GetRange(id, offset, length);
  }
  Result<ObjectInfo> Head(const ObjectId& id) override { return src_.Head(id); }
  Status List(std::string_view shard_prefix, const ObjectVisitor& visit) override {
    return src_.ListObjects(shard_prefix, visit);
  }
  Status Delete(const ObjectId& id) override { return src_.DeleteObject(id); }
  // The source counts every call itself, so the Store over this backend counts none.
  std::optional<StoreStats> Stats() const override { return src_.stats(); }

  // The kept bytes of `id` (handed over once), else nullopt.
  std::optional<Bytes> Take(const ObjectId& id) {
    std::lock_guard lock(mu_);
    auto it = kept_.find(id);
    if (it == kept_.end()) return std::nullopt;
    std::optional<Bytes> out(std::move(it->second));
    kept_.erase(it);
    return out;
  }
  // Drops what the copy will not need.
  void Forget(const ObjectId& id) {
    std::lock_guard lock(mu_);
    kept_.erase(id);
  }

 private:
  Store& src_;
  const uint64_t budget_;
  std::mutex mu_;
  std::unordered_map<ObjectId, Bytes> kept_;  // guarded by mu_
  uint64_t used_ = 0;  // guarded by mu_ (never decreases: a bound on reads kept)
};

}  // namespace

Status Clone(Store& src, Store& dst, const CloneOptions& options, CloneReport* report_out) {
  CloneReport local;
  CloneReport& report = report_out != nullptr ? *report_out : local;
  report = CloneReport{};
  auto progress = [&](std::string_view phase, uint64_t done, uint64_t total) {
    if (options.progress) options.progress({phase, done, total, report.bytes_copied});
  };

  // 1. The refs to copy.
  std::vector<RefValue> refs;
  RETURN_IF_ERROR(src.ListRefs("", [&](const RefValue& r) {
    if (!IsLease(r.name)) refs.push_back(r);
    return true;
  }));
  if (!options.refs.empty()) {
    std::vector<RefValue> chosen;
    for (const std::string& want : options.refs) {
      bool matched = false;
      for (const RefValue& r : refs) {
        if (r.name == want || r.name.rfind(want + "/", 0) == 0) {
          matched = true;
          if (std::none_of(chosen.begin(), chosen.end(),
                           [&](const RefValue& c) { return c.name == r.name; })) {
            chosen.push_back(r);
          }
        }
      }
      if (!matched) {
        return NotFound("no ref or dataset " + Quote(want) + " in the source store");
      }
    }
    refs = std::move(chosen);
  }
  report.refs = refs.size();

  // 2. Their closure, read (and verified) from the source. The walk reads every object of
  // the closure whole; the copy reuses those reads (`reads` keeps them).
  auto reads = std::make_shared<RetainingReads>(src, options.retain_bytes);
  StoreOptions walk_options = src.options();
  walk_options.verify_reads = false;  // src.Get verified them already
  std::unique_ptr<Store> walked = Store::FromBackends(
      src.uri(), reads, std::shared_ptr<RefBackend>(&src.ref_backend(), [](RefBackend*) {}),
      walk_options);
  std::vector<RefValue> roots;
  std::unordered_map<ObjectId, uint64_t> closure;  // id -> size
  std::vector<ObjectId> order;
  auto add = [&](const ObjectId& id, uint64_t size) {
    if (closure.emplace(id, size).second) order.push_back(id);
  };
  for (const RefValue& r : refs) {
    ASSIGN_OR_RETURN(Bytes target, walked->Get(r.target));
    if (dataset::PeekKind(target) != dataset::kManifestKind) {
      add(r.target, target.size());  // a raw ref target names nothing else
      continue;
    }
    auto m = dataset::DecodeManifest(target);
    std::string dataset_name = r.name.substr(0, r.name.find('/'));
    if (m.ok() && r.name.find('/') == std::string::npos) {
      // A ref outside the dataset name spaces: walked as its dataset's (as GC does).
      auto g = walked->Get(m->genesis);
      auto gen = g.ok() ? dataset::DecodeGenesis(*g) : Result<dataset::Genesis>(g.status());
      if (gen.ok()) dataset_name = gen->name;
      roots.push_back({dataset_name + "/" + r.name, r.target});
    } else {
      roots.push_back(r);
    }
  }
  std::unordered_set<ObjectId> pruned;
  RETURN_IF_ERROR(ListPruned(src, "", &pruned));
  VerifyReport walk = WalkReachable(
      *walked, roots, add, [&](uint64_t n) { progress("walk", n, 0); }, &pruned);
  if (!walk.problems.empty()) {
    std::string first = walk.problems.front();
    return Corrupt("the source's refs reach " + std::to_string(walk.problems.size()) +
                   " missing or damaged object(s); nothing was cloned (first: " + first + ")");
  }
  report.objects = order.size();

  // 3. What the destination lacks, copied in parallel; then made durable.
  std::unordered_set<ObjectId> present;
  RETURN_IF_ERROR(dst.ListObjects("", [&](const ObjectInfo& info) {
    if (closure.count(info.id) != 0) present.insert(info.id);
    return true;
  }));
  std::vector<ObjectId> missing;
  for (const ObjectId& id : order) {
    if (present.count(id) == 0) {
      missing.push_back(id);
    } else {
      reads->Forget(id);
    }
  }
  report.objects_present = order.size() - missing.size();
  std::atomic<size_t> next{0};
  std::atomic<uint64_t> copied{0}, bytes{0};
  std::mutex error_mu;
  Status first_error = Status::Ok();
  auto worker = [&] {
    for (;;) {
      {
        std::lock_guard lock(error_mu);
        if (!first_error.ok()) return;
      }
      size_t i = next.fetch_add(1);
      if (i >= missing.size()) return;
      Status st = [&]() -> Status {
        std::optional<Bytes> kept = reads->Take(missing[i]);
        if (!kept) {
          ASSIGN_OR_RETURN(kept, src.Get(missing[i]));
        }
        const Bytes& data = *kept;
        RETURN_IF_ERROR(dst.PutWithId(missing[i], data));
        bytes.fetch_add(data.size());
        return Status::Ok();
      }();
      if (!st.ok()) {
        std::lock_guard lock(error_mu);
        if (first_error.ok())
          first_error = st.WithContext("copying object " + missing[i].ToString());
        return;
      }
      copied.fetch_add(1);
    }
  };
  const int threads = std::clamp(options.parallelism, 1, 64);
  std::atomic<int> running{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads && static_cast<size_t>(t) < missing.size(); ++t) {
    running.fetch_add(1);
    pool.emplace_back([&] {
      worker();
      running.fetch_sub(1);
    });
  }
  // The calling thread reports progress while the pool copies.
  while (running.load() > 0) {
    report.bytes_copied = bytes.load();
    progress("copy", report.objects_present + copied.load(), order.size());
    for (int i = 0; i < 20 && running.load() > 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  for (std::thread& t : pool) t.join();
  report.objects_copied = copied.load();
  report.bytes_copied = bytes.load();
  progress("copy", report.objects_present + report.objects_copied, order.size());
  RETURN_IF_ERROR(first_error);
  RETURN_IF_ERROR(dst.Sync());

  // 4. The refs, last (each one's closure is now complete in the destination).
  uint64_t handled = 0;
  for (const RefValue& r : refs) {
    progress("refs", handled++, refs.size());
    auto now = dst.ReadRef(r.name);
    if (!now.ok() && now.status().code() != StatusCode::kNotFound) return now.status();
    if (!now.ok()) {
      Status st = dst.CreateRef(r.name, r.target);
      if (st.ok()) {
        ++report.refs_created;
        continue;
      }
      if (st.code() != StatusCode::kAlreadyExists) return st.WithContext("ref " + Quote(r.name));
      now = dst.ReadRef(r.name);  // created meanwhile: judge its value below
      RETURN_IF_ERROR(now.status());
    }
    if (now->target == r.target) {
      ++report.refs_unchanged;
      continue;
    }
    if (IsSnapshotRef(r.name)) {
      report.conflicts.push_back("snapshot " + Quote(r.name) + " is " + now->target.ToString() +
                                 " in the destination, " + r.target.ToString() + " in the source");
      continue;
    }
    ASSIGN_OR_RETURN(bool forward, Descends(src, r.target, now->target));
    if (!forward) {
      report.conflicts.push_back("ref " + Quote(r.name) + " diverged: the destination's " +
                                 now->target.ToString() + " is not an ancestor of the source's " +
                                 r.target.ToString());
      continue;
    }
    Status st = dst.UpdateRef(r.name, now->target, r.target);
    if (st.code() == StatusCode::kConflict) {
      report.conflicts.push_back("ref " + Quote(r.name) + " moved in the destination meanwhile");
      continue;
    }
    RETURN_IF_ERROR(st.WithContext("ref " + Quote(r.name)));
    ++report.refs_updated;
  }
  progress("refs", handled, refs.size());
  if (!report.conflicts.empty()) {
    return Conflict(std::to_string(report.conflicts.size()) +
                    " ref(s) left alone in the destination (first: " + report.conflicts.front() +
                    ")");
  }
  return Status::Ok();
}

}  // namespace dreamdb
