// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Dataset reads: Scan (streaming, projected) and Take (random access) — spec/14-semantics.md §4.
#include <algorithm>
#include <map>
#include <numeric>
#include <unordered_map>

#include "src/base/encoding.h"
#include "src/base/io_pool.h"
#include "src/columnar/segment.h"
#include "src/dataset/dataset_impl.h"

namespace dreamdb {
namespace {

// Resolves projected field names against the schema (all fields when empty).
Result<std::vector<FieldSpec>> Project(const Schema& schema,
                                       const std::vector<std::string>& names) {
  std::vector<FieldSpec> out;
  if (names.empty()) return schema.fields();
  for (const auto& n : names) {
    const FieldSpec* f = schema.Find(n);
    if (f == nullptr) {
      std::string known;
      for (const auto& k : schema.fields()) known += (known.empty() ? "" : ", ") + k.name;
      return InvalidArgument("unknown field " + Quote(n) + " (the schema has: " + known + ")");
    }
    if (std::any_of(out.begin(), out.end(), [&](const FieldSpec& s) { return s.name == n; })) {
      return InvalidArgument("field " + Quote(n) + " is requested twice");
    }
    out.push_back(*f);
  }
  return out;
}

// Where one output row of one field comes from.
struct Src {
  const Column* col = nullptr;  // null: the value is absent (null)
  uint64_t row = 0;
};

// Builds a column from per-row sources, copying runs with AppendRange.
Column Gather(const FieldSpec& spec, const std::vector<Src>& srcs) {
  Column out(spec);
  size_t i = 0;
  while (i < srcs.size()) {
    if (srcs[i].col == nullptr) {
      out.AppendNull();
      ++i;
      continue;
    }
    size_t j = i + 1;
    while (j < srcs.size() && srcs[j].col == srcs[i].col && srcs[j].row == srcs[j - 1].row + 1) ++j;
    out.AppendRange(*srcs[i].col, srcs[i].row, srcs[i].row + (j - i));
    i = j;
  }
  return out;
}

// True for stores whose range reads are system calls on local files or memory.
bool IsLocalStore(const Store& store) {
  const std::string& uri = store.uri();
  return uri.rfind("file://", 0) == 0 || uri.rfind("memory://", 0) == 0;
}

// Reads the requested rows of each segment. Small or mostly-needed segments are fetched
// whole (verified by id, cached); otherwise only the needed checksum blocks are fetched.
class SegmentFetcher {
 public:
  explicit SegmentFetcher(const DatasetImpl& impl) : impl_(impl) {}

  // rows: ascending, unique. Returns a column aligned with `rows` (whole: row i = segment
  // row i; set *whole). Fetches are independent and run in parallel across segments.
  struct Need {
    ObjectId segment;
    std::vector<uint32_t> rows;
  };
  struct Got {
    std::shared_ptr<const Column> column;
    bool whole = false;  // column holds every row of the segment
  };

  Result<std::vector<Got>> FetchAll(const FieldSpec& spec, const std::vector<Need>& needs,
                                    bool prefer_whole) {
    std::vector<Got> out(needs.size());
    std::vector<Status> status(needs.size());
    // Up to 16 fetches in flight on the process's I/O pool (the caller runs some too): no
    // thread is made per fetch, and a remote store pays about needs/16 round trips.
    IoPool::ParallelFor(
        needs.size(),
        [&](size_t i) {
          auto r = FetchOne(spec, needs[i], prefer_whole);
          if (!r.ok()) {
            status[i] = r.status();
          } else {
            out[i] = std::move(*r);
          }
        },
        16);
    for (const Status& s : status) RETURN_IF_ERROR(s);
    return out;
  }

 private:
  Result<Got> FetchOne(const FieldSpec& spec, const Need& need, bool prefer_whole) {
    if (auto hit = impl_.segments()->Get(need.segment)) {
      impl_.CountHit();
      return Got{hit, true};
    }
    Store& store = impl_.store();
    const ObjectId id = need.segment;
    if (prefer_whole) {
      return FetchWhole(spec, id);
    }
    columnar::FetchRange fetch = [&store, id, this](uint64_t off, uint64_t len) -> Result<Bytes> {
      auto r = store.GetRange(id, off, len);
      if (r.ok()) impl_.CountFetch(r->size());
      return r;
    };
    // The handle keeps the headers it opened: a later take reopens the segment without a
    // request (the header was verified when first read; segments are immutable).
    auto open = [&]() -> Result<columnar::SegmentReader> {
      if (auto header = impl_.headers()->Get(id)) {
        return columnar::SegmentReader::Reopen(fetch, spec, std::move(header));
      }
      // On an object store the first request also brings the rows' blocks when the
      // segment is small, and the whole header when it is large: one round, not two or
      // three (header, its rest, then the blocks). On a local store a request is cheap.
      const uint64_t first =
          IsLocalStore(store) || need.rows.empty()
              ? columnar::kSegmentFirstFetchBytes
              : columnar::SpeculativeFirstFetchBytes(spec, uint64_t{need.rows.back()} + 1);
      ASSIGN_OR_RETURN(auto opened, columnar::SegmentReader::Open(fetch, spec, first));
      auto header = opened.header();
      impl_.headers()->Insert(id, header, columnar::SegmentReader::HeaderBytes(*header));
      return opened;
    };
    auto reader = open();
    if (!reader.ok()) return SegmentReadError(reader.status(), id);
    // On a local store a request is a system call on cached pages: read no gap bytes (and
    // hash none); on an object store fewer, larger requests win (spec/12 §5.3 item 4).
    reader->set_coalesce_gaps(!IsLocalStore(store));
    // An index entry past the segment's end is damage, not a bad request (the rows come
    // from the index, not from the caller).
    if (!need.rows.empty() && need.rows.back() >= reader->rows()) {
      return Corrupt("the index points at row " + std::to_string(need.rows.back()) +
                     " of segment " + id.ToString() + " which has " +
                     std::to_string(reader->rows()) + " rows");
    }
    // Dense reads: the rest of the object costs about the same; ReadAll verifies every
    // block the column is built from.
    if (need.rows.size() * 2 >= reader->rows()) {
      auto col = reader->ReadAll();
      if (!col.ok()) return SegmentReadError(col.status(), id);
      auto shared = std::make_shared<const Column>(std::move(*col));
      impl_.segments()->Insert(id, shared);
      return Got{shared, true};
    }
    auto col = reader->ReadRows(need.rows);
    if (!col.ok()) return SegmentReadError(col.status(), id);
    return Got{std::make_shared<const Column>(std::move(*col)), false};
  }

  Result<Got> FetchWhole(const FieldSpec& spec, const ObjectId& id) {
    auto bytes = impl_.store().Get(id);
    if (!bytes.ok()) return bytes.status().WithContext("segment for field " + Quote(spec.name));
    impl_.CountFetch(bytes->size());
    auto col = columnar::DecodeSegment(*bytes, spec);
    if (!col.ok()) return SegmentReadError(col.status(), id);
    // Not cached: a scan reads each segment once and keeps the ones its next batch needs
    // pinned itself; caching them would only hold memory (up to the cache size) for nothing.
    return Got{std::make_shared<const Column>(std::move(*col)), true};
  }

  const DatasetImpl& impl_;
};

// One output row: entry `index` of `leaf`, or a missing anchor (leaf == nullptr).
struct RowRef {
  const btree::Leaf* leaf = nullptr;
  uint32_t index = 0;
};

using Pins = std::unordered_map<ObjectId, std::shared_ptr<const Column>>;

// Materializes the projected fields for `rows` (in output order). Whole segments found
// in `pins` are reused; on return `pins` (if given) holds the whole segments this call
// used, so a scan does not refetch a segment that spans several batches.
Result<std::vector<Column>> Materialize(const DatasetImpl& impl,
                                        const std::vector<FieldSpec>& fields,
                                        const std::vector<RowRef>& rows, bool prefer_whole,
                                        Pins* pins) {
  std::vector<Column> out;
  out.reserve(fields.size());
  SegmentFetcher fetcher(impl);
  Pins next_pins;
  for (const auto& spec : fields) {
    // Group output rows by segment.
    std::unordered_map<ObjectId, size_t> slot;
    std::vector<SegmentFetcher::Need> needs;
    std::vector<std::pair<size_t, uint32_t>> where(rows.size(), {SIZE_MAX, 0});
    const btree::Leaf* last_leaf = nullptr;
    const btree::LeafField* lf = nullptr;
    for (size_t i = 0; i < rows.size(); ++i) {
      const RowRef& r = rows[i];
      if (r.leaf == nullptr) continue;
      if (r.leaf != last_leaf) {
        last_leaf = r.leaf;
        lf = r.leaf->FindField(spec.name);
      }
      if (lf == nullptr || lf->seg[r.index] == btree::kNoSegment) continue;
      const ObjectId& seg = lf->segments[lf->seg[r.index]];
      uint32_t row = lf->row[r.index];
      auto [it, inserted] = slot.emplace(seg, needs.size());
      if (inserted) needs.push_back({seg, {}});
      needs[it->second].rows.push_back(row);
      where[i] = {it->second, row};
    }
    std::vector<SegmentFetcher::Got> got(needs.size());
    std::vector<SegmentFetcher::Need> to_fetch;
    std::vector<size_t> fetch_slot;
    for (size_t s = 0; s < needs.size(); ++s) {
      auto& n = needs[s];
      if (pins != nullptr) {
        auto p = pins->find(n.segment);
        if (p != pins->end()) {
          got[s] = {p->second, true};
          continue;
        }
      }
      std::sort(n.rows.begin(), n.rows.end());
      n.rows.erase(std::unique(n.rows.begin(), n.rows.end()), n.rows.end());
      to_fetch.push_back(n);
      fetch_slot.push_back(s);
    }
    ASSIGN_OR_RETURN(auto fetched, fetcher.FetchAll(spec, to_fetch, prefer_whole));
    for (size_t k = 0; k < fetched.size(); ++k) got[fetch_slot[k]] = std::move(fetched[k]);
    std::vector<Src> srcs(rows.size());
    for (size_t i = 0; i < rows.size(); ++i) {
      auto [s, row] = where[i];
      if (s == SIZE_MAX) continue;
      const auto& g = got[s];
      uint64_t r = row;
      if (!g.whole) {
        const auto& rs = needs[s].rows;
        r = static_cast<uint64_t>(std::lower_bound(rs.begin(), rs.end(), row) - rs.begin());
      } else if (row >= g.column->length()) {
        return Corrupt("index entry for anchor " +
                       std::to_string(rows[i].leaf->anchors[rows[i].index]) + " points at row " +
                       std::to_string(row) + " of segment " + needs[s].segment.ToString() +
                       " which has " + std::to_string(g.column->length()) + " rows");
      }
      srcs[i] = Src{g.column.get(), r};
    }
    out.push_back(Gather(spec, srcs));
    if (pins != nullptr) {
      for (size_t s = 0; s < needs.size(); ++s) {
        if (got[s].whole) next_pins[needs[s].segment] = got[s].column;
      }
    }
  }
  if (pins != nullptr) *pins = std::move(next_pins);
  return out;
}

class ScanReader : public BatchReader {
 public:
  ScanReader(std::shared_ptr<const Version> version, const DatasetImpl& impl,
             std::vector<FieldSpec> fields, ScanOptions options)
      : version_(std::move(version)),
        impl_(impl),
        fields_(std::move(fields)),
        options_(std::move(options)),
        tree_(&impl.store(), impl.pages(), version_->index),
        cursor_(tree_.Scan(options_.start, options_.end)) {
    for (const auto& f : fields_) {
      Status s = schema_.Add(f);
      (void)s;  // fields come from a valid schema
    }
    schema_.set_version(version_->manifest.schema.version());
  }

  const Schema& schema() const override { return schema_; }

  Result<std::optional<Batch>> Next() override {
    if (done_) return std::optional<Batch>();
    uint64_t want = std::min<uint64_t>(options_.batch_rows, options_.limit - emitted_);
    if (want == 0) {
      done_ = true;
      return std::optional<Batch>();
    }
    std::vector<RowRef> rows;
    rows.reserve(want);
    Batch b;
    b.anchors.reserve(want);
    // The leaves referenced by `rows` stay alive through held_ until the next call.
    held_.clear();
    while (rows.size() < want) {
      if (!span_ || span_->begin == span_->end) {
        ASSIGN_OR_RETURN(span_, cursor_.NextLeaf());
        if (!span_) {
          done_ = true;
          break;
        }
      }
      held_.push_back(span_->leaf);
      size_t take = std::min<size_t>(span_->end - span_->begin, want - rows.size());
      for (size_t i = 0; i < take; ++i) {
        uint32_t idx = static_cast<uint32_t>(span_->begin + i);
        rows.push_back(RowRef{span_->leaf.get(), idx});
        b.anchors.push_back(span_->leaf->anchors[idx]);
      }
      span_->begin += take;
    }
    if (rows.empty()) return std::optional<Batch>();
    ASSIGN_OR_RETURN(b.columns, Materialize(impl_, fields_, rows, /*prefer_whole=*/true, &pins_));
    emitted_ += rows.size();
    return std::optional<Batch>(std::move(b));
  }

 private:
  std::shared_ptr<const Version> version_;
  const DatasetImpl& impl_;
  std::vector<FieldSpec> fields_;
  ScanOptions options_;
  Schema schema_;
  btree::Tree tree_;
  btree::Cursor cursor_;
  std::optional<btree::LeafSpan> span_;
  std::vector<std::shared_ptr<const btree::Leaf>> held_;
  Pins pins_;
  uint64_t emitted_ = 0;
  bool done_ = false;
};

}  // namespace

Result<std::unique_ptr<BatchReader>> Dataset::Scan(const ScanOptions& options) const {
  auto version = impl_->current();
  if (options.anchors_only && !options.fields.empty()) {
    return InvalidArgument("scan: an anchors-only scan reads no fields, but " +
                           std::to_string(options.fields.size()) + " were requested (first " +
                           Quote(options.fields[0]) + ")");
  }
  // Anchors only: no fields to materialize, so only index pages are read.
  std::vector<FieldSpec> fields;
  if (!options.anchors_only) {
    ASSIGN_OR_RETURN(fields, Project(version->manifest.schema, options.fields));
  }
  if (options.batch_rows == 0) return InvalidArgument("scan: batch_rows must be at least 1");
  if (options.start > options.end) {
    return InvalidArgument("scan: start anchor " + std::to_string(options.start) +
                           " is after end anchor " + std::to_string(options.end));
  }
  return std::unique_ptr<BatchReader>(
      new ScanReader(std::move(version), *impl_, std::move(fields), options));
}

Result<std::unique_ptr<BatchReader>> Dataset::TimeAnchorIter(uint64_t since_ns, uint64_t until_ns,
                                                             const std::vector<std::string>& fields,
                                                             uint64_t batch_rows) const {
  if (since_ns > until_ns) {
    return InvalidArgument("time range: since " + std::to_string(since_ns) + " ns is after until " +
                           std::to_string(until_ns) + " ns");
  }
  ScanOptions options;
  options.fields = fields;
  options.start = since_ns;
  options.end = until_ns;
  options.batch_rows = batch_rows;
  return Scan(options);
}

Result<Batch> Dataset::Take(const std::vector<uint64_t>& anchors,
                            const std::vector<std::string>& fields, bool allow_missing,
                            std::vector<bool>* found) const {
  auto version = impl_->current();
  ASSIGN_OR_RETURN(auto specs, Project(version->manifest.schema, fields));
  // Look up each distinct anchor once, in ascending order.
  std::vector<uint64_t> sorted = anchors;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  btree::Tree tree(&impl_->store(), impl_->pages(), version->index);
  ASSIGN_OR_RETURN(auto entries, tree.LookupMany(sorted));
  std::vector<btree::Entry> hits;
  std::vector<int64_t> hit_of(sorted.size(), -1);
  for (size_t k = 0; k < sorted.size(); ++k) {
    if (!entries[k]) continue;
    hit_of[k] = static_cast<int64_t>(hits.size());
    hits.push_back(std::move(*entries[k]));
  }
  btree::Leaf leaf = btree::LeafFromEntries(hits);
  std::vector<RowRef> rows(anchors.size());
  if (found != nullptr) found->assign(anchors.size(), false);
  for (size_t i = 0; i < anchors.size(); ++i) {
    size_t k = static_cast<size_t>(std::lower_bound(sorted.begin(), sorted.end(), anchors[i]) -
                                   sorted.begin());
    if (hit_of[k] < 0) {
      if (!allow_missing) {
        return NotFound("anchor " + std::to_string(anchors[i]) + " is not in dataset " +
                        Quote(name()) + " at " + version->id.ToString());
      }
      continue;
    }
    rows[i] = RowRef{&leaf, static_cast<uint32_t>(hit_of[k])};
    if (found != nullptr) (*found)[i] = true;
  }
  Batch out;
  out.anchors = anchors;
  ASSIGN_OR_RETURN(out.columns, Materialize(*impl_, specs, rows, /*prefer_whole=*/false, nullptr));
  return out;
}

}  // namespace dreamdb
