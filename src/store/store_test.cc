// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Store's shared rules (spec/05-backend.md §5, spec/06-refs.md §2-§5) and URI parsing (spec/05 §2).
#include "dreamdb/store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "src/store/memory/memory_backend.h"
#include "src/store/testing/fault_injecting_backend.h"
#include "src/store/uri.h"

namespace dreamdb {
namespace {

std::string Cwd() {
  char buf[4096];
  EXPECT_NE(getcwd(buf, sizeof(buf)), nullptr);
  return buf;
}

// ---- URIs ----

struct GoodUri {
  std::string uri;
  StoreUri::Scheme scheme;
  std::string memory_name;
  std::string path;  // "CWD" is replaced by the current directory
  std::string canonical;
};

TEST(StoreUriTest, ParsesGoodUris) {
  using S = StoreUri::Scheme;
  const std::vector<GoodUri> cases = {
      {"memory://", S::kMemory, "", "", "memory://"},
      {"memory://abc-1.2_X", S::kMemory, "abc-1.2_X", "", "memory://abc-1.2_X"},
      {"MEMORY://m", S::kMemory, "m", "", "memory://m"},
      {"file:///tmp/x", S::kFile, "", "/tmp/x", "file:///tmp/x"},
      {"FILE:///tmp/x", S::kFile, "", "/tmp/x", "file:///tmp/x"},
      {"file:///", S::kFile, "", "/", "file:///"},
      {"file:///tmp//x/./y/", S::kFile, "", "/tmp/x/y", "file:///tmp/x/y"},
      {"file:///tmp/a/../b", S::kFile, "", "/tmp/a/../b", "file:///tmp/a/../b"},
      {"file:///tmp/a%20b", S::kFile, "", "/tmp/a b", "file:///tmp/a%20b"},
      {"file:///tmp/%7e%3F%23", S::kFile, "", "/tmp/~?#", "file:///tmp/~%3F%23"},
      {"/abs/path", S::kFile, "", "/abs/path", "file:///abs/path"},
      {"/tmp/odd name?#%", S::kFile, "", "/tmp/odd name?#%", "file:///tmp/odd%20name%3F%23%25"},
      {"relative/dir", S::kFile, "", "CWD/relative/dir", "file://CWD/relative/dir"},
      {"./x", S::kFile, "", "CWD/x", "file://CWD/x"},
      {".", S::kFile, "", "CWD", "file://CWD"},
  };
  const std::string cwd = Cwd();
  auto expand = [&](std::string s) {
    size_t pos = s.find("CWD");
    if (pos != std::string::npos) s.replace(pos, 3, cwd == "/" ? "" : cwd);
    return s;
  };
  for (const GoodUri& c : cases) {
    auto parsed = ParseStoreUri(c.uri);
    ASSERT_TRUE(parsed.ok()) << c.uri << ": " << parsed.status().ToString();
    EXPECT_EQ(parsed->scheme, c.scheme) << c.uri;
    EXPECT_EQ(parsed->memory_name, c.memory_name) << c.uri;
    EXPECT_EQ(parsed->path, expand(c.path)) << c.uri;
    EXPECT_EQ(parsed->canonical, expand(c.canonical)) << c.uri;
    // The canonical form parses to the same store.
    auto again = ParseStoreUri(parsed->canonical);
    ASSERT_TRUE(again.ok()) << parsed->canonical;
    EXPECT_EQ(again->path, parsed->path);
    EXPECT_EQ(again->memory_name, parsed->memory_name);
    EXPECT_EQ(again->canonical, parsed->canonical);
  }
}

struct BadUri {
  std::string uri;
  StatusCode code;
  std::string message;
};

TEST(StoreUriTest, RejectsBadUrisNamingTheProblem) {
  const StatusCode kInvalid = StatusCode::kInvalidArgument;
  const std::vector<BadUri> cases = {
      {"", kInvalid, "store URI is empty"},
      {"http://example.com/x", kInvalid,
       "store URI 'http://example.com/x': unknown scheme 'http' (supported: memory://, "
       "file://, s3://; a string without '://' is a local path)"},
      {"gs://bucket", kInvalid,
       "store URI 'gs://bucket': unknown scheme 'gs' (supported: memory://, file://, s3://; a "
       "string without '://' is a local path)"},
      {"s3://ab/prefix", kInvalid,
       "store URI 's3://ab/prefix': bucket 'ab' must be 3 to 63 bytes of a-z 0-9 . - starting "
       "and ending with a letter or digit"},
      {"S3://bucket/p?token=hunter2", kInvalid,
       "store URI 'S3://bucket/p?***': unknown option 'token' (supported: endpoint, region, "
       "addressing, profile; credentials come from the environment or ~/.aws/credentials, never "
       "from the URI)"},
      {"://x", kInvalid,
       "store URI '://x': malformed scheme '' (a scheme is a letter followed by letters, "
       "digits, '+', '-' or '.')"},
      {"1abc://x", kInvalid,
       "store URI '1abc://x': malformed scheme '1abc' (a scheme is a letter followed by "
       "letters, digits, '+', '-' or '.')"},
      {"/tmp/dir://x", kInvalid,
       "store URI '/tmp/dir://x': malformed scheme '/tmp/dir' (a scheme is a letter followed "
       "by letters, digits, '+', '-' or '.')"},
      {"file://", kInvalid, "store URI 'file://': missing path; use file:///absolute/path"},
      {"file://host/x", kInvalid,
       "store URI 'file://host/x': file URIs take no host (found 'host'); use "
       "file:///absolute/path or a plain path"},
      {"file://relative", kInvalid,
       "store URI 'file://relative': file URIs take no host (found 'relative'); use "
       "file:///absolute/path or a plain path"},
      {"file:///a?b", kInvalid,
       "store URI 'file:///a?b': '?' is not allowed: file URIs have no query or fragment "
       "(percent-encode it as %3F)"},
      {"file:///a#b", kInvalid,
       "store URI 'file:///a#b': '#' is not allowed: file URIs have no query or fragment "
       "(percent-encode it as %23)"},
      {"file:///a%2", kInvalid,
       "store URI 'file:///a%2': malformed percent-escape at byte 9 (expected '%' and two hex "
       "digits)"},
      {"file:///a%zz", kInvalid,
       "store URI 'file:///a%zz': malformed percent-escape at byte 9 (expected '%' and two "
       "hex digits)"},
      {"file:///a%00b", kInvalid, "store URI 'file:///a%00b': the path contains a NUL byte"},
      {std::string("/tmp/a\0b", 8), kInvalid,
       "store URI '/tmp/a\\x00b': the path contains a NUL byte"},
      {"memory://a/b", kInvalid,
       "store URI 'memory://a/b': memory store name 'a/b' may only use A-Z a-z 0-9 . _ -"},
      {"memory://a b", kInvalid,
       "store URI 'memory://a b': memory store name 'a b' may only use A-Z a-z 0-9 . _ -"},
      {"memory://" + std::string(256, 'm'), kInvalid,
       "store URI 'memory://" + std::string(191, 'm') +
           "...': memory store name is 256 bytes long; the limit is 255"},
  };
  for (const BadUri& c : cases) {
    auto parsed = ParseStoreUri(c.uri);
    ASSERT_FALSE(parsed.ok()) << c.uri;
    EXPECT_EQ(parsed.status().code(), c.code) << c.uri;
    EXPECT_EQ(parsed.status().message(), c.message) << c.uri;
    // Store::Open reports the same error.
    auto store = Store::Open(c.uri);
    ASSERT_FALSE(store.ok()) << c.uri;
    EXPECT_EQ(store.status(), parsed.status()) << c.uri;
  }
}

// Credentials in a store URI are never printed (spec/05 §2.6).
TEST(StoreUriTest, RedactStoreUriHidesCredentials) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"s3://AKIAEXAMPLE:wJalrXUtnFEMI@bucket/prefix", "s3://***@bucket/prefix"},
      {"s3://KEY:SE/CR?ET#X@bucket/p", "s3://***@bucket/p"},  // unencoded '/', '?', '#'
      {"s3://user@bucket", "s3://***@bucket"},
      {"file://user:pw@host/x", "file://***@host/x"},
      {"s3://bucket/prefix?region=eu&X-Amz-Signature=abc&X-Amz-Credential=AK%2F1",
       "s3://bucket/prefix?region=eu&X-Amz-Signature=***&X-Amz-Credential=***"},
      {"s3://b/p?endpoint=http://h:9000&secret_access_key=x;SESSION_TOKEN=y&Password=z",
       "s3://b/p?endpoint=http://h:9000&secret_access_key=***;SESSION_TOKEN=***&Password=***"},
      {"s3://b/p?access%4Bey=x", "s3://b/p?access%4Bey=***"},  // %4B = 'K'
      {"s3://b/p#token=abc", "s3://b/p#token=***"},
      {"file:///b/p?flag&api_key", "file:///b/p?flag&api_key"},  // no values to hide
      {"s3://b/p?flag&api_key", "s3://b/p?***&***"},  // s3://: bare parameters are hidden whole
      {"file:///home/me@work/store", "file:///home/me@work/store"},
      {"/plain/path@x", "/plain/path@x"},
      {"memory://name", "memory://name"},
      {"", ""},
  };
  for (const auto& [uri, redacted] : cases) EXPECT_EQ(RedactStoreUri(uri), redacted) << uri;
}

TEST(StoreUriTest, ErrorsNeverEchoCredentials) {
  for (std::string uri :
       {"s3://AKIA:TOPSECRET@bucket/x", "S3://AKIA:TOPSECRET@bucket",
        "s3://bucket/x?X-Amz-Security-Token=TOPSECRET", "file://user:TOPSECRET@host/x",
        "gs://u:TOPSECRET@bucket", "1s3://u:TOPSECRET@bucket", "memory://u:TOPSECRET@m"}) {
    auto parsed = ParseStoreUri(uri);
    ASSERT_FALSE(parsed.ok()) << uri;
    EXPECT_EQ(parsed.status().message().find("TOPSECRET"), std::string::npos)
        << parsed.status().message();
    EXPECT_NE(parsed.status().message().find("***"), std::string::npos)
        << parsed.status().message();
    auto opened = Store::Open(uri);
    ASSERT_FALSE(opened.ok()) << uri;
    EXPECT_EQ(opened.status().message().find("TOPSECRET"), std::string::npos)
        << opened.status().message();
  }
  // A URI a caller hands to FromBackends is redacted too: Store::uri() is safe to print.
  MemoryBackends b = NewMemoryBackends();
  auto store = Store::FromBackends("s3://K:TOPSECRET@bucket/p?sig=TOPSECRET", b.objects, b.refs);
  EXPECT_EQ(store->uri(), "s3://***@bucket/p?sig=***");
}

// ---- Store rules over a counting backend ----

class StoreRulesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MemoryBackends inner = NewMemoryBackends();
    memory_ = inner.objects;
    faults_ = std::make_shared<FaultInjectingBackend>(inner.objects, inner.refs);
    store_ = Store::FromBackends("test://rules", faults_, faults_);
  }
  std::shared_ptr<MemoryObjectBackend> memory_;
  std::shared_ptr<FaultInjectingBackend> faults_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreRulesTest, UriIsKept) { EXPECT_EQ(store_->uri(), "test://rules"); }

TEST_F(StoreRulesTest, InvalidNamesNeverReachTheBackend) {
  auto id = store_->Put("x");
  ASSERT_TRUE(id.ok());
  uint64_t before = faults_->calls(FaultOp::kAny);
  EXPECT_EQ(store_->ReadRef("a b").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->CreateRef("a b", *id).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->UpdateRef("a b", *id, *id).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->DeleteRef("a b", *id).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->ListRefs("a b", [](const RefValue&) { return true; }).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->ListObjects("x", [](const ObjectInfo&) { return true; }).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->UpdateRef("d/snapshots/v", *id, *id).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(faults_->calls(FaultOp::kAny), before);
}

TEST_F(StoreRulesTest, SnapshotMessages) {
  auto id = store_->Put("x");
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(store_->UpdateRef("d/snapshots/v", *id, *id).message(),
            "ref 'd/snapshots/v' is a snapshot; snapshots never move");
  EXPECT_EQ(store_->DeleteRef("d/snapshots/v", *id).message(),
            "ref 'd/snapshots/v' is a snapshot; deleting it needs allow_snapshot");
}

TEST_F(StoreRulesTest, ShardPrefixMessage) {
  EXPECT_EQ(store_->ListObjects("abc", [](const ObjectInfo&) { return true; }).message(),
            "object shard prefix 'abc' must be 0 to 2 lowercase hex digits");
}

TEST_F(StoreRulesTest, CreateRefChecksTheTargetFirst) {
  ObjectId missing = ObjectId::Of("missing");
  EXPECT_EQ(store_->CreateRef("main", missing).code(), StatusCode::kNotFound);
  EXPECT_EQ(faults_->calls(FaultOp::kHead), 1u);
  EXPECT_EQ(faults_->calls(FaultOp::kCreateRef), 0u);
  // An error other than not-found from the existence check is passed on as it is.
  auto id = store_->Put("present");
  ASSERT_TRUE(id.ok());
  faults_->FailNthCall(1, StatusCode::kUnavailable, FaultOp::kHead);
  EXPECT_EQ(store_->CreateRef("main", *id).code(), StatusCode::kUnavailable);
  EXPECT_EQ(faults_->calls(FaultOp::kCreateRef), 0u);
  EXPECT_TRUE(store_->CreateRef("main", *id).ok());
}

TEST_F(StoreRulesTest, VerifyReadsCanBeTurnedOff) {
  auto id = store_->Put("good");
  ASSERT_TRUE(id.ok());
  memory_->OverwriteForTesting(*id, "evil");
  EXPECT_EQ(store_->Get(*id).status().code(), StatusCode::kCorrupt);
  auto raw =
      Store::FromBackends("test://raw", faults_, faults_, StoreOptions{.verify_reads = false});
  auto data = raw->Get(*id);
  ASSERT_TRUE(data.ok());
  EXPECT_EQ(*data, "evil");
}

TEST_F(StoreRulesTest, ContainsPassesOnErrors) {
  faults_->FailNthCall(1, StatusCode::kIoError, FaultOp::kHead);
  EXPECT_EQ(store_->Contains(ObjectId::Of("x")).status().code(), StatusCode::kIoError);
  auto contains = store_->Contains(ObjectId::Of("x"));
  ASSERT_TRUE(contains.ok());
  EXPECT_FALSE(*contains);
}

TEST_F(StoreRulesTest, PutWithIdDoesNotReachTheBackendOnMismatch) {
  EXPECT_EQ(store_->PutWithId(ObjectId::Of("a"), "b").code(), StatusCode::kCorrupt);
  EXPECT_EQ(faults_->calls(FaultOp::kPut), 0u);
}

TEST(StoreOpenTest, FileStoreErrorsNameTheStore) {
  char tmpl[] = "/tmp/dreamdb-store-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string dir = tmpl;
  std::string junk = dir + "/junk";
  FILE* f = fopen(junk.c_str(), "w");
  ASSERT_NE(f, nullptr);
  fclose(f);
  auto store = Store::Open("file://" + dir);
  EXPECT_EQ(store.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store.status().message(),
            "store 'file://" + dir + "': directory '" + dir +
                "' is not empty and is not a DreamDB store (no 'dreamdb-store' file; found "
                "'junk'); refusing to write into it");
  unlink(junk.c_str());
  rmdir(dir.c_str());
}

}  // namespace
}  // namespace dreamdb
