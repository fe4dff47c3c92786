// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Dependent round trips of a cold open and a random take on an object store (issue 10's
// targets: a take of 1,000 random anchors in at most 3 rounds of parallel ranged GETs).
// The store is memory:// behind a backend that holds every read for a fixed delay, as a
// remote store does, and counts rounds: a read that starts while no other is in flight
// begins a new round; reads sent together overlap and count once.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "dreamdb/dataset.h"
#include "dreamdb/search.h"
#include "src/store/memory/memory_backend.h"

namespace dreamdb {
namespace {

// Long enough that scheduling delays (a busy CI machine, sanitizers) cannot split one batch
// of parallel requests into two rounds.
constexpr auto kDelay = std::chrono::milliseconds(100);

// Reads (objects and refs) wait kDelay each and are counted in rounds; with
// DREAMDB_ROUND_TRACE set, each read is printed with its round. Thread-safe.
class SlowReads final : public ObjectBackend, public RefBackend {
 public:
  SlowReads() : mem_(NewMemoryBackends()) {}

  struct Counts {
    uint64_t rounds = 0;
    uint64_t requests = 0;
  };
  Counts counts() {
    std::lock_guard lock(mu_);
    return counts_;
  }
  void set_slow(bool on) {
    std::lock_guard lock(mu_);
    slow_ = on;
  }

  Status Put(const ObjectId& id, ByteView data) override { return mem_.objects->Put(id, data); }
  Result<Bytes> Get(const ObjectId& id) override {
    return Slow([&] { return mem_.objects->Get(id); },
                [&] { return "GET " + id.ToString().substr(0, 12); });
  }
  Result<Bytes> GetRange(const ObjectId& id, uint64_t offset, uint64_t length) override {
    return Slow([&] { return mem_.objects->GetRange(id, offset, length); },
                [&] {
                  return "RANGE " + id.ToString().substr(0, 12) + " " + std::to_string(offset) +
                         "+" + std::to_string(length);
                });
  }
  Result<ObjectInfo> Head(const ObjectId& id) override {
    return Slow([&] { return mem_.objects->Head(id); },
                [&] { return "HEAD " + id.ToString().substr(0, 12); });
  }
  Status List(std::string_view shard_prefix, const ObjectVisitor& visit) override {
    return mem_.objects->List(shard_prefix, visit);
  }
  Status Delete(const ObjectId& id) override { return mem_.objects->Delete(id); }

  Result<RefValue> Read(std::string_view name) override {
    return Slow([&] { return mem_.refs->Read(name); }, [&] { return "REF " + std::string(name); });
  }
  Status Create(std::string_view name, const ObjectId& target) override {
    return mem_.refs->Create(name, target);
  }
  Status CompareAndSwap(std::string_view name, const ObjectId& expected,
                        const ObjectId& desired) override {
    return mem_.refs->CompareAndSwap(name, expected, desired);
  }
  Status Delete(std::string_view name, const ObjectId& expected) override {
    return mem_.refs->Delete(name, expected);
  }
  Status List(std::string_view prefix, const RefVisitor& visit) override {
    return mem_.refs->List(prefix, visit);
  }

 private:
  template <typename F, typename D>
  auto Slow(F&& call, D&& describe) -> decltype(call()) {
    bool slow;
    {
      std::lock_guard lock(mu_);
      slow = slow_;
      if (slow) {
        if (in_flight_ == 0) ++counts_.rounds;
        if (std::getenv("DREAMDB_ROUND_TRACE") != nullptr) {
          std::cerr << "round " << counts_.rounds << ": " << describe() << "\n";
        }
        ++in_flight_;
        ++counts_.requests;
      }
    }
    if (!slow) return call();
    std::this_thread::sleep_for(kDelay);
    auto result = call();
    std::lock_guard lock(mu_);
    --in_flight_;
    return result;
  }

  MemoryBackends mem_;
  std::mutex mu_;
  bool slow_ = false;  // guarded by mu_
  int in_flight_ = 0;  // guarded by mu_
  Counts counts_;      // guarded by mu_
};

// A dataset of `rows` records (int64 "label", string "tag") in one commit, written through
// one Store and read through another over the same backend, whose URI names an object
// store of its own: the reader starts with nothing cached, as a new process does.
TEST(RoundTripsTest, ColdOpenAndTakeOfRandomAnchorsOnAnObjectStore) {
  auto slow = std::make_shared<SlowReads>();
  std::shared_ptr<Store> writer(Store::FromBackends("s3://round-trips/write", slow, slow));
  Schema schema;
  ASSERT_TRUE(schema.AddInt64("label").ok());
  ASSERT_TRUE(schema.AddString("tag").ok());
  ASSERT_TRUE(Dataset::Create(writer, "d", schema).ok());
  constexpr uint64_t kRows = 20000;
  {
    auto ds = *Dataset::Open(writer, "d");
    Batch b;
    Column label(*schema.Find("label"));
    Column tag(*schema.Find("tag"));
    for (uint64_t i = 0; i < kRows; ++i) {
      label.AppendInt64(static_cast<int64_t>(i % 10));
      tag.AppendBytes("tag-" + std::to_string(100000000 + i));
    }
    b.columns.push_back(std::move(label));
    b.columns.push_back(std::move(tag));
    ASSERT_TRUE(ds->AppendMany(b).ok());
  }
  std::vector<uint64_t> anchors;
  {
    auto ds = *Dataset::Open(writer, "d");
    auto all = ds->Scan({});
    ASSERT_TRUE(all.ok());
    while (true) {
      auto batch = (*all)->Next();
      ASSERT_TRUE(batch.ok());
      if (!batch->has_value()) break;
      anchors.insert(anchors.end(), (*batch)->anchors.begin(), (*batch)->anchors.end());
    }
  }
  ASSERT_EQ(anchors.size(), kRows);
  std::mt19937_64 rng(7);
  std::shuffle(anchors.begin(), anchors.end(), rng);
  anchors.resize(1000);
  std::sort(anchors.begin(), anchors.end());

  std::shared_ptr<Store> reader(Store::FromBackends("s3://round-trips/read", slow, slow));
  slow->set_slow(true);
  auto ds = Dataset::Open(reader, "d");
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  const SlowReads::Counts opened = slow->counts();
  // The ref, the manifest, then the genesis together with the anchor index's root.
  EXPECT_LE(opened.rounds, 3u);
  EXPECT_LE(opened.requests, 4u);

  auto got = (*ds)->Take(anchors, {"label", "tag"});
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  const SlowReads::Counts took = slow->counts();
  // The index leaves, then each field's segment: its first request brings the header and
  // the blocks at once (two, while fields are read one after the other).
  EXPECT_LE(took.rounds - opened.rounds, 3u);
  EXPECT_LE(took.requests - opened.requests, 2u + 64u);
  slow->set_slow(false);

  auto want = (*Dataset::Open(writer, "d"))->Take(anchors, {"label", "tag"});
  ASSERT_TRUE(want.ok());
  ASSERT_EQ(got->columns.size(), 2u);
  ASSERT_EQ(got->columns[0].length(), anchors.size());
  ASSERT_EQ(got->columns[1].length(), anchors.size());
  for (size_t i = 0; i < anchors.size(); ++i) {
    ASSERT_EQ(got->columns[0].Int64At(i), want->columns[0].Int64At(i)) << i;
    ASSERT_EQ(got->columns[1].BytesAt(i), want->columns[1].BytesAt(i)) << i;
  }
}

// The same search through a store whose URI names a local store (memory://) over the same
// backend: the code path without read-ahead, whose answer a remote search must equal.
SearchResults LocalSearch(const std::shared_ptr<SlowReads>& slow, const std::string& name,
                          const float* q, size_t dim, const SearchOptions& so) {
  std::shared_ptr<Store> local(Store::FromBackends("memory://round-trips-local", slow, slow));
  auto ds = Dataset::Open(local, name);
  EXPECT_TRUE(ds.ok()) << ds.status().ToString();
  auto got = (*ds)->Search("emb", q, 1, dim, so);
  EXPECT_TRUE(got.ok()) << got.status().ToString();
  return got.ok() ? *got : SearchResults{};
}

void ExpectSameAnswer(const SearchResults& got, const SearchResults& want, size_t query) {
  ASSERT_EQ(got.anchors.size(), want.anchors.size()) << "query " << query;
  for (size_t i = 0; i < want.anchors.size(); ++i) {
    EXPECT_EQ(got.anchors[i], want.anchors[i]) << "query " << query << " rank " << i;
    EXPECT_EQ(got.scores[i], want.scores[i]) << "query " << query << " rank " << i;
  }
}

// A cold IVF query: a new process opens the dataset and searches once. Its re-rank vectors
// are read with the candidates' anchor-index leaves (where the buckets say they were
// written), their segment's header with the buckets, and the re-rank's batches at once,
// so the query after the open is 3 dependent rounds: the model with the directory (and a
// few leaves), the probed buckets (and the header), the re-rank vectors. The answers are
// those of the same searches on a local store, also after deletes leave stale entries in
// the buckets.
TEST(RoundTripsTest, ColdIvfQueryOnAnObjectStoreInThreeRounds) {
  auto slow = std::make_shared<SlowReads>();
  std::shared_ptr<Store> writer(Store::FromBackends("s3://round-trips/w-ivf", slow, slow));
  Schema schema;
  ASSERT_TRUE(schema.AddEmbedding("emb", 16).ok());
  ASSERT_TRUE(Dataset::Create(writer, "v", schema).ok());
  constexpr size_t kRows = 20000, kDim = 16, kQueries = 6;
  std::vector<float> vecs(kRows * kDim);
  std::mt19937_64 rng(3);
  std::normal_distribution<float> g;
  for (float& x : vecs) x = g(rng);
  {
    auto ds = *Dataset::Open(writer, "v");
    Batch b;
    Column emb(*schema.Find("emb"));
    for (size_t i = 0; i < kRows; ++i) emb.AppendFloats({vecs.data() + i * kDim, kDim});
    b.columns.push_back(std::move(emb));
    ASSERT_TRUE(ds->AppendMany(b).ok());
    BuildIndexOptions o;
    o.cells = 64;
    o.sample = 4096;      // quick to train under sanitizers
    o.calibrate = false;  // the searches name their nprobe
    ASSERT_TRUE(ds->BuildIndex("emb", o).ok());
  }
  SearchOptions so;
  so.k = 10;
  so.nprobe = 8;
  // Each search on a store of its own name: nothing cached, as in a new process.
  auto cold_search = [&](const std::string& uri, size_t q, bool count) {
    std::shared_ptr<Store> reader(Store::FromBackends(uri, slow, slow));
    slow->set_slow(count);
    const SlowReads::Counts before = slow->counts();
    auto ds = Dataset::Open(reader, "v");
    EXPECT_TRUE(ds.ok()) << ds.status().ToString();
    const SlowReads::Counts opened = slow->counts();
    auto got = (*ds)->Search("emb", vecs.data() + (5 + 97 * q) * kDim, 1, kDim, so);
    EXPECT_TRUE(got.ok()) << got.status().ToString();
    const SlowReads::Counts searched = slow->counts();
    slow->set_slow(false);
    if (count) {
      std::cout << "cold ivf query: open " << opened.rounds - before.rounds << " rounds / "
                << opened.requests - before.requests << " requests; query "
                << searched.rounds - opened.rounds << " rounds / "
                << searched.requests - opened.requests << " requests\n";
      // The open: the ref, the manifest, the genesis with the anchor index's root and the
      // spatial index object.
      EXPECT_LE(opened.rounds - before.rounds, 3u);
      EXPECT_LE(searched.rounds - opened.rounds, 3u);
    }
    return got.ok() ? *got : SearchResults{};
  };
  for (size_t q = 0; q < kQueries; ++q) {
    SearchResults got = cold_search("s3://round-trips/r-ivf-" + std::to_string(q), q, q == 0);
    EXPECT_EQ(got.anchors.size(), 10u);
    ExpectSameAnswer(got, LocalSearch(slow, "v", vecs.data() + (5 + 97 * q) * kDim, kDim, so), q);
  }
  // Deleting each query's best three leaves them in the buckets as stale entries: the
  // read-ahead reads their old vectors, which the answer must not use.
  {
    auto ds = *Dataset::Open(writer, "v");
    std::vector<uint64_t> gone;
    for (size_t q = 0; q < kQueries; ++q) {
      SearchResults r = LocalSearch(slow, "v", vecs.data() + (5 + 97 * q) * kDim, kDim, so);
      for (size_t i = 0; i < 3 && i < r.anchors.size(); ++i) gone.push_back(r.anchors[i]);
    }
    std::sort(gone.begin(), gone.end());
    gone.erase(std::unique(gone.begin(), gone.end()), gone.end());
    ASSERT_TRUE(ds->Delete(gone).ok());
  }
  for (size_t q = 0; q < kQueries; ++q) {
    SearchResults got = cold_search("s3://round-trips/r-ivf-del-" + std::to_string(q), q, false);
    EXPECT_EQ(got.anchors.size(), 10u);
    ExpectSameAnswer(got, LocalSearch(slow, "v", vecs.data() + (5 + 97 * q) * kDim, kDim, so), q);
  }
}

}  // namespace
}  // namespace dreamdb
