// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Ref-name rules against the golden vectors in spec/vectors/refs/names.json.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "dreamdb/store.h"
#include "src/base/encoding.h"
#include "src/testing/golden.h"

namespace dreamdb {
namespace {

// The phrase each rule's message contains (spec/06-refs.md §2).
const std::map<std::string, std::string>& RulePhrases() {
  static const auto* phrases = new std::map<std::string, std::string>{
      {"empty", "the name is empty"},     {"too_long", "the limit is 255 bytes"},
      {"bad_char", "is not allowed"},     {"empty_segment", "empty segment"},
      {"leading_dot", "starts with '.'"}, {"lock_suffix", "ends with '.lock'"},
  };
  return *phrases;
}

TEST(RefNameVectorsTest, MatchGoldenVectors) {
  const std::vector<testing::GoldenRecord> records =
      testing::LoadGoldenRecords("spec/vectors/refs/names.json");
  ASSERT_GE(records.size(), 40u);
  std::map<std::string, int> rules_seen;
  for (const auto& rec : records) {
    ASSERT_EQ(rec.count("name") + rec.count("valid") + rec.count("snapshot") + rec.count("reason"),
              4u);
    const std::string& name = rec.at("name");
    const bool valid = rec.at("valid") == "true";
    Status st = ValidateRefName(name);
    EXPECT_EQ(st.ok(), valid) << Quote(name) << ": " << st.ToString();
    if (valid) {
      EXPECT_EQ(IsSnapshotRef(name), rec.at("snapshot") == "true") << Quote(name);
      EXPECT_EQ(rec.at("reason"), "");
      continue;
    }
    const std::string& reason = rec.at("reason");
    ++rules_seen[reason];
    ASSERT_EQ(RulePhrases().count(reason), 1u) << "unknown rule " << reason;
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(st.message().find(RulePhrases().at(reason)), std::string::npos)
        << Quote(name) << " should break rule " << reason << ": " << st.message();
    EXPECT_EQ(st.message().rfind("invalid ref name " + Quote(name), 0), 0u) << st.message();
  }
  EXPECT_EQ(rules_seen.size(), RulePhrases().size()) << "every rule has a vector";
}

TEST(RefNameTest, MessagesNameTheProblem) {
  EXPECT_EQ(ValidateRefName("a b").message(),
            "invalid ref name 'a b': byte 1 (' ') is not allowed; names use A-Z a-z 0-9 . _ - "
            "and '/' between segments");
  EXPECT_EQ(ValidateRefName("a//b").message(),
            "invalid ref name 'a//b': empty segment (the name starts or ends with '/' or "
            "contains '//')");
  EXPECT_EQ(ValidateRefName("x/.git").message(),
            "invalid ref name 'x/.git': segment '.git' starts with '.'");
  EXPECT_EQ(ValidateRefName("x/main.lock").message(),
            "invalid ref name 'x/main.lock': segment 'main.lock' ends with '.lock'");
  EXPECT_EQ(ValidateRefName("").message(), "invalid ref name '': the name is empty");
  EXPECT_EQ(ValidateRefName("a\nb").message(),
            "invalid ref name 'a\\x0ab': byte 1 ('\\x0a') is not allowed; names use A-Z a-z "
            "0-9 . _ - and '/' between segments");
}

TEST(RefNameTest, SnapshotNeedsANonFinalSnapshotsSegment) {
  EXPECT_TRUE(IsSnapshotRef("d/snapshots/v"));
  EXPECT_TRUE(IsSnapshotRef("snapshots/v"));
  EXPECT_FALSE(IsSnapshotRef("d/snapshots"));
  EXPECT_FALSE(IsSnapshotRef("snapshots"));
  EXPECT_FALSE(IsSnapshotRef("d/xsnapshots/v"));
  EXPECT_FALSE(IsSnapshotRef("d/snapshotsx/v"));
}

}  // namespace
}  // namespace dreamdb
