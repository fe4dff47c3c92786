// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// ObjectId: the address of an immutable object (spec/04-object-ids.md).
//
// An id is a multihash: one varint hash code, one varint digest length, the digest. The
// only code defined today is BLAKE3-256 (code 0x1e, 32-byte digest: bytes `1e 20 ...`).
// The text form is multibase base32: the letter 'b' followed by the lowercase RFC 4648
// base32 alphabet without padding, 56 characters for a BLAKE3-256 id. The text form is
// stable and is what users see, type and store in refs.
//
// Thread safety: ObjectId is an immutable value type. Hasher is not thread-safe; use one
// per thread.

#ifndef DREAMDB_OBJECT_ID_H_
#define DREAMDB_OBJECT_ID_H_

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "dreamdb/status.h"

namespace dreamdb {

// Owned bytes and borrowed byte views. std::string is used as a byte buffer throughout
// the core (as in LevelDB); it may hold any bytes including NUL.
using Bytes = std::string;
using ByteView = std::string_view;

class ObjectId {
 public:
  static constexpr uint8_t kBlake3Code = 0x1e;
  static constexpr size_t kDigestSize = 32;
  static constexpr size_t kBinarySize = 2 + kDigestSize;  // multihash bytes
  static constexpr size_t kTextSize = 56;                 // 'b' + 55 base32 chars

  // The all-zero id is "null": never the id of an object. Default-constructed ids are null.
  ObjectId() = default;

  // BLAKE3-256 of `data`.
  static ObjectId Of(ByteView data);

  // Parses the text form. kInvalidArgument (naming the problem) on anything else.
  static Result<ObjectId> Parse(std::string_view text);
  // Parses the binary multihash form (34 bytes). kCorrupt if malformed, kUnsupported
  // for a well-formed multihash with an unknown hash code.
  static Result<ObjectId> FromBinary(ByteView binary);
  // Wraps a BLAKE3-256 digest.
  static ObjectId FromDigest(const std::array<uint8_t, kDigestSize>& digest);

  bool is_null() const;
  std::string ToString() const;  // text form
  Bytes ToBinary() const;        // multihash bytes, kBinarySize long
  const std::array<uint8_t, kDigestSize>& digest() const { return digest_; }
  // Lowercase hex of the first digest byte: "00".."ff". Used to fan out object paths and
  // to shard object listings across workers.
  std::string ShardPrefix() const;

  // True when `data` hashes to this id.
  bool Matches(ByteView data) const { return Of(data) == *this; }

  auto operator<=>(const ObjectId&) const = default;
  bool operator==(const ObjectId&) const = default;

 private:
  std::array<uint8_t, kDigestSize> digest_{};
};

// Incremental BLAKE3-256, for objects too large to hold at once.
class Hasher {
 public:
  Hasher();
  ~Hasher();
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;
  void Update(ByteView data);
  ObjectId Finish();  // may be called once

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dreamdb

template <>
struct std::hash<dreamdb::ObjectId> {
  size_t operator()(const dreamdb::ObjectId& id) const noexcept {
    size_t h;
    static_assert(sizeof(h) <= dreamdb::ObjectId::kDigestSize);
    __builtin_memcpy(&h, id.digest().data(), sizeof(h));
    return h;
  }
};

#endif  // DREAMDB_OBJECT_ID_H_
