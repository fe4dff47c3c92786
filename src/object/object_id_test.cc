#include "dreamdb/object_id.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "src/base/encoding.h"
#include "src/object/hash_many.h"

namespace dreamdb {
namespace {

TEST(ObjectIdTest, Blake3KnownAnswer) {
  // b3sum: echo -n abc | b3sum
  ObjectId id = ObjectId::Of("abc");
  std::string bin = id.ToBinary();
  EXPECT_EQ(HexEncode(bin), "1e206437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85");
  EXPECT_EQ(id.ToString().size(), ObjectId::kTextSize);
  EXPECT_EQ(id.ToString()[0], 'b');
  EXPECT_EQ(id.ShardPrefix(), "64");
}

TEST(ObjectIdTest, TextRoundTrip) {
  ObjectId id = ObjectId::Of("hello");
  auto parsed = ObjectId::Parse(id.ToString());
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(*parsed, id);
  EXPECT_EQ(*ObjectId::FromBinary(id.ToBinary()), id);
}

TEST(ObjectIdTest, HasherMatchesOneShot) {
  Hasher h;
  h.Update("ab");
  h.Update("c");
  EXPECT_EQ(h.Finish(), ObjectId::Of("abc"));
}

TEST(ObjectIdTest, ParseErrorsNameTheProblem) {
  auto r = ObjectId::Parse("");
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  r = ObjectId::Parse("x" + std::string(55, 'a'));
  EXPECT_NE(r.status().message().find("multibase prefix"), std::string::npos);
  r = ObjectId::Parse("babc");
  EXPECT_NE(r.status().message().find("expected 56 characters"), std::string::npos);
  std::string upper = ObjectId::Of("x").ToString();
  upper[10] = 'A';
  EXPECT_EQ(ObjectId::Parse(upper).status().code(), StatusCode::kInvalidArgument);
  // A sha2-256 multihash is well formed but unsupported.
  std::string sha = std::string("\x12\x20", 2) + std::string(32, '\x01');
  EXPECT_EQ(ObjectId::FromBinary(sha).status().code(), StatusCode::kUnsupported);
  EXPECT_EQ(ObjectId::Parse("b" + Base32Encode(sha)).status().code(), StatusCode::kUnsupported);
  EXPECT_EQ(ObjectId::FromBinary("\x1e").status().code(), StatusCode::kCorrupt);
}

TEST(ObjectIdTest, NullId) {
  EXPECT_TRUE(ObjectId().is_null());
  EXPECT_FALSE(ObjectId::Of("").is_null());
}

// Blake3Many hashes inputs of whole 64-byte blocks of one chunk side by side with the
// SIMD kernel; every digest must be ObjectId::Of's, for every length, whatever the mix and
// however many of one length (more than one kernel call's worth included).
TEST(Blake3ManyTest, EqualsObjectIdOfForEveryLengthAndMix) {
  std::vector<std::string> inputs;
  uint64_t x = 0x9e3779b97f4a7c15ull;
  auto random_bytes = [&](size_t n) {
    std::string s(n, '\0');
    for (char& c : s) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      c = static_cast<char>(x);
    }
    return s;
  };
  for (size_t n : {0, 1, 63, 64, 65, 128, 192, 256, 1000, 1024, 1088, 2048, 4096}) {
    for (int k = 0; k < (n == 256 ? 150 : 3); ++k) inputs.push_back(random_bytes(n));
  }
  std::swap(inputs[0], inputs[200]);  // lengths interleaved
  std::vector<ByteView> views(inputs.begin(), inputs.end());
  std::vector<Digest> got(inputs.size());
  Blake3Many(views, got);
  for (size_t i = 0; i < inputs.size(); ++i) {
    EXPECT_EQ(got[i], ObjectId::Of(inputs[i]).digest())
        << "input " << i << ", " << inputs[i].size() << " bytes";
  }
}

}  // namespace
}  // namespace dreamdb
