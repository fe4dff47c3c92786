#include "src/base/encoding.h"

#include <gtest/gtest.h>

namespace dreamdb {
namespace {

TEST(EncodingTest, HexRoundTrip) {
  EXPECT_EQ(HexEncode(std::string("\x00\xff\x1e", 3)), "00ff1e");
  EXPECT_EQ(*HexDecode("00ff1e"), std::string("\x00\xff\x1e", 3));
  EXPECT_FALSE(HexDecode("0").has_value());
  EXPECT_FALSE(HexDecode("FF").has_value());
}

TEST(EncodingTest, Base32Rfc4648Vectors) {
  // RFC 4648 §10, lowercased, without padding.
  EXPECT_EQ(Base32Encode(""), "");
  EXPECT_EQ(Base32Encode("f"), "my");
  EXPECT_EQ(Base32Encode("fo"), "mzxq");
  EXPECT_EQ(Base32Encode("foo"), "mzxw6");
  EXPECT_EQ(Base32Encode("foob"), "mzxw6yq");
  EXPECT_EQ(Base32Encode("fooba"), "mzxw6ytb");
  EXPECT_EQ(Base32Encode("foobar"), "mzxw6ytboi");
  for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
    EXPECT_EQ(*Base32Decode(Base32Encode(s)), s);
  }
}

TEST(EncodingTest, Base32RejectsNonCanonical) {
  EXPECT_FALSE(Base32Decode("MY").has_value());    // uppercase
  EXPECT_FALSE(Base32Decode("mz").has_value());    // nonzero trailing bits
  EXPECT_FALSE(Base32Decode("m").has_value());     // impossible length
  EXPECT_FALSE(Base32Decode("my==").has_value());  // padding
}

TEST(EncodingTest, QuoteEscapes) {
  EXPECT_EQ(Quote("a\nb"), "'a\\x0ab'");
  EXPECT_EQ(Quote("abcdef", 3), "'abc...'");
}

}  // namespace
}  // namespace dreamdb
