// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Implements spec/04-object-ids.md.
#include "dreamdb/object_id.h"

#include <blake3.h>

#include <cstring>

#include "src/base/encoding.h"

namespace dreamdb {

ObjectId ObjectId::Of(ByteView data) {
  blake3_hasher h;
  blake3_hasher_init(&h);
  blake3_hasher_update(&h, data.data(), data.size());
  std::array<uint8_t, kDigestSize> d;
  blake3_hasher_finalize(&h, d.data(), d.size());
  return FromDigest(d);
}

ObjectId ObjectId::FromDigest(const std::array<uint8_t, kDigestSize>& digest) {
  ObjectId id;
  id.digest_ = digest;
  return id;
}

bool ObjectId::is_null() const {
  for (uint8_t b : digest_) {
    if (b != 0) return false;
  }
  return true;
}

Bytes ObjectId::ToBinary() const {
  Bytes out;
  out.reserve(kBinarySize);
  out.push_back(static_cast<char>(kBlake3Code));
  out.push_back(static_cast<char>(kDigestSize));
  out.append(reinterpret_cast<const char*>(digest_.data()), digest_.size());
  return out;
}

std::string ObjectId::ToString() const { return "b" + Base32Encode(ToBinary()); }

std::string ObjectId::ShardPrefix() const {
  return HexEncode(std::string_view(reinterpret_cast<const char*>(digest_.data()), 1));
}

Result<ObjectId> ObjectId::FromBinary(ByteView binary) {
  if (binary.size() < 2) {
    return Corrupt("object id: multihash of " + std::to_string(binary.size()) +
                   " bytes is too short");
  }
  auto code = static_cast<uint8_t>(binary[0]);
  auto len = static_cast<uint8_t>(binary[1]);
  if (code >= 0x80 || len >= 0x80) {
    // Multi-byte varints would only encode codes/lengths we do not support.
    return Unsupported("object id: multihash code/length varint beyond one byte");
  }
  if (code != kBlake3Code) {
    return Unsupported("object id: unsupported multihash code 0x" + HexEncode(binary.substr(0, 1)) +
                       " (only blake3 0x1e is supported)");
  }
  if (len != kDigestSize || binary.size() != kBinarySize) {
    return Corrupt("object id: blake3 multihash must be 34 bytes (1e 20 + 32-byte digest), got " +
                   std::to_string(binary.size()) + " bytes with length byte " +
                   std::to_string(len));
  }
  std::array<uint8_t, kDigestSize> d;
  std::memcpy(d.data(), binary.data() + 2, kDigestSize);
  return FromDigest(d);
}

Result<ObjectId> ObjectId::Parse(std::string_view text) {
  if (text.empty()) return InvalidArgument("object id: empty");
  if (text[0] != 'b') {
    return InvalidArgument("object id " + Quote(text) +
                           ": must start with multibase prefix 'b' (base32 lowercase)");
  }
  if (text.size() != kTextSize) {
    return InvalidArgument("object id " + Quote(text) + ": expected " + std::to_string(kTextSize) +
                           " characters, got " + std::to_string(text.size()));
  }
  auto bin = Base32Decode(text.substr(1));
  if (!bin) {
    return InvalidArgument("object id " + Quote(text) +
                           ": not lowercase unpadded base32 (alphabet a-z2-7)");
  }
  auto id = FromBinary(*bin);
  if (!id.ok()) {
    return Status(id.status().code() == StatusCode::kCorrupt ? StatusCode::kInvalidArgument
                                                             : id.status().code(),
                  "object id " + Quote(text) + ": " + id.status().message());
  }
  return id;
}

struct Hasher::Impl {
  blake3_hasher h;
};

Hasher::Hasher() : impl_(std::make_unique<Impl>()) { blake3_hasher_init(&impl_->h); }
Hasher::~Hasher() = default;
void Hasher::Update(ByteView data) { blake3_hasher_update(&impl_->h, data.data(), data.size()); }
ObjectId Hasher::Finish() {
  std::array<uint8_t, ObjectId::kDigestSize> d;
  blake3_hasher_finalize(&impl_->h, d.data(), d.size());
  return ObjectId::FromDigest(d);
}

}  // namespace dreamdb
