// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Text encodings of bytes used by the protocol: lowercase hex and RFC 4648 base32
// (lowercase alphabet, no padding). Pure functions; thread-safe.

#ifndef DREAMDB_SRC_BASE_ENCODING_H_
#define DREAMDB_SRC_BASE_ENCODING_H_

#include <optional>
#include <string>
#include <string_view>

#include "dreamdb/quote.h"  // Quote(), public for the CLI and Python

namespace dreamdb {

std::string HexEncode(std::string_view bytes);
// nullopt unless `text` is an even number of lowercase hex digits.
std::optional<std::string> HexDecode(std::string_view text);

std::string Base32Encode(std::string_view bytes);
// nullopt unless `text` is lowercase unpadded base32 whose unused trailing bits are zero
// (so that every byte string has exactly one accepted text form).
std::optional<std::string> Base32Decode(std::string_view text);

}  // namespace dreamdb

#endif  // DREAMDB_SRC_BASE_ENCODING_H_
