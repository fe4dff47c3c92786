// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// libFuzzer target for the vector-code bytes of spec/20: IVF/IMI/LSH models (`DVIM`,
// RaBitQ versions 1-2 and pq4 version 3) and cell-codes blocks (`DVIC`, RaBitQ version 1
// and pq4 version 2). The first input byte picks the mode; the rest is the object.
//   even: IvfModel::Deserialize; an accepted model must serialize back to the input.
//   odd, below 0x80: the input is a codes block for one of three small trained RaBitQ
//           models (1, 4 and 8 bits); CellCount, then a query's ScanCell + Finish over
//           it (with rerank for bit 0x40). Malformed blocks must be refused with kCorrupt,
//           never read out of bounds.
//   odd, 0x80 and above: the same for two pq4 models (ivf l2, m = 6; lsh cosine, m = 24).
// Properties (abort otherwise): errors are kCorrupt or kUnsupported.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "src/index/ivf.h"

namespace {

using dreamdb::ByteView;
using dreamdb::Status;
using dreamdb::StatusCode;
namespace vector = dreamdb::vector;
using dreamdb::vector::IvfModel;

[[noreturn]] void Fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "vector_codes_fuzz: %s: %s\n", what, detail.c_str());
  std::abort();
}

void CheckError(const Status& s, const char* what) {
  if (s.code() != StatusCode::kCorrupt && s.code() != StatusCode::kUnsupported) {
    Fail(what, "unexpected error code: " + s.ToString());
  }
}

constexpr uint32_t kDim = 24;

const std::vector<std::shared_ptr<const IvfModel>>& Models() {
  static const auto* models = [] {
    auto* out = new std::vector<std::shared_ptr<const IvfModel>>();
    std::mt19937_64 rng(7);
    std::normal_distribution<float> g(0, 1);
    std::vector<float> data(256 * kDim);
    for (auto& x : data) x = g(rng);
    for (uint32_t bits : {1u, 4u, 8u}) {
      vector::IvfParams p;
      p.dim = kDim;
      p.metric = vector::Metric::kL2;
      p.num_cells = 4;
      p.bits = bits;
      p.seed = bits;
      auto m = IvfModel::Train(p, data.data(), 256);
      if (!m.ok()) Fail("Train", m.status().ToString());
      out->push_back(*m);
    }
    return out;
  }();
  return *models;
}

const std::vector<std::shared_ptr<const IvfModel>>& PqModels() {
  static const auto* models = [] {
    auto* out = new std::vector<std::shared_ptr<const IvfModel>>();
    std::mt19937_64 rng(11);
    std::normal_distribution<float> g(0, 1);
    std::vector<float> data(256 * kDim);
    for (auto& x : data) x = g(rng);
    for (uint32_t m : {6u, 24u}) {
      vector::IvfParams p;
      p.dim = kDim;
      p.metric = m == 6 ? vector::Metric::kL2 : vector::Metric::kCosine;
      p.algorithm =
          m == 6 ? vector::IvfParams::Algorithm::kIvf : vector::IvfParams::Algorithm::kLsh;
      p.num_cells = 4;
      p.quantizer = vector::IvfParams::Quantizer::kPq4;
      p.pq_subspaces = m;
      p.seed = m;
      auto model = IvfModel::Train(p, data.data(), 256);
      if (!model.ok()) Fail("Train pq4", model.status().ToString());
      out->push_back(*model);
    }
    return out;
  }();
  return *models;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  ByteView in(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (mode % 2 == 0) {
    auto m = IvfModel::Deserialize(in);
    if (!m.ok()) {
      CheckError(m.status(), "Deserialize");
      return 0;
    }
    if ((*m)->Serialize() != in) Fail("Deserialize", "accepted a non-canonical model");
    return 0;
  }
  const auto& models = mode >= 0x80 ? PqModels() : Models();
  const IvfModel& model = *models[(mode / 2) % models.size()];
  auto n = model.CellCount(in);
  if (!n.ok()) {
    CheckError(n.status(), "CellCount");
    return 0;
  }
  std::vector<float> q(kDim, 0.25f);
  vector::SearchParams sp;
  sp.k = 5;
  sp.nprobe = 1;
  sp.rerank = (mode & 0x40) != 0;
  auto query = model.NewQuery(q.data(), sp);
  if (!query.ok()) Fail("NewQuery", query.status().ToString());
  std::vector<uint64_t> ids(*n);
  for (uint64_t i = 0; i < ids.size(); ++i) ids[i] = i;
  Status s = (*query)->ScanCell(0, in, ids.data());
  if (!s.ok()) {
    CheckError(s, "ScanCell");
    return 0;
  }
  const std::function<Status(const uint64_t*, size_t, float*)> exact = [](const uint64_t*, size_t n,
                                                                          float* out) {
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(i);
    return Status::Ok();
  };
  auto top = (*query)->Finish(&exact);
  if (!top.ok()) CheckError(top.status(), "Finish");
  return 0;
}
