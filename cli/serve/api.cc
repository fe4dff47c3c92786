// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// The JSON endpoints of `dreamdb serve` (spec/30-http-api.md §3). Each validates its
// parameters, calls the public API (include/dreamdb/) and renders JSON; responses whose
// size follows the data are streamed batch by batch (§2.6).
#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_set>
#include <utility>

#include "cli/dataset_util.h"
#include "cli/serve/internal.h"
#include "cli/sweep_json.h"
#include "dreamdb/compare.h"
#include "dreamdb/cost.h"
#include "dreamdb/search.h"
#include "dreamdb/sweep.h"

namespace dreamdb::serve {

using cli::AppendJsonDouble;
using cli::AppendJsonFloat;
using cli::AppendJsonString;
using cli::JsonObject;
using cli::JsonStringList;

namespace {

constexpr uint64_t kDefaultPage = 100;
constexpr uint64_t kMaxK = 1000;
constexpr size_t kMaxDims = 65536;
constexpr size_t kMaxWhere = 16;
constexpr size_t kMaxCompareRefs = 8;
constexpr uint64_t kDefaultHistory = 500;
constexpr uint64_t kMaxHistory = 10000;
constexpr uint64_t kMaxDatasets = 10000;
constexpr uint64_t kArrayInlineElements = 4096;
constexpr size_t kEmbeddingHead = 8;
constexpr uint64_t kWhereScanFactor = 100;
constexpr uint64_t kScanBatch = 1024;

#define SERVE_TRY(param, expr)                                             \
  do {                                                                     \
    ::dreamdb::Status serve_status_ = (expr);                              \
    if (!serve_status_.ok()) return ErrorFromStatus(serve_status_, param); \
  } while (0)

#define SERVE_CONCAT_INNER(a, b) a##b
#define SERVE_CONCAT(a, b) SERVE_CONCAT_INNER(a, b)
#define SERVE_ASSIGN_IMPL(tmp, lhs, param, expr)              \
  auto tmp = (expr);                                          \
  if (!tmp.ok()) return ErrorFromStatus(tmp.status(), param); \
  lhs = std::move(tmp).value()
#define SERVE_ASSIGN(lhs, param, expr) \
  SERVE_ASSIGN_IMPL(SERVE_CONCAT(serve_result_, __LINE__), lhs, param, expr)

// ---- Parameters ----

std::optional<std::string> Param(const httplib::Request& req, const char* name) {
  if (!req.has_param(name)) return std::nullopt;
  return req.get_param_value(name);
}

Result<uint64_t> ParseUint(std::string_view text) {
  if (text.empty() || text.size() > 20) return InvalidArgument("not a decimal integer");
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9')
      return InvalidArgument("'" + std::string(text) + "' is not a decimal integer");
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10)
      return InvalidArgument("'" + std::string(text) + "' is too large");
    v = v * 10 + d;
  }
  return v;
}

// A numeric parameter in [lo, hi]; `fallback` when absent.
Result<uint64_t> UintParam(const httplib::Request& req, const char* name, uint64_t fallback,
                           uint64_t lo, uint64_t hi, ApiError* error) {
  auto text = Param(req, name);
  if (!text) return fallback;
  auto v = ParseUint(*text);
  if (!v.ok() || *v < lo || *v > hi) {
    std::string why = v.ok() ? std::to_string(*v) + " is out of range " + std::to_string(lo) +
                                   ".." + std::to_string(hi)
                             : v.status().message();
    *error = ParamError(name, why);
    return InvalidArgument(why);
  }
  return *v;
}

Result<bool> BoolParam(const httplib::Request& req, const char* name, bool fallback,
                       ApiError* error) {
  auto text = Param(req, name);
  if (!text) return fallback;
  if (*text == "1" || *text == "true") return true;
  if (*text == "0" || *text == "false") return false;
  *error = ParamError(name, "expected 1, true, 0 or false");
  return InvalidArgument("bad boolean");
}

// Parses a parameter with a function that fills `perr` (a local ApiError of the handler)
// on failure.
#define SERVE_PARAM_IMPL(tmp, lhs, call) \
  auto tmp = (call);                     \
  if (!tmp.ok()) return perr;            \
  lhs = *tmp
#define SERVE_PARAM(lhs, call) SERVE_PARAM_IMPL(SERVE_CONCAT(serve_param_, __LINE__), lhs, call)

// A comma-separated list parameter; empty entries are refused.
Result<std::vector<std::string>> ListParam(const httplib::Request& req, const char* name) {
  auto text = Param(req, name);
  if (!text) return std::vector<std::string>{};
  return cli::ParseFieldList(name, *text);
}

// Fields named by `fields=` checked against the schema (default: every field).
Result<std::vector<std::string>> Projection(const httplib::Request& req, const Schema& schema,
                                            bool default_all) {
  ASSIGN_OR_RETURN(std::vector<std::string> fields, ListParam(req, "fields"));
  if (!req.has_param("fields")) {
    if (default_all) {
      for (const auto& f : schema.fields()) fields.push_back(f.name);
    }
    return fields;
  }
  std::set<std::string> seen;
  for (const auto& f : fields) {
    if (schema.Find(f) == nullptr) {
      return NotFound("unknown field '" + f + "'");
    }
    if (!seen.insert(f).second) return InvalidArgument("field '" + f + "' is named twice");
  }
  return fields;
}

Result<std::vector<Predicate>> WhereParam(const httplib::Request& req, const Schema* schema) {
  std::vector<Predicate> where;
  size_t n = req.get_param_value_count("where");
  if (n > kMaxWhere) {
    return InvalidArgument("at most " + std::to_string(kMaxWhere) + " predicates");
  }
  for (size_t i = 0; i < n; ++i) {
    ASSIGN_OR_RETURN(Predicate p, ParsePredicate(req.get_param_value("where", i)));
    if (schema != nullptr) RETURN_IF_ERROR(CheckPredicate(*schema, p));
    where.push_back(std::move(p));
  }
  return where;
}

// ---- Rendering ----

std::string PercentEncode(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '_' || c == '.' || c == '~';
    if (keep) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

struct RenderContext {
  std::string dataset;
  bool full_embeddings = false;
};

// One cell (spec/30 §3.6): blobs as {size, mime, url}, embeddings summarised unless full,
// large arrays summarised, everything else as `dreamdb cat --json`.
void AppendCell(const RenderContext& rc, const std::string& manifest, const std::string& field,
                const Column& col, uint64_t row, uint64_t anchor, std::string* out) {
  if (!col.IsValid(row)) {
    *out += "null";
    return;
  }
  const FieldSpec& f = col.field();
  switch (f.type) {
    case FieldType::kBlob: {
      JsonObject o;
      o.Add("size", static_cast<uint64_t>(col.BytesAt(row).size())).Add("mime", f.mime);
      o.Add("url", "/api/v1/datasets/" + PercentEncode(rc.dataset) + "/blob/" +
                       std::to_string(anchor) + "/" + PercentEncode(field) + "?ref=" + manifest);
      *out += o.Finish();
      return;
    }
    case FieldType::kEmbedding: {
      if (rc.full_embeddings) break;
      std::span<const float> v = col.FloatsAt(row);
      double norm = 0;
      for (float x : v) norm += static_cast<double>(x) * x;
      *out += "{\"dim\": " + std::to_string(v.size()) + ", \"norm\": ";
      AppendJsonDouble(std::sqrt(norm), out);
      *out += ", \"head\": [";
      for (size_t i = 0; i < std::min(v.size(), kEmbeddingHead); ++i) {
        if (i != 0) *out += ", ";
        AppendJsonFloat(v[i], out);
      }
      *out += "]}";
      return;
    }
    case FieldType::kArray: {
      uint64_t elements = 1;
      for (uint32_t d : f.shape) elements *= d;
      if (elements <= kArrayInlineElements) break;
      std::string shape = "[";
      for (size_t i = 0; i < f.shape.size(); ++i) {
        shape += (i ? ", " : "") + std::to_string(f.shape[i]);
      }
      shape += "]";
      *out += JsonObject()
                  .Add("dtype", DTypeName(f.dtype))
                  .AddRaw("shape", shape)
                  .Add("elements", elements)
                  .Add("truncated", true)
                  .Finish();
      return;
    }
    default:
      break;
  }
  cli::AppendValueJson(col, row, cli::RenderOptions{}, out);
}

void AppendAnchorKeys(uint64_t anchor, std::string* out) {
  *out += "\"anchor\": " + std::to_string(anchor) + ", \"anchor_str\": \"" +
          std::to_string(anchor) + "\"";
}

// {"anchor", "anchor_str", field: value, ...} for the columns named in `names` (column i
// is rendered under names[i], its blob urls use fields[i] and manifests[i]).
std::string RecordObject(const RenderContext& rc, const std::vector<const Column*>& cols,
                         const std::vector<std::string>& names,
                         const std::vector<std::string>& fields,
                         const std::vector<std::string>& manifests, uint64_t row, uint64_t anchor,
                         const char* extra = nullptr) {
  std::string out = "{";
  AppendAnchorKeys(anchor, &out);
  if (extra != nullptr) out += extra;
  for (size_t i = 0; i < cols.size(); ++i) {
    out += ", ";
    AppendJsonString(names[i], &out);
    out += ": ";
    AppendCell(rc, manifests[i], fields[i], *cols[i], row, anchor, &out);
  }
  out += "}";
  return out;
}

void SendJson(httplib::Response& res, const std::string& body) {
  res.status = 200;
  res.set_content(body, "application/json; charset=utf-8");
}

// Streams a JSON body: `next` appends the next piece to its argument and returns whether
// more follow; an error aborts the connection (the body stays unterminated, §2.6).
void StreamJson(httplib::Response& res, std::function<Result<bool>(std::string*)> next) {
  res.status = 200;
  auto state = std::make_shared<std::function<Result<bool>(std::string*)>>(std::move(next));
  res.set_chunked_content_provider("application/json; charset=utf-8",
                                   [state](size_t, httplib::DataSink& sink) {
                                     std::string chunk;
                                     Result<bool> more = (*state)(&chunk);
                                     if (!more.ok()) return false;
                                     if (!chunk.empty() && !sink.write(chunk.data(), chunk.size()))
                                       return false;
                                     if (!*more) sink.done();
                                     return true;
                                   });
}

std::string RefName(const std::string& dataset, const RefValue& ref, std::string* kind) {
  const std::string branches = dataset + "/branches/";
  const std::string snapshots = dataset + "/snapshots/";
  if (ref.name.starts_with(branches)) {
    *kind = "branch";
    return ref.name.substr(branches.size());
  }
  if (ref.name.starts_with(snapshots)) {
    *kind = "snapshot";
    return ref.name.substr(snapshots.size());
  }
  *kind = "";
  return {};
}

// The branch and snapshot refs of `dataset`; kNotFound naming the dataset when it has
// no branch.
Result<std::vector<RefValue>> DatasetRefs(Store& store, const std::string& dataset) {
  std::vector<RefValue> refs;
  bool any_branch = false;
  RETURN_IF_ERROR(store.ListRefs(dataset + "/", [&](const RefValue& r) {
    std::string kind;
    RefName(dataset, r, &kind);
    if (kind.empty()) return true;
    any_branch = any_branch || kind == "branch";
    refs.push_back(r);
    return true;
  }));
  if (!any_branch) return NotFound("dataset '" + dataset + "' not found");
  return refs;
}

// ---- Endpoints ----

Reply Health(Context& ctx, httplib::Response& res) {
  SendJson(res, JsonObject()
                    .Add("status", "ok")
                    .Add("version", ctx.options.version)
                    .Add("store", RedactStoreUri(ctx.store->uri()))
                    .Add("read_only", true)
                    .Add("auth", !ctx.options.token.empty())
                    .Add("web_root", !ctx.options.web_root.empty())
                    .Finish());
  return std::nullopt;
}

Reply Datasets(Context& ctx, httplib::Response& res) {
  std::vector<std::string> names;
  bool truncated = false;
  SERVE_TRY("", ListDatasets(*ctx.store, [&](std::string_view name) {
              if (names.size() >= kMaxDatasets) {
                truncated = true;
                return false;
              }
              names.emplace_back(name);
              return true;
            }));
  std::string list = "[";
  for (const auto& name : names) {
    uint64_t branches = 0, snapshots = 0;
    SERVE_TRY("", ctx.store->ListRefs(name + "/", [&](const RefValue& r) {
      std::string kind;
      RefName(name, r, &kind);
      branches += kind == "branch";
      snapshots += kind == "snapshot";
      return true;
    }));
    JsonObject o;
    o.Add("name", name);
    auto ds = ctx.datasets.Open(name, "branch:main");
    if (ds.ok()) {
      o.Add("count", (*ds)->Count()).Add("head", (*ds)->head().ToString());
    } else {
      // One unreadable dataset (say, a ref made by hand that names no manifest) must not
      // hide the others: it is listed with its error (spec/30 §3.2).
      o.AddRaw("count", "null").AddRaw("head", "null");
      if (ds.status().code() != StatusCode::kNotFound) {
        o.AddRaw("error", JsonObject()
                              .Add("code", StatusCodeName(ds.status().code()))
                              .Add("message", ds.status().message())
                              .Finish());
      }
    }
    o.Add("branches", branches).Add("snapshots", snapshots);
    list += (list.size() > 1 ? ", " : "") + o.Finish();
  }
  list += "]";
  SendJson(res, JsonObject().AddRaw("datasets", list).Add("truncated", truncated).Finish());
  return std::nullopt;
}

std::string FieldJson(const Dataset& ds, const FieldSpec& f) {
  JsonObject o;
  o.Add("name", f.name).Add("type", FieldTypeName(f.type)).Add("optional", f.optional);
  switch (f.type) {
    case FieldType::kBlob:
      o.Add("mime", f.mime);
      break;
    case FieldType::kEmbedding: {
      o.Add("dim", static_cast<uint64_t>(f.dim));
      auto info = ds.IndexStatus(f.name);
      JsonObject idx;
      if (info.ok() && info->built) {
        idx.Add("built", true)
            .Add("algorithm", info->algorithm)
            .Add("metric", info->metric)
            .Add("cells", static_cast<uint64_t>(info->cells))
            .Add("live", info->live)
            .Add("stale", info->stale);
      } else {
        idx.Add("built", false);
        if (f.index) idx.Add("metric", f.index->metric);
      }
      o.AddRaw("index", idx.Finish());
      break;
    }
    case FieldType::kArray: {
      std::string shape = "[";
      for (size_t i = 0; i < f.shape.size(); ++i) {
        shape += (i ? ", " : "") + std::to_string(f.shape[i]);
      }
      o.Add("dtype", DTypeName(f.dtype)).AddRaw("shape", shape + "]");
      break;
    }
    default:
      break;
  }
  return o.Finish();
}

Reply DatasetInfo(Context& ctx, const httplib::Request& req, httplib::Response& res,
                  const std::string& name) {
  const std::string ref = Param(req, "ref").value_or("main");
  SERVE_ASSIGN(std::shared_ptr<Dataset> ds, "ref", ctx.datasets.Open(name, ref));
  const Schema schema = ds->schema();
  std::string fields = "[";
  for (const auto& f : schema.fields()) {
    fields += (fields.size() > 1 ? ", " : "") + FieldJson(*ds, f);
  }
  std::vector<std::pair<std::string, std::string>> meta;
  for (const auto& [k, v] : ds->Meta()) meta.emplace_back(k, v);
  SendJson(res, JsonObject()
                    .Add("dataset", name)
                    .Add("ref", ref)
                    .Add("manifest", ds->head().ToString())
                    .Add("count", ds->Count())
                    .AddRaw("schema", fields + "]")
                    .AddRaw("meta", cli::JsonStringMap(meta))
                    .Finish());
  return std::nullopt;
}

Reply Refs(Context& ctx, httplib::Response& res, const std::string& name) {
  SERVE_ASSIGN(std::vector<RefValue> refs, "dataset", DatasetRefs(*ctx.store, name));
  std::string branches = "[", snapshots = "[";
  for (const auto& r : refs) {
    std::string kind;
    std::string short_name = RefName(name, r, &kind);
    std::string& list = kind == "branch" ? branches : snapshots;
    list += (list.size() > 1 ? ", " : "") + JsonObject()
                                                .Add("name", short_name)
                                                .Add("ref", r.name)
                                                .Add("manifest", r.target.ToString())
                                                .Finish();
  }
  SendJson(res, JsonObject()
                    .Add("dataset", name)
                    .AddRaw("branches", branches + "]")
                    .AddRaw("snapshots", snapshots + "]")
                    .Finish());
  return std::nullopt;
}

Reply History(Context& ctx, const httplib::Request& req, httplib::Response& res,
              const std::string& name) {
  ApiError perr;
  uint64_t limit;
  SERVE_PARAM(limit, UintParam(req, "limit", kDefaultHistory, 1, kMaxHistory, &perr));
  // The heads: the refs asked for, else every branch and snapshot.
  struct Head {
    std::string kind, name;
    std::shared_ptr<Dataset> ds;
  };
  std::vector<Head> heads;
  const size_t asked = req.get_param_value_count("ref");
  if (asked > 64) return ParamError("ref", "at most 64 refs");
  if (asked == 0) {
    SERVE_ASSIGN(std::vector<RefValue> refs, "dataset", DatasetRefs(*ctx.store, name));
    for (const auto& r : refs) {
      Head h;
      h.name = RefName(name, r, &h.kind);
      SERVE_ASSIGN(h.ds, "", ctx.datasets.Open(name, r.target.ToString()));
      heads.push_back(std::move(h));
    }
  } else {
    for (size_t i = 0; i < asked; ++i) {
      Head h;
      h.kind = "ref";
      h.name = req.get_param_value("ref", i);
      SERVE_ASSIGN(h.ds, "ref", ctx.datasets.Open(name, h.name));
      heads.push_back(std::move(h));
    }
  }
  // The union of the histories, each commit once (bounded by `limit` per head and overall).
  std::map<ObjectId, CommitInfo> commits;
  bool truncated = false;
  for (const auto& h : heads) {
    uint64_t seen = 0;
    SERVE_TRY("", h.ds->History(
                      [&](const CommitInfo& c) {
                        if (++seen > limit) {
                          truncated = true;
                          return false;
                        }
                        commits.try_emplace(c.manifest, c);
                        return true;
                      },
                      limit + 1));
  }
  std::vector<const CommitInfo*> order;
  for (const auto& [id, c] : commits) order.push_back(&c);
  std::sort(order.begin(), order.end(), [](const CommitInfo* a, const CommitInfo* b) {
    if (a->time_ns != b->time_ns) return a->time_ns > b->time_ns;
    return a->manifest < b->manifest;
  });
  if (order.size() > limit) {
    order.resize(limit);
    truncated = true;
  }
  std::string head_list = "[";
  for (const auto& h : heads) {
    head_list += (head_list.size() > 1 ? ", " : "") + JsonObject()
                                                          .Add("kind", h.kind)
                                                          .Add("name", h.name)
                                                          .Add("manifest", h.ds->head().ToString())
                                                          .Finish();
  }
  std::string prefix = "{\"dataset\": ";
  AppendJsonString(name, &prefix);
  prefix += ", \"heads\": " + head_list + "], \"commits\": [";
  auto body = std::make_shared<std::vector<std::string>>();
  for (const CommitInfo* c : order) {
    std::vector<std::string> parents;
    for (const auto& p : c->parents) parents.push_back(p.ToString());
    body->push_back(JsonObject()
                        .Add("manifest", c->manifest.ToString())
                        .AddRaw("parents", JsonStringList(parents))
                        .Add("time", cli::IsoTime(static_cast<int64_t>(c->time_ns)))
                        .Add("time_ns", std::to_string(c->time_ns))
                        .Add("writer", c->writer)
                        .Add("message", c->message)
                        .Add("count", c->count)
                        .Add("added", c->added)
                        .Add("deleted", c->deleted)
                        .Add("replaced", c->replaced)
                        .AddRaw("fields", JsonStringList(c->fields))
                        .Add("schema_version", static_cast<uint64_t>(c->schema_version))
                        .Finish());
  }
  auto pos = std::make_shared<size_t>(0);
  std::string tail = std::string("], \"truncated\": ") + (truncated ? "true" : "false") + "}";
  StreamJson(res, [prefix, body, pos, tail](std::string* out) -> Result<bool> {
    if (*pos == 0) *out += prefix;
    size_t end = std::min(body->size(), *pos + 256);
    for (; *pos < end; ++*pos) {
      if (*pos != 0) *out += ", ";
      *out += (*body)[*pos];
    }
    if (*pos < body->size()) return true;
    if (body->empty()) *pos = 1;  // the prefix is written once
    *out += tail;
    return false;
  });
  return std::nullopt;
}

// The cursor: records with anchor > after.
Result<uint64_t> StartAfter(const httplib::Request& req, ApiError* error) {
  auto text = Param(req, "after");
  if (!text) return uint64_t{0};
  auto v = ParseUint(*text);
  if (!v.ok()) {
    *error = ParamError("after", v.status().message());
    return v.status();
  }
  if (*v == UINT64_MAX) return UINT64_MAX;  // nothing after the last anchor
  return *v + 1;
}

Reply Records(Context& ctx, const httplib::Request& req, httplib::Response& res,
              const std::string& name) {
  ApiError perr;
  SERVE_ASSIGN(std::shared_ptr<Dataset> ds, "ref",
               ctx.datasets.Open(name, Param(req, "ref").value_or("main")));
  const Schema schema = ds->schema();
  SERVE_ASSIGN(std::vector<std::string> fields, "fields", Projection(req, schema, true));
  SERVE_ASSIGN(std::vector<Predicate> where, "where", WhereParam(req, &schema));
  uint64_t limit, start;
  SERVE_PARAM(limit, UintParam(req, "limit", kDefaultPage, 1, ctx.options.max_page, &perr));
  SERVE_PARAM(start, StartAfter(req, &perr));
  RenderContext rc{name, false};
  if (auto e = Param(req, "embeddings")) {
    if (*e != "summary" && *e != "full")
      return ParamError("embeddings", "expected summary or full");
    rc.full_embeddings = *e == "full";
  }
  // Scan the projection plus the predicates' fields.
  std::vector<std::string> scan_fields = fields;
  for (const auto& p : where) {
    if (std::find(scan_fields.begin(), scan_fields.end(), p.field) == scan_fields.end()) {
      scan_fields.push_back(p.field);
    }
  }
  ScanOptions so;
  so.fields = scan_fields;
  so.start = start;
  so.batch_rows = where.empty() ? std::min<uint64_t>(limit + 1, kScanBatch) : kScanBatch;
  so.limit = where.empty() ? limit + 1 : limit * kWhereScanFactor;
  if (scan_fields.empty()) so.anchors_only = true;
  if (start == UINT64_MAX) so.limit = 0;
  std::unique_ptr<BatchReader> reader;
  if (so.limit > 0) {
    SERVE_ASSIGN(reader, "", ds->Scan(so));
  }
  const std::string manifest = ds->head().ToString();
  struct State {
    std::shared_ptr<Dataset> ds;  // keeps the handle alive while streaming
    std::unique_ptr<BatchReader> reader;
    bool started = false;
    uint64_t emitted = 0, scanned = 0;
    std::optional<uint64_t> last_emitted, last_scanned;
    bool more_exist = false;
  };
  auto st = std::make_shared<State>();
  st->ds = ds;
  st->reader = std::move(reader);
  std::string prefix = "{\"dataset\": ";
  AppendJsonString(name, &prefix);
  prefix += ", \"manifest\": \"" + manifest + "\", \"fields\": " + JsonStringList(fields) +
            ", \"records\": [";
  const uint64_t scan_cap = so.limit;
  StreamJson(res, [=](std::string* out) -> Result<bool> {
    if (!st->started) {
      st->started = true;
      *out += prefix;
    }
    bool finished = st->reader == nullptr || st->emitted >= limit;
    if (!finished) {
      ASSIGN_OR_RETURN(std::optional<Batch> batch, st->reader->Next());
      if (!batch) {
        finished = true;
      } else {
        std::vector<const Column*> cols;
        for (const auto& f : fields) cols.push_back(batch->Find(f));
        std::vector<const Column*> pcols;
        for (const auto& p : where) pcols.push_back(batch->Find(p.field));
        const std::vector<std::string> manifests(fields.size(), manifest);
        for (uint64_t r = 0; r < batch->num_rows(); ++r) {
          const uint64_t anchor = batch->anchors[r];
          if (st->emitted >= limit) {
            st->more_exist = true;  // a (limit+1)th row was read
            break;
          }
          ++st->scanned;
          st->last_scanned = anchor;
          bool match = true;
          for (size_t p = 0; p < where.size() && match; ++p) {
            match = pcols[p] != nullptr && PredicateMatches(where[p], *pcols[p], r);
          }
          if (!match) continue;
          if (st->emitted != 0) *out += ", ";
          *out += RecordObject(rc, cols, fields, fields, manifests, r, anchor);
          ++st->emitted;
          st->last_emitted = anchor;
        }
        if (st->emitted >= limit && !where.empty()) st->more_exist = true;
        if (st->more_exist) finished = true;
      }
    }
    if (!finished) return true;
    // next: where the following page starts (spec/30 §2.7).
    std::optional<uint64_t> next;
    if (st->more_exist) {
      next = st->last_emitted;
    } else if (!where.empty() && st->scanned >= scan_cap && st->last_scanned) {
      next = st->last_scanned;  // the scan bound was reached before `limit` matches
    }
    *out += "], \"next\": ";
    *out += next ? "\"" + std::to_string(*next) + "\"" : std::string("null");
    *out += ", \"scanned\": " + std::to_string(st->scanned) + "}";
    return false;
  });
  return std::nullopt;
}

Reply OneRecord(Context& ctx, const httplib::Request& req, httplib::Response& res,
                const std::string& name, const std::string& anchor_text) {
  auto anchor = ParseUint(anchor_text);
  if (!anchor.ok()) return ParamError("anchor", anchor.status().message());
  SERVE_ASSIGN(std::shared_ptr<Dataset> ds, "ref",
               ctx.datasets.Open(name, Param(req, "ref").value_or("main")));
  const Schema schema = ds->schema();
  SERVE_ASSIGN(std::vector<std::string> fields, "fields", Projection(req, schema, true));
  RenderContext rc{name, true};
  if (auto e = Param(req, "embeddings")) {
    if (*e != "summary" && *e != "full")
      return ParamError("embeddings", "expected summary or full");
    rc.full_embeddings = *e == "full";
  }
  SERVE_ASSIGN(Batch batch, "anchor", ds->Take({*anchor}, fields));
  std::vector<const Column*> cols;
  for (const auto& f : fields) cols.push_back(batch.Find(f));
  const std::string manifest = ds->head().ToString();
  const std::vector<std::string> manifests(fields.size(), manifest);
  SendJson(res, JsonObject()
                    .Add("dataset", name)
                    .Add("manifest", manifest)
                    .AddRaw("fields", JsonStringList(fields))
                    .AddRaw("record", RecordObject(rc, cols, fields, fields, manifests, 0, *anchor))
                    .Finish());
  return std::nullopt;
}

// MIME types a browser may render inline from our origin (spec/30 §3.8).
bool InlineMime(std::string_view mime) {
  static const char* kInline[] = {"image/png",       "image/jpeg",
                                  "image/gif",       "image/webp",
                                  "image/bmp",       "image/avif",
                                  "text/plain",      "application/json",
                                  "application/pdf", "application/octet-stream"};
  for (const char* m : kInline) {
    if (mime == m) return true;
  }
  auto simple = [&](std::string_view prefix) {
    if (!mime.starts_with(prefix) || mime.size() == prefix.size()) return false;
    return std::all_of(mime.begin() + static_cast<ptrdiff_t>(prefix.size()), mime.end(),
                       [](char c) {
                         return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                                c == '.' || c == '+';
                       });
  };
  return simple("audio/") || simple("video/");
}

bool IsManifestId(const std::string& text) { return ObjectId::Parse(text).ok(); }

Reply Blob(Context& ctx, const httplib::Request& req, httplib::Response& res,
           const std::string& name, const std::string& anchor_text, const std::string& field) {
  auto anchor = ParseUint(anchor_text);
  if (!anchor.ok()) return ParamError("anchor", anchor.status().message());
  const std::string ref = Param(req, "ref").value_or("main");
  SERVE_ASSIGN(std::shared_ptr<Dataset> ds, "ref", ctx.datasets.Open(name, ref));
  const Schema schema = ds->schema();
  const FieldSpec* f = schema.Find(field);
  if (f == nullptr) return ErrorFromStatus(NotFound("unknown field '" + field + "'"), "field");
  if (f->type != FieldType::kBlob) {
    return ParamError("field", "'" + field + "' is a " + std::string(FieldTypeName(f->type)) +
                                   " field, not a blob");
  }
  SERVE_ASSIGN(Batch batch, "anchor", ds->Take({*anchor}, {field}));
  const Column& col = batch.columns.at(0);
  if (!col.IsValid(0)) {
    return ErrorFromStatus(
        NotFound("record " + std::to_string(*anchor) + " has no value for field '" + field + "'"),
        "field");
  }
  auto bytes = std::make_shared<std::string>(col.BytesAt(0));
  const bool inline_ok = InlineMime(f->mime);
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("Content-Security-Policy", "sandbox; default-src 'none'");
  if (!inline_ok) {
    res.set_header("Content-Disposition", "attachment");
    std::string declared;
    for (char c : f->mime) declared += (c >= 0x20 && c < 0x7f) ? c : '?';
    res.set_header("X-DreamDB-Mime", declared);
  }
  if (IsManifestId(ref)) res.set_header("Cache-Control", "private, max-age=31536000, immutable");
  res.status = 200;
  const size_t size = bytes->size();
  res.set_content_provider(size, inline_ok ? f->mime : "application/octet-stream",
                           [bytes](size_t offset, size_t length, httplib::DataSink& sink) {
                             constexpr size_t kPiece = size_t{1} << 20;
                             return sink.write(bytes->data() + offset, std::min(length, kPiece));
                           });
  return std::nullopt;
}

Reply Compare(Context& ctx, const httplib::Request& req, httplib::Response& res,
              const std::string& name) {
  ApiError perr;
  SERVE_ASSIGN(std::vector<std::string> refs, "refs", ListParam(req, "refs"));
  if (refs.size() < 2 || refs.size() > kMaxCompareRefs) {
    return ParamError("refs", "give 2.." + std::to_string(kMaxCompareRefs) +
                                  " comma-separated refs (got " + std::to_string(refs.size()) +
                                  ")");
  }
  SERVE_ASSIGN(std::vector<std::string> fields, "fields", ListParam(req, "fields"));
  uint64_t limit, start;
  bool only_differing, summary;
  SERVE_PARAM(limit, UintParam(req, "limit", kDefaultPage, 1, ctx.options.max_page, &perr));
  SERVE_PARAM(start, StartAfter(req, &perr));
  SERVE_PARAM(only_differing, BoolParam(req, "only_differing", false, &perr));
  SERVE_PARAM(summary, BoolParam(req, "summary", true, &perr));
  // Each ref must name a version of this dataset (the error names the parameter).
  for (const auto& r : refs) {
    SERVE_ASSIGN(std::shared_ptr<Dataset> unused, "refs", ctx.datasets.Open(name, r));
    (void)unused;
  }
  CompareOptions co;
  co.start = start;
  co.batch_rows = std::min<uint64_t>(limit + 1, kScanBatch);
  co.only_differing = only_differing;
  co.limit = start == UINT64_MAX ? 0 : limit + 1;
  co.summary = summary;
  SERVE_ASSIGN(std::unique_ptr<CompareReader> reader, "refs",
               CompareRefs(ctx.store, name, refs, fields, co));
  const CompareSummary first = reader->Summary();
  std::vector<std::string> manifests;
  for (const auto& m : first.manifests) manifests.push_back(m.ToString());
  const size_t nrefs = refs.size();
  std::vector<std::string> col_names, col_fields, col_manifests;
  std::string columns = "[";
  for (size_t i = 0; i < reader->columns().size(); ++i) {
    const FieldSpec& c = reader->columns()[i];
    const std::string& field = first.fields.at(i / nrefs);
    col_names.push_back(c.name);
    col_fields.push_back(field);
    col_manifests.push_back(manifests.at(i % nrefs));
    columns += (i ? ", " : "") + JsonObject()
                                     .Add("name", c.name)
                                     .Add("field", field)
                                     .Add("ref", refs[i % nrefs])
                                     .Add("type", FieldTypeName(c.type))
                                     .Finish();
  }
  columns += "]";
  std::string prefix = "{\"dataset\": ";
  AppendJsonString(name, &prefix);
  prefix += ", \"refs\": " + JsonStringList(refs) +
            ", \"manifests\": " + JsonStringList(manifests) + ", \"columns\": " + columns +
            ", \"rows\": [";
  struct State {
    std::unique_ptr<CompareReader> reader;
    bool started = false, more_exist = false;
    uint64_t emitted = 0;
    std::optional<uint64_t> last;
  };
  auto st = std::make_shared<State>();
  st->reader = std::move(reader);
  RenderContext rc{name, false};
  StreamJson(res, [=](std::string* out) -> Result<bool> {
    if (!st->started) {
      st->started = true;
      *out += prefix;
    }
    bool finished = st->emitted >= limit || co.limit == 0;
    if (!finished) {
      ASSIGN_OR_RETURN(std::optional<Batch> batch, st->reader->Next());
      if (!batch) {
        finished = true;
      } else {
        std::vector<const Column*> cols;
        for (const auto& c : batch->columns) cols.push_back(&c);
        for (uint64_t r = 0; r < batch->num_rows(); ++r) {
          if (st->emitted >= limit) {
            st->more_exist = true;
            break;
          }
          if (st->emitted != 0) *out += ", ";
          *out +=
              RecordObject(rc, cols, col_names, col_fields, col_manifests, r, batch->anchors[r]);
          ++st->emitted;
          st->last = batch->anchors[r];
        }
        finished = st->more_exist;
      }
    }
    if (!finished) return true;
    *out += "], \"next\": ";
    *out +=
        st->more_exist && st->last ? "\"" + std::to_string(*st->last) + "\"" : std::string("null");
    *out += ", \"summary\": ";
    if (!summary) {
      *out += "null}";
      return false;
    }
    ASSIGN_OR_RETURN(CompareSummary s, st->reader->Finish());
    std::string stats = "[";
    for (const auto& fs : s.stats) {
      stats += (stats.size() > 1 ? ", " : "") + cli::CompareFieldStatsJson(s, fs);
    }
    std::string present = "[";
    for (size_t i = 0; i < s.present.size(); ++i) {
      present += (i ? ", " : "") + std::to_string(s.present[i]);
    }
    *out += JsonObject()
                .Add("anchors", s.anchors)
                .Add("differing", s.differing)
                .AddRaw("present", present + "]")
                .Add("complete", s.complete)
                .AddRaw("fields", JsonStringList(s.fields))
                .AddRaw("stats", stats + "]")
                .Finish();
    *out += "}";
    return false;
  });
  return std::nullopt;
}

// The query vector of a POST search (spec/30 §3.10).
Result<std::vector<float>> UploadedVector(const httplib::Request& req, ApiError* error) {
  std::string type = req.get_header_value("Content-Type");
  type = type.substr(0, type.find(';'));
  while (!type.empty() && type.back() == ' ') type.pop_back();
  std::vector<float> v;
  if (type == "application/json") {
    nlohmann::json j = nlohmann::json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    auto bad = [&](const std::string& why) {
      *error = ApiError{400, "bad_json", why, "body"};
      return InvalidArgument(why);
    };
    if (j.is_discarded()) return bad("the body is not valid JSON");
    if (!j.is_object() || !j.contains("vector") || !j["vector"].is_array()) {
      return bad("the body must be an object with \"vector\": a list of numbers");
    }
    const auto& arr = j["vector"];
    if (arr.size() > kMaxDims) {
      *error = ParamError("vector", "more than " + std::to_string(kMaxDims) + " dimensions");
      return InvalidArgument("too many dims");
    }
    for (size_t i = 0; i < arr.size(); ++i) {
      if (!arr[i].is_number()) return bad("vector[" + std::to_string(i) + "] is not a number");
      const double d = arr[i].get<double>();
      if (!std::isfinite(d) || std::fabs(d) > 3.4e38) {
        *error =
            ParamError("vector", "component " + std::to_string(i) + " is not a finite float32");
        return InvalidArgument("non-finite");
      }
      v.push_back(static_cast<float>(d));
    }
  } else if (type == "application/octet-stream") {
    if (req.body.size() % 4 != 0) {
      *error = ParamError("vector", "the body is " + std::to_string(req.body.size()) +
                                        " bytes, not a whole number of float32 values");
      return InvalidArgument("bad length");
    }
    if (req.body.size() / 4 > kMaxDims) {
      *error = ParamError("vector", "more than " + std::to_string(kMaxDims) + " dimensions");
      return InvalidArgument("too many dims");
    }
    v.resize(req.body.size() / 4);
    for (size_t i = 0; i < v.size(); ++i) {
      uint32_t bits;
      std::memcpy(&bits, req.body.data() + 4 * i, 4);
      if constexpr (std::endian::native == std::endian::big) bits = __builtin_bswap32(bits);
      std::memcpy(&v[i], &bits, 4);
      if (!std::isfinite(v[i])) {
        *error = ParamError("vector", "component " + std::to_string(i) + " is not finite");
        return InvalidArgument("non-finite");
      }
    }
  } else {
    *error = ApiError{415, "unsupported_media_type",
                      "Content-Type must be application/json or application/octet-stream (got '" +
                          cli::Printable(type) + "')",
                      ""};
    return InvalidArgument("media type");
  }
  if (v.empty()) {
    *error = ParamError("vector", "the vector is empty");
    return InvalidArgument("empty");
  }
  return v;
}

Reply Search(Context& ctx, const httplib::Request& req, httplib::Response& res,
             const std::string& name) {
  ApiError perr;
  SERVE_ASSIGN(std::shared_ptr<Dataset> ds, "ref",
               ctx.datasets.Open(name, Param(req, "ref").value_or("main")));
  const Schema schema = ds->schema();
  auto field = Param(req, "field");
  if (!field) {
    // Default: the only embedding field, if there is exactly one.
    for (const auto& f : schema.fields()) {
      if (f.type != FieldType::kEmbedding) continue;
      if (field) return ParamError("field", "the dataset has several embedding fields: name one");
      field = f.name;
    }
    if (!field) return ParamError("field", "the dataset has no embedding field");
  }
  const FieldSpec* fs = schema.Find(*field);
  if (fs == nullptr) return ErrorFromStatus(NotFound("unknown field '" + *field + "'"), "field");
  if (fs->type != FieldType::kEmbedding) {
    return ParamError("field", "'" + *field + "' is a " + std::string(FieldTypeName(fs->type)) +
                                   " field, not an embedding");
  }
  uint64_t k, nprobe, ef;
  bool exact, include_self;
  SERVE_PARAM(k, UintParam(req, "k", 10, 1, kMaxK, &perr));
  SERVE_PARAM(nprobe, UintParam(req, "nprobe", 0, 0, 1u << 20, &perr));
  SERVE_PARAM(ef, UintParam(req, "ef", 0, 0, 1u << 16, &perr));
  SERVE_PARAM(exact, BoolParam(req, "exact", false, &perr));
  SERVE_PARAM(include_self, BoolParam(req, "include_self", false, &perr));
  SERVE_ASSIGN(std::vector<Predicate> where, "where", WhereParam(req, &schema));
  SERVE_ASSIGN(std::vector<std::string> fields, "fields", Projection(req, schema, false));
  std::vector<float> query;
  std::optional<uint64_t> self;
  std::string query_json;
  if (req.method == "POST") {
    SERVE_PARAM(query, UploadedVector(req, &perr));
    query_json = "{\"vector\": {\"dim\": " + std::to_string(query.size()) + "}}";
    include_self = true;
  } else {
    auto text = Param(req, "anchor");
    if (!text)
      return ParamError("anchor", "give the anchor of the query record (or POST a vector)");
    auto anchor = ParseUint(*text);
    if (!anchor.ok()) return ParamError("anchor", anchor.status().message());
    SERVE_ASSIGN(Batch b, "anchor", ds->Take({*anchor}, {*field}));
    if (!b.columns.at(0).IsValid(0)) {
      return ErrorFromStatus(
          NotFound("record " + *text + " has no value for field '" + *field + "'"), "anchor");
    }
    auto span = b.columns[0].FloatsAt(0);
    query.assign(span.begin(), span.end());
    self = *anchor;
    query_json = "{\"anchor\": \"" + std::to_string(*anchor) + "\"}";
  }
  if (query.size() != fs->dim) {
    return ParamError("vector", "the query has " + std::to_string(query.size()) +
                                    " dimensions; field '" + *field + "' has " +
                                    std::to_string(fs->dim));
  }
  SearchOptions so;
  so.k = static_cast<uint32_t>(include_self ? k : k + 1);
  so.nprobe = static_cast<uint32_t>(nprobe);
  so.ef = static_cast<uint32_t>(ef);
  so.exact = exact;
  so.where = where;
  so.fields = fields;
  so.threads = 1;
  SERVE_ASSIGN(SearchResults r, "", ds->Search(*field, query.data(), 1, query.size(), so));
  const std::string manifest = ds->head().ToString();
  RenderContext rc{name, false};
  std::vector<const Column*> cols;
  for (const auto& c : r.columns) cols.push_back(&c);
  const std::vector<std::string> manifests(fields.size(), manifest);
  std::string hits = "[";
  uint64_t n = 0;
  for (uint64_t row = r.offsets[0]; row < r.offsets[1] && n < k; ++row) {
    if (!include_self && self && r.anchors[row] == *self) continue;
    std::string score = ", \"score\": ";
    AppendJsonFloat(r.scores[row], &score);
    hits += (n ? ", " : "") +
            RecordObject(rc, cols, fields, fields, manifests, row, r.anchors[row], score.c_str());
    ++n;
  }
  SendJson(res, JsonObject()
                    .Add("dataset", name)
                    .Add("manifest", manifest)
                    .Add("field", *field)
                    .Add("metric", r.metric)
                    .Add("used_index", r.used_index)
                    .AddRaw("query", query_json)
                    .AddRaw("fields", JsonStringList(fields))
                    .AddRaw("hits", hits + "]")
                    .Finish());
  return std::nullopt;
}

Reply Sweeps(Context& ctx, httplib::Response& res, const std::string& name) {
  SERVE_ASSIGN(std::vector<RefValue> refs, "dataset", DatasetRefs(*ctx.store, name));
  (void)refs;
  SERVE_ASSIGN(std::vector<SweepInfo> sweeps, "", SweepList(ctx.store, name));
  std::string list = "[";
  for (const auto& s : sweeps) list += (list.size() > 1 ? ", " : "") + cli::SweepInfoJson(s);
  SendJson(res, JsonObject().Add("dataset", name).AddRaw("sweeps", list + "]").Finish());
  return std::nullopt;
}

Reply OneSweep(Context& ctx, const httplib::Request& req, httplib::Response& res,
               const std::string& name, const std::string& sweep) {
  SERVE_TRY("sweep", ValidateSweepName(sweep));
  SERVE_ASSIGN(std::vector<RefValue> refs, "dataset", DatasetRefs(*ctx.store, name));
  (void)refs;
  const std::string metric = Param(req, "metric").value_or("");
  const std::string goal = Param(req, "goal").value_or("");
  if (!goal.empty() && goal != "min" && goal != "max")
    return ParamError("goal", "expected min or max");
  SERVE_ASSIGN(SweepInfo info, "sweep", SweepShow(ctx.store, name, sweep));
  if (metric.empty() && info.metric.empty()) {
    return ParamError("metric", "the sweep records no metric: give metric=FIELD");
  }
  SERVE_ASSIGN(SweepSummary summary, "metric",
               SweepSummarize(ctx.store, name, sweep, metric, goal));
  std::map<std::string, const SweepRun*> by_branch;
  for (const auto& r : info.runs) by_branch[r.branch] = &r;
  std::string body = cli::SweepSummaryJson(summary, [&](const SweepRunResult& r, JsonObject& o) {
    auto ref = ctx.store->ReadRef(name + "/branches/" + r.branch);
    o.AddRaw("head", ref.ok() ? "\"" + ref->target.ToString() + "\"" : "null");
    auto it = by_branch.find(r.branch);
    o.AddRaw("params",
             cli::SweepParamsJson(it == by_branch.end() ? std::map<std::string, std::string>{}
                                                        : it->second->params));
  });
  SendJson(res, JsonObject()
                    .Add("dataset", name)
                    .AddRaw("sweep", cli::SweepInfoJson(info))
                    .AddRaw("summary", body)
                    .Finish());
  return std::nullopt;
}

Reply Cost(Context& ctx, httplib::Response& res, const std::string& name) {
  SERVE_ASSIGN(std::vector<RefValue> refs, "dataset", DatasetRefs(*ctx.store, name));
  auto same = [](const std::vector<RefValue>& a, const std::vector<RefValue>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      if (a[i].name != b[i].name || a[i].target != b[i].target) return false;
    }
    return true;
  };
  const auto t0 = std::chrono::steady_clock::now();
  StorageCost cost;
  bool cached = false;
  {
    std::lock_guard<std::mutex> lock(ctx.cost_mu);
    auto it = ctx.cost_cache.find(name);
    if (it != ctx.cost_cache.end() && same(it->second.first, refs)) {
      cost = it->second.second;
      cached = true;
    }
  }
  if (!cached) {
    StorageCostOptions options;
    options.max_objects = ctx.options.cost_max_objects;
    SERVE_ASSIGN(cost, "", ComputeStorageCost(*ctx.store, name, refs, options));
    if (!cost.complete) {
      return ApiError{413, "too_large",
                      "dataset '" + name + "' reaches more than " +
                          std::to_string(ctx.options.cost_max_objects) +
                          " objects (--cost-max-objects)",
                      ""};
    }
    std::lock_guard<std::mutex> lock(ctx.cost_mu);
    if (ctx.cost_cache.size() > 64) ctx.cost_cache.clear();
    ctx.cost_cache[name] = {refs, cost};
  }
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  std::string list = "[";
  for (const auto& rc : cost.refs) {
    std::string kind;
    std::string short_name = RefName(name, RefValue{rc.ref, rc.manifest}, &kind);
    list += (list.size() > 1 ? ", " : "") +
            JsonObject()
                .Add("kind", kind)
                .Add("name", short_name)
                .Add("manifest", rc.manifest.ToString())
                .Add("reachable_objects", rc.reachable_objects)
                .Add("reachable_bytes", rc.reachable_bytes)
                .Add("unique_objects", rc.unique_objects)
                .Add("unique_bytes", rc.unique_bytes)
                .Add("shared_objects", rc.reachable_objects - rc.unique_objects)
                .Add("shared_bytes", rc.reachable_bytes - rc.unique_bytes)
                .Finish();
  }
  SendJson(res, JsonObject()
                    .Add("dataset", name)
                    .Add("objects", cost.objects)
                    .Add("bytes", cost.bytes)
                    .AddRaw("refs", list + "]")
                    .Add("cached", cached)
                    .Add("elapsed_ms", static_cast<uint64_t>(ms))
                    .Finish());
  return std::nullopt;
}

}  // namespace

namespace {
Reply Dispatch(Context& ctx, const httplib::Request& req, httplib::Response& res,
               std::string_view endpoint, const std::vector<std::string>& s);
}  // namespace

std::string_view EndpointName(const std::vector<std::string>& s) {
  if (s.size() == 1 && s[0] == "health") return "health";
  if (s.empty() || s[0] != "datasets") return "unknown";
  if (s.size() == 1) return "datasets";
  if (s.size() == 2) return "dataset";
  const std::string& what = s[2];
  if (s.size() == 3) {
    for (const char* e : {"refs", "history", "records", "compare", "search", "sweeps", "cost"}) {
      if (what == e) return e;
    }
    return "unknown";
  }
  if (s.size() == 4 && what == "records") return "record";
  if (s.size() == 4 && what == "sweeps") return "sweep";
  if (s.size() == 5 && what == "blob") return "blob";
  return "unknown";
}

Reply HandleApi(Context& ctx, const httplib::Request& req, httplib::Response& res,
                const std::vector<std::string>& s) {
  const std::string_view endpoint = EndpointName(s);
  if (endpoint == "unknown") {
    return ApiError{404, "not_found", "no API endpoint at '" + cli::Printable(req.path) + "'", ""};
  }
  if (req.method == "POST" && endpoint != "search") {
    return ApiError{405, "method_not_allowed", "POST is only accepted by the search endpoint", ""};
  }
  if (endpoint == "health") return Health(ctx, res);
  if (endpoint == "datasets") return Datasets(ctx, res);
  const std::string& name = s[1];
  {
    Status valid = cli::ValidateDatasetNameArg(name);
    if (!valid.ok()) return ErrorFromStatus(valid, "dataset");
  }
  Reply reply = Dispatch(ctx, req, res, endpoint, s);
  // An unknown dataset is the dataset parameter's fault, whichever lookup found it.
  if (reply && reply->code == "not_found" && reply->message == "dataset '" + name + "' not found") {
    reply->param = "dataset";
  }
  return reply;
}

namespace {

Reply Dispatch(Context& ctx, const httplib::Request& req, httplib::Response& res,
               std::string_view endpoint, const std::vector<std::string>& s) {
  const std::string& name = s[1];
  if (endpoint == "dataset") return DatasetInfo(ctx, req, res, name);
  if (endpoint == "refs") return Refs(ctx, res, name);
  if (endpoint == "history") return History(ctx, req, res, name);
  if (endpoint == "records") return Records(ctx, req, res, name);
  if (endpoint == "record") return OneRecord(ctx, req, res, name, s[3]);
  if (endpoint == "blob") return Blob(ctx, req, res, name, s[3], s[4]);
  if (endpoint == "compare") return Compare(ctx, req, res, name);
  if (endpoint == "search") return Search(ctx, req, res, name);
  if (endpoint == "sweeps") return Sweeps(ctx, res, name);
  if (endpoint == "sweep") return OneSweep(ctx, req, res, name, s[3]);
  if (endpoint == "cost") return Cost(ctx, res, name);
  return ApiError{404, "not_found", "no API endpoint", ""};
}

}  // namespace

// ---- DatasetCache ----

Result<ObjectId> DatasetCache::Resolve(const std::string& dataset, const std::string& ref) {
  if (ref.empty()) return InvalidArgument("ref is empty");
  if (auto id = ObjectId::Parse(ref); id.ok()) return *id;
  auto read = [&](const std::string& full) -> Result<std::optional<ObjectId>> {
    Status valid = ValidateRefName(full);
    if (!valid.ok())
      return InvalidArgument("ref '" + cli::Printable(ref) +
                             "' is not a valid name: " + valid.message());
    auto v = store_->ReadRef(full);
    if (v.ok()) return std::optional<ObjectId>(v->target);
    if (v.status().code() == StatusCode::kNotFound) return std::optional<ObjectId>();
    return v.status();
  };
  std::optional<ObjectId> found;
  if (ref.starts_with("branch:")) {
    ASSIGN_OR_RETURN(found, read(dataset + "/branches/" + ref.substr(7)));
  } else {
    ASSIGN_OR_RETURN(found, read(dataset + "/snapshots/" + ref));
    if (!found) {
      ASSIGN_OR_RETURN(found, read(dataset + "/branches/" + ref));
    }
  }
  if (found) return *found;
  // Say whether the dataset or the ref is unknown.
  bool any = false;
  RETURN_IF_ERROR(store_->ListRefs(dataset + "/branches/", [&](const RefValue&) {
    any = true;
    return false;
  }));
  if (!any) return NotFound("dataset '" + dataset + "' not found");
  return NotFound("dataset '" + dataset + "' has no branch or snapshot '" + cli::Printable(ref) +
                  "'");
}

Result<std::shared_ptr<Dataset>> DatasetCache::Open(const std::string& dataset,
                                                    const std::string& ref) {
  ASSIGN_OR_RETURN(ObjectId manifest, Resolve(dataset, ref));
  const std::string key = dataset + "@" + manifest.ToString();
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = handles_.find(key);
    if (it != handles_.end()) {
      it->second.first = ++clock_;
      return it->second.second;
    }
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Dataset> opened,
                   Dataset::OpenAt(store_, dataset, manifest.ToString()));
  std::shared_ptr<Dataset> ds(std::move(opened));
  std::lock_guard<std::mutex> lock(mu_);
  constexpr size_t kHandles = 32;
  if (handles_.size() >= kHandles) {
    auto oldest = std::min_element(
        handles_.begin(), handles_.end(),
        [](const auto& a, const auto& b) { return a.second.first < b.second.first; });
    handles_.erase(oldest);
  }
  handles_[key] = {++clock_, ds};
  return ds;
}

}  // namespace dreamdb::serve
