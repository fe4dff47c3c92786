#include "dreamdb/dataset.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <span>
#include <thread>

#include "src/dataset/manifest.h"
#include "src/dataset/test_util.h"
#include "src/dataset/vector_index.h"
#include "src/store/testing/fault_injecting_backend.h"

namespace dreamdb {
namespace {

Schema TestSchema() {
  Schema s;
  EXPECT_TRUE(s.AddInt64("label").ok());
  EXPECT_TRUE(s.AddFloat64("score", /*optional=*/true).ok());
  EXPECT_TRUE(s.AddString("caption", true).ok());
  EXPECT_TRUE(s.AddEmbedding("emb", 4, true).ok());
  EXPECT_TRUE(s.AddBlob("image", "image/png", true).ok());
  return s;
}

std::shared_ptr<Store> MemStore() { return std::shared_ptr<Store>(*Store::Open("memory://")); }

// n rows: label = base + i, score = i / 2, caption "c<i>", emb = [i, i+1, i+2, i+3].
Batch MakeRows(const Schema& schema, uint64_t n, int64_t base = 0, bool with_anchors = false,
               uint64_t anchor0 = 0) {
  Batch b;
  Column label(*schema.Find("label")), score(*schema.Find("score")),
      caption(*schema.Find("caption")), emb(*schema.Find("emb"));
  for (uint64_t i = 0; i < n; ++i) {
    label.AppendInt64(base + static_cast<int64_t>(i));
    score.AppendFloat64(static_cast<double>(i) / 2);
    caption.AppendBytes("c" + std::to_string(base + static_cast<int64_t>(i)));
    float v[4] = {float(i), float(i + 1), float(i + 2), float(i + 3)};
    emb.AppendFloats(v);
    if (with_anchors) b.anchors.push_back(anchor0 + i);
  }
  b.columns = {std::move(label), std::move(score), std::move(caption), std::move(emb)};
  return b;
}

std::vector<Batch> ScanAll(const Dataset& ds, const ScanOptions& opts = {}) {
  auto reader = ds.Scan(opts);
  EXPECT_TRUE(reader.ok()) << reader.status().ToString();
  std::vector<Batch> out;
  while (true) {
    auto b = (*reader)->Next();
    EXPECT_TRUE(b.ok()) << b.status().ToString();
    if (!b.ok() || !*b) break;
    out.push_back(std::move(**b));
  }
  return out;
}

TEST(DatasetTest, CreateAppendScanTake) {
  auto store = MemStore();
  auto ds = Dataset::Create(store, "demo", TestSchema());
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  EXPECT_EQ((*ds)->Count(), 0u);
  auto c = (*ds)->AppendMany(MakeRows((*ds)->schema(), 1000));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->added, 1000u);
  EXPECT_EQ(c->count, 1000u);
  EXPECT_EQ((*ds)->Count(), 1000u);

  ScanOptions opts;
  opts.batch_rows = 300;
  auto batches = ScanAll(**ds, opts);
  ASSERT_EQ(batches.size(), 4u);
  uint64_t seen = 0;
  for (const auto& b : batches) {
    ASSERT_EQ(b.columns.size(), 5u);
    for (uint64_t i = 0; i < b.num_rows(); ++i, ++seen) {
      EXPECT_EQ(b.anchors[i], seen);
      EXPECT_EQ(b.Find("label")->Int64At(i), static_cast<int64_t>(seen));
      EXPECT_EQ(b.Find("caption")->BytesAt(i), "c" + std::to_string(seen));
      EXPECT_EQ(b.Find("emb")->FloatsAt(i)[3], float(seen + 3));
      EXPECT_FALSE(b.Find("image")->IsValid(i));
    }
  }
  EXPECT_EQ(seen, 1000u);

  auto t = (*ds)->Take({999, 3, 500}, {"caption", "label"});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->columns.size(), 2u);
  EXPECT_EQ(t->columns[0].BytesAt(0), "c999");
  EXPECT_EQ(t->columns[1].Int64At(1), 3);
  EXPECT_EQ(t->columns[1].Int64At(2), 500);

  auto missing = (*ds)->Take({5, 5000}, {"label"});
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("5000"), std::string::npos);
  std::vector<bool> found;
  auto partial = (*ds)->Take({5, 5000}, {"label"}, true, &found);
  ASSERT_TRUE(partial.ok());
  EXPECT_TRUE(found[0]);
  EXPECT_FALSE(found[1]);
  EXPECT_FALSE(partial->columns[0].IsValid(1));
}

TEST(DatasetTest, ScanProjectionRangeAndLimit) {
  auto store = MemStore();
  auto ds = *Dataset::Create(store, "d", TestSchema());
  ASSERT_TRUE(ds->AppendMany(MakeRows(ds->schema(), 2000)).ok());
  ScanOptions opts;
  opts.fields = {"label"};
  opts.start = 100;
  opts.end = 1100;
  opts.limit = 700;
  auto batches = ScanAll(*ds, opts);
  uint64_t n = 0;
  for (const auto& b : batches) {
    ASSERT_EQ(b.columns.size(), 1u);
    for (uint64_t i = 0; i < b.num_rows(); ++i) EXPECT_EQ(b.anchors[i], 100 + n++);
  }
  EXPECT_EQ(n, 700u);
  opts.fields = {"nope"};
  auto bad = ds->Scan(opts);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("'nope'"), std::string::npos);
}

// A scan whose batches are smaller than its segments (and cross them) reads each segment
// once, keeps values, nulls and order, and reads the next batch ahead without changing
// what is returned.
TEST(DatasetTest, ScanReadsEachSegmentOnceAcrossBatchesThatSplitSegments) {
  auto store = MemStore();
  auto ds = *Dataset::Create(store, "d", TestSchema());
  for (int c = 0; c < 3; ++c) {  // three commits of 1,000 rows: three segments per field
    Batch b = MakeRows(ds->schema(), 1000, c * 1000, true, static_cast<uint64_t>(c) * 1000);
    // every 5th score is null
    Column score(*ds->schema().Find("score"));
    for (uint64_t i = 0; i < 1000; ++i) {
      if (i % 5 == 0) {
        score.AppendNull();
      } else {
        score.AppendFloat64(static_cast<double>(i) / 2);
      }
    }
    b.columns[1] = std::move(score);
    ASSERT_TRUE(ds->AppendMany(b).ok());
  }
  auto once = *Dataset::Open(store, "d");
  ScanOptions whole;
  whole.fields = {"label", "score", "caption", "emb"};
  whole.batch_rows = 5000;
  (void)ScanAll(*once, whole);
  const uint64_t segment_bytes = once->read_stats().bytes_fetched;
  ASSERT_GT(segment_bytes, 0u);

  auto reopened = *Dataset::Open(store, "d");
  ScanOptions opts = whole;
  opts.batch_rows = 333;  // batches cross segment boundaries
  auto batches = ScanAll(*reopened, opts);
  EXPECT_EQ(reopened->read_stats().bytes_fetched, segment_bytes);  // each segment once
  uint64_t n = 0;
  for (const auto& b : batches) {
    ASSERT_EQ(b.columns.size(), 4u);
    for (uint64_t i = 0; i < b.num_rows(); ++i, ++n) {
      ASSERT_EQ(b.anchors[i], n);
      EXPECT_EQ(b.columns[0].Int64At(i), static_cast<int64_t>(n));
      const uint64_t k = n % 1000;
      EXPECT_EQ(b.columns[1].IsValid(i), k % 5 != 0) << n;
      if (k % 5 != 0) {
        EXPECT_EQ(b.columns[1].Float64At(i), static_cast<double>(k) / 2);
      }
      EXPECT_EQ(b.columns[2].BytesAt(i), "c" + std::to_string(n));
      EXPECT_EQ(b.columns[3].FloatsAt(i)[3], static_cast<float>(k + 3));
    }
  }
  EXPECT_EQ(n, 3000u);
}

// A reader dropped in the middle of a scan (its read-ahead still running) cleans up.
TEST(DatasetTest, ScanReaderDroppedMidScanStopsItsReadAhead) {
  auto store = MemStore();
  auto ds = *Dataset::Create(store, "d", TestSchema());
  ASSERT_TRUE(ds->AppendMany(MakeRows(ds->schema(), 2000)).ok());
  for (int k = 0; k < 20; ++k) {
    ScanOptions opts;
    opts.batch_rows = 100;
    auto reader = *ds->Scan(opts);
    for (int i = 0; i <= k % 4; ++i) {
      auto b = reader->Next();
      ASSERT_TRUE(b.ok() && b->has_value());
    }
  }
}

// A scan reads the next batch's segments while it builds this one: a read that fails
// ahead of time is reported with the batch that needs it, after every batch before it,
// on a local store (reads on the reader's lane) and a remote one (on the I/O pool).
TEST(DatasetTest, ScanReportsASegmentReadFailedAheadWithTheBatchThatNeedsIt) {
  for (const char* uri : {"memory://ahead", "remote://ahead"}) {
    SCOPED_TRACE(uri);
    std::shared_ptr<Store> mem(*Store::Open("memory://"));
    auto fault = std::make_shared<FaultInjectingBackend>(
        std::shared_ptr<ObjectBackend>(mem, &mem->object_backend()),
        std::shared_ptr<RefBackend>(mem, &mem->ref_backend()));
    std::shared_ptr<Store> store = Store::FromBackends(uri, fault, fault);
    auto ds = *Dataset::Create(store, "d", TestSchema());
    for (int c = 0; c < 4; ++c) {  // four commits: four label segments
      ASSERT_TRUE(ds->AppendMany(MakeRows(ds->schema(), 1000, c * 1000)).ok());
    }
    ScanOptions opts;
    opts.fields = {"label"};
    opts.batch_rows = 1000;
    ASSERT_EQ(ScanAll(*ds, opts).size(), 4u);  // the index pages are now cached
    fault->FailNthCall(3, StatusCode::kUnavailable, FaultOp::kGet);  // the third segment
    auto reader = *ds->Scan(opts);
    for (int64_t b = 0; b < 2; ++b) {
      auto got = reader->Next();
      ASSERT_TRUE(got.ok()) << b << ": " << got.status().ToString();
      ASSERT_TRUE(got->has_value());
      EXPECT_EQ((*got)->columns[0].Int64At(0), b * 1000);
      EXPECT_EQ((*got)->columns[0].Int64At(999), b * 1000 + 999);
    }
    auto third = reader->Next();
    ASSERT_FALSE(third.ok());
    EXPECT_EQ(third.status().code(), StatusCode::kUnavailable) << third.status().ToString();
    EXPECT_NE(third.status().ToString().find("label"), std::string::npos)
        << third.status().ToString();
    auto after = reader->Next();  // the scan has ended
    ASSERT_TRUE(after.ok());
    EXPECT_FALSE(after->has_value());
  }
}

TEST(DatasetTest, ProjectionFetchesOnlyRequestedFields) {
  auto store = MemStore();
  auto ds = *Dataset::Create(store, "d", TestSchema());
  Batch b = MakeRows(ds->schema(), 500);
  Column image(*ds->schema().Find("image"));
  for (int i = 0; i < 500; ++i) image.AppendBytes(std::string(20000, static_cast<char>(i)));
  b.columns.push_back(std::move(image));
  ASSERT_TRUE(b.columns.back().length() == 500);
  ASSERT_TRUE(ds->AppendMany(b).ok());
  auto reopened = *Dataset::Open(store, "d");
  ScanOptions opts;
  opts.fields = {"label"};
  auto batches = ScanAll(*reopened, opts);
  ReadStats st = reopened->read_stats();
  // 500 int64 labels = 4000 bytes; the 10 MB of images must not be fetched.
  EXPECT_LT(st.bytes_fetched, 20000u) << st.bytes_fetched;
}

TEST(DatasetTest, TakeSmallFieldsFetchesLittleMoreThanReturned) {
  auto store = MemStore();
  auto ds = *Dataset::Create(store, "d", TestSchema());
  ASSERT_TRUE(ds->AppendMany(MakeRows(ds->schema(), 100000)).ok());
  auto reopened = *Dataset::OpenAt(store, "d", "main");
  std::vector<uint64_t> anchors;
  for (uint64_t a = 20000; a < 40000; ++a) anchors.push_back(a);
  auto t = reopened->Take(anchors, {"label"});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ReadStats st = reopened->read_stats();
  double returned = 8.0 * anchors.size();
  EXPECT_LE(st.bytes_fetched, 1.5 * returned) << st.bytes_fetched << " fetched for " << returned;
}

// A random take used to fetch every segment's header again on each call; the handle now
// keeps the headers it opened (byte-bounded), so a repeated take makes only the data
// requests.
TEST(DatasetTest, RepeatedTakeOnAHandleDoesNotRefetchSegmentHeaders) {
  auto store = MemStore();
  auto ds = *Dataset::Create(store, "d", TestSchema());
  constexpr uint64_t kSegments = 5, kRows = 2000;
  for (uint64_t s = 0; s < kSegments; ++s) {
    ASSERT_TRUE(ds->AppendMany(MakeRows(ds->schema(), kRows, int64_t(s * kRows))).ok());
  }
  auto reopened = *Dataset::Open(store, "d");
  // One anchor deep inside each segment: its block lies past the header's first request.
  std::vector<uint64_t> anchors;
  for (uint64_t s = 0; s < kSegments; ++s) anchors.push_back(s * kRows + 1500);
  auto first = reopened->Take(anchors, {"label"});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ReadStats a = reopened->read_stats();
  auto second = reopened->Take(anchors, {"label"});
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  ReadStats b = reopened->read_stats();
  // First take: a header and a data request per segment; second: the data requests only.
  EXPECT_EQ(a.requests, 2 * kSegments);
  EXPECT_EQ(b.requests - a.requests, kSegments);
  for (uint64_t i = 0; i < kSegments; ++i) {
    EXPECT_EQ(second->columns[0].Int64At(i), int64_t(i * kRows + 1500));
  }
}

// Counts the object reads that reach a store's backend. Thread-safe (atomic counters).
class CountingBackend final : public ObjectBackend {
 public:
  explicit CountingBackend(std::shared_ptr<ObjectBackend> inner) : inner_(std::move(inner)) {}
  Status Put(const ObjectId& id, ByteView data) override { return inner_->Put(id, data); }
  Result<Bytes> Get(const ObjectId& id) override {
    ++gets;
    return inner_->Get(id);
  }
  Result<Bytes> GetRange(const ObjectId& id, uint64_t offset, uint64_t length) override {
    auto r = inner_->GetRange(id, offset, length);
    ++ranges;
    if (r.ok()) range_bytes += r->size();
    return r;
  }
  Result<ObjectInfo> Head(const ObjectId& id) override { return inner_->Head(id); }
  Status List(std::string_view prefix, const ObjectVisitor& visit) override {
    return inner_->List(prefix, visit);
  }
  Status Delete(const ObjectId& id) override { return inner_->Delete(id); }
  std::atomic<uint64_t> gets{0}, ranges{0}, range_bytes{0};

 private:
  std::shared_ptr<ObjectBackend> inner_;
};

// A training job that opens a new handle per random take used to re-read, on every take,
// each anchor-index leaf (~16 KB per anchor looked up) and each segment header. Both are
// immutable and content-addressed: the handles of one store now share what any of them
// read and verified, process-wide, so a fresh handle's take makes only its data requests.
TEST(DatasetTest, FreshHandleReusesIndexPagesAndSegmentHeadersOfItsStore) {
  const std::string uri =
      "file://" + ::testing::TempDir() + "/dataset_fresh_handle_" + std::to_string(getpid());
  std::shared_ptr<Store> store(*Store::Open(uri));
  auto ds = *Dataset::Create(store, "d", TestSchema());
  constexpr uint64_t kSegments = 4, kRows = 3000;
  for (uint64_t s = 0; s < kSegments; ++s) {
    ASSERT_TRUE(ds->AppendMany(MakeRows(ds->schema(), kRows, int64_t(s * kRows))).ok());
  }
  std::vector<uint64_t> anchors;
  for (uint64_t s = 0; s < kSegments; ++s) anchors.push_back(s * kRows + 2100);
  // Handles on new Store objects for the same URI, counting what reaches the files.
  auto open_counted = [&](std::shared_ptr<CountingBackend>* counter) {
    std::shared_ptr<Store> fresh_store(*Store::Open(uri));
    *counter = std::make_shared<CountingBackend>(
        std::shared_ptr<ObjectBackend>(fresh_store, &fresh_store->object_backend()));
    std::shared_ptr<Store> counted =
        Store::FromBackends(store->uri(), *counter,
                            std::shared_ptr<RefBackend>(fresh_store, &fresh_store->ref_backend()));
    return *Dataset::Open(counted, "d");
  };
  std::shared_ptr<CountingBackend> first_count;
  auto first = open_counted(&first_count);
  const uint64_t open_gets = first_count->gets.load();
  ASSERT_TRUE(first->Take(anchors, {"label"}).ok());
  EXPECT_GT(first_count->gets.load(), open_gets);        // the index pages
  EXPECT_EQ(first_count->ranges.load(), 2 * kSegments);  // a header and a block per segment

  std::shared_ptr<CountingBackend> count;
  auto fresh = open_counted(&count);
  const uint64_t gets = count->gets.load();
  auto t = fresh->Take(anchors, {"label"});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  for (uint64_t i = 0; i < kSegments; ++i) {
    EXPECT_EQ(t->columns[0].Int64At(i), int64_t(i * kRows + 2100));
  }
  // No index page read again, and per segment one request of one 256-byte block.
  EXPECT_EQ(count->gets.load(), gets);
  EXPECT_EQ(count->ranges.load(), kSegments);
  EXPECT_EQ(count->range_bytes.load(), kSegments * 256);
}

// Flips the last byte of every ranged read that does not start at offset 0 (every read a
// take makes past a segment's header). A coalesced read ends with a block the take
// uses, so the flip lands in bytes that must be verified. Thread-safe (atomic counter).
class FlipLastByteBackend final : public ObjectBackend {
 public:
  explicit FlipLastByteBackend(std::shared_ptr<ObjectBackend> inner) : inner_(std::move(inner)) {}
  Status Put(const ObjectId& id, ByteView data) override { return inner_->Put(id, data); }
  Result<Bytes> Get(const ObjectId& id) override { return inner_->Get(id); }
  Result<Bytes> GetRange(const ObjectId& id, uint64_t offset, uint64_t length) override {
    auto r = inner_->GetRange(id, offset, length);
    if (r.ok() && offset > 0 && !r->empty()) {
      r->back() ^= 1;
      ++flipped;
    }
    return r;
  }
  Result<ObjectInfo> Head(const ObjectId& id) override { return inner_->Head(id); }
  Status List(std::string_view prefix, const ObjectVisitor& visit) override {
    return inner_->List(prefix, visit);
  }
  Status Delete(const ObjectId& id) override { return inner_->Delete(id); }
  std::atomic<uint64_t> flipped{0};

 private:
  std::shared_ptr<ObjectBackend> inner_;
};

// A random take made one ranged read per value and field (2,000 for 1,000 anchors of two
// small fields), each a system call through the store and, until the I/O pool, a thread
// of its own. It now plans every read of the call first and coalesces the ranges of one
// segment whose gaps are small: the requests grow with segments x fields, not anchors.
TEST(DatasetTest, TakeOfManyAnchorsMakesRequestsPerSegmentAndFieldNotPerAnchor) {
  const std::string uri =
      "file://" + ::testing::TempDir() + "/dataset_take_coalesced_" + std::to_string(getpid());
  std::shared_ptr<Store> store(*Store::Open(uri));
  auto ds = *Dataset::Create(store, "d", TestSchema());
  constexpr uint64_t kSegments = 4, kRows = 4000, kStride = 64, kFields = 2;
  for (uint64_t s = 0; s < kSegments; ++s) {
    ASSERT_TRUE(ds->AppendMany(MakeRows(ds->schema(), kRows, int64_t(s * kRows))).ok());
  }
  // Every 64th row: 512 bytes apart in an int64 column, so every other 256-byte block.
  std::vector<uint64_t> anchors;
  for (uint64_t a = 3; a < kSegments * kRows; a += kStride) anchors.push_back(a);
  std::reverse(anchors.begin(), anchors.end());  // output order is the caller's
  // Headers and index pages, read through a handle of the store, are now shared.
  ASSERT_TRUE((*Dataset::Open(store, "d"))->Take(anchors, {"label", "score"}).ok());

  std::shared_ptr<Store> fresh_store(*Store::Open(uri));
  auto counter = std::make_shared<CountingBackend>(
      std::shared_ptr<ObjectBackend>(fresh_store, &fresh_store->object_backend()));
  std::shared_ptr<Store> counted = Store::FromBackends(
      store->uri(), counter, std::shared_ptr<RefBackend>(fresh_store, &fresh_store->ref_backend()));
  auto fresh = *Dataset::Open(counted, "d");
  const uint64_t open_gets = counter->gets.load();
  auto t = fresh->Take(anchors, {"label", "score"});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_EQ(t->columns[0].length(), anchors.size());
  for (size_t i = 0; i < anchors.size(); ++i) {
    EXPECT_EQ(t->columns[0].Int64At(i), int64_t(anchors[i]));
    EXPECT_EQ(t->columns[1].Float64At(i), double(anchors[i] % kRows) / 2);
  }
  // At most validity and values apart per segment and field, against 250 values.
  EXPECT_LE(counter->ranges.load(), 2 * kSegments * kFields) << anchors.size() << " anchors";
  EXPECT_EQ(counter->gets.load(), open_gets);  // index pages shared, no whole segment
}

// The bytes of a coalesced read are verified like any other: damage inside a block the
// take uses is reported as corrupt, never returned.
TEST(DatasetTest, CorruptionInsideACoalescedTakeReadIsDetected) {
  const std::string uri =
      "file://" + ::testing::TempDir() + "/dataset_take_corrupt_" + std::to_string(getpid());
  std::shared_ptr<Store> store(*Store::Open(uri));
  auto ds = *Dataset::Create(store, "d", TestSchema());
  ASSERT_TRUE(ds->AppendMany(MakeRows(ds->schema(), 4000)).ok());
  std::vector<uint64_t> anchors;
  for (uint64_t a = 5; a < 4000; a += 64) anchors.push_back(a);
  ASSERT_TRUE(ds->Take(anchors, {"label"}).ok());  // the header, read intact, now shared

  std::shared_ptr<Store> fresh_store(*Store::Open(uri));
  auto flipper = std::make_shared<FlipLastByteBackend>(
      std::shared_ptr<ObjectBackend>(fresh_store, &fresh_store->object_backend()));
  std::shared_ptr<Store> damaged = Store::FromBackends(
      store->uri(), flipper, std::shared_ptr<RefBackend>(fresh_store, &fresh_store->ref_backend()));
  auto fresh = *Dataset::Open(damaged, "d");
  auto t = fresh->Take(anchors, {"label"});
  EXPECT_EQ(flipper->flipped.load(), 1u);  // one coalesced read for the segment
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kCorrupt) << t.status().ToString();
}

// Records the multi-range reads that reach a backend and forwards them; on a memory://
// store it may flip the last byte of every range of them that does not start at 0 (a
// used block, as in FlipLastByteBackend). Thread-safe (guarded by mu_).
class MultiRangeBackend final : public ObjectBackend {
 public:
  MultiRangeBackend(std::shared_ptr<ObjectBackend> inner, bool flip)
      : inner_(std::move(inner)), flip_(flip) {}
  Status Put(const ObjectId& id, ByteView data) override { return inner_->Put(id, data); }
  Result<Bytes> Get(const ObjectId& id) override { return inner_->Get(id); }
  Result<Bytes> GetRange(const ObjectId& id, uint64_t offset, uint64_t length) override {
    ++single_ranges;
    return inner_->GetRange(id, offset, length);
  }
  Result<std::vector<Bytes>> GetRanges(const ObjectId& id,
                                       std::span<const ObjectRange> ranges) override {
    auto r = inner_->GetRanges(id, ranges);
    std::lock_guard lock(mu_);
    calls.emplace_back(id, std::vector<ObjectRange>(ranges.begin(), ranges.end()));
    if (r.ok() && flip_) {
      for (size_t i = 0; i < ranges.size(); ++i) {
        if (ranges[i].offset > 0 && !(*r)[i].empty()) (*r)[i].back() ^= 1;
      }
    }
    return r;
  }
  Result<ObjectInfo> Head(const ObjectId& id) override { return inner_->Head(id); }
  Status List(std::string_view prefix, const ObjectVisitor& visit) override {
    return inner_->List(prefix, visit);
  }
  Status Delete(const ObjectId& id) override { return inner_->Delete(id); }

  std::mutex mu_;
  std::vector<std::pair<ObjectId, std::vector<ObjectRange>>> calls;  // guarded by mu_
  std::atomic<uint64_t> single_ranges{0};

 private:
  std::shared_ptr<ObjectBackend> inner_;
  const bool flip_;
};

// A take of many small values made a ranged read (an fstat and a pread through the store)
// per coalesced range: ~440 for 1,000 random anchors of two fields. It now reads each
// segment's ranges in one multi-range request. The bytes are verified by the segment
// reader as before: damage in a used block, on disk (file://) or in what the backend
// returns (memory://), is corrupt, never returned.
TEST(DatasetTest, TakeReadsEachSegmentInOneMultiRangeRequestAndStillVerifiesIt) {
  const std::string root =
      ::testing::TempDir() + "/dataset_take_multi_range_" + std::to_string(getpid());
  for (const bool file : {true, false}) {
    SCOPED_TRACE(file ? "file://" : "memory://");
    std::shared_ptr<Store> store(*Store::Open(file ? "file://" + root : "memory://"));
    auto ds = *Dataset::Create(store, "d", TestSchema());
    constexpr uint64_t kRows = 8000;
    ASSERT_TRUE(ds->AppendMany(MakeRows(ds->schema(), kRows)).ok());
    // Every 400th row: 3,200 bytes apart, farther than two ranges are merged across.
    std::vector<uint64_t> anchors;
    for (uint64_t a = 5; a < kRows; a += 400) anchors.push_back(a);
    std::reverse(anchors.begin(), anchors.end());
    auto open_through = [&](bool flip) {
      auto backend = std::make_shared<MultiRangeBackend>(
          std::shared_ptr<ObjectBackend>(store, &store->object_backend()), flip);
      auto handle = *Dataset::Open(
          Store::FromBackends(store->uri(), backend,
                              std::shared_ptr<RefBackend>(store, &store->ref_backend())),
          "d");
      return std::make_pair(backend, std::move(handle));
    };
    auto [backend, handle] = open_through(false);
    auto t = handle->Take(anchors, {"label", "score"});
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    for (size_t i = 0; i < anchors.size(); ++i) {
      EXPECT_EQ(t->columns[0].Int64At(i), int64_t(anchors[i]));
      EXPECT_EQ(t->columns[1].Float64At(i), double(anchors[i]) / 2);
    }
    // One multi-range read per field's segment, several ranges each; the only single
    // ranged reads are the segment headers' (up to two each; none when already shared).
    ASSERT_EQ(backend->calls.size(), 2u);
    EXPECT_GT(backend->calls[0].second.size(), 1u);
    EXPECT_LE(backend->single_ranges.load(), 4u);

    if (file) {
      // Damage the stored file in place: the last byte of one segment's last range.
      const auto [id, ranges] = backend->calls[0];  // a copy: the next take adds calls
      const std::string path = root + "/objects/" + id.ShardPrefix() + "/" + id.ToString();
      const uint64_t at = ranges.back().offset + ranges.back().length - 1;
      {
        std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
        ASSERT_TRUE(f.good()) << path;
        f.seekg(static_cast<std::streamoff>(at));
        char c = 0;
        f.get(c);
        f.seekp(static_cast<std::streamoff>(at));
        f.put(static_cast<char>(c ^ 1));
      }
      auto bad = handle->Take(anchors, {"label", "score"});
      ASSERT_FALSE(bad.ok());
      EXPECT_EQ(bad.status().code(), StatusCode::kCorrupt) << bad.status().ToString();
      EXPECT_NE(bad.status().ToString().find(id.ToString()), std::string::npos)
          << bad.status().ToString();
    } else {
      auto [flipper, damaged] = open_through(true);
      auto bad = damaged->Take(anchors, {"label", "score"});
      ASSERT_FALSE(bad.ok());
      EXPECT_EQ(bad.status().code(), StatusCode::kCorrupt) << bad.status().ToString();
    }
  }
}

// The spatial-object cache holds several kinds of objects; a lookup as another kind than
// the one cached is a miss (never an object of the wrong type).
TEST(ObjectCacheTest, LookupAsAnotherKindIsAMiss) {
  vindex::ObjectCache cache(1000, 0, 0);
  ObjectId id = ObjectId::Of("model");
  cache.Insert(id, std::make_shared<const std::string>("a model"), 100);
  EXPECT_EQ(cache.Get<int>(id), nullptr);
  ASSERT_NE(cache.Get<std::string>(id), nullptr);
  EXPECT_EQ(*cache.Get<std::string>(id), "a model");
  cache.Insert(id, std::make_shared<const int>(7), 10);  // same id, another role: unchanged
  EXPECT_EQ(cache.Get<int>(id), nullptr);
  ObjectId big = ObjectId::Of("big");
  cache.Insert(big, std::make_shared<const int>(1), 501);  // over half the capacity
  EXPECT_EQ(cache.Get<int>(big), nullptr);
}

// Views made for one store identity share what they cache; another store's view does not
// see it (spec/21 §7.10: a handle opened per query finds what earlier handles decoded).
TEST(ObjectCacheTest, ViewsOfOneStoreShareAndOtherStoresDoNot) {
  auto a1 = vindex::ObjectCache::ForStore("file:///tmp/object-cache-test-a");
  auto a2 = vindex::ObjectCache::ForStore("file:///tmp/object-cache-test-a");
  auto b = vindex::ObjectCache::ForStore("file:///tmp/object-cache-test-b");
  auto private_cache = vindex::NewObjectCache();
  ObjectId id = ObjectId::Of("a bucket of store a");
  a1->Insert(id, std::make_shared<const int>(42), 64);
  ASSERT_NE(a2->Get<int>(id), nullptr);
  EXPECT_EQ(*a2->Get<int>(id), 42);
  EXPECT_EQ(b->Get<int>(id), nullptr);
  EXPECT_EQ(private_cache->Get<int>(id), nullptr);
  const vindex::LiveKey key{ObjectId::Of("root"), id};
  a2->InsertLive(key, std::make_shared<const vindex::LiveEntries>());
  EXPECT_NE(a1->GetLive(key), nullptr);
  EXPECT_EQ(b->GetLive(key), nullptr);
}

TEST(DatasetTest, ReplaceKeepsOtherFieldsAndNewestWins) {
  auto store = MemStore();
  auto ds = *Dataset::Create(store, "d", TestSchema());
  ASSERT_TRUE(ds->AppendMany(MakeRows(ds->schema(), 10)).ok());
  Batch upd;
  upd.anchors = {2, 7};
  Column label(*ds->schema().Find("label"));
  label.AppendInt64(-2);
  label.AppendInt64(-7);
  upd.columns.push_back(std::move(label));
  auto c = ds->AppendMany(upd);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->added, 0u);
  EXPECT_EQ(c->replaced, 2u);
  EXPECT_EQ(ds->Count(), 10u);
  auto t = *ds->Take({2, 7, 3}, {"label", "caption"});
  EXPECT_EQ(t.columns[0].Int64At(0), -2);
  EXPECT_EQ(t.columns[0].Int64At(1), -7);
  EXPECT_EQ(t.columns[0].Int64At(2), 3);
  EXPECT_EQ(t.columns[1].BytesAt(0), "c2");  // untouched field kept
}

TEST(DatasetTest, DeleteTombstonesAndResurrectStartsEmpty) {
  auto store = MemStore();
  auto ds = *Dataset::Create(store, "d", TestSchema());
  ASSERT_TRUE(ds->AppendMany(MakeRows(ds->schema(), 100)).ok());
  auto d = ds->Delete({5, 6, 7, 1000});
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->deleted, 3u);
  EXPECT_EQ(ds->Count(), 97u);
  uint64_t n = 0;
  for (const auto& b : ScanAll(*ds)) {
    for (uint64_t a : b.anchors) {
      EXPECT_TRUE(a < 5 || a > 7);
      ++n;
    }
  }
  EXPECT_EQ(n, 97u);
  EXPECT_EQ(ds->Take({6}, {"label"}).status().code(), StatusCode::kNotFound);
  // Re-append anchor 6 with only a label: the old caption must not come back.
  Batch again;
  again.anchors = {6};
  Column label(*ds->schema().Find("label"));
  label.AppendInt64(66);
  again.columns.push_back(std::move(label));
  auto c = ds->AppendMany(again);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->added, 1u);
  EXPECT_EQ(ds->Count(), 98u);
  auto t = *ds->Take({6}, {"label", "caption"});
  EXPECT_EQ(t.columns[0].Int64At(0), 66);
  EXPECT_FALSE(t.columns[1].IsValid(0));
}

TEST(DatasetTest, SnapshotsBranchesAndOpenAt) {
  auto store = MemStore();
  auto ds = *Dataset::Create(store, "d", TestSchema());
  ASSERT_TRUE(ds->AppendMany(MakeRows(ds->schema(), 10)).ok());
  ASSERT_TRUE(ds->Snapshot("v1").ok());
  EXPECT_EQ(ds->Snapshot("v1").code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(ds->Snapshot("").code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(ds->Branch("exp/a").ok());
  EXPECT_EQ(ds->Branch("exp/a").code(), StatusCode::kAlreadyExists);
  ObjectId v1 = ds->head();
  ASSERT_TRUE(ds->AppendMany(MakeRows(ds->schema(), 5, 100)).ok());

  auto snap = *Dataset::OpenAt(store, "d", "v1");
  EXPECT_TRUE(snap->read_only());
  EXPECT_EQ(snap->Count(), 10u);
  EXPECT_EQ(snap->AppendMany(MakeRows(snap->schema(), 1)).status().code(),
            StatusCode::kPermissionDenied);
  auto by_id = *Dataset::OpenAt(store, "d", v1.ToString());
  EXPECT_EQ(by_id->Count(), 10u);
  auto branch = *Dataset::Open(store, "d", "exp/a");
  EXPECT_EQ(branch->Count(), 10u);
  ASSERT_TRUE(branch->AppendMany(MakeRows(branch->schema(), 3, 50)).ok());
  EXPECT_EQ(branch->Count(), 13u);
  EXPECT_EQ((*Dataset::Open(store, "d"))->Count(), 15u);

  EXPECT_EQ(Dataset::OpenAt(store, "d", "nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(Dataset::Open(store, "zzz").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(Dataset::Open(store, "d", "nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(Dataset::Create(store, "d", TestSchema()).status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(Dataset::Create(store, "../x", TestSchema()).status().code(),
            StatusCode::kInvalidArgument);
  auto other = *Dataset::Create(store, "other", TestSchema());
  EXPECT_EQ(Dataset::OpenAt(store, "other", v1.ToString()).status().code(),
            StatusCode::kInvalidArgument);
  std::vector<std::string> names;
  ASSERT_TRUE(ListDatasets(*store, [&](std::string_view n) {
                names.emplace_back(n);
                return true;
              }).ok());
  EXPECT_EQ(names, (std::vector<std::string>{"d", "other"}));
}

TEST(DatasetTest, HistoryAndDiff) {
  auto store = MemStore();
  auto ds = *Dataset::Create(store, "d", TestSchema());
  ASSERT_TRUE(ds->AppendMany(MakeRows(ds->schema(), 10), {.message = "first"}).ok());
  ObjectId first = ds->head();
  ASSERT_TRUE(ds->AppendMany(MakeRows(ds->schema(), 2, 0, true, 20), {.message = "second"}).ok());
  ASSERT_TRUE(ds->Delete({3}).ok());
  Batch upd;
  upd.anchors = {4};
  Column label(*ds->schema().Find("label"));
  label.AppendInt64(44);
  upd.columns.push_back(std::move(label));
  ASSERT_TRUE(ds->AppendMany(upd).ok());

  std::vector<CommitInfo> log;
  ASSERT_TRUE(ds->History([&](const CommitInfo& c) {
                  log.push_back(c);
                  return true;
                }).ok());
  ASSERT_EQ(log.size(), 5u);  // create + 4 commits
  EXPECT_EQ(log[2].message, "second");
  EXPECT_EQ(log[2].added, 2u);
  EXPECT_EQ(log[1].deleted, 1u);
  EXPECT_EQ(log[4].message, "create");
  EXPECT_TRUE(log[4].parents.empty());

  auto old = *Dataset::OpenAt(store, "d", first.ToString());
  std::map<uint64_t, DiffEntry::Kind> diff;
  ASSERT_TRUE(old->Diff(ds->head(),
                        [&](const DiffEntry& e) {
                          diff[e.anchor] = e.kind;
                          return true;
                        })
                  .ok());
  EXPECT_EQ(diff.size(), 4u);
  EXPECT_EQ(diff[20], DiffEntry::Kind::kAdded);
  EXPECT_EQ(diff[21], DiffEntry::Kind::kAdded);
  EXPECT_EQ(diff[3], DiffEntry::Kind::kRemoved);
  EXPECT_EQ(diff[4], DiffEntry::Kind::kChanged);
}

TEST(DatasetTest, LayersSchemaEvolutionAndMeta) {
  auto store = MemStore();
  auto ds = *Dataset::Create(store, "d", TestSchema());
  ASSERT_TRUE(ds->AppendMany(MakeRows(ds->schema(), 10)).ok());
  FieldSpec pred{.name = "pred", .type = FieldType::kFloat64};
  Column vals(pred);
  for (int i = 0; i < 3; ++i) vals.AppendFloat64(i * 1.5);
  auto c = ds->AddLayer(pred, {1, 2, 3}, vals);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(ds->schema().version(), 2u);
  EXPECT_TRUE(ds->schema().Find("pred")->optional);
  auto t = *ds->Take({0, 2}, {"pred"});
  EXPECT_FALSE(t.columns[0].IsValid(0));
  EXPECT_EQ(t.columns[0].Float64At(1), 1.5);
  EXPECT_EQ(ds->AddLayer(pred, {99},
                         [&] {
                           Column one(pred);
                           one.AppendFloat64(1);
                           return one;
                         }())
                .status()
                .code(),
            StatusCode::kNotFound);

  auto dropped = ds->schema().WithDroppedField("caption");
  ASSERT_TRUE(dropped.ok());
  ASSERT_TRUE(ds->EvolveSchema(*dropped).ok());
  EXPECT_EQ(ds->schema().Find("caption"), nullptr);
  EXPECT_EQ(ds->Take({1}, {"caption"}).status().code(), StatusCode::kInvalidArgument);

  const Schema cur = ds->schema();
  FieldSpec retyped = *cur.Find("label");
  retyped.type = FieldType::kString;
  Schema bad;
  for (const auto& f : cur.fields()) {
    ASSERT_TRUE(bad.Add(f.name == "label" ? retyped : f).ok());
  }
  bad.set_version(ds->schema().version() + 1);
  EXPECT_EQ(ds->EvolveSchema(bad).status().code(), StatusCode::kInvalidArgument);

  ASSERT_TRUE(ds->SetMeta({{"owner", "team-a"}}).ok());
  EXPECT_EQ(ds->Meta().at("owner"), "team-a");
  auto reopened = *Dataset::Open(store, "d");
  EXPECT_EQ(reopened->Meta().at("owner"), "team-a");
}

TEST(DatasetTest, BadInputGivesClearErrors) {
  auto store = MemStore();
  auto ds = *Dataset::Create(store, "d", TestSchema());
  Batch empty;
  EXPECT_EQ(ds->AppendMany(empty).status().code(), StatusCode::kInvalidArgument);
  // Missing required field for new records.
  Batch b;
  Column score(*ds->schema().Find("score"));
  score.AppendFloat64(1);
  b.columns.push_back(std::move(score));
  auto r = ds->AppendMany(b);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("'label'"), std::string::npos) << r.status().ToString();
  // Wrong embedding dimension.
  Batch w = MakeRows(ds->schema(), 1);
  FieldSpec e8{.name = "emb", .type = FieldType::kEmbedding, .optional = true, .dim = 8};
  Column emb8(e8);
  std::vector<float> v(8, 1.0f);
  emb8.AppendFloats(v);
  w.columns[3] = std::move(emb8);
  r = ds->AppendMany(w);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("dim"), std::string::npos) << r.status().ToString();
  // Duplicate anchors.
  Batch dup = MakeRows(ds->schema(), 2, 0, true, 7);
  dup.anchors[1] = 7;
  EXPECT_EQ(ds->AppendMany(dup).status().code(), StatusCode::kInvalidArgument);
  // Unknown field.
  Batch unk = MakeRows(ds->schema(), 1);
  FieldSpec zz{.name = "zz", .type = FieldType::kInt64};
  Column zc(zz);
  zc.AppendInt64(1);
  unk.columns.push_back(std::move(zc));
  r = ds->AppendMany(unk);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("'zz'"), std::string::npos);
  EXPECT_EQ(ds->Count(), 0u);
}

TEST(DatasetTest, SmallCommitsWriteFewObjects) {
  auto store = MemStore();
  Schema s;
  ASSERT_TRUE(s.AddInt64("x").ok());
  auto ds = *Dataset::Create(store, "d", s);
  uint64_t max_objects = 0;
  for (int i = 0; i < 600; ++i) {
    Batch b;
    Column x(*s.Find("x"));
    x.AppendInt64(i);
    b.columns.push_back(std::move(x));
    auto c = ds->AppendMany(b);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    if (i > 100) max_objects = std::max(max_objects, c->objects_written);
  }
  // One segment + the rightmost leaf and its ancestors + the manifest.
  EXPECT_LE(max_objects, 5u);
  EXPECT_EQ(ds->Count(), 600u);
}

TEST(DatasetTest, TimeAnchorIterReturnsAWindow) {
  std::shared_ptr<Store> store(*Store::Open("memory://"));
  Schema s;
  ASSERT_TRUE(s.AddInt64("x").ok());
  auto ds = *Dataset::Create(store, "d", s);
  const uint64_t t0 = 1'700'000'000'000'000'000ull, hour = 3'600'000'000'000ull;
  Batch b;
  Column x(*s.Find("x"));
  for (int i = 0; i < 48; ++i) {  // one record per hour over two days
    b.anchors.push_back(t0 + i * hour);
    x.AppendInt64(i);
  }
  b.columns.push_back(std::move(x));
  ASSERT_TRUE(ds->AppendMany(b).ok());
  auto it = ds->TimeAnchorIter(t0 + 24 * hour, t0 + 30 * hour);
  ASSERT_TRUE(it.ok());
  std::vector<int64_t> got;
  while (true) {
    auto next = (*it)->Next();
    ASSERT_TRUE(next.ok());
    if (!*next) break;
    for (uint64_t i = 0; i < (*next)->num_rows(); ++i)
      got.push_back((*next)->columns[0].Int64At(i));
  }
  EXPECT_EQ(got, (std::vector<int64_t>{24, 25, 26, 27, 28, 29}));
  EXPECT_EQ(ds->TimeAnchorIter(5, 4).status().code(), StatusCode::kInvalidArgument);
}

TEST(DatasetTest, EightWritersOnOneBranchAllLand) { ConcurrentWriters(8, 25); }

TEST(DatasetTest, WriterSurvivesLostResponsesAndTransientFaults) {
  std::shared_ptr<Store> mem(*Store::Open("memory://"));
  auto fault = std::make_shared<FaultInjectingBackend>(
      std::shared_ptr<ObjectBackend>(mem, &mem->object_backend()),
      std::shared_ptr<RefBackend>(mem, &mem->ref_backend()));
  std::shared_ptr<Store> store = Store::FromBackends("fault://", fault, fault);
  auto ds = *Dataset::Create(store, "d", TestSchema());
  fault->LoseResponseOfNthCall(1, FaultOp::kCompareAndSwap);
  auto c = ds->AppendMany(MakeRows(ds->schema(), 10));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(ds->Count(), 10u);
  fault->FailNthCall(1, StatusCode::kUnavailable, FaultOp::kCompareAndSwap);
  c = ds->AppendMany(MakeRows(ds->schema(), 10, 10));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(ds->Count(), 20u);
  auto report = Verify(*store, "d");
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->problems.empty());
}

TEST(DatasetTest, CrashAnywhereInACommitLeavesAValidDataset) {
  // Crash after k mutating calls, for every k a commit makes: the branch must always point
  // at an intact manifest with either the old or the new contents.
  for (uint64_t k = 0; k < 12; ++k) {
    std::shared_ptr<Store> mem(*Store::Open("memory://"));
    auto fault = std::make_shared<FaultInjectingBackend>(
        std::shared_ptr<ObjectBackend>(mem, &mem->object_backend()),
        std::shared_ptr<RefBackend>(mem, &mem->ref_backend()));
    std::shared_ptr<Store> store = Store::FromBackends("fault://", fault, fault);
    auto ds = *Dataset::Create(store, "d", TestSchema());
    ASSERT_TRUE(ds->AppendMany(MakeRows(ds->schema(), 100)).ok());
    fault->CrashAfterMutations(k);
    auto c = ds->AppendMany(MakeRows(ds->schema(), 700, 1000));
    fault->Restart();
    ASSERT_TRUE(fault->DropUnacknowledgedWrites().ok());
    auto report = Verify(*store, "d");
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_TRUE(report->problems.empty()) << "k=" << k << ": " << report->problems.front();
    auto reopened = *Dataset::Open(store, "d");
    uint64_t n = reopened->Count();
    EXPECT_TRUE(n == 100 || n == 800) << n;
    if (c.ok()) {
      EXPECT_EQ(n, 800u);
    }
  }
}

TEST(DatasetTest, VerifyFindsCorruption) {
  std::string dir = ::testing::TempDir() + "/dataset_verify_" + std::to_string(getpid());
  std::shared_ptr<Store> store(*Store::Open("file://" + dir));
  auto ds = *Dataset::Create(store, "d", TestSchema());
  ASSERT_TRUE(ds->AppendMany(MakeRows(ds->schema(), 100)).ok());
  auto ok = Verify(*store);
  ASSERT_TRUE(ok.ok());
  EXPECT_TRUE(ok->problems.empty());
  EXPECT_GE(ok->objects, 6u);
  // Flip a byte of one segment file behind the store's back.
  std::vector<ObjectId> ids;
  ASSERT_TRUE(store
                  ->ListObjects("",
                                [&](const ObjectInfo& i) {
                                  ids.push_back(i.id);
                                  return true;
                                })
                  .ok());
  int corrupted = 0;
  for (const auto& id : ids) {
    Bytes b = *store->Get(id);
    if (b.rfind("DDBSEG01", 0) != 0) continue;
    std::string path = dir + "/objects/" + id.ShardPrefix() + "/" + id.ToString();
    FILE* f = fopen(path.c_str(), "r+b");
    ASSERT_NE(f, nullptr) << path;
    fseek(f, static_cast<long>(b.size() - 1), SEEK_SET);
    fputc(b.back() ^ 1, f);
    fclose(f);
    ++corrupted;
    break;
  }
  ASSERT_EQ(corrupted, 1);
  auto bad = Verify(*store);
  ASSERT_TRUE(bad.ok());
  ASSERT_EQ(bad->problems.size(), 1u);
  EXPECT_NE(bad->problems[0].find("corrupt"), std::string::npos) << bad->problems[0];
}

TEST(DatasetTest, DroppedFieldNameCannotBeReaddedSoOldDataNeverResurfaces) {
  auto store = MemStore();
  auto ds = *Dataset::Create(store, "d", TestSchema());
  ASSERT_TRUE(ds->AppendMany(MakeRows(ds->schema(), 10)).ok());
  ASSERT_TRUE(ds->EvolveSchema(*ds->schema().WithDroppedField("caption")).ok());
  FieldSpec caption{.name = "caption", .type = FieldType::kString, .optional = true};
  auto again = ds->schema().WithAddedField(caption);
  ASSERT_TRUE(again.ok());
  auto r = ds->EvolveSchema(*again);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("dropped"), std::string::npos) << r.status().ToString();
  Column vals(caption);
  vals.AppendBytes("x");
  EXPECT_EQ(ds->AddLayer(caption, {1}, vals).status().code(), StatusCode::kInvalidArgument);
}

TEST(DatasetTest, SchemaVersionIsSetByTheStoreNotTheCaller) {
  auto store = MemStore();
  Schema s = TestSchema();
  s.set_version(9);
  auto ds = *Dataset::Create(store, "d", s);
  EXPECT_EQ(ds->schema().version(), 1u);
  Schema next = *ds->schema().WithAddedField(
      FieldSpec{.name = "extra", .type = FieldType::kBool, .optional = true});
  next.set_version(77);
  ASSERT_TRUE(ds->EvolveSchema(next).ok());
  EXPECT_EQ(ds->schema().version(), 2u);
}

// A ref backend whose next compare-and-swap applies, then lets `after` run (another
// writer committing), then reports the outcome as unknown.
class LosingRefs : public RefBackend {
 public:
  explicit LosingRefs(RefBackend* inner) : inner_(inner) {}
  std::function<void()> after;
  Result<RefValue> Read(std::string_view n) override { return inner_->Read(n); }
  Status Create(std::string_view n, const ObjectId& t) override { return inner_->Create(n, t); }
  Status CompareAndSwap(std::string_view n, const ObjectId& e, const ObjectId& d) override {
    Status s = inner_->CompareAndSwap(n, e, d);
    if (s.ok() && after) {
      auto f = std::move(after);
      after = nullptr;
      f();
      return Unavailable("connection reset after the swap was applied");
    }
    return s;
  }
  Status Delete(std::string_view n, const ObjectId& e) override { return inner_->Delete(n, e); }
  Status List(std::string_view p, const RefVisitor& v) override { return inner_->List(p, v); }

 private:
  RefBackend* inner_;
};

TEST(DatasetTest, LostCommitResponseIsNotAppliedTwiceWhenAnotherWriterFollowed) {
  std::shared_ptr<Store> mem(*Store::Open("memory://"));
  auto refs = std::make_shared<LosingRefs>(&mem->ref_backend());
  std::shared_ptr<Store> store = Store::FromBackends(
      "losing://", std::shared_ptr<ObjectBackend>(mem, &mem->object_backend()), refs);
  auto ds = *Dataset::Create(store, "d", TestSchema());
  ASSERT_TRUE(ds->AppendMany(MakeRows(ds->schema(), 10)).ok());
  auto other = *Dataset::Open(mem, "d");
  refs->after = [&] {
    ASSERT_TRUE(other->Refresh().ok());
    ASSERT_TRUE(other->AppendMany(MakeRows(other->schema(), 5, 100)).ok());
  };
  auto c = ds->AppendMany(MakeRows(ds->schema(), 7, 200));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto fresh = *Dataset::Open(mem, "d");
  EXPECT_EQ(fresh->Count(), 10u + 7u + 5u);  // our 7 records once, not twice
}

TEST(DatasetTest, BranchNamesCannotCreateSnapshotRefs) {
  auto store = MemStore();
  auto ds = *Dataset::Create(store, "d", TestSchema());
  EXPECT_EQ(ds->Branch("x/snapshots/y").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Dataset::Create(store, "x.lock", TestSchema()).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(DatasetTest, DeleteOnAStaleHandleSeesAnchorsAppendedByAnotherHandle) {
  auto store = MemStore();
  auto a = *Dataset::Create(store, "d", TestSchema());
  auto b = *Dataset::Open(store, "d");
  ASSERT_TRUE(b->AppendMany(MakeRows(b->schema(), 1)).ok());  // anchor 0, unseen by `a`
  auto d = a->Delete({0});
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->deleted, 1u);
  EXPECT_EQ((*Dataset::Open(store, "d"))->Count(), 0u);
}

TEST(DatasetTest, DeletingOnlyAbsentAnchorsMakesNoCommit) {
  auto store = MemStore();
  auto ds = *Dataset::Create(store, "d", TestSchema());
  ASSERT_TRUE(ds->AppendMany(MakeRows(ds->schema(), 3)).ok());
  ObjectId head = ds->head();
  auto d = ds->Delete({100, 200});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->deleted, 0u);
  EXPECT_EQ(ds->head(), head);
  EXPECT_EQ(ds->SetMeta({}).status().code(), StatusCode::kInvalidArgument);
}

TEST(DatasetTest, FileStoreRoundTrip) {
  std::string dir = ::testing::TempDir() + "/dataset_file_" + std::to_string(getpid());
  std::shared_ptr<Store> store(*Store::Open("file://" + dir));
  {
    auto ds = *Dataset::Create(store, "d", TestSchema());
    ASSERT_TRUE(ds->AppendMany(MakeRows(ds->schema(), 3000)).ok());
    ASSERT_TRUE(ds->Snapshot("s").ok());
  }
  std::shared_ptr<Store> again(*Store::Open("file://" + dir));
  auto ds = *Dataset::OpenAt(again, "d", "s");
  EXPECT_EQ(ds->Count(), 3000u);
  auto t = *ds->Take({2999}, {"caption"});
  EXPECT_EQ(t.columns[0].BytesAt(0), "c2999");
  auto report = Verify(*again);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->problems.empty());
}

}  // namespace
}  // namespace dreamdb
