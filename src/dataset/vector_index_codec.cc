// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Spatial-index objects: buckets, directory pages, index objects (spec/21-spatial-index.md
// §3-§5), and the per-handle object cache.
#include <algorithm>
#include <cstring>

#include "dreamdb/index_kinds.h"
#include "src/base/encoding.h"
#include "src/cbor/cbor.h"
#include "src/dataset/vector_index.h"

namespace dreamdb::vindex {
namespace {

void PutU32(Bytes* out, uint32_t v) {
  char b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  out->append(b, 4);
}
void PutU64(Bytes* out, uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  out->append(b, 8);
}
uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}
uint64_t GetU64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

// 16-byte truncated BLAKE3 of `data` (spec/21 §5.1).
Bytes Sum16(ByteView data) {
  ObjectId id = ObjectId::Of(data);
  return Bytes(reinterpret_cast<const char*>(id.digest().data()), 16);
}

Status CheckKind(const cbor::Map& m, std::string_view kind, std::string_view what) {
  ASSIGN_OR_RETURN(const cbor::Value* k, cbor::Require(m, "kind"));
  ASSIGN_OR_RETURN(std::string_view got, k->AsText("kind"));
  if (got != kind) {
    return Corrupt("expected a " + std::string(kind) + " object for " + std::string(what) +
                   ", got kind " + Quote(got));
  }
  ASSIGN_OR_RETURN(const cbor::Value* f, cbor::Require(m, "format"));
  ASSIGN_OR_RETURN(uint64_t format, f->AsUInt("format"));
  if (format > kIndexFormat) {
    return Unsupported(std::string(kind) + " format " + std::to_string(format) +
                       " is newer than this reader (knows up to 1); upgrade DreamDB");
  }
  if (format == 0) return Corrupt(std::string(kind) + ": format 0 is not valid");
  return Status::Ok();
}

Result<uint64_t> UIntKey(const cbor::Map& m, std::string_view key, std::string_view what) {
  ASSIGN_OR_RETURN(const cbor::Value* v, cbor::Require(m, key));
  return v->AsUInt(std::string(what) + "." + std::string(key));
}

Result<uint32_t> U32Key(const cbor::Map& m, std::string_view key, std::string_view what) {
  ASSIGN_OR_RETURN(uint64_t v, UIntKey(m, key, what));
  if (v > UINT32_MAX) return Corrupt(std::string(what) + "." + std::string(key) + " is too large");
  return static_cast<uint32_t>(v);
}

Result<std::string> TextKey(const cbor::Map& m, std::string_view key, std::string_view what) {
  ASSIGN_OR_RETURN(const cbor::Value* v, cbor::Require(m, key));
  ASSIGN_OR_RETURN(std::string_view s, v->AsText(std::string(what) + "." + std::string(key)));
  return std::string(s);
}

Result<std::vector<ObjectId>> IdsKey(const cbor::Map& m, std::string_view key,
                                     std::string_view what) {
  ASSIGN_OR_RETURN(const cbor::Value* v, cbor::Require(m, key));
  const std::string w = std::string(what) + "." + std::string(key);
  ASSIGN_OR_RETURN(const cbor::Array* a, v->AsArray(w));
  std::vector<ObjectId> out;
  out.reserve(a->size());
  for (const auto& e : *a) {
    ASSIGN_OR_RETURN(ObjectId id, cbor::AsId(e, w + "[]"));
    out.push_back(id);
  }
  return out;
}

cbor::Value Ids(const std::vector<ObjectId>& ids) {
  cbor::Array a;
  a.reserve(ids.size());
  for (const auto& id : ids) a.push_back(cbor::IdValue(id));
  return cbor::Value::FromArray(std::move(a));
}

// The framed entry layout shared by buckets (spec/21 §5.1) and node pages (§5.6),
// little-endian:
//   magic | head u32 (cell or first node) | n u32 | anchors u64 x n | seg_tags u64 x n
//   | rows u32 x n | zero pad to a multiple of 8 | len u64 | payload | BLAKE3-16 of all before
Bytes EncodeFramed(std::string_view magic, uint32_t head, const std::vector<uint64_t>& anchors,
                   const std::vector<uint64_t>& seg_tags, const std::vector<uint32_t>& rows,
                   ByteView payload) {
  Bytes out;
  const size_t n = anchors.size();
  out.reserve(8 + 8 + n * 20 + 8 + 8 + payload.size() + 16);
  out.append(magic);
  PutU32(&out, head);
  PutU32(&out, static_cast<uint32_t>(n));
  for (uint64_t a : anchors) PutU64(&out, a);
  for (uint64_t t : seg_tags) PutU64(&out, t);
  for (uint32_t r : rows) PutU32(&out, r);
  while (out.size() % 8 != 0) out.push_back('\0');
  PutU64(&out, payload.size());
  out.append(payload);
  out.append(Sum16(out));
  return out;
}

struct Framed {
  uint32_t head = 0;
  std::vector<uint64_t> anchors;
  std::vector<uint64_t> seg_tags;
  std::vector<uint32_t> rows;
  Bytes payload;
};

Result<Framed> DecodeFramed(ByteView bytes, std::string_view magic, const std::string& what) {
  if (bytes.size() < 8 + 8 + 8 + 16) return Corrupt(what + ": too short");
  if (bytes.substr(0, 6) != magic.substr(0, 6)) return Corrupt(what + ": bad magic");
  if (bytes.substr(0, 8) != magic) {
    return Unsupported(what + " version " + Quote(bytes.substr(6, 2)) +
                       " is newer than this reader (knows 01); upgrade DreamDB");
  }
  ByteView body = bytes.substr(0, bytes.size() - 16);
  if (Sum16(body) != bytes.substr(bytes.size() - 16)) {
    return Corrupt(what + ": checksum mismatch");
  }
  Framed b;
  const char* p = bytes.data();
  b.head = GetU32(p + 8);
  const uint64_t n = GetU32(p + 12);
  uint64_t off = 16;
  uint64_t fixed = n * 20;
  uint64_t padded = (off + fixed + 7) / 8 * 8;
  if (padded + 8 > body.size()) return Corrupt(what + ": entries overrun the object");
  b.anchors.resize(n);
  b.seg_tags.resize(n);
  b.rows.resize(n);
  for (uint64_t i = 0; i < n; ++i) b.anchors[i] = GetU64(p + off + 8 * i);
  off += 8 * n;
  for (uint64_t i = 0; i < n; ++i) b.seg_tags[i] = GetU64(p + off + 8 * i);
  off += 8 * n;
  for (uint64_t i = 0; i < n; ++i) b.rows[i] = GetU32(p + off + 4 * i);
  off += 4 * n;
  for (; off < padded; ++off) {
    if (p[off] != 0) return Corrupt(what + ": non-zero padding");
  }
  uint64_t codes_len = GetU64(p + off);
  off += 8;
  if (codes_len != body.size() - off) {
    return Corrupt(what + ": payload length " + std::to_string(codes_len) + " but " +
                   std::to_string(body.size() - off) + " bytes follow");
  }
  b.payload = Bytes(body.substr(off));
  return b;
}

}  // namespace

Bytes EncodeBucket(const Bucket& b) {
  return EncodeFramed(kBucketMagic, b.cell, b.anchors, b.seg_tags, b.rows, b.codes);
}

Result<Bucket> DecodeBucket(ByteView bytes) {
  ASSIGN_OR_RETURN(Framed f, DecodeFramed(bytes, kBucketMagic, "spatial bucket"));
  Bucket b;
  b.cell = f.head;
  b.anchors = std::move(f.anchors);
  b.seg_tags = std::move(f.seg_tags);
  b.rows = std::move(f.rows);
  b.codes = std::move(f.payload);
  return b;
}

Bytes EncodeNodePage(const NodePage& p) {
  return EncodeFramed(kNodePageMagic, p.first, p.anchors, p.seg_tags, p.rows, p.block);
}

Result<NodePage> DecodeNodePage(ByteView bytes) {
  ASSIGN_OR_RETURN(Framed f, DecodeFramed(bytes, kNodePageMagic, "graph node page"));
  if (f.anchors.empty()) return Corrupt("graph node page: holds no nodes");
  if (uint64_t{f.head} + f.anchors.size() > uint64_t{UINT32_MAX} + 1) {
    return Corrupt("graph node page: node numbers overflow");
  }
  NodePage p;
  p.first = f.head;
  p.anchors = std::move(f.anchors);
  p.seg_tags = std::move(f.seg_tags);
  p.rows = std::move(f.rows);
  p.block = std::move(f.payload);
  return p;
}

uint64_t SegmentTag(const ObjectId& segment) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | segment.digest()[static_cast<size_t>(i)];
  return v;
}

Result<Bytes> EncodeDirPage(const DirPage& p) {
  cbor::Map m;
  m.Set("kind", cbor::Value::Text(std::string(kDirKind)));
  m.Set("format", cbor::Value::UInt(kIndexFormat));
  m.Set("first", cbor::Value::UInt(p.first));
  cbor::Array cells;
  cells.reserve(p.buckets.size());
  for (const auto& c : p.buckets) cells.push_back(Ids(c));
  m.Set("cells", cbor::Value::FromArray(std::move(cells)));
  return cbor::Encode(cbor::Value::FromMap(std::move(m)));
}

Result<DirPage> DecodeDirPage(ByteView bytes) {
  ASSIGN_OR_RETURN(cbor::Value v, cbor::Decode(bytes));
  ASSIGN_OR_RETURN(const cbor::Map* m, v.AsMap("spatial directory page"));
  RETURN_IF_ERROR(CheckKind(*m, kDirKind, "a directory page"));
  DirPage p;
  ASSIGN_OR_RETURN(p.first, U32Key(*m, "first", "spatial_dir"));
  if (p.first % kCellsPerPage != 0) return Corrupt("spatial_dir.first is not a page boundary");
  ASSIGN_OR_RETURN(const cbor::Value* cv, cbor::Require(*m, "cells"));
  ASSIGN_OR_RETURN(const cbor::Array* ca, cv->AsArray("spatial_dir.cells"));
  if (ca->empty() || ca->size() > kCellsPerPage) {
    return Corrupt("spatial_dir.cells must hold 1 to 1024 cells, has " +
                   std::to_string(ca->size()));
  }
  for (const auto& c : *ca) {
    ASSIGN_OR_RETURN(const cbor::Array* ba, c.AsArray("spatial_dir.cells[]"));
    std::vector<ObjectId> ids;
    for (const auto& e : *ba) {
      ASSIGN_OR_RETURN(ObjectId id, cbor::AsId(e, "spatial_dir.cells[][]"));
      ids.push_back(id);
    }
    p.buckets.push_back(std::move(ids));
  }
  return p;
}

Result<Bytes> EncodeIndex(const IndexObject& ix) {
  cbor::Map m;
  m.Set("kind", cbor::Value::Text(std::string(kIndexKind)));
  m.Set("format", cbor::Value::UInt(kIndexFormat));
  m.Set("field", cbor::Value::Text(ix.field));
  m.Set("algorithm", cbor::Value::Text(ix.algorithm));
  m.Set("metric", cbor::Value::Text(ix.metric));
  m.Set("bits", cbor::Value::UInt(ix.bits));
  m.Set("dim", cbor::Value::UInt(ix.dim));
  m.Set("cells", cbor::Value::UInt(ix.cells));
  m.Set("nprobe", cbor::Value::UInt(ix.nprobe));
  m.Set("model", cbor::IdValue(ix.model));
  m.Set("parents", Ids(ix.parents));
  m.Set("pages", Ids(ix.pages));
  m.Set("entries", cbor::Value::UInt(ix.entries));
  m.Set("buckets", cbor::Value::UInt(ix.buckets));
  // Optional keys (spec/21 §4.1): absent for RaBitQ ivf/imi/lsh indexes, so their bytes
  // are those of the first release.
  if (ix.quantizer != "rabitq") m.Set("quantizer", cbor::Value::Text(ix.quantizer));
  if (ix.graph) {
    cbor::Map g;
    g.Set("entry", cbor::Value::UInt(ix.graph->entry));
    g.Set("nodes", cbor::Value::UInt(ix.graph->nodes));
    g.Set("degree", cbor::Value::UInt(ix.graph->degree));
    g.Set("block", cbor::Value::UInt(ix.graph->block));
    g.Set("pages", Ids(ix.graph->pages));
    m.Set("graph", cbor::Value::FromMap(std::move(g)));
  }
  if (ix.calibration) {
    const Calibration& c = *ix.calibration;
    cbor::Map cm;
    cm.Set("k", cbor::Value::UInt(c.k));
    cm.Set("queries", cbor::Value::UInt(c.queries));
    cm.Set("target", cbor::Value::UInt(c.target));
    cm.Set("setting", cbor::Value::UInt(c.setting));
    cbor::Array curve;
    for (const auto& [setting, recall] : c.curve) {
      cbor::Array point;
      point.push_back(cbor::Value::UInt(setting));
      point.push_back(cbor::Value::UInt(recall));
      curve.push_back(cbor::Value::FromArray(std::move(point)));
    }
    cm.Set("curve", cbor::Value::FromArray(std::move(curve)));
    m.Set("calibration", cbor::Value::FromMap(std::move(cm)));
  }
  return cbor::Encode(cbor::Value::FromMap(std::move(m)));
}

namespace {

// The `calibration` map of an index object (spec/21 §4.6).
Result<Calibration> DecodeCalibration(const cbor::Value& v) {
  const std::string_view w = "spatial_index.calibration";
  ASSIGN_OR_RETURN(const cbor::Map* m, v.AsMap(w));
  for (const auto& [key, value] : m->entries()) {
    (void)value;
    if (key != "k" && key != "queries" && key != "target" && key != "setting" && key != "curve") {
      return Corrupt("spatial_index.calibration has an unknown key " + Quote(key));
    }
  }
  Calibration c;
  ASSIGN_OR_RETURN(c.k, U32Key(*m, "k", w));
  ASSIGN_OR_RETURN(c.queries, U32Key(*m, "queries", w));
  ASSIGN_OR_RETURN(c.target, U32Key(*m, "target", w));
  ASSIGN_OR_RETURN(c.setting, U32Key(*m, "setting", w));
  ASSIGN_OR_RETURN(const cbor::Value* cv, cbor::Require(*m, "curve"));
  ASSIGN_OR_RETURN(const cbor::Array* curve, cv->AsArray("spatial_index.calibration.curve"));
  for (const auto& pv : *curve) {
    ASSIGN_OR_RETURN(const cbor::Array* point, pv.AsArray("spatial_index.calibration.curve[]"));
    if (point->size() != 2) {
      return Corrupt("spatial_index.calibration.curve: a point must be [setting, recall]");
    }
    ASSIGN_OR_RETURN(uint64_t setting, (*point)[0].AsUInt("spatial_index.calibration.curve[0]"));
    ASSIGN_OR_RETURN(uint64_t recall, (*point)[1].AsUInt("spatial_index.calibration.curve[1]"));
    if (setting == 0 || setting > UINT32_MAX || recall > 10000 ||
        (!c.curve.empty() && setting <= c.curve.back().first)) {
      return Corrupt(
          "spatial_index.calibration.curve: settings must ascend from 1 and recalls be at most "
          "10000");
    }
    c.curve.emplace_back(static_cast<uint32_t>(setting), static_cast<uint32_t>(recall));
  }
  if (c.k == 0 || c.queries == 0 || c.target > 10000 || c.curve.empty() ||
      std::none_of(c.curve.begin(), c.curve.end(),
                   [&](const auto& p) { return p.first == c.setting; })) {
    return Corrupt(
        "spatial_index.calibration: k and queries must be at least 1, target at most 10000, and "
        "the setting a point of a non-empty curve");
  }
  return c;
}

}  // namespace

Result<IndexObject> DecodeIndex(ByteView bytes) {
  ASSIGN_OR_RETURN(cbor::Value v, cbor::Decode(bytes));
  ASSIGN_OR_RETURN(const cbor::Map* m, v.AsMap("spatial index"));
  RETURN_IF_ERROR(CheckKind(*m, kIndexKind, "an index"));
  IndexObject ix;
  const std::string_view w = "spatial_index";
  ASSIGN_OR_RETURN(ix.field, TextKey(*m, "field", w));
  ASSIGN_OR_RETURN(ix.algorithm, TextKey(*m, "algorithm", w));
  if (!ParseIndexAlgorithm(ix.algorithm).ok()) {
    return Unsupported("spatial index algorithm " + Quote(ix.algorithm) +
                       " is not supported by this reader (written by a newer DreamDB?)");
  }
  ASSIGN_OR_RETURN(ix.metric, TextKey(*m, "metric", w));
  if (!IsCanonicalMetricName(ix.metric)) {
    return Unsupported("spatial index metric " + Quote(ix.metric) + " is unknown");
  }
  ASSIGN_OR_RETURN(ix.bits, U32Key(*m, "bits", w));
  ASSIGN_OR_RETURN(ix.dim, U32Key(*m, "dim", w));
  ASSIGN_OR_RETURN(ix.cells, U32Key(*m, "cells", w));
  ASSIGN_OR_RETURN(ix.nprobe, U32Key(*m, "nprobe", w));
  if (ix.bits < 1 || ix.bits > 8 || ix.dim == 0 || ix.cells == 0) {
    return Corrupt("spatial_index: bits must be 1..8, dim and cells >= 1");
  }
  ASSIGN_OR_RETURN(const cbor::Value* mv, cbor::Require(*m, "model"));
  ASSIGN_OR_RETURN(ix.model, cbor::AsId(*mv, "spatial_index.model"));
  ASSIGN_OR_RETURN(ix.parents, IdsKey(*m, "parents", w));
  if (ix.parents.size() > 1) return Corrupt("spatial_index.parents has more than one id");
  ASSIGN_OR_RETURN(ix.pages, IdsKey(*m, "pages", w));
  if (ix.pages.size() != (uint64_t{ix.cells} + kCellsPerPage - 1) / kCellsPerPage) {
    return Corrupt("spatial_index: " + std::to_string(ix.pages.size()) + " directory pages for " +
                   std::to_string(ix.cells) + " cells");
  }
  ASSIGN_OR_RETURN(ix.entries, UIntKey(*m, "entries", w));
  ASSIGN_OR_RETURN(ix.buckets, UIntKey(*m, "buckets", w));
  if (const cbor::Value* qv = m->Find("quantizer")) {
    ASSIGN_OR_RETURN(std::string_view q, qv->AsText("spatial_index.quantizer"));
    if (q == "rabitq") {
      return Corrupt("spatial_index.quantizer \"rabitq\" is the default and must be omitted");
    }
    if (q != "pq4") {
      return Unsupported("spatial index quantizer " + Quote(q) +
                         " is not supported by this reader (written by a newer DreamDB?)");
    }
    if (ix.algorithm == "graph") return Corrupt("spatial_index: a graph index cannot use pq4");
    ix.quantizer = std::string(q);
  }
  const cbor::Value* gv = m->Find("graph");
  if ((gv != nullptr) != (ix.algorithm == "graph")) {
    return Corrupt(gv != nullptr ? "spatial_index.graph on a " + Quote(ix.algorithm) + " index"
                                 : std::string("spatial_index: a graph index lacks its graph map"));
  }
  if (gv != nullptr) {
    ASSIGN_OR_RETURN(const cbor::Map* gm, gv->AsMap("spatial_index.graph"));
    const std::string_view gw = "spatial_index.graph";
    for (const auto& [key, value] : gm->entries()) {
      (void)value;
      if (key != "entry" && key != "nodes" && key != "degree" && key != "block" && key != "pages") {
        return Corrupt("spatial_index.graph has an unknown key " + Quote(key));
      }
    }
    GraphInfo g;
    ASSIGN_OR_RETURN(g.entry, U32Key(*gm, "entry", gw));
    ASSIGN_OR_RETURN(g.nodes, UIntKey(*gm, "nodes", gw));
    ASSIGN_OR_RETURN(g.degree, U32Key(*gm, "degree", gw));
    ASSIGN_OR_RETURN(g.block, U32Key(*gm, "block", gw));
    ASSIGN_OR_RETURN(g.pages, IdsKey(*gm, "pages", gw));
    if (ix.cells != 1) return Corrupt("spatial_index: a graph index must have 1 cell");
    if (g.nodes == 0 || g.nodes > UINT32_MAX || g.entry >= g.nodes) {
      return Corrupt("spatial_index.graph: entry " + std::to_string(g.entry) + " of " +
                     std::to_string(g.nodes) + " nodes");
    }
    if (g.degree < 4 || g.degree > 256) {
      return Corrupt("spatial_index.graph.degree " + std::to_string(g.degree) +
                     " is outside 4..256");
    }
    if (g.block < 16 || g.block > 4096 || (g.block & (g.block - 1)) != 0) {
      return Corrupt("spatial_index.graph.block " + std::to_string(g.block) +
                     " is not a power of two in 16..4096");
    }
    if (g.pages.size() != (g.nodes + g.block - 1) / g.block) {
      return Corrupt("spatial_index.graph: " + std::to_string(g.pages.size()) + " node pages for " +
                     std::to_string(g.nodes) + " nodes of " + std::to_string(g.block) + " a page");
    }
    ix.graph = std::move(g);
  }
  if (const cbor::Value* cv = m->Find("calibration")) {
    ASSIGN_OR_RETURN(Calibration c, DecodeCalibration(*cv));
    ix.calibration = std::move(c);
  }
  return ix;
}

uint32_t PickSetting(const Calibration& c, double target) {
  const double margin = std::min(0.01, (1.0 - target) / 2);
  const double need = std::min(1.0, target + margin) * 10000.0;
  for (const auto& [setting, recall] : c.curve) {
    if (recall >= need - 1e-9) return setting;
  }
  return c.curve.empty() ? 0 : c.curve.back().first;
}

namespace {
constexpr uint64_t kObjectBytes = uint64_t{256} << 20;
constexpr uint64_t kLiveBytes = uint64_t{64} << 20;
constexpr uint64_t kRowBytes = uint64_t{256} << 20;
}  // namespace

std::shared_ptr<ObjectCache> NewObjectCache() {
  return std::make_shared<ObjectCache>(kObjectBytes, kLiveBytes, kRowBytes);
}

std::shared_ptr<ObjectCache> ObjectCache::ForStore(std::string_view store_identity) {
  static const auto shared = std::make_shared<Lrus>(kObjectBytes, kLiveBytes, kRowBytes);
  return std::shared_ptr<ObjectCache>(new ObjectCache(shared, StoreScope(store_identity)));
}

}  // namespace dreamdb::vindex
