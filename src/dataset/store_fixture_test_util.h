// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Shared by the GC, retention and compaction tests: a store of its own per test
// (memory://, a fresh file:// directory or a fresh s3:// prefix on the local test server),
// a test schema and records, and reading a version back in full.
#ifndef DREAMDB_SRC_DATASET_STORE_FIXTURE_TEST_UTIL_H_
#define DREAMDB_SRC_DATASET_STORE_FIXTURE_TEST_UTIL_H_

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dreamdb/dataset.h"

namespace dreamdb {

inline constexpr uint32_t kFixtureDim = 8;

inline int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// emb (8-d embedding), label (int64), name (optional string) and, `with_blob`, raw
// (optional blob).
inline Schema FixtureSchema(bool with_blob) {
  Schema s;
  EXPECT_TRUE(s.AddEmbedding("emb", kFixtureDim).ok());
  EXPECT_TRUE(s.AddInt64("label").ok());
  EXPECT_TRUE(s.AddString("name", true).ok());
  if (with_blob) EXPECT_TRUE(s.AddBlob("raw", "application/octet-stream", true).ok());
  return s;
}

// n records of FixtureSchema; record i of seed s has distinct values in every field (name
// null when i % 5 == 3).
inline Batch FixtureRows(const Schema& s, size_t n, uint64_t seed,
                         const std::vector<uint64_t>& anchors = {}) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g(0, 1);
  Batch b;
  b.anchors = anchors;
  Column emb(*s.Find("emb")), label(*s.Find("label")), name(*s.Find("name"));
  const FieldSpec* raw_spec = s.Find("raw");
  std::unique_ptr<Column> raw = raw_spec ? std::make_unique<Column>(*raw_spec) : nullptr;
  std::vector<float> v(kFixtureDim);
  for (size_t i = 0; i < n; ++i) {
    for (auto& x : v) x = g(rng) + float(i % 4) * 3;
    emb.AppendFloats(std::span<const float>(v));
    label.AppendInt64(static_cast<int64_t>(seed * 1000 + i));
    if (i % 5 == 3) {
      name.AppendNull();
    } else {
      name.AppendBytes("r" + std::to_string(seed) + "-" + std::to_string(i));
    }
    if (raw) raw->AppendBytes("blob-" + std::to_string(seed) + "-" + std::to_string(i));
  }
  b.columns.push_back(std::move(emb));
  b.columns.push_back(std::move(label));
  b.columns.push_back(std::move(name));
  if (raw) b.columns.push_back(std::move(*raw));
  return b;
}

// Every field of every record of a version, as text (floats bit-exact): reading it
// fetches every segment.
inline std::string ReadAll(Dataset& ds) {
  auto reader = ds.Scan();
  if (!reader.ok()) return "scan: " + reader.status().ToString();
  std::string out;
  while (true) {
    auto b = (*reader)->Next();
    if (!b.ok()) return "next: " + b.status().ToString();
    if (!*b) break;
    const Batch& batch = **b;
    for (uint64_t r = 0; r < batch.num_rows(); ++r) {
      out += std::to_string(batch.anchors[r]) + ":";
      for (const auto& c : batch.columns) {
        out += c.field().name + "=";
        if (!c.IsValid(r)) {
          out += "null,";
        } else if (c.type() == FieldType::kEmbedding) {
          for (float f : c.FloatsAt(r)) {
            uint32_t bits;
            std::memcpy(&bits, &f, sizeof bits);
            out += std::to_string(bits) + " ";
          }
        } else if (c.type() == FieldType::kInt64) {
          out += std::to_string(c.Int64At(r)) + ",";
        } else {
          out += std::string(c.BytesAt(r)) + ",";
        }
      }
      out += "\n";
    }
  }
  return out;
}

// ReadAll of version `version` (a branch, snapshot or manifest id) of dataset "d".
inline std::string ReadAt(const std::shared_ptr<Store>& store, const std::string& version) {
  auto ds = Dataset::OpenAt(store, "d", version);
  if (!ds.ok()) return "open: " + ds.status().ToString();
  return ReadAll(**ds);
}

// Every file under `dir` (a file:// store: objects, refs, tmp) whose bytes contain
// `needle`: the erasure tests' check that a value left the store.
inline std::vector<std::string> FilesContaining(const std::filesystem::path& dir,
                                                const std::string& needle) {
  std::vector<std::string> hits;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (bytes.find(needle) != std::string::npos) hits.push_back(e.path().string());
  }
  return hits;
}

// The value of environment variable `name`, or "".
inline std::string EnvOr(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

// A test fixture with a store of its own: OpenStore in SetUp; TearDown closes it and
// removes its directory.
template <class Base>
class StoreFixture : public Base {
 protected:
  // `kind`: "file" (a fresh directory under the temp dir, named after `tag` and the test),
  // "s3" (a fresh prefix, named the same way, on the local S3 server that
  // scripts/s3_server.sh starts: DREAMDB_S3_ENDPOINT, DREAMDB_S3_BUCKET and the AWS_*
  // credentials), or a store URI such as "memory://". Without a configured server an "s3"
  // test fails under CI or DREAMDB_REQUIRE_S3 and is skipped elsewhere; either way store_
  // stays null, so SetUp returns when `!store_`.
  void OpenStore(std::string kind, std::string_view tag) {
    std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (char& c : test) {
      if (c == '/') c = '_';  // parameterised tests are named "Name/param"
    }
    const std::string unique =
        "dreamdb_" + std::string(tag) + "_test_" + std::to_string(::getpid()) + "_" + test;
    if (kind == "file") {
      dir_ = std::filesystem::temp_directory_path() / unique;
      std::filesystem::remove_all(dir_);
      kind = "file://" + dir_.string();
    } else if (kind == "s3") {
      const std::string endpoint = EnvOr("DREAMDB_S3_ENDPOINT");
      const std::string bucket = EnvOr("DREAMDB_S3_BUCKET");
      if (endpoint.empty() || bucket.empty()) {
        if (!EnvOr("CI").empty() || !EnvOr("DREAMDB_REQUIRE_S3").empty()) {
          FAIL() << "DREAMDB_S3_ENDPOINT/DREAMDB_S3_BUCKET unset (CI or DREAMDB_REQUIRE_S3)";
        }
        GTEST_SKIP() << "no S3 server: run scripts/s3_server.sh start DIR and source DIR/env";
      }
      kind = "s3://" + bucket + "/" + unique + "_" + std::to_string(NowMs()) +
             "?endpoint=" + endpoint + "&region=us-east-1";
    }
    auto s = Store::Open(kind);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::shared_ptr<Store>(std::move(*s));
  }
  void TearDown() override {
    store_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  std::set<ObjectId> Objects() {
    std::set<ObjectId> out;
    EXPECT_TRUE(store_
                    ->ListObjects("",
                                  [&](const ObjectInfo& o) {
                                    out.insert(o.id);
                                    return true;
                                  })
                    .ok());
    return out;
  }

  // Where the store holds `needle`: for file://, every file of its directory (objects,
  // refs, temporary files) whose bytes contain it; for other backends, every object
  // (listed and read through the store). The erasure tests' check that a value left.
  std::vector<std::string> StoredCopiesOf(const std::string& needle) {
    if (!dir_.empty()) return FilesContaining(dir_, needle);
    std::vector<std::string> hits;
    for (const ObjectId& id : Objects()) {
      auto bytes = store_->Get(id);
      EXPECT_TRUE(bytes.ok()) << bytes.status().ToString();
      if (bytes.ok() && bytes->find(needle) != std::string::npos) {
        hits.push_back(id.ToString());
      }
    }
    return hits;
  }

  void ExpectVerifies(std::string_view name = "") {
    auto v = Verify(*store_, name);
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    EXPECT_TRUE(v->problems.empty()) << v->problems.front();
  }

  std::filesystem::path dir_;
  std::shared_ptr<Store> store_;
};

}  // namespace dreamdb

#endif  // DREAMDB_SRC_DATASET_STORE_FIXTURE_TEST_UTIL_H_
