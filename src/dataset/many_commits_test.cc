// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Reads stay cheap after a long history of small commits (spec/14 §18.1): opening a head and
// taking records cost what they cost on a dataset written in one commit, whatever the
// number of commits, and a scan after compaction reads what the one-commit dataset's scan
// reads. The costs are storage requests (Store::stats()), deterministic on any machine; the
// wall-clock times are printed for the record, never checked.
//
// DREAMDB_MANY_COMMITS sets the number of one-record commits (default 500: a few seconds;
// the on-demand runs use 10,000 and 100,000).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "dreamdb/dataset.h"
#include "src/dataset/store_fixture_test_util.h"

namespace dreamdb {
namespace {

struct Cost {
  double open_ms = 0, scan_ms = 0, take_ms = 0;
  uint64_t open_requests = 0, scan_requests = 0, take_requests = 0;
  uint64_t rows = 0;
  std::string content;  // ReadAll
};

double MsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

uint64_t Requests(const Store& store) { return store.stats().TotalRequests(); }

// Open (a fresh handle: no cache of its own) and scan every field, then take `anchors` one
// at a time on another fresh handle; the requests counted are every one the store made.
Cost Measure(const std::shared_ptr<Store>& store, const std::string& name,
             const std::vector<uint64_t>& anchors) {
  Cost c;
  uint64_t before = Requests(*store);
  auto t0 = std::chrono::steady_clock::now();
  auto ds = Dataset::Open(store, name);
  EXPECT_TRUE(ds.ok()) << ds.status().ToString();
  if (!ds.ok()) return c;
  c.open_ms = MsSince(t0);
  c.open_requests = Requests(*store) - before;
  before = Requests(*store);
  t0 = std::chrono::steady_clock::now();
  c.content = ReadAll(**ds);
  c.scan_ms = MsSince(t0);
  c.scan_requests = Requests(*store) - before;
  auto taker = *Dataset::Open(store, name);
  before = Requests(*store);
  t0 = std::chrono::steady_clock::now();
  for (uint64_t a : anchors) {
    auto t = taker->Take({a}, {"label", "emb"});
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    if (t.ok()) c.rows += t->num_rows();
  }
  c.take_ms = MsSince(t0);
  c.take_requests = Requests(*store) - before;
  return c;
}

void Print(const char* what, const Cost& c, size_t takes) {
  std::printf(
      "%-28s open %8.2f ms (%3llu requests)  scan %9.1f ms (%6llu requests)  "
      "take %7.3f ms/record (%5.2f requests/record)\n",
      what, c.open_ms, static_cast<unsigned long long>(c.open_requests), c.scan_ms,
      static_cast<unsigned long long>(c.scan_requests), c.take_ms / double(takes),
      static_cast<unsigned long long>(c.take_requests) / double(takes));
}

TEST(ManyCommits, OpenTakeAndCompactedScanCostWhatOneCommitCosts) {
  const std::string env = EnvOr("DREAMDB_MANY_COMMITS");
  const size_t n = env.empty() ? 500 : std::stoul(env);
  // An unnamed memory:// store: every dataset handle keeps caches of its own, so each
  // fresh handle below starts cold.
  auto opened = Store::Open("memory://");
  ASSERT_TRUE(opened.ok());
  std::shared_ptr<Store> store(std::move(*opened));
  const Schema s = FixtureSchema(/*with_blob=*/false);
  auto many = *Dataset::Create(store, "many", s);
  auto t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < n; ++i) {
    ASSERT_TRUE(many->AppendMany(FixtureRows(s, 1, i, {i})).ok());
  }
  const double commit_ms = MsSince(t0);
  // The same rows in one commit.
  auto one = *Dataset::Create(store, "one", s);
  {
    Batch all;
    std::vector<Batch> rows;
    for (size_t i = 0; i < n; ++i) rows.push_back(FixtureRows(s, 1, i, {i}));
    all.anchors.reserve(n);
    for (size_t f = 0; f < rows[0].columns.size(); ++f) {
      Column c(rows[0].columns[f].field());
      for (const Batch& r : rows) c.AppendRange(r.columns[f], 0, 1);
      all.columns.push_back(std::move(c));
    }
    for (const Batch& r : rows) all.anchors.push_back(r.anchors[0]);
    ASSERT_TRUE(one->AppendMany(all).ok());
  }
  std::mt19937_64 rng(7);
  std::vector<uint64_t> anchors(200);
  for (uint64_t& a : anchors) a = rng() % n;

  const Cost c_one = Measure(store, "one", anchors);
  const Cost c_many = Measure(store, "many", anchors);
  ASSERT_TRUE(many->Compact().ok());
  const Cost c_compact = Measure(store, "many", anchors);
  std::printf("%zu one-record commits in %.1f s (%.2f ms/commit)\n", n, commit_ms / 1000,
              commit_ms / double(n));
  Print("one commit:", c_one, anchors.size());
  Print((std::to_string(n) + " commits:").c_str(), c_many, anchors.size());
  Print((std::to_string(n) + " commits, compacted:").c_str(), c_compact, anchors.size());

  // The same records, whichever way they were written.
  EXPECT_EQ(c_many.content, c_one.content);
  EXPECT_EQ(c_compact.content, c_one.content);
  EXPECT_EQ(c_many.rows, anchors.size());
  // Opening reads the head, not the history: as many requests as for one commit.
  EXPECT_EQ(c_many.open_requests, c_one.open_requests);
  EXPECT_EQ(c_compact.open_requests, c_one.open_requests);
  // A take walks one root-to-leaf path of the anchor index and reads the record's rows:
  // per record, at most the index's depth (a few pages, cached after the first) and one
  // request per field (each record is its own segment before compaction).
  EXPECT_LE(c_many.take_requests, c_one.take_requests + 2 * anchors.size());
  // After compaction, a scan reads what the one-commit dataset's scan reads.
  EXPECT_EQ(c_compact.scan_requests, c_one.scan_requests);
  EXPECT_LE(c_compact.take_requests, c_one.take_requests + 8);
}

}  // namespace
}  // namespace dreamdb
