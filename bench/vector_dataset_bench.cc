// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// vector_dataset_bench: vector search through a dataset on file:// (spec/21-spatial-index.md):
// ingest SYN vectors, build the spatial index, then per query the latency, requests and
// bytes fetched, cold (a fresh handle per query: empty DreamDB caches; the OS page cache
// is warm, so this measures DreamDB's request pattern, not a disk) and warm (one handle,
// second pass), with recall@k against brute force (Dataset::Search exact=true).
//
//   vector_dataset_bench --store DIR [--n 200000] [--dim 768] [--nq 200] [--k 10]
//       [--algorithm ivf,graph] [--nprobe 0,16,32] [--ef 0,64,128] [--rerank 1,0]
//       [--bits 4] [--cells 0] [--degree 0] [--quantizer rabitq] [--seed 1] [--reuse]
//
// Prints one JSON object per line. Each algorithm of --algorithm (default ivf) is built in
// turn on the same dataset (a build replaces the previous index) and swept: --nprobe for
// ivf/imi/lsh, --ef for graph. --reuse keeps an existing store at DIR (skips ingest, and
// the build when the head's index already has the algorithm).

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "dreamdb/dataset.h"
#include "dreamdb/search.h"
#include "src/index/syn.h"

namespace {

using namespace dreamdb;  // NOLINT
using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}
double P99(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[std::min(v.size() - 1, v.size() * 99 / 100)];
}

int Fail(const Status& s) {
  std::fprintf(stderr, "vector_dataset_bench: %s\n", s.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir;
  uint64_t n = 200000, nq = 200, seed = 1;
  uint32_t dim = 768, k = 10, bits = 4, cells = 0;
  std::vector<uint32_t> nprobes = {0};
  std::vector<uint32_t> efs = {0};
  std::vector<uint32_t> reranks = {1, 0};
  std::vector<std::string> algorithms = {"ivf"};
  std::string quantizer;
  uint32_t degree = 0;
  bool reuse = false;
  auto parse_list = [](const std::string& list) {
    std::vector<uint32_t> out;
    size_t p = 0;
    while (p <= list.size()) {
      size_t c = list.find(',', p);
      out.push_back(static_cast<uint32_t>(std::stoul(list.substr(p, c - p))));
      if (c == std::string::npos) break;
      p = c + 1;
    }
    return out;
  };
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--store")
      dir = next();
    else if (a == "--n")
      n = std::stoull(next());
    else if (a == "--dim")
      dim = static_cast<uint32_t>(std::stoul(next()));
    else if (a == "--nq")
      nq = std::stoull(next());
    else if (a == "--k")
      k = static_cast<uint32_t>(std::stoul(next()));
    else if (a == "--bits")
      bits = static_cast<uint32_t>(std::stoul(next()));
    else if (a == "--cells")
      cells = static_cast<uint32_t>(std::stoul(next()));
    else if (a == "--seed")
      seed = std::stoull(next());
    else if (a == "--reuse")
      reuse = true;
    else if (a == "--degree")
      degree = static_cast<uint32_t>(std::stoul(next()));
    else if (a == "--quantizer")
      quantizer = next();
    else if (a == "--ef")
      efs = parse_list(next());
    else if (a == "--algorithm") {
      algorithms.clear();
      std::string list = next();
      size_t p = 0;
      while (p <= list.size()) {
        size_t c = list.find(',', p);
        algorithms.push_back(list.substr(p, c - p));
        if (c == std::string::npos) break;
        p = c + 1;
      }
    } else if (a == "--rerank") {
      reranks.clear();
      for (char c : next()) {
        if (c == '0' || c == '1') reranks.push_back(c == '1' ? 1 : 0);
      }
    } else if (a == "--nprobe") {
      nprobes = parse_list(next());
    } else {
      std::fprintf(stderr, "unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  if (dir.empty()) {
    std::fprintf(stderr, "usage: vector_dataset_bench --store DIR [...]\n");
    return 2;
  }
  if (!reuse) std::filesystem::remove_all(dir);
  auto opened = Store::Open("file://" + std::filesystem::absolute(dir).string());
  if (!opened.ok()) return Fail(opened.status());
  std::shared_ptr<Store> store(std::move(*opened));
  vector::SynParams sp;
  sp.dim = dim;
  sp.n_base = n;
  sp.seed = seed;
  auto gen = vector::SynGenerator::Create(sp);
  if (!gen.ok()) return Fail(gen.status());
  auto existing = Dataset::Open(store, "syn");
  if (!existing.ok()) {
    Schema s;
    if (Status st = s.AddEmbedding("emb", dim); !st.ok()) return Fail(st);
    if (Status st = s.AddInt64("label"); !st.ok()) return Fail(st);
    auto ds = Dataset::Create(store, "syn", s);
    if (!ds.ok()) return Fail(ds.status());
    auto t0 = Clock::now();
    const uint64_t batch = 20000;
    for (uint64_t first = 0; first < n; first += batch) {
      size_t m = std::min<uint64_t>(batch, n - first);
      std::vector<float> v = gen->GenerateVector(vector::kSynBaseStream, first, m, 2);
      Batch b;
      Column emb(*s.Find("emb")), label(*s.Find("label"));
      for (size_t i = 0; i < m; ++i) {
        emb.AppendFloats(std::span<const float>(v.data() + i * dim, dim));
        label.AppendInt64(static_cast<int64_t>((first + i) % 10));
      }
      b.columns.push_back(std::move(emb));
      b.columns.push_back(std::move(label));
      auto c = (*ds)->AppendMany(b);
      if (!c.ok()) return Fail(c.status());
    }
    std::printf("{\"phase\":\"ingest\",\"n\":%llu,\"dim\":%u,\"ingest_s\":%.2f}\n",
                (unsigned long long)n, dim, Ms(Clock::now() - t0) / 1000);
    std::fflush(stdout);
  }
  std::vector<float> queries = gen->GenerateVector(vector::kSynQueryStream, 0, nq, 2);
  // Ground truth: brute force through the dataset.
  auto truth_ds = Dataset::Open(store, "syn");
  if (!truth_ds.ok()) return Fail(truth_ds.status());
  SearchOptions exact;
  exact.k = k;
  exact.exact = true;
  exact.threads = 2;
  auto t_exact = Clock::now();
  auto truth = (*truth_ds)->Search("emb", queries.data(), nq, dim, exact);
  if (!truth.ok()) return Fail(truth.status());
  double exact_ms = Ms(Clock::now() - t_exact) / static_cast<double>(nq);
  std::printf("{\"phase\":\"exact\",\"nq\":%llu,\"ms_per_query\":%.2f}\n", (unsigned long long)nq,
              exact_ms);
  for (const std::string& algorithm : algorithms) {
    {
      auto ds = Dataset::Open(store, "syn");
      if (!ds.ok()) return Fail(ds.status());
      auto before = (*ds)->IndexStatus("emb");
      if (!before.ok()) return Fail(before.status());
      if (!(reuse && before->built && before->algorithm == algorithm)) {
        BuildIndexOptions bo;
        bo.algorithm = algorithm;
        bo.bits = bits;
        bo.cells = cells;
        bo.seed = seed;
        bo.threads = 2;
        bo.degree = degree;
        bo.quantizer = quantizer;
        auto t1 = Clock::now();
        auto c = (*ds)->BuildIndex("emb", bo);
        if (!c.ok()) return Fail(c.status());
        auto t2 = Clock::now();
        auto st = (*ds)->IndexStatus("emb");
        if (!st.ok()) return Fail(st.status());
        std::printf(
            "{\"phase\":\"build\",\"algorithm\":\"%s\",\"n\":%llu,\"dim\":%u,\"build_s\":%.2f,"
            "\"cells\":%u,\"bits\":%u,\"quantizer\":\"%s\",\"nodes\":%llu,\"degree\":%u,"
            "\"buckets\":%llu,\"objects\":%llu}\n",
            algorithm.c_str(), (unsigned long long)n, dim, Ms(t2 - t1) / 1000, st->cells, st->bits,
            st->quantizer.c_str(), (unsigned long long)st->nodes, st->degree,
            (unsigned long long)st->buckets, (unsigned long long)c->objects_written);
        std::fflush(stdout);
      }
    }
    const bool graph = algorithm == "graph";
    for (uint32_t knob : graph ? efs : nprobes) {
      for (uint32_t rerank : reranks) {
        SearchOptions o;
        o.k = k;
        if (graph) {
          o.ef = knob;
        } else {
          o.nprobe = knob;
        }
        o.rerank = rerank != 0;
        o.threads = 1;
        std::vector<double> cold_ms, warm_ms, cold_req, cold_bytes, warm_req;
        double hits = 0;
        auto warm = Dataset::Open(store, "syn");
        if (!warm.ok()) return Fail(warm.status());
        uint32_t used_nprobe = 0, used_ef = 0;
        for (int pass = 0; pass < 2; ++pass) {
          for (uint64_t q = 0; q < nq; ++q) {
            const float* qv = queries.data() + q * dim;
            if (pass == 0) {
              auto fresh = Dataset::Open(store, "syn");
              if (!fresh.ok()) return Fail(fresh.status());
              ReadStats before = (*fresh)->read_stats();
              auto t0 = Clock::now();
              auto r = (*fresh)->Search("emb", qv, 1, dim, o);
              auto t1 = Clock::now();
              if (!r.ok()) return Fail(r.status());
              ReadStats after = (*fresh)->read_stats();
              cold_ms.push_back(Ms(t1 - t0));
              cold_req.push_back(static_cast<double>(after.requests - before.requests));
              cold_bytes.push_back(static_cast<double>(after.bytes_fetched - before.bytes_fetched));
              used_nprobe = r->nprobe;
              used_ef = r->ef;
              std::set<uint64_t> t(truth->anchors.begin() + truth->offsets[q],
                                   truth->anchors.begin() + truth->offsets[q + 1]);
              for (uint64_t a : r->anchors) hits += t.count(a);
              // Warm the long-lived handle too.
              auto w = (*warm)->Search("emb", qv, 1, dim, o);
              if (!w.ok()) return Fail(w.status());
            } else {
              ReadStats before = (*warm)->read_stats();
              auto t0 = Clock::now();
              auto r = (*warm)->Search("emb", qv, 1, dim, o);
              auto t1 = Clock::now();
              if (!r.ok()) return Fail(r.status());
              warm_ms.push_back(Ms(t1 - t0));
              warm_req.push_back(
                  static_cast<double>((*warm)->read_stats().requests - before.requests));
            }
          }
        }
        std::printf(
            "{\"phase\":\"search\",\"algorithm\":\"%s\",\"nprobe\":%u,\"ef\":%u,\"rerank\":%u,"
            "\"k\":%u,\"recall\":%.4f,\"cold_p50_ms\":%.2f,"
            "\"cold_p99_ms\":%.2f,\"cold_requests_p50\":%.0f,\"cold_bytes_p50\":%.0f,"
            "\"warm_p50_ms\":%.3f,\"warm_p99_ms\":%.3f,\"warm_requests_p50\":%.0f}\n",
            algorithm.c_str(), used_nprobe, used_ef, rerank, k, hits / static_cast<double>(nq * k),
            Median(cold_ms), P99(cold_ms), Median(cold_req), Median(cold_bytes), Median(warm_ms),
            P99(warm_ms), Median(warm_req));
        std::fflush(stdout);
      }
    }
  }
  return 0;
}
