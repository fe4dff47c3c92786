// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Shared by the retention tests (retention_test.cc: history retention and erasure,
// spec/06-refs.md §6.10; field_retention_test.cc: per-field retention, §6.12): a dataset of
// two fields on a store of its own, records, reading a field back, and GC with grace 0.
// The suites are instantiated on memory:// and file:// (retention_backends_test.cc) and on
// s3:// (retention_s3_test.cc, a test of its own labelled s3).
#ifndef DREAMDB_SRC_DATASET_RETENTION_TEST_UTIL_H_
#define DREAMDB_SRC_DATASET_RETENTION_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "dreamdb/dataset.h"
#include "dreamdb/gc.h"
#include "src/dataset/store_fixture_test_util.h"

namespace dreamdb {

// x (int64) and payload (blob).
inline Schema PayloadSchema() {
  Schema s;
  EXPECT_TRUE(s.AddInt64("x").ok());
  EXPECT_TRUE(s.AddBlob("payload").ok());
  return s;
}

// One record (at `anchor`, replacing it when it exists; else at the next automatic anchor).
inline Batch OneRecord(const Schema& s, int64_t x, const std::string& payload,
                       std::optional<uint64_t> anchor = std::nullopt) {
  Batch b;
  if (anchor) b.anchors = {*anchor};
  Column cx(*s.Find("x")), cp(*s.Find("payload"));
  cx.AppendInt64(x);
  cp.AppendBytes(payload);
  b.columns.push_back(std::move(cx));
  b.columns.push_back(std::move(cp));
  return b;
}

// Append number `i` of `n` records: x = i * n + k, payload "p<x>".
inline Batch NumberedRecords(const Schema& s, int i, size_t n) {
  Batch b;
  Column cx(*s.Find("x")), cp(*s.Find("payload"));
  for (size_t k = 0; k < n; ++k) {
    const int64_t x = static_cast<int64_t>(i * n + k);
    cx.AppendInt64(x);
    cp.AppendBytes("p" + std::to_string(x));
  }
  b.columns.push_back(std::move(cx));
  b.columns.push_back(std::move(cp));
  return b;
}

// "anchor=value;" for `field` (x or payload) of every record of `ds`, or the error.
inline std::string FieldValues(Dataset& ds, const std::string& field) {
  ScanOptions o;
  o.fields = {field};
  auto reader = ds.Scan(o);
  if (!reader.ok()) return reader.status().ToString();
  std::string out;
  while (true) {
    auto b = (*reader)->Next();
    if (!b.ok()) return b.status().ToString();
    if (!*b) break;
    const Column& c = (*b)->columns[0];
    for (uint64_t r = 0; r < (*b)->num_rows(); ++r) {
      out += std::to_string((*b)->anchors[r]) + "=" +
             (c.type() == FieldType::kInt64 ? std::to_string(c.Int64At(r))
                                            : std::string(c.BytesAt(r))) +
             ";";
    }
  }
  return out;
}

// FieldValues of `version` (a branch, snapshot or manifest id) of dataset "d".
inline std::string FieldValuesAt(const std::shared_ptr<Store>& store, const std::string& version,
                                 const std::string& field) {
  auto ds = Dataset::OpenAt(store, "d", version);
  if (!ds.ok()) return "open: " + ds.status().ToString();
  return FieldValues(**ds, field);
}

// Dataset "d" (PayloadSchema) on a store of the test's parameter (StoreFixture::OpenStore).
class RetentionTest : public StoreFixture<::testing::TestWithParam<std::string>> {
 protected:
  void SetUp() override {
    OpenStore(GetParam(), "retention");
    if (!store_) return;  // skipped or failed: no S3 server
    auto ds = Dataset::Create(store_, "d", PayloadSchema());
    ASSERT_TRUE(ds.ok()) << ds.status().ToString();
    ds_ = std::move(*ds);
  }
  void TearDown() override {
    ds_.reset();
    StoreFixture::TearDown();
  }

  // GC with grace 0 and no writers running, at `o.now_unix_ms` (one second from now when
  // 0); checks that it succeeds, finds no problem and that its figures add up.
  GcReport Gc(GcOptions o) {
    o.grace_ms = 0;
    o.no_writers_running = true;
    if (o.now_unix_ms == 0) o.now_unix_ms = NowMs() + 1000;
    GcReport r;
    Status s = CollectGarbage(*store_, o, &r);
    EXPECT_TRUE(s.ok()) << s.ToString();
    for (const auto& p : r.problems) ADD_FAILURE() << p;
    EXPECT_EQ(r.found_objects,
              r.reachable_objects + r.leased_objects + r.young_objects + r.deleted_objects);
    EXPECT_EQ(r.found_bytes, r.reachable_bytes + r.leased_bytes + r.young_bytes + r.deleted_bytes);
    return r;
  }
  // With history retention (GcOptions::keep_since_ms, keep_last, datasets).
  GcReport Collect(int64_t keep_since_ms, uint64_t keep_last,
                   std::vector<std::string> datasets = {}) {
    GcOptions o;
    o.keep_since_ms = keep_since_ms;
    o.keep_last = keep_last;
    o.datasets = std::move(datasets);
    return Gc(std::move(o));
  }
  // Without history retention, GC's clock at `now_ms` (per-field retention applies).
  GcReport CollectAt(int64_t now_ms, bool dry_run = false) {
    GcOptions o;
    o.now_unix_ms = now_ms;
    o.dry_run = dry_run;
    return Gc(std::move(o));
  }

  std::vector<CommitInfo> Log(Dataset& ds) {
    std::vector<CommitInfo> out;
    Status s = ds.History([&](const CommitInfo& c) {
      out.push_back(c);
      return true;
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return out;
  }

  // Appends `b` to ds_; the new version's manifest id.
  std::string Commit(const Batch& b) {
    auto c = ds_->AppendMany(b);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? c->manifest.ToString() : std::string();
  }

  std::unique_ptr<Dataset> ds_;
};

// The two suites (one fixture, two names).
class Retention : public RetentionTest {
 protected:
  void KeepLastCutsHistoryCleanly(size_t per_append);  // retention_test.cc
};
class FieldRetention : public RetentionTest {};

// Test names "memory", "file", "s3" for the OpenStore kinds.
inline std::string BackendName(const ::testing::TestParamInfo<std::string>& info) {
  return info.param == "memory://" ? std::string("memory") : info.param;
}

}  // namespace dreamdb

#endif  // DREAMDB_SRC_DATASET_RETENTION_TEST_UTIL_H_
