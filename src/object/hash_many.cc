// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
#include "src/object/hash_many.h"

#include <algorithm>
#include <cstddef>
#include <vector>

// From the BLAKE3 C sources' blake3_impl.h (a C header with static definitions, not for
// C++): the SIMD-dispatched kernel that hashes `num_inputs` inputs of `blocks` 64-byte
// blocks each side by side, writing one 32-byte chaining value per input to `out`.
extern "C" void blake3_hash_many(const uint8_t* const* inputs, size_t num_inputs, size_t blocks,
                                 const uint32_t key[8], uint64_t counter, bool increment_counter,
                                 uint8_t flags, uint8_t flags_start, uint8_t flags_end,
                                 uint8_t* out);

namespace dreamdb {
namespace {

// BLAKE3's IV and domain flags (the BLAKE3 specification, §2.1 and Table 3).
constexpr uint32_t kIv[8] = {0x6A09E667UL, 0xBB67AE85UL, 0x3C6EF372UL, 0xA54FF53AUL,
                             0x510E527FUL, 0x9B05688CUL, 0x1F83D9ABUL, 0x5BE0CD19UL};
constexpr uint8_t kChunkStart = 1 << 0;
constexpr uint8_t kChunkEnd = 1 << 1;
constexpr uint8_t kRoot = 1 << 3;
constexpr size_t kBlockLen = 64;
constexpr size_t kChunkLen = 1024;
constexpr size_t kBatch = 64;  // inputs per kernel call (bounds the pointer array)

}  // namespace

void Blake3Many(std::span<const ByteView> inputs, std::span<Digest> out) {
  // Indices of the inputs that fill whole blocks of one chunk, grouped by length. A whole
  // message of one chunk is its root: its chunk's last compression, flagged ROOT, gives
  // the digest as its chaining value (counter 0, key = IV).
  std::vector<size_t> order;
  order.reserve(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const size_t n = inputs[i].size();
    if (n == 0 || n > kChunkLen || n % kBlockLen != 0) {
      out[i] = ObjectId::Of(inputs[i]).digest();
    } else {
      order.push_back(i);
    }
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return inputs[a].size() < inputs[b].size(); });
  const uint8_t* ptrs[kBatch];
  uint8_t cvs[kBatch * ObjectId::kDigestSize];
  for (size_t g = 0; g < order.size();) {
    const size_t len = inputs[order[g]].size();
    size_t count = 0;
    while (g + count < order.size() && count < kBatch && inputs[order[g + count]].size() == len) {
      ptrs[count] = reinterpret_cast<const uint8_t*>(inputs[order[g + count]].data());
      ++count;
    }
    blake3_hash_many(ptrs, count, len / kBlockLen, kIv, /*counter=*/0, /*increment_counter=*/false,
                     /*flags=*/0, kChunkStart, kChunkEnd | kRoot, cvs);
    for (size_t k = 0; k < count; ++k) {
      std::copy_n(cvs + k * ObjectId::kDigestSize, ObjectId::kDigestSize,
                  out[order[g + k]].begin());
    }
    g += count;
  }
}

}  // namespace dreamdb
