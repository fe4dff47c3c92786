// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Spatial-index objects: buckets, directory pages, index objects (spec/21-spatial-index.md
// §3-§5), and the per-handle object cache.
#include <cstring>

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

}  // namespace

uint64_t SegmentTag(const ObjectId& segment) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | segment.digest()[static_cast<size_t>(i)];
  return v;
}

// Layout (spec/21 §5.1), little-endian:
//   magic "DDBSPB01" | cell u32 | n u32 | anchors u64 x n | seg_tags u64 x n | rows u32 x n
//   | zero pad to a multiple of 8 | codes_len u64 | codes | sum: BLAKE3-16 of all before
Bytes EncodeBucket(const Bucket& b) {
  Bytes out;
  const size_t n = b.anchors.size();
  out.reserve(8 + 8 + n * 20 + 8 + 8 + b.codes.size() + 16);
  out.append(kBucketMagic);
  PutU32(&out, b.cell);
  PutU32(&out, static_cast<uint32_t>(n));
  for (uint64_t a : b.anchors) PutU64(&out, a);
  for (uint64_t t : b.seg_tags) PutU64(&out, t);
  for (uint32_t r : b.rows) PutU32(&out, r);
  while (out.size() % 8 != 0) out.push_back('\0');
  PutU64(&out, b.codes.size());
  out.append(b.codes);
  out.append(Sum16(out));
  return out;
}

Result<Bucket> DecodeBucket(ByteView bytes) {
  if (bytes.size() < 8 + 8 + 8 + 16) return Corrupt("spatial bucket: too short");
  if (bytes.substr(0, 6) != kBucketMagic.substr(0, 6)) {
    return Corrupt("spatial bucket: bad magic");
  }
  if (bytes.substr(0, 8) != kBucketMagic) {
    return Unsupported("spatial bucket version " + Quote(bytes.substr(6, 2)) +
                       " is newer than this reader (knows 01); upgrade DreamDB");
  }
  ByteView body = bytes.substr(0, bytes.size() - 16);
  if (Sum16(body) != bytes.substr(bytes.size() - 16)) {
    return Corrupt("spatial bucket: checksum mismatch");
  }
  Bucket b;
  const char* p = bytes.data();
  b.cell = GetU32(p + 8);
  const uint64_t n = GetU32(p + 12);
  uint64_t off = 16;
  uint64_t fixed = n * 20;
  uint64_t padded = (off + fixed + 7) / 8 * 8;
  if (padded + 8 > body.size()) return Corrupt("spatial bucket: entries overrun the object");
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
    if (p[off] != 0) return Corrupt("spatial bucket: non-zero padding");
  }
  uint64_t codes_len = GetU64(p + off);
  off += 8;
  if (codes_len != body.size() - off) {
    return Corrupt("spatial bucket: codes length " + std::to_string(codes_len) + " but " +
                   std::to_string(body.size() - off) + " bytes follow");
  }
  b.codes = Bytes(body.substr(off));
  return b;
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
  return cbor::Encode(cbor::Value::FromMap(std::move(m)));
}

Result<IndexObject> DecodeIndex(ByteView bytes) {
  ASSIGN_OR_RETURN(cbor::Value v, cbor::Decode(bytes));
  ASSIGN_OR_RETURN(const cbor::Map* m, v.AsMap("spatial index"));
  RETURN_IF_ERROR(CheckKind(*m, kIndexKind, "an index"));
  IndexObject ix;
  const std::string_view w = "spatial_index";
  ASSIGN_OR_RETURN(ix.field, TextKey(*m, "field", w));
  ASSIGN_OR_RETURN(ix.algorithm, TextKey(*m, "algorithm", w));
  if (ix.algorithm != "ivf" && ix.algorithm != "imi" && ix.algorithm != "lsh") {
    return Unsupported("spatial index algorithm " + Quote(ix.algorithm) +
                       " is not supported by this reader (written by a newer DreamDB?)");
  }
  ASSIGN_OR_RETURN(ix.metric, TextKey(*m, "metric", w));
  if (ix.metric != "cosine" && ix.metric != "ip" && ix.metric != "l2") {
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
  return ix;
}

std::shared_ptr<const void> ObjectCache::Get(const ObjectId& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = map_.find(id);
  if (it == map_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->value;
}

void ObjectCache::Insert(const ObjectId& id, std::shared_ptr<const void> value, uint64_t bytes) {
  if (bytes > capacity_ / 2) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (map_.count(id) != 0) return;
  lru_.push_front(Item{id, std::move(value), bytes});
  map_[id] = lru_.begin();
  size_ += bytes;
  while (size_ > capacity_ && !lru_.empty()) {
    size_ -= lru_.back().bytes;
    map_.erase(lru_.back().id);
    lru_.pop_back();
  }
}

std::shared_ptr<ObjectCache> NewObjectCache() {
  return std::make_shared<ObjectCache>(uint64_t{256} << 20);
}

}  // namespace dreamdb::vindex
