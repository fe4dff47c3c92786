// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// The kinds of spatial index (spec/20, spec/21): algorithm, distance metric and quantizer,
// each an enum with one name table. Names are what the schema CBOR, the index object, the
// CLI and Python spell; everything inside the library works with the enums and converts at
// those edges only (Parse* / *Name).
//
// The numeric values are the bytes stored in model objects (spec/20 §4: metric byte 6,
// algorithm byte 9, quantizer byte 10) and must not change. IndexAlgorithm::kGraph is never
// stored in a model (a graph's model is a one-cell ivf model; spec/22 §2).
//
// Thread safety: pure functions over constant tables.

#ifndef DREAMDB_INDEX_KINDS_H_
#define DREAMDB_INDEX_KINDS_H_

#include <cstdint>
#include <string_view>

#include "dreamdb/status.h"

namespace dreamdb {

// How the vectors are organised: cells (ivf: k-means centroids; imi: inverted multi-index;
// lsh: random-hyperplane sign patterns) or a proximity graph (Vamana).
enum class IndexAlgorithm : uint8_t { kIvf = 0, kImi = 1, kLsh = 2, kGraph = 3 };
// Distances are "smaller is better" inside the library (src/index/metric.h).
enum class Metric : uint8_t { kL2 = 0, kInnerProduct = 1, kCosine = 2 };
// What each vector is stored as: RaBitQ codes (error-bounded) or 4-bit product quantization.
enum class Quantizer : uint8_t { kRaBitQ = 0, kPq4 = 1 };

// "ivf", "imi", "lsh", "graph".
std::string_view IndexAlgorithmName(IndexAlgorithm algorithm);
// kInvalidArgument naming the unknown name and the accepted ones.
Result<IndexAlgorithm> ParseIndexAlgorithm(std::string_view name);
// "l2", "ip", "cosine".
std::string_view MetricName(Metric metric);
// Accepts "l2", "ip", "cosine" (also "inner_product"); kInvalidArgument otherwise.
Result<Metric> ParseMetric(std::string_view name);
// "rabitq", "pq4".
std::string_view QuantizerName(Quantizer quantizer);
Result<Quantizer> ParseQuantizer(std::string_view name);

// Whether `name` is a metric's canonical spelling (the table's, without aliases): what
// stored schemas and index objects must hold.
bool IsCanonicalMetricName(std::string_view name);

// Whether an index of `algorithm` can store `quantizer` codes: every pair except a graph
// with pq4 node codes (spec/21 §2).
constexpr bool SupportsQuantizer(IndexAlgorithm algorithm, Quantizer quantizer) {
  return !(algorithm == IndexAlgorithm::kGraph && quantizer == Quantizer::kPq4);
}

}  // namespace dreamdb

#endif  // DREAMDB_INDEX_KINDS_H_
