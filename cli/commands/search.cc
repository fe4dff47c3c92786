// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb search NAME FIELD (--vector "0.1,0.2,..." | --like ANCHOR) [-k/--top N] [--nprobe N]
//   [--ef N] [--recall R]
//   [--where "label == 3"]... [--fields A,B] [--at REF] [--exact] [--no-rerank]
#include "dreamdb/search.h"

#include <cmath>
#include <cstdlib>

#include "cli/dataset_util.h"
#include "dreamdb/quote.h"

namespace dreamdb::cli {
namespace {

Result<std::vector<float>> ParseVector(std::string_view text) {
  std::vector<float> out;
  std::string s(text);
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t comma = s.find(',', pos);
    std::string item = s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    char* end = nullptr;
    float v = std::strtof(item.c_str(), &end);
    if (item.empty() || end != item.c_str() + item.size()) {
      return InvalidArgument("--vector: " + Quote(item) + " at position " +
                             std::to_string(out.size()) + " is not a number");
    }
    out.push_back(v);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

// --where "a == 1; b < 2": predicates separated by ';' (a flag is given once).
Result<std::vector<Predicate>> ParseWhere(std::string_view text) {
  std::vector<Predicate> out;
  size_t pos = 0;
  std::string s(text);
  while (pos <= s.size()) {
    size_t semi = s.find(';', pos);
    std::string item = s.substr(pos, semi == std::string::npos ? std::string::npos : semi - pos);
    if (item.find_first_not_of(' ') != std::string::npos) {
      ASSIGN_OR_RETURN(Predicate p, ParsePredicate(item));
      out.push_back(std::move(p));
    }
    if (semi == std::string::npos) break;
    pos = semi + 1;
  }
  return out;
}

Status Run(Invocation& inv) {
  const std::string& name = inv.Arg("NAME");
  const std::string& field = inv.Arg("FIELD");
  auto vec = inv.FlagValue("--vector");
  auto like = inv.FlagValue("--like");
  if (vec.has_value() == like.has_value()) {
    return inv.Usage("give exactly one of --vector and --like");
  }
  SearchOptions o;
  if (auto k = inv.FlagValue("--top")) {
    ASSIGN_OR_RETURN(uint64_t kv, ParseU64("-k", *k));
    if (kv == 0 || kv > 100000)
      return InvalidArgument("-k must be 1 to 100000, got " + std::string(*k));
    o.k = static_cast<uint32_t>(kv);
  }
  if (auto np = inv.FlagValue("--nprobe")) {
    ASSIGN_OR_RETURN(uint64_t v, ParseU64("--nprobe", *np));
    if (v == 0 || v > UINT32_MAX) return InvalidArgument("--nprobe must be at least 1");
    o.nprobe = static_cast<uint32_t>(v);
  }
  if (auto ef = inv.FlagValue("--ef")) {
    ASSIGN_OR_RETURN(uint64_t v, ParseU64("--ef", *ef));
    if (v == 0 || v > UINT32_MAX) return InvalidArgument("--ef must be at least 1");
    o.ef = static_cast<uint32_t>(v);
  }
  if (auto r = inv.FlagValue("--recall")) {
    ASSIGN_OR_RETURN(std::vector<float> v, ParseVector(*r));
    if (v.size() != 1 || !(v[0] > 0 && v[0] <= 1)) {
      return InvalidArgument("--recall must be a number in (0, 1], got " + Quote(*r));
    }
    o.recall = v[0];
  }
  if (auto w = inv.FlagValue("--where")) {
    ASSIGN_OR_RETURN(o.where, ParseWhere(*w));
  }
  ASSIGN_OR_RETURN(o.fields, FieldsFlag(inv));
  o.exact = inv.HasFlag("--exact");
  o.rerank = !inv.HasFlag("--no-rerank");
  ASSIGN_OR_RETURN(auto ds, OpenForRead(inv, name));
  std::vector<float> q;
  std::string query_desc;
  if (vec) {
    ASSIGN_OR_RETURN(q, ParseVector(*vec));
  } else {
    ASSIGN_OR_RETURN(uint64_t anchor, ParseU64("--like", *like));
    ASSIGN_OR_RETURN(Batch b, ds->Take({anchor}, {field}));
    if (b.columns.empty() || b.columns[0].type() != FieldType::kEmbedding) {
      return InvalidArgument("search: field " + Quote(field) + " is not an embedding");
    }
    if (!b.columns[0].IsValid(0)) {
      return InvalidArgument("search: anchor " + std::to_string(anchor) + " has no value for " +
                             Quote(field));
    }
    auto f = b.columns[0].FloatsAt(0);
    q.assign(f.begin(), f.end());
  }
  ASSIGN_OR_RETURN(SearchResults r, ds->Search(field, q.data(), 1, q.size(), o));
  // Each hit as one record: {"rank", "anchor", "score", fields...}.
  Batch fields;
  fields.anchors = r.anchors;
  fields.columns = r.columns;
  RenderOptions render;
  for (size_t i = 0; i < r.anchors.size(); ++i) {
    std::string score;
    AppendJsonFloat(r.scores[i], &score);
    if (inv.json()) {
      // RecordJson renders {"anchor": N, fields...}; splice rank and score in after anchor.
      std::string rec = RecordJson(fields, i, render);
      std::string head = "{\"rank\":" + std::to_string(i + 1) + ",";
      size_t cut = rec.find(',');
      std::string anchor_part =
          cut == std::string::npos ? rec.substr(1, rec.size() - 2) : rec.substr(1, cut - 1);
      std::string rest = cut == std::string::npos ? "}" : rec.substr(cut);
      inv.PrintLine(head + anchor_part + ",\"score\":" + score + rest);
    } else {
      std::string line = std::to_string(i + 1) + "\t" + std::to_string(r.anchors[i]) + "\t" + score;
      if (!r.columns.empty()) line += "\t" + RecordJson(fields, i, render);
      inv.PrintLine(line);
    }
  }
  return Status::Ok();
}

const Registrar kRegistrar({
    .path = "search",
    .summary = "Find the records nearest to a vector (vector search)",
    .description =
        "Searches embedding FIELD for the -k records nearest to --vector (comma-separated\n"
        "numbers) or to the stored value of --like ANCHOR, through the field's spatial index\n"
        "when one is built ('dreamdb index build'), else by brute force (--exact forces it).\n"
        "Scores: cosine similarity, inner product, or L2 distance (the index's metric;\n"
        "without an index, the metric the schema declares, else cosine).\n"
        "--where takes predicates 'FIELD OP VALUE' (OP: == != < <= > >= in), several\n"
        "separated by ';' (all must hold), e.g. --where \"label == 3; split in ('a','b')\".\n"
        "Text: one line per hit, 'RANK<TAB>ANCHOR<TAB>SCORE[<TAB>{fields}]', best first.\n"
        "JSON Lines: {\"rank\", \"anchor\", \"score\", <fields>...} per hit.",
    .positionals = {{.name = "NAME", .help = "the dataset"},
                    {.name = "FIELD", .help = "the embedding field"}},
    .flags =
        {{.name = "--vector", .value_name = "V", .help = "the query: comma-separated numbers"},
         {.name = "--like", .value_name = "ANCHOR", .help = "the query: this record's value"},
         {.name = "--top", .short_name = "-k", .value_name = "N", .help = "results (default 10)"},
         {.name = "--nprobe",
          .value_name = "N",
          .help = "index cells probed (default: the index's)"},
         {.name = "--ef",
          .value_name = "N",
          .help = "graph index: search beam width (default: the index's)"},
         {.name = "--recall",
          .value_name = "R",
          .help = "aim for recall@10 R, e.g. 0.99: the index's calibrated setting for it"},
         {.name = "--where", .value_name = "PRED", .help = "filter predicates, ';'-separated"},
         kFieldsFlag,
         kAtFlag,
         {.name = "--exact", .help = "brute force over the stored vectors"},
         {.name = "--no-rerank", .help = "return the index's estimates without exact re-ranking"}},
    .run = Run,
});

}  // namespace
}  // namespace dreamdb::cli
