// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// The backend conformance suite (see conformance.h). Each test states the spec rule it
// checks; every backend (memory://, file://, and later s3://) must pass all of them.

#include "src/store/testing/conformance.h"

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <limits>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace dreamdb {

int StoreConformanceLinkAnchor() { return 0; }

namespace {

Status StatusOf(const Status& s) { return s; }
template <typename T>
Status StatusOf(const Result<T>& r) {
  return r.status();
}

#define CONF_ASSERT_OK(expr)                                          \
  do {                                                                \
    const Status conf_s_ = StatusOf(expr);                            \
    ASSERT_TRUE(conf_s_.ok()) << #expr << ": " << conf_s_.ToString(); \
  } while (0)
#define CONF_EXPECT_OK(expr)                                          \
  do {                                                                \
    const Status conf_s_ = StatusOf(expr);                            \
    EXPECT_TRUE(conf_s_.ok()) << #expr << ": " << conf_s_.ToString(); \
  } while (0)
#define CONF_EXPECT_CODE(expr, want)                                          \
  do {                                                                        \
    const Status conf_s_ = StatusOf(expr);                                    \
    EXPECT_EQ(conf_s_.code(), (want)) << #expr << ": " << conf_s_.ToString(); \
  } while (0)

// Makes `n` distinct payloads tagged with `tag`.
std::string Payload(std::string_view tag, int i) {
  return "conformance payload " + std::string(tag) + " #" + std::to_string(i);
}

// Puts Payload(tag, 0..n-1) from 8 threads (durable backends sync each put; in parallel
// their syncs overlap) and returns the ids in payload order.
std::vector<ObjectId> PutMany(Store& store, std::string_view tag, int n, Status* status) {
  constexpr int kThreads = 8;
  std::vector<ObjectId> ids(static_cast<size_t>(n));
  std::mutex mu;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < n; i += kThreads) {
        auto id = store.Put(Payload(tag, i));
        std::lock_guard lock(mu);
        if (id.ok()) {
          ids[static_cast<size_t>(i)] = *id;
        } else if (status->ok()) {
          *status = id.status();
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  return ids;
}

// The listing order every backend gives: shard prefix, then text id.
bool ListingLess(const ObjectId& a, const ObjectId& b) {
  std::string sa = a.ShardPrefix(), sb = b.ShardPrefix();
  if (sa != sb) return sa < sb;
  return a.ToString() < b.ToString();
}

std::vector<ObjectInfo> ListAll(Store& store, std::string_view prefix, Status* status) {
  std::vector<ObjectInfo> out;
  *status = store.ListObjects(prefix, [&](const ObjectInfo& info) {
    out.push_back(info);
    return true;
  });
  return out;
}

std::vector<RefValue> ListRefsAll(Store& store, std::string_view prefix, Status* status) {
  std::vector<RefValue> out;
  *status = store.ListRefs(prefix, [&](const RefValue& ref) {
    out.push_back(ref);
    return true;
  });
  return out;
}

}  // namespace

void StoreConformanceTest::SetUp() {
  store_ = GetParam().make();
  if (IsSkipped()) return;  // the factory's environment is absent (a server not started)
  ASSERT_NE(store_, nullptr);
}

void StoreConformanceTest::TearDown() {
  store_.reset();
  if (GetParam().cleanup) GetParam().cleanup();
}

void StoreConformanceTest::Corrupt(const ObjectId& id, ByteView bytes) {
  if (GetParam().corrupt) {
    GetParam().corrupt(*store_, id, bytes);
    return;
  }
  ASSERT_TRUE(store_->object_backend().Delete(id).ok());
  ASSERT_TRUE(store_->object_backend().Put(id, bytes).ok());
}

// ---- Objects: put / get / head (spec/05 §3) ----

TEST_P(StoreConformanceTest, PutThenGetReturnsTheBytes) {
  auto id = store_->Put("hello, store");
  CONF_ASSERT_OK(id);
  EXPECT_EQ(*id, ObjectId::Of("hello, store"));
  auto data = store_->Get(*id);
  CONF_ASSERT_OK(data);
  EXPECT_EQ(*data, "hello, store");
}

TEST_P(StoreConformanceTest, BinaryBytesRoundTrip) {
  std::string bytes;
  for (int i = 0; i < 1024; ++i) bytes.push_back(static_cast<char>(i * 7 % 256));
  bytes[10] = '\0';
  auto id = store_->Put(bytes);
  CONF_ASSERT_OK(id);
  auto data = store_->Get(*id);
  CONF_ASSERT_OK(data);
  EXPECT_EQ(*data, bytes);
}

TEST_P(StoreConformanceTest, PutIsIdempotent) {
  auto a = store_->Put("same bytes");
  auto b = store_->Put("same bytes");
  CONF_ASSERT_OK(a);
  CONF_ASSERT_OK(b);
  EXPECT_EQ(*a, *b);
  CONF_EXPECT_OK(store_->PutWithId(*a, "same bytes"));
  Status st;
  auto all = ListAll(*store_, "", &st);
  CONF_ASSERT_OK(st);
  EXPECT_EQ(all.size(), 1u);
}

TEST_P(StoreConformanceTest, EmptyObject) {
  auto id = store_->Put("");
  CONF_ASSERT_OK(id);
  EXPECT_EQ(*id, ObjectId::Of(""));
  auto data = store_->Get(*id);
  CONF_ASSERT_OK(data);
  EXPECT_EQ(*data, "");
  auto head = store_->Head(*id);
  CONF_ASSERT_OK(head);
  EXPECT_EQ(head->size_bytes, 0u);
  auto range = store_->GetRange(*id, 0, 10);
  CONF_ASSERT_OK(range);
  EXPECT_EQ(*range, "");
  CONF_EXPECT_CODE(store_->GetRange(*id, 1, 1), StatusCode::kInvalidArgument);
}

TEST_P(StoreConformanceTest, LargeObject) {
  std::string big(8u << 20, '\0');
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (size_t i = 0; i < big.size(); ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    big[i] = static_cast<char>(x);
  }
  auto id = store_->Put(big);
  CONF_ASSERT_OK(id);
  auto head = store_->Head(*id);
  CONF_ASSERT_OK(head);
  EXPECT_EQ(head->size_bytes, big.size());
  auto data = store_->Get(*id);
  CONF_ASSERT_OK(data);
  EXPECT_TRUE(*data == big);
  auto mid = store_->GetRange(*id, (4u << 20) - 3, 1u << 20);
  CONF_ASSERT_OK(mid);
  EXPECT_TRUE(*mid == big.substr((4u << 20) - 3, 1u << 20));
  auto tail = store_->GetRange(*id, big.size() - 5, 100);
  CONF_ASSERT_OK(tail);
  EXPECT_EQ(*tail, big.substr(big.size() - 5));
}

TEST_P(StoreConformanceTest, GetMissingIsNotFound) {
  ObjectId missing = ObjectId::Of("never stored");
  auto r = store_->Get(missing);
  CONF_EXPECT_CODE(r, StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find(missing.ToString()), std::string::npos)
      << r.status().message();
  CONF_EXPECT_CODE(store_->Head(missing), StatusCode::kNotFound);
  CONF_EXPECT_CODE(store_->GetRange(missing, 0, 1), StatusCode::kNotFound);
  auto contains = store_->Contains(missing);
  CONF_ASSERT_OK(contains);
  EXPECT_FALSE(*contains);
}

TEST_P(StoreConformanceTest, HeadAndContains) {
  auto id = store_->Put("twelve bytes");
  CONF_ASSERT_OK(id);
  auto head = store_->Head(*id);
  CONF_ASSERT_OK(head);
  EXPECT_EQ(head->id, *id);
  EXPECT_EQ(head->size_bytes, 12u);
  auto contains = store_->Contains(*id);
  CONF_ASSERT_OK(contains);
  EXPECT_TRUE(*contains);
}

TEST_P(StoreConformanceTest, GetRangeClipsAndValidates) {
  auto id = store_->Put("0123456789");
  CONF_ASSERT_OK(id);
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  struct Case {
    uint64_t offset, length;
    std::string want;
  } cases[] = {
      {0, 10, "0123456789"}, {2, 3, "234"},           {8, 100, "89"},     {10, 5, ""},   {0, 0, ""},
      {9, 1, "9"},           {0, kMax, "0123456789"}, {5, kMax, "56789"}, {10, kMax, ""}};
  for (const Case& c : cases) {
    auto r = store_->GetRange(*id, c.offset, c.length);
    CONF_ASSERT_OK(r);
    EXPECT_EQ(*r, c.want) << "offset " << c.offset << " length " << c.length;
  }
  CONF_EXPECT_CODE(store_->GetRange(*id, 11, 1), StatusCode::kInvalidArgument);
  CONF_EXPECT_CODE(store_->GetRange(*id, kMax, 1), StatusCode::kInvalidArgument);
}

// A multi-range read gives, per range and in the order asked, exactly what GetRange gives:
// ranges out of order, overlapping, repeated, empty and clipped at the end; a range past
// the end fails the whole call (naming it), and a missing object is not found.
TEST_P(StoreConformanceTest, GetRangesGivesEachRangeAsGetRangeDoes) {
  auto id = store_->Put("0123456789");
  CONF_ASSERT_OK(id);
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  const std::vector<ObjectRange> ranges = {{8, 100}, {2, 3}, {0, 10},   {3, 4}, {2, 3},
                                           {10, 5},  {5, 0}, {0, kMax}, {9, 1}};
  auto got = store_->GetRanges(*id, ranges);
  CONF_ASSERT_OK(got);
  ASSERT_EQ(got->size(), ranges.size());
  for (size_t i = 0; i < ranges.size(); ++i) {
    auto one = store_->GetRange(*id, ranges[i].offset, ranges[i].length);
    CONF_ASSERT_OK(one);
    EXPECT_EQ((*got)[i], *one) << "range " << i;
  }
  EXPECT_EQ((*got)[0], "89");
  EXPECT_EQ((*got)[3], "3456");
  auto none = store_->GetRanges(*id, {});
  CONF_ASSERT_OK(none);
  EXPECT_TRUE(none->empty());

  const std::vector<ObjectRange> past = {{0, 2}, {11, 1}, {4, 2}};
  auto bad = store_->GetRanges(*id, past);
  CONF_EXPECT_CODE(bad, StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("11"), std::string::npos) << bad.status().message();
  CONF_EXPECT_CODE(store_->GetRanges(ObjectId::Of("never stored"), past), StatusCode::kNotFound);
}

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

TEST_P(StoreConformanceTest, ModifiedTimeIsReportedAndRefreshedByPut) {
  if (!GetParam().reports_modified_time) {
    // A backend that cannot tell must say 0, never a made-up time.
    auto id = store_->Put("aging object");
    CONF_ASSERT_OK(id);
    auto head = store_->Head(*id);
    CONF_ASSERT_OK(head);
    EXPECT_EQ(head->modified_unix_ms, 0);
    return;
  }
  // File systems stamp times from a coarse clock: allow some slack.
  constexpr int64_t kSlackMs = 1000;
  int64_t before = NowUnixMs();
  auto id = store_->Put("aging object");
  int64_t after = NowUnixMs();
  CONF_ASSERT_OK(id);
  auto head = store_->Head(*id);
  CONF_ASSERT_OK(head);
  EXPECT_GE(head->modified_unix_ms, before - kSlackMs);
  EXPECT_LE(head->modified_unix_ms, after + kSlackMs);
  std::vector<ObjectInfo> listed;
  CONF_ASSERT_OK(store_->ListObjects("", [&](const ObjectInfo& info) {
    listed.push_back(info);
    return true;
  }));
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].modified_unix_ms, head->modified_unix_ms);
  // A Put of the same bytes refreshes the time (GC's grace period restarts).
  const int64_t resolution = GetParam().modified_time_resolution_ms;
  std::this_thread::sleep_for(std::chrono::milliseconds(60 + resolution));
  CONF_ASSERT_OK(store_->Put("aging object"));
  auto again = store_->Head(*id);
  CONF_ASSERT_OK(again);
  EXPECT_GE(again->modified_unix_ms, head->modified_unix_ms + std::max<int64_t>(40, resolution));
}

// ---- Verification (spec/05 §5) ----

TEST_P(StoreConformanceTest, GetVerifiesTheHash) {
  auto id = store_->Put("the original bytes");
  CONF_ASSERT_OK(id);
  Corrupt(*id, "the 0riginal bytes");
  auto r = store_->Get(*id);
  CONF_EXPECT_CODE(r, StatusCode::kCorrupt);
  EXPECT_EQ(r.status().message(), "object " + id->ToString() +
                                      " is corrupt: stored bytes hash to " +
                                      ObjectId::Of("the 0riginal bytes").ToString());
  // Ranged reads are not verified: formats read by range carry their own checksums.
  auto range = store_->GetRange(*id, 4, 5);
  CONF_ASSERT_OK(range);
  EXPECT_EQ(*range, "0rigi");
  // A store opened with verify_reads = false returns the stored bytes as they are.
  auto raw = Store::FromBackends(
      "raw", std::shared_ptr<ObjectBackend>(std::shared_ptr<void>(), &store_->object_backend()),
      std::shared_ptr<RefBackend>(std::shared_ptr<void>(), &store_->ref_backend()),
      StoreOptions{.verify_reads = false});
  auto unverified = raw->Get(*id);
  CONF_ASSERT_OK(unverified);
  EXPECT_EQ(*unverified, "the 0riginal bytes");
}

TEST_P(StoreConformanceTest, TruncatedObjectIsCorrupt) {
  auto id = store_->Put("a longer object that loses its tail");
  CONF_ASSERT_OK(id);
  Corrupt(*id, "a longer object");
  CONF_EXPECT_CODE(store_->Get(*id), StatusCode::kCorrupt);
}

TEST_P(StoreConformanceTest, PutWithIdVerifies) {
  ObjectId id = ObjectId::Of("claimed bytes");
  Status st = store_->PutWithId(id, "other bytes");
  EXPECT_EQ(st.code(), StatusCode::kCorrupt) << st.ToString();
  EXPECT_EQ(st.message(), "object " + id.ToString() + ": supplied bytes hash to " +
                              ObjectId::Of("other bytes").ToString());
  auto contains = store_->Contains(id);
  CONF_ASSERT_OK(contains);
  EXPECT_FALSE(*contains);
  CONF_EXPECT_OK(store_->PutWithId(id, "claimed bytes"));
  auto data = store_->Get(id);
  CONF_ASSERT_OK(data);
  EXPECT_EQ(*data, "claimed bytes");
}

// ---- Delete (spec/05 §3.2: idempotent) ----

TEST_P(StoreConformanceTest, DeleteIsIdempotent) {
  ObjectId never = ObjectId::Of("never stored either");
  CONF_EXPECT_OK(store_->DeleteObject(never));
  auto id = store_->Put("to be deleted");
  CONF_ASSERT_OK(id);
  CONF_EXPECT_OK(store_->DeleteObject(*id));
  CONF_EXPECT_CODE(store_->Get(*id), StatusCode::kNotFound);
  auto contains = store_->Contains(*id);
  CONF_ASSERT_OK(contains);
  EXPECT_FALSE(*contains);
  CONF_EXPECT_OK(store_->DeleteObject(*id));
  // Put after delete stores it again.
  CONF_ASSERT_OK(store_->Put("to be deleted"));
  auto data = store_->Get(*id);
  CONF_ASSERT_OK(data);
  EXPECT_EQ(*data, "to be deleted");
}

// ---- Listing (spec/05 §4) ----

TEST_P(StoreConformanceTest, ListEmptyStore) {
  Status st;
  EXPECT_TRUE(ListAll(*store_, "", &st).empty());
  CONF_EXPECT_OK(st);
  EXPECT_TRUE(ListAll(*store_, "a", &st).empty());
  CONF_EXPECT_OK(st);
  EXPECT_TRUE(ListAll(*store_, "ab", &st).empty());
  CONF_EXPECT_OK(st);
}

TEST_P(StoreConformanceTest, ListIsCompleteAndOrdered) {
  Status put;
  std::vector<ObjectId> ids = PutMany(*store_, "list", 300, &put);
  CONF_ASSERT_OK(put);
  std::vector<ObjectId> want = ids;
  std::sort(want.begin(), want.end(), ListingLess);
  Status st;
  auto all = ListAll(*store_, "", &st);
  CONF_ASSERT_OK(st);
  ASSERT_EQ(all.size(), want.size());
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].id, want[i]) << "position " << i;
    auto head = store_->Head(all[i].id);
    CONF_ASSERT_OK(head);
    EXPECT_EQ(all[i].size_bytes, head->size_bytes);
  }
}

TEST_P(StoreConformanceTest, ListByShardPrefix) {
  Status put;
  std::vector<ObjectId> ids = PutMany(*store_, "shard", 400, &put);
  CONF_ASSERT_OK(put);
  std::sort(ids.begin(), ids.end(), ListingLess);
  std::set<std::string> prefixes = {"0", "7", "f", "a"};
  for (const ObjectId& id : ids) {
    if (prefixes.size() >= 12) break;
    prefixes.insert(id.ShardPrefix());  // some two-digit prefixes that hold objects
  }
  prefixes.insert("00");
  prefixes.insert("ff");
  size_t total = 0;
  for (char c : std::string("0123456789abcdef")) {
    Status st;
    total += ListAll(*store_, std::string(1, c), &st).size();
    CONF_ASSERT_OK(st);
  }
  EXPECT_EQ(total, ids.size()) << "the 16 one-digit prefixes partition the store";
  for (const std::string& prefix : prefixes) {
    std::vector<ObjectId> want;
    for (const ObjectId& id : ids) {
      if (id.ShardPrefix().compare(0, prefix.size(), prefix) == 0) want.push_back(id);
    }
    Status st;
    auto got = ListAll(*store_, prefix, &st);
    CONF_ASSERT_OK(st);
    ASSERT_EQ(got.size(), want.size()) << "prefix " << prefix;
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].id, want[i]) << prefix << " " << i;
  }
}

TEST_P(StoreConformanceTest, ListStopsEarly) {
  Status put;
  PutMany(*store_, "stop", 40, &put);
  CONF_ASSERT_OK(put);
  Status st;
  auto all = ListAll(*store_, "", &st);
  CONF_ASSERT_OK(st);
  std::vector<ObjectId> seen;
  CONF_ASSERT_OK(store_->ListObjects("", [&](const ObjectInfo& info) {
    seen.push_back(info.id);
    return seen.size() < 5;
  }));
  ASSERT_EQ(seen.size(), 5u);
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(seen[i], all[i].id);
}

TEST_P(StoreConformanceTest, ListToleratesDeletesFromTheVisitor) {
  // GC deletes while it lists; the visitor may call back into the store.
  Status put;
  PutMany(*store_, "gc", 200, &put);
  CONF_ASSERT_OK(put);
  std::set<ObjectId> seen;
  CONF_ASSERT_OK(store_->ListObjects("", [&](const ObjectInfo& info) {
    EXPECT_TRUE(seen.insert(info.id).second) << "visited twice";
    EXPECT_TRUE(store_->DeleteObject(info.id).ok());
    return true;
  }));
  EXPECT_EQ(seen.size(), 200u);
  Status st;
  EXPECT_TRUE(ListAll(*store_, "", &st).empty());
}

TEST_P(StoreConformanceTest, ListRejectsBadShardPrefix) {
  for (std::string_view bad : {"g", "abc", "A", "0F", "-", "b"}) {
    Status st = store_->ListObjects(bad, [](const ObjectInfo&) { return true; });
    if (bad == "b") {
      EXPECT_TRUE(st.ok()) << "'b' is a valid one-digit hex prefix";
      continue;
    }
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << bad << ": " << st.ToString();
  }
}

// ---- Refs (spec/06) ----

TEST_P(StoreConformanceTest, RefCreateAndRead) {
  auto id = store_->Put("commit 1");
  CONF_ASSERT_OK(id);
  CONF_ASSERT_OK(store_->CreateRef("ds/branches/main", *id));
  auto ref = store_->ReadRef("ds/branches/main");
  CONF_ASSERT_OK(ref);
  EXPECT_EQ(ref->name, "ds/branches/main");
  EXPECT_EQ(ref->target, *id);
  Status again = store_->CreateRef("ds/branches/main", *id);
  EXPECT_EQ(again.code(), StatusCode::kAlreadyExists) << again.ToString();
  CONF_EXPECT_CODE(store_->ReadRef("ds/branches/other"), StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, RefCompareAndSwap) {
  auto a = store_->Put("commit a");
  auto b = store_->Put("commit b");
  auto c = store_->Put("commit c");
  CONF_ASSERT_OK(a);
  CONF_ASSERT_OK(b);
  CONF_ASSERT_OK(c);
  CONF_ASSERT_OK(store_->CreateRef("main", *a));
  CONF_ASSERT_OK(store_->UpdateRef("main", *a, *b));
  auto ref = store_->ReadRef("main");
  CONF_ASSERT_OK(ref);
  EXPECT_EQ(ref->target, *b);
  Status stale = store_->UpdateRef("main", *a, *c);
  EXPECT_EQ(stale.code(), StatusCode::kConflict) << stale.ToString();
  ref = store_->ReadRef("main");
  CONF_ASSERT_OK(ref);
  EXPECT_EQ(ref->target, *b) << "a failed swap changes nothing";
  CONF_EXPECT_OK(store_->UpdateRef("main", *b, *b));  // a no-op swap succeeds
  CONF_EXPECT_CODE(store_->UpdateRef("missing", *a, *b), StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, RefDeleteIsConditional) {
  auto a = store_->Put("commit a");
  auto b = store_->Put("commit b");
  CONF_ASSERT_OK(a);
  CONF_ASSERT_OK(b);
  CONF_ASSERT_OK(store_->CreateRef("ds/branches/dev", *a));
  CONF_EXPECT_CODE(store_->DeleteRef("ds/branches/dev", *b), StatusCode::kConflict);
  CONF_EXPECT_OK(store_->ReadRef("ds/branches/dev"));
  CONF_EXPECT_OK(store_->DeleteRef("ds/branches/dev", *a));
  CONF_EXPECT_CODE(store_->ReadRef("ds/branches/dev"), StatusCode::kNotFound);
  CONF_EXPECT_CODE(store_->DeleteRef("ds/branches/dev", *a), StatusCode::kNotFound);
  // A deleted ref can be created again and moves as usual.
  CONF_ASSERT_OK(store_->CreateRef("ds/branches/dev", *b));
  CONF_EXPECT_OK(store_->UpdateRef("ds/branches/dev", *b, *a));
  auto ref = store_->ReadRef("ds/branches/dev");
  CONF_ASSERT_OK(ref);
  EXPECT_EQ(ref->target, *a);
}

TEST_P(StoreConformanceTest, RefToMissingObjectIsRefused) {
  auto a = store_->Put("commit a");
  CONF_ASSERT_OK(a);
  ObjectId missing = ObjectId::Of("not stored");
  Status st = store_->CreateRef("main", missing);
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_EQ(st.message(), "target object " + missing.ToString() + " is not in the store");
  CONF_EXPECT_CODE(store_->ReadRef("main"), StatusCode::kNotFound);
  CONF_ASSERT_OK(store_->CreateRef("main", *a));
  st = store_->UpdateRef("main", *a, missing);
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_EQ(st.message(), "target object " + missing.ToString() + " is not in the store");
  auto ref = store_->ReadRef("main");
  CONF_ASSERT_OK(ref);
  EXPECT_EQ(ref->target, *a);
  CONF_EXPECT_CODE(store_->CreateRef("null", ObjectId()), StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, RefListByPrefixInNameOrder) {
  auto id = store_->Put("target");
  CONF_ASSERT_OK(id);
  // Chosen so that '/'-encoding schemes which sort differently from the names get caught.
  std::vector<std::string> names = {"a/b",  "a-b",           "a.b", "a/b/c", "a0",    "a_b",
                                    "ab",   "a/a",           "b",   "A",     "a/b-c", "a/b.c",
                                    "a/bc", "z/snapshots/v1"};
  for (const std::string& n : names) CONF_ASSERT_OK(store_->CreateRef(n, *id));
  std::vector<std::string> want = names;
  std::sort(want.begin(), want.end());
  Status st;
  auto all = ListRefsAll(*store_, "", &st);
  CONF_ASSERT_OK(st);
  ASSERT_EQ(all.size(), want.size());
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].name, want[i]);
    EXPECT_EQ(all[i].target, *id);
  }
  for (std::string prefix : {"a/", "a/b", "a", "z/snapshots/", "nothing", "A"}) {
    std::vector<std::string> w;
    for (const std::string& n : want) {
      if (n.compare(0, prefix.size(), prefix) == 0) w.push_back(n);
    }
    auto got = ListRefsAll(*store_, prefix, &st);
    CONF_ASSERT_OK(st);
    ASSERT_EQ(got.size(), w.size()) << prefix;
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].name, w[i]) << prefix;
  }
  std::vector<std::string> first3;
  CONF_ASSERT_OK(store_->ListRefs("", [&](const RefValue& r) {
    first3.push_back(r.name);
    return first3.size() < 3;
  }));
  EXPECT_EQ(first3, std::vector<std::string>(want.begin(), want.begin() + 3));
  CONF_EXPECT_CODE(store_->ListRefs("a b", [](const RefValue&) { return true; }),
                   StatusCode::kInvalidArgument);
  CONF_EXPECT_CODE(store_->ListRefs("a~b", [](const RefValue&) { return true; }),
                   StatusCode::kInvalidArgument);
}

TEST_P(StoreConformanceTest, SnapshotsNeverMove) {
  auto a = store_->Put("commit a");
  auto b = store_->Put("commit b");
  CONF_ASSERT_OK(a);
  CONF_ASSERT_OK(b);
  CONF_ASSERT_OK(store_->CreateRef("ds/snapshots/v1", *a));
  Status st = store_->UpdateRef("ds/snapshots/v1", *a, *b);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
  EXPECT_NE(st.message().find("snapshot"), std::string::npos) << st.message();
  st = store_->DeleteRef("ds/snapshots/v1", *a);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
  auto ref = store_->ReadRef("ds/snapshots/v1");
  CONF_ASSERT_OK(ref);
  EXPECT_EQ(ref->target, *a);
  CONF_EXPECT_CODE(store_->CreateRef("ds/snapshots/v1", *b), StatusCode::kAlreadyExists);
  CONF_EXPECT_OK(store_->DeleteRef("ds/snapshots/v1", *a, /*allow_snapshot=*/true));
  CONF_EXPECT_CODE(store_->ReadRef("ds/snapshots/v1"), StatusCode::kNotFound);
  // "snapshots" as the last segment names a branch, which moves.
  CONF_ASSERT_OK(store_->CreateRef("ds/snapshots", *a));
  CONF_EXPECT_OK(store_->UpdateRef("ds/snapshots", *a, *b));
}

TEST_P(StoreConformanceTest, EveryRefCallValidatesTheName) {
  auto a = store_->Put("commit a");
  CONF_ASSERT_OK(a);
  std::vector<std::string> bad = {"",
                                  "/a",
                                  "a/",
                                  "a//b",
                                  "a b",
                                  ".a",
                                  "a/.b",
                                  "a.lock",
                                  "a/b.lock/c",
                                  "a~b",
                                  "a\\b",
                                  std::string(256, 'a'),
                                  std::string("a\0b", 3)};
  for (const std::string& name : bad) {
    CONF_EXPECT_CODE(store_->ReadRef(name), StatusCode::kInvalidArgument);
    CONF_EXPECT_CODE(store_->CreateRef(name, *a), StatusCode::kInvalidArgument);
    CONF_EXPECT_CODE(store_->UpdateRef(name, *a, *a), StatusCode::kInvalidArgument);
    CONF_EXPECT_CODE(store_->DeleteRef(name, *a, true), StatusCode::kInvalidArgument);
  }
  Status st;
  EXPECT_TRUE(ListRefsAll(*store_, "", &st).empty());
  CONF_EXPECT_OK(st);
  CONF_EXPECT_OK(store_->CreateRef(std::string(255, 'a'), *a));
}

// ---- Concurrency (spec/05 §6.3, spec/06 §4.1) ----

TEST_P(StoreConformanceTest, ConcurrentCompareAndSwapHasOneWinnerPerRound) {
  constexpr int kThreads = 8;
  const int rounds = GetParam().cas_rounds;
  const std::string ref = "race/branches/main";
  auto start = store_->Put("race start");
  CONF_ASSERT_OK(start);
  CONF_ASSERT_OK(store_->CreateRef(ref, *start));

  ObjectId expected;  // written by the barrier completion, read by all threads after it
  std::atomic<int> winners{0};
  std::atomic<int> losers{0};
  std::atomic<int> failures{0};
  std::mutex mu;
  std::vector<std::string> errors;  // guarded by mu
  std::vector<ObjectId> desired(kThreads);
  int round = 0;
  auto before_round = [&]() noexcept {
    auto r = store_->ReadRef(ref);
    if (!r.ok()) {
      failures.fetch_add(1);
      return;
    }
    expected = r->target;
  };
  auto after_round = [&]() noexcept {
    int w = winners.exchange(0), l = losers.exchange(0);
    if (w != 1 || l != kThreads - 1) {
      failures.fetch_add(1);
      std::lock_guard lock(mu);
      errors.push_back("round " + std::to_string(round) + ": " + std::to_string(w) + " winners, " +
                       std::to_string(l) + " losers");
    }
    auto r = store_->ReadRef(ref);
    bool at_a_desired =
        r.ok() && std::find(desired.begin(), desired.end(), r->target) != desired.end();
    if (!at_a_desired) {
      failures.fetch_add(1);
      std::lock_guard lock(mu);
      errors.push_back("round " + std::to_string(round) + ": ref is not at a winner's target");
    }
    ++round;
  };
  std::barrier start_barrier(kThreads, before_round);
  std::barrier end_barrier(kThreads, after_round);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Two objects per thread, used alternately, so a winner never swaps to the target
      // it already set.
      Result<ObjectId> objects[2] = {store_->Put("race thread " + std::to_string(t) + " a"),
                                     store_->Put("race thread " + std::to_string(t) + " b")};
      for (int r = 0; r < rounds; ++r) {
        const Result<ObjectId>& mine = objects[r % 2];
        if (!mine.ok()) {
          failures.fetch_add(1);
        } else {
          desired[t] = *mine;
        }
        start_barrier.arrive_and_wait();
        Status st = mine.ok() ? store_->UpdateRef(ref, expected, *mine) : Status();
        if (st.ok() && mine.ok()) {
          winners.fetch_add(1);
        } else if (st.code() == StatusCode::kConflict) {
          losers.fetch_add(1);
        } else {
          failures.fetch_add(1);
          std::lock_guard lock(mu);
          errors.push_back("unexpected: " + st.ToString());
        }
        end_barrier.arrive_and_wait();
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  for (size_t i = 0; i < std::min<size_t>(errors.size(), 10); ++i) ADD_FAILURE() << errors[i];
  EXPECT_EQ(round, rounds);
}

TEST_P(StoreConformanceTest, ConcurrentCreateHasOneWinner) {
  constexpr int kThreads = 8;
  std::vector<ObjectId> ids;
  for (int t = 0; t < kThreads; ++t) {
    auto id = store_->Put(Payload("create", t));
    CONF_ASSERT_OK(id);
    ids.push_back(*id);
  }
  for (int round = 0; round < 20; ++round) {
    const std::string name = "create/race/" + std::to_string(round);
    std::atomic<int> ok{0}, exists{0}, other{0};
    std::barrier sync(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        sync.arrive_and_wait();
        Status st = store_->CreateRef(name, ids[t]);
        if (st.ok()) {
          ok.fetch_add(1);
        } else if (st.code() == StatusCode::kAlreadyExists) {
          exists.fetch_add(1);
        } else {
          other.fetch_add(1);
        }
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(ok.load(), 1) << name;
    EXPECT_EQ(exists.load(), kThreads - 1) << name;
    EXPECT_EQ(other.load(), 0) << name;
  }
}

TEST_P(StoreConformanceTest, ConcurrentPutsOfOneObject) {
  constexpr int kThreads = 8;
  const std::string data(100000, 'x');
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        if (!store_->Put(data).ok()) failures.fetch_add(1);
        auto got = store_->Get(ObjectId::Of(data));
        if (!got.ok() || *got != data) failures.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

// ---- Persistence (for stores that reopen by URI) ----

TEST_P(StoreConformanceTest, ReopenSeesObjectsAndRefs) {
  auto id = store_->Put("durable");
  if (!GetParam().reopen_by_uri) {
    // A private store (plain memory://) has no name to reopen: opening its URI again
    // gives a new, empty store and never someone else's data.
    CONF_ASSERT_OK(id);
    auto other = Store::Open(store_->uri());
    CONF_ASSERT_OK(other);
    auto got = (*other)->Get(*id);
    EXPECT_EQ(got.status().code(), StatusCode::kNotFound);
    return;
  }
  CONF_ASSERT_OK(id);
  CONF_ASSERT_OK(store_->CreateRef("ds/branches/main", *id));
  std::string uri = store_->uri();
  store_.reset();
  auto reopened = Store::Open(uri);
  CONF_ASSERT_OK(reopened);
  store_ = std::move(*reopened);
  auto data = store_->Get(*id);
  CONF_ASSERT_OK(data);
  EXPECT_EQ(*data, "durable");
  auto ref = store_->ReadRef("ds/branches/main");
  CONF_ASSERT_OK(ref);
  EXPECT_EQ(ref->target, *id);
}

}  // namespace dreamdb
