// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Store throughput and latency: Put / Get / ReadRef / uncontended UpdateRef (CAS) through
// the public Store API, for memory:// and file:// and objects of 1 KiB, 64 KiB, 1 MiB.
//
// Every benchmark reports time per operation (CPU time for memory://, wall-clock time for
// file://, whose work is mostly waiting on fsync), items/s, bytes/s where bytes move, and
// wall-clock latency percentiles per operation, p50_us / p99_us.
//
// - Put stores a new object every iteration (a counter is stamped into the first 8 bytes),
//   so it measures the real write path (hash + write + fsync + rename for file://), never
//   the "already stored" shortcut. Objects are deleted in batches with the timer paused so
//   memory and disk use stay bounded.
// - Get cycles over a working set of up to 64 objects / 16 MiB (warm page cache for
//   file://). "Get" verifies every read (the default); "GetNoVerify" shows the backend
//   without the hash check (StoreOptions::verify_reads = false).
// - Cas moves one ref back and forth between two objects, one process, no contention.
//
// The file:// store lives in a fresh directory under $DREAMDB_BENCH_DIR, else $TMPDIR,
// else /tmp; it is removed afterwards.

#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dreamdb/store.h"

namespace {

using dreamdb::ObjectId;
using dreamdb::Store;
using dreamdb::StoreOptions;

enum class Backend { kMemory, kFile };

const char* BackendName(Backend b) { return b == Backend::kMemory ? "memory" : "file"; }

std::string BenchDir() {
  for (const char* var : {"DREAMDB_BENCH_DIR", "TMPDIR"}) {
    const char* v = std::getenv(var);
    if (v != nullptr && *v != '\0') return v;
  }
  return "/tmp";
}

std::string SizeName(size_t size) {
  if (size >= (1u << 20)) return std::to_string(size >> 20) + "MiB";
  return std::to_string(size >> 10) + "KiB";
}

// Deterministic pseudo-random bytes (splitmix64), so runs are comparable.
std::string MakeBuffer(size_t size, uint64_t seed) {
  std::string out(size, '\0');
  uint64_t x = seed;
  for (size_t i = 0; i < size; i += 8) {
    x += 0x9e3779b97f4a7c15ull;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    std::memcpy(out.data() + i, &z, std::min<size_t>(8, size - i));
  }
  return out;
}

// A store that exists for one benchmark run; file:// stores are deleted afterwards.
class ScopedStore {
 public:
  explicit ScopedStore(Backend backend, StoreOptions options = {}) {
    std::string uri = "memory://";
    if (backend == Backend::kFile) {
      std::string tmpl = BenchDir() + "/dreamdb-bench-XXXXXX";
      if (::mkdtemp(tmpl.data()) == nullptr) {
        error_ = "mkdtemp failed under " + BenchDir();
        return;
      }
      dir_ = tmpl;
      uri = "file://" + dir_;
    }
    auto store = Store::Open(uri, options);
    if (!store.ok()) {
      error_ = store.status().ToString();
      return;
    }
    store_ = std::move(store).value();
  }
  ~ScopedStore() {
    store_.reset();
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }
  Store* get() { return store_.get(); }
  // Empty when the store opened.
  const std::string& error() const { return error_; }

 private:
  std::string dir_;
  std::string error_;
  std::unique_ptr<Store> store_;
};

// Per-operation latencies of one run; reported as p50_us / p99_us counters.
class Latencies {
 public:
  Latencies() { ns_.reserve(kMaxSamples); }
  void Add(std::chrono::steady_clock::duration d) {
    if (ns_.size() < kMaxSamples) {
      ns_.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
    }
  }
  void Report(benchmark::State& state) {
    if (ns_.empty()) return;
    state.counters["p50_us"] = Percentile(0.50) / 1e3;
    state.counters["p99_us"] = Percentile(0.99) / 1e3;
  }

 private:
  static constexpr size_t kMaxSamples = 1 << 22;
  double Percentile(double q) {
    size_t k = std::min(ns_.size() - 1, static_cast<size_t>(q * static_cast<double>(ns_.size())));
    std::nth_element(ns_.begin(), ns_.begin() + static_cast<ptrdiff_t>(k), ns_.end());
    return static_cast<double>(ns_[k]);
  }
  std::vector<int64_t> ns_;
};

using Clock = std::chrono::steady_clock;

void ReportThroughput(benchmark::State& state, size_t bytes_per_item) {
  state.SetItemsProcessed(state.iterations());
  if (bytes_per_item > 0) {
    state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(bytes_per_item));
  }
}

// Put: how many new objects to keep before deleting them (timer paused): up to 64 MiB,
// 1..1024 objects.
size_t PutBatchCount(size_t size) { return std::clamp<size_t>((size_t{64} << 20) / size, 1, 1024); }

// Get: how many objects to cycle over: up to 16 MiB, 1..64 objects (each is put during
// setup, and a file:// put costs several fsyncs).
size_t GetWorkingSetCount(size_t size) {
  return std::clamp<size_t>((size_t{16} << 20) / size, 1, 64);
}

void BM_Put(benchmark::State& state, Backend backend, size_t size) {
  ScopedStore store(backend);
  if (!store.error().empty()) return state.SkipWithError(store.error().c_str());
  std::string data = MakeBuffer(size, 42);
  const size_t batch_limit = PutBatchCount(size);
  std::vector<ObjectId> batch;
  batch.reserve(batch_limit);
  Latencies latencies;
  uint64_t counter = 0;
  for (auto _ : state) {
    std::memcpy(data.data(), &counter, std::min<size_t>(8, size));
    ++counter;
    auto t0 = Clock::now();
    auto id = store.get()->Put(data);
    latencies.Add(Clock::now() - t0);
    if (!id.ok()) return state.SkipWithError(id.status().ToString().c_str());
    batch.push_back(*id);
    if (batch.size() == batch_limit) {
      state.PauseTiming();
      bool deleted = true;
      for (const ObjectId& old : batch) deleted = deleted && store.get()->DeleteObject(old).ok();
      batch.clear();
      state.ResumeTiming();
      if (!deleted) return state.SkipWithError("DeleteObject failed");
    }
  }
  ReportThroughput(state, size);
  latencies.Report(state);
}

void BM_Get(benchmark::State& state, Backend backend, size_t size, bool verify) {
  StoreOptions options;
  options.verify_reads = verify;
  ScopedStore store(backend, options);
  if (!store.error().empty()) return state.SkipWithError(store.error().c_str());
  std::vector<ObjectId> ids;
  std::string data = MakeBuffer(size, 7);
  for (uint64_t i = 0; i < GetWorkingSetCount(size); ++i) {
    std::memcpy(data.data(), &i, std::min<size_t>(8, size));
    auto id = store.get()->Put(data);
    if (!id.ok()) return state.SkipWithError(id.status().ToString().c_str());
    ids.push_back(*id);
  }
  Latencies latencies;
  size_t next = 0;
  for (auto _ : state) {
    auto t0 = Clock::now();
    auto bytes = store.get()->Get(ids[next]);
    latencies.Add(Clock::now() - t0);
    if (!bytes.ok() || bytes->size() != size) {
      return state.SkipWithError(bytes.status().ToString().c_str());
    }
    benchmark::DoNotOptimize(bytes->data());
    if (++next == ids.size()) next = 0;
  }
  ReportThroughput(state, size);
  latencies.Report(state);
}

constexpr std::string_view kRef = "bench/branches/main";

void BM_Cas(benchmark::State& state, Backend backend) {
  ScopedStore store(backend);
  if (!store.error().empty()) return state.SkipWithError(store.error().c_str());
  auto a = store.get()->Put("cas object a");
  auto b = store.get()->Put("cas object b");
  if (!a.ok() || !b.ok() || !store.get()->CreateRef(kRef, *a).ok()) {
    return state.SkipWithError("setup failed");
  }
  ObjectId current = *a;
  ObjectId next = *b;
  Latencies latencies;
  for (auto _ : state) {
    auto t0 = Clock::now();
    dreamdb::Status s = store.get()->UpdateRef(kRef, current, next);
    latencies.Add(Clock::now() - t0);
    if (!s.ok()) return state.SkipWithError(s.ToString().c_str());
    std::swap(current, next);
  }
  ReportThroughput(state, 0);
  latencies.Report(state);
}

void BM_ReadRef(benchmark::State& state, Backend backend) {
  ScopedStore store(backend);
  if (!store.error().empty()) return state.SkipWithError(store.error().c_str());
  auto a = store.get()->Put("read ref object");
  if (!a.ok() || !store.get()->CreateRef(kRef, *a).ok()) {
    return state.SkipWithError("setup failed");
  }
  Latencies latencies;
  for (auto _ : state) {
    auto t0 = Clock::now();
    auto ref = store.get()->ReadRef(kRef);
    latencies.Add(Clock::now() - t0);
    if (!ref.ok()) return state.SkipWithError(ref.status().ToString().c_str());
    benchmark::DoNotOptimize(ref->target);
  }
  ReportThroughput(state, 0);
  latencies.Report(state);
}

// memory:// work is all CPU: its times are CPU time, which a busy shared machine does not
// inflate. file:// work mostly waits on the disk: its times are wall-clock time.
void Register(const std::string& name, Backend backend, std::function<void(benchmark::State&)> fn) {
  auto* b = benchmark::RegisterBenchmark(name.c_str(), std::move(fn));
  if (backend == Backend::kFile) b->UseRealTime();
}

void RegisterAll() {
  const size_t sizes[] = {size_t{1} << 10, size_t{64} << 10, size_t{1} << 20};
  for (Backend backend : {Backend::kMemory, Backend::kFile}) {
    const std::string b = BackendName(backend);
    for (size_t size : sizes) {
      Register("Put/" + b + "/" + SizeName(size), backend,
               [=](benchmark::State& s) { BM_Put(s, backend, size); });
    }
    for (size_t size : sizes) {
      Register("Get/" + b + "/" + SizeName(size), backend,
               [=](benchmark::State& s) { BM_Get(s, backend, size, true); });
    }
    for (size_t size : sizes) {
      Register("GetNoVerify/" + b + "/" + SizeName(size), backend,
               [=](benchmark::State& s) { BM_Get(s, backend, size, false); });
    }
    Register("Cas/" + b, backend, [=](benchmark::State& s) { BM_Cas(s, backend); });
    Register("ReadRef/" + b, backend, [=](benchmark::State& s) { BM_ReadRef(s, backend); });
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("file_store_dir", BenchDir());
  RegisterAll();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
