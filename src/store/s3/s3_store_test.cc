// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// The s3:// backend against a real S3-compatible server (spec/05-backend.md §9): the
// store conformance suite, a 16-process race on one ref, multipart uploads, and the
// open-time rules; plus URI and credential resolution, which need no server.
//
// DREAMDB_S3_ENDPOINT (e.g. http://127.0.0.1:8333) and DREAMDB_S3_BUCKET name the server
// and an existing bucket; AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY its credentials.
// scripts/s3_server.sh starts a local SeaweedFS and writes them to a file to source.
// Without them the server tests fail under CI (CI=...) or DREAMDB_REQUIRE_S3=1 (set by
// scripts/test.sh, which starts the server), and are skipped elsewhere with a message
// saying how to run them.

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>

#include "dreamdb/store.h"
#include "src/store/s3/s3_backend.h"
#include "src/store/testing/conformance.h"
#include "src/store/testing/ref_race.h"
#include "src/store/uri.h"

namespace dreamdb {
namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

// A URI for a fresh, empty prefix on the test server, or "" when none is configured.
std::string FreshUri(const std::string& label) {
  static std::atomic<int> counter{0};
  const std::string endpoint = Env("DREAMDB_S3_ENDPOINT");
  const std::string bucket = Env("DREAMDB_S3_BUCKET");
  if (endpoint.empty() || bucket.empty()) return "";
  return "s3://" + bucket + "/test-" + std::to_string(getpid()) + "-" +
         std::to_string(std::time(nullptr)) + "/" + label + "-" + std::to_string(++counter) +
         "?endpoint=" + endpoint + "&region=us-east-1";
}

// Fails under CI, skips elsewhere, when no server is configured.
#define REQUIRE_S3_SERVER()                                                                 \
  do {                                                                                      \
    if (Env("DREAMDB_S3_ENDPOINT").empty() || Env("DREAMDB_S3_BUCKET").empty()) {           \
      if (!Env("CI").empty() || !Env("DREAMDB_REQUIRE_S3").empty()) {                       \
        FAIL() << "DREAMDB_S3_ENDPOINT/DREAMDB_S3_BUCKET unset (CI or DREAMDB_REQUIRE_S3)"; \
      }                                                                                     \
      GTEST_SKIP() << "no S3 server: run scripts/s3_server.sh start and export what it "    \
                      "prints";                                                             \
    }                                                                                       \
  } while (0)

void RequireServer() { REQUIRE_S3_SERVER(); }

std::unique_ptr<Store> OpenFresh(const std::string& label) {
  const std::string uri = FreshUri(label);
  if (uri.empty()) {
    RequireServer();
    return nullptr;
  }
  auto store = Store::Open(uri);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(*store) : nullptr;
}

StoreFactory S3Factory() {
  StoreFactory f;
  f.name = "S3";
  f.make = [] { return OpenFresh("conformance"); };
  f.reopen_by_uri = true;
  f.modified_time_resolution_ms = 1000;
  f.cas_rounds = 10;  // SeaweedFS holds some losing writes ~1 s
  return f;
}

TEST(S3ServerTest, ServerIsConfigured) { REQUIRE_S3_SERVER(); }

TEST(S3ServerTest, SixteenProcessesRaceOnOneRef) {
  REQUIRE_S3_SERVER();
  const char* rounds = std::getenv("DREAMDB_S3_RACE_ROUNDS");
  const std::string uri = FreshUri("race");
  ASSERT_TRUE(Store::Open(uri).ok());
  RaceOnOneRef(uri, rounds != nullptr ? std::atoi(rounds) : 10);
}

TEST(S3ServerTest, MultipartUploadRoundTrips) {
  REQUIRE_S3_SERVER();
  auto uri = ParseStoreUri(FreshUri("multipart"));
  ASSERT_TRUE(uri.ok());
  auto options = s3::OptionsFromUri(*uri);
  ASSERT_TRUE(options.ok());
  options->multipart_threshold = 5 << 20;  // S3's smallest part size
  options->part_size = 5 << 20;
  auto backend = s3::S3Backend::Open(*options);
  ASSERT_TRUE(backend.ok()) << backend.status().ToString();
  std::string data(12 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>((i * 2654435761u) >> 13);
  ObjectId id = ObjectId::Of(data);
  ASSERT_TRUE((*backend)->Put(id, data).ok());
  auto got = (*backend)->Get(id);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_TRUE(*got == data);
  auto range = (*backend)->GetRange(id, (5 << 20) - 3, 6);
  ASSERT_TRUE(range.ok());
  EXPECT_EQ(*range, data.substr((5 << 20) - 3, 6));
}

TEST(S3FaultTest, FailedMultipartUploadIsAborted) {
  REQUIRE_S3_SERVER();
  // Every attempt at the second part fails (503): the upload gives up and must abort.
  std::atomic<int> puts{0};
  auto uri = ParseStoreUri(FreshUri("multipart-abort"));
  ASSERT_TRUE(uri.ok());
  auto options = s3::OptionsFromUri(*uri);
  ASSERT_TRUE(options.ok());
  options->multipart_threshold = 5 << 20;
  options->part_size = 5 << 20;
  options->retry.base = std::chrono::milliseconds(1);
  options->retry.max_attempts = 3;
  std::string data(11 << 20, 'm');
  const ObjectId id = ObjectId::Of(data);
  const std::string object_key_part = "/objects/" + id.ShardPrefix() + "/" + id.ToString();
  options->fault_hook = [&](const std::string& method, const std::string& key, bool) {
    if (method == "PUT" && key.find(object_key_part) != std::string::npos && ++puts > 1) {
      return s3::S3Options::Fault::kServerError;
    }
    return s3::S3Options::Fault::kNone;
  };
  auto backend = s3::S3Backend::Open(*options);
  ASSERT_TRUE(backend.ok()) << backend.status().ToString();
  const StoreStats before = *(*backend)->Stats();
  Status st = (*backend)->Put(id, data);
  EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st.ToString();
  const StoreStats after = *(*backend)->Stats();
  // CreateMultipartUpload (POST), part 1 (PUT 2xx), part 2 (three 503s), then the abort:
  // a DELETE with the upload id that the server accepted.
  EXPECT_EQ(after.requests[StoreStats::kPost][StoreStats::k2xx] -
                before.requests[StoreStats::kPost][StoreStats::k2xx],
            1u);
  EXPECT_EQ(after.requests[StoreStats::kPut][StoreStats::k5xx] -
                before.requests[StoreStats::kPut][StoreStats::k5xx],
            3u);
  EXPECT_EQ(after.requests[StoreStats::kDelete][StoreStats::k2xx] -
                before.requests[StoreStats::kDelete][StoreStats::k2xx],
            1u);
  EXPECT_EQ((*backend)->Head(id).status().code(), StatusCode::kNotFound);
}

TEST(S3ServerTest, VirtualHostAddressingReachesTheSameKeys) {
  REQUIRE_S3_SERVER();
  // bucket.localhost resolves to the loopback address inside libcurl (no DNS, no hosts
  // file), and both test servers serve buckets by Host (scripts/s3_server.sh gives
  // SeaweedFS -s3.domainName=localhost): the request carries "Host: bucket.localhost:PORT"
  // and a path without the bucket, signed as such.
  const std::string path_uri = FreshUri("virtual");
  std::string virtual_uri = path_uri;
  const size_t host = virtual_uri.find("127.0.0.1");
  ASSERT_NE(host, std::string::npos) << "the test server's endpoint is not on 127.0.0.1";
  virtual_uri.replace(host, 9, "localhost");
  virtual_uri += "&addressing=virtual";
  auto parsed = ParseStoreUri(virtual_uri);
  ASSERT_TRUE(parsed.ok());
  EXPECT_FALSE(parsed->path_style);
  auto virt = Store::Open(virtual_uri);
  ASSERT_TRUE(virt.ok()) << virt.status().ToString();
  auto id = (*virt)->Put("virtually hosted");
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  ASSERT_TRUE((*virt)->CreateRef("ds/branches/main", *id).ok());
  EXPECT_EQ(*(*virt)->GetRange(*id, 10, 6), "hosted");
  // The same prefix through path-style requests sees the same objects and refs.
  auto path = Store::Open(path_uri, {.open_mode = StoreOpenMode::kMustExist});
  ASSERT_TRUE(path.ok()) << path.status().ToString();
  EXPECT_EQ(*(*path)->Get(*id), "virtually hosted");
  EXPECT_EQ((*path)->ReadRef("ds/branches/main")->target, *id);
  int listed = 0;
  ASSERT_TRUE((*virt)->ListObjects("", [&](const ObjectInfo&) { return ++listed, true; }).ok());
  EXPECT_EQ(listed, 1);
}

TEST(S3ServerTest, OpeningANonEmptyPrefixWithoutMarkerIsRefused) {
  REQUIRE_S3_SERVER();
  const std::string uri = FreshUri("foreign");
  auto parsed = ParseStoreUri(uri);
  ASSERT_TRUE(parsed.ok());
  // Put a foreign key under the prefix through a store one level down.
  auto inner = parsed->canonical;
  inner.insert(inner.find('?'), "/sub");
  ASSERT_TRUE(Store::Open(inner).ok());
  auto opened = Store::Open(uri);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(opened.status().message().find("no dreamdb-store marker"), std::string::npos)
      << opened.status().message();
}

TEST(S3ServerTest, MustExistOnAnEmptyPrefixIsNotFoundAndWritesNoMarker) {
  REQUIRE_S3_SERVER();
  const std::string uri = FreshUri("must-exist");
  StoreOptions read_only;
  read_only.open_mode = StoreOpenMode::kMustExist;
  auto missing = Store::Open(uri, read_only);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound) << missing.status().ToString();
  EXPECT_NE(missing.status().message().find("no DreamDB store at"), std::string::npos)
      << missing.status().message();
  // Nothing was written: the prefix is still empty, so a second must-exist open still
  // finds no store, and a create-if-missing open initialises it.
  auto again = Store::Open(uri, read_only);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kNotFound);
  auto created = Store::Open(uri);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  auto reopened = Store::Open(uri, read_only);
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  EXPECT_EQ((*reopened)->uri(), (*created)->uri());
}

// The marker never changes once written: a second open of a store in the same process
// (a handle per worker, per search) does not read it again, a round trip saved.
TEST(S3ServerTest, ReopeningAStoreInTheSameProcessSkipsTheMarkerRead) {
  REQUIRE_S3_SERVER();
  const std::string uri = FreshUri("reopen");
  auto first = Store::Open(uri);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_GE((*first)->stats().TotalRequests(), 1u);
  StoreOptions read_only;
  read_only.open_mode = StoreOpenMode::kMustExist;
  auto again = Store::Open(uri, read_only);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ((*again)->stats().TotalRequests(), 0u);
}

TEST(S3ServerTest, MissingBucketIsNotFoundNamingIt) {
  REQUIRE_S3_SERVER();
  auto opened =
      Store::Open("s3://dreamdb-no-such-bucket-x/p?endpoint=" + Env("DREAMDB_S3_ENDPOINT"));
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kNotFound) << opened.status().ToString();
  EXPECT_NE(opened.status().message().find("dreamdb-no-such-bucket-x"), std::string::npos);
}

TEST(S3ServerTest, WrongSecretIsPermissionDeniedAndNeverEchoed) {
  REQUIRE_S3_SERVER();
  const std::string uri = FreshUri("secret");
  auto parsed = ParseStoreUri(uri);
  ASSERT_TRUE(parsed.ok());
  auto options = s3::OptionsFromUri(*parsed);
  ASSERT_TRUE(options.ok());
  options->credentials.secret_access_key = "wrong-secret-value-1234";
  options->retry.max_attempts = 1;
  auto backend = s3::S3Backend::Open(*options);
  // moto does not check signatures (DREAMDB_S3_VERIFIES_SIGNATURES=0); SeaweedFS and AWS do.
  if (Env("DREAMDB_S3_VERIFIES_SIGNATURES") != "0") {
    ASSERT_FALSE(backend.ok());
    EXPECT_EQ(backend.status().code(), StatusCode::kPermissionDenied)
        << backend.status().ToString();
  }
  EXPECT_EQ(backend.status().message().find("wrong-secret-value-1234"), std::string::npos);
}

// Opens a backend on a fresh prefix whose requests pass through `hook`.
std::shared_ptr<s3::S3Backend> FaultyBackend(
    std::function<s3::S3Options::Fault(const std::string&, const std::string&, bool)> hook) {
  auto uri = ParseStoreUri(FreshUri("faults"));
  EXPECT_TRUE(uri.ok());
  auto options = s3::OptionsFromUri(*uri);
  EXPECT_TRUE(options.ok());
  options->retry.base = std::chrono::milliseconds(1);
  options->fault_hook = std::move(hook);
  auto backend = s3::S3Backend::Open(*options);
  EXPECT_TRUE(backend.ok()) << backend.status().ToString();
  return backend.ok() ? *backend : nullptr;
}

TEST(S3FaultTest, LostAnswersToConditionalWritesAreResolvedByTheNonce) {
  REQUIRE_S3_SERVER();
  // The first answer to every conditional ref write is lost after the server applied it:
  // the retry then meets 412 (create) or a moved ETag (swap), and only the nonce read
  // back tells that the write landed.
  std::atomic<bool> lose_next{false};
  std::atomic<int> lost{0};
  auto backend = FaultyBackend([&](const std::string&, const std::string& key, bool cond) {
    if (cond && key.find("/refs/") != std::string::npos && lose_next.exchange(false)) {
      ++lost;
      return s3::S3Options::Fault::kLoseAnswer;
    }
    return s3::S3Options::Fault::kNone;
  });
  ASSERT_NE(backend, nullptr);
  const ObjectId a = ObjectId::Of("a"), b = ObjectId::Of("b"), c = ObjectId::Of("c");
  for (const ObjectId& id : {a, b, c})
    ASSERT_TRUE(backend->Put(id, id == a ? "a" : id == b ? "b" : "c").ok());
  lose_next = true;
  ASSERT_TRUE(backend->Create("ds/branches/main", a).ok());
  EXPECT_EQ(backend->Read("ds/branches/main")->target, a);
  lose_next = true;
  ASSERT_TRUE(backend->CompareAndSwap("ds/branches/main", a, b).ok());
  EXPECT_EQ(backend->Read("ds/branches/main")->target, b);
  // A real conflict is still a conflict, and a second create is still already_exists.
  EXPECT_EQ(backend->CompareAndSwap("ds/branches/main", a, c).code(), StatusCode::kConflict);
  EXPECT_EQ(backend->Create("ds/branches/main", c).code(), StatusCode::kAlreadyExists);
  lose_next = true;
  ASSERT_TRUE(backend->Delete("ds/branches/main", b).ok());
  EXPECT_EQ(backend->Read("ds/branches/main").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(lost.load(), 3);
}

TEST(S3FaultTest, ServerErrorsAreRetriedThenUnavailable) {
  REQUIRE_S3_SERVER();
  std::atomic<int> errors{3};
  auto backend = FaultyBackend([&](const std::string&, const std::string& key, bool) {
    if (key.find("/objects/") != std::string::npos && errors.fetch_sub(1) > 0) {
      return s3::S3Options::Fault::kServerError;
    }
    return s3::S3Options::Fault::kNone;
  });
  ASSERT_NE(backend, nullptr);
  const ObjectId id = ObjectId::Of("retried");
  ASSERT_TRUE(backend->Put(id, "retried").ok());  // three 503s, then success
  EXPECT_EQ(*backend->Get(id), "retried");
  errors = 1000;
  auto got = backend->Get(id);
  EXPECT_EQ(got.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(got.status().message().find("SlowDown"), std::string::npos) << got.status().message();
}

TEST(S3StatsTest, RetriesAndStatusClassesAreCounted) {
  REQUIRE_S3_SERVER();
  std::atomic<int> errors{2};
  auto backend = FaultyBackend([&](const std::string&, const std::string& key, bool) {
    if (key.find("/objects/") != std::string::npos && errors.fetch_sub(1) > 0) {
      return s3::S3Options::Fault::kServerError;
    }
    return s3::S3Options::Fault::kNone;
  });
  ASSERT_NE(backend, nullptr);
  const StoreStats opened = *backend->Stats();
  const ObjectId id = ObjectId::Of("counted");
  ASSERT_TRUE(backend->Put(id, "counted").ok());  // two 503s, then success
  ASSERT_EQ(*backend->Get(id), "counted");
  EXPECT_EQ(backend->Head(ObjectId::Of("absent")).status().code(), StatusCode::kNotFound);
  const StoreStats s = *backend->Stats();
  EXPECT_EQ(s.requests[StoreStats::kPut][StoreStats::k5xx] -
                opened.requests[StoreStats::kPut][StoreStats::k5xx],
            2u);
  EXPECT_EQ(s.requests[StoreStats::kPut][StoreStats::k2xx] -
                opened.requests[StoreStats::kPut][StoreStats::k2xx],
            1u);
  EXPECT_EQ(s.requests[StoreStats::kGet][StoreStats::k2xx] -
                opened.requests[StoreStats::kGet][StoreStats::k2xx],
            1u);
  EXPECT_EQ(s.requests[StoreStats::kHead][StoreStats::k4xx] -
                opened.requests[StoreStats::kHead][StoreStats::k4xx],
            1u);
  EXPECT_EQ(s.retries - opened.retries, 2u);
  EXPECT_EQ(s.bytes_out - opened.bytes_out, 3 * std::string("counted").size());
  EXPECT_GE(s.bytes_in - opened.bytes_in, std::string("counted").size());
  EXPECT_GT(s.in_flight_ns, opened.in_flight_ns);
}

TEST(S3StatsTest, StoreStatsCountHttpRequestsIncludingListsAndRefs) {
  auto store = OpenFresh("stats");
  if (store == nullptr) return;
  const StoreStats before = store->stats();
  EXPECT_GE(before.TotalRequests(), 2u);  // opening: the marker's GET, a LIST, a PUT
  auto id = store->Put("x");
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(store->CreateRef("ds/branches/main", *id).ok());
  ASSERT_TRUE(store->ListRefs("", [](const RefValue&) { return true; }).ok());
  const StoreStats after = store->stats();
  EXPECT_GE(after.requests[StoreStats::kList][StoreStats::k2xx],
            before.requests[StoreStats::kList][StoreStats::k2xx] + 1);
  // The ref's create-only PUT, after the probe's PUTs.
  EXPECT_GE(after.requests[StoreStats::kPut][StoreStats::k2xx],
            before.requests[StoreStats::kPut][StoreStats::k2xx] + 2);
}

// ---- No server needed ----

TEST(S3UriTest, ParsesBucketPrefixAndOptions) {
  auto uri =
      ParseStoreUri("s3://my-bucket//a/./b/?endpoint=http://127.0.0.1:8333/&region=eu-west-1");
  ASSERT_TRUE(uri.ok()) << uri.status().ToString();
  EXPECT_EQ(uri->scheme, StoreUri::Scheme::kS3);
  EXPECT_EQ(uri->bucket, "my-bucket");
  EXPECT_EQ(uri->prefix, "a/b");
  EXPECT_EQ(uri->endpoint, "http://127.0.0.1:8333");
  EXPECT_EQ(uri->region, "eu-west-1");
  EXPECT_TRUE(uri->path_style);
  EXPECT_EQ(uri->canonical,
            "s3://my-bucket/a/b?endpoint=http://127.0.0.1:8333&region=eu-west-1&addressing=path");
  auto again = ParseStoreUri(uri->canonical);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->canonical, uri->canonical);
}

TEST(S3UriTest, RedactionHidesEveryS3QueryValueButTheOptions) {
  EXPECT_EQ(RedactStoreUri("s3://b/p?endpoint=http://h&secret=x&unknown=hunter2&region=r"),
            "s3://b/p?endpoint=http://h&secret=***&unknown=***&region=r");
  EXPECT_EQ(RedactStoreUri("S3://b?hunter2&profile=p&addressing=path"),
            "S3://b?***&profile=p&addressing=path");
  // Other schemes hide only the values whose names say they are secret (spec/05 §2.6).
  EXPECT_EQ(RedactStoreUri("file:///a?b&c=d"), "file:///a?b&c=d");
  EXPECT_EQ(RedactStoreUri("memory://x"), "memory://x");
}

TEST(S3UriTest, ErrorsQuoteS3UrisWithoutTheirQuery) {
  EXPECT_EQ(S3UriForMessages("s3://b/p?endpoint=http://h&secret=x"), "s3://b/p?***");
  EXPECT_EQ(S3UriForMessages("S3://b?x"), "S3://b?***");
  EXPECT_EQ(S3UriForMessages("s3://b/p"), "s3://b/p");
  EXPECT_EQ(S3UriForMessages("s3://KEY:SE/CR?ET@bucket/p?x=1"), "s3://***@bucket/p?***");
  auto userinfo = ParseStoreUri("s3://AKIAEXAMPLE:hunter2hunter2@bucket/p");
  ASSERT_FALSE(userinfo.ok());
  EXPECT_EQ(userinfo.status().message().find("hunter2hunter2"), std::string::npos)
      << userinfo.status().message();
  auto bad = ParseStoreUri("s3://bucket/p?hunter2hunter2");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message().find("hunter2hunter2"), std::string::npos)
      << bad.status().message();
}

TEST(S3UriTest, AwsDefaultsUseVirtualHostsAndTheRegion) {
  unsetenv("AWS_ENDPOINT_URL");
  unsetenv("AWS_ENDPOINT_URL_S3");
  auto uri = ParseStoreUri("s3://bucket?region=us-west-2");
  ASSERT_TRUE(uri.ok()) << uri.status().ToString();
  EXPECT_EQ(uri->endpoint, "https://s3.us-west-2.amazonaws.com");
  EXPECT_FALSE(uri->path_style);
  EXPECT_EQ(uri->prefix, "");
}

TEST(S3UriTest, BadUrisNameTheProblemWithoutEchoingTheQuery) {
  auto bad = ParseStoreUri("s3://bucket/p?secret_key=hunter2hunter2");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("unknown option 'secret_key'"), std::string::npos)
      << bad.status().message();
  EXPECT_EQ(bad.status().message().find("hunter2"), std::string::npos) << bad.status().message();
  EXPECT_FALSE(ParseStoreUri("s3://Bucket/p").ok());
  EXPECT_FALSE(ParseStoreUri("s3://ab").ok());
  EXPECT_FALSE(ParseStoreUri("s3://bucket/a/../b").ok());
  EXPECT_FALSE(ParseStoreUri("s3://bucket/p?endpoint=ftp://x").ok());
  EXPECT_FALSE(ParseStoreUri("s3://bucket/p?addressing=sideways").ok());
}

TEST(S3CredentialsTest, EnvironmentBeatsTheCredentialsFile) {
  const std::string file = ::testing::TempDir() + "/dreamdb-s3-credentials";
  {
    std::ofstream out(file);
    out << "[default]\naws_access_key_id = FILEKEY\naws_secret_access_key = FILESECRET\n"
        << "[other]\naws_access_key_id=OTHERKEY\naws_secret_access_key=OTHERSECRET\n"
        << "aws_session_token = OTHERTOKEN\n";
  }
  setenv("AWS_SHARED_CREDENTIALS_FILE", file.c_str(), 1);
  const std::string saved_id = Env("AWS_ACCESS_KEY_ID");
  const std::string saved_secret = Env("AWS_SECRET_ACCESS_KEY");
  unsetenv("AWS_ACCESS_KEY_ID");
  unsetenv("AWS_SECRET_ACCESS_KEY");
  auto from_file = s3::ResolveCredentials("other");
  ASSERT_TRUE(from_file.ok());
  EXPECT_EQ(from_file->access_key_id, "OTHERKEY");
  EXPECT_EQ(from_file->session_token, "OTHERTOKEN");
  auto by_default = s3::ResolveCredentials("default");
  ASSERT_TRUE(by_default.ok());
  EXPECT_EQ(by_default->access_key_id, "FILEKEY");
  EXPECT_TRUE(by_default->session_token.empty());
  setenv("AWS_ACCESS_KEY_ID", "ENVKEY", 1);
  auto half = s3::ResolveCredentials("default");
  EXPECT_EQ(half.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(half.status().message().find("AWS_SECRET_ACCESS_KEY is not"), std::string::npos);
  setenv("AWS_SECRET_ACCESS_KEY", "ENVSECRET", 1);
  auto from_env = s3::ResolveCredentials("default");
  ASSERT_TRUE(from_env.ok());
  EXPECT_EQ(from_env->access_key_id, "ENVKEY");
  unsetenv("AWS_SHARED_CREDENTIALS_FILE");
  if (saved_id.empty()) {
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
  } else {
    setenv("AWS_ACCESS_KEY_ID", saved_id.c_str(), 1);
    setenv("AWS_SECRET_ACCESS_KEY", saved_secret.c_str(), 1);
  }
  std::remove(file.c_str());
}

TEST(S3RetryTest, BackoffIsFullJitterUnderTheCap) {
  s3::RetryPolicy policy;
  for (int attempt = 1; attempt < 30; ++attempt) {
    auto ms = policy.Backoff(attempt).count();
    EXPECT_GE(ms, 0);
    EXPECT_LT(ms,
              std::min<int64_t>(policy.cap.count(), policy.base.count() << std::min(attempt, 20)));
  }
  EXPECT_TRUE(s3::IsRetryableStatus(503));
  EXPECT_TRUE(s3::IsRetryableStatus(429));
  EXPECT_FALSE(s3::IsRetryableStatus(412));
  EXPECT_FALSE(s3::IsRetryableStatus(404));
}

TEST(S3XmlTest, ParsesListingsAndErrors) {
  auto doc = s3::ParseXml(
      "<?xml version=\"1.0\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
      "<IsTruncated>true</IsTruncated><Contents><Key>a&amp;b</Key><Size>3</Size></Contents>"
      "<NextContinuationToken>tok</NextContinuationToken></ListBucketResult>");
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  EXPECT_EQ(doc->name, "ListBucketResult");
  EXPECT_EQ(doc->ChildText("IsTruncated"), "true");
  ASSERT_NE(doc->Child("Contents"), nullptr);
  EXPECT_EQ(doc->Child("Contents")->ChildText("Key"), "a&b");
  EXPECT_EQ(doc->ChildText("NextContinuationToken"), "tok");
  EXPECT_FALSE(s3::ParseXml("<Error><Code>").ok());
}

}  // namespace

DREAMDB_INSTANTIATE_STORE_CONFORMANCE(S3, S3Factory());

}  // namespace dreamdb
