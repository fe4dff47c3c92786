// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0

#include "dreamdb/index_kinds.h"

#include <array>
#include <string>
#include <utility>

#include "src/base/encoding.h"

namespace dreamdb {
namespace {

// One table per kind: the names, in enum order, and the text listing them for errors.
template <typename E, size_t N>
struct NameTable {
  std::array<std::string_view, N> names;
  std::string_view expected;
  const char* what;

  std::string_view Name(E e) const {
    const auto i = static_cast<size_t>(e);
    return i < N ? names[i] : std::string_view("unknown");
  }
  Result<E> Parse(std::string_view name) const {
    for (size_t i = 0; i < N; ++i) {
      if (names[i] == name) return static_cast<E>(i);
    }
    return Status(StatusCode::kInvalidArgument, std::string("unknown ") + what + " " + Quote(name) +
                                                    " (expected " + std::string(expected) + ")");
  }
};

constexpr NameTable<IndexAlgorithm, 4> kAlgorithms{
    {"ivf", "imi", "lsh", "graph"}, "ivf, imi, lsh or graph", "index algorithm"};
constexpr NameTable<Metric, 3> kMetrics{{"l2", "ip", "cosine"}, "l2, ip or cosine", "metric"};
constexpr NameTable<Quantizer, 2> kQuantizers{{"rabitq", "pq4"}, "rabitq or pq4", "quantizer"};

}  // namespace

std::string_view IndexAlgorithmName(IndexAlgorithm algorithm) {
  return kAlgorithms.Name(algorithm);
}
Result<IndexAlgorithm> ParseIndexAlgorithm(std::string_view name) {
  return kAlgorithms.Parse(name);
}
std::string_view MetricName(Metric metric) { return kMetrics.Name(metric); }
Result<Metric> ParseMetric(std::string_view name) {
  if (name == "inner_product") return Metric::kInnerProduct;  // accepted alias of "ip"
  return kMetrics.Parse(name);
}
bool IsCanonicalMetricName(std::string_view name) { return kMetrics.Parse(name).ok(); }
std::string_view QuantizerName(Quantizer quantizer) { return kQuantizers.Name(quantizer); }
Result<Quantizer> ParseQuantizer(std::string_view name) { return kQuantizers.Parse(name); }

}  // namespace dreamdb
