// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb compare-refs NAME REF REF... [--fields A,B] [--only-differing] [--limit N]
//                      [--range START:END] [--summary-only] [--blobs-base64]
#include <cmath>
#include <cstdio>
#include <optional>

#include "cli/dataset_util.h"
#include "dreamdb/compare.h"
#include "dreamdb/quote.h"

namespace dreamdb::cli {
namespace {

std::string Num(double v) {
  std::string out;
  AppendJsonDouble(v, &out);
  return out;
}

// A number for people: up to 6 significant digits.
std::string Short(double v) {
  if (!std::isfinite(v)) return Num(v);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return buf;
}

void PrintSummary(Invocation& inv, const std::string& name, const CompareSummary& s) {
  if (inv.json()) {
    std::vector<std::string> manifests;
    for (const auto& m : s.manifests) manifests.push_back(m.ToString());
    std::string present = "[", stats = "[";
    for (size_t i = 0; i < s.present.size(); ++i) {
      if (i > 0) present += ", ";
      present += std::to_string(s.present[i]);
    }
    for (size_t i = 0; i < s.stats.size(); ++i) {
      if (i > 0) stats += ", ";
      stats += CompareFieldStatsJson(s, s.stats[i]);
    }
    JsonObject body;
    body.Add("dataset", name)
        .AddRaw("refs", JsonStringList(s.refs))
        .AddRaw("manifests", JsonStringList(manifests))
        .AddRaw("fields", JsonStringList(s.fields))
        .AddRaw("present", present + "]")
        .Add("anchors", s.anchors)
        .Add("differing", s.differing)
        .Add("emitted", s.emitted)
        .AddRaw("stats", stats + "]");
    inv.PrintJson(JsonObject().AddRaw("summary", body.Finish()));
    return;
  }
  std::string head = std::to_string(s.anchors) + " anchors of " + Quote(name) + " in ";
  for (size_t i = 0; i < s.refs.size(); ++i) {
    if (i > 0) head += ", ";
    head += s.refs[i];
    head += " (" + std::to_string(s.present[i]) + ")";
  }
  inv.PrintLine(head + "; " + std::to_string(s.differing) + " rows differ");
  for (const auto& st : s.stats) {
    const std::string& a = s.refs[st.a];
    const std::string& b = s.refs[st.b];
    std::string line = st.field + " (" + std::string(FieldTypeName(st.type)) + "), " + b + " vs " +
                       a + ": " + std::to_string(st.both) + " in both";
    if (st.only_a || st.only_b) {
      line += " (" + std::to_string(st.only_a) + " only in " + a + ", " +
              std::to_string(st.only_b) + " only in " + b + ")";
    }
    line += ", " + std::to_string(st.differing) + " differ";
    if (st.agreement) line += ", agreement " + Short(*st.agreement);
    if (st.mean_diff) {
      line += "; " + b + " - " + a + ": mean " + Short(*st.mean_diff) + ", median " +
              Short(*st.median_diff) + (st.median_approximate ? " (approximate)" : "") +
              ", mean |diff| " + Short(*st.mean_abs_diff);
    }
    if (st.mean_cosine) {
      line += "; cosine mean " + Short(*st.mean_cosine) + ", min " + Short(*st.min_cosine);
    }
    inv.PrintLine(line);
  }
}

Status ParseRange(std::string_view text, CompareOptions* options) {
  size_t colon = text.find(':');
  if (colon == std::string_view::npos) {
    return InvalidArgument("--range " + Quote(text) +
                           ": expected START:END (anchors; either may be empty)");
  }
  if (colon > 0) {
    ASSIGN_OR_RETURN(options->start, ParseU64("--range START", text.substr(0, colon)));
  }
  if (colon + 1 < text.size()) {
    ASSIGN_OR_RETURN(options->end, ParseU64("--range END", text.substr(colon + 1)));
  }
  if (options->start > options->end) {
    return InvalidArgument("--range " + Quote(text) + ": START is after END");
  }
  return Status::Ok();
}

Status Run(Invocation& inv) {
  const std::string& name = inv.Arg("NAME");
  const std::vector<std::string>& refs = inv.Args("REF");
  if (refs.size() < 2) {
    return inv.Usage("compare-refs needs at least 2 refs (the first is the baseline)");
  }
  CompareOptions options;
  ASSIGN_OR_RETURN(std::vector<std::string> fields, FieldsFlag(inv));
  options.only_differing = inv.HasFlag("--only-differing");
  if (auto limit = inv.FlagValue("--limit")) {
    ASSIGN_OR_RETURN(options.limit, ParseU64("--limit", *limit));
  }
  if (auto range = inv.FlagValue("--range")) RETURN_IF_ERROR(ParseRange(*range, &options));
  const bool summary_only = inv.HasFlag("--summary-only");
  RenderOptions render{.blobs_base64 = inv.HasFlag("--blobs-base64")};
  ASSIGN_OR_RETURN(std::shared_ptr<Store> store, SharedStore(inv));
  ASSIGN_OR_RETURN(auto reader, CompareRefs(store, name, refs, fields, options));
  if (summary_only) {
    ASSIGN_OR_RETURN(CompareSummary s, reader->Finish());
    PrintSummary(inv, name, s);
    return Status::Ok();
  }
  for (;;) {
    ASSIGN_OR_RETURN(std::optional<Batch> batch, reader->Next());
    if (!batch) break;
    PrintRecords(inv, *batch, render, nullptr);
  }
  PrintSummary(inv, name, reader->Summary());
  return Status::Ok();
}

const Registrar kRegistrar({
    .path = "compare-refs",
    .summary = "Compare fields across versions, side by side, with summary statistics",
    .description =
        "REFs are snapshot labels, branches ('branch:B' forces a branch) or manifest ids of\n"
        "dataset NAME; the first is the baseline. Streams one JSON line per anchor live in\n"
        "any ref, in ascending anchor order: {\"anchor\": N, \"<field>@<ref>\": value, ...},\n"
        "fields outer and refs inner, null where a ref lacks the anchor, the field or the\n"
        "value (values rendered as by 'dreamdb cat'). Then the summary: per field, each\n"
        "other ref against the baseline: anchors with a value in both, in one only, how many\n"
        "differ and the agreement rate; for int64, float64 and timestamp fields the mean,\n"
        "median and mean absolute value of the difference REF - BASELINE (the median is\n"
        "exact up to 65536 values, then from a fixed-size sample: marked approximate); for\n"
        "embeddings the mean and minimum cosine similarity. The summary always covers\n"
        "every anchor in --range, whatever --limit and --only-differing print.\n"
        "Text: the summary as readable lines. JSON Lines: the rows, then one line\n"
        "{\"summary\": {\"dataset\", \"refs\", \"manifests\", \"fields\", \"present\", "
        "\"anchors\",\n"
        "\"differing\", \"emitted\", \"stats\": [{\"field\", \"type\", \"baseline\", \"ref\",\n"
        "\"both\", \"only_baseline\", \"only_ref\", \"differing\", \"agreement\", ...}]}}.",
    .positionals = {{.name = "NAME", .help = "the dataset"},
                    {.name = "REF",
                     .help = "two or more versions; the first is the baseline",
                     .repeated = true}},
    .flags = {kFieldsFlag,
              {.name = "--only-differing",
               .help = "print only rows whose presence or values differ between refs"},
              {.name = "--limit", .value_name = "N", .help = "print at most N rows"},
              {.name = "--range",
               .value_name = "START:END",
               .help = "only anchors START <= anchor < END (either may be empty)"},
              {.name = "--summary-only", .help = "print only the summary"},
              kBlobsBase64Flag},
    .run = Run,
});

}  // namespace
}  // namespace dreamdb::cli
