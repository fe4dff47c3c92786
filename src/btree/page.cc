// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Page encoding and strict decoding (spec/11-anchor-index.md §2-§3).

#include "src/btree/page.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <initializer_list>
#include <map>
#include <utility>

#include "src/base/encoding.h"

namespace dreamdb::btree {
namespace {

std::string Join(std::string_view context, std::string_view key) {
  std::string s(context);
  s += '.';
  s += key;
  return s;
}

Status PageError(std::string_view context, const std::string& what) {
  return Corrupt(std::string(context) + ": " + what);
}

// The map must hold exactly `keys` (spec §3 P1: no unknown keys, none missing).
Status CheckKeys(const cbor::Map& map, std::initializer_list<std::string_view> keys,
                 std::string_view context) {
  for (const auto& [key, value] : map.entries()) {
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) {
      return PageError(context, "unexpected key " + Quote(key));
    }
  }
  for (std::string_view key : keys) {
    if (map.Find(key) == nullptr) return PageError(context, "missing key " + Quote(key));
  }
  return Status::Ok();
}

// Checks "kind" and "format" (P1).
Status CheckHeader(const cbor::Map& map, std::string_view kind, std::string_view context) {
  ASSIGN_OR_RETURN(const cbor::Value* kind_value, cbor::Require(map, "kind"));
  ASSIGN_OR_RETURN(std::string_view got, kind_value->AsText(Join(context, "kind")));
  if (got != kind) {
    return PageError(context, "kind is " + Quote(got) + ", expected " + Quote(kind));
  }
  ASSIGN_OR_RETURN(const cbor::Value* format_value, cbor::Require(map, "format"));
  ASSIGN_OR_RETURN(uint64_t format, format_value->AsUInt(Join(context, "format")));
  if (format != kPageFormat) {
    return Unsupported(std::string(context) + ": " + std::string(kind) + " format " +
                       std::to_string(format) + " is not supported (this build reads format " +
                       std::to_string(kPageFormat) + ")");
  }
  return Status::Ok();
}

// Little-endian arrays <-> byte strings (spec §2: u64/u32 LE).
template <typename T>
Bytes PackLE(const std::vector<T>& values) {
  Bytes out(values.size() * sizeof(T), '\0');
  if constexpr (std::endian::native == std::endian::little) {
    if (!values.empty()) std::memcpy(out.data(), values.data(), out.size());
  } else {
    for (size_t i = 0; i < values.size(); ++i) {
      for (size_t b = 0; b < sizeof(T); ++b) {
        out[sizeof(T) * i + b] = static_cast<char>((values[i] >> (8 * b)) & 0xff);
      }
    }
  }
  return out;
}

template <typename T>
Result<std::vector<T>> UnpackLE(const cbor::Value& value, std::string_view what) {
  ASSIGN_OR_RETURN(std::string_view bytes, value.AsBytes(what));
  if (bytes.size() % sizeof(T) != 0) {
    return Corrupt(std::string(what) + ": length " + std::to_string(bytes.size()) +
                   " is not a multiple of " + std::to_string(sizeof(T)));
  }
  std::vector<T> out(bytes.size() / sizeof(T));
  if constexpr (std::endian::native == std::endian::little) {
    if (!out.empty()) std::memcpy(out.data(), bytes.data(), bytes.size());
  } else {
    for (size_t i = 0; i < out.size(); ++i) {
      T v = 0;
      for (size_t b = sizeof(T); b-- > 0;) {
        v = static_cast<T>((v << 8) | static_cast<uint8_t>(bytes[sizeof(T) * i + b]));
      }
      out[i] = v;
    }
  }
  return out;
}

Result<std::vector<uint64_t>> UnpackU64(const cbor::Value& value, std::string_view what) {
  return UnpackLE<uint64_t>(value, what);
}

Result<std::vector<uint32_t>> UnpackU32(const cbor::Value& value, std::string_view what) {
  return UnpackLE<uint32_t>(value, what);
}

// The first id listed twice, if any.
const ObjectId* FindDuplicate(const std::vector<ObjectId>& ids) {
  if (ids.size() <= 16) {
    for (size_t a = 0; a < ids.size(); ++a) {
      for (size_t b = a + 1; b < ids.size(); ++b) {
        if (ids[a] == ids[b]) return &ids[a];
      }
    }
    return nullptr;
  }
  // Sorted by the first 8 digest bytes (integer compares: every decoded leaf pays for this
  // check, so no 32-byte comparison per step); equal prefixes are compared whole.
  std::vector<std::pair<uint64_t, const ObjectId*>> sorted;
  sorted.reserve(ids.size());
  for (const ObjectId& id : ids) {
    uint64_t prefix;
    std::memcpy(&prefix, id.digest().data(), sizeof prefix);
    sorted.emplace_back(prefix, &id);
  }
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& x, const auto& y) { return x.first < y.first; });
  for (size_t i = 1; i < sorted.size(); ++i) {
    if (sorted[i - 1].first != sorted[i].first) continue;
    for (size_t k = i; k < sorted.size() && sorted[k].first == sorted[i - 1].first; ++k) {
      if (*sorted[i - 1].second == *sorted[k].second) return sorted[k].second;
    }
  }
  return nullptr;
}

}  // namespace

uint64_t MaxEntriesAtLevel(uint32_t level) {
  uint64_t max = kLeafCapacity;
  for (uint32_t l = 0; l < level; ++l) {
    if (max > UINT64_MAX / kNodeFanout) return UINT64_MAX;
    max *= kNodeFanout;
  }
  return max;
}

// ---- Small accessors ----

const FieldLoc* Entry::Find(std::string_view name) const {
  for (const auto& [n, loc] : fields) {
    if (n == name) return &loc;
  }
  return nullptr;
}

size_t Leaf::LowerBound(uint64_t anchor) const {
  return static_cast<size_t>(std::lower_bound(anchors.begin(), anchors.end(), anchor) -
                             anchors.begin());
}

std::optional<size_t> Leaf::Find(uint64_t anchor) const {
  size_t i = LowerBound(anchor);
  if (i < anchors.size() && anchors[i] == anchor) return i;
  return std::nullopt;
}

const LeafField* Leaf::FindField(std::string_view name) const {
  for (const LeafField& f : fields) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

Entry Leaf::EntryAt(size_t i) const {
  Entry e;
  e.anchor = anchors[i];
  for (const LeafField& f : fields) {
    if (f.seg[i] != kNoSegment)
      e.fields.emplace_back(f.name, FieldLoc{f.segments[f.seg[i]], f.row[i]});
  }
  return e;
}

size_t Leaf::MemoryBytes() const {
  size_t n = sizeof(Leaf) + anchors.size() * sizeof(uint64_t);
  for (const LeafField& f : fields) {
    n += sizeof(LeafField) + f.name.size() + f.segments.size() * sizeof(ObjectId) +
         (f.seg.size() + f.row.size()) * sizeof(uint32_t);
  }
  return n;
}

uint64_t Node::TotalCount() const {
  uint64_t total = 0;
  for (uint64_t c : counts) total += c;
  return total;
}

size_t Node::ChildFor(uint64_t anchor) const {
  auto it = std::upper_bound(keys.begin(), keys.end(), anchor);
  if (it == keys.begin()) return 0;
  return static_cast<size_t>(it - keys.begin()) - 1;
}

size_t Node::MemoryBytes() const {
  return sizeof(Node) + keys.size() * (2 * sizeof(uint64_t) + sizeof(ObjectId));
}

Page MakePage(Leaf leaf) {
  Page p;
  p.memory_bytes = leaf.MemoryBytes() + sizeof(Page);
  p.v = std::move(leaf);
  return p;
}

Page MakePage(Node node) {
  Page p;
  p.memory_bytes = node.MemoryBytes() + sizeof(Page);
  p.v = std::move(node);
  return p;
}

std::string PageContext(const ObjectId& id) { return "btree page " + id.ToString(); }

Bytes PackU64(const std::vector<uint64_t>& values) { return PackLE(values); }

Bytes PackU32(const std::vector<uint32_t>& values) { return PackLE(values); }

// ---- Validation (spec §3) ----

Status ValidateLeaf(const Leaf& leaf, std::string_view context) {
  const size_t n = leaf.anchors.size();
  // P2
  if (n == 0) return PageError(context, "leaf has no entries");
  if (n > kLeafCapacity) {
    return PageError(context, "leaf has " + std::to_string(n) + " entries (at most " +
                                  std::to_string(kLeafCapacity) + ")");
  }
  for (size_t i = 1; i < n; ++i) {
    if (leaf.anchors[i - 1] >= leaf.anchors[i]) {
      return PageError(context, "leaf anchors not strictly ascending at entry " +
                                    std::to_string(i) + " (" + std::to_string(leaf.anchors[i]) +
                                    " after " + std::to_string(leaf.anchors[i - 1]) + ")");
    }
  }
  for (size_t fi = 0; fi < leaf.fields.size(); ++fi) {
    const LeafField& f = leaf.fields[fi];
    const std::string fc = std::string(context) + ": field " + Quote(f.name);
    // P3
    if (f.name.empty() || f.name.size() > kMaxFieldNameBytes) {
      return Corrupt(fc + ": name must be 1.." + std::to_string(kMaxFieldNameBytes) + " bytes");
    }
    if (fi > 0 && !cbor::KeyLess(leaf.fields[fi - 1].name, f.name)) {
      return Corrupt(fc + ": fields not in canonical order");
    }
    // P4
    if (f.seg.size() != n || f.row.size() != n) {
      return Corrupt(fc + ": seg/row hold " + std::to_string(f.seg.size()) + "/" +
                     std::to_string(f.row.size()) + " values for " + std::to_string(n) +
                     " anchors");
    }
    // P5
    if (f.segments.empty()) return Corrupt(fc + ": no segments (a field appears only if used)");
    if (const ObjectId* dup = FindDuplicate(f.segments)) {
      return Corrupt(fc + ": segment " + dup->ToString() + " listed twice");
    }
    uint64_t next_new = 0;  // the index a first use must introduce next
    for (size_t i = 0; i < n; ++i) {
      const uint32_t s = f.seg[i];
      if (s == kNoSegment) {
        // P6
        if (f.row[i] != 0) {
          return Corrupt(fc + ": entry " + std::to_string(i) + " has no segment but row " +
                         std::to_string(f.row[i]) + " (must be 0)");
        }
        continue;
      }
      if (s >= f.segments.size()) {
        return Corrupt(fc + ": entry " + std::to_string(i) + " seg index " + std::to_string(s) +
                       " out of range (" + std::to_string(f.segments.size()) + " segments)");
      }
      if (s > next_new) {
        return Corrupt(fc + ": segments not in order of first use (entry " + std::to_string(i) +
                       " uses index " + std::to_string(s) + " before " + std::to_string(next_new) +
                       ")");
      }
      if (s == next_new) ++next_new;
    }
    if (next_new != f.segments.size()) {
      return Corrupt(fc + ": segment " + f.segments[next_new].ToString() + " is never used");
    }
  }
  return Status::Ok();
}

Status ValidateNode(const Node& node, std::string_view context) {
  // P7
  if (node.level < 1 || node.level >= kMaxHeight) {
    return PageError(context, "node level " + std::to_string(node.level) + " out of range 1.." +
                                  std::to_string(kMaxHeight - 1));
  }
  // P8
  const size_t n = node.children.size();
  if (n == 0) return PageError(context, "node has no children");
  if (n > kNodeFanout) {
    return PageError(context, "node has " + std::to_string(n) + " children (at most " +
                                  std::to_string(kNodeFanout) + ")");
  }
  if (node.keys.size() != n || node.counts.size() != n) {
    return PageError(context, "node has " + std::to_string(node.keys.size()) + " keys, " +
                                  std::to_string(n) + " children and " +
                                  std::to_string(node.counts.size()) + " counts");
  }
  for (size_t i = 1; i < n; ++i) {
    if (node.keys[i - 1] >= node.keys[i]) {
      return PageError(context, "node keys not strictly ascending at child " + std::to_string(i) +
                                    " (" + std::to_string(node.keys[i]) + " after " +
                                    std::to_string(node.keys[i - 1]) + ")");
    }
  }
  // P9
  const uint64_t max = MaxEntriesAtLevel(node.level - 1);
  uint64_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint64_t c = node.counts[i];
    if (c == 0 || c > max) {
      return PageError(context, "node count " + std::to_string(c) + " of child " +
                                    std::to_string(i) + " out of range 1.." + std::to_string(max));
    }
    if (total > UINT64_MAX - c) return PageError(context, "node counts overflow");
    total += c;
  }
  return Status::Ok();
}

// ---- Encoding ----

cbor::Value LeafToCbor(const Leaf& leaf) {
  cbor::Map fields;
  fields.Reserve(leaf.fields.size());
  for (const LeafField& f : leaf.fields) {
    cbor::Array segments;
    segments.reserve(f.segments.size());
    for (const ObjectId& id : f.segments) segments.push_back(cbor::IdValue(id));
    fields.Set(f.name, cbor::Value::FromMap(cbor::Map{
                           {"row", cbor::Value::Bytes(PackU32(f.row))},
                           {"seg", cbor::Value::Bytes(PackU32(f.seg))},
                           {"segments", cbor::Value::FromArray(std::move(segments))},
                       }));
  }
  return cbor::Value::FromMap(cbor::Map{
      {"kind", cbor::Value::Text(std::string(kLeafKind))},
      {"format", cbor::Value::UInt(kPageFormat)},
      {"fields", cbor::Value::FromMap(std::move(fields))},
      {"anchors", cbor::Value::Bytes(PackU64(leaf.anchors))},
  });
}

cbor::Value NodeToCbor(const Node& node) {
  cbor::Array children;
  children.reserve(node.children.size());
  for (const ObjectId& id : node.children) children.push_back(cbor::IdValue(id));
  return cbor::Value::FromMap(cbor::Map{
      {"kind", cbor::Value::Text(std::string(kNodeKind))},
      {"format", cbor::Value::UInt(kPageFormat)},
      {"level", cbor::Value::UInt(node.level)},
      {"keys", cbor::Value::Bytes(PackU64(node.keys))},
      {"children", cbor::Value::FromArray(std::move(children))},
      {"counts", cbor::Value::Bytes(PackU64(node.counts))},
  });
}

Result<Bytes> EncodeLeaf(const Leaf& leaf) {
  Status s = ValidateLeaf(leaf, "btree: refusing to write leaf");
  if (!s.ok()) return Internal(s.message());
  return cbor::Encode(LeafToCbor(leaf));
}

Result<Bytes> EncodeNode(const Node& node) {
  Status s = ValidateNode(node, "btree: refusing to write node");
  if (!s.ok()) return Internal(s.message());
  return cbor::Encode(NodeToCbor(node));
}

// ---- Decoding ----

Result<Leaf> LeafFromCbor(const cbor::Value& value, std::string_view context) {
  ASSIGN_OR_RETURN(const cbor::Map* map, value.AsMap(context));
  RETURN_IF_ERROR(CheckHeader(*map, kLeafKind, context));
  RETURN_IF_ERROR(CheckKeys(*map, {"kind", "format", "anchors", "fields"}, context));
  Leaf leaf;
  ASSIGN_OR_RETURN(leaf.anchors, UnpackU64(*map->Find("anchors"), Join(context, "anchors")));
  if (leaf.anchors.empty()) return PageError(context, "leaf has no entries");
  if (leaf.anchors.size() > kLeafCapacity) {  // before touching the columns
    return PageError(context, "leaf has " + std::to_string(leaf.anchors.size()) +
                                  " entries (at most " + std::to_string(kLeafCapacity) + ")");
  }
  ASSIGN_OR_RETURN(const cbor::Map* fields, map->Find("fields")->AsMap(Join(context, "fields")));
  leaf.fields.reserve(fields->size());
  for (const auto& [name, fv] : fields->entries()) {
    const std::string fc = Join(Join(context, "fields"), name);
    ASSIGN_OR_RETURN(const cbor::Map* fm, fv.AsMap(fc));
    RETURN_IF_ERROR(CheckKeys(*fm, {"segments", "seg", "row"}, fc));
    LeafField f;
    f.name = name;
    ASSIGN_OR_RETURN(const cbor::Array* segments,
                     fm->Find("segments")->AsArray(Join(fc, "segments")));
    if (segments->size() > leaf.anchors.size()) {
      return Corrupt(fc + ": " + std::to_string(segments->size()) + " segments for " +
                     std::to_string(leaf.anchors.size()) + " anchors");
    }
    f.segments.reserve(segments->size());
    for (const cbor::Value& sv : *segments) {
      ASSIGN_OR_RETURN(ObjectId id, cbor::AsId(sv, Join(fc, "segments")));
      f.segments.push_back(id);
    }
    ASSIGN_OR_RETURN(f.seg, UnpackU32(*fm->Find("seg"), Join(fc, "seg")));
    ASSIGN_OR_RETURN(f.row, UnpackU32(*fm->Find("row"), Join(fc, "row")));
    leaf.fields.push_back(std::move(f));
  }
  RETURN_IF_ERROR(ValidateLeaf(leaf, context));
  return leaf;
}

Result<Node> NodeFromCbor(const cbor::Value& value, std::string_view context) {
  ASSIGN_OR_RETURN(const cbor::Map* map, value.AsMap(context));
  RETURN_IF_ERROR(CheckHeader(*map, kNodeKind, context));
  RETURN_IF_ERROR(
      CheckKeys(*map, {"kind", "format", "level", "keys", "children", "counts"}, context));
  Node node;
  ASSIGN_OR_RETURN(uint64_t level, map->Find("level")->AsUInt(Join(context, "level")));
  if (level < 1 || level >= kMaxHeight) {
    return PageError(context, "node level " + std::to_string(level) + " out of range 1.." +
                                  std::to_string(kMaxHeight - 1));
  }
  node.level = static_cast<uint32_t>(level);
  ASSIGN_OR_RETURN(node.keys, UnpackU64(*map->Find("keys"), Join(context, "keys")));
  ASSIGN_OR_RETURN(node.counts, UnpackU64(*map->Find("counts"), Join(context, "counts")));
  ASSIGN_OR_RETURN(const cbor::Array* children,
                   map->Find("children")->AsArray(Join(context, "children")));
  if (children->size() > kNodeFanout) {
    return PageError(context, "node has " + std::to_string(children->size()) +
                                  " children (at most " + std::to_string(kNodeFanout) + ")");
  }
  node.children.reserve(children->size());
  for (const cbor::Value& cv : *children) {
    ASSIGN_OR_RETURN(ObjectId id, cbor::AsId(cv, Join(context, "children")));
    node.children.push_back(id);
  }
  RETURN_IF_ERROR(ValidateNode(node, context));
  return node;
}

Result<Page> DecodePage(ByteView bytes, std::string_view context) {
  auto decoded = cbor::Decode(bytes);
  if (!decoded.ok()) return decoded.status().WithContext(context);
  const cbor::Value& value = *decoded;
  ASSIGN_OR_RETURN(const cbor::Map* map, value.AsMap(context));
  ASSIGN_OR_RETURN(const cbor::Value* kind_value, cbor::Require(*map, "kind"));
  ASSIGN_OR_RETURN(std::string_view kind, kind_value->AsText(Join(context, "kind")));
  if (kind == kLeafKind) {
    ASSIGN_OR_RETURN(Leaf leaf, LeafFromCbor(value, context));
    return MakePage(std::move(leaf));
  }
  if (kind == kNodeKind) {
    ASSIGN_OR_RETURN(Node node, NodeFromCbor(value, context));
    return MakePage(std::move(node));
  }
  return PageError(context, "kind " + Quote(kind) + " is not a btree page");
}

// ---- Building ----

Leaf SliceLeaf(const Leaf& src, size_t begin, size_t end) {
  Leaf out;
  const size_t n = end - begin;
  out.anchors.assign(src.anchors.begin() + begin, src.anchors.begin() + end);
  std::vector<uint32_t> remap;
  for (const LeafField& f : src.fields) {
    LeafField o;
    o.seg.resize(n);
    o.row.resize(n);
    remap.assign(f.segments.size(), kNoSegment);
    for (size_t i = 0; i < n; ++i) {
      const uint32_t s = f.seg[begin + i];
      if (s == kNoSegment) {
        o.seg[i] = kNoSegment;
        o.row[i] = 0;
        continue;
      }
      uint32_t r = remap[s];
      if (r == kNoSegment) {
        // `src` may list a segment twice (merged lists): dedupe by id, keep first use.
        auto it = std::find(o.segments.begin(), o.segments.end(), f.segments[s]);
        r = static_cast<uint32_t>(it - o.segments.begin());
        if (it == o.segments.end()) o.segments.push_back(f.segments[s]);
        remap[s] = r;
      }
      o.seg[i] = r;
      o.row[i] = f.row[begin + i];
    }
    if (o.segments.empty()) continue;
    o.name = f.name;
    out.fields.push_back(std::move(o));
  }
  return out;
}

Leaf LeafFromEntries(const std::vector<Entry>& entries) {
  struct KeyLessCmp {
    bool operator()(const std::string& a, const std::string& b) const {
      return cbor::KeyLess(a, b);
    }
  };
  std::map<std::string, LeafField, KeyLessCmp> fields;
  const size_t n = entries.size();
  Leaf big;
  big.anchors.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    big.anchors.push_back(entries[i].anchor);
    for (const auto& [name, loc] : entries[i].fields) {
      LeafField& f = fields[name];
      if (f.seg.empty()) {
        f.name = name;
        f.seg.assign(n, kNoSegment);
        f.row.assign(n, 0);
      }
      f.seg[i] = static_cast<uint32_t>(f.segments.size());
      f.segments.push_back(loc.segment);
      f.row[i] = loc.row;
    }
  }
  for (auto& [name, f] : fields) big.fields.push_back(std::move(f));
  if (n == 0) return big;
  return SliceLeaf(big, 0, n);
}

}  // namespace dreamdb::btree
