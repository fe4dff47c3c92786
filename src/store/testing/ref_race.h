// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Multi-process ref races for backends that claim cross-process safety (file://, s3://;
// spec/05-backend.md §10.2): 16 forked processes swap one ref from the same expected
// target, round after round, behind a pipe barrier; every round must have exactly one
// winner and 15 conflicts, and the successful swaps form one chain.
//
// Thread safety: call from the test's main thread only (it forks).

#ifndef DREAMDB_SRC_STORE_TESTING_REF_RACE_H_
#define DREAMDB_SRC_STORE_TESTING_REF_RACE_H_

#include <string>
#include <string_view>

namespace dreamdb {

// Runs `rounds` rounds of the 16-process race on a ref of the store at `uri` (which each
// child opens itself). Reports failures through GoogleTest.
void RaceOnOneRef(const std::string& uri, int rounds);

// Pipe helpers: write all of `data`; read exactly n bytes (false on EOF or error).
bool WriteAll(int fd, std::string_view data);
bool ReadExactly(int fd, size_t n, std::string* out);

}  // namespace dreamdb

#endif  // DREAMDB_SRC_STORE_TESTING_REF_RACE_H_
