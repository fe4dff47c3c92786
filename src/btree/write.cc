// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Copy-on-write updates of the anchor index (spec/11-anchor-index.md §5).
//
// Design notes.
//
// An operation (upsert or remove) is a sorted list of routing anchors plus a leaf
// transform (LeafOp). ApplySubtree routes the anchors down the tree: a node hands child i
// the anchors in [keys[i], keys[i+1]) (child 0 also those below keys[0], the last child
// everything above its key), reads only the children that receive anchors, and rebuilds
// itself from its untouched children (kept by id, never read) and the replacement pages
// of the touched ones. Every level returns the list of pages that replace the subtree:
// none (all entries removed), one, or several (a split). A page whose re-encoding has the
// id it had before is "unchanged": it is neither written nor forces its parent to change.
//
// Invariants kept (numbers from spec §3):
//   W1  Every written page passes ValidateLeaf/ValidateNode (EncodeLeaf/EncodeNode check)
//       and its parent's keys/counts are taken from the page itself, so T2/T3 hold.
//   W2  Pages above capacity are cut into ceil(n/cap) near-equal parts, except on the
//       rightmost path of a pure append, where parts are filled completely from the left
//       (so bulk appends leave full pages and re-encode only the last one).
//   W3  A root with several pages grows new levels until one page remains; a root node
//       with one child is replaced by the child (removals), and a result of at most
//       kInlineMaxEntries entries becomes inline, so T4 holds.
//   W4  Children are put before the IndexRef that reaches them is returned; the caller
//       publishes it (manifest + ref CAS) only after that, so a ref never reaches a
//       missing page.

#include <algorithm>
#include <utility>

#include "src/base/encoding.h"
#include "src/base/io_pool.h"
#include "src/btree/btree.h"
#include "src/btree/internal.h"
#include "src/store/put_journal.h"

namespace dreamdb::btree {

using internal::PagePtr;

namespace {

// Puts pages with a bounded number of puts in flight.
class PageWriter {
 public:
  PageWriter(Store& store, PageCache* cache, WriteStats* stats, size_t parallel)
      : store_(store), cache_(cache), stats_(stats), parallel_(std::max<size_t>(parallel, 1)) {}
  PageWriter(const PageWriter&) = delete;
  PageWriter& operator=(const PageWriter&) = delete;
  ~PageWriter() { (void)Flush(); }

  Status Add(const ObjectId& id, Bytes bytes, PagePtr page) {
    if (!error_.ok()) return error_;
    if (cache_ != nullptr && page != nullptr) cache_->InsertWritten(id, std::move(page));
    stats_->pages_written += 1;
    stats_->bytes_written += bytes.size();
    if (parallel_ == 1) return store_.PutWithId(id, bytes);
    while (in_flight_.size() >= parallel_) DrainOne();
    if (!error_.ok()) return error_;
    Store* store = &store_;
    auto status = std::make_shared<Status>();
    // On the I/O pool; a put no pool thread has started runs in DrainOne's Wait.
    auto task = IoTask::Start(
        [store, id, bytes = std::move(bytes), status, journal = PutJournal::Current()] {
          PutJournal::Scope journaled(journal);  // the caller's journal, if any
          *status = store->PutWithId(id, bytes);
        });
    in_flight_.emplace_back(std::move(task), std::move(status));
    return Status::Ok();
  }

  // Waits for every put; the first error, if any.
  Status Flush() {
    while (!in_flight_.empty()) DrainOne();
    return error_;
  }

 private:
  void DrainOne() {
    in_flight_.front().first->Wait();
    Status s = std::move(*in_flight_.front().second);
    in_flight_.pop_front();
    if (!s.ok() && error_.ok()) error_ = s;
  }

  Store& store_;
  PageCache* cache_;
  WriteStats* stats_;
  const size_t parallel_;
  std::deque<std::pair<std::shared_ptr<IoTask>, std::shared_ptr<Status>>> in_flight_;
  Status error_;
};

// A page that replaces (part of) a subtree.
struct Out {
  uint64_t key = 0;  // smallest anchor under the page
  ObjectId id;
  uint64_t count = 0;    // entries under the page
  bool changed = false;  // false: the page is already stored (id unchanged)
  Bytes bytes;           // the encoding, when changed
  PagePtr page;          // the decoded page, when known
};

// The leaf transform of an operation.
class LeafOp {
 public:
  virtual ~LeafOp() = default;
  // Applies routing anchors [lo, hi) to `old` (null = the empty tree). Returns the merged
  // entries (possibly non-canonical: SliceLeaf fixes that; possibly empty), or sets
  // *unchanged when the result would equal `old`.
  virtual Leaf Apply(const Leaf* old, size_t lo, size_t hi, bool* unchanged) = 0;
};

// Sizes of the parts of n items cut at capacity `cap` (W2).
std::vector<size_t> PartSizes(size_t n, size_t cap, bool fill_left) {
  if (n <= cap) return {n};
  std::vector<size_t> sizes;
  if (fill_left) {
    for (size_t done = 0; done < n; done += cap) sizes.push_back(std::min(cap, n - done));
    return sizes;
  }
  const size_t k = (n + cap - 1) / cap;
  for (size_t i = 0; i < k; ++i) sizes.push_back(n / k + (i < n % k ? 1 : 0));
  return sizes;
}

class Updater {
 public:
  Updater(Store& store, PageCache* cache, std::span<const uint64_t> anchors, LeafOp& op,
          const WriteOptions& options)
      : store_(store),
        cache_(cache),
        anchors_(anchors),
        op_(op),
        writer_(store, cache, &stats_, options.parallel_puts) {}

  Result<IndexRef> Run(const IndexRef& base) {
    std::vector<Out> outs;
    bool appended = false;
    uint32_t level = 0;
    if (anchors_.empty()) return base;
    if (base.is_paged()) {
      ASSIGN_OR_RETURN(PagePtr root, internal::Fetch(store_, cache_, base.root, &reads_));
      RETURN_IF_ERROR(CheckChild(*root, base.root, internal::RootBounds(base)));
      level = root->level();
      ASSIGN_OR_RETURN(outs, ApplySubtree(root, base.root, std::nullopt, 0, anchors_.size(),
                                          /*rightmost=*/true, &appended));
    } else {
      PagePtr page;
      if (base.is_inline()) page = std::make_shared<const Page>(MakePage(*base.inline_leaf));
      ASSIGN_OR_RETURN(outs, ApplyLeaf(page, ObjectId(), 0, anchors_.size(), true, &appended));
    }
    ASSIGN_OR_RETURN(IndexRef result, Finish(std::move(outs), level, appended));
    RETURN_IF_ERROR(writer_.Flush());
    stats_.pages_read += reads_.load();
    return result;
  }

  const WriteStats& stats() const { return stats_; }

 private:
  Result<std::vector<Out>> ApplySubtree(const PagePtr& page, const ObjectId& old_id,
                                        std::optional<uint64_t> hi_bound, size_t lo, size_t hi,
                                        bool rightmost, bool* appended) {
    if (page->is_leaf()) return ApplyLeaf(page, old_id, lo, hi, rightmost, appended);
    const Node& node = page->node();
    const size_t n = node.size();
    // Route the anchors to the children.
    std::vector<std::pair<size_t, size_t>> ranges(n, {hi, hi});
    std::vector<size_t> touched;
    std::vector<ObjectId> touched_ids;
    size_t pos = lo;
    for (size_t i = 0; i < n && pos < hi; ++i) {
      size_t end = hi;
      if (i + 1 < n) {
        end = static_cast<size_t>(
            std::lower_bound(anchors_.begin() + pos, anchors_.begin() + hi, node.keys[i + 1]) -
            anchors_.begin());
      }
      if (end > pos) {
        ranges[i] = {pos, end};
        touched.push_back(i);
        touched_ids.push_back(node.children[i]);
      }
      pos = end;
    }
    ASSIGN_OR_RETURN(std::vector<PagePtr> children,
                     internal::FetchMany(store_, cache_, touched_ids, &reads_));
    std::vector<Out> rebuilt;
    rebuilt.reserve(n + 1);
    bool any_changed = false;
    bool last_appended = false;
    size_t t = 0;
    for (size_t i = 0; i < n; ++i) {
      if (t >= touched.size() || touched[t] != i) {
        rebuilt.push_back(Out{node.keys[i], node.children[i], node.counts[i], false, {}, nullptr});
        continue;
      }
      const ChildBounds b = internal::ChildBoundsOf(node, i, hi_bound);
      RETURN_IF_ERROR(CheckChild(*children[t], node.children[i], b));
      bool child_appended = false;
      ASSIGN_OR_RETURN(std::vector<Out> outs,
                       ApplySubtree(children[t], node.children[i], b.hi, ranges[i].first,
                                    ranges[i].second, rightmost && i + 1 == n, &child_appended));
      children[t].reset();  // bound memory: the child is no longer needed
      ++t;
      if (i + 1 == n) last_appended = child_appended;
      if (outs.size() != 1 || outs[0].changed) any_changed = true;
      for (Out& o : outs) {
        if (o.changed) {
          RETURN_IF_ERROR(writer_.Add(o.id, std::move(o.bytes), o.page));
          o.bytes.clear();
          o.changed = false;  // stored now (or in flight); the parent needs only the id
          o.page.reset();
        }
        rebuilt.push_back(std::move(o));
      }
    }
    if (!any_changed) {
      *appended = false;
      return std::vector<Out>{Out{node.keys.front(), old_id, node.TotalCount(), false, {}, page}};
    }
    *appended = rightmost && touched.size() == 1 && touched[0] == n - 1 && last_appended;
    return CutNodes(node.level, std::move(rebuilt), *appended, old_id);
  }

  Result<std::vector<Out>> ApplyLeaf(const PagePtr& page, const ObjectId& old_id, size_t lo,
                                     size_t hi, bool rightmost, bool* appended) {
    const Leaf* old = page != nullptr ? &page->leaf() : nullptr;
    bool unchanged = false;
    Leaf merged = op_.Apply(old, lo, hi, &unchanged);
    if (unchanged) {
      *appended = false;
      return std::vector<Out>{Out{old->anchors.front(), old_id, old->size(), false, {}, page}};
    }
    *appended = rightmost && (old == nullptr || anchors_[lo] > old->anchors.back());
    std::vector<Out> outs;
    size_t begin = 0;
    if (merged.size() == 0) return outs;
    for (size_t size : PartSizes(merged.size(), kLeafCapacity, *appended)) {
      Leaf part = SliceLeaf(merged, begin, begin + size);
      begin += size;
      ASSIGN_OR_RETURN(Bytes bytes, EncodeLeaf(part));
      Out o;
      o.key = part.anchors.front();
      o.count = part.size();
      o.id = ObjectId::Of(bytes);
      o.changed = o.id != old_id;
      if (o.changed) o.bytes = std::move(bytes);
      o.page = std::make_shared<const Page>(MakePage(std::move(part)));
      outs.push_back(std::move(o));
    }
    return outs;
  }

  // Groups `children` (all stored already) into nodes of `level`.
  Result<std::vector<Out>> CutNodes(uint32_t level, std::vector<Out> children, bool fill_left,
                                    const ObjectId& old_id) {
    std::vector<Out> outs;
    size_t begin = 0;
    if (children.empty()) return outs;
    for (size_t size : PartSizes(children.size(), kNodeFanout, fill_left)) {
      Node node;
      node.level = level;
      for (size_t i = begin; i < begin + size; ++i) {
        node.keys.push_back(children[i].key);
        node.children.push_back(children[i].id);
        node.counts.push_back(children[i].count);
      }
      begin += size;
      ASSIGN_OR_RETURN(Bytes bytes, EncodeNode(node));
      Out o;
      o.key = node.keys.front();
      o.count = node.TotalCount();
      o.id = ObjectId::Of(bytes);
      o.changed = o.id != old_id;
      if (o.changed) o.bytes = std::move(bytes);
      o.page = std::make_shared<const Page>(MakePage(std::move(node)));
      outs.push_back(std::move(o));
    }
    return outs;
  }

  Status Write(Out& o) {
    if (!o.changed) return Status::Ok();
    o.changed = false;
    return writer_.Add(o.id, std::move(o.bytes), o.page);
  }

  Result<PagePtr> PageOf(const Out& o) {
    if (o.page != nullptr) return o.page;
    RETURN_IF_ERROR(writer_.Flush());  // the page may be one we are still putting
    return internal::Fetch(store_, cache_, o.id, &reads_);
  }

  // Appends the entries under `page` to `out` (small trees only: see Finish).
  Status CollectEntries(const Page& page, std::vector<Entry>* out) {
    if (page.is_leaf()) {
      for (size_t i = 0; i < page.leaf().size(); ++i) out->push_back(page.leaf().EntryAt(i));
      return Status::Ok();
    }
    RETURN_IF_ERROR(writer_.Flush());
    for (const ObjectId& id : page.node().children) {
      ASSIGN_OR_RETURN(PagePtr child, internal::Fetch(store_, cache_, id, &reads_));
      RETURN_IF_ERROR(CollectEntries(*child, out));
    }
    return Status::Ok();
  }

  // Turns the pages replacing the old root into a new root (W3).
  Result<IndexRef> Finish(std::vector<Out> outs, uint32_t level, bool appended) {
    while (true) {
      if (outs.empty()) return IndexRef::Empty();
      if (outs.size() > 1) {
        for (Out& o : outs) RETURN_IF_ERROR(Write(o));
        ++level;
        ASSIGN_OR_RETURN(outs, CutNodes(level, std::move(outs), appended, ObjectId()));
        continue;
      }
      Out& o = outs[0];
      if (o.count <= kInlineMaxEntries) {
        // Small enough to embed: gather the (at most 64) entries, wherever they are.
        ASSIGN_OR_RETURN(PagePtr page, PageOf(o));
        std::vector<Entry> entries;
        RETURN_IF_ERROR(CollectEntries(*page, &entries));
        return IndexRef::Inline(LeafFromEntries(entries));
      }
      if (level > 0) {
        ASSIGN_OR_RETURN(PagePtr page, PageOf(o));
        const Node& node = page->node();
        if (node.size() == 1) {  // collapse a single-child root
          outs = {Out{node.keys[0], node.children[0], node.counts[0], false, {}, nullptr}};
          --level;
          continue;
        }
      }
      RETURN_IF_ERROR(Write(o));
      return IndexRef::Paged(o.id, level + 1, o.count);
    }
  }

  Store& store_;
  PageCache* cache_;
  std::span<const uint64_t> anchors_;
  LeafOp& op_;
  WriteStats stats_;
  std::atomic<uint64_t> reads_{0};
  PageWriter writer_;
};

// ---- Upsert ----

Status ValidateBatch(const Batch& batch) {
  const size_t n = batch.anchors.size();
  for (size_t i = 1; i < n; ++i) {
    if (batch.anchors[i - 1] >= batch.anchors[i]) {
      return InvalidArgument("btree batch: anchors not strictly ascending at position " +
                             std::to_string(i) + " (" + std::to_string(batch.anchors[i]) +
                             " after " + std::to_string(batch.anchors[i - 1]) + ")");
    }
  }
  if (!batch.replace.empty() && batch.replace.size() != n) {
    return InvalidArgument("btree batch: " + std::to_string(batch.replace.size()) +
                           " replace flags for " + std::to_string(n) + " anchors");
  }
  for (size_t fi = 0; fi < batch.fields.size(); ++fi) {
    const BatchField& f = batch.fields[fi];
    if (f.name.empty() || f.name.size() > kMaxFieldNameBytes) {
      return InvalidArgument("btree batch: field name " + Quote(f.name) + " must be 1.." +
                             std::to_string(kMaxFieldNameBytes) + " bytes");
    }
    for (size_t fj = 0; fj < fi; ++fj) {
      if (batch.fields[fj].name == f.name) {
        return InvalidArgument("btree batch: field " + Quote(f.name) + " appears twice");
      }
    }
    if (f.seg.size() != n || f.row.size() != n) {
      return InvalidArgument("btree batch: field " + Quote(f.name) + " has " +
                             std::to_string(f.seg.size()) + "/" + std::to_string(f.row.size()) +
                             " seg/row values for " + std::to_string(n) + " anchors");
    }
    for (size_t i = 0; i < n; ++i) {
      if (f.seg[i] != kNoSegment && f.seg[i] >= f.segments.size()) {
        return InvalidArgument("btree batch: field " + Quote(f.name) + " entry " +
                               std::to_string(i) + " seg index " + std::to_string(f.seg[i]) +
                               " out of range (" + std::to_string(f.segments.size()) +
                               " segments)");
      }
    }
  }
  return Status::Ok();
}

class UpsertOp final : public LeafOp {
 public:
  explicit UpsertOp(const Batch& batch) : batch_(batch) {
    order_.resize(batch.fields.size());
    for (size_t i = 0; i < order_.size(); ++i) order_[i] = i;
    std::sort(order_.begin(), order_.end(), [&](size_t a, size_t b) {
      return cbor::KeyLess(batch.fields[a].name, batch.fields[b].name);
    });
    remap_.resize(batch.fields.size());
    for (size_t i = 0; i < batch.fields.size(); ++i) {
      remap_[i].stamp.assign(batch.fields[i].segments.size(), 0);
      remap_[i].value.assign(batch.fields[i].segments.size(), 0);
    }
  }

  Leaf Apply(const Leaf* old, size_t lo, size_t hi, bool* unchanged) override {
    ++generation_;
    *unchanged = false;
    // Output fields: the union of the old leaf's and the batch's, in canonical order.
    struct Source {
      int old_field = -1;
      int batch_field = -1;
    };
    std::vector<Source> sources;
    Leaf out;
    {
      size_t a = 0, b = 0;
      const size_t na = old != nullptr ? old->fields.size() : 0;
      while (a < na || b < order_.size()) {
        Source s;
        std::string name;
        if (b >= order_.size() ||
            (a < na && cbor::KeyLess(old->fields[a].name, batch_.fields[order_[b]].name))) {
          s.old_field = static_cast<int>(a);
          name = old->fields[a++].name;
        } else if (a >= na || cbor::KeyLess(batch_.fields[order_[b]].name, old->fields[a].name)) {
          s.batch_field = static_cast<int>(order_[b]);
          name = batch_.fields[order_[b++]].name;
        } else {
          s.old_field = static_cast<int>(a);
          s.batch_field = static_cast<int>(order_[b]);
          name = old->fields[a++].name;
          ++b;
        }
        LeafField f;
        f.name = std::move(name);
        if (s.old_field >= 0) f.segments = old->fields[s.old_field].segments;
        sources.push_back(s);
        out.fields.push_back(std::move(f));
      }
    }
    const size_t old_n = old != nullptr ? old->size() : 0;
    const size_t cap = old_n + (hi - lo);
    out.anchors.reserve(cap);
    for (LeafField& f : out.fields) {
      f.seg.reserve(cap);
      f.row.reserve(cap);
    }
    size_t i = 0, j = lo;
    while (i < old_n || j < hi) {
      const bool take_old = j >= hi || (i < old_n && old->anchors[i] <= batch_.anchors[j]);
      const bool take_new = i >= old_n || (j < hi && batch_.anchors[j] <= old->anchors[i]);
      const bool replace_all = take_new && !batch_.replace.empty() && batch_.replace[j] != 0;
      out.anchors.push_back(take_old ? old->anchors[i] : batch_.anchors[j]);
      for (size_t k = 0; k < out.fields.size(); ++k) {
        LeafField& f = out.fields[k];
        const Source& s = sources[k];
        uint32_t seg = kNoSegment, row = 0;
        if (take_old && !replace_all && s.old_field >= 0) {
          seg = old->fields[s.old_field].seg[i];
          row = old->fields[s.old_field].row[i];
        }
        if (take_new && s.batch_field >= 0) {
          const BatchField& bf = batch_.fields[s.batch_field];
          if (bf.seg[j] != kNoSegment) {
            seg = SegmentIndex(&f, s.batch_field, bf.seg[j]);
            row = bf.row[j];
          }
        }
        f.seg.push_back(seg);
        f.row.push_back(row);
      }
      if (take_old) ++i;
      if (take_new) ++j;
    }
    return out;
  }

 private:
  // The index in `f.segments` of batch field `bf`'s segment `s`, appended on first use
  // in this leaf. (SliceLeaf dedupes against the old leaf's segments.)
  uint32_t SegmentIndex(LeafField* f, size_t bf, uint32_t s) {
    Remap& r = remap_[bf];
    if (r.stamp[s] != generation_) {
      r.stamp[s] = generation_;
      r.value[s] = static_cast<uint32_t>(f->segments.size());
      f->segments.push_back(batch_.fields[bf].segments[s]);
    }
    return r.value[s];
  }

  struct Remap {
    std::vector<uint64_t> stamp;
    std::vector<uint32_t> value;
  };
  const Batch& batch_;
  std::vector<size_t> order_;  // batch field indices in canonical name order
  std::vector<Remap> remap_;   // per batch field, valid where stamp == generation_
  uint64_t generation_ = 0;
};

class RemoveOp final : public LeafOp {
 public:
  explicit RemoveOp(std::span<const uint64_t> anchors) : anchors_(anchors) {}

  Leaf Apply(const Leaf* old, size_t lo, size_t hi, bool* unchanged) override {
    *unchanged = false;
    if (old == nullptr) return Leaf();
    std::vector<size_t> keep;
    keep.reserve(old->size());
    size_t j = lo;
    for (size_t i = 0; i < old->size(); ++i) {
      while (j < hi && anchors_[j] < old->anchors[i]) ++j;
      if (j < hi && anchors_[j] == old->anchors[i]) continue;
      keep.push_back(i);
    }
    removed_ += old->size() - keep.size();
    if (keep.size() == old->size()) {
      *unchanged = true;
      return Leaf();
    }
    Leaf out;
    for (size_t i : keep) out.anchors.push_back(old->anchors[i]);
    for (const LeafField& f : old->fields) {
      LeafField o;
      o.name = f.name;
      o.segments = f.segments;
      for (size_t i : keep) {
        o.seg.push_back(f.seg[i]);
        o.row.push_back(f.row[i]);
      }
      out.fields.push_back(std::move(o));
    }
    return out;
  }

  uint64_t removed() const { return removed_; }

 private:
  std::span<const uint64_t> anchors_;
  uint64_t removed_ = 0;
};

void AddStats(WriteStats* into, const WriteStats& s) {
  if (into == nullptr) return;
  into->pages_read += s.pages_read;
  into->pages_written += s.pages_written;
  into->bytes_written += s.bytes_written;
}

}  // namespace

void Batch::Add(const Entry& entry, bool replace_all) {
  const size_t i = anchors.size();
  anchors.push_back(entry.anchor);
  if (replace_all || !replace.empty()) {
    replace.resize(i, 0);
    replace.push_back(replace_all ? 1 : 0);
  }
  for (BatchField& f : fields) {
    f.seg.push_back(kNoSegment);
    f.row.push_back(0);
  }
  for (const auto& field : entry.fields) {
    const std::string& name = field.first;
    const FieldLoc& loc = field.second;
    auto it = std::find_if(fields.begin(), fields.end(),
                           [&name](const BatchField& f) { return f.name == name; });
    if (it == fields.end()) {
      BatchField f;
      f.name = name;
      f.seg.assign(i + 1, kNoSegment);
      f.row.assign(i + 1, 0);
      fields.push_back(std::move(f));
      it = fields.end() - 1;
    }
    // Reuse the segment if listed (the common case: one or a few segments per batch).
    auto sit = std::find(it->segments.rbegin(), it->segments.rend(), loc.segment);
    uint32_t s;
    if (sit == it->segments.rend()) {
      s = static_cast<uint32_t>(it->segments.size());
      it->segments.push_back(loc.segment);
    } else {
      s = static_cast<uint32_t>(it->segments.rend() - sit - 1);
    }
    it->seg[i] = s;
    it->row[i] = loc.row;
  }
}

Result<IndexRef> Upsert(Store& store, PageCache* cache, const IndexRef& base, const Batch& batch,
                        WriteStats* stats, const WriteOptions& options) {
  RETURN_IF_ERROR(ValidateBatch(batch));
  UpsertOp op(batch);
  Updater updater(store, cache, batch.anchors, op, options);
  ASSIGN_OR_RETURN(IndexRef result, updater.Run(base));
  AddStats(stats, updater.stats());
  return result;
}

Result<IndexRef> Remove(Store& store, PageCache* cache, const IndexRef& base,
                        std::span<const uint64_t> anchors, uint64_t* removed, WriteStats* stats,
                        const WriteOptions& options) {
  for (size_t i = 1; i < anchors.size(); ++i) {
    if (anchors[i - 1] >= anchors[i]) {
      return InvalidArgument("btree remove: anchors not strictly ascending at position " +
                             std::to_string(i));
    }
  }
  RemoveOp op(anchors);
  Updater updater(store, cache, anchors, op, options);
  ASSIGN_OR_RETURN(IndexRef result, base.empty() ? Result<IndexRef>(base) : updater.Run(base));
  if (removed != nullptr) *removed = op.removed();
  AddStats(stats, updater.stats());
  return result;
}

Result<IndexRef> InsertAnchors(Store& store, PageCache* cache, const IndexRef& base,
                               std::span<const uint64_t> anchors, WriteStats* stats) {
  Batch batch;
  batch.anchors.assign(anchors.begin(), anchors.end());
  return Upsert(store, cache, base, batch, stats);
}

Result<IndexRef> RemoveAnchors(Store& store, PageCache* cache, const IndexRef& base,
                               std::span<const uint64_t> anchors, uint64_t* removed,
                               WriteStats* stats) {
  return Remove(store, cache, base, anchors, removed, stats);
}

}  // namespace dreamdb::btree
