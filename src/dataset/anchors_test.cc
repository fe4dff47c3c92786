// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Anchors-only scans (ScanOptions::anchors_only): they list the live anchors from the
// anchor index pages alone and never fetch a segment byte.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "dreamdb/dataset.h"
#include "src/columnar/segment.h"

namespace dreamdb {
namespace {

// Forwards to an inner backend and classifies every fetch as segment or non-segment bytes
// (segments start with the segment magic; everything else a read touches is an index page
// or a manifest). Thread-safe: counters are atomic and the inner backend is thread-safe.
class RecordingBackend final : public ObjectBackend {
 public:
  explicit RecordingBackend(std::shared_ptr<ObjectBackend> inner) : inner_(std::move(inner)) {}

  Status Put(const ObjectId& id, ByteView data) override { return inner_->Put(id, data); }
  Result<Bytes> Get(const ObjectId& id) override {
    auto r = inner_->Get(id);
    if (r.ok()) Count(id, r->size());
    return r;
  }
  Result<Bytes> GetRange(const ObjectId& id, uint64_t offset, uint64_t length) override {
    auto r = inner_->GetRange(id, offset, length);
    if (r.ok()) Count(id, r->size());
    return r;
  }
  Result<ObjectInfo> Head(const ObjectId& id) override { return inner_->Head(id); }
  Status List(std::string_view shard_prefix, const ObjectVisitor& visit) override {
    return inner_->List(shard_prefix, visit);
  }
  Status Delete(const ObjectId& id) override { return inner_->Delete(id); }

  uint64_t segment_bytes() const { return segment_bytes_.load(); }
  uint64_t other_bytes() const { return other_bytes_.load(); }

 private:
  void Count(const ObjectId& id, uint64_t n) {
    auto whole = inner_->Get(id);  // not counted: only to classify the object
    bool segment = whole.ok() && whole->starts_with(columnar::kSegmentMagic);
    (segment ? segment_bytes_ : other_bytes_).fetch_add(n);
  }

  std::shared_ptr<ObjectBackend> inner_;
  std::atomic<uint64_t> segment_bytes_{0};
  std::atomic<uint64_t> other_bytes_{0};
};

struct Fixture {
  std::shared_ptr<Store> mem;
  std::vector<uint64_t> live;  // anchors expected at head, ascending
};

// 600 records of a label and a 20 KB image over three commits, then some deletes.
Fixture MakeDataset() {
  Fixture f;
  f.mem = std::shared_ptr<Store>(*Store::Open("memory://"));
  Schema s;
  EXPECT_TRUE(s.AddInt64("label").ok());
  EXPECT_TRUE(s.AddBlob("image", "image/png", true).ok());
  auto ds = *Dataset::Create(f.mem, "d", s);
  for (int c = 0; c < 3; ++c) {
    Batch b;
    Column label(*s.Find("label")), image(*s.Find("image"));
    for (int i = 0; i < 200; ++i) {
      label.AppendInt64(c * 200 + i);
      image.AppendBytes(std::string(20000, static_cast<char>(i)));
    }
    b.columns = {std::move(label), std::move(image)};
    auto r = ds->AppendMany(b);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
  }
  std::vector<uint64_t> gone;
  for (uint64_t a = 0; a < 600; a += 7) gone.push_back(a);
  EXPECT_TRUE(ds->Delete(gone).ok());
  for (uint64_t a = 0; a < 600; ++a) {
    if (a % 7 != 0) f.live.push_back(a);
  }
  return f;
}

// A fresh store handle (empty caches) on the same objects, recording what reads fetch.
std::shared_ptr<Store> Recorded(const Fixture& f, std::shared_ptr<RecordingBackend>* rec) {
  *rec = std::make_shared<RecordingBackend>(
      std::shared_ptr<ObjectBackend>(f.mem, &f.mem->object_backend()));
  return Store::FromBackends("recording://", *rec,
                             std::shared_ptr<RefBackend>(f.mem, &f.mem->ref_backend()));
}

std::vector<uint64_t> ReadAnchors(BatchReader& reader, size_t* batches = nullptr) {
  std::vector<uint64_t> out;
  size_t n = 0;
  while (true) {
    auto b = reader.Next();
    EXPECT_TRUE(b.ok()) << b.status().ToString();
    if (!b.ok() || !*b) break;
    EXPECT_TRUE((*b)->columns.empty());
    out.insert(out.end(), (*b)->anchors.begin(), (*b)->anchors.end());
    ++n;
  }
  if (batches != nullptr) *batches = n;
  return out;
}

TEST(AnchorsOnlyScanTest, ListsLiveAnchorsWithoutFetchingSegments) {
  Fixture f = MakeDataset();
  std::shared_ptr<RecordingBackend> rec;
  auto store = Recorded(f, &rec);
  auto ds = *Dataset::OpenAt(store, "d", "main");
  ScanOptions o;
  o.anchors_only = true;
  auto reader = ds->Scan(o);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  EXPECT_TRUE((*reader)->schema().fields().empty());
  EXPECT_EQ(ReadAnchors(**reader), f.live);
  EXPECT_EQ(rec->segment_bytes(), 0u);
  EXPECT_GT(rec->other_bytes(), 0u);  // the index pages (and the manifest) were read
  EXPECT_EQ(ds->read_stats().bytes_fetched, 0u);
  EXPECT_EQ(ds->read_stats().requests, 0u);
  // 12 MB of images and 4.8 KB of labels: the index is far smaller than either.
  EXPECT_LT(rec->other_bytes(), 64u * 1024) << rec->other_bytes();

  // The recorder does see segments: a one-field scan fetches some.
  std::shared_ptr<RecordingBackend> rec2;
  auto ds2 = *Dataset::OpenAt(Recorded(f, &rec2), "d", "main");
  ScanOptions labels;
  labels.fields = {"label"};
  auto reader2 = *ds2->Scan(labels);
  while (true) {
    auto b = reader2->Next();
    ASSERT_TRUE(b.ok());
    if (!*b) break;
  }
  EXPECT_GT(rec2->segment_bytes(), 0u);
}

TEST(AnchorsOnlyScanTest, HonoursRangeLimitAndBatchRows) {
  Fixture f = MakeDataset();
  std::shared_ptr<RecordingBackend> rec;
  auto ds = *Dataset::OpenAt(Recorded(f, &rec), "d", "main");
  ScanOptions o;
  o.anchors_only = true;
  o.start = 100;
  o.end = 450;
  o.batch_rows = 64;
  std::vector<uint64_t> want;
  for (uint64_t a : f.live) {
    if (a >= 100 && a < 450) want.push_back(a);
  }
  size_t batches = 0;
  EXPECT_EQ(ReadAnchors(**ds->Scan(o), &batches), want);
  EXPECT_EQ(batches, (want.size() + 63) / 64);
  o.limit = 10;
  EXPECT_EQ(ReadAnchors(**ds->Scan(o)), std::vector<uint64_t>(want.begin(), want.begin() + 10));
  o.start = o.end = 450;
  EXPECT_TRUE(ReadAnchors(**ds->Scan(o)).empty());
  EXPECT_EQ(rec->segment_bytes(), 0u);
}

TEST(AnchorsOnlyScanTest, WithFieldsIsInvalidArgumentNamingThem) {
  Fixture f = MakeDataset();
  auto ds = *Dataset::Open(f.mem, "d");
  ScanOptions o;
  o.anchors_only = true;
  o.fields = {"label"};
  auto r = ds->Scan(o);
  ASSERT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("'label'"), std::string::npos) << r.status().ToString();
  EXPECT_NE(r.status().message().find("anchors-only"), std::string::npos);
}

// Dataset::ReadUnits: runs of consecutive records cut at segment changes (here one segment
// per field per commit), counting live records only, from the index pages alone.
TEST(ReadUnitsTest, EndAtSegmentChangesCountLiveRecordsAndReadNoSegment) {
  Fixture f = MakeDataset();
  std::shared_ptr<RecordingBackend> rec;
  auto ds = *Dataset::OpenAt(Recorded(f, &rec), "d", "main");
  auto units = ds->ReadUnits({"label", "image"});
  ASSERT_TRUE(units.ok()) << units.status().ToString();
  ASSERT_EQ(units->size(), 3u);
  uint64_t total = 0;
  for (size_t c = 0; c < 3; ++c) {
    const ReadUnit& u = (*units)[c];
    uint64_t live = 0;
    for (uint64_t a : f.live) live += a >= c * 200 && a < (c + 1) * 200;
    EXPECT_EQ(u.records, live) << c;
    EXPECT_EQ(u.first, c == 0 ? 1u : c * 200 + (c * 200 % 7 == 0 ? 1 : 0)) << c;
    EXPECT_LT(u.last, (c + 1) * 200) << c;
    total += u.records;
  }
  EXPECT_EQ(total, f.live.size());
  EXPECT_EQ(rec->segment_bytes(), 0u);

  auto merged = *ds->ReadUnits({"label"}, /*min_records=*/200);  // 171 + 171 + 172 live
  ASSERT_EQ(merged.size(), 2u);
  EXPECT_EQ(merged[0].records, (*units)[0].records + (*units)[1].records);
  auto capped = *ds->ReadUnits({}, 1, /*max_records=*/50);
  uint64_t capped_total = 0;
  for (const ReadUnit& u : capped) {
    EXPECT_LE(u.records, 50u);
    capped_total += u.records;
  }
  EXPECT_EQ(capped_total, f.live.size());
  EXPECT_EQ(ds->ReadUnits({"label"}, 0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ds->ReadUnits({"label"}, 5, 4).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ds->ReadUnits({"nope"}).status().code(), StatusCode::kInvalidArgument);
}

TEST(AnchorsOnlyScanTest, EmptyDatasetHasNoAnchors) {
  std::shared_ptr<Store> mem(*Store::Open("memory://"));
  Schema s;
  ASSERT_TRUE(s.AddInt64("x").ok());
  auto ds = *Dataset::Create(mem, "d", s);
  ScanOptions o;
  o.anchors_only = true;
  EXPECT_TRUE(ReadAnchors(**ds->Scan(o)).empty());
}

// Automatic anchors (spec/14-semantics.md §2.3) after a record at the top of the anchor
// space: a careless or hostile row at 2^64 - 2 used to raise next_anchor to 2^64 - 1 and
// refuse every later automatic anchor on the branch, even after the row was deleted.
Result<CommitInfo> AppendAuto(Dataset& ds, const std::vector<int64_t>& xs) {
  Batch b;
  Column x(*ds.schema().Find("x"));
  for (int64_t v : xs) x.AppendInt64(v);
  b.columns.push_back(std::move(x));
  return ds.AppendMany(b);
}

Status AppendAt(Dataset& ds, std::vector<uint64_t> anchors) {
  Batch b;
  Column x(*ds.schema().Find("x"));
  for (size_t i = 0; i < anchors.size(); ++i) x.AppendInt64(-1);
  b.columns.push_back(std::move(x));
  b.anchors = std::move(anchors);
  return ds.AppendMany(b).status();
}
Status AppendAt(Dataset& ds, uint64_t anchor) {
  return AppendAt(ds, std::vector<uint64_t>{anchor});
}

TEST(AutomaticAnchorsTest, RecordAtTheTopOfTheAnchorSpaceDoesNotStopAutomaticAnchors) {
  std::shared_ptr<Store> mem(*Store::Open("memory://"));
  Schema s;
  ASSERT_TRUE(s.AddInt64("x").ok());
  auto ds = *Dataset::Create(mem, "d", s);
  ASSERT_TRUE(AppendAuto(*ds, {0, 1, 2}).ok());
  ASSERT_TRUE(AppendAt(*ds, UINT64_MAX - 1).ok());
  // Automatic anchors continue above the highest record below the top one.
  auto c = AppendAuto(*ds, {3, 4});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ScanOptions o;
  o.anchors_only = true;
  EXPECT_EQ(ReadAnchors(**ds->Scan(o)), (std::vector<uint64_t>{0, 1, 2, 3, 4, UINT64_MAX - 1}));
  // Deleted anchors are never assigned again, whether or not the top record stays.
  ASSERT_TRUE(ds->Delete({4}).ok());
  ASSERT_TRUE(AppendAuto(*ds, {5}).ok());
  ASSERT_TRUE(ds->Delete({UINT64_MAX - 1, 5}).ok());
  ASSERT_TRUE(AppendAuto(*ds, {6, 7}).ok());
  EXPECT_EQ(ReadAnchors(**ds->Scan(o)), (std::vector<uint64_t>{0, 1, 2, 3, 6, 7}));
  auto t = ds->Take({6, 7}, {"x"});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->columns[0].Int64At(0), 6);
  // With records at the very last anchor and in a run near the top, automatic anchors
  // fill the highest free run that holds the batch: above that run for one record, above
  // 7 for a batch too large for it.
  ASSERT_TRUE(AppendAt(*ds, UINT64_MAX).ok());
  std::vector<uint64_t> run;
  for (uint64_t a = UINT64_MAX - 5000; a < UINT64_MAX - 4990; ++a) run.push_back(a);
  ASSERT_TRUE(AppendAt(*ds, run).ok());
  ASSERT_TRUE(AppendAuto(*ds, {8}).ok());
  ASSERT_TRUE(ds->Take({UINT64_MAX - 4990}, {"x"}).ok());
  ASSERT_TRUE(AppendAuto(*ds, std::vector<int64_t>(5000, 9)).ok());
  auto last = ds->Take({8, 5007}, {"x"});
  ASSERT_TRUE(last.ok()) << last.status().ToString();
  EXPECT_EQ(last->columns[0].Int64At(1), 9);
  EXPECT_EQ(ds->Count(), 6u + 1 + 10 + 1 + 5000);
}

TEST(AutomaticAnchorsTest, TopRunFullOfDeletedAnchorsIsNotReused) {
  // Anchors just below a top record that were deleted stay unused: automatic anchors go
  // below them, never onto them.
  std::shared_ptr<Store> mem(*Store::Open("memory://"));
  Schema s;
  ASSERT_TRUE(s.AddInt64("x").ok());
  auto ds = *Dataset::Create(mem, "d", s);
  std::vector<uint64_t> top;
  for (uint64_t a = UINT64_MAX - 300; a < UINT64_MAX; ++a) top.push_back(a);
  ASSERT_TRUE(AppendAt(*ds, top).ok());
  ASSERT_TRUE(ds->Delete(std::vector<uint64_t>(top.begin(), top.end() - 1)).ok());
  ASSERT_TRUE(AppendAuto(*ds, {1, 2}).ok());
  ScanOptions o;
  o.anchors_only = true;
  EXPECT_EQ(ReadAnchors(**ds->Scan(o)), (std::vector<uint64_t>{0, 1, UINT64_MAX - 1}));
}

}  // namespace
}  // namespace dreamdb
