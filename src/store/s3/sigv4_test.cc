// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// The SigV4 signer against botocore's signatures (spec/vectors/s3/sigv4.json, made by
// spec/vectors/s3/generate.py) for the requests the s3:// backend sends.
#include "src/store/s3/sigv4.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "src/testing/golden.h"

namespace dreamdb::s3 {
namespace {

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

std::string HeaderValue(const HeaderList& headers, std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return "<absent>";
}

TEST(SigV4Test, MatchesBotocoreSignatures) {
  const std::vector<testing::GoldenRecord> records =
      testing::LoadGoldenRecords("spec/vectors/s3/sigv4.json");
  ASSERT_GE(records.size(), 10u);
  std::set<std::string> seen;
  for (const auto& rec : records) {
    SCOPED_TRACE(rec.at("name"));
    seen.insert(rec.at("name"));
    SigningInput in;
    in.method = rec.at("method");
    in.host = rec.at("host");
    in.path = rec.at("path");
    for (const std::string& line : Lines(rec.at("query"))) {
      size_t eq = line.find('=');
      in.query.emplace_back(line.substr(0, eq), line.substr(eq + 1));
    }
    for (const std::string& line : Lines(rec.at("headers"))) {
      size_t colon = line.find(": ");
      in.headers.emplace_back(line.substr(0, colon), line.substr(colon + 2));
    }
    in.payload_sha256 = rec.at("payload_sha256");
    in.region = rec.at("region");
    in.unix_seconds = std::stoll(rec.at("unix_seconds"));
    Credentials creds{rec.at("access_key_id"), rec.at("secret_access_key"),
                      rec.at("session_token")};
    SignedRequest out = Sign(in, creds);
    EXPECT_EQ(out.path_and_query, rec.at("url_path_and_query"));
    EXPECT_EQ(out.canonical_request, rec.at("canonical_request"));
    EXPECT_EQ(out.string_to_sign, rec.at("string_to_sign"));
    EXPECT_EQ(HeaderValue(out.headers, "Authorization"), rec.at("authorization"));
    EXPECT_EQ(HeaderValue(out.headers, "x-amz-content-sha256"), rec.at("payload_sha256"));
    // A session token is sent only when there is one.
    EXPECT_EQ(HeaderValue(out.headers, "x-amz-security-token"),
              creds.session_token.empty() ? "<absent>" : creds.session_token);
  }
  for (const char* name : {"key_encoding", "put_unsigned_payload", "session_token", "ranged_get",
                           "list_v2_sorted_query", "create_if_none_match", "swap_if_match"}) {
    EXPECT_EQ(seen.count(name), 1u) << "missing vector " << name;
  }
}

TEST(SigV4Test, UnsignedRequestsCarryNoAuthorization) {
  SigningInput in{"GET", "127.0.0.1:9000", "/b/k", {}, {}, Sha256Hex(""), "us-east-1", 0};
  SignedRequest out = Sign(in, Credentials{});
  EXPECT_EQ(HeaderValue(out.headers, "Authorization"), "<absent>");
  EXPECT_EQ(out.path_and_query, "/b/k");
}

TEST(SigV4Test, UriEncodeKeepsOnlyUnreserved) {
  EXPECT_EQ(UriEncode("a b~c+d=e/f", true), "a%20b~c%2Bd%3De/f");
  EXPECT_EQ(UriEncode("a b~c+d=e/f", false), "a%20b~c%2Bd%3De%2Ff");
  EXPECT_EQ(UriEncode("\xc3\xa9", false), "%C3%A9");
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(AmzDate(0), "19700101T000000Z");
}

}  // namespace
}  // namespace dreamdb::s3
