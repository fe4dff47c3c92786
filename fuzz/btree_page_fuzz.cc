// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Fuzzes the strict page and IndexRef decoders (spec/11-anchor-index.md §3): no input may
// crash, and every accepted page must re-encode to exactly the input bytes (the format
// is canonical) and satisfy the page invariants.

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "src/btree/btree.h"
#include "src/btree/page.h"
#include "src/cbor/cbor.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dreamdb;
  const ByteView input(reinterpret_cast<const char*>(data), size);
  auto page = btree::DecodePage(input, "fuzz");
  if (page.ok()) {
    Result<Bytes> again =
        page->is_leaf() ? btree::EncodeLeaf(page->leaf()) : btree::EncodeNode(page->node());
    if (!again.ok() || *again != input) std::abort();
  }
  auto value = cbor::Decode(input);
  if (value.ok()) {
    auto ref = btree::IndexRefFromCbor(*value, "fuzz");
    if (ref.ok()) {
      auto again = cbor::Encode(btree::IndexRefToCbor(*ref));
      if (!again.ok() || *again != input) std::abort();
    }
  }
  return 0;
}
