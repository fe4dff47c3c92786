// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb clone SRC DST [--ref R]... [--parallel N]
#include "dreamdb/clone.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "cli/cli.h"
#include "dreamdb/quote.h"

namespace dreamdb::cli {
namespace {

Status Run(Invocation& inv) {
  CloneOptions options;
  if (auto refs = inv.FlagValue("--ref")) {
    // Comma-separated; --ref may also be given once per ref.
    std::string_view list = *refs;
    size_t start = 0;
    while (start <= list.size()) {
      size_t end = list.find(',', start);
      if (end == std::string_view::npos) end = list.size();
      if (end > start) options.refs.emplace_back(list.substr(start, end - start));
      start = end + 1;
    }
  }
  if (auto parallel = inv.FlagValue("--parallel")) {
    int n = 0;
    for (char c : *parallel) {
      if (c < '0' || c > '9' || n > 1000) return inv.Usage("--parallel must be 1..64");
      n = n * 10 + (c - '0');
    }
    if (n < 1 || n > 64) return inv.Usage("--parallel must be 1..64");
    options.parallelism = n;
  }
  ASSIGN_OR_RETURN(std::shared_ptr<Store> src,
                   inv.OpenStore("src", inv.Arg("SRC"), StoreOpenMode::kMustExist));
  ASSIGN_OR_RETURN(std::shared_ptr<Store> dst,
                   inv.OpenStore("dst", inv.Arg("DST"), StoreOpenMode::kCreateIfMissing));
  const bool tty = ::isatty(STDERR_FILENO) == 1;
  const bool quiet = inv.HasFlag("--quiet");
  auto last = std::chrono::steady_clock::now() - std::chrono::hours(1);
  std::string last_phase;
  options.progress = [&](const CloneProgress& p) {
    if (quiet) return;
    const auto now = std::chrono::steady_clock::now();
    const bool phase_end = p.total != 0 && p.done == p.total;
    if (!phase_end && p.phase == last_phase &&
        now - last < std::chrono::milliseconds(tty ? 100 : 1000)) {
      return;
    }
    last = now;
    last_phase = std::string(p.phase);
    std::string line = "clone: " + std::string(p.phase) + " " + std::to_string(p.done);
    if (p.total != 0) line += "/" + std::to_string(p.total);
    line += p.phase == "walk" ? " objects" : p.phase == "refs" ? " refs" : " objects";
    if (p.phase == "copy") {
      if (p.total != 0) {
        constexpr int kWidth = 30;
        int filled = static_cast<int>(kWidth * p.done / p.total);
        line += " [" + std::string(filled, '#') + std::string(kWidth - filled, '.') + "]";
      }
      line += " " + std::to_string(p.bytes_copied) + " bytes copied";
    }
    std::fputs((tty ? "\r\x1b[K" + line + (phase_end ? "\n" : "") : line + "\n").c_str(), stderr);
  };
  CloneReport report;
  Status st = Clone(*src, *dst, options, &report);
  if (tty && !quiet) std::fputs("\r\x1b[K", stderr);
  if (!st.ok() && st.code() != StatusCode::kConflict) return st;
  if (inv.json()) {
    std::string conflicts = "[";
    for (size_t i = 0; i < report.conflicts.size(); ++i) {
      if (i > 0) conflicts += ",";
      AppendJsonString(report.conflicts[i], &conflicts);
    }
    conflicts += "]";
    inv.PrintJson(JsonObject()
                      .Add("src", src->uri())
                      .Add("dst", dst->uri())
                      .Add("refs", report.refs)
                      .Add("refs_created", report.refs_created)
                      .Add("refs_updated", report.refs_updated)
                      .Add("refs_unchanged", report.refs_unchanged)
                      .Add("objects", report.objects)
                      .Add("objects_copied", report.objects_copied)
                      .Add("objects_present", report.objects_present)
                      .Add("bytes_copied", report.bytes_copied)
                      .AddRaw("conflicts", conflicts));
  } else {
    inv.PrintLine("cloned " + std::to_string(report.refs) + " refs (" +
                  std::to_string(report.refs_created) + " created, " +
                  std::to_string(report.refs_updated) + " moved forward, " +
                  std::to_string(report.refs_unchanged) +
                  " unchanged): " + std::to_string(report.objects_copied) + " objects copied (" +
                  std::to_string(report.bytes_copied) + " bytes), " +
                  std::to_string(report.objects_present) + " already present");
    for (const std::string& c : report.conflicts) inv.PrintLine("left alone: " + c);
  }
  return st;
}

const Registrar kRegistrar({
    .path = "clone",
    .summary = "Copy refs and everything they reach from one store to another",
    .description =
        "Copies the closure of the source's refs (all of them, or those named with --ref:\n"
        "a ref name or a dataset name) to DST, which is created if missing: between any two\n"
        "stores (file:// and s3://, bucket to bucket). Objects the destination has are\n"
        "skipped; objects are copied first and refs last, so an interrupted clone leaves no\n"
        "ref pointing at a missing object and running it again resumes. A ref the\n"
        "destination already has is moved only forward (from an ancestor of the source's\n"
        "value); a diverged ref is left alone, reported, and the exit code is conflict (6).\n"
        "Progress goes to stderr. JSON: {\"src\", \"dst\", \"refs\", \"refs_created\",\n"
        "\"refs_updated\", \"refs_unchanged\", \"objects\", \"objects_copied\",\n"
        "\"objects_present\", \"bytes_copied\", \"conflicts\"}.",
    .positionals = {{.name = "SRC", .help = "the source store URI"},
                    {.name = "DST", .help = "the destination store URI"}},
    .flags = {{.name = "--ref",
               .value_name = "R[,R...]",
               .help = "copy only these refs or datasets (comma-separated)"},
              {.name = "--parallel", .value_name = "N", .help = "objects copied at once (8)"},
              {.name = "--quiet", .help = "no progress on stderr"}},
    .run = Run,
});

}  // namespace
}  // namespace dreamdb::cli
