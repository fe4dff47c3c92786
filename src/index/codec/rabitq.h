// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// RaBitQ codes (spec/20-vector-codes.md §codes, §estimator).
//
// A data vector o in cell c is encoded from its rotated residual r = P(o - c) (length D, the
// padded dimension). With B = bits, each coordinate gets a code u_i in [0, 2^B) whose top
// bit is the sign bit (r_i > 0); the code stands for y_i = u_i - (2^B - 1) / 2, i.e.
// sign_i * (m_i + 1/2) with a magnitude m_i in [0, 2^(B-1)). The magnitudes are chosen to
// maximise cos(y, r) (extended RaBitQ). For every vector two factor triples are stored:
// one for the 1-bit code (y = sign * 1/2) and one for the full B-bit code. With them the
// distance to a query q (rotated: x = P q, S = sum(x)) is estimated as
//
//   est = add + g_add + rescale * (<u, x> - (2^B - 1)/2 * S)
//
// where g_add depends on the query and the cell only (L2: |q - c|^2, inner product:
// -<q, c>), and, with probability ~ 1 - 2 exp(-eps0^2 / 2), |est - true| <= error * |q - c|.
// Distances are "smaller is better": L2 squared, or the negated inner product.
//
// Thread safety: all functions are pure.

#ifndef DREAMDB_SRC_INDEX_CODEC_RABITQ_H_
#define DREAMDB_SRC_INDEX_CODEC_RABITQ_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace dreamdb::vector {

// eps0 of the RaBitQ error bound (the papers' recommended 1.9).
inline constexpr float kRabitqEpsilon = 1.9f;

// Per-vector estimator factors (spec/20 §factors).
struct CodeFactors {
  float add = 0;
  float rescale = 0;
  float error = 0;
};

// How distances are formed: kL2 -> squared L2; kInnerProduct -> -<o, q> (cosine is inner
// product on unit vectors).
enum class EstimatorMetric : uint8_t { kL2 = 0, kInnerProduct = 1 };

// Encodes one rotated residual r (d floats) with `bits` in 1..8. codes[i] receives u_i
// (d bytes). c_rot is the rotated centroid P c (d floats). f1 gets the 1-bit factors (from
// the top bit of each code), fex the factors of the full code (equal to f1 when bits == 1).
void EncodeResidual(const float* r, const float* c_rot, uint32_t d, uint32_t bits,
                    EstimatorMetric metric, uint8_t* codes, CodeFactors* f1, CodeFactors* fex);

// Magnitudes m_i in [0, 2^ex_bits) for |r| maximising cos(m + 1/2, |r|) (the reference
// encoder's search: a 32-point grid over the scale, then an exact sweep of the breakpoints
// around the best grid point). ex_bits in 1..7.
void QuantizeMagnitudes(const float* abs_r, uint32_t d, uint32_t ex_bits, uint8_t* m);

// Factors of a code y (= u - (2^bits - 1)/2) for residual r.
CodeFactors ComputeFactors(const float* r, const float* c_rot, const uint8_t* codes, uint32_t d,
                           uint32_t bits, bool top_bit_only, EstimatorMetric metric);

// The query side: x = P q, its sum, and the 8-bit FastScan lookup table of the 1-bit
// codes (one 16-entry table per group of 4 coordinates, spec/20 §query).
struct QueryLut {
  std::vector<uint8_t> lut;  // (d / 4) * 16 bytes
  float delta = 0;           // value of one LUT unit
  float base = 0;            // sum over groups of the group minimum
  float sum = 0;             // S = sum(x)
};
void BuildQueryLut(const float* x, uint32_t d, QueryLut* out);

// The query for one-at-a-time visits (graph search): x quantised to `qbits` (1..8) bits,
// xq_i = round((x_i - vmin) / delta), stored as qbits bit planes of d bits (64-bit words,
// bit i of word i / 64), so <s, x> ~ delta * sum_j 2^j popcount(s AND plane_j) +
// vmin * popcount(s) (PopcountDot in fastscan.h).
struct QueryPlanes {
  std::vector<uint64_t> planes;  // qbits x words
  uint32_t qbits = 0;
  uint32_t words = 0;
  float delta = 0;
  float vmin = 0;
  float sum = 0;  // S = sum(x)
};
void BuildQueryPlanes(const float* x, uint32_t d, uint32_t qbits, QueryPlanes* out);
// <s, x> for a sign code of d bits (the layout of QueryPlanes::planes).
float PlanesIp(const QueryPlanes& q, const uint64_t* code);

// <top bits, x> from a FastScan accumulator value.
inline float LutIp(const QueryLut& q, uint32_t acc) {
  return q.delta * static_cast<float>(acc) + q.base;
}

// Estimated distance from an inner product <u, x> of a `bits`-bit code.
inline float EstimateDistance(const CodeFactors& f, float g_add, float ip_u_x, float sum_x,
                              uint32_t bits) {
  const float cb = static_cast<float>((1u << bits) - 1) * 0.5f;
  return f.add + g_add + f.rescale * (ip_u_x - cb * sum_x);
}

}  // namespace dreamdb::vector

#endif  // DREAMDB_SRC_INDEX_CODEC_RABITQ_H_
