// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb cat NAME [--at REF] [--fields A,B] [--range START:END | --since T --until T]
//                  [--limit N] [--format jsonl|table] [--blobs-base64]
#include "cli/dataset_util.h"
#include "dreamdb/quote.h"

namespace dreamdb::cli {
namespace {

// "START:END", either side may be empty: [START, END) of anchors.
Status ParseRange(std::string_view text, ScanOptions* options) {
  size_t colon = text.find(':');
  if (colon == std::string_view::npos) {
    return InvalidArgument("--range " + Quote(text) +
                           ": expected START:END (anchors; either may be empty)");
  }
  std::string_view start = text.substr(0, colon);
  std::string_view end = text.substr(colon + 1);
  if (!start.empty()) {
    ASSIGN_OR_RETURN(options->start, ParseU64("--range START", start));
  }
  if (!end.empty()) {
    ASSIGN_OR_RETURN(options->end, ParseU64("--range END", end));
  }
  if (options->start > options->end) {
    return InvalidArgument("--range " + Quote(text) + ": START is after END");
  }
  return Status::Ok();
}

// --since/--until: RFC 3339 times; the anchors are ns since the epoch (time anchors,
// Dataset::TimeAnchorIter), so the window is an anchor range and only it is read.
Status ParseTimeWindow(Invocation& inv, ScanOptions* options) {
  auto bound = [](const char* flag, std::string_view text) -> Result<uint64_t> {
    auto ns = ParseRfc3339(text);
    if (!ns.ok()) return InvalidArgument(std::string(flag) + ": " + ns.status().message());
    if (*ns < 0) {
      return InvalidArgument(std::string(flag) + " " + Quote(text) +
                             " is before 1970-01-01T00:00:00Z; time anchors start there");
    }
    return static_cast<uint64_t>(*ns);
  };
  auto since = inv.FlagValue("--since");
  auto until = inv.FlagValue("--until");
  if (since) {
    ASSIGN_OR_RETURN(options->start, bound("--since", *since));
  }
  if (until) {
    ASSIGN_OR_RETURN(options->end, bound("--until", *until));
  }
  if (options->start > options->end) {
    return InvalidArgument("--since " + Quote(*since) + " is after --until " + Quote(*until));
  }
  return Status::Ok();
}

Status Run(Invocation& inv) {
  ScanOptions options;
  ASSIGN_OR_RETURN(options.fields, FieldsFlag(inv));
  const bool window = inv.FlagValue("--since") || inv.FlagValue("--until");
  if (auto range = inv.FlagValue("--range")) {
    if (window) return inv.Usage("--range cannot be combined with --since/--until");
    RETURN_IF_ERROR(ParseRange(*range, &options));
  }
  if (window) RETURN_IF_ERROR(ParseTimeWindow(inv, &options));
  if (auto limit = inv.FlagValue("--limit")) {
    ASSIGN_OR_RETURN(options.limit, ParseU64("--limit", *limit));
  }
  std::string_view format = inv.FlagValue("--format").value_or("jsonl");
  if (format != "jsonl" && format != "table") {
    return inv.Usage("--format " + Quote(format) + ": expected jsonl or table");
  }
  if (format == "table" && inv.json()) {
    return inv.Usage("--format table cannot be combined with --json");
  }
  RenderOptions render{.blobs_base64 = inv.HasFlag("--blobs-base64")};
  ASSIGN_OR_RETURN(auto ds, OpenForRead(inv, inv.Arg("NAME")));
  if (options.limit == 0) return Status::Ok();
  ASSIGN_OR_RETURN(auto reader, ds->Scan(options));
  TablePrinter table(inv);
  for (;;) {
    ASSIGN_OR_RETURN(std::optional<Batch> batch, reader->Next());
    if (!batch) break;
    PrintRecords(inv, *batch, render, format == "table" ? &table : nullptr);
  }
  return Status::Ok();
}

const Registrar kRegistrar({
    .path = "cat",
    .summary = "Print a dataset's records",
    .description =
        "Streams the live records in ascending anchor order as JSON Lines (also without\n"
        "--json): {\"anchor\": N, \"<field>\": value, ...}. null for a missing value;\n"
        "timestamps as integer ns; floats as numbers or \"nan\"/\"inf\"/\"-inf\"; blobs as\n"
        "{\"size\", \"mime\"} (+ \"base64\" with --blobs-base64); embeddings as lists; arrays\n"
        "as nested lists. --format table prints an aligned table instead (timestamps in\n"
        "RFC 3339, long cells cut). --since/--until read the window [since, until) of a\n"
        "dataset whose anchors are times (ns since the epoch), and only that window.",
    .positionals = {{.name = "NAME", .help = "the dataset"}},
    .flags = {kAtFlag,
              kFieldsFlag,
              {.name = "--range",
               .value_name = "START:END",
               .help = "only anchors START <= anchor < END (either may be empty)"},
              {.name = "--since",
               .value_name = "TIME",
               .help = "time anchors: only records at or after TIME (RFC 3339)"},
              {.name = "--until",
               .value_name = "TIME",
               .help = "time anchors: only records before TIME (RFC 3339)"},
              {.name = "--limit", .value_name = "N", .help = "stop after N records"},
              {.name = "--format", .value_name = "F", .help = "jsonl (default) or table"},
              kBlobsBase64Flag},
    .run = Run,
});

}  // namespace
}  // namespace dreamdb::cli
