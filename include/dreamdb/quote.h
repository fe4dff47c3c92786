// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Quoting user-supplied text in messages, the one way the library, the CLI and the Python
// package all do it. Pure function; thread-safe.

#ifndef DREAMDB_QUOTE_H_
#define DREAMDB_QUOTE_H_

#include <cstddef>
#include <string>
#include <string_view>

namespace dreamdb {

// Quotes `s` for an error message: printable ASCII kept, everything else \xNN, and long
// inputs cut to `max_chars` with "...".
std::string Quote(std::string_view s, size_t max_chars = 80);

}  // namespace dreamdb

#endif  // DREAMDB_QUOTE_H_
