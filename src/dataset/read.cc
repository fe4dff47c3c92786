// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Dataset reads: Scan (streaming, projected) and Take (random access) — spec/14-semantics.md §4.
#include <algorithm>
#include <cstdlib>
#include <map>
#include <numeric>
#include <optional>
#include <unordered_map>

#include "src/base/encoding.h"
#include "src/base/io_pool.h"
#include "src/columnar/segment.h"
#include "src/dataset/dataset_impl.h"
#include "src/dataset/reach.h"

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

// Ranges of one segment at most this far apart are read as one request (the gap bytes
// are read but never used, so never verified). On a local store a request is a system
// call on cached pages: reading a gap of up to half a page costs less than another call
// (a few us) and keeps the bytes read per random small value below Lance's (bench/
// RESULTS.md, "Random take, planned and coalesced": 4 KiB reads 1.55x the bytes for at
// most ~20% less time). On an object store a request costs a round trip, worth far more
// bytes. DREAMDB_TAKE_GAP_BYTES (0..2^30) overrides both, for measurements.
constexpr uint64_t kLocalGapBytes = 2048;
constexpr uint64_t kRemoteGapBytes = uint64_t{256} << 10;
uint64_t GapBytes(bool local) {
  static const int64_t configured = [] {
    const char* env = std::getenv("DREAMDB_TAKE_GAP_BYTES");
    if (env == nullptr || *env == '\0') return int64_t{-1};
    char* end = nullptr;
    long long v = std::strtoll(env, &end, 10);
    if (end == nullptr || *end != '\0' || v < 0 || v > (int64_t{1} << 30)) return int64_t{-1};
    return static_cast<int64_t>(v);
  }();
  if (configured >= 0) return static_cast<uint64_t>(configured);
  return local ? kLocalGapBytes : kRemoteGapBytes;
}

// Requests of one read in flight at once: a local read is CPU work on cached pages (a few
// threads suffice); a remote one waits on the network (as many as the S3 client keeps
// connections).
size_t InFlight(bool local) { return local ? 4 : 64; }

// Reads the requested rows of segments. Small or mostly-needed segments are fetched whole
// (verified by id, cached); otherwise only the needed checksum blocks are fetched, all
// segments' ranges planned before any is read (FetchRows).
class SegmentFetcher {
 public:
  explicit SegmentFetcher(const DatasetImpl& impl)
      : impl_(impl), local_(IsLocalStore(impl.store())) {}

  // rows: ascending, unique. A Got holds a column aligned with `rows` (whole: row i =
  // segment row i).
  struct Need {
    const FieldSpec* spec = nullptr;
    ObjectId segment;
    std::vector<uint32_t> rows;
  };
  struct Got {
    std::shared_ptr<const Column> column;
    bool whole = false;  // column holds every row of the segment
  };

  // Fills every got[i] that has no column yet (got is aligned with needs).
  Status FetchAll(const std::vector<Need>& needs, std::vector<Got>& got, bool prefer_whole) {
    if (!prefer_whole) return FetchRows(needs, got);
    std::vector<Status> status(needs.size());
    // Up to 16 fetches in flight on the process's I/O pool (the caller runs some too): no
    // thread is made per fetch, and a remote store pays about needs/16 round trips.
    IoPool::ParallelFor(
        needs.size(),
        [&](size_t i) {
          if (got[i].column != nullptr) return;
          if (auto hit = impl_.segments()->Get(needs[i].segment)) {
            impl_.CountHit();
            got[i] = Got{hit, true};
            return;
          }
          auto r = FetchWhole(*needs[i].spec, needs[i].segment);
          if (!r.ok()) {
            status[i] = r.status();
          } else {
            got[i] = std::move(*r);
          }
        },
        16);
    for (const Status& s : status) RETURN_IF_ERROR(s);
    return Status::Ok();
  }

 private:
  columnar::FetchRange Fetcher(const ObjectId& id) const {
    return [this, id](uint64_t off, uint64_t len) -> Result<Bytes> {
      auto r = impl_.store().GetRange(id, off, len);
      if (r.ok()) impl_.CountFetch(r->size());
      return r;
    };
  }

  // Random rows: every segment's first-round ranges (spec/12 §5.3; for fixed-width fields
  // all there is) are planned before any is read, sorted by (segment, offset), coalesced
  // across gaps of at most GapBytes, and read at once on the I/O pool; the readers then
  // verify and assemble (a variable-width field's values take one more round).
  Status FetchRows(const std::vector<Need>& needs, std::vector<Got>& got) {
    const size_t n = needs.size();
    std::vector<std::optional<columnar::SegmentReader>> readers(n);
    std::vector<Status> status(n);
    // Cached columns and headers cost no request; a header not yet cached costs one.
    std::vector<size_t> to_open;
    for (size_t i = 0; i < n; ++i) {
      if (got[i].column != nullptr) continue;
      const ObjectId& id = needs[i].segment;
      if (auto hit = impl_.segments()->Get(id)) {
        impl_.CountHit();
        got[i] = Got{hit, true};
      } else if (auto header = impl_.headers()->Get(id)) {
        // Verified when first read; segments are immutable.
        auto r = columnar::SegmentReader::Reopen(Fetcher(id), *needs[i].spec, std::move(header));
        if (!r.ok()) return SegmentReadError(r.status(), id);
        readers[i].emplace(std::move(*r));
      } else {
        to_open.push_back(i);
      }
    }
    IoPool::ParallelFor(
        to_open.size(),
        [&](size_t k) {
          const size_t i = to_open[k];
          const ObjectId& id = needs[i].segment;
          auto r = columnar::SegmentReader::Open(Fetcher(id), *needs[i].spec);
          if (!r.ok()) {
            status[i] = SegmentReadError(r.status(), id);
            return;
          }
          auto header = r->header();
          impl_.headers()->Insert(id, header, columnar::SegmentReader::HeaderBytes(*header));
          readers[i].emplace(std::move(*r));
        },
        InFlight(local_));
    for (const Status& st : status) RETURN_IF_ERROR(st);

    // Plan every request before issuing any.
    struct Request {
      size_t item;
      uint64_t start, end;
    };
    std::vector<Request> requests;
    std::vector<char> dense(n, 0);
    const uint64_t gap = GapBytes(local_);
    for (size_t i = 0; i < n; ++i) {
      if (!readers[i]) continue;
      columnar::SegmentReader& reader = *readers[i];
      const ObjectId& id = needs[i].segment;
      // Later rounds (variable-width values) read only what they use on a local store.
      reader.set_coalesce_gaps(!local_);
      // An index entry past the segment's end is damage, not a bad request (the rows
      // come from the index, not from the caller).
      const auto& rows = needs[i].rows;
      if (!rows.empty() && rows.back() >= reader.rows()) {
        return Corrupt("the index points at row " + std::to_string(rows.back()) + " of segment " +
                       id.ToString() + " which has " + std::to_string(reader.rows()) + " rows");
      }
      // Dense reads: the rest of the object costs about the same; ReadAll verifies every
      // block the column is built from.
      if (rows.size() * 2 >= reader.rows()) {
        dense[i] = 1;
        continue;
      }
      auto ranges = reader.PlanRows(rows);
      if (!ranges.ok()) return SegmentReadError(ranges.status(), id);
      for (const auto& r : *ranges) {
        if (!requests.empty() && requests.back().item == i &&
            r.start - requests.back().end <= gap) {
          requests.back().end = r.end;
        } else {
          requests.push_back({i, r.start, r.end});
        }
      }
    }
    std::vector<std::optional<Result<Bytes>>> fetched(requests.size());
    IoPool::ParallelFor(
        requests.size(),
        [&](size_t k) {
          const Request& q = requests[k];
          auto r = impl_.store().GetRange(needs[q.item].segment, q.start, q.end - q.start);
          if (r.ok()) impl_.CountFetch(r->size());
          fetched[k].emplace(std::move(r));
        },
        InFlight(local_));
    for (size_t k = 0; k < requests.size(); ++k) {
      const Request& q = requests[k];
      Status st = readers[q.item]->Supply(q.start, q.end - q.start, std::move(*fetched[k]));
      if (!st.ok()) return SegmentReadError(st, needs[q.item].segment);
    }

    // Verify and assemble (a dense segment is read whole here).
    IoPool::ParallelFor(
        n,
        [&](size_t i) {
          if (!readers[i]) return;
          const ObjectId& id = needs[i].segment;
          auto col = dense[i] ? readers[i]->ReadAll() : readers[i]->ReadRows(needs[i].rows);
          if (!col.ok()) {
            status[i] = SegmentReadError(col.status(), id);
            return;
          }
          auto shared = std::make_shared<const Column>(std::move(*col));
          if (dense[i]) impl_.segments()->Insert(id, shared);
          got[i] = Got{std::move(shared), dense[i] != 0};
        },
        InFlight(local_));
    for (const Status& st : status) RETURN_IF_ERROR(st);
    return Status::Ok();
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
  const bool local_;
};

// One output row: entry `index` of `leaf`, or a missing anchor (leaf == nullptr).
struct RowRef {
  const btree::Leaf* leaf = nullptr;
  uint32_t index = 0;
};

using Pins = std::unordered_map<ObjectId, std::shared_ptr<const Column>>;

// Materializes the projected fields for `rows` (in output order). All fields' segment
// reads are planned first and fetched together. Whole segments found in `pins` are
// reused; on return `pins` (if given) holds the whole segments this call used, so a scan
// does not refetch a segment that spans several batches.
Result<std::vector<Column>> Materialize(const DatasetImpl& impl,
                                        const std::vector<FieldSpec>& fields,
                                        const std::vector<RowRef>& rows, bool prefer_whole,
                                        Pins* pins) {
  // Group output rows by (field, segment). where[f][i]: the need and segment row of
  // output row i of field f (need SIZE_MAX: null).
  std::vector<SegmentFetcher::Need> needs;
  std::vector<std::vector<std::pair<size_t, uint32_t>>> where(fields.size());
  for (size_t f = 0; f < fields.size(); ++f) {
    const FieldSpec& spec = fields[f];
    std::unordered_map<ObjectId, size_t> slot;
    where[f].assign(rows.size(), {SIZE_MAX, 0});
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
      if (inserted) needs.push_back({&spec, seg, {}});
      needs[it->second].rows.push_back(row);
      where[f][i] = {it->second, row};
    }
  }
  std::vector<SegmentFetcher::Got> got(needs.size());
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
  }
  SegmentFetcher fetcher(impl);
  RETURN_IF_ERROR(fetcher.FetchAll(needs, got, prefer_whole));

  std::vector<Column> out;
  out.reserve(fields.size());
  std::vector<Src> srcs(rows.size());
  for (size_t f = 0; f < fields.size(); ++f) {
    for (size_t i = 0; i < rows.size(); ++i) {
      auto [s, row] = where[f][i];
      if (s == SIZE_MAX) {
        srcs[i] = Src{};
        continue;
      }
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
    out.push_back(Gather(fields[f], srcs));
  }
  if (pins != nullptr) {
    Pins next_pins;
    for (size_t s = 0; s < needs.size(); ++s) {
      if (got[s].whole) next_pins[needs[s].segment] = got[s].column;
    }
    *pins = std::move(next_pins);
  }
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
    auto columns = Materialize(impl_, fields_, rows, /*prefer_whole=*/true, &pins_);
    if (!columns.ok()) {
      // A value reclaimed by per-field retention is named as such (spec/06 §6.12).
      return ExplainReclaimedField(impl_.store(), impl_.name_, version_->id,
                                   version_->manifest.time_ns, fields_, columns.status());
    }
    b.columns = std::move(*columns);
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
  // The leaves (held here while the rows point into them), not an Entry per anchor.
  ASSIGN_OR_RETURN(auto hits, tree.LookupLeaves(sorted));
  std::vector<RowRef> rows(anchors.size());
  if (found != nullptr) found->assign(anchors.size(), false);
  for (size_t i = 0; i < anchors.size(); ++i) {
    size_t k = static_cast<size_t>(std::lower_bound(sorted.begin(), sorted.end(), anchors[i]) -
                                   sorted.begin());
    if (hits[k].leaf == nullptr) {
      if (!allow_missing) {
        return NotFound("anchor " + std::to_string(anchors[i]) + " is not in dataset " +
                        Quote(name()) + " at " + version->id.ToString());
      }
      continue;
    }
    rows[i] = RowRef{hits[k].leaf.get(), hits[k].index};
    if (found != nullptr) (*found)[i] = true;
  }
  Batch out;
  out.anchors = anchors;
  auto columns = Materialize(*impl_, specs, rows, /*prefer_whole=*/false, nullptr);
  if (!columns.ok()) {
    return ExplainReclaimedField(impl_->store(), impl_->name_, version->id,
                                 version->manifest.time_ns, specs, columns.status());
  }
  out.columns = std::move(*columns);
  return out;
}

}  // namespace dreamdb
