// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb index build NAME FIELD [--algorithm A] [--cells N] [--bits B] [--metric M]
//   [--quantizer Q] [--degree R] [--seed S]
//   [--branch B] [-m M] [--progress]
// dreamdb index status NAME FIELD [--at REF] [--sample N]
// dreamdb index rebuild NAME FIELD [--branch B] [-m M] [--progress]
// dreamdb index step NAME FIELD [--branch B] [-m M] [--progress]
// Sharded (spec/14 §19.10): index build|rebuild NAME FIELD --job J --train --of M, then
//   index build|rebuild NAME FIELD --job J [--shard N --of M], then dreamdb commit NAME --job J.
#include <cstdio>

#include "cli/dataset_util.h"
#include "dreamdb/jobs.h"
#include "dreamdb/quote.h"
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

// a / b with 2 decimals (0 when b is 0).
std::string FormatRatio(double a, double b) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f", b == 0 ? 0.0 : a / b);
  return buf;
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
    if (info.balance_measured) {
      std::string mean, cv;
      AppendJsonDouble(info.cell_mean, &mean);
      AppendJsonDouble(info.cell_cv, &cv);
      o.AddRaw("balance", "{\"nonempty\":" + std::to_string(info.cells_nonempty) +
                              ",\"max\":" + std::to_string(info.cell_max) + ",\"mean\":" + mean +
                              ",\"max_over_mean\":" + FormatRatio(info.cell_max, info.cell_mean) +
                              ",\"cv\":" + cv + ",\"over_2x\":" + std::to_string(info.cells_over) +
                              ",\"under_quarter\":" + std::to_string(info.cells_under) + "}");
    }
    if (info.sample_queries != 0) {
      o.AddRaw("drift", "{\"queries\":" + std::to_string(info.sample_queries) +
                            ",\"nprobe\":" + std::to_string(info.nprobe) + ",\"recall\":" +
                            FormatRecall(info.sample_recall) + ",\"calibrated_recall\":" +
                            (info.calibration_queries != 0 ? FormatRecall(info.calibration_recall)
                                                           : std::string("null")) +
                            ",\"drift\":" + FormatRecall(info.recall_drift) + "}");
    }
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
  if (info.balance_measured) {
    inv.PrintLine("cell balance: " + std::to_string(info.cells_nonempty) + " of " +
                  std::to_string(info.cells) + " cells hold entries; largest " +
                  std::to_string(info.cell_max) + " (" +
                  FormatRatio(info.cell_max, info.cell_mean) + "x the mean " +
                  FormatRatio(info.cell_mean, 1) + "), cv " + FormatRatio(info.cell_cv, 1) + "; " +
                  std::to_string(info.cells_over) + " cells over 2x the mean, " +
                  std::to_string(info.cells_under) + " under 1/4 of it");
  }
  if (info.sample_queries != 0) {
    inv.PrintLine("recall drift: recall@10 " + FormatRecall(info.sample_recall) +
                  " now at nprobe=" + std::to_string(info.nprobe) + " on " +
                  std::to_string(info.sample_queries) + " sample queries" +
                  (info.calibration_queries != 0
                       ? " vs " + FormatRecall(info.calibration_recall) +
                             " at calibration (drift " + FormatRecall(info.recall_drift) + ")"
                       : std::string(" (not calibrated)")));
  }
}

// A stage of a sharded index build or rebuild (spec/14 §19.10): --train, or one shard.
// `options`: the build's options (train stage); null for a rebuild (the stored settings).
Status RunBuildJob(Invocation& inv, std::string_view what, const BuildIndexOptions* options) {
  const std::string& name = inv.Arg("NAME");
  const std::string& field = inv.Arg("FIELD");
  const std::string job(*inv.FlagValue("--job"));
  RETURN_IF_ERROR(ValidateJobId(job));
  ASSIGN_OR_RETURN(std::shared_ptr<Store> store, SharedStore(inv));
  Progress progress(inv.HasFlag("--progress"));
  auto report_progress = [&](std::string_view phase, uint64_t done, uint64_t total) {
    progress.Report(std::string(what) + ": " + std::string(phase) + " " + std::to_string(done) +
                    "/" + std::to_string(total));
  };
  const bool train = inv.HasFlag("--train");
  std::optional<std::string> shard_flag(inv.FlagValue("--shard"));
  std::optional<std::string> of_flag(inv.FlagValue("--of"));
  Result<IndexJobReport> r = InvalidArgument("no stage");
  std::optional<ShardIndex> index;
  if (train) {
    if (shard_flag) return inv.Usage("--train runs the train stage: it takes --of M, not --shard");
    if (!of_flag) return inv.Usage("--train needs --of M (the number of shards to follow)");
    ASSIGN_OR_RETURN(uint64_t of, ParseU64("--of", *of_flag));
    if (of == 0 || of > kMaxShards) {
      return InvalidArgument("--of " + std::to_string(of) + " is out of range: 1.." +
                             std::to_string(kMaxShards));
    }
    BuildIndexOptions o;
    if (options != nullptr) {
      o = *options;
    } else {
      ASSIGN_OR_RETURN(o, StoredIndexOptions(store, name, BranchFlag(inv), field));
    }
    r = TrainIndexJob(store, name, job, BranchFlag(inv), field, static_cast<uint32_t>(of), o,
                      report_progress);
  } else {
    ASSIGN_OR_RETURN(ShardIndex si, ResolveShardIndex(shard_flag, of_flag));
    index = si;
    r = RunIndexShard(store, name, job, si, {}, report_progress);
  }
  progress.Done();
  if (!r.ok()) return r.status();
  if (r->field != field) {
    return InvalidArgument("job " + Quote(job) + " builds the index of field " + Quote(r->field) +
                           ", not " + Quote(field));
  }
  const std::string stage = train ? "train" : "shard";
  if (inv.json()) {
    JsonObject o;
    o.Add("dataset", name).Add("job", job).Add("stage", stage).Add("field", r->field);
    o.Add("branch", r->branch).Add("of", uint64_t{r->of});
    if (index) {
      o.Add("shard", uint64_t{index->shard}).Add("start", r->start);
      if (r->end != UINT64_MAX) o.Add("end", r->end);
    }
    o.Add("already_done", r->already_done).Add("cells", uint64_t{r->cells});
    o.Add("entries", r->entries).Add("buckets", r->buckets);
    o.Add("index", r->index.ToString()).Add("base", r->base.ToString());
    std::string secs;
    AppendJsonDouble(progress.ElapsedSeconds(), &secs);
    o.AddRaw("seconds", secs);
    inv.PrintJson(o);
    return Status::Ok();
  }
  const std::string who = train ? "train stage of job " + Quote(job)
                                : "shard " + std::to_string(index->shard) + " of " +
                                      std::to_string(index->of) + " of job " + Quote(job);
  if (r->already_done) {
    inv.PrintLine(who + " was already done (index object " + r->index.ToString() +
                  "); nothing written");
  } else if (train) {
    inv.PrintLine("trained " + std::to_string(r->cells) + " cells for " + field + " as the " + who +
                  " (base " + r->base.ToString() + "); run shards 0.." + std::to_string(r->of - 1) +
                  " with `dreamdb " + std::string(what) + " " + name + " " + field + " --job " +
                  job + " --shard N --of " + std::to_string(r->of) + "`");
  } else {
    inv.PrintLine("assigned " + std::to_string(r->entries) + " entries in " +
                  std::to_string(r->buckets) + " buckets as " + who + " (anchors from " +
                  std::to_string(r->start) + "); publish with `dreamdb commit " + name + " --job " +
                  job + "` once every shard is done");
  }
  return Status::Ok();
}

// --train/--shard/--of without --job are usage errors.
Status CheckJobFlags(Invocation& inv) {
  if (!inv.FlagValue("--job") &&
      (inv.HasFlag("--train") || inv.FlagValue("--shard") || inv.FlagValue("--of"))) {
    return inv.Usage("--train/--shard/--of need --job J (the sharded build they belong to)");
  }
  return Status::Ok();
}

Status RunBuild(Invocation& inv) {
  const std::string& name = inv.Arg("NAME");
  const std::string& field = inv.Arg("FIELD");
  RETURN_IF_ERROR(CheckJobFlags(inv));
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
  if (inv.FlagValue("--job")) return RunBuildJob(inv, "index build", &o);
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
  IndexStatusOptions so;
  so.balance = true;
  so.sample = 64;
  if (inv.HasFlag("--sample")) {
    ASSIGN_OR_RETURN(so.sample, U32Flag(inv, "--sample"));
  }
  ASSIGN_OR_RETURN(auto ds, OpenForRead(inv, name));
  ASSIGN_OR_RETURN(IndexInfo info, ds->IndexStatus(inv.Arg("FIELD"), so));
  PrintInfo(inv, name, info);
  return Status::Ok();
}

// index rebuild / index step: runs `op` with progress, then prints what it did.
Status RunMaintenance(Invocation& inv, std::string_view what, bool step) {
  const std::string& name = inv.Arg("NAME");
  const std::string& field = inv.Arg("FIELD");
  ASSIGN_OR_RETURN(auto ds, OpenForWrite(inv, name));
  Progress progress(inv.HasFlag("--progress"));
  auto report_progress = [&](std::string_view phase, uint64_t done, uint64_t total) {
    progress.Report(std::string(what) + ": " + std::string(phase) + " " + std::to_string(done) +
                    "/" + std::to_string(total));
  };
  const CommitOptions commit = CommitOptionsFrom(inv, std::string(what) + " " + field);
  StepIndexReport r;
  Result<CommitInfo> done = step ? ds->StepIndex(field, {}, &r, report_progress, commit)
                                 : ds->RebuildIndex(field, report_progress, commit);
  progress.Done();
  if (!done.ok()) return done.status();
  ASSIGN_OR_RETURN(IndexInfo st, ds->IndexStatus(field));
  if (inv.json()) {
    JsonObject o;
    o.Add("dataset", name).Add("branch", ds->branch()).Add("field", field);
    if (step) o.Add("changed", r.changed);
    o.Add("algorithm", st.algorithm).Add("cells", static_cast<uint64_t>(st.cells));
    o.Add("nprobe", static_cast<uint64_t>(st.nprobe)).Add("entries", st.entries);
    o.Add("buckets", st.buckets);
    if (step) {
      o.Add("cells_before", static_cast<uint64_t>(r.cells_before));
      o.Add("split", static_cast<uint64_t>(r.split)).Add("merged", static_cast<uint64_t>(r.merged));
      o.Add("renumbered", static_cast<uint64_t>(r.renumbered));
      o.Add("entries_moved", r.entries_moved).Add("stale_dropped", r.stale_dropped);
      o.Add("buckets_written", r.buckets_written).Add("buckets_kept", r.buckets_kept);
      o.Add("nprobe_before", static_cast<uint64_t>(r.nprobe_before));
    }
    if (st.calibration_queries != 0) o.AddRaw("recall", FormatRecall(st.calibration_recall));
    o.Add("index", st.index.ToString()).Add("head", done->manifest.ToString());
    std::string secs;
    AppendJsonDouble(progress.ElapsedSeconds(), &secs);
    o.AddRaw("seconds", secs);
    inv.PrintJson(o);
    return Status::Ok();
  }
  if (step && !r.changed) {
    inv.PrintLine("index of " + field + " is balanced (" + std::to_string(st.cells) +
                  " cells): nothing to do; head " + done->manifest.ToString());
    return Status::Ok();
  }
  if (step) {
    inv.PrintLine(
        "stepped ivf index on " + field + ": " + std::to_string(r.cells_before) + " -> " +
        std::to_string(r.cells_after) + " cells (" + std::to_string(r.split) + " split, " +
        std::to_string(r.merged) + " merged, " + std::to_string(r.renumbered) + " renumbered); " +
        std::to_string(r.entries_moved) + " entries re-encoded, " +
        std::to_string(r.stale_dropped) + " stale dropped; " + std::to_string(r.buckets_written) +
        " buckets written, " + std::to_string(r.buckets_kept) + " reused; nprobe " +
        std::to_string(r.nprobe_before) + " -> " + std::to_string(st.nprobe) + "; head " +
        done->manifest.ToString());
  } else {
    inv.PrintLine("rebuilt " + st.algorithm + " index on " + field + ": " +
                  std::to_string(st.cells) + " cells, " + std::to_string(st.entries) +
                  " entries, nprobe " + std::to_string(st.nprobe) + "; head " +
                  done->manifest.ToString());
  }
  return Status::Ok();
}

Status RunRebuild(Invocation& inv) {
  RETURN_IF_ERROR(CheckJobFlags(inv));
  if (inv.FlagValue("--job")) return RunBuildJob(inv, "index rebuild", nullptr);
  return RunMaintenance(inv, "index rebuild", false);
}
Status RunStep(Invocation& inv) { return RunMaintenance(inv, "index step", true); }

constexpr Flag kJobFlag{.name = "--job",
                        .value_name = "J",
                        .help =
                            "run one stage of sharded build J (spec/14 §19.10): --train, "
                            "or one shard; publish with `dreamdb commit NAME --job J`"};
constexpr Flag kTrainFlag{
    .name = "--train",
    .help = "with --job: the train stage (plans the job on the branch's head with --of M shards)"};
constexpr Flag kShardFlag{.name = "--shard",
                          .value_name = "N",
                          .help =
                              "with --job: this shard, 0..M-1 (default: from "
                              "SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX)"};
constexpr Flag kOfFlag{.name = "--of",
                       .value_name = "M",
                       .help =
                           "with --job: the number of shards (default: "
                           "SLURM_ARRAY_TASK_COUNT or DREAMDB_SHARD_COUNT)"};

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
        "\"degree\"? (graph), \"index\", \"head\", \"seconds\"}.\n"
        "Sharded (ivf, imi, lsh; spec/14 §19.10): --job J --train --of M trains the model on\n"
        "the branch's head and plans M shards; --job J [--shard N --of M] assigns and encodes\n"
        "shard N's anchor range; `dreamdb commit NAME --job J` joins the shards' buckets per\n"
        "cell and publishes the index: the same index object as a one-machine build with the\n"
        "same options. Every stage is idempotent. JSON of a stage: {\"dataset\", \"job\",\n"
        "\"stage\" (train|shard), \"field\", \"branch\", \"of\", \"shard\"?, \"start\"?, "
        "\"end\"?,\n"
        "\"already_done\", \"cells\", \"entries\", \"buckets\", \"index\", \"base\", \"seconds\"}.",
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
              kProgressFlag,
              kJobFlag,
              kTrainFlag,
              kShardFlag,
              kOfFlag},
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
        "\"balance\"? (ivf/imi/lsh: entries per cell, live or stale: {\"nonempty\" cells,\n"
        "\"max\", \"mean\" (ivf: over all cells; imi/lsh: over non-empty ones),\n"
        "\"max_over_mean\", \"cv\" (standard deviation / mean), \"over_2x\", \"under_quarter\"\n"
        "(cells above 2x / below 1/4 of the mean)}), \"drift\"? (ivf/imi/lsh with --sample > 0:\n"
        "{\"queries\", \"nprobe\", \"recall\": recall@10 now at the stored nprobe against brute\n"
        "force, \"calibrated_recall\": the recall measured at that nprobe when the index was\n"
        "built or last stepped (null: not calibrated), \"drift\": calibrated - now}).\n"
        "nprobe/ef are what a search without --nprobe/--ef uses: the calibrated setting\n"
        "reaching recall@10 0.95 on a sample of the indexed vectors, or the built-in default.\n"
        "The balance reads every bucket of the index; the drift searches --sample stored\n"
        "vectors (every live/N-th, deterministic; each leaves its own record out) through\n"
        "the index and by brute force. See index step and index rebuild to act on them.",
    .positionals = {{.name = "NAME", .help = "the dataset"},
                    {.name = "FIELD", .help = "the embedding field"}},
    .flags = {kAtFlag,
              {.name = "--sample",
               .value_name = "N",
               .help = "queries of the recall-drift measurement (default 64; 0: skip it)"}},
    .run = RunStatus,
});

const Registrar kRebuild({
    .path = "index rebuild",
    .summary = "Retrain the spatial index of a field from scratch with its stored settings",
    .description =
        "Builds FIELD's index again as index build does, with the settings of the index it\n"
        "replaces: algorithm, metric, bits, quantizer, training seed and (graph) degree; the\n"
        "cells are the schema's declared count, else the algorithm's default for today's\n"
        "size. Calibrates and commits the new index in one commit (spec/21 §8.7).\n"
        "JSON: {\"dataset\", \"branch\", \"field\", \"algorithm\", \"cells\", \"nprobe\",\n"
        "\"entries\", \"buckets\", \"recall\"? (calibrated recall@10 at nprobe), \"index\",\n"
        "\"head\", \"seconds\"}.\n"
        "Sharded like index build: --job J --train --of M (with the stored settings), then\n"
        "--job J --shard N --of M, then `dreamdb commit NAME --job J` (spec/14 §19.10).",
    .positionals = {{.name = "NAME", .help = "the dataset"},
                    {.name = "FIELD", .help = "the embedding field"}},
    .flags = {kBranchFlag, kMessageFlag, kProgressFlag, kJobFlag, kTrainFlag, kShardFlag, kOfFlag},
    .run = RunRebuild,
});

const Registrar kStep({
    .path = "index step",
    .summary = "Split overfull and merge tiny cells of an ivf index, rewriting only those",
    .description =
        "One maintenance step of FIELD's ivf index (spec/21 §8.7). With T = entries / target\n"
        "cells (the schema's declared cells, else round(sqrt(entries)), what a fresh build\n"
        "would train): cells above 1.5T are split by k-means inside the cell into\n"
        "round(size / T) cells, cells below T/4 are merged away, and only the live entries of\n"
        "those cells are reassigned (to their nearest cell of the new centroid table) and\n"
        "re-encoded; stale entries there are dropped. Other cells keep their centroids and\n"
        "their bucket objects as they are. Two such rounds run (the second evens out the\n"
        "parts of the first); the new model, buckets, directory pages and index object are\n"
        "calibrated again (nprobe for recall@10 0.95) and published in one commit. A\n"
        "balanced index commits nothing (\"changed\": false).\n"
        "JSON: {\"dataset\", \"branch\", \"field\", \"changed\", \"algorithm\", \"cells\",\n"
        "\"nprobe\", \"entries\", \"buckets\", \"cells_before\", \"split\", \"merged\",\n"
        "\"renumbered\" (cells moved into a freed slot: bucket bytes rewritten), "
        "\"entries_moved\",\n"
        "\"stale_dropped\", \"buckets_written\", \"buckets_kept\" (reused unchanged),\n"
        "\"nprobe_before\", \"recall\"?, \"index\", \"head\", \"seconds\"}.",
    .positionals = {{.name = "NAME", .help = "the dataset"},
                    {.name = "FIELD", .help = "the embedding field"}},
    .flags = {kBranchFlag, kMessageFlag, kProgressFlag},
    .run = RunStep,
});

}  // namespace
}  // namespace dreamdb::cli
