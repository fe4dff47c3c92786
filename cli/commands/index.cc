// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb index build NAME FIELD [--algorithm A] [--cells N] [--bits B] [--metric M]
//   [--quantizer Q] [--degree R] [--seed S]
//   [--branch B] [-m M] [--progress]
// dreamdb index status NAME FIELD [--at REF]
#include <cstdio>

#include "cli/dataset_util.h"
#include "dreamdb/search.h"

namespace dreamdb::cli {
namespace {

Result<uint32_t> U32Flag(const Invocation& inv, std::string_view name) {
  auto v = inv.FlagValue(name);
  if (!v) return 0u;
  ASSIGN_OR_RETURN(uint64_t n, ParseU64(name, *v));
  if (n > UINT32_MAX)
    return InvalidArgument(std::string(name) + " is too large: " + std::string(*v));
  return static_cast<uint32_t>(n);
}

// A recall with 4 decimals (the calibration's resolution).
std::string FormatRecall(double r) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.4f", r);
  return buf;
}

void PrintInfo(Invocation& inv, const std::string& name, const IndexInfo& info) {
  if (inv.json()) {
    JsonObject o;
    o.Add("dataset", name).Add("field", info.field).Add("built", info.built);
    o.Add("algorithm", info.algorithm).Add("metric", info.metric);
    o.Add("bits", static_cast<uint64_t>(info.bits)).Add("dim", static_cast<uint64_t>(info.dim));
    o.Add("cells", static_cast<uint64_t>(info.cells));
    o.Add("nprobe", static_cast<uint64_t>(info.nprobe));
    if (info.algorithm == "graph" && info.built) o.Add("ef", static_cast<uint64_t>(info.ef));
    if (info.calibration_queries != 0) {
      std::string curve = "[";
      for (size_t i = 0; i < info.calibration_curve.size(); ++i) {
        curve += (i ? ",[" : "[") + std::to_string(info.calibration_curve[i].first) + "," +
                 FormatRecall(info.calibration_curve[i].second) + "]";
      }
      curve += "]";
      o.AddRaw("calibration", "{\"queries\":" + std::to_string(info.calibration_queries) +
                                  ",\"k\":" + std::to_string(info.calibration_k) +
                                  ",\"recall\":" + FormatRecall(info.calibration_recall) +
                                  ",\"curve\":" + curve + "}");
    }
    o.Add("quantizer", info.quantizer.empty() ? std::string("rabitq") : info.quantizer);
    if (info.algorithm == "graph" && info.built) {
      o.Add("nodes", info.nodes).Add("tail", info.tail);
      o.Add("degree", static_cast<uint64_t>(info.degree));
    }
    o.Add("entries", info.entries).Add("buckets", info.buckets);
    o.Add("live", info.live).Add("stale", info.stale);
    if (info.built) {
      o.Add("index", info.index.ToString()).Add("model", info.model.ToString());
    }
    inv.PrintJson(o);
    return;
  }
  if (!info.built) {
    inv.PrintLine("field " + info.field + ": no index built (untrained); " +
                  std::to_string(info.live) + " values" +
                  (info.algorithm.empty()
                       ? ""
                       : "; schema declares " + info.algorithm + " " + info.metric +
                             " bits=" + std::to_string(info.bits)));
    return;
  }
  const std::string shape = info.algorithm == "graph"
                                ? " degree=" + std::to_string(info.degree) + "; " +
                                      std::to_string(info.nodes) + " graph nodes + " +
                                      std::to_string(info.tail) + " appended since the build"
                                : " cells=" + std::to_string(info.cells);
  const std::string quantizer =
      info.quantizer.empty() || info.quantizer == "rabitq" ? "" : " quantizer=" + info.quantizer;
  inv.PrintLine("field " + info.field + ": " + info.algorithm + " " + info.metric +
                " bits=" + std::to_string(info.bits) + quantizer +
                " dim=" + std::to_string(info.dim) + shape + "; " + std::to_string(info.entries) +
                " entries in " + std::to_string(info.buckets) + " buckets; " +
                std::to_string(info.live) + " live values, " + std::to_string(info.stale) +
                " stale entries; index " + info.index.ToString());
  const std::string setting = info.algorithm == "graph" ? "ef=" + std::to_string(info.ef)
                                                        : "nprobe=" + std::to_string(info.nprobe);
  if (info.calibration_queries == 0) {
    inv.PrintLine("default search: " + setting + " (built-in default; not calibrated)");
  } else {
    std::string curve;
    for (const auto& [s, r] : info.calibration_curve) {
      curve += (curve.empty() ? "" : " ") + std::to_string(s) + ":" + FormatRecall(r);
    }
    inv.PrintLine("default search: " + setting + ", recall@" + std::to_string(info.calibration_k) +
                  " " + FormatRecall(info.calibration_recall) + " on a sample of " +
                  std::to_string(info.calibration_queries) + " indexed vectors");
    inv.PrintLine("calibration (" + std::string(info.algorithm == "graph" ? "ef" : "nprobe") +
                  ":recall@" + std::to_string(info.calibration_k) + "): " + curve);
  }
}

Status RunBuild(Invocation& inv) {
  const std::string& name = inv.Arg("NAME");
  const std::string& field = inv.Arg("FIELD");
  BuildIndexOptions o;
  ASSIGN_OR_RETURN(o.cells, U32Flag(inv, "--cells"));
  ASSIGN_OR_RETURN(o.bits, U32Flag(inv, "--bits"));
  if (auto m = inv.FlagValue("--metric")) o.metric = std::string(*m);
  if (auto a = inv.FlagValue("--algorithm")) o.algorithm = std::string(*a);
  if (auto q = inv.FlagValue("--quantizer")) o.quantizer = std::string(*q);
  ASSIGN_OR_RETURN(o.degree, U32Flag(inv, "--degree"));
  if (auto s = inv.FlagValue("--seed")) {
    ASSIGN_OR_RETURN(o.seed, ParseU64("--seed", *s));
  }
  ASSIGN_OR_RETURN(auto ds, OpenForWrite(inv, name));
  Progress progress(inv.HasFlag("--progress"));
  ASSIGN_OR_RETURN(CommitInfo info, ds->BuildIndex(
                                        field, o,
                                        [&](std::string_view phase, uint64_t done, uint64_t total) {
                                          progress.Report("index build: " + std::string(phase) +
                                                          " " + std::to_string(done) + "/" +
                                                          std::to_string(total));
                                        },
                                        CommitOptionsFrom(inv, "index build " + field)));
  progress.Done();
  ASSIGN_OR_RETURN(IndexInfo st, ds->IndexStatus(field));
  if (inv.json()) {
    JsonObject o2;
    o2.Add("dataset", name).Add("branch", ds->branch()).Add("field", field);
    o2.Add("algorithm", st.algorithm).Add("nprobe", static_cast<uint64_t>(st.nprobe));
    o2.Add("cells", static_cast<uint64_t>(st.cells)).Add("entries", st.entries);
    o2.Add("buckets", st.buckets).Add("metric", st.metric);
    o2.Add("bits", static_cast<uint64_t>(st.bits)).Add("quantizer", st.quantizer);
    if (st.algorithm == "graph") {
      o2.Add("nodes", st.nodes).Add("degree", static_cast<uint64_t>(st.degree));
    }
    o2.Add("index", st.index.ToString()).Add("head", info.manifest.ToString());
    std::string secs;
    AppendJsonDouble(progress.ElapsedSeconds(), &secs);
    o2.AddRaw("seconds", secs);
    inv.PrintJson(o2);
  } else {
    inv.PrintLine("built " + st.algorithm + " index on " + field + ": " + std::to_string(st.cells) +
                  " cells, " + std::to_string(st.entries) + " entries, " + st.metric +
                  " bits=" + std::to_string(st.bits) + "; head " + info.manifest.ToString());
  }
  return Status::Ok();
}

Status RunStatus(Invocation& inv) {
  const std::string& name = inv.Arg("NAME");
  ASSIGN_OR_RETURN(auto ds, OpenForRead(inv, name));
  ASSIGN_OR_RETURN(IndexInfo info, ds->IndexStatus(inv.Arg("FIELD")));
  PrintInfo(inv, name, info);
  return Status::Ok();
}

const Registrar kBuild({
    .path = "index build",
    .summary = "Train and build the spatial index of an embedding field",
    .description =
        "Samples FIELD, trains a partition model (cells) with RaBitQ codes, assigns every\n"
        "record, and commits one manifest that points at the new index (spec/21). Later\n"
        "appends are assigned to it automatically. Algorithms (spec/20 §4): ivf (k-means\n"
        "cells), imi (inverted multi-index: pairs of half-vector codebooks), lsh (random\n"
        "hyperplanes), graph (a Vamana graph built in memory, for moderate sizes: at most\n"
        "4 GiB of vectors; --degree sets its out-degree, default 32). --quantizer pq4 stores\n"
        "4-bit product-quantization codes instead of RaBitQ (ivf, imi, lsh). Defaults come from "
        "the field's declared index in the schema, else ivf,\n"
        "cosine, 4 bits and the algorithm's cells (ivf round(sqrt(N)); imi s*s with\n"
        "s = round(2 N^(1/4)); lsh 2^round(log2(N)/2)). Progress goes to stderr when it is a\n"
        "terminal, or with --progress.\n"
        "JSON: {\"dataset\", \"branch\", \"field\", \"algorithm\", \"nprobe\", \"cells\",\n"
        "\"entries\", \"buckets\", \"metric\", \"bits\", \"quantizer\", \"nodes\"? (graph),\n"
        "\"degree\"? (graph), \"index\", \"head\", \"seconds\"}.",
    .positionals = {{.name = "NAME", .help = "the dataset"},
                    {.name = "FIELD", .help = "the embedding field"}},
    .flags = {{.name = "--algorithm",
               .value_name = "A",
               .help = "ivf (default), imi, lsh or graph"},
              {.name = "--quantizer", .value_name = "Q", .help = "rabitq (default) or pq4"},
              {.name = "--degree",
               .value_name = "R",
               .help = "graph: maximum out-degree, 4..256 (default 32)"},
              {.name = "--cells",
               .value_name = "N",
               .help = "cells (default: the algorithm's, ivf round(sqrt(N)))"},
              {.name = "--bits", .value_name = "B", .help = "RaBitQ bits per dimension, 1..8"},
              {.name = "--metric", .value_name = "M", .help = "cosine, ip or l2"},
              {.name = "--seed", .value_name = "S", .help = "training seed (default 0)"},
              kBranchFlag,
              kMessageFlag,
              kProgressFlag},
    .run = RunBuild,
});

const Registrar kStatus({
    .path = "index status",
    .summary = "Show the spatial index of an embedding field",
    .description =
        "Built or not (untrained), its algorithm, metric, bits, cells, entries, buckets,\n"
        "live values and stale entries (deleted or replaced records, skipped by search).\n"
        "JSON: {\"dataset\", \"field\", \"built\", \"algorithm\", \"metric\", \"bits\", \"dim\",\n"
        "\"cells\", \"nprobe\", \"quantizer\", \"entries\", \"buckets\", \"live\", \"stale\",\n"
        "\"nodes\"?, \"tail\"?, \"degree\"? (graph: nodes in the graph and entries appended since\n"
        "the build), \"index\"?, \"model\"?, \"ef\"? (graph),\n"
        "\"calibration\"? ({\"queries\", \"k\", \"recall\", \"curve\": [[setting, recall]...]}).\n"
        "nprobe/ef are what a search without --nprobe/--ef uses: the calibrated setting\n"
        "reaching recall@10 0.95 on a sample of the indexed vectors, or the built-in default.",
    .positionals = {{.name = "NAME", .help = "the dataset"},
                    {.name = "FIELD", .help = "the embedding field"}},
    .flags = {kAtFlag},
    .run = RunStatus,
});

}  // namespace
}  // namespace dreamdb::cli
