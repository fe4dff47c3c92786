// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Internals of CompareRefs (include/dreamdb/compare.h), exposed for tests: value
// equality between columns, cosine similarity and the bounded median sample.
//
// Thread safety: MedianSample is a value type, not thread-safe; the functions are pure.

#ifndef DREAMDB_SRC_DATASET_COMPARE_H_
#define DREAMDB_SRC_DATASET_COMPARE_H_

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "dreamdb/column.h"

namespace dreamdb::compare {

// True when row `ra` of `a` and row `rb` of `b` hold equal values (both valid).
// Floats compare by value, with NaN equal to NaN (and -0 equal to 0); everything else
// compares bytes. REQUIRES: same type and shape, both rows valid.
bool ValuesEqual(const Column& a, uint64_t ra, const Column& b, uint64_t rb);

// Cosine similarity in double precision: 1 for two zero vectors, 0 for one.
double Cosine(std::span<const float> a, std::span<const float> b);

// The median of a stream of doubles in bounded memory: exact for up to `cap` values,
// then a uniform reservoir of `cap` values (Algorithm R) driven by a fixed splitmix64
// sequence, so the same input always gives the same answer.
class MedianSample {
 public:
  explicit MedianSample(uint64_t cap) : cap_(cap == 0 ? 1 : cap) {}
  void Add(double v);
  uint64_t seen() const { return seen_; }
  bool approximate() const { return seen_ > cap_; }
  // nullopt when nothing was added. The mean of the two middle values for an even count.
  std::optional<double> Median() const;

 private:
  uint64_t Next();
  uint64_t cap_;
  uint64_t seen_ = 0;
  uint64_t rng_ = 0x243F6A8885A308D3ull;
  std::vector<double> values_;
};

}  // namespace dreamdb::compare

#endif  // DREAMDB_SRC_DATASET_COMPARE_H_
