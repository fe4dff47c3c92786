// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Pages of the anchor index (spec/11-anchor-index.md §2): the in-memory form of leaf and
// node pages, their canonical CBOR encoding and a strict decoder.
//
// A leaf maps up to kLeafCapacity anchors to, per field, a location (segment, row). It is
// stored column-wise, exactly as on disk: the anchors, then per field a short list of
// segment ids, a u32 index into that list per anchor (kNoSegment = the entry has no value
// for the field) and a u32 row per anchor. A node holds up to kNodeFanout children with
// the smallest anchor and the number of entries under each.
//
// Every decoded page satisfies the page invariants (spec §3, P1-P9): a page that breaks
// one is refused with kCorrupt naming the page and the rule. Invariants that relate a page
// to its parent (T1-T4) are checked by the traversals in btree.cc via CheckChild().
//
// Thread safety: all types here are values; decoded pages are shared read-only through
// std::shared_ptr<const Page>. Functions are reentrant.

#ifndef DREAMDB_SRC_BTREE_PAGE_H_
#define DREAMDB_SRC_BTREE_PAGE_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "dreamdb/object_id.h"
#include "dreamdb/status.h"
#include "src/cbor/cbor.h"

namespace dreamdb::btree {

inline constexpr std::string_view kLeafKind = "dreamdb.btree.leaf";
inline constexpr std::string_view kNodeKind = "dreamdb.btree.node";
inline constexpr uint64_t kPageFormat = 1;

// "This entry has no value for this field" in LeafField::seg.
inline constexpr uint32_t kNoSegment = 0xffffffff;
// Entries per leaf (split above), children per node (split above).
inline constexpr size_t kLeafCapacity = 512;
inline constexpr size_t kNodeFanout = 128;
// A tree that is a single leaf with at most this many entries is embedded in the manifest.
inline constexpr size_t kInlineMaxEntries = 64;
// Levels including the leaves. 12 levels hold far more than 2^64 entries even when every
// page is at its minimum fill, so deeper trees only come from corrupt data.
inline constexpr uint32_t kMaxHeight = 12;
// Field names are 1..255 bytes of UTF-8 at this layer (the schema is stricter).
inline constexpr size_t kMaxFieldNameBytes = 255;

// Where one field's value of one record lives.
struct FieldLoc {
  ObjectId segment;
  uint32_t row = 0;
  bool operator==(const FieldLoc&) const = default;
};

// One record of the index: its anchor and the location of each field it has.
struct Entry {
  uint64_t anchor = 0;
  // Ascending in canonical key order (cbor::KeyLess: shorter names first, then bytewise).
  std::vector<std::pair<std::string, FieldLoc>> fields;

  const FieldLoc* Find(std::string_view name) const;
  bool operator==(const Entry&) const = default;
};

// One field's column in a leaf.
struct LeafField {
  std::string name;
  std::vector<ObjectId> segments;  // distinct, in order of first use by `seg`
  std::vector<uint32_t> seg;       // per entry: index into `segments`, or kNoSegment
  std::vector<uint32_t> row;       // per entry: row in the segment (0 when seg is none)

  std::optional<FieldLoc> At(size_t i) const {
    if (seg[i] == kNoSegment) return std::nullopt;
    return FieldLoc{segments[seg[i]], row[i]};
  }
  bool operator==(const LeafField&) const = default;
};

struct Leaf {
  std::vector<uint64_t> anchors;  // strictly ascending
  std::vector<LeafField> fields;  // ascending by cbor::KeyLess of the name

  size_t size() const { return anchors.size(); }
  // Index of the first anchor >= `anchor` (size() if none).
  size_t LowerBound(uint64_t anchor) const;
  // Index of `anchor` if present.
  std::optional<size_t> Find(uint64_t anchor) const;
  const LeafField* FindField(std::string_view name) const;
  // REQUIRES: i < size().
  Entry EntryAt(size_t i) const;
  // Approximate heap footprint, for the page cache.
  size_t MemoryBytes() const;
  bool operator==(const Leaf&) const = default;
};

struct Node {
  uint32_t level = 1;          // 1 = the children are leaves
  std::vector<uint64_t> keys;  // smallest anchor under each child; strictly ascending
  std::vector<ObjectId> children;
  std::vector<uint64_t> counts;  // entries under each child, each >= 1

  size_t size() const { return children.size(); }
  // Sum of counts. REQUIRES: no overflow (the decoder checks).
  uint64_t TotalCount() const;
  // The child whose key range holds `anchor`: the last i with keys[i] <= anchor, or 0.
  size_t ChildFor(uint64_t anchor) const;
  size_t MemoryBytes() const;
  bool operator==(const Node&) const = default;
};

// A decoded page: a leaf or a node.
struct Page {
  std::variant<Leaf, Node> v;
  size_t memory_bytes = 0;  // set by MakePage

  bool is_leaf() const { return std::holds_alternative<Leaf>(v); }
  const Leaf& leaf() const { return std::get<Leaf>(v); }
  const Node& node() const { return std::get<Node>(v); }
  // 0 for a leaf, the node's level otherwise.
  uint32_t level() const { return is_leaf() ? 0 : node().level; }
  // Number of entries under the page (leaf size or sum of node counts).
  uint64_t count() const { return is_leaf() ? leaf().size() : node().TotalCount(); }
  // Smallest anchor under the page. REQUIRES: a valid (non-empty) page.
  uint64_t first_key() const { return is_leaf() ? leaf().anchors.front() : node().keys.front(); }
};

Page MakePage(Leaf leaf);
Page MakePage(Node node);

// ---- Encoding (spec §2) ----

// The page's CBOR map. REQUIRES: the page satisfies P1-P9 (ValidateLeaf/ValidateNode);
// encoders below check and return kInternal otherwise, since writing a page that readers
// refuse would corrupt the dataset.
cbor::Value LeafToCbor(const Leaf& leaf);
cbor::Value NodeToCbor(const Node& node);
Result<Bytes> EncodeLeaf(const Leaf& leaf);
Result<Bytes> EncodeNode(const Node& node);

// Strict decoding. `context` starts every error message, e.g. "btree page b...".
// kCorrupt for any violation of P1-P9 or an unexpected/missing key; kUnsupported for a
// format other than 1.
Result<Leaf> LeafFromCbor(const cbor::Value& value, std::string_view context);
Result<Node> NodeFromCbor(const cbor::Value& value, std::string_view context);
Result<Page> DecodePage(ByteView bytes, std::string_view context);

// The page invariants as checks on in-memory pages (kCorrupt prefixed with `context`).
Status ValidateLeaf(const Leaf& leaf, std::string_view context);
Status ValidateNode(const Node& node, std::string_view context);

// ---- Building leaves ----

// Entries [begin, end) of `src` as a canonical leaf: per field, the segment list holds
// only the segments those entries use, deduplicated, in order of first use; fields
// without a value in the range are dropped; rows of absent values are 0. `src` may be
// non-canonical in those respects (but its anchors must ascend and its indices be in
// range). REQUIRES: begin < end <= src.size().
Leaf SliceLeaf(const Leaf& src, size_t begin, size_t end);

// Converts whole entries (anchors strictly ascending, fields in canonical order) to a
// canonical leaf. Mostly for tests and tools.
Leaf LeafFromEntries(const std::vector<Entry>& entries);

// The most anchors a subtree whose root has `level` can hold: 512 * 128^level, saturating
// at UINT64_MAX (spec §3 P9).
uint64_t MaxEntriesAtLevel(uint32_t level);

// "btree page <id-text>" — the context used for pages read from a store.
std::string PageContext(const ObjectId& id);

// Little-endian packing used by the page format.
Bytes PackU64(const std::vector<uint64_t>& values);
Bytes PackU32(const std::vector<uint32_t>& values);

}  // namespace dreamdb::btree

#endif  // DREAMDB_SRC_BTREE_PAGE_H_
