// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Object hashing: BLAKE3-256 (ObjectId::Of, what every put and verified get pays) against
// OpenSSL SHA-256 through EVP (SHA-NI when the CPU has it), on the same buffers of 4 KiB,
// 64 KiB, 1 MiB and 16 MiB, single-threaded. Reports bytes/s; the ratio goes to RESULTS.md.

#include <benchmark/benchmark.h>
#include <openssl/evp.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "dreamdb/object_id.h"

namespace {

// Deterministic pseudo-random bytes (splitmix64).
std::string MakeBuffer(size_t size) {
  std::string out(size, '\0');
  uint64_t x = 1;
  for (size_t i = 0; i < size; i += 8) {
    x += 0x9e3779b97f4a7c15ull;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    std::memcpy(out.data() + i, &z, std::min<size_t>(8, size - i));
  }
  return out;
}

void BM_Blake3(benchmark::State& state) {
  const std::string buffer = MakeBuffer(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    dreamdb::ObjectId id = dreamdb::ObjectId::Of(buffer);
    benchmark::DoNotOptimize(id);
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
}

void BM_Sha256(benchmark::State& state) {
  const std::string buffer = MakeBuffer(static_cast<size_t>(state.range(0)));
  EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);  // fetched once, as a real caller would
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (md == nullptr || ctx == nullptr) {
    state.SkipWithError("OpenSSL SHA-256 unavailable");
  } else {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    for (auto _ : state) {
      if (EVP_DigestInit_ex(ctx, md, nullptr) != 1 ||
          EVP_DigestUpdate(ctx, buffer.data(), buffer.size()) != 1 ||
          EVP_DigestFinal_ex(ctx, digest, &length) != 1) {
        state.SkipWithError("EVP digest failed");
        break;
      }
      benchmark::DoNotOptimize(digest);
    }
    state.SetBytesProcessed(state.iterations() * state.range(0));
  }
  EVP_MD_CTX_free(ctx);
  EVP_MD_free(md);
}

void Sizes(benchmark::internal::Benchmark* b) {
  b->Arg(4 << 10)->Arg(64 << 10)->Arg(1 << 20)->Arg(16 << 20);
}

BENCHMARK(BM_Blake3)->Apply(Sizes);
BENCHMARK(BM_Sha256)->Apply(Sizes);

}  // namespace

BENCHMARK_MAIN();
