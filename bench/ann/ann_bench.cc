// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// ann_bench: DreamDB's in-memory vector index on SYN data (design/TARGETS.md "Vector
// search"), measured the ann-benchmarks way: single thread, one query at a time, best of
// `--runs` passes over all queries; recall@k counts results whose exact distance is within
// the true k-th distance + 1e-3. Prints one JSON object per line (per configuration).
//
//   ann_bench --data DIR [--n 200000 --nq 1000 --dim 768 --seed 1]   # creates DIR if needed
//             [--prepare] [--algo ivf,brute] [--bits 4] [--nprobe 8,16,24,32,48,64]
//             [--rerank 0] [--runs 3] [--k 10] [--build-threads 2] [--cells 0]
//             [--quantizer rabitq|pq4] [--pq-m 0]   # pq4: IvfIndex, 4-bit PQ (spec/20 §8)
//             [--ef 10,16,24,32,48,64,96,128] [--degree 32] [--build-list 128] [--alpha 1.2]
//             [--block-nodes 256] [--graph-cache FILE]  # --algo graph: Vamana (graph.h)
//
// DIR holds base.fvecs, query.fvecs, gt.ivecs (top-100 ids) and gt_dist.fvecs (their
// cosine distances 1 - cos); bench/ann/peers.py reads the same files. --prepare only
// creates them. Data are unit vectors and the metric is cosine. Besides wall-clock QPS and
// build time, qps_cpu (queries per second of the query thread's CPU time) and build_cpu_s
// (process CPU time, all threads) are printed with the load average: the machine may be
// shared, and CPU time is much less sensitive to that.

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dreamdb/status.h"
#include "src/index/brute.h"
#include "src/index/codec/pq.h"
#include "src/index/graph/graph.h"
#include "src/index/io.h"
#include "src/index/ivf.h"
#include "src/index/kernels/distance.h"
#include "src/index/syn.h"

namespace dreamdb::vector {
namespace {

constexpr size_t kGtK = 100;

struct Options {
  std::string data;
  size_t n = 200000;
  size_t nq = 1000;
  uint32_t dim = 768;
  uint64_t seed = 1;
  bool prepare = false;
  std::vector<std::string> algos = {"ivf"};
  std::vector<uint32_t> bits = {4};
  std::vector<uint32_t> nprobe = {8, 16, 24, 32, 48, 64};
  bool rerank = false;
  int runs = 3;
  size_t k = 10;
  uint32_t build_threads = 2;
  uint32_t cells = 0;
  std::string quantizer = "rabitq";
  uint32_t pq_m = 0;  // 0 = DefaultPqSubspaces(dim)
  // --algo graph
  std::vector<uint32_t> ef = {10, 16, 24, 32, 48, 64, 96, 128};
  uint32_t degree = 32;
  uint32_t build_list = 128;
  float alpha = 1.2f;
  uint32_t block_nodes = 256;
  // Saves the built graph (model, order, node blocks) to FILE, or loads it from there when
  // FILE exists and was built with the same parameters: for search tuning without rebuilds.
  std::string graph_cache;
};

double CpuNow(clockid_t clock) {
  timespec ts{};
  ::clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

size_t RssBytes() {
  std::ifstream f("/proc/self/statm");
  size_t pages_total = 0, pages_res = 0;
  f >> pages_total >> pages_res;
  return pages_res * static_cast<size_t>(::sysconf(_SC_PAGESIZE));
}

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  size_t b = 0;
  while (b <= s.size()) {
    const size_t e = s.find(',', b);
    const std::string part = s.substr(b, e == std::string::npos ? std::string::npos : e - b);
    if (!part.empty()) out.push_back(part);
    if (e == std::string::npos) break;
    b = e + 1;
  }
  return out;
}

std::vector<uint32_t> SplitU32(const std::string& s) {
  std::vector<uint32_t> out;
  for (const auto& p : Split(s)) out.push_back(static_cast<uint32_t>(std::stoul(p)));
  return out;
}

[[noreturn]] void Usage(const std::string& msg) {
  std::fprintf(stderr, "ann_bench: %s\n(see the header of bench/ann/ann_bench.cc)\n", msg.c_str());
  std::exit(2);
}

[[noreturn]] void Die(const Status& s) {
  std::fprintf(stderr, "ann_bench: %s\n", s.ToString().c_str());
  std::exit(1);
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) Usage("missing value for " + a);
      return argv[++i];
    };
    if (a == "--data") {
      o.data = val();
    } else if (a == "--n") {
      o.n = std::stoull(val());
    } else if (a == "--nq") {
      o.nq = std::stoull(val());
    } else if (a == "--dim") {
      o.dim = static_cast<uint32_t>(std::stoul(val()));
    } else if (a == "--seed") {
      o.seed = std::stoull(val());
    } else if (a == "--prepare") {
      o.prepare = true;
    } else if (a == "--algo") {
      o.algos = Split(val());
    } else if (a == "--bits") {
      o.bits = SplitU32(val());
    } else if (a == "--nprobe") {
      o.nprobe = SplitU32(val());
    } else if (a == "--rerank") {
      o.rerank = val() != "0";
    } else if (a == "--runs") {
      o.runs = std::max(1, std::stoi(val()));
    } else if (a == "--k") {
      o.k = std::stoull(val());
    } else if (a == "--build-threads") {
      o.build_threads = static_cast<uint32_t>(std::stoul(val()));
    } else if (a == "--cells") {
      o.cells = static_cast<uint32_t>(std::stoul(val()));
    } else if (a == "--quantizer") {
      o.quantizer = val();
      if (o.quantizer != "rabitq" && o.quantizer != "pq4") {
        Usage("--quantizer must be rabitq or pq4, got '" + o.quantizer + "'");
      }
    } else if (a == "--ef") {
      o.ef = SplitU32(val());
    } else if (a == "--degree") {
      o.degree = static_cast<uint32_t>(std::stoul(val()));
    } else if (a == "--build-list") {
      o.build_list = static_cast<uint32_t>(std::stoul(val()));
    } else if (a == "--alpha") {
      o.alpha = std::stof(val());
    } else if (a == "--graph-cache") {
      o.graph_cache = val();
    } else if (a == "--block-nodes") {
      o.block_nodes = static_cast<uint32_t>(std::stoul(val()));
    } else if (a == "--pq-m") {
      o.pq_m = static_cast<uint32_t>(std::stoul(val()));
    } else {
      Usage("unknown argument '" + a + "'");
    }
  }
  if (o.data.empty()) Usage("--data DIR is required");
  if (o.k == 0 || o.k > kGtK) Usage("--k must be in 1..100");
  return o;
}

struct Data {
  FloatMatrix base, queries;
  TopK truth;
};

// Loads DIR's files, creating any that are missing (SYN generation, brute-force truth).
Data Prepare(const Options& o) {
  namespace fs = std::filesystem;
  fs::create_directories(o.data);
  const std::string base_p = o.data + "/base.fvecs", query_p = o.data + "/query.fvecs",
                    gt_p = o.data + "/gt.ivecs", gtd_p = o.data + "/gt_dist.fvecs";
  Data d;
  if (!fs::exists(base_p) || !fs::exists(query_p)) {
    const double t0 = Now();
    SynParams p;
    p.dim = o.dim;
    p.n_base = o.n;
    p.seed = o.seed;
    auto gen = SynGenerator::Create(p);
    if (!gen.ok()) Die(gen.status());
    auto base = gen->GenerateVector(kSynBaseStream, 0, o.n, 0);
    auto q = gen->GenerateVector(kSynQueryStream, 0, o.nq, 0);
    if (Status s = WriteFvecs(base_p, base.data(), o.n, o.dim); !s.ok()) Die(s);
    if (Status s = WriteFvecs(query_p, q.data(), o.nq, o.dim); !s.ok()) Die(s);
    std::fprintf(stderr, "ann_bench: generated SYN-%u n=%zu nq=%zu seed=%" PRIu64 " in %.1f s\n",
                 o.dim, o.n, o.nq, o.seed, Now() - t0);
    fs::remove(gt_p);
    fs::remove(gtd_p);
  }
  auto base = ReadFvecs(base_p);
  if (!base.ok()) Die(base.status());
  auto q = ReadFvecs(query_p);
  if (!q.ok()) Die(q.status());
  d.base = std::move(*base);
  d.queries = std::move(*q);
  if (d.base.dim != d.queries.dim) Die(Corrupt("base and query dimensions differ"));
  const size_t gk = std::min(kGtK, d.base.rows);
  if (!fs::exists(gt_p) || !fs::exists(gtd_p)) {
    const double t0 = Now();
    auto t = BruteForceTopK(d.base.data.data(), d.base.rows, d.queries.data.data(), d.queries.rows,
                            d.base.dim, gk, Metric::kCosine, 0);
    if (!t.ok()) Die(t.status());
    std::vector<int32_t> ids(t->ids.begin(), t->ids.end());
    if (Status s = WriteIvecs(gt_p, ids.data(), t->num_queries, gk); !s.ok()) Die(s);
    if (Status s = WriteFvecs(gtd_p, t->dist.data(), t->num_queries, gk); !s.ok()) Die(s);
    std::fprintf(stderr, "ann_bench: ground truth (top-%zu, %zu queries) in %.1f s\n", gk,
                 d.queries.rows, Now() - t0);
  }
  auto gt = ReadIvecs(gt_p);
  if (!gt.ok()) Die(gt.status());
  auto gtd = ReadFvecs(gtd_p);
  if (!gtd.ok()) Die(gtd.status());
  if (gt->rows != d.queries.rows || gtd->rows != d.queries.rows || gt->dim != gtd->dim) {
    Die(Corrupt("ground truth files do not match the queries in " + o.data));
  }
  d.truth.num_queries = gt->rows;
  d.truth.k = gt->dim;
  d.truth.ids.assign(gt->data.begin(), gt->data.end());
  d.truth.dist = std::move(gtd->data);
  return d;
}

struct Timing {
  double wall = 0;
  double cpu = 0;  // the query thread's CPU time (robust to a shared machine)
};

// Runs all queries `runs` times with `search(q, out_ids)`; returns the best wall and CPU
// times, and the recall.
std::pair<Timing, double> Measure(const Options& o, const Data& d,
                                  const std::function<void(const float*, uint32_t*)>& search) {
  const size_t nq = d.queries.rows;
  std::vector<uint32_t> found(nq * o.k, UINT32_MAX);
  Timing best{1e300, 1e300};
  for (int r = 0; r < o.runs; ++r) {
    const double t0 = Now();
    const double c0 = CpuNow(CLOCK_THREAD_CPUTIME_ID);
    for (size_t i = 0; i < nq; ++i) search(d.queries.row(i), found.data() + i * o.k);
    best.cpu = std::min(best.cpu, CpuNow(CLOCK_THREAD_CPUTIME_ID) - c0);
    best.wall = std::min(best.wall, Now() - t0);
  }
  const double recall = RecallAtK(d.base.data.data(), d.base.rows, d.queries.data.data(),
                                  d.base.dim, Metric::kCosine, d.truth, found.data(), o.k, o.k);
  return {best, recall};
}

double LoadAverage() {
  double l[3] = {0, 0, 0};
  return ::getloadavg(l, 3) > 0 ? l[0] : -1;
}

void Emit(const Options& o, const Data& d, const std::string& algo, const std::string& params,
          Timing build, size_t memory_bytes, size_t rss_delta, Timing secs, double recall,
          const std::string& extra = "") {
  const size_t nq = d.queries.rows;
  std::printf(
      "{\"algo\":\"%s\",\"params\":{%s},\"n\":%zu,\"dim\":%zu,\"nq\":%zu,\"k\":%zu,"
      "\"build_s\":%.3f,\"build_cpu_s\":%.3f,\"bytes_per_vector\":%.1f,"
      "\"memory_bytes\":%zu,\"rss_delta_bytes\":%zu,\"recall@%zu\":%.4f,\"recall\":%.4f,"
      "\"qps\":%.1f,\"qps_cpu\":%.1f,\"load\":%.2f,\"simd\":\"%s\"%s}\n",
      algo.c_str(), params.c_str(), d.base.rows, d.base.dim, nq, o.k, build.wall, build.cpu,
      static_cast<double>(memory_bytes) / static_cast<double>(d.base.rows), memory_bytes, rss_delta,
      o.k, recall, recall, static_cast<double>(nq) / secs.wall,
      static_cast<double>(nq) / std::max(secs.cpu, 1e-9), LoadAverage(),
      std::string(SimdLevelName(ActiveSimdLevel())).c_str(), extra.c_str());
  std::fflush(stdout);
}

// Exact scan over the f32 vectors: the floor every index must beat.
void RunBrute(const Options& o, const Data& d) {
  const size_t n = d.base.rows, dim = d.base.dim;
  std::vector<float> dots(n);
  std::vector<uint32_t> idx(n);
  auto search = [&](const float* q, uint32_t* out) {
    DotMany(q, d.base.data.data(), n, dim, dots.data());  // unit vectors: max dot
    for (size_t i = 0; i < n; ++i) idx[i] = static_cast<uint32_t>(i);
    const size_t k = std::min(o.k, n);
    std::partial_sort(idx.begin(), idx.begin() + static_cast<ptrdiff_t>(k), idx.end(),
                      [&](uint32_t a, uint32_t b) { return dots[a] > dots[b]; });
    std::copy(idx.begin(), idx.begin() + static_cast<ptrdiff_t>(k), out);
  };
  const auto [secs, recall] = Measure(o, d, search);
  Emit(o, d, "dreamdb-brute", "", Timing{}, n * dim * sizeof(float), 0, secs, recall);
}

void RunIvf(const Options& o, const Data& d) {
  for (uint32_t bits : o.bits) {
    IvfParams p;
    p.dim = static_cast<uint32_t>(d.base.dim);
    p.metric = Metric::kCosine;
    p.num_cells = o.cells;
    p.bits = bits;
    p.seed = o.seed;
    p.kmeans.threads = o.build_threads;
    ::malloc_trim(0);
    const size_t rss0 = RssBytes();
    const double t0 = Now();
    const double c0 = CpuNow(CLOCK_PROCESS_CPUTIME_ID);
    auto ix =
        IvfIndex::Build(p, d.base.data.data(), d.base.rows, nullptr, o.rerank, o.build_threads);
    const Timing build{Now() - t0, CpuNow(CLOCK_PROCESS_CPUTIME_ID) - c0};
    if (!ix.ok()) Die(ix.status());
    ::malloc_trim(0);
    const size_t rss1 = RssBytes();
    const size_t rss_delta = rss1 > rss0 ? rss1 - rss0 : 0;
    const IvfIndex& index = **ix;
    for (uint32_t np : o.nprobe) {
      SearchParams sp;
      sp.k = static_cast<uint32_t>(o.k);
      sp.nprobe = np;
      sp.rerank = o.rerank;
      Status err;
      auto search = [&](const float* q, uint32_t* out) {
        auto r = index.Search(q, sp);
        if (!r.ok()) {
          err = r.status();
          return;
        }
        for (size_t i = 0; i < r->size() && i < o.k; ++i) {
          out[i] = static_cast<uint32_t>((*r)[i].id);
        }
      };
      const auto [secs, recall] = Measure(o, d, search);
      if (!err.ok()) Die(err);
      char params[256];
      std::snprintf(params, sizeof(params),
                    "\"bits\":%u,\"cells\":%u,\"nprobe\":%u,\"rerank\":%s,\"build_threads\":%u",
                    bits, index.model().num_cells(), np, o.rerank ? "true" : "false",
                    o.build_threads);
      Emit(o, d, "dreamdb-ivf", params, build, index.MemoryBytes(), rss_delta, secs, recall);
    }
  }
}

// IVF-PQ (4-bit codes, FastScan ADC): the same coarse partition as RunIvf.
void RunIvfPq(const Options& o, const Data& d) {
  IvfParams p;
  p.dim = static_cast<uint32_t>(d.base.dim);
  p.metric = Metric::kCosine;
  p.num_cells = o.cells;
  p.seed = o.seed;
  p.kmeans.threads = o.build_threads;
  ::malloc_trim(0);
  const size_t rss0 = RssBytes();
  const double t0 = Now();
  const double c0 = CpuNow(CLOCK_PROCESS_CPUTIME_ID);
  p.quantizer = IvfParams::Quantizer::kPq4;
  p.pq_subspaces = o.pq_m;
  auto ix = IvfIndex::Build(p, d.base.data.data(), d.base.rows, nullptr, o.rerank, o.build_threads);
  const Timing build{Now() - t0, CpuNow(CLOCK_PROCESS_CPUTIME_ID) - c0};
  if (!ix.ok()) Die(ix.status());
  ::malloc_trim(0);
  const size_t rss1 = RssBytes();
  const size_t rss_delta = rss1 > rss0 ? rss1 - rss0 : 0;
  const IvfIndex& index = **ix;
  for (uint32_t np : o.nprobe) {
    SearchParams sp;
    sp.k = static_cast<uint32_t>(o.k);
    sp.nprobe = np;
    sp.rerank = o.rerank;
    Status err;
    auto search = [&](const float* q, uint32_t* out) {
      auto r = index.Search(q, sp);
      if (!r.ok()) {
        err = r.status();
        return;
      }
      for (size_t i = 0; i < r->size() && i < o.k; ++i) {
        out[i] = static_cast<uint32_t>((*r)[i].id);
      }
    };
    const auto [secs, recall] = Measure(o, d, search);
    if (!err.ok()) Die(err);
    char params[256];
    std::snprintf(params, sizeof(params),
                  "\"quantizer\":\"pq4\",\"pq_m\":%u,\"cells\":%u,\"nprobe\":%u,\"rerank\":%s,"
                  "\"build_threads\":%u",
                  index.model().pq()->m(), index.model().num_cells(), np,
                  o.rerank ? "true" : "false", o.build_threads);
    Emit(o, d, "dreamdb-ivfpq", params, build, index.MemoryBytes(), rss_delta, secs, recall);
  }
}

// --graph-cache file: "DGC1", the parameters (as a fixed string), the model, the order and
// the blocks, each length-prefixed (u64). Build times are -1 for a loaded graph.
std::string GraphKey(const GraphParams& p, size_t n) {
  char buf[256];
  std::snprintf(buf, sizeof(buf),
                "n=%zu dim=%u metric=%d R=%u L=%u alpha=%.3f bits=%u seed=%llu N=%u", n, p.dim,
                static_cast<int>(p.metric), p.degree, p.build_list, static_cast<double>(p.alpha),
                p.bits, static_cast<unsigned long long>(p.seed), p.nodes_per_block);
  return buf;
}

void SaveGraph(const std::string& path, const GraphParams& p, const GraphIndex& index,
               const std::vector<uint32_t>& order) {
  std::ofstream f(path, std::ios::binary);
  auto put = [&f](const std::string& s) {
    const uint64_t len = s.size();
    f.write(reinterpret_cast<const char*>(&len), 8);
    f.write(s.data(), static_cast<std::streamsize>(s.size()));
  };
  put("DGC1");
  put(GraphKey(p, index.size()));
  put(index.model().Serialize());
  put(std::string(reinterpret_cast<const char*>(order.data()), order.size() * 4));
  for (uint32_t b = 0; b < index.num_blocks(); ++b) put(*index.EncodeBlock(b));
}

Result<std::unique_ptr<GraphIndex>> LoadGraph(const std::string& path, const GraphParams& p,
                                              const Data& d, std::vector<uint32_t>* order) {
  std::ifstream f(path, std::ios::binary);
  if (path.empty() || !f) return Status(StatusCode::kNotFound, "no cache");
  auto get = [&f]() {
    uint64_t len = 0;
    f.read(reinterpret_cast<char*>(&len), 8);
    std::string s(f ? len : 0, '\0');
    f.read(s.data(), static_cast<std::streamsize>(s.size()));
    return s;
  };
  if (get() != "DGC1" || get() != GraphKey(p, d.base.rows)) {
    return Status(StatusCode::kNotFound, "stale cache");
  }
  ASSIGN_OR_RETURN(auto model, IvfModel::Deserialize(get()));
  const std::string ord = get();
  order->resize(ord.size() / 4);
  std::memcpy(order->data(), ord.data(), ord.size());
  std::vector<std::shared_ptr<const GraphNodeBlock>> blocks;
  const size_t nb = (d.base.rows + p.nodes_per_block - 1) / p.nodes_per_block;
  for (size_t b = 0; b < nb; ++b) {
    ASSIGN_OR_RETURN(auto blk, GraphNodeBlock::Decode(*model, get()));
    blocks.push_back(std::move(blk));
  }
  const size_t dim = d.base.dim;
  std::vector<float> raw(d.base.rows * dim);
  for (size_t i = 0; i < order->size(); ++i) {
    std::memcpy(&raw[i * dim], d.base.row((*order)[i]), dim * sizeof(float));
  }
  std::fprintf(stderr, "ann_bench: loaded the graph from %s\n", path.c_str());
  return GraphIndex::FromParts(p, std::move(model), std::move(blocks), std::move(raw));
}

// Vamana graph with RaBitQ node codes (graph.h): one build per bit width, an ef sweep.
// memory_bytes counts the decoded blocks (graph + codes) plus, with --rerank, the raw
// vectors (which re-ranking reads); graph_bytes_per_vector is the former alone.
void RunGraph(const Options& o, const Data& d) {
  for (uint32_t bits : o.bits) {
    GraphParams p;
    p.dim = static_cast<uint32_t>(d.base.dim);
    p.metric = Metric::kCosine;
    p.degree = o.degree;
    p.build_list = o.build_list;
    p.alpha = o.alpha;
    p.bits = bits;
    p.seed = o.seed;
    p.nodes_per_block = o.block_nodes;
    ::malloc_trim(0);
    const size_t rss0 = RssBytes();
    const double t0 = Now();
    const double c0 = CpuNow(CLOCK_PROCESS_CPUTIME_ID);
    std::vector<uint32_t> order;
    double last = t0;
    const std::function<void(uint64_t, uint64_t)> progress = [&](uint64_t done, uint64_t total) {
      if (Now() - last < 10) return;
      last = Now();
      std::fprintf(stderr, "ann_bench: graph build %.1f%% (%.0f s)\n",
                   100.0 * static_cast<double>(done) / static_cast<double>(total), Now() - t0);
    };
    const std::string cache =
        o.graph_cache.empty() ? "" : o.graph_cache + "-b" + std::to_string(bits);
    Result<std::unique_ptr<GraphIndex>> ix = LoadGraph(cache, p, d, &order);
    const bool cached = ix.ok();
    if (!cached) {
      ix =
          GraphIndex::Build(p, d.base.data.data(), d.base.rows, o.build_threads, &order, &progress);
      if (ix.ok() && !cache.empty()) SaveGraph(cache, p, **ix, order);
    }
    const Timing build{cached ? -1 : Now() - t0,
                       cached ? -1 : CpuNow(CLOCK_PROCESS_CPUTIME_ID) - c0};
    if (!ix.ok()) Die(ix.status());

    ::malloc_trim(0);
    const size_t rss1 = RssBytes();
    const size_t rss_delta = rss1 > rss0 ? rss1 - rss0 : 0;
    const GraphIndex& index = **ix;
    size_t encoded = 0;
    for (uint32_t b = 0; b < index.num_blocks(); ++b) {
      auto bytes = index.EncodeBlock(b);
      if (!bytes.ok()) Die(bytes.status());
      encoded += bytes->size();
    }
    const size_t raw_bytes = d.base.rows * d.base.dim * sizeof(float);
    const size_t memory = index.MemoryBytes() - (o.rerank ? 0 : raw_bytes);
    for (uint32_t ef : o.ef) {
      GraphSearchParams sp;
      sp.k = static_cast<uint32_t>(o.k);
      sp.ef = ef;
      sp.rerank = o.rerank;
      GraphSearchStats stats;
      sp.stats = &stats;
      uint64_t blocks = 0;
      uint64_t expanded = 0;
      uint64_t estimated = 0;
      uint64_t exact = 0;
      uint64_t refined = 0;
      uint64_t searches = 0;
      Status err;
      auto search = [&](const float* q, uint32_t* out) {
        auto r = index.Search(q, sp);
        if (!r.ok()) {
          err = r.status();
          return;
        }
        blocks += stats.blocks;
        expanded += stats.expanded;
        estimated += stats.estimated;
        exact += stats.exact;
        refined += stats.refined;
        ++searches;
        for (size_t i = 0; i < r->size() && i < o.k; ++i) out[i] = order[(*r)[i].id];
      };
      const auto [secs, recall] = Measure(o, d, search);
      if (!err.ok()) Die(err);
      char params[320];
      std::snprintf(params, sizeof(params),
                    "\"bits\":%u,\"degree\":%u,\"build_list\":%u,\"alpha\":%.2f,\"ef\":%u,"
                    "\"rerank\":%s,\"block_nodes\":%u,\"build_threads\":%u",
                    bits, o.degree, o.build_list, static_cast<double>(o.alpha), ef,
                    o.rerank ? "true" : "false", o.block_nodes, o.build_threads);
      const double per = static_cast<double>(std::max<uint64_t>(searches, 1));
      char extra[320];
      std::snprintf(
          extra, sizeof(extra),
          ",\"graph_bytes_per_vector\":%.1f,\"encoded_bytes_per_vector\":%.1f,"
          "\"blocks_per_query\":%.1f,\"num_blocks\":%u,\"expanded_per_query\":%.1f,"
          "\"estimated_per_query\":%.1f,\"refined_per_query\":%.1f,\"exact_per_query\":%.1f",
          static_cast<double>(index.GraphBytes()) / static_cast<double>(d.base.rows),
          static_cast<double>(encoded) / static_cast<double>(d.base.rows),
          static_cast<double>(blocks) / per, index.num_blocks(),
          static_cast<double>(expanded) / per, static_cast<double>(estimated) / per,
          static_cast<double>(refined) / per, static_cast<double>(exact) / per);
      Emit(o, d, "dreamdb-graph", params, build, memory, rss_delta, secs, recall, extra);
    }
  }
}

int Main(int argc, char** argv) {
  const Options o = ParseArgs(argc, argv);
  const Data d = Prepare(o);
  if (o.prepare) return 0;
  for (const auto& algo : o.algos) {
    if (algo == "brute") {
      RunBrute(o, d);
    } else if (algo == "ivf" && o.quantizer == "pq4") {
      RunIvfPq(o, d);
    } else if (algo == "ivf") {
      RunIvf(o, d);
    } else if (algo == "graph") {
      RunGraph(o, d);
    } else {
      Usage("unknown algo '" + algo + "' (expected ivf, graph or brute)");
    }
  }
  return 0;
}

}  // namespace
}  // namespace dreamdb::vector

int main(int argc, char** argv) { return dreamdb::vector::Main(argc, argv); }
