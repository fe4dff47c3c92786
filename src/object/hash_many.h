// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// BLAKE3-256 of many small inputs at once (spec/04-object-ids.md: the same digests as
// ObjectId::Of). A reader that verifies many checksum blocks (a random take checks one
// 256-byte block per value) hashes them side by side with the SIMD kernel the CPU has
// (16 inputs at a time with AVX-512, 8 with AVX2, 4 with SSE4.1) instead of one by one:
// one input of one BLAKE3 chunk or less is a short sequence of dependent compressions,
// which a single input cannot spread over SIMD lanes.
//
// Thread safety: pure functions.

#ifndef DREAMDB_SRC_OBJECT_HASH_MANY_H_
#define DREAMDB_SRC_OBJECT_HASH_MANY_H_

#include <array>
#include <cstdint>
#include <span>

#include "dreamdb/object_id.h"

namespace dreamdb {

using Digest = std::array<uint8_t, ObjectId::kDigestSize>;

// out[i] = ObjectId::Of(inputs[i]).digest() for every i. REQUIRES: out.size() ==
// inputs.size(). Inputs whose length is a positive multiple of 64 bytes up to 1,024 are
// hashed together with others of the same length; any other input alone.
void Blake3Many(std::span<const ByteView> inputs, std::span<Digest> out);

}  // namespace dreamdb

#endif  // DREAMDB_SRC_OBJECT_HASH_MANY_H_
