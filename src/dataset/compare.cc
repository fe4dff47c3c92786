// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// CompareRefs: a k-way merge-join of per-ref projected scans (spec/14-semantics.md §15).
#include "src/dataset/compare.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "dreamdb/compare.h"
#include "dreamdb/dataset.h"
#include "src/base/encoding.h"

namespace dreamdb {
namespace compare {

namespace {
bool FloatEq(double a, double b) { return a == b || (std::isnan(a) && std::isnan(b)); }
}  // namespace

bool ValuesEqual(const Column& a, uint64_t ra, const Column& b, uint64_t rb) {
  switch (a.type()) {
    case FieldType::kInt64:
    case FieldType::kTimestamp:
      return a.Int64At(ra) == b.Int64At(rb);
    case FieldType::kFloat64:
      return FloatEq(a.Float64At(ra), b.Float64At(rb));
    case FieldType::kBool:
      return a.BoolAt(ra) == b.BoolAt(rb);
    case FieldType::kString:
    case FieldType::kCategorical:
    case FieldType::kBlob:
      return a.BytesAt(ra) == b.BytesAt(rb);
    case FieldType::kEmbedding: {
      auto x = a.FloatsAt(ra);
      auto y = b.FloatsAt(rb);
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!FloatEq(x[i], y[i])) return false;
      }
      return true;
    }
    case FieldType::kArray:
      return a.FixedAt(ra) == b.FixedAt(rb);
  }
  return false;
}

double Cosine(std::span<const float> a, std::span<const float> b) {
  double dot = 0, na = 0, nb = 0;
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    dot += static_cast<double>(a[i]) * b[i];
    na += static_cast<double>(a[i]) * a[i];
    nb += static_cast<double>(b[i]) * b[i];
  }
  if (na == 0 && nb == 0) return 1.0;
  if (na == 0 || nb == 0) return 0.0;
  // One square root: exact 1 for equal vectors more often than sqrt(na) * sqrt(nb).
  return std::clamp(dot / std::sqrt(na * nb), -1.0, 1.0);
}

uint64_t MedianSample::Next() {
  rng_ += 0x9E3779B97F4A7C15ull;
  uint64_t z = rng_;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void MedianSample::Add(double v) {
  ++seen_;
  if (values_.size() < cap_) {
    values_.push_back(v);
    return;
  }
  // Algorithm R: the seen_-th value replaces a random slot with probability cap / seen.
  const uint64_t j = Next() % seen_;
  if (j < cap_) values_[j] = v;
}

std::optional<double> MedianSample::Median() const {
  if (values_.empty()) return std::nullopt;
  std::vector<double> v = values_;
  const size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid), v.end());
  const double hi = v[mid];
  if (v.size() % 2 == 1) return hi;
  const double lo = *std::max_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid));
  return lo + (hi - lo) / 2;
}

}  // namespace compare

namespace {

bool IsNumeric(FieldType t) {
  return t == FieldType::kInt64 || t == FieldType::kFloat64 || t == FieldType::kTimestamp;
}

std::string TypeText(const FieldSpec& f) {
  std::string t(FieldTypeName(f.type));
  if (f.type == FieldType::kEmbedding) {
    t += '[';
    t += std::to_string(f.dim);
    t += ']';
  }
  if (f.type == FieldType::kArray) {
    t += '<';
    t += DTypeName(f.dtype);
    t += ">[";
    for (size_t i = 0; i < f.shape.size(); ++i) {
      if (i > 0) t += ',';
      t += std::to_string(f.shape[i]);
    }
    t += ']';
  }
  return t;
}

bool SameShape(const FieldSpec& a, const FieldSpec& b) {
  if (a.type != b.type) return false;
  if (a.type == FieldType::kEmbedding) return a.dim == b.dim;
  if (a.type == FieldType::kArray) return a.dtype == b.dtype && a.shape == b.shape;
  return true;
}

std::string QuoteList(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) {
    if (!out.empty()) out += ", ";
    out += Quote(s);
  }
  return out;
}

// One ref's scan and its position in the current batch.
struct Cursor {
  std::string ref;
  std::unique_ptr<Dataset> ds;
  std::unique_ptr<BatchReader> reader;
  std::vector<int> col;  // per compared field: column index in the scan, -1 = not in schema
  std::shared_ptr<const Batch> batch;
  uint64_t pos = 0;
  bool done = false;
  uint64_t present = 0;

  bool at_end_of_batch() const { return !done && (!batch || pos >= batch->num_rows()); }
  uint64_t anchor() const { return batch->anchors[pos]; }
};

// Statistics of one (field, pair) while reading.
struct Acc {
  explicit Acc(uint64_t cap) : median(cap) {}
  CompareFieldStats s;
  long double sum_diff = 0;
  long double sum_abs = 0;
  compare::MedianSample median;
  long double sum_cos = 0;
  double min_cos = std::numeric_limits<double>::infinity();
};

// A pending run of consecutive rows of one source column, copied with AppendRange.
struct Run {
  const Column* src = nullptr;
  uint64_t begin = 0;
  uint64_t end = 0;
};

class Reader final : public CompareReader {
 public:
  Reader(CompareOptions options, std::vector<Cursor> cursors, std::vector<FieldSpec> specs)
      : options_(options), cursors_(std::move(cursors)), specs_(std::move(specs)) {
    for (const auto& f : specs_) {
      for (const auto& c : cursors_) {
        FieldSpec out = f;
        out.name = f.name + "@" + c.ref;
        out.optional = true;
        columns_.push_back(std::move(out));
      }
      for (size_t j = 1; j < cursors_.size(); ++j) {
        Acc acc(options_.median_sample);
        acc.s.field = f.name;
        acc.s.type = f.type;
        acc.s.a = 0;
        acc.s.b = j;
        accs_.push_back(std::move(acc));
      }
    }
    cells_.resize(cursors_.size());
    rows_.resize(cursors_.size());
  }

  const std::vector<FieldSpec>& columns() const override { return columns_; }

  Result<std::optional<Batch>> Next() override {
    if (finished_) return std::optional<Batch>();
    StartBatch();
    while (out_.anchors.size() < options_.batch_rows) {
      const bool can_emit = summary_.emitted < options_.limit;
      if (!can_emit && !options_.summary) {
        summary_.complete = false;
        finished_ = true;
        break;
      }
      ASSIGN_OR_RETURN(bool more, Step(can_emit));
      if (!more) {
        summary_.complete = true;
        finished_ = true;
        break;
      }
    }
    FlushAll();
    if (out_.anchors.empty()) {
      ReleaseInputs();
      return std::optional<Batch>();
    }
    Batch b = std::move(out_);
    out_ = Batch();
    if (finished_) ReleaseInputs();
    return std::optional<Batch>(std::move(b));
  }

  Result<CompareSummary> Finish() override {
    if (!finished_) {
      StartBatch();
      for (;;) {
        ASSIGN_OR_RETURN(bool more, Step(/*can_emit=*/false));
        if (!more) break;
      }
      FlushAll();
      out_ = Batch();
      summary_.complete = true;
      finished_ = true;
      ReleaseInputs();
    }
    return Summary();
  }

  CompareSummary Summary() const override {
    CompareSummary s = summary_;
    for (const auto& c : cursors_) s.present.push_back(c.present);
    for (const auto& acc : accs_) {
      CompareFieldStats st = acc.s;
      if (st.both > 0) {
        st.agreement = static_cast<double>(st.both - st.differing) / static_cast<double>(st.both);
      }
      if (st.numeric_count > 0) {
        const auto n = static_cast<long double>(st.numeric_count);
        st.mean_diff = static_cast<double>(acc.sum_diff / n);
        st.mean_abs_diff = static_cast<double>(acc.sum_abs / n);
        st.median_diff = acc.median.Median();
        st.median_approximate = acc.median.approximate();
      }
      if (st.type == FieldType::kEmbedding && st.both > 0) {
        st.mean_cosine = static_cast<double>(acc.sum_cos / static_cast<long double>(st.both));
        st.min_cosine = acc.min_cos;
      }
      s.stats.push_back(std::move(st));
    }
    return s;
  }

  CompareSummary& mutable_summary() { return summary_; }

 private:
  void StartBatch() {
    out_ = Batch();
    out_.columns.reserve(columns_.size());
    for (const auto& f : columns_) out_.columns.emplace_back(f);
    runs_.assign(columns_.size(), Run{});
  }

  void Flush(size_t k) {
    Run& r = runs_[k];
    if (r.src != nullptr) out_.columns[k].AppendRange(*r.src, r.begin, r.end);
    r = Run{};
  }

  void FlushAll() {
    for (size_t k = 0; k < runs_.size(); ++k) Flush(k);
  }

  void ReleaseInputs() {
    for (auto& c : cursors_) {
      c.batch.reset();
      c.reader.reset();
      c.done = true;
    }
  }

  // Loads the next batch of every cursor at the end of its current one. Pending runs may
  // point into the batches about to be dropped: they are copied out first.
  Status Fill() {
    bool flushed = false;
    for (auto& c : cursors_) {
      while (c.at_end_of_batch()) {
        if (!flushed) {
          FlushAll();
          flushed = true;
        }
        c.batch.reset();
        c.pos = 0;
        auto next = c.reader->Next();
        if (!next.ok()) return next.status().WithContext("compare-refs: reading " + Quote(c.ref));
        if (!next->has_value()) {
          c.done = true;
          c.reader.reset();
        } else {
          c.batch = std::make_shared<const Batch>(std::move(**next));
        }
      }
    }
    return Status::Ok();
  }

  // Processes the next anchor of the merge. Returns false at the end.
  Result<bool> Step(bool can_emit) {
    RETURN_IF_ERROR(Fill());
    bool any = false;
    uint64_t anchor = UINT64_MAX;
    for (const auto& c : cursors_) {
      if (c.done) continue;
      if (!any || c.anchor() < anchor) anchor = c.anchor();
      any = true;
    }
    if (!any) return false;
    const size_t n = cursors_.size();
    bool differs = false;
    for (size_t r = 0; r < n; ++r) {
      auto& c = cursors_[r];
      const bool here = !c.done && c.anchor() == anchor;
      rows_[r] = here ? c.pos : UINT64_MAX;
      if (here) ++c.present;
      if (r > 0 && here != (rows_[0] != UINT64_MAX)) differs = true;
    }
    ++summary_.anchors;
    const bool compare = options_.summary || options_.only_differing;
    for (size_t f = 0; f < specs_.size(); ++f) {
      // The cells of field f: a valid value's column (null: absent anchor, field or value).
      for (size_t r = 0; r < n; ++r) {
        const auto& c = cursors_[r];
        const Column* col = nullptr;
        if (rows_[r] != UINT64_MAX && c.col[f] >= 0) {
          col = &c.batch->columns[static_cast<size_t>(c.col[f])];
          if (!col->IsValid(rows_[r])) col = nullptr;
        }
        cells_[r] = col;
      }
      if (!compare) continue;
      for (size_t j = 1; j < n; ++j) {
        const Column* a = cells_[0];
        const Column* b = cells_[j];
        Acc& acc = accs_[f * (n - 1) + (j - 1)];
        if (a == nullptr || b == nullptr) {
          if (a != b) differs = true;
          if (a != nullptr) ++acc.s.only_a;
          if (b != nullptr) ++acc.s.only_b;
          continue;
        }
        const uint64_t ra = rows_[0], rb = rows_[j];
        const bool eq = compare::ValuesEqual(*a, ra, *b, rb);
        if (!eq) differs = true;
        if (!options_.summary) continue;
        ++acc.s.both;
        if (!eq) ++acc.s.differing;
        if (IsNumeric(acc.s.type)) {
          double d;
          if (acc.s.type == FieldType::kFloat64) {
            d = b->Float64At(rb) - a->Float64At(ra);
          } else {
            d = static_cast<double>(static_cast<__int128>(b->Int64At(rb)) -
                                    static_cast<__int128>(a->Int64At(ra)));
          }
          if (std::isfinite(d)) {
            ++acc.s.numeric_count;
            acc.sum_diff += d;
            acc.sum_abs += std::fabs(d);
            acc.median.Add(d);
          }
        } else if (acc.s.type == FieldType::kEmbedding) {
          const double cos = compare::Cosine(a->FloatsAt(ra), b->FloatsAt(rb));
          acc.sum_cos += cos;
          acc.min_cos = std::min(acc.min_cos, cos);
        }
      }
    }
    if (differs) ++summary_.differing;
    if (can_emit && (!options_.only_differing || differs)) Emit(anchor);
    for (size_t r = 0; r < n; ++r) {
      if (rows_[r] != UINT64_MAX) ++cursors_[r].pos;
    }
    return true;
  }

  // Appends the row whose cells are in cells_ (field by field: recomputed here per field).
  void Emit(uint64_t anchor) {
    const size_t n = cursors_.size();
    out_.anchors.push_back(anchor);
    ++summary_.emitted;
    for (size_t f = 0; f < specs_.size(); ++f) {
      for (size_t r = 0; r < n; ++r) {
        const size_t k = f * n + r;
        const auto& c = cursors_[r];
        const Column* col = nullptr;
        if (rows_[r] != UINT64_MAX && c.col[f] >= 0) {
          col = &c.batch->columns[static_cast<size_t>(c.col[f])];
        }
        Run& run = runs_[k];
        if (col == nullptr) {
          Flush(k);
          out_.columns[k].AppendNull();
          continue;
        }
        const uint64_t row = rows_[r];
        if (run.src == col && run.end == row) {
          ++run.end;
          continue;
        }
        Flush(k);
        run = Run{col, row, row + 1};
      }
    }
  }

  CompareOptions options_;
  std::vector<Cursor> cursors_;
  std::vector<FieldSpec> specs_;    // compared fields
  std::vector<FieldSpec> columns_;  // output columns
  std::vector<Acc> accs_;           // per field, per ref 1..n-1
  CompareSummary summary_;
  Batch out_;
  std::vector<Run> runs_;
  std::vector<const Column*> cells_;
  std::vector<uint64_t> rows_;  // per ref: row in its batch, UINT64_MAX when absent
  bool finished_ = false;
};

}  // namespace

Result<std::unique_ptr<CompareReader>> CompareRefs(std::shared_ptr<Store> store,
                                                   std::string_view name,
                                                   const std::vector<std::string>& refs,
                                                   const std::vector<std::string>& fields,
                                                   const CompareOptions& options) {
  if (refs.size() < 2) {
    return InvalidArgument("compare-refs: give at least 2 refs to compare, got " +
                           std::to_string(refs.size()));
  }
  for (size_t i = 0; i < refs.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (refs[i] == refs[j]) {
        return InvalidArgument("compare-refs: ref " + Quote(refs[i]) + " is given twice");
      }
    }
  }
  for (size_t i = 0; i < fields.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (fields[i] == fields[j]) {
        return InvalidArgument("compare-refs: field " + Quote(fields[i]) + " is given twice");
      }
    }
  }
  if (options.batch_rows == 0)
    return InvalidArgument("compare-refs: batch_rows must be at least 1");
  if (options.start > options.end) {
    return InvalidArgument("compare-refs: start anchor " + std::to_string(options.start) +
                           " is after end anchor " + std::to_string(options.end));
  }
  std::vector<Cursor> cursors(refs.size());
  std::vector<Schema> schemas;
  CompareSummary summary;
  for (size_t i = 0; i < refs.size(); ++i) {
    auto ds = Dataset::OpenAt(store, name, refs[i]);
    if (!ds.ok()) return ds.status().WithContext("compare-refs: ref " + Quote(refs[i]));
    cursors[i].ref = refs[i];
    summary.refs.push_back(refs[i]);
    summary.manifests.push_back((*ds)->head());
    schemas.push_back((*ds)->schema());
    cursors[i].ds = std::move(*ds);
  }
  // The compared fields and their (common) type.
  std::vector<std::string> names = fields;
  if (names.empty()) {
    for (const auto& s : schemas) {
      for (const auto& f : s.fields()) {
        if (std::find(names.begin(), names.end(), f.name) == names.end()) names.push_back(f.name);
      }
    }
  }
  std::vector<FieldSpec> specs;
  for (const auto& n : names) {
    const FieldSpec* first = nullptr;
    size_t first_ref = 0;
    for (size_t i = 0; i < refs.size(); ++i) {
      const FieldSpec* f = schemas[i].Find(n);
      if (f == nullptr) continue;
      if (first == nullptr) {
        first = f;
        first_ref = i;
      } else if (!SameShape(*first, *f)) {
        return InvalidArgument("compare-refs: field " + Quote(n) + " has type " + TypeText(*first) +
                               " at " + Quote(refs[first_ref]) + " but " + TypeText(*f) + " at " +
                               Quote(refs[i]));
      }
    }
    if (first == nullptr) {
      std::vector<std::string> known;
      for (const auto& s : schemas) {
        for (const auto& f : s.fields()) {
          if (std::find(known.begin(), known.end(), f.name) == known.end()) known.push_back(f.name);
        }
      }
      return InvalidArgument("compare-refs: unknown field " + Quote(n) + ": none of the refs " +
                             QuoteList(refs) + " has it (their fields: " + QuoteList(known) + ")");
    }
    specs.push_back(*first);
  }
  summary.fields = names;
  // One projected scan per ref: the compared fields it has (or its cheapest field, for
  // the anchors alone).
  for (size_t i = 0; i < refs.size(); ++i) {
    Cursor& c = cursors[i];
    ScanOptions so;
    so.start = options.start;
    so.end = options.end;
    so.batch_rows = options.batch_rows;
    for (const auto& f : specs) {
      if (schemas[i].Find(f.name) != nullptr) {
        c.col.push_back(static_cast<int>(so.fields.size()));
        so.fields.push_back(f.name);
      } else {
        c.col.push_back(-1);
      }
    }
    if (so.fields.empty() && !schemas[i].fields().empty()) {
      const FieldSpec* cheapest = &schemas[i].fields()[0];
      for (const auto& f : schemas[i].fields()) {
        const size_t w = f.FixedWidth();
        if (w > 0 && (cheapest->FixedWidth() == 0 || w < cheapest->FixedWidth())) cheapest = &f;
      }
      so.fields.push_back(cheapest->name);
    }
    auto reader = c.ds->Scan(so);
    if (!reader.ok()) return reader.status().WithContext("compare-refs: ref " + Quote(refs[i]));
    c.reader = std::move(*reader);
  }
  auto out = std::make_unique<Reader>(options, std::move(cursors), std::move(specs));
  out->mutable_summary() = std::move(summary);
  return std::unique_ptr<CompareReader>(std::move(out));
}

}  // namespace dreamdb
