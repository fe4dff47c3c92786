// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Dataset benchmarks through the public C++ API (include/dreamdb/dataset.h), measured
// against the targets in the design notes ("Writes", "Reads", "Scale"):
//
//   commits  1-record AppendMany (int64 + float64) repeated as the history grows: per
//            window of commits, p50/p99/max latency, CommitInfo::objects_written, time
//            spent in each backend call (object puts, sync, ref CAS, reads) and, for
//            file://, the system calls the file backend makes (counted through its
//            FileBackendOptions::fault_hook, which only counts here).
//   ingest   768-d float32 embeddings + int64 + float64, batches of --batch rows:
//            records/s and MB/s of column bytes (3,088 bytes per record).
//   scan     Dataset::Scan of embeddings + scalars in a fresh process (fork + exec of this
//            binary with the internal mode `scan-child`), so the peak RSS (VmHWM) is the
//            scan's: pass 1 and pass 2 (fresh handle, warm page cache; the reported GB/s),
//            at the snapshots taken during the ingest (--snapshots) and at the end, to show
//            whether peak memory grows with the dataset. Ingest and scan run --reps times.
//   take     Dataset::Take of random anchors (and of a contiguous range) for the small
//            fields and for the embedding: rows/s and bytes fetched / bytes returned from
//            Dataset::read_stats() (segments only), and all bytes the backend returned
//            (index pages too), on a fresh handle each time (warm page cache).
//
// A plain driver rather than Google Benchmark: the growth curve of the commit benchmark
// and the fork/exec of the scan do not fit its model. It prints Markdown tables and
// writes every number to a JSON file (--json).
//
//   dataset_bench [--smoke] [--dir DIR] [--json FILE] [--only commits,ingest,scan,take]
//                 [--commits N] [--memory-commits N] [--window N] [--records N]
//                 [--batch N] [--snapshots N,N,...] [--reps N] [--take-reps N]
//                 [--no-memory] [--keep]
//   dataset_bench take-existing URI RECORDS [CASE]   # take only, on a store kept with
//                                                    # --keep; CASE e.g. id+score:random:1000
//
// The file:// stores live in a fresh directory under --dir (default $DREAMDB_BENCH_DIR,
// else $TMPDIR, else /tmp), removed at the end unless --keep.

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "dreamdb/dataset.h"
#include "dreamdb/store.h"
#include "src/store/local/file_backend.h"

namespace {

using dreamdb::Batch;
using dreamdb::Column;
using dreamdb::CommitInfo;
using dreamdb::Dataset;
using dreamdb::FieldSpec;
using dreamdb::ObjectId;
using dreamdb::Result;
using dreamdb::Schema;
using dreamdb::Status;
using dreamdb::Store;
using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

constexpr uint32_t kDim = 768;
constexpr uint64_t kRecordBytes = 8 + 8 + 4 * kDim;  // int64 + float64 + embedding

[[noreturn]] void Die(const std::string& what, const Status& s) {
  std::fprintf(stderr, "dataset_bench: %s: %s\n", what.c_str(), s.ToString().c_str());
  std::exit(1);
}

template <typename T>
T Check(Result<T> r, const std::string& what) {
  if (!r.ok()) Die(what, r.status());
  return std::move(*r);
}

void Check(const Status& s, const std::string& what) {
  if (!s.ok()) Die(what, s);
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Nearest-rank percentile of an unsorted sample (p in [0, 100]).
double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}

double Median(std::vector<double> v) { return Percentile(std::move(v), 50); }

std::string Fmt(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, v);
  return buf;
}

std::string Ms(double seconds) { return Fmt("%.2f ms", seconds * 1e3); }

// Peak and current resident set size of this process, from /proc/self/status (kB).
std::map<std::string, uint64_t> ProcStatus() {
  std::ifstream in("/proc/self/status");
  std::map<std::string, uint64_t> out;
  std::string line;
  while (std::getline(in, line)) {
    for (const char* key : {"VmHWM", "VmRSS"}) {
      if (line.rfind(std::string(key) + ":", 0) == 0) {
        out[key] = std::strtoull(line.c_str() + std::strlen(key) + 1, nullptr, 10);
      }
    }
  }
  return out;
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

// ---- A backend wrapper that times every call (and counts the file backend's syscalls) ----

enum Op : int {
  kPut,
  kSync,
  kGet,
  kGetRange,
  kHead,
  kObjList,
  kObjDelete,
  kRefRead,
  kRefCreate,
  kRefCas,
  kRefDelete,
  kRefList,
  kNumOps
};
constexpr std::array<const char*, kNumOps> kOpNames = {
    "put",    "sync",     "get",        "get_range", "head",       "list",
    "delete", "ref_read", "ref_create", "ref_cas",   "ref_delete", "ref_list"};

constexpr std::array<const char*, 12> kSyscalls = {"open",  "read",   "write", "fsync",
                                                   "close", "rename", "link",  "unlink",
                                                   "mkdir", "stat",   "utime", "flock"};

struct Counters {
  std::array<std::atomic<uint64_t>, kNumOps> calls{};
  std::array<std::atomic<uint64_t>, kNumOps> ns{};
  std::array<std::atomic<uint64_t>, kSyscalls.size()> syscalls{};
  std::atomic<uint64_t> bytes_read{0};  // returned by get and get_range

  struct Snapshot {
    uint64_t bytes_read = 0;
    std::array<uint64_t, kNumOps> calls{}, ns{};
    std::array<uint64_t, kSyscalls.size()> syscalls{};
    Snapshot operator-(const Snapshot& o) const {
      Snapshot d;
      d.bytes_read = bytes_read - o.bytes_read;
      for (int i = 0; i < kNumOps; ++i)
        d.calls[i] = calls[i] - o.calls[i], d.ns[i] = ns[i] - o.ns[i];
      for (size_t i = 0; i < kSyscalls.size(); ++i) d.syscalls[i] = syscalls[i] - o.syscalls[i];
      return d;
    }
  };
  Snapshot Take() const {
    Snapshot s;
    s.bytes_read = bytes_read.load();
    for (int i = 0; i < kNumOps; ++i) s.calls[i] = calls[i].load(), s.ns[i] = ns[i].load();
    for (size_t i = 0; i < kSyscalls.size(); ++i) s.syscalls[i] = syscalls[i].load();
    return s;
  }
  void CountSyscall(std::string_view name) {
    for (size_t i = 0; i < kSyscalls.size(); ++i) {
      if (name == kSyscalls[i]) {
        syscalls[i].fetch_add(1, std::memory_order_relaxed);
        return;
      }
    }
  }
};

class TimedBackend final : public dreamdb::ObjectBackend, public dreamdb::RefBackend {
 public:
  TimedBackend(std::shared_ptr<dreamdb::ObjectBackend> objects,
               std::shared_ptr<dreamdb::RefBackend> refs, std::shared_ptr<Counters> counters)
      : objects_(std::move(objects)), refs_(std::move(refs)), c_(std::move(counters)) {}

 private:
  template <typename F>
  auto Time(Op op, F&& f) {
    auto t0 = Clock::now();
    auto r = f();
    c_->calls[op].fetch_add(1, std::memory_order_relaxed);
    c_->ns[op].fetch_add(
        static_cast<uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count()),
        std::memory_order_relaxed);
    return r;
  }

 public:
  Status Put(const ObjectId& id, dreamdb::ByteView data) override {
    return Time(kPut, [&] { return objects_->Put(id, data); });
  }
  Status PutUnsynced(const ObjectId& id, dreamdb::ByteView data) override {
    return Time(kPut, [&] { return objects_->PutUnsynced(id, data); });
  }
  Status Sync() override {
    return Time(kSync, [&] { return objects_->Sync(); });
  }
  Result<dreamdb::Bytes> Get(const ObjectId& id) override {
    auto r = Time(kGet, [&] { return objects_->Get(id); });
    if (r.ok()) c_->bytes_read.fetch_add(r->size(), std::memory_order_relaxed);
    return r;
  }
  Result<dreamdb::Bytes> GetRange(const ObjectId& id, uint64_t off, uint64_t len) override {
    auto r = Time(kGetRange, [&] { return objects_->GetRange(id, off, len); });
    if (r.ok()) c_->bytes_read.fetch_add(r->size(), std::memory_order_relaxed);
    return r;
  }
  Result<dreamdb::ObjectInfo> Head(const ObjectId& id) override {
    return Time(kHead, [&] { return objects_->Head(id); });
  }
  Status List(std::string_view prefix, const dreamdb::ObjectVisitor& visit) override {
    return Time(kObjList, [&] { return objects_->List(prefix, visit); });
  }
  Status Delete(const ObjectId& id) override {
    return Time(kObjDelete, [&] { return objects_->Delete(id); });
  }
  Result<dreamdb::RefValue> Read(std::string_view name) override {
    return Time(kRefRead, [&] { return refs_->Read(name); });
  }
  Status Create(std::string_view name, const ObjectId& target) override {
    return Time(kRefCreate, [&] { return refs_->Create(name, target); });
  }
  Status CompareAndSwap(std::string_view name, const ObjectId& expected,
                        const ObjectId& desired) override {
    return Time(kRefCas, [&] { return refs_->CompareAndSwap(name, expected, desired); });
  }
  Status Delete(std::string_view name, const ObjectId& expected) override {
    return Time(kRefDelete, [&] { return refs_->Delete(name, expected); });
  }
  // Forwarded so the file backend can overlap the objects' sync with the ref write; timed
  // as a CAS (the sync inside it is counted as a sync call).
  Status SyncThenCompareAndSwap(dreamdb::ObjectBackend& objects, std::string_view name,
                                const ObjectId& expected, const ObjectId& desired) override {
    dreamdb::ObjectBackend& inner = &objects == this ? *objects_ : objects;
    c_->calls[kSync].fetch_add(1, std::memory_order_relaxed);
    return Time(kRefCas,
                [&] { return refs_->SyncThenCompareAndSwap(inner, name, expected, desired); });
  }
  Status SyncThenCreate(dreamdb::ObjectBackend& objects, std::string_view name,
                        const ObjectId& target) override {
    dreamdb::ObjectBackend& inner = &objects == this ? *objects_ : objects;
    c_->calls[kSync].fetch_add(1, std::memory_order_relaxed);
    return Time(kRefCreate, [&] { return refs_->SyncThenCreate(inner, name, target); });
  }
  Status List(std::string_view prefix, const dreamdb::RefVisitor& visit) override {
    return Time(kRefList, [&] { return refs_->List(prefix, visit); });
  }

 private:
  std::shared_ptr<dreamdb::ObjectBackend> objects_;
  std::shared_ptr<dreamdb::RefBackend> refs_;
  std::shared_ptr<Counters> c_;
};

struct OpenedStore {
  std::shared_ptr<Store> store;
  std::shared_ptr<Counters> counters;
};

// file:///path: the file backend with a syscall-counting hook, wrapped in TimedBackend.
// memory://: a fresh memory store wrapped the same way (through a Store kept alive).
OpenedStore OpenStore(const std::string& uri) {
  OpenedStore out;
  out.counters = std::make_shared<Counters>();
  if (uri.rfind("file://", 0) == 0) {
    dreamdb::FileBackendOptions fo;
    std::weak_ptr<Counters> weak = out.counters;
    fo.fault_hook = [weak](std::string_view call, const std::string&) {
      if (auto c = weak.lock()) c->CountSyscall(call);
      return 0;
    };
    auto fb = Check(dreamdb::FileBackend::Open(uri.substr(7), fo), "open " + uri);
    auto timed = std::make_shared<TimedBackend>(fb, fb, out.counters);
    out.store = Store::FromBackends(uri, timed, timed);
    return out;
  }
  // Keep the inner store alive; wrap its backends without owning them.
  std::shared_ptr<Store> inner = Check(Store::Open(uri), "open " + uri);
  std::shared_ptr<dreamdb::ObjectBackend> objects(inner, &inner->object_backend());
  std::shared_ptr<dreamdb::RefBackend> refs(inner, &inner->ref_backend());
  auto timed = std::make_shared<TimedBackend>(objects, refs, out.counters);
  out.store = Store::FromBackends(uri, timed, timed);
  return out;
}

// ---- Data ----

uint64_t SplitMix(uint64_t& x) {
  x += 0x9e3779b97f4a7c15ull;
  uint64_t z = x;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

Schema EmbeddingSchema() {
  Schema s;
  Check(s.AddInt64("id"), "schema");
  Check(s.AddFloat64("score"), "schema");
  Check(s.AddEmbedding("emb", kDim), "schema");
  return s;
}

// `rows` records starting at `first`: id = first + i, score, and a pseudo-random embedding
// in [-1, 1) (distinct for every record, so no segment is ever deduplicated).
Batch MakeEmbeddingBatch(const Schema& schema, uint64_t first, uint64_t rows) {
  Column id(*schema.Find("id")), score(*schema.Find("score"));
  std::string ids(rows * 8, '\0'), scores(rows * 8, '\0'), embs(rows * kDim * 4, '\0');
  uint64_t x = first * 0x2545F4914F6CDD1Dull + 1;
  for (uint64_t i = 0; i < rows; ++i) {
    int64_t v = static_cast<int64_t>(first + i);
    double d = static_cast<double>(first + i) * 0.25;
    std::memcpy(ids.data() + i * 8, &v, 8);
    std::memcpy(scores.data() + i * 8, &d, 8);
  }
  auto* f = reinterpret_cast<float*>(embs.data());
  for (uint64_t i = 0; i < rows * kDim; i += 2) {
    uint64_t r = SplitMix(x);
    f[i] = static_cast<float>(static_cast<int32_t>(r >> 32)) * (1.0f / 2147483648.0f);
    if (i + 1 < rows * kDim) {
      f[i + 1] = static_cast<float>(static_cast<int32_t>(r & 0xffffffffu)) * (1.0f / 2147483648.0f);
    }
  }
  Batch b;
  b.columns.push_back(
      Check(Column::FromBuffers(*schema.Find("id"), rows, "", std::move(ids), "", ""), "ids"));
  b.columns.push_back(Check(
      Column::FromBuffers(*schema.Find("score"), rows, "", std::move(scores), "", ""), "scores"));
  b.columns.push_back(
      Check(Column::FromBuffers(*schema.Find("emb"), rows, "", std::move(embs), "", ""), "embs"));
  return b;
}

uint64_t ColumnBytes(const Batch& b) {
  uint64_t n = 0;
  for (const auto& c : b.columns) n += c.values().size() + c.offsets().size() + c.data().size();
  return n;
}

// Median wall time of writing 4 KiB to a new file and fsync()ing it, 20 times, in `dir`:
// what one durable write costs on that disk right now (it varies with other I/O).
double FsyncProbeMs(const std::string& dir) {
  std::vector<double> t;
  std::string data(4096, 'x');
  for (int i = 0; i < 20; ++i) {
    std::string path = dir + "/fsync-probe-" + std::to_string(i);
    auto t0 = Clock::now();
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()) &&
              ::fsync(fd) == 0;
    ::close(fd);
    t.push_back(Seconds(Clock::now() - t0));
    ::unlink(path.c_str());
    if (!ok) return -1;
  }
  return Median(t) * 1e3;
}

// ---- Options ----

struct Options {
  bool smoke = false;
  bool memory = true;
  bool keep = false;
  std::string dir;
  std::string json_path;
  std::vector<std::string> only;
  uint64_t commits = 10000;
  uint64_t memory_commits = 100000;
  uint64_t window = 1000;
  uint64_t records = 200000;
  uint64_t batch = 10000;
  int take_reps = 5;
  int reps = 3;  // ingest and scan runs
  // Record counts at which the ingest takes a snapshot (and the end): the scan runs at each.
  std::vector<uint64_t> snapshot_at = {100000};
  std::string self;  // path of this binary, for the scan child

  bool Want(const std::string& what) const {
    return only.empty() || std::find(only.begin(), only.end(), what) != only.end();
  }
};

// ---- 1. Small commits ----

json BenchCommits(const std::string& label, const std::string& uri, uint64_t n, uint64_t window) {
  OpenedStore os = OpenStore(uri);
  Schema schema;
  Check(schema.AddInt64("a"), "schema");
  Check(schema.AddFloat64("b"), "schema");
  auto ds = Check(Dataset::Create(os.store, "small", schema), "create");
  const FieldSpec& fa = *schema.Find("a");
  const FieldSpec& fb = *schema.Find("b");

  std::printf("\n### Small commits on %s: %" PRIu64 " one-record AppendMany (int64 + float64)\n\n",
              label.c_str(), n);
  std::printf(
      "| commits | p50 | p99 | max | objects/commit mean (min–max) | put calls | sync calls | "
      "ref CAS | time in put / sync / CAS / reads | fsync + rename + link /commit |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
  json windows = json::array();
  std::vector<double> lat, all_lat;
  std::vector<uint64_t> objs;
  lat.reserve(window);
  auto snap = os.counters->Take();
  auto start = Clock::now();
  uint64_t rebases = 0;
  for (uint64_t i = 0; i < n; ++i) {
    Batch b;
    Column a(fa), c(fb);
    a.AppendInt64(static_cast<int64_t>(i));
    c.AppendFloat64(static_cast<double>(i) * 0.5);
    b.columns.push_back(std::move(a));
    b.columns.push_back(std::move(c));
    auto t0 = Clock::now();
    CommitInfo info = Check(ds->AppendMany(b), "append " + std::to_string(i));
    double s = Seconds(Clock::now() - t0);
    lat.push_back(s);
    all_lat.push_back(s);
    objs.push_back(info.objects_written);
    rebases += info.attempts - 1;
    if (lat.size() == window || i + 1 == n) {
      auto now = os.counters->Take();
      auto d = now - snap;
      snap = now;
      const double k = static_cast<double>(lat.size());
      double mean_obj =
          static_cast<double>(std::accumulate(objs.begin(), objs.end(), uint64_t{0})) / k;
      uint64_t min_obj = *std::min_element(objs.begin(), objs.end());
      uint64_t max_obj = *std::max_element(objs.begin(), objs.end());
      auto per = [&](Op op) { return static_cast<double>(d.calls[op]) / k; };
      auto ms_per = [&](Op op) { return static_cast<double>(d.ns[op]) / 1e6 / k; };
      double read_ms = ms_per(kGet) + ms_per(kGetRange) + ms_per(kHead) + ms_per(kRefRead);
      auto sys = [&](const char* name) {
        for (size_t j = 0; j < kSyscalls.size(); ++j) {
          if (std::strcmp(kSyscalls[j], name) == 0) return static_cast<double>(d.syscalls[j]) / k;
        }
        return 0.0;
      };
      json w = {{"end_commit", i + 1},
                {"commits", lat.size()},
                {"p50_ms", Percentile(lat, 50) * 1e3},
                {"p99_ms", Percentile(lat, 99) * 1e3},
                {"max_ms", Percentile(lat, 100) * 1e3},
                {"mean_ms", std::accumulate(lat.begin(), lat.end(), 0.0) / k * 1e3},
                {"objects_mean", mean_obj},
                {"objects_min", min_obj},
                {"objects_max", max_obj}};
      json calls = json::object(), ms = json::object(), sc = json::object();
      for (int op = 0; op < kNumOps; ++op) {
        calls[kOpNames[op]] = per(static_cast<Op>(op));
        ms[kOpNames[op]] = ms_per(static_cast<Op>(op));
      }
      for (size_t j = 0; j < kSyscalls.size(); ++j)
        sc[kSyscalls[j]] = static_cast<double>(d.syscalls[j]) / k;
      w["backend_calls_per_commit"] = calls;
      w["backend_ms_per_commit"] = ms;
      w["syscalls_per_commit"] = sc;
      windows.push_back(w);
      std::printf("| %" PRIu64 "–%" PRIu64 " | %s | %s | %s | %.2f (%" PRIu64 "–%" PRIu64
                  ") | %.2f | %.2f | %.2f | %.2f / %.2f / %.2f / %.2f ms | %.1f + %.1f + %.1f |\n",
                  i + 2 - lat.size(), i + 1, Ms(Percentile(lat, 50)).c_str(),
                  Ms(Percentile(lat, 99)).c_str(), Ms(Percentile(lat, 100)).c_str(), mean_obj,
                  min_obj, max_obj, per(kPut), per(kSync), per(kRefCas), ms_per(kPut),
                  ms_per(kSync), ms_per(kRefCas), read_ms, sys("fsync"), sys("rename"),
                  sys("link"));
      std::fflush(stdout);
      lat.clear();
      objs.clear();
    }
  }
  double total = Seconds(Clock::now() - start);
  // Open cost at the end of the history (file://: a fresh store handle, no caches).
  double open_s = 0;
  if (uri.rfind("file://", 0) == 0) {
    OpenedStore fresh = OpenStore(uri);
    auto t0 = Clock::now();
    auto reopened = Check(Dataset::Open(fresh.store, "small"), "reopen");
    open_s = Seconds(Clock::now() - t0);
    if (reopened->Count() != n) {
      std::fprintf(stderr, "dataset_bench: reopened count %" PRIu64 " != %" PRIu64 "\n",
                   reopened->Count(), n);
      std::exit(1);
    }
  }
  std::printf("\n%" PRIu64
              " commits in %.1f s (%.1f commits/s); overall p50 %s, p99 %s; "
              "%" PRIu64 " rebases%s\n",
              n, total, static_cast<double>(n) / total, Ms(Percentile(all_lat, 50)).c_str(),
              Ms(Percentile(all_lat, 99)).c_str(), rebases,
              open_s > 0 ? (", reopen after the last commit " + Ms(open_s)).c_str() : "");
  return {{"store", label},
          {"uri", uri},
          {"commits", n},
          {"window", window},
          {"total_s", total},
          {"p50_ms", Percentile(all_lat, 50) * 1e3},
          {"p99_ms", Percentile(all_lat, 99) * 1e3},
          {"reopen_ms", open_s * 1e3},
          {"rebases", rebases},
          {"windows", windows}};
}

// ---- 2. Bulk ingest ----

json BenchIngest(const std::string& label, OpenedStore& os, uint64_t records, uint64_t batch,
                 const std::vector<uint64_t>& snapshot_at, std::vector<std::string>* snapshots) {
  Schema schema = EmbeddingSchema();
  auto ds = Check(Dataset::Create(os.store, "emb", schema), "create emb");
  std::vector<double> batch_s;
  double total_s = 0;
  uint64_t bytes = 0, objects = 0;
  auto snap = os.counters->Take();
  for (uint64_t first = 0; first < records; first += batch) {
    uint64_t rows = std::min(batch, records - first);
    Batch b = MakeEmbeddingBatch(schema, first, rows);  // not timed
    auto t0 = Clock::now();
    CommitInfo info = Check(ds->AppendMany(b), "ingest batch at " + std::to_string(first));
    double s = Seconds(Clock::now() - t0);
    batch_s.push_back(s);
    total_s += s;
    bytes += ColumnBytes(b);
    objects += info.objects_written;
    uint64_t done = first + rows;
    if (snapshots != nullptr &&
        (done == records ||
         std::find(snapshot_at.begin(), snapshot_at.end(), done) != snapshot_at.end())) {
      std::string label_name = "rows-" + std::to_string(done);
      Check(ds->Snapshot(label_name), "snapshot");
      snapshots->push_back(label_name);
    }
  }
  auto d = os.counters->Take() - snap;
  double rps = static_cast<double>(records) / total_s;
  double mbps = static_cast<double>(bytes) / total_s / 1e6;
  std::printf("| %s | %" PRIu64 " | %.2f s | %.0f | %.1f | %s | %s | %" PRIu64
              " | %.2f / %.2f / %.2f s | %s |\n",
              label.c_str(), records, total_s, rps, mbps, Ms(Median(batch_s)).c_str(),
              Ms(Percentile(batch_s, 100)).c_str(), objects, d.ns[kPut] / 1e9, d.ns[kSync] / 1e9,
              d.ns[kRefCas] / 1e9, LoadAverage().c_str());
  std::fflush(stdout);
  return {{"store", label},
          {"records", records},
          {"batch", batch},
          {"seconds", total_s},
          {"records_per_s", rps},
          {"mb_per_s", mbps},
          {"column_bytes", bytes},
          {"batch_p50_ms", Median(batch_s) * 1e3},
          {"batch_max_ms", Percentile(batch_s, 100) * 1e3},
          {"objects_written", objects},
          {"put_s", d.ns[kPut] / 1e9},
          {"sync_s", d.ns[kSync] / 1e9},
          {"cas_s", d.ns[kRefCas] / 1e9}};
}

// ---- 3. Scan ----

struct ScanPass {
  uint64_t records = 0, bytes = 0, batches = 0;
  double seconds = 0;
  dreamdb::ReadStats stats;
};

ScanPass ScanOnce(const std::shared_ptr<Store>& store, const std::string& at) {
  auto ds = Check(Dataset::OpenAt(store, "emb", at), "open-at " + at);
  ScanPass p;
  auto t0 = Clock::now();
  auto reader = Check(ds->Scan({}), "scan");
  while (true) {
    auto next = Check(reader->Next(), "scan next");
    if (!next) break;
    p.records += next->num_rows();
    p.bytes += ColumnBytes(*next);
    ++p.batches;
  }
  p.seconds = Seconds(Clock::now() - t0);
  p.stats = ds->read_stats();
  return p;
}

json ScanPassJson(const ScanPass& p) {
  return {{"records", p.records},
          {"column_bytes", p.bytes},
          {"batches", p.batches},
          {"seconds", p.seconds},
          {"gb_per_s", static_cast<double>(p.bytes) / p.seconds / 1e9},
          {"requests", p.stats.requests},
          {"bytes_fetched", p.stats.bytes_fetched}};
}

// The scan-child mode: opens the store, scans twice, prints one JSON line.
int ScanChild(const std::string& uri, const std::string& at) {
  auto before = ProcStatus();
  OpenedStore os = OpenStore(uri);
  ScanPass p1 = ScanOnce(os.store, at);
  auto mid = ProcStatus();
  ScanPass p2 = ScanOnce(os.store, at);
  auto after = ProcStatus();
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  json out = {{"at", at},
              {"pass1", ScanPassJson(p1)},
              {"pass2", ScanPassJson(p2)},
              {"vmhwm_start_kb", before["VmHWM"]},
              {"vmhwm_after_pass1_kb", mid["VmHWM"]},
              {"vmhwm_kb", after["VmHWM"]},
              {"ru_maxrss_kb", ru.ru_maxrss}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

json RunScanChild(const Options& opt, const std::string& uri, const std::string& at) {
  int p[2];
  if (pipe(p) != 0) {
    std::perror("pipe");
    std::exit(1);
  }
  std::fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) {
    std::perror("fork");
    std::exit(1);
  }
  if (pid == 0) {
    dup2(p[1], STDOUT_FILENO);
    close(p[0]);
    close(p[1]);
    execl(opt.self.c_str(), opt.self.c_str(), "scan-child", uri.c_str(), at.c_str(),
          static_cast<char*>(nullptr));
    std::perror("exec");
    _exit(127);
  }
  close(p[1]);
  std::string out;
  char buf[4096];
  ssize_t r;
  while ((r = read(p[0], buf, sizeof(buf))) > 0 || (r < 0 && errno == EINTR)) {
    if (r > 0) out.append(buf, static_cast<size_t>(r));
  }
  close(p[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "dataset_bench: scan child failed (status %d): %s\n", status, out.c_str());
    std::exit(1);
  }
  return json::parse(out);
}

// ---- 4. Take ----

struct TakeCase {
  std::string name;
  std::vector<std::string> fields;
  uint64_t anchors;
  bool contiguous;
};

// `only`: if not empty, runs only the case named "<fields>:<random|contiguous>:<anchors>".
json BenchTake(const std::string& label, OpenedStore& os, uint64_t records, int reps,
               const std::string& only = "") {
  const std::shared_ptr<Store>& store = os.store;
  std::printf("\n### Take on %s (%" PRIu64
              " records; fresh handle per call, warm page cache; "
              "median of %d)\n\n",
              label.c_str(), records, reps);
  std::printf(
      "| fields | anchors | rows/s | call | segment requests | segment bytes fetched | "
      "bytes returned | fetched / returned | all backend reads (incl. index pages) | "
      "all / returned |\n|---|---|---|---|---|---|---|---|---|---|\n");
  std::vector<TakeCase> cases;
  for (bool contiguous : {false, true}) {
    for (uint64_t n : {uint64_t{1000}, uint64_t{10000}}) {
      if (n > records) continue;
      cases.push_back({"id+score", {"id", "score"}, n, contiguous});
      cases.push_back({"emb", {"emb"}, n, contiguous});
    }
  }
  json out = json::array();
  std::mt19937_64 rng(42);
  for (const auto& c : cases) {
    if (!only.empty() &&
        only != c.name + (c.contiguous ? ":contiguous:" : ":random:") + std::to_string(c.anchors)) {
      continue;
    }
    std::vector<double> secs, ratio, reqs, fetched, returned, backend, backend_reqs;
    for (int rep = 0; rep < reps; ++rep) {
      std::vector<uint64_t> anchors;
      if (c.contiguous) {
        uint64_t start = rng() % (records - c.anchors + 1);
        anchors.resize(c.anchors);
        std::iota(anchors.begin(), anchors.end(), start);
      } else {
        // Distinct random anchors, in random order.
        std::vector<uint64_t> all(records);
        std::iota(all.begin(), all.end(), 0);
        for (uint64_t i = 0; i < c.anchors; ++i) {
          std::swap(all[i], all[i + rng() % (records - i)]);
        }
        anchors.assign(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(c.anchors));
      }
      auto ds = Check(Dataset::Open(store, "emb"), "open emb");
      auto before = ds->read_stats();
      auto cbefore = os.counters->Take();
      auto t0 = Clock::now();
      Batch b = Check(ds->Take(anchors, c.fields), "take");
      double s = Seconds(Clock::now() - t0);
      auto after = ds->read_stats();
      auto cd = os.counters->Take() - cbefore;
      backend.push_back(static_cast<double>(cd.bytes_read));
      backend_reqs.push_back(static_cast<double>(cd.calls[kGet] + cd.calls[kGetRange]));
      // Spot-check the values: id == anchor (ingest wrote id = record number).
      if (c.fields[0] == "id") {
        for (size_t i = 0; i < anchors.size(); i += 97) {
          if (b.columns[0].Int64At(i) != static_cast<int64_t>(anchors[i])) {
            std::fprintf(stderr, "dataset_bench: take returned a wrong id\n");
            std::exit(1);
          }
        }
      }
      double got = static_cast<double>(ColumnBytes(b));
      double f = static_cast<double>(after.bytes_fetched - before.bytes_fetched);
      secs.push_back(s);
      fetched.push_back(f);
      returned.push_back(got);
      ratio.push_back(f / got);
      reqs.push_back(static_cast<double>(after.requests - before.requests));
    }
    double med_s = Median(secs);
    double rps = static_cast<double>(c.anchors) / med_s;
    std::string kind = (c.contiguous ? "contiguous " : "random ") + std::to_string(c.anchors);
    std::vector<double> all_ratio;
    for (size_t k = 0; k < backend.size(); ++k) all_ratio.push_back(backend[k] / returned[k]);
    std::printf(
        "| %s | %s | %.0f | %s | %.0f | %.2f MB | %.3f MB | %.2f× | %.2f MB in %.0f "
        "reads | %.2f× |\n",
        c.name.c_str(), kind.c_str(), rps, Ms(med_s).c_str(), Median(reqs), Median(fetched) / 1e6,
        Median(returned) / 1e6, Median(ratio), Median(backend) / 1e6, Median(backend_reqs),
        Median(all_ratio));
    std::fflush(stdout);
    out.push_back({{"fields", c.name},
                   {"anchors", c.anchors},
                   {"contiguous", c.contiguous},
                   {"rows_per_s", rps},
                   {"call_ms", med_s * 1e3},
                   {"requests", Median(reqs)},
                   {"bytes_fetched", Median(fetched)},
                   {"bytes_returned", Median(returned)},
                   {"fetched_over_returned", Median(ratio)},
                   {"backend_bytes_read", Median(backend)},
                   {"backend_reads", Median(backend_reqs)},
                   {"backend_over_returned", Median(all_ratio)}});
  }
  return {{"store", label}, {"records", records}, {"cases", out}};
}

// ---- Main ----

std::string DefaultDir() {
  for (const char* var : {"DREAMDB_BENCH_DIR", "TMPDIR"}) {
    const char* v = std::getenv(var);
    if (v != nullptr && *v != '\0') return v;
  }
  return "/tmp";
}

int Usage() {
  std::fprintf(stderr,
               "usage: dataset_bench [--smoke] [--dir DIR] [--json FILE] [--only LIST]\n"
               "                     [--commits N] [--memory-commits N] [--window N]\n"
               "                     [--records N] [--batch N] [--snapshots N,...] [--reps N] "
               "[--take-reps N]\n"
               "                     [--no-memory] [--keep]\n"
               "       dataset_bench take-existing URI RECORDS [FIELDS:random|contiguous:N]\n"
               "  LIST: comma-separated of commits, ingest, scan, take\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "take-existing") {
    // For profiling: the take benchmark on a store kept by an earlier run (--keep), all
    // cases or one ("id+score:random:1000").
    if (argc != 4 && argc != 5) return Usage();
    OpenedStore os = OpenStore(argv[2]);
    BenchTake(argv[2], os, std::stoull(argv[3]), 5, argc == 5 ? argv[4] : "");
    return 0;
  }
  if (argc >= 2 && std::string(argv[1]) == "scan-child") {
    if (argc != 4) return Usage();
    return ScanChild(argv[2], argv[3]);
  }
  Options opt;
  opt.dir = DefaultDir();
  {
    char buf[4096];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
    opt.self = n > 0 ? std::string(buf, static_cast<size_t>(n)) : argv[0];
  }
  bool set_commits = false, set_mem = false, set_window = false, set_records = false,
       set_snaps = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "dataset_bench: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--smoke")
      opt.smoke = true;
    else if (a == "--no-memory")
      opt.memory = false;
    else if (a == "--keep")
      opt.keep = true;
    else if (a == "--dir")
      opt.dir = value();
    else if (a == "--json")
      opt.json_path = value();
    else if (a == "--only") {
      std::stringstream ss(value());
      std::string item;
      while (std::getline(ss, item, ',')) opt.only.push_back(item);
    } else if (a == "--commits")
      opt.commits = std::stoull(value()), set_commits = true;
    else if (a == "--memory-commits")
      opt.memory_commits = std::stoull(value()), set_mem = true;
    else if (a == "--window")
      opt.window = std::stoull(value()), set_window = true;
    else if (a == "--records")
      opt.records = std::stoull(value()), set_records = true;
    else if (a == "--batch")
      opt.batch = std::stoull(value());
    else if (a == "--take-reps")
      opt.take_reps = std::stoi(value());
    else if (a == "--reps")
      opt.reps = std::max(1, std::stoi(value()));
    else if (a == "--snapshots") {
      opt.snapshot_at.clear();
      std::stringstream ss(value());
      std::string item;
      while (std::getline(ss, item, ',')) opt.snapshot_at.push_back(std::stoull(item));
      set_snaps = true;
    } else
      return Usage();
  }
  if (opt.smoke) {
    if (!set_commits) opt.commits = 300;
    if (!set_mem) opt.memory_commits = 2000;
    if (!set_window) opt.window = 100;
    if (!set_records) opt.records = 20000;
    opt.take_reps = std::min(opt.take_reps, 2);
    opt.reps = 1;
  }
  if (!set_snaps && opt.records < 200000) opt.snapshot_at = {opt.records / 2};
  if (opt.records < opt.batch) opt.batch = opt.records;

  std::string tmpl = opt.dir + "/dreamdb-dsbench-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  const std::string root = tmpl;
  json report = {{"load_average_start", LoadAverage()}, {"dir", root}, {"smoke", opt.smoke}};
  std::printf("dataset_bench: stores under %s; load average %s\n", root.c_str(),
              LoadAverage().c_str());

  {
    double ms = FsyncProbeMs(root);
    report["fsync_probe_ms_start"] = ms;
    std::printf("fsync probe (4 KiB write + fsync, median of 20): %.2f ms\n", ms);
  }
  if (opt.Want("commits")) {
    json c = json::array();
    c.push_back(BenchCommits("file://", "file://" + root + "/commits", opt.commits, opt.window));
    if (opt.memory) {
      c.push_back(BenchCommits("memory://", "memory://", opt.memory_commits, opt.window));
    }
    report["commits"] = c;
    double ms = FsyncProbeMs(root);
    report["fsync_probe_ms_after_commits"] = ms;
    std::printf("\nfsync probe after the commits: %.2f ms\n", ms);
  }

  const bool need_data = opt.Want("ingest") || opt.Want("scan") || opt.Want("take");
  if (need_data) {
    // Ingest --reps times into fresh stores; the last file:// one (with its snapshots) and
    // the last memory:// one stay for the scan and take.
    std::string uri;
    std::vector<std::string> snapshots;
    json ingest = json::array();
    std::printf("\n### Bulk ingest: %" PRIu64
                " records (768-d float32 + int64 + float64), "
                "batches of %" PRIu64 ", %d runs\n\n",
                opt.records, opt.batch, opt.reps);
    std::printf(
        "| store | records | time (commits only) | records/s | MB/s (column bytes) | "
        "batch p50 | batch max | objects written | time in put / sync / CAS | load "
        "average |\n");
    std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
    for (int r = 0; r < opt.reps; ++r) {
      if (!uri.empty()) {
        std::error_code ec;
        std::filesystem::remove_all(uri.substr(7), ec);
      }
      uri = "file://" + root + "/emb-" + std::to_string(r);
      snapshots.clear();
      OpenedStore os = OpenStore(uri);
      ingest.push_back(
          BenchIngest("file://", os, opt.records, opt.batch, opt.snapshot_at, &snapshots));
    }
    json scan = json::array(), take = json::array();
    std::optional<OpenedStore> mem;
    if (opt.memory) {
      for (int r = 0; r < opt.reps; ++r) {
        mem.reset();
        mem = OpenStore("memory://");
        ingest.push_back(BenchIngest("memory://", *mem, opt.records, opt.batch, {}, nullptr));
      }
    }
    for (const char* label : {"file://", "memory://"}) {
      std::vector<double> rps, mbps;
      for (const auto& i : ingest) {
        if (i["store"] == label) {
          rps.push_back(i["records_per_s"].get<double>());
          mbps.push_back(i["mb_per_s"].get<double>());
        }
      }
      if (rps.empty()) continue;
      std::printf("| **%s median of %zu** | %" PRIu64 " | | **%.0f** | **%.1f** | | | | | |\n",
                  label, rps.size(), opt.records, Median(rps), Median(mbps));
    }
    std::fflush(stdout);
    if (opt.Want("ingest")) report["ingest"] = ingest;
    if (opt.Want("scan")) {
      std::printf(
          "\n### Scan (all fields) in a fresh process: pass 2 on a fresh handle, warm "
          "page cache; %d runs\n\n",
          opt.reps);
      std::printf(
          "| store | records | column bytes | pass 1 | pass 2 | GB/s (pass 2) | segment "
          "requests | peak RSS (VmHWM) at start / after pass 1 / end |\n");
      std::printf("|---|---|---|---|---|---|---|---|\n");
      if (mem) {
        // Reference: the same scan from memory:// in this process (RSS not meaningful here).
        auto ds = Check(Dataset::Open(mem->store, "emb"), "open memory emb");
        Check(ds->Snapshot("all"), "snapshot");
        for (int r = 0; r < opt.reps; ++r) {
          ScanPass p1 = ScanOnce(mem->store, "all");
          ScanPass p2 = ScanOnce(mem->store, "all");
          scan.push_back({{"store", "memory://"},
                          {"at", "all"},
                          {"pass1", ScanPassJson(p1)},
                          {"pass2", ScanPassJson(p2)}});
        }
      }
      for (const auto& at : snapshots) {
        for (int r = 0; r < opt.reps; ++r) {
          json res = RunScanChild(opt, uri, at);
          res["store"] = "file://";
          scan.push_back(res);
        }
      }
      std::map<std::pair<std::string, uint64_t>, std::vector<json>> groups;
      for (const auto& r : scan) {
        const json& p1 = r["pass1"];
        const json& p2 = r["pass2"];
        groups[{r["store"].get<std::string>(), p2["records"].get<uint64_t>()}].push_back(r);
        std::string rss = r.contains("vmhwm_kb")
                              ? Fmt("%.0f", r["vmhwm_start_kb"].get<double>() / 1024) + " / " +
                                    Fmt("%.0f", r["vmhwm_after_pass1_kb"].get<double>() / 1024) +
                                    " / " + Fmt("%.0f MiB", r["vmhwm_kb"].get<double>() / 1024)
                              : "— (in-process reference)";
        std::printf("| %s | %" PRIu64 " | %.2f GB | %.3f s | %.3f s | %.2f | %" PRIu64 " | %s |\n",
                    r["store"].get<std::string>().c_str(), p2["records"].get<uint64_t>(),
                    p2["column_bytes"].get<double>() / 1e9, p1["seconds"].get<double>(),
                    p2["seconds"].get<double>(), p2["gb_per_s"].get<double>(),
                    p2["requests"].get<uint64_t>(), rss.c_str());
      }
      for (const auto& [key, runs] : groups) {
        std::vector<double> gbps, hwm;
        for (const auto& r : runs) {
          gbps.push_back(r["pass2"]["gb_per_s"].get<double>());
          if (r.contains("vmhwm_kb")) hwm.push_back(r["vmhwm_kb"].get<double>() / 1024);
        }
        std::printf("| **%s median of %zu** | %" PRIu64 " | | | | **%.2f** | | %s |\n",
                    key.first.c_str(), runs.size(), key.second, Median(gbps),
                    hwm.empty() ? "" : ("max " + Fmt("%.0f MiB", Percentile(hwm, 100))).c_str());
      }
      std::fflush(stdout);
      report["scan"] = scan;
    }
    if (opt.Want("take")) {
      OpenedStore os = OpenStore(uri);
      take.push_back(BenchTake("file://", os, opt.records, opt.take_reps));
      if (mem) take.push_back(BenchTake("memory://", *mem, opt.records, opt.take_reps));
      report["take"] = take;
    }
  }

  report["load_average_end"] = LoadAverage();
  std::printf("\nload average at the end: %s\n", LoadAverage().c_str());
  if (!opt.json_path.empty()) {
    std::ofstream out(opt.json_path);
    out << report.dump(2) << "\n";
    std::printf("wrote %s\n", opt.json_path.c_str());
  }
  if (!opt.keep) {
    std::error_code ec;
    std::filesystem::remove_all(root, ec);
  } else {
    std::printf("kept %s\n", root.c_str());
  }
  return 0;
}
