// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// SIMD levels for the vector tests. The tests check every level this CPU runs against the
// scalar reference, and say plainly which levels they could not run, so the suite passes
// on any x86-64-v2 machine (with or without AVX2 and AVX-512).
//
// DREAMDB_TEST_CPU_SIMD=scalar|avx2 makes a test process act as on a CPU whose best level
// is that one (CapCpuSimdLevelForTesting), before main(): ctest runs the vector tests so
// (index_simd_cpu_*) to prove they pass on machines without AVX-512 or without AVX2.
//
// Thread safety: call from the test thread.

#ifndef DREAMDB_SRC_INDEX_KERNELS_SIMD_TEST_UTIL_H_
#define DREAMDB_SRC_INDEX_KERNELS_SIMD_TEST_UTIL_H_

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "src/index/kernels/distance.h"

namespace dreamdb::vector::testing {

inline SimdLevel ApplyTestCpuCap() {
  const char* env = std::getenv("DREAMDB_TEST_CPU_SIMD");  // NOLINT(concurrency-mt-unsafe)
  const std::string_view v = env == nullptr ? "" : env;
  if (v == "scalar") return CapCpuSimdLevelForTesting(SimdLevel::kScalar);
  if (v == "avx2") return CapCpuSimdLevelForTesting(SimdLevel::kAvx2);
  return CpuSimdLevel();
}

// Applied once per test process, before any test runs.
inline const SimdLevel kTestCpuLevel = ApplyTestCpuCap();

// Every level this CPU runs, scalar first. The first call prints which levels the tests
// check against the scalar reference and which they cannot run here (and why), e.g.
//   [   SIMD   ] checked against scalar: scalar avx2; not run: avx512 (this CPU lacks it)
inline std::vector<SimdLevel> TestableLevels() {
  std::vector<SimdLevel> run, not_run;
  for (SimdLevel l : {SimdLevel::kScalar, SimdLevel::kAvx2, SimdLevel::kAvx512}) {
    (l <= CpuSimdLevel() ? run : not_run).push_back(l);
  }
  static const bool said = [&] {
    std::string line = "[   SIMD   ] checked against scalar:";
    for (SimdLevel l : run) line += " " + std::string(SimdLevelName(l));
    if (!not_run.empty()) {
      line += "; not run:";
      for (SimdLevel l : not_run) line += " " + std::string(SimdLevelName(l));
      line += DetectedSimdLevel() > CpuSimdLevel()
                  ? " (DREAMDB_TEST_CPU_SIMD simulates a CPU without them)"
                  : " (this CPU lacks them)";
    }
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
    return true;
  }();
  (void)said;
  return run;
}

}  // namespace dreamdb::vector::testing

#endif  // DREAMDB_SRC_INDEX_KERNELS_SIMD_TEST_UTIL_H_
