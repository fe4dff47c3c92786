// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Page encoding and the strict decoder (spec/11-anchor-index.md §2-§3, P1-P9), and the
// IndexRef form embedded in manifests (§4).

#include "src/btree/page.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "src/btree/btree.h"
#include "src/btree/test_util.h"

namespace dreamdb::btree {
namespace {

using test::Seg;

Leaf SampleLeaf() {
  Leaf leaf;
  leaf.anchors = {1, 2, 5, 1000000000000ull};
  leaf.fields.push_back(LeafField{"a", {Seg(1), Seg(0)}, {0, 0, kNoSegment, 1}, {3, 4, 0, 9}});
  leaf.fields.push_back(LeafField{"image", {Seg(7)}, {kNoSegment, 0, 0, 0}, {0, 1, 2, 3}});
  return leaf;
}

Node SampleNode() {
  Node node;
  node.level = 1;
  node.keys = {1, 600, 1200};
  node.children = {Seg(100), Seg(101), Seg(102)};
  node.counts = {300, 512, 7};
  return node;
}

// Encodes a CBOR value the tests modify by hand.
Bytes Enc(const cbor::Value& v) {
  auto b = cbor::Encode(v);
  EXPECT_TRUE(b.ok()) << b.status().ToString();
  return b.ok() ? *b : Bytes();
}

cbor::Value WithKey(cbor::Value v, const std::string& key, cbor::Value value) {
  v.mutable_map().Set(key, std::move(value));
  return v;
}

cbor::Value WithFieldKey(cbor::Value v, const std::string& field, const std::string& key,
                         cbor::Value value) {
  cbor::Value fields = *v.map().Find("fields");
  cbor::Value f = *fields.map().Find(field);
  f.mutable_map().Set(key, std::move(value));
  fields.mutable_map().Set(field, f);
  v.mutable_map().Set("fields", fields);
  return v;
}

void ExpectCorrupt(const Bytes& bytes, const std::string& needle,
                   StatusCode code = StatusCode::kCorrupt) {
  auto page = DecodePage(bytes, "btree page X");
  ASSERT_FALSE(page.ok()) << "accepted a page that should fail with " << needle;
  EXPECT_EQ(page.status().code(), code) << page.status().ToString();
  EXPECT_NE(page.status().message().find(needle), std::string::npos) << page.status().ToString();
  EXPECT_NE(page.status().message().find("btree page X"), std::string::npos)
      << page.status().ToString();
}

TEST(PageTest, LeafRoundTrip) {
  Leaf leaf = SampleLeaf();
  ASSERT_TRUE(ValidateLeaf(leaf, "t").ok());
  auto bytes = EncodeLeaf(leaf);
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  auto page = DecodePage(*bytes, "t");
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_TRUE(page->is_leaf());
  EXPECT_EQ(page->leaf(), leaf);
  EXPECT_EQ(page->level(), 0u);
  EXPECT_EQ(page->count(), 4u);
  EXPECT_EQ(page->first_key(), 1u);
  Entry e = leaf.EntryAt(2);
  EXPECT_EQ(e.anchor, 5u);
  ASSERT_EQ(e.fields.size(), 1u);
  EXPECT_EQ(e.fields[0].first, "image");
  EXPECT_EQ(e.fields[0].second, (FieldLoc{Seg(7), 2}));
  EXPECT_EQ(leaf.Find(5), 2u);
  EXPECT_FALSE(leaf.Find(6).has_value());
  EXPECT_EQ(leaf.LowerBound(6), 3u);
}

TEST(PageTest, TombstoneLeafHasNoFields) {
  Leaf leaf;
  leaf.anchors = {0, 7, UINT64_MAX};
  auto bytes = EncodeLeaf(leaf);
  ASSERT_TRUE(bytes.ok());
  auto page = DecodePage(*bytes, "t");
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_EQ(page->leaf(), leaf);
  EXPECT_TRUE(page->leaf().EntryAt(1).fields.empty());
}

TEST(PageTest, NodeRoundTrip) {
  Node node = SampleNode();
  auto bytes = EncodeNode(node);
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  auto page = DecodePage(*bytes, "t");
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_FALSE(page->is_leaf());
  EXPECT_EQ(page->node(), node);
  EXPECT_EQ(page->count(), 819u);
  EXPECT_EQ(node.ChildFor(0), 0u);
  EXPECT_EQ(node.ChildFor(599), 0u);
  EXPECT_EQ(node.ChildFor(600), 1u);
  EXPECT_EQ(node.ChildFor(UINT64_MAX), 2u);
}

TEST(PageTest, EncoderRefusesInvalidPages) {
  Leaf leaf = SampleLeaf();
  leaf.anchors[1] = 1;
  auto bytes = EncodeLeaf(leaf);
  ASSERT_FALSE(bytes.ok());
  EXPECT_EQ(bytes.status().code(), StatusCode::kInternal);
  Node node = SampleNode();
  node.counts[0] = 0;
  EXPECT_EQ(EncodeNode(node).status().code(), StatusCode::kInternal);
}

TEST(PageTest, SliceLeafCanonicalizes) {
  // A merged leaf: duplicate and unused segments, a field with no value in the range.
  Leaf big;
  big.anchors = {10, 20, 30, 40};
  big.fields.push_back(
      LeafField{"a", {Seg(5), Seg(1), Seg(5), Seg(9)}, {kNoSegment, 2, 1, 0}, {7, 1, 2, 3}});
  big.fields.push_back(
      LeafField{"zz", {Seg(3)}, {0, kNoSegment, kNoSegment, kNoSegment}, {1, 0, 0, 0}});
  Leaf part = SliceLeaf(big, 1, 4);
  ASSERT_TRUE(ValidateLeaf(part, "t").ok()) << ValidateLeaf(part, "t").ToString();
  EXPECT_EQ(part.anchors, (std::vector<uint64_t>{20, 30, 40}));
  ASSERT_EQ(part.fields.size(), 1u);  // "zz" has no value in [1, 4)
  EXPECT_EQ(part.fields[0].segments, (std::vector<ObjectId>{Seg(5), Seg(1)}));
  EXPECT_EQ(part.fields[0].seg, (std::vector<uint32_t>{0, 1, 0}));
  EXPECT_EQ(part.fields[0].row, (std::vector<uint32_t>{1, 2, 3}));
  Leaf first = SliceLeaf(big, 0, 1);
  ASSERT_TRUE(ValidateLeaf(first, "t").ok());
  EXPECT_EQ(first.fields.size(), 1u);
  EXPECT_EQ(first.fields[0].name, "zz");
  EXPECT_EQ(first.fields[0].row, (std::vector<uint32_t>{1}));
}

TEST(PageTest, LeafFromEntriesOrdersFieldsCanonically) {
  std::vector<Entry> entries = {
      Entry{3, {{"b", {Seg(1), 0}}, {"aa", {Seg(2), 5}}}},
      Entry{4, {{"aa", {Seg(2), 6}}}},
  };
  Leaf leaf = LeafFromEntries(entries);
  ASSERT_TRUE(ValidateLeaf(leaf, "t").ok());
  ASSERT_EQ(leaf.fields.size(), 2u);
  EXPECT_EQ(leaf.fields[0].name, "b");  // shorter key first
  EXPECT_EQ(leaf.fields[1].name, "aa");
  EXPECT_EQ(leaf.EntryAt(0).fields[0].first, "b");
}

TEST(PageDecoderTest, RejectsBadLeaves) {
  const cbor::Value good = LeafToCbor(SampleLeaf());
  ASSERT_TRUE(DecodePage(Enc(good), "t").ok());

  ExpectCorrupt(Enc(WithKey(good, "anchors", cbor::Value::Bytes(PackU64({1, 5, 2, 9})))),
                "not strictly ascending at entry 2");
  ExpectCorrupt(Enc(WithKey(good, "anchors", cbor::Value::Bytes(PackU64({1, 1, 2, 9})))),
                "not strictly ascending");
  ExpectCorrupt(Enc(WithKey(good, "anchors", cbor::Value::Bytes(std::string(7, '\0')))),
                "not a multiple of 8");
  {
    Leaf empty;
    ExpectCorrupt(Enc(LeafToCbor(empty)), "leaf has no entries");
  }
  {
    std::vector<uint64_t> many(kLeafCapacity + 1);
    for (size_t i = 0; i < many.size(); ++i) many[i] = i;
    ExpectCorrupt(Enc(WithKey(good, "anchors", cbor::Value::Bytes(PackU64(many)))),
                  "leaf has 513 entries");
  }
  // Column lengths.
  ExpectCorrupt(Enc(WithFieldKey(good, "a", "seg", cbor::Value::Bytes(PackU32({0, 0, 1})))),
                "seg/row hold 3/4 values for 4 anchors");
  ExpectCorrupt(Enc(WithFieldKey(good, "a", "row", cbor::Value::Bytes(std::string(5, '\0')))),
                "not a multiple of 4");
  // Segment indices.
  ExpectCorrupt(
      Enc(WithFieldKey(good, "a", "seg", cbor::Value::Bytes(PackU32({0, 0, kNoSegment, 2})))),
      "seg index 2 out of range (2 segments)");
  ExpectCorrupt(
      Enc(WithFieldKey(good, "a", "seg", cbor::Value::Bytes(PackU32({1, 0, kNoSegment, 1})))),
      "not in order of first use");
  ExpectCorrupt(
      Enc(WithFieldKey(good, "a", "seg", cbor::Value::Bytes(PackU32({0, 0, kNoSegment, 0})))),
      "is never used");
  {
    cbor::Array dup = {cbor::IdValue(Seg(1)), cbor::IdValue(Seg(1))};
    ExpectCorrupt(Enc(WithFieldKey(good, "a", "segments", cbor::Value::FromArray(dup))),
                  "listed twice");
  }
  ExpectCorrupt(Enc(WithFieldKey(good, "a", "segments", cbor::Value::FromArray({}))),
                "no segments");
  ExpectCorrupt(Enc(WithFieldKey(good, "a", "row", cbor::Value::Bytes(PackU32({3, 4, 1, 9})))),
                "has no segment but row 1");
  ExpectCorrupt(Enc(WithFieldKey(good, "a", "extra", cbor::Value::UInt(1))), "unexpected key");
  // Shape.
  ExpectCorrupt(Enc(WithKey(good, "extra", cbor::Value::UInt(1))), "unexpected key 'extra'");
  {
    cbor::Map m;
    for (const auto& [k, val] : good.map().entries()) {
      if (k != "fields") m.Set(k, val);
    }
    ExpectCorrupt(Enc(cbor::Value::FromMap(m)), "missing key 'fields'");
  }
  ExpectCorrupt(Enc(WithKey(good, "kind", cbor::Value::Text("dreamdb.manifest"))),
                "is not a btree page");
  ExpectCorrupt(Enc(WithKey(good, "format", cbor::Value::UInt(2))), "format 2 is not supported",
                StatusCode::kUnsupported);
  ExpectCorrupt(Enc(WithKey(good, "anchors", cbor::Value::Text("x"))), "anchors");
  ExpectCorrupt(Enc(cbor::Value::UInt(3)), "btree page X");
  ExpectCorrupt(Bytes("\xa1", 1), "btree page X");  // not even CBOR
  {
    cbor::Value fields = *good.map().Find("fields");
    cbor::Value f = *fields.map().Find("a");
    fields.mutable_map().Set("", f);
    ExpectCorrupt(Enc(WithKey(good, "fields", fields)), "field ''");
  }
}

TEST(PageDecoderTest, RejectsBadNodes) {
  const cbor::Value good = NodeToCbor(SampleNode());
  ASSERT_TRUE(DecodePage(Enc(good), "t").ok());
  ExpectCorrupt(Enc(WithKey(good, "level", cbor::Value::UInt(0))), "node level 0 out of range");
  ExpectCorrupt(Enc(WithKey(good, "level", cbor::Value::UInt(kMaxHeight))), "out of range");
  ExpectCorrupt(Enc(WithKey(good, "keys", cbor::Value::Bytes(PackU64({1, 1200, 600})))),
                "node keys not strictly ascending at child 2");
  ExpectCorrupt(Enc(WithKey(good, "keys", cbor::Value::Bytes(PackU64({1, 600})))),
                "node has 2 keys, 3 children and 3 counts");
  ExpectCorrupt(Enc(WithKey(good, "counts", cbor::Value::Bytes(PackU64({1, 0, 2})))),
                "node count 0 of child 1 out of range");
  ExpectCorrupt(Enc(WithKey(good, "counts", cbor::Value::Bytes(PackU64({1, 513, 2})))),
                "node count 513 of child 1 out of range 1..512");
  ExpectCorrupt(Enc(WithKey(good, "children", cbor::Value::FromArray({}))), "node");
  ExpectCorrupt(
      Enc(WithKey(good, "children", cbor::Value::FromArray({cbor::Value::Bytes("\x1e\x20xx")}))),
      "children");
  {
    Node node = SampleNode();
    node.level = 2;
    node.counts = {UINT64_MAX / 2, UINT64_MAX / 2, 5};
    ExpectCorrupt(Enc(NodeToCbor(node)), "out of range");
  }
  {
    cbor::Array many;
    for (size_t i = 0; i < kNodeFanout + 1; ++i)
      many.push_back(cbor::IdValue(Seg(static_cast<int>(i))));
    ExpectCorrupt(Enc(WithKey(good, "children", cbor::Value::FromArray(many))), "129 children");
  }
  ExpectCorrupt(Enc(WithKey(good, "format", cbor::Value::UInt(0))), "format 0",
                StatusCode::kUnsupported);
}

TEST(IndexRefTest, RoundTrips) {
  std::vector<IndexRef> refs = {
      IndexRef::Empty(),
      IndexRef::Inline(SampleLeaf()),
      IndexRef::Paged(Seg(3), 1, 65),
      IndexRef::Paged(Seg(4), 3, 100000),
  };
  for (const IndexRef& ref : refs) {
    cbor::Value v = IndexRefToCbor(ref);
    auto back = IndexRefFromCbor(v, "manifest.index");
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_TRUE(*back == ref);
    EXPECT_EQ(back->count, ref.count);
    EXPECT_EQ(back->height, ref.height);
  }
  EXPECT_TRUE(IndexRefToCbor(IndexRef::Empty()).is_null());
  EXPECT_EQ(IndexRefToCbor(IndexRef::Inline(SampleLeaf())).map().size(), 1u);
}

TEST(IndexRefTest, RejectsMalformed) {
  auto expect_bad = [](const cbor::Value& v, const std::string& needle) {
    auto r = IndexRefFromCbor(v, "manifest.index");
    ASSERT_FALSE(r.ok()) << needle;
    EXPECT_EQ(r.status().code(), StatusCode::kCorrupt);
    EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().ToString();
  };
  auto paged = [](uint64_t h, uint64_t n) {
    return cbor::Value::FromMap(cbor::Map{{"root", cbor::IdValue(Seg(1))},
                                          {"height", cbor::Value::UInt(h)},
                                          {"count", cbor::Value::UInt(n)}});
  };
  expect_bad(paged(1, 64), "must hold 65..512 entries");
  expect_bad(paged(1, 513), "must hold 65..512 entries");
  expect_bad(paged(0, 100), "height 0 out of range");
  expect_bad(paged(kMaxHeight + 1, 100), "out of range");
  expect_bad(paged(2, 1), "cannot hold 1 entries");
  expect_bad(paged(2, 512 * 128 + 1), "cannot hold 65537 entries");
  cbor::Value extra = paged(2, 100);
  extra.mutable_map().Set("x", cbor::Value::UInt(1));
  expect_bad(extra, "unexpected key");
  expect_bad(cbor::Value::FromMap(cbor::Map{{"root", cbor::IdValue(Seg(1))}}), "missing key");
  expect_bad(cbor::Value::UInt(1), "manifest.index");
  // Inline: at most 64 entries, and a valid leaf.
  std::vector<Entry> entries;
  for (uint64_t a = 0; a < 65; ++a) entries.push_back(Entry{a, {}});
  expect_bad(cbor::Value::FromMap(cbor::Map{{"inline", LeafToCbor(LeafFromEntries(entries))}}),
             "inline leaf has 65 entries");
  expect_bad(cbor::Value::FromMap(cbor::Map{{"inline", LeafToCbor(Leaf())}}), "no entries");
  cbor::Value both = cbor::Value::FromMap(
      cbor::Map{{"inline", LeafToCbor(SampleLeaf())}, {"count", cbor::Value::UInt(4)}});
  expect_bad(both, "unexpected key");
}

}  // namespace
}  // namespace dreamdb::btree
