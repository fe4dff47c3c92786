// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// DCHECK(cond): a debug-build assertion of an invariant the code relies on (a caller's
// REQUIRES, a layout the comments state). In builds without NDEBUG (the dev preset: Debug +
// ASan + UBSan, which CI runs the tests under) a false condition prints the file, line and
// condition to stderr and aborts; in release builds (NDEBUG) it compiles to nothing and the
// condition is not evaluated, so it must have no side effects.
//
// Not for input validation: bad input is an error value (Status), never a DCHECK.
//
// Thread safety: the failure path writes to stderr and aborts; nothing else is shared.

#ifndef DREAMDB_SRC_BASE_CHECK_H_
#define DREAMDB_SRC_BASE_CHECK_H_

#include <cstdio>
#include <cstdlib>

namespace dreamdb::internal {

[[noreturn]] inline void DcheckFailed(const char* file, int line, const char* condition) {
  std::fprintf(stderr, "%s:%d: DCHECK failed: %s\n", file, line, condition);
  std::fflush(stderr);
  std::abort();
}

}  // namespace dreamdb::internal

#ifdef NDEBUG
#define DCHECK(condition) \
  do {                    \
    if (false) {          \
      (void)(condition);  \
    }                     \
  } while (false)
#else
#define DCHECK(condition)                                                \
  do {                                                                   \
    if (!(condition)) {                                                  \
      ::dreamdb::internal::DcheckFailed(__FILE__, __LINE__, #condition); \
    }                                                                    \
  } while (false)
#endif

#endif  // DREAMDB_SRC_BASE_CHECK_H_
