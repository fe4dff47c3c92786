// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Dataset reads: Scan (streaming, projected) and Take (random access) — spec/14-semantics.md §4.
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <numeric>
#include <optional>
#include <thread>
#include <unordered_map>

#include "src/base/buffer_recycler.h"
#include "src/base/encoding.h"
#include "src/base/io_pool.h"
#include "src/base/little_endian.h"
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

  // Fills got[i] (aligned with needs) for random rows: the headers not yet held are read
  // first (at once, on the I/O pool); then every segment, at once, reads its first-round
  // ranges (spec/12 §5.3; for fixed-width fields all there is), coalesced across gaps of at
  // most GapBytes, in one multi-range request, and verifies and assembles them (a
  // variable-width field's values take one more round).
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
          // On an object store the first request also brings the rows' blocks when the
          // segment is small, and the whole header when it is large: one round, not two
          // or three (header, its rest, then the blocks). On a local store a request is
          // cheap.
          const FieldSpec& spec = *needs[i].spec;
          const std::vector<uint32_t>& rows = needs[i].rows;
          const uint64_t first =
              local_ || rows.empty()
                  ? columnar::kSegmentFirstFetchBytes
                  : columnar::SpeculativeFirstFetchBytes(
                        spec, uint64_t{*std::max_element(rows.begin(), rows.end())} + 1);
          auto r = columnar::SegmentReader::Open(Fetcher(id), spec, first);
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

    // Then per segment, in one task: its planned ranges coalesced across gaps of at most
    // GapBytes, read in one multi-range request (Store::GetRanges: on file:// one
    // descriptor lookup and one fstat for all of them), handed to the reader, which
    // verifies every block it uses and assembles the column. A dense segment is read whole.
    const uint64_t gap = GapBytes(local_);
    IoPool::ParallelFor(
        n,
        [&](size_t i) {
          if (!readers[i]) return;
          status[i] = ReadSegment(needs[i].segment, needs[i].rows, gap, *readers[i], got[i]);
        },
        InFlight(local_));
    for (const Status& st : status) RETURN_IF_ERROR(st);
    return Status::Ok();
  }

 private:
  // The rows of one opened segment into `got`: the first round's ranges in one
  // multi-range read (ranges gap bytes or less apart merged), then verified and assembled;
  // or, when at least half the rows are needed, the whole object (ReadAll verifies it).
  Status ReadSegment(const ObjectId& id, const std::vector<uint32_t>& rows, uint64_t gap,
                     columnar::SegmentReader& reader, Got& got) const {
    // Later rounds (variable-width values) read only what they use on a local store.
    reader.set_coalesce_gaps(!local_);
    // An index entry past the segment's end is damage, not a bad request (the rows come
    // from the index, not from the caller).
    if (!rows.empty() && rows.back() >= reader.rows()) {
      return Corrupt("the index points at row " + std::to_string(rows.back()) + " of segment " +
                     id.ToString() + " which has " + std::to_string(reader.rows()) + " rows");
    }
    // Dense reads: the rest of the object costs about the same.
    const bool dense = rows.size() * 2 >= reader.rows();
    if (!dense) {
      auto planned = reader.PlanRows(rows);
      if (!planned.ok()) return SegmentReadError(planned.status(), id);
      std::vector<ObjectRange> ranges;
      ranges.reserve(planned->size());
      for (const auto& r : *planned) {
        if (!ranges.empty() && r.start - (ranges.back().offset + ranges.back().length) <= gap) {
          ranges.back().length = r.end - ranges.back().offset;
        } else {
          ranges.push_back({r.start, r.end - r.start});
        }
      }
      if (!ranges.empty()) {
        auto fetched = impl_.store().GetRanges(id, ranges);
        if (!fetched.ok()) {
          // The reader maps the error as it would for its own fetch of the first range.
          Status st = reader.Supply(ranges[0].offset, ranges[0].length, fetched.status());
          return SegmentReadError(st, id);
        }
        uint64_t bytes = 0;
        for (const Bytes& b : *fetched) bytes += b.size();
        impl_.CountFetch(bytes);
        for (size_t k = 0; k < ranges.size(); ++k) {
          Status st = reader.Supply(ranges[k].offset, ranges[k].length, std::move((*fetched)[k]));
          if (!st.ok()) return SegmentReadError(st, id);
        }
      }
    }
    auto col = dense ? reader.ReadAll() : reader.ReadRows(rows);
    if (!col.ok()) return SegmentReadError(col.status(), id);
    auto shared = std::make_shared<const Column>(std::move(*col));
    if (dense) impl_.segments()->Insert(id, shared);
    got = Got{std::move(shared), dense};
    return Status::Ok();
  }

  columnar::FetchRange Fetcher(const ObjectId& id) const {
    return [this, id](uint64_t off, uint64_t len) -> Result<Bytes> {
      auto r = impl_.store().GetRange(id, off, len);
      if (r.ok()) impl_.CountFetch(r->size());
      return r;
    };
  }

  const DatasetImpl& impl_;
  const bool local_;
};

// One output row: entry `index` of `leaf`, or a missing anchor (leaf == nullptr).
struct RowRef {
  const btree::Leaf* leaf = nullptr;
  uint32_t index = 0;
};

// Materializes the projected fields of a random take: `sorted` holds the distinct rows
// in ascending anchor order (so grouped by leaf; leaf null: a missing anchor), and output
// row i is sorted[row_of[i]] (SIZE_MAX: missing). All fields' segment reads are
// planned first and fetched together.
Result<std::vector<Column>> Materialize(const DatasetImpl& impl,
                                        const std::vector<FieldSpec>& fields,
                                        const std::vector<RowRef>& sorted,
                                        const std::vector<size_t>& row_of) {
  // Group the rows by (field, segment), walking them leaf by leaf: a leaf's field and the
  // need of each of its segments are looked up once per leaf, not once per row. where[f][k]:
  // the need and segment row of sorted row k of field f (need SIZE_MAX: null).
  std::vector<SegmentFetcher::Need> needs;
  std::vector<std::vector<std::pair<size_t, uint32_t>>> where(fields.size());
  std::vector<size_t> need_of;  // the current leaf's segment index -> need (SIZE_MAX: unseen)
  for (size_t f = 0; f < fields.size(); ++f) {
    const FieldSpec& spec = fields[f];
    std::unordered_map<ObjectId, size_t> slot;
    where[f].assign(sorted.size(), {SIZE_MAX, 0});
    const btree::Leaf* last_leaf = nullptr;
    const btree::LeafField* lf = nullptr;
    for (size_t k = 0; k < sorted.size(); ++k) {
      const RowRef& r = sorted[k];
      if (r.leaf == nullptr) continue;
      if (r.leaf != last_leaf) {
        last_leaf = r.leaf;
        lf = r.leaf->FindField(spec.name);
        if (lf != nullptr) need_of.assign(lf->segments.size(), SIZE_MAX);
      }
      if (lf == nullptr || lf->seg[r.index] == btree::kNoSegment) continue;
      size_t& need = need_of[lf->seg[r.index]];
      if (need == SIZE_MAX) {
        const ObjectId& seg = lf->segments[lf->seg[r.index]];
        auto [it, inserted] = slot.emplace(seg, needs.size());
        if (inserted) needs.push_back({&spec, seg, {}});
        need = it->second;
      }
      const uint32_t row = lf->row[r.index];
      needs[need].rows.push_back(row);
      where[f][k] = {need, row};
    }
  }
  std::vector<SegmentFetcher::Got> got(needs.size());
  for (size_t s = 0; s < needs.size(); ++s) {
    auto& n = needs[s];
    std::sort(n.rows.begin(), n.rows.end());
    n.rows.erase(std::unique(n.rows.begin(), n.rows.end()), n.rows.end());
  }
  SegmentFetcher fetcher(impl);
  RETURN_IF_ERROR(fetcher.FetchRows(needs, got));

  std::vector<Column> out;
  out.reserve(fields.size());
  std::vector<Src> srcs(row_of.size());
  for (size_t f = 0; f < fields.size(); ++f) {
    for (size_t i = 0; i < row_of.size(); ++i) {
      const size_t k = row_of[i];
      auto [s, row] = k == SIZE_MAX ? std::pair<size_t, uint32_t>{SIZE_MAX, 0} : where[f][k];
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
        return Corrupt(
            "index entry for anchor " + std::to_string(sorted[k].leaf->anchors[sorted[k].index]) +
            " points at row " + std::to_string(row) + " of segment " + needs[s].segment.ToString() +
            " which has " + std::to_string(g.column->length()) + " rows");
      }
      srcs[i] = Src{g.column.get(), r};
    }
    out.push_back(Gather(fields[f], srcs));
  }
  return out;
}

// One whole segment a scan reads: its bytes, verified against the id by Store::Get (the
// only hash over them unless the store's verify_reads is off, when the block sums are
// checked instead), and their buffers viewed in Column's layout.
struct ScanSegment {
  ScanSegment() = default;
  ScanSegment(const ScanSegment&) = delete;
  ScanSegment& operator=(const ScanSegment&) = delete;
  ~ScanSegment() { BufferRecycler::Give(std::move(bytes)); }
  Bytes bytes;
  columnar::SegmentBuffers buffers;
  std::shared_ptr<const Column> cached;  // a cached decoded segment the views point into
};

Result<std::shared_ptr<const ScanSegment>> FetchScanSegment(const DatasetImpl& impl,
                                                            const FieldSpec& spec,
                                                            const ObjectId& id) {
  auto seg = std::make_shared<ScanSegment>();
  if (auto hit = impl.segments()->Get(id)) {  // decoded by an earlier dense take
    impl.CountHit();
    seg->buffers = columnar::SegmentBuffers{hit->length(),  hit->validity(), hit->values(),
                                            hit->offsets(), hit->data(),     nullptr};
    seg->cached = std::move(hit);
    return std::shared_ptr<const ScanSegment>(std::move(seg));
  }
  auto bytes = impl.store().Get(id);
  if (!bytes.ok()) return bytes.status().WithContext("segment for field " + Quote(spec.name));
  impl.CountFetch(bytes->size());
  seg->bytes = std::move(*bytes);
  auto buffers = columnar::ViewSegment(seg->bytes, spec, impl.store().options().verify_reads);
  if (!buffers.ok()) return SegmentReadError(buffers.status(), id);
  seg->buffers = std::move(*buffers);
  return std::shared_ptr<const ScanSegment>(std::move(seg));
}

// Rows [begin, end) of `src`, or end - begin nulls when `src` is null.
struct Run {
  const columnar::SegmentBuffers* src = nullptr;
  uint64_t begin = 0;
  uint64_t end = 0;
};

bool Bit(ByteView bitmap, uint64_t i) {
  return (static_cast<uint8_t>(bitmap[i / 8]) >> (i % 8)) & 1;
}

// Builds one column from runs of segment rows: each buffer is sized once and each value
// copied once, straight from the segment bytes.
Result<Column> GatherRuns(const FieldSpec& spec, const std::vector<Run>& runs, uint64_t rows) {
  bool any_null = false;
  uint64_t data_bytes = 0;
  const bool variable = spec.type == FieldType::kString || spec.type == FieldType::kBlob ||
                        spec.type == FieldType::kCategorical;
  for (const Run& r : runs) {
    if (r.src == nullptr) {
      any_null = true;
      continue;
    }
    if (r.end > r.src->rows) {
      return Internal("scan: rows " + std::to_string(r.begin) + ".." + std::to_string(r.end) +
                      " of a " + std::to_string(r.src->rows) + "-row segment");
    }
    if (!r.src->validity.empty()) {
      for (uint64_t i = r.begin; i < r.end && !any_null; ++i) any_null = !Bit(r.src->validity, i);
    }
    if (variable) {
      data_bytes +=
          LoadU64(r.src->offsets.data() + r.end * 8) - LoadU64(r.src->offsets.data() + r.begin * 8);
    }
  }
  std::string validity;
  if (any_null) validity.assign((rows + 7) / 8, '\0');
  std::string values, offsets, data;
  const uint64_t width = variable ? 0 : spec.FixedWidth();
  // Large buffers come from the recycler: pages already mapped, nothing to zero.
  if (variable) {
    offsets.reserve((rows + 1) * 8);
    data = BufferRecycler::Take(data_bytes);
    AppendU64(&offsets, 0);
  } else {
    values = BufferRecycler::Take(rows * width);
  }
  uint64_t out = 0;
  for (const Run& r : runs) {
    const uint64_t n = r.end - r.begin;
    if (r.src == nullptr) {
      if (variable) {
        for (uint64_t i = 0; i < n; ++i) AppendU64(&offsets, data.size());
      } else {
        values.append(n * width, '\0');
      }
      out += n;
      continue;
    }
    const columnar::SegmentBuffers& b = *r.src;
    if (any_null) {
      for (uint64_t i = 0; i < n; ++i) {
        if (b.validity.empty() || Bit(b.validity, r.begin + i)) {
          validity[(out + i) / 8] =
              static_cast<char>(validity[(out + i) / 8] | (1u << ((out + i) % 8)));
        }
      }
    }
    if (variable) {
      const uint64_t base = LoadU64(b.offsets.data() + r.begin * 8);
      const uint64_t stop = LoadU64(b.offsets.data() + r.end * 8);
      const uint64_t shift = data.size() - base;  // wraps as uint64, like the offsets
      for (uint64_t i = r.begin + 1; i <= r.end; ++i) {
        AppendU64(&offsets, LoadU64(b.offsets.data() + i * 8) + shift);
      }
      data.append(b.data.data() + base, stop - base);
    } else {
      values.append(b.values.data() + r.begin * width, n * width);
    }
    out += n;
  }
  auto col = Column::FromBuffers(spec, rows, std::move(validity), std::move(values),
                                 std::move(offsets), std::move(data));
  if (!col.ok()) return Internal("scan: " + col.status().message());
  return col;
}

// A streaming scan. Each batch is built from whole segments, each read once (one request,
// verified once against its id) and kept only while the batches that need it are built.
// Three stages overlap: the caller consumes batch k, the read-ahead thread copies batch
// k+1 out of its segments, and the I/O pool reads and verifies the segments of batch k+2.
// Memory is bounded by the batch size and the segment size, not by the dataset: the
// segments of two batches and two batches.
// Thread safety: one caller at a time (BatchReader); done_, the cursor, the plans and
// fetches_ are touched by one thread at a time: the caller, or the read-ahead thread
// between a request and the caller's wait for its result (ordered by mu_). A Fetch's
// result is written by its pool task and read after IoTask::Wait().
class ScanReader : public BatchReader {
 public:
  ScanReader(std::shared_ptr<const Version> version, const DatasetImpl& impl,
             std::vector<FieldSpec> fields, ScanOptions options)
      : version_(std::move(version)),
        impl_(impl),
        fields_(std::move(fields)),
        options_(std::move(options)),
        tree_(&impl.store(), impl.pages(), version_->index),
        cursor_(tree_.Scan(options_.start, options_.end)),
        fetches_(fields_.size()) {
    for (const auto& f : fields_) {
      Status s = schema_.Add(f);
      (void)s;  // fields come from a valid schema
    }
    schema_.set_version(version_->manifest.schema.version());
  }
  ~ScanReader() override {
    if (worker_.joinable()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        stop_ = true;
      }
      cv_.notify_all();
      if (getpid() == pid_) {
        worker_.join();
      } else {
        worker_.detach();  // a forked child: the thread exists only in the parent
      }
    }
    // Segment reads still running on the pool write into fetches_: wait for them (in the
    // process that started them; a forked child has no pool threads to wait for).
    if (getpid() == owner_pid_) {
      for (auto& per_field : fetches_) {
        for (auto& [id, fetch] : per_field) fetch->task->Cancel();
      }
    }
  }

  const Schema& schema() const override { return schema_; }

  Result<std::optional<Batch>> Next() override {
    Result<std::optional<Batch>> out = std::optional<Batch>();
    if (!requested_) {
      out = Produce();
    } else if (getpid() != pid_) {
      return InvalidArgument(
          "scan: this reader was made before a fork and reads ahead on a thread of the "
          "parent; start a new scan in the child process");
    } else {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return ready_.has_value(); });
      out = std::move(*ready_);
      ready_.reset();
      requested_ = false;
    }
    // Read ahead: the next batch is built while the caller consumes this one.
    if (out.ok() && out->has_value() && !done_) {
      if (!worker_.joinable()) {
        pid_ = getpid();
        worker_ = std::thread([this] { ReadAhead(); });
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        wanted_ = true;
      }
      requested_ = true;
      cv_.notify_all();
    }
    return out;
  }

 private:
  // Where one row's value of one field is: a row of a segment named in a leaf the plan
  // holds, or nowhere (null).
  struct Where {
    const ObjectId* segment = nullptr;
    uint32_t row = 0;
  };
  // One batch, planned before its values are read.
  struct Plan {
    std::vector<RowRef> rows;  // in anchor order
    std::vector<uint64_t> anchors;
    std::vector<std::shared_ptr<const btree::Leaf>> held;  // the leaves `rows` point into
    std::vector<std::vector<Where>> where;                 // per field, per row
    std::vector<std::vector<ObjectId>> segments;           // per field: the distinct segments
  };
  // One segment read on the I/O pool; the batch that needs it waits for it.
  struct Fetch {
    std::shared_ptr<IoTask> task;
    std::shared_ptr<const ScanSegment> got;  // written by the task, read after Wait()
    Status status;                           // likewise
  };

  // Builds the next batch (runs on the caller's thread or the read-ahead thread, never
  // both). Its segments were requested when it was planned, during the previous call; the
  // batch after it is planned and its segments requested before this one is gathered, so
  // they are read and verified on the I/O pool while this one is copied out.
  Result<std::optional<Batch>> Produce() {
    if (done_) return std::optional<Batch>();
    if (!next_error_.ok()) {
      done_ = true;
      return next_error_;
    }
    std::optional<Plan> current = std::move(planned_);
    planned_.reset();
    if (!current) {
      auto first = PlanNext();
      if (!first.ok()) {
        done_ = true;
        return first.status();
      }
      current = std::move(*first);
    }
    if (!current) {
      done_ = true;
      return std::optional<Batch>();
    }
    auto next = PlanNext();
    if (next.ok()) {
      planned_ = std::move(*next);
    } else {
      next_error_ = next.status();  // returned by the next call, after this batch
    }
    auto columns = Materialize(*current);
    // Only the segments of the planned batch stay: this one's values are copied out.
    Release();
    if (!columns.ok()) {
      done_ = true;
      // A value reclaimed by per-field retention is named as such (spec/06 §6.12).
      return ExplainReclaimedField(impl_.store(), impl_.name_, version_->id,
                                   version_->manifest.time_ns, fields_, columns.status());
    }
    Batch b;
    b.anchors = std::move(current->anchors);
    b.columns = std::move(*columns);
    return std::optional<Batch>(std::move(b));
  }

  // The read-ahead thread: builds one batch per request. One thread per reader (not the
  // I/O pool's): the batches' large buffers are then allocated by one thread, so the
  // allocator reuses them instead of growing one arena per pool thread.
  void ReadAhead() {
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return wanted_ || stop_; });
        if (stop_) return;
        wanted_ = false;
      }
      {
        BackgroundWork scope;  // a fork waits for it (io_pool.h)
        Result<std::optional<Batch>> r = Produce();
        std::lock_guard<std::mutex> lock(mu_);
        ready_.emplace(std::move(r));
      }
      cv_.notify_all();
    }
  }

  // Advances the cursor over the next batch's rows, finds where each field's values are
  // and starts reading the segments not already read or being read. Nullopt at the end.
  Result<std::optional<Plan>> PlanNext() {
    uint64_t want = std::min<uint64_t>(options_.batch_rows, options_.limit - planned_rows_);
    Plan p;
    p.rows.reserve(want);
    p.anchors.reserve(want);
    while (p.rows.size() < want && !cursor_done_) {
      if (!span_ || span_->begin == span_->end) {
        ASSIGN_OR_RETURN(span_, cursor_.NextLeaf());
        if (!span_) {
          cursor_done_ = true;
          break;
        }
      }
      p.held.push_back(span_->leaf);
      size_t take = std::min<size_t>(span_->end - span_->begin, want - p.rows.size());
      for (size_t i = 0; i < take; ++i) {
        uint32_t idx = static_cast<uint32_t>(span_->begin + i);
        p.rows.push_back(RowRef{span_->leaf.get(), idx});
        p.anchors.push_back(span_->leaf->anchors[idx]);
      }
      span_->begin += take;
    }
    if (p.rows.empty()) return std::optional<Plan>();
    planned_rows_ += p.rows.size();
    p.where.resize(fields_.size());
    p.segments.resize(fields_.size());
    for (size_t f = 0; f < fields_.size(); ++f) {
      auto& w = p.where[f];
      w.resize(p.rows.size());
      const btree::Leaf* last_leaf = nullptr;
      const btree::LeafField* lf = nullptr;
      for (size_t i = 0; i < p.rows.size(); ++i) {
        const RowRef& r = p.rows[i];
        if (r.leaf != last_leaf) {
          last_leaf = r.leaf;
          lf = r.leaf->FindField(fields_[f].name);
        }
        if (lf == nullptr || lf->seg[r.index] == btree::kNoSegment) continue;
        w[i] = Where{&lf->segments[lf->seg[r.index]], lf->row[r.index]};
        if (i > 0 && w[i - 1].segment != nullptr && *w[i - 1].segment == *w[i].segment) continue;
        const ObjectId& id = *w[i].segment;
        auto& ids = p.segments[f];
        if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
      }
      for (const ObjectId& id : p.segments[f]) Request(f, id);
    }
    return std::optional<Plan>(std::move(p));
  }

  // Starts reading segment `id` of field `f` in the background unless it is read already.
  // On a local store a read is a copy from cached pages plus the hash over it; on a remote
  // one a GET: either way it overlaps the copy-out of the batch before.
  void Request(size_t f, const ObjectId& id) {
    auto& mine = fetches_[f];
    if (mine.count(id) != 0) return;
    auto fetch = std::make_shared<Fetch>();
    Fetch* out = fetch.get();  // outlives the task: the reader waits for it before freeing
    const DatasetImpl* impl = &impl_;
    const FieldSpec* spec = &fields_[f];
    auto read = [impl, spec, id, out] {
      auto got = FetchScanSegment(*impl, *spec, id);
      if (got.ok()) {
        out->got = std::move(*got);
      } else {
        out->status = got.status();
      }
    };
    // Local reads go one at a time on the reader's lane (one allocator arena for the
    // segment buffers); remote ones in parallel on the pool (each waits on the network).
    fetch->task = local_ ? lane_.Start(std::move(read)) : IoTask::Start(std::move(read));
    mine.emplace(id, std::move(fetch));
  }

  // Drops the segments the planned batch does not need.
  void Release() {
    for (size_t f = 0; f < fields_.size(); ++f) {
      auto& mine = fetches_[f];
      for (auto it = mine.begin(); it != mine.end();) {
        const auto* keep = planned_ ? &planned_->segments[f] : nullptr;
        if (keep != nullptr && std::find(keep->begin(), keep->end(), it->first) != keep->end()) {
          ++it;
        } else {
          it->second->task->Cancel();  // finished unless an error ended the batch early
          it = mine.erase(it);
        }
      }
    }
  }

  // The projected fields of a planned batch, from the whole segments it requested.
  Result<std::vector<Column>> Materialize(const Plan& p) {
    for (size_t f = 0; f < fields_.size(); ++f) {
      for (const ObjectId& id : p.segments[f]) {
        Fetch& x = *fetches_[f].at(id);
        x.task->Wait();
        RETURN_IF_ERROR(x.status);
      }
    }
    std::vector<Column> out;
    out.reserve(fields_.size());
    std::vector<Run> runs;
    for (size_t f = 0; f < fields_.size(); ++f) {
      runs.clear();
      const ObjectId* last = nullptr;
      const columnar::SegmentBuffers* last_src = nullptr;
      for (size_t i = 0; i < p.rows.size(); ++i) {
        const Where& w = p.where[f][i];
        const columnar::SegmentBuffers* src = nullptr;
        if (w.segment != nullptr) {
          if (last == nullptr || *last != *w.segment) {
            last = w.segment;
            last_src = &fetches_[f].at(*w.segment)->got->buffers;
          }
          src = last_src;
        }
        if (src != nullptr && w.row >= src->rows) {
          return Corrupt("index entry for anchor " + std::to_string(p.anchors[i]) +
                         " points at row " + std::to_string(w.row) + " of segment " +
                         w.segment->ToString() + " which has " + std::to_string(src->rows) +
                         " rows");
        }
        if (!runs.empty() && runs.back().src == src &&
            (src == nullptr || runs.back().end == w.row)) {
          ++runs.back().end;
        } else {
          runs.push_back(src == nullptr ? Run{nullptr, 0, 1} : Run{src, w.row, w.row + 1u});
        }
      }
      ASSIGN_OR_RETURN(Column c, GatherRuns(fields_[f], runs, p.rows.size()));
      out.push_back(std::move(c));
    }
    return out;
  }

  std::shared_ptr<const Version> version_;
  const DatasetImpl& impl_;
  std::vector<FieldSpec> fields_;
  ScanOptions options_;
  Schema schema_;
  btree::Tree tree_;
  btree::Cursor cursor_;
  std::optional<btree::LeafSpan> span_;
  bool cursor_done_ = false;
  uint64_t planned_rows_ = 0;    // rows of the batches planned so far
  std::optional<Plan> planned_;  // the next batch: planned, its segments requested
  Status next_error_;            // planning the next batch failed: returned after this one
  // Per field: the segments being read or read, for the batch being built and the next.
  std::vector<std::unordered_map<ObjectId, std::shared_ptr<Fetch>>> fetches_;
  pid_t owner_pid_ = getpid();  // the process whose pool reads into fetches_
  bool local_ = IsLocalStore(impl_.store());
  IoLane lane_;                     // a local store's segment reads
  BufferRecycler::Active recycle_;  // segments and batches reuse the buffers given back
  bool done_ = false;
  // Read-ahead: Produce() runs on worker_ after the first batch, one call per request.
  std::thread worker_;
  pid_t pid_ = 0;           // the process worker_ runs in
  bool requested_ = false;  // a batch was requested from worker_ and not yet returned
  std::mutex mu_;
  std::condition_variable cv_;
  bool wanted_ = false;                                // guarded by mu_
  bool stop_ = false;                                  // guarded by mu_
  std::optional<Result<std::optional<Batch>>> ready_;  // guarded by mu_
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

Result<std::vector<ReadUnit>> Dataset::ReadUnits(const std::vector<std::string>& fields,
                                                 uint64_t min_records, uint64_t max_records) const {
  if (min_records == 0 || max_records < min_records) {
    return InvalidArgument("read units: need 1 <= min_records <= max_records, got " +
                           std::to_string(min_records) + " and " + std::to_string(max_records));
  }
  auto version = impl_->current();
  ASSIGN_OR_RETURN(std::vector<FieldSpec> specs, Project(version->manifest.schema, fields));
  btree::Tree tree(&impl_->store(), impl_->pages(), version->index);
  btree::Cursor cursor = tree.Scan(0, UINT64_MAX);
  // Per field: the segment of the last record that had a value (a null moves nothing).
  std::vector<std::optional<ObjectId>> last(specs.size());
  std::vector<const btree::LeafField*> in_leaf(specs.size());
  std::vector<ReadUnit> units;
  ReadUnit unit;
  for (;;) {
    ASSIGN_OR_RETURN(std::optional<btree::LeafSpan> span, cursor.NextLeaf());
    if (!span) break;
    const btree::Leaf& leaf = *span->leaf;
    for (size_t f = 0; f < specs.size(); ++f) in_leaf[f] = leaf.FindField(specs[f].name);
    for (size_t i = span->begin; i < span->end; ++i) {
      bool moved = false;
      for (size_t f = 0; f < specs.size(); ++f) {
        const btree::LeafField* lf = in_leaf[f];
        if (lf == nullptr || lf->seg[i] == btree::kNoSegment) continue;
        const ObjectId& seg = lf->segments[lf->seg[i]];
        if (last[f] && *last[f] == seg) continue;
        moved = moved || last[f].has_value();
        last[f] = seg;
      }
      if (unit.records > 0 &&
          (unit.records >= max_records || (moved && unit.records >= min_records))) {
        units.push_back(unit);
        unit = ReadUnit{};
      }
      if (unit.records == 0) unit.first = leaf.anchors[i];
      unit.last = leaf.anchors[i];
      ++unit.records;
    }
  }
  if (unit.records > 0) units.push_back(unit);
  return units;
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
  std::vector<RowRef> rows(hits.size());
  for (size_t k = 0; k < hits.size(); ++k) rows[k] = RowRef{hits[k].leaf.get(), hits[k].index};
  std::vector<size_t> row_of(anchors.size(), SIZE_MAX);  // output row -> rows[k]
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
    row_of[i] = k;
    if (found != nullptr) (*found)[i] = true;
  }
  Batch out;
  out.anchors = anchors;
  auto columns = Materialize(*impl_, specs, rows, row_of);
  if (!columns.ok()) {
    return ExplainReclaimedField(impl_->store(), impl_->name_, version->id,
                                 version->manifest.time_ns, specs, columns.status());
  }
  out.columns = std::move(*columns);
  return out;
}

}  // namespace dreamdb
