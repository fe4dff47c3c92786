// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// The read side of the anchor index: IndexRef, the page cache, lookups, cursors and
// reachability walks (spec/11-anchor-index.md §3, §4, §8). Writes live in write.cc, the
// diff in diff.cc.

#include "src/btree/btree.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <utility>

#include "src/base/encoding.h"
#include "src/base/io_pool.h"
#include "src/btree/internal.h"

namespace dreamdb::btree {

using internal::PagePtr;

namespace {

Status RefError(std::string_view context, const std::string& what) {
  return Corrupt(std::string(context) + ": " + what);
}

Status CheckRefKeys(const cbor::Map& map, std::initializer_list<std::string_view> keys,
                    std::string_view context) {
  for (const auto& [key, value] : map.entries()) {
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) {
      return RefError(context, "unexpected key " + Quote(key));
    }
  }
  for (std::string_view key : keys) {
    if (map.Find(key) == nullptr) return RefError(context, "missing key " + Quote(key));
  }
  return Status::Ok();
}

uint64_t LastKey(const Page& page) {
  return page.is_leaf() ? page.leaf().anchors.back() : page.node().keys.back();
}

}  // namespace

// ---- IndexRef ----

IndexRef IndexRef::Inline(Leaf leaf) {
  IndexRef r;
  r.count = leaf.size();
  r.height = 1;
  r.inline_leaf = std::make_shared<const Leaf>(std::move(leaf));
  return r;
}

IndexRef IndexRef::Paged(const ObjectId& root, uint32_t height, uint64_t count) {
  IndexRef r;
  r.root = root;
  r.height = height;
  r.count = count;
  return r;
}

bool IndexRef::operator==(const IndexRef& other) const {
  if (is_inline() != other.is_inline()) return false;
  if (is_inline()) return *inline_leaf == *other.inline_leaf;
  return root == other.root && height == other.height && count == other.count;
}

cbor::Value IndexRefToCbor(const IndexRef& ref) {
  if (ref.is_inline()) {
    return cbor::Value::FromMap(cbor::Map{{"inline", LeafToCbor(*ref.inline_leaf)}});
  }
  if (ref.is_paged()) {
    return cbor::Value::FromMap(cbor::Map{
        {"root", cbor::IdValue(ref.root)},
        {"height", cbor::Value::UInt(ref.height)},
        {"count", cbor::Value::UInt(ref.count)},
    });
  }
  return cbor::Value::Null();
}

Result<IndexRef> IndexRefFromCbor(const cbor::Value& value, std::string_view context) {
  if (value.is_null()) return IndexRef::Empty();
  ASSIGN_OR_RETURN(const cbor::Map* map, value.AsMap(context));
  if (const cbor::Value* leaf_value = map->Find("inline")) {
    RETURN_IF_ERROR(CheckRefKeys(*map, {"inline"}, context));
    const std::string leaf_context = std::string(context) + ".inline";
    ASSIGN_OR_RETURN(Leaf leaf, LeafFromCbor(*leaf_value, leaf_context));
    if (leaf.size() > kInlineMaxEntries) {
      return RefError(leaf_context, "inline leaf has " + std::to_string(leaf.size()) +
                                        " entries (at most " + std::to_string(kInlineMaxEntries) +
                                        "; larger trees are paged)");
    }
    return IndexRef::Inline(std::move(leaf));
  }
  RETURN_IF_ERROR(CheckRefKeys(*map, {"root", "height", "count"}, context));
  ASSIGN_OR_RETURN(ObjectId root, cbor::AsId(*map->Find("root"), std::string(context) + ".root"));
  ASSIGN_OR_RETURN(uint64_t height, map->Find("height")->AsUInt(std::string(context) + ".height"));
  ASSIGN_OR_RETURN(uint64_t count, map->Find("count")->AsUInt(std::string(context) + ".count"));
  if (height < 1 || height > kMaxHeight) {
    return RefError(context, "height " + std::to_string(height) + " out of range 1.." +
                                 std::to_string(kMaxHeight));
  }
  if (height == 1 && (count <= kInlineMaxEntries || count > kLeafCapacity)) {
    return RefError(context,
                    "a paged root leaf must hold " + std::to_string(kInlineMaxEntries + 1) + ".." +
                        std::to_string(kLeafCapacity) + " entries, not " + std::to_string(count));
  }
  if (height > 1 && (count < 2 || count > MaxEntriesAtLevel(static_cast<uint32_t>(height) - 1))) {
    return RefError(context, "a tree of height " + std::to_string(height) + " cannot hold " +
                                 std::to_string(count) + " entries");
  }
  return IndexRef::Paged(root, static_cast<uint32_t>(height), count);
}

// ---- PageCache ----

PageCache::PageCache(size_t capacity_bytes) : lru_(capacity_bytes) {}

std::shared_ptr<PageCache> PageCache::ForStore(std::string_view store_identity,
                                               size_t capacity_bytes) {
  static const auto shared = std::make_shared<Shared>(kSharedPageCacheBytes);
  auto cache = std::make_shared<PageCache>(capacity_bytes);
  cache->shared_ = shared;
  cache->scope_ = StoreScope(store_identity);
  return cache;
}

std::shared_ptr<const Page> PageCache::Get(const ObjectId& id) {
  if (auto hit = lru_.Get(id)) return hit;
  if (shared_ == nullptr) return nullptr;
  auto hit = shared_->Get(ScopedId{scope_, id});
  if (hit != nullptr) lru_.Insert(id, hit, hit->memory_bytes);
  return hit;
}

void PageCache::Insert(const ObjectId& id, std::shared_ptr<const Page> page) {
  if (page == nullptr) return;
  const size_t bytes = page->memory_bytes;
  if (shared_ != nullptr) shared_->Insert(ScopedId{scope_, id}, page, bytes);
  lru_.Insert(id, std::move(page), bytes);
}

void PageCache::InsertWritten(const ObjectId& id, std::shared_ptr<const Page> page) {
  if (page == nullptr) return;
  const size_t bytes = page->memory_bytes;
  lru_.Insert(id, std::move(page), bytes);
}

// Clears this handle's cache (the shared one keeps what other handles use).
void PageCache::Clear() { lru_.Clear(); }

PageCache::Stats PageCache::stats() const {
  auto s = lru_.stats();
  return Stats{s.hits, s.misses, s.entries, static_cast<size_t>(s.size_bytes)};
}

// ---- Fetching and checks ----

Result<std::shared_ptr<const Page>> FetchPage(Store& store, PageCache* cache, const ObjectId& id,
                                              uint64_t* pages_read) {
  std::atomic<uint64_t> reads{0};
  auto page = internal::Fetch(store, cache, id, &reads);
  if (pages_read != nullptr) *pages_read += reads.load();
  return page;
}

Status CheckChild(const Page& page, const ObjectId& id, const ChildBounds& bounds) {
  if (page.level() != bounds.level) {
    std::string got = page.is_leaf() ? "a leaf" : "a node of level " + std::to_string(page.level());
    std::string want =
        bounds.level == 0 ? "a leaf" : "a node of level " + std::to_string(bounds.level);
    return Corrupt(PageContext(id) + ": is " + got + " where its parent expects " + want);
  }
  if (bounds.lo.has_value() && page.first_key() != *bounds.lo) {
    return Corrupt(PageContext(id) + ": smallest anchor " + std::to_string(page.first_key()) +
                   " differs from its parent's key " + std::to_string(*bounds.lo));
  }
  if (bounds.hi.has_value() && LastKey(page) >= *bounds.hi) {
    return Corrupt(PageContext(id) + ": anchor " + std::to_string(LastKey(page)) +
                   " is not below the next key " + std::to_string(*bounds.hi) + " of its parent");
  }
  if (page.count() != bounds.count) {
    return Corrupt(PageContext(id) + ": holds " + std::to_string(page.count()) +
                   " entries, its parent says " + std::to_string(bounds.count));
  }
  return Status::Ok();
}

namespace internal {

Result<PagePtr> Fetch(Store& store, PageCache* cache, const ObjectId& id,
                      std::atomic<uint64_t>* pages_read) {
  if (cache != nullptr) {
    if (PagePtr page = cache->Get(id)) return page;
  }
  auto bytes = store.Get(id);
  if (!bytes.ok()) return bytes.status().WithContext(PageContext(id));
  if (pages_read != nullptr) pages_read->fetch_add(1, std::memory_order_relaxed);
  ASSIGN_OR_RETURN(Page page, DecodePage(*bytes, PageContext(id)));
  auto ptr = std::make_shared<const Page>(std::move(page));
  if (cache != nullptr) cache->Insert(id, ptr);
  return ptr;
}

FetchedPages FetchEach(Store& store, PageCache* cache, const std::vector<ObjectId>& ids,
                       std::atomic<uint64_t>* pages_read) {
  FetchedPages out;
  out.pages.resize(ids.size());
  out.errors.resize(ids.size());
  std::vector<size_t> misses;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (cache != nullptr) out.pages[i] = cache->Get(ids[i]);
    if (out.pages[i] == nullptr) misses.push_back(i);
  }
  // On the process's I/O pool (the caller runs reads too, so this never waits on a busy
  // pool; a single miss runs inline), up to kParallelFetches at once. Reads are claimed in id
  // order; after a failure, no read of a later id starts (those already running finish), so every
  // id before the first failed one still has its page.
  std::atomic<size_t> first_failed{SIZE_MAX};
  IoPool::ParallelFor(
      misses.size(),
      [&](size_t k) {
        if (k > first_failed.load(std::memory_order_relaxed)) return;
        const size_t i = misses[k];
        auto page = Fetch(store, cache, ids[i], pages_read);
        if (page.ok()) {
          out.pages[i] = std::move(page).value();
          return;
        }
        out.errors[i] = page.status();
        size_t seen = first_failed.load(std::memory_order_relaxed);
        while (k < seen && !first_failed.compare_exchange_weak(seen, k)) {
        }
      },
      kParallelFetches);
  return out;
}

Result<std::vector<PagePtr>> FetchMany(Store& store, PageCache* cache,
                                       const std::vector<ObjectId>& ids,
                                       std::atomic<uint64_t>* pages_read) {
  FetchedPages fetched = FetchEach(store, cache, ids, pages_read);
  for (const Status& s : fetched.errors) RETURN_IF_ERROR(s);
  return std::move(fetched.pages);
}

ChildBounds RootBounds(const IndexRef& ref) {
  ChildBounds b;
  b.count = ref.count;
  b.level = ref.height - 1;
  return b;
}

ChildBounds ChildBoundsOf(const Node& node, size_t i, std::optional<uint64_t> hi) {
  ChildBounds b;
  b.lo = node.keys[i];
  b.hi = i + 1 < node.keys.size() ? std::optional<uint64_t>(node.keys[i + 1]) : hi;
  b.count = node.counts[i];
  b.level = node.level - 1;
  return b;
}

Status CheckRoot(const Page& page, const IndexRef& ref) {
  RETURN_IF_ERROR(CheckChild(page, ref.root, RootBounds(ref)));
  if (page.is_leaf() && page.leaf().size() <= kInlineMaxEntries) {
    return Corrupt(PageContext(ref.root) + ": a root leaf of " +
                   std::to_string(page.leaf().size()) + " entries must be inline");
  }
  if (!page.is_leaf() && page.node().size() < 2) {
    return Corrupt(PageContext(ref.root) + ": a root node must have at least 2 children");
  }
  return Status::Ok();
}

}  // namespace internal

// ---- Tree ----

Tree::Tree(Store* store, PageCache* cache, IndexRef ref)
    : store_(store), cache_(cache), ref_(std::move(ref)) {}

Result<std::optional<Entry>> Tree::Lookup(uint64_t anchor) const {
  if (ref_.empty()) return std::optional<Entry>();
  if (ref_.is_inline()) {
    auto i = ref_.inline_leaf->Find(anchor);
    if (!i) return std::optional<Entry>();
    return std::optional<Entry>(ref_.inline_leaf->EntryAt(*i));
  }
  ObjectId id = ref_.root;
  ChildBounds bounds = internal::RootBounds(ref_);
  while (true) {
    ASSIGN_OR_RETURN(PagePtr page, internal::Fetch(*store_, cache_, id, nullptr));
    RETURN_IF_ERROR(CheckChild(*page, id, bounds));
    if (page->is_leaf()) {
      auto i = page->leaf().Find(anchor);
      if (!i) return std::optional<Entry>();
      return std::optional<Entry>(page->leaf().EntryAt(*i));
    }
    const Node& node = page->node();
    if (anchor < node.keys.front()) return std::optional<Entry>();
    size_t i = node.ChildFor(anchor);
    bounds = internal::ChildBoundsOf(node, i, bounds.hi);
    id = node.children[i];
  }
}

Result<bool> Tree::Contains(uint64_t anchor) const {
  ASSIGN_OR_RETURN(std::optional<Entry> e, Lookup(anchor));
  return e.has_value();
}

namespace {

// Resolves anchors[lo, hi) under one page; each touched page is read once. Calls
// visit(j, leaf, i) for each anchors[j] found, at entry i of `leaf` (which the caller may
// keep: it shares the page's ownership).
using LeafVisit = Tree::LeafVisit;
Status LookupUnder(Store* store, PageCache* cache, const PagePtr& page,
                   std::optional<uint64_t> hi_bound, std::span<const uint64_t> anchors, size_t lo,
                   size_t hi, const LeafVisit& visit) {
  if (page->is_leaf()) {
    const std::shared_ptr<const Leaf> leaf(page, &page->leaf());
    // Both lists ascend: each search starts where the previous one ended.
    const std::vector<uint64_t>& keys = leaf->anchors;
    auto from = keys.begin();
    for (size_t j = lo; j < hi; ++j) {
      from = std::lower_bound(from, keys.end(), anchors[j]);
      if (from == keys.end()) break;
      if (*from == anchors[j]) visit(j, leaf, static_cast<size_t>(from - keys.begin()));
    }
    return Status::Ok();
  }
  const Node& node = page->node();
  std::vector<size_t> child_index;
  std::vector<std::pair<size_t, size_t>> ranges;
  std::vector<ObjectId> ids;
  size_t pos = lo;
  // Anchors below the first key are absent; skip them.
  while (pos < hi && anchors[pos] < node.keys.front()) ++pos;
  for (size_t i = 0; i < node.size() && pos < hi; ++i) {
    size_t end = hi;
    if (i + 1 < node.size()) {
      end = static_cast<size_t>(
          std::lower_bound(anchors.begin() + pos, anchors.begin() + hi, node.keys[i + 1]) -
          anchors.begin());
    }
    if (end > pos) {
      child_index.push_back(i);
      ranges.emplace_back(pos, end);
      ids.push_back(node.children[i]);
    }
    pos = end;
  }
  ASSIGN_OR_RETURN(std::vector<PagePtr> children, internal::FetchMany(*store, cache, ids, nullptr));
  for (size_t k = 0; k < children.size(); ++k) {
    ChildBounds b = internal::ChildBoundsOf(node, child_index[k], hi_bound);
    RETURN_IF_ERROR(CheckChild(*children[k], ids[k], b));
    RETURN_IF_ERROR(LookupUnder(store, cache, children[k], b.hi, anchors, ranges[k].first,
                                ranges[k].second, visit));
  }
  return Status::Ok();
}

}  // namespace

Status Tree::LookupEach(std::span<const uint64_t> anchors, const LeafVisit& visit) const {
  for (size_t i = 1; i < anchors.size(); ++i) {
    if (anchors[i - 1] >= anchors[i]) {
      return InvalidArgument("btree LookupMany: anchors not strictly ascending at position " +
                             std::to_string(i));
    }
  }
  if (anchors.empty() || ref_.empty()) return Status::Ok();
  if (ref_.is_inline()) {
    auto page = std::make_shared<const Page>(MakePage(*ref_.inline_leaf));
    return LookupUnder(store_, cache_, page, std::nullopt, anchors, 0, anchors.size(), visit);
  }
  ASSIGN_OR_RETURN(PagePtr root, internal::Fetch(*store_, cache_, ref_.root, nullptr));
  RETURN_IF_ERROR(CheckChild(*root, ref_.root, internal::RootBounds(ref_)));
  return LookupUnder(store_, cache_, root, std::nullopt, anchors, 0, anchors.size(), visit);
}

Result<std::vector<std::optional<Entry>>> Tree::LookupMany(
    std::span<const uint64_t> anchors) const {
  std::vector<std::optional<Entry>> out(anchors.size());
  RETURN_IF_ERROR(LookupEach(anchors, [&](size_t j, const std::shared_ptr<const Leaf>& leaf,
                                          size_t i) { out[j] = leaf->EntryAt(i); }));
  return out;
}

Result<std::vector<std::optional<FieldLoc>>> Tree::LookupFieldMany(
    std::span<const uint64_t> anchors, std::string_view field) const {
  std::vector<std::optional<FieldLoc>> out(anchors.size());
  RETURN_IF_ERROR(LookupEach(
      anchors, [&out, field](size_t j, const std::shared_ptr<const Leaf>& leaf, size_t i) {
        if (const LeafField* f = leaf->FindField(field)) out[j] = f->At(i);
      }));
  return out;
}

Result<std::vector<Tree::LeafHit>> Tree::LookupLeaves(std::span<const uint64_t> anchors) const {
  std::vector<LeafHit> out(anchors.size());
  RETURN_IF_ERROR(
      LookupEach(anchors, [&](size_t j, const std::shared_ptr<const Leaf>& leaf, size_t i) {
        out[j] = LeafHit{leaf, static_cast<uint32_t>(i)};
      }));
  return out;
}

Cursor Tree::Scan(uint64_t start, uint64_t end, const ScanOptions& options) const {
  return Cursor(store_, cache_, ref_, start, end, options);
}

// ---- Cursor ----

Cursor::Cursor(Store* store, PageCache* cache, IndexRef ref, uint64_t start, uint64_t end,
               ScanOptions options)
    : store_(store),
      cache_(cache),
      ref_(std::move(ref)),
      start_(start),
      end_(end),
      options_(options) {
  if (options_.prefetch == 0) options_.prefetch = 1;
}

Cursor::~Cursor() = default;  // each Pending cancels or waits for its read

Cursor::Pending::Pending(ObjectId id, ChildBounds bounds,
                         std::function<Result<std::shared_ptr<const Page>>()> read, bool on_pool)
    : id(id),
      bounds(bounds),
      result_(std::make_shared<std::optional<Result<std::shared_ptr<const Page>>>>()) {
  auto run = [out = result_, read = std::move(read)] { out->emplace(read()); };
  task_ = on_pool ? IoTask::Start(std::move(run)) : IoTask::Deferred(std::move(run));
}

Cursor::Pending& Cursor::Pending::operator=(Pending&& other) noexcept {
  if (this != &other) {
    if (task_) task_->Cancel();
    id = other.id;
    bounds = other.bounds;
    result_ = std::move(other.result_);
    task_ = std::move(other.task_);
  }
  return *this;
}

Cursor::Pending::~Pending() {
  if (task_) task_->Cancel();
}

Result<std::shared_ptr<const Page>> Cursor::Pending::Get() {
  task_->Wait();
  task_ = nullptr;
  return std::move(**result_);
}

Result<bool> Cursor::PushNextLeaf() {
  while (!stack_.empty()) {
    Frame& f = stack_.back();
    if (f.next >= f.last) {
      stack_.pop_back();
      continue;
    }
    const PagePtr node_page = f.page;  // keep alive across push_back below
    const Node& node = node_page->node();
    const size_t i = f.next++;
    const ChildBounds b = internal::ChildBoundsOf(node, i, f.hi);
    const ObjectId id = node.children[i];
    if (node.level == 1) {
      Store* store = store_;
      PageCache* cache = cache_;
      pending_.emplace_back(
          id, b, [store, cache, id] { return internal::Fetch(*store, cache, id, nullptr); },
          options_.prefetch > 1);
      return true;
    }
    ASSIGN_OR_RETURN(PagePtr child, internal::Fetch(*store_, cache_, id, nullptr));
    RETURN_IF_ERROR(CheckChild(*child, id, b));
    const Node& cn = child->node();
    Frame nf;
    nf.next = cn.ChildFor(start_);
    nf.last = static_cast<size_t>(std::lower_bound(cn.keys.begin(), cn.keys.end(), end_) -
                                  cn.keys.begin());
    nf.hi = b.hi;
    nf.page = std::move(child);
    stack_.push_back(std::move(nf));
  }
  return false;
}

Status Cursor::Fill() {
  while (!exhausted_ && pending_.size() < options_.prefetch) {
    ASSIGN_OR_RETURN(bool more, PushNextLeaf());
    if (!more) exhausted_ = true;
  }
  return Status::Ok();
}

Result<std::optional<LeafSpan>> Cursor::NextLeaf() {
  if (!error_.ok()) return error_;
  if (done_) return std::optional<LeafSpan>();
  if (!started_) {
    started_ = true;
    if (ref_.empty() || start_ >= end_) {
      done_ = true;
      return std::optional<LeafSpan>();
    }
    if (ref_.is_inline()) {
      done_ = true;
      const Leaf& leaf = *ref_.inline_leaf;
      LeafSpan span{ref_.inline_leaf, leaf.LowerBound(start_), leaf.LowerBound(end_)};
      if (span.begin >= span.end) return std::optional<LeafSpan>();
      return std::optional<LeafSpan>(std::move(span));
    }
    if (ref_.height == 1) {
      Store* store = store_;
      PageCache* cache = cache_;
      const ObjectId root = ref_.root;
      pending_.emplace_back(
          root, internal::RootBounds(ref_),
          [store, cache, root] { return internal::Fetch(*store, cache, root, nullptr); }, false);
      exhausted_ = true;
    } else {
      auto root = internal::Fetch(*store_, cache_, ref_.root, nullptr);
      Status s =
          root.ok() ? CheckChild(**root, ref_.root, internal::RootBounds(ref_)) : root.status();
      if (!s.ok()) {
        error_ = s;
        return s;
      }
      const Node& node = (*root)->node();
      Frame f;
      f.next = node.ChildFor(start_);
      f.last = static_cast<size_t>(std::lower_bound(node.keys.begin(), node.keys.end(), end_) -
                                   node.keys.begin());
      f.page = std::move(root).value();
      stack_.push_back(std::move(f));
    }
  }
  while (true) {
    Status s = Fill();
    if (!s.ok()) {
      error_ = s;
      return s;
    }
    if (pending_.empty()) {
      done_ = true;
      return std::optional<LeafSpan>();
    }
    Pending p = std::move(pending_.front());
    pending_.pop_front();
    Result<PagePtr> page = p.Get();
    s = page.ok() ? CheckChild(**page, p.id, p.bounds) : page.status();
    if (!s.ok()) {
      error_ = s;
      return s;
    }
    PagePtr ptr = std::move(page).value();
    std::shared_ptr<const Leaf> leaf(ptr, &ptr->leaf());
    LeafSpan span{leaf, leaf->LowerBound(start_), leaf->LowerBound(end_)};
    if (span.begin < span.end) return std::optional<LeafSpan>(std::move(span));
  }
}

Result<std::optional<Entry>> Cursor::Next() {
  while (true) {
    if (current_.has_value() && current_->begin < current_->end) {
      return std::optional<Entry>(current_->leaf->EntryAt(current_->begin++));
    }
    current_.reset();
    ASSIGN_OR_RETURN(std::optional<LeafSpan> span, NextLeaf());
    if (!span.has_value()) return std::optional<Entry>();
    current_ = std::move(span);
  }
}

// ---- Walks ----

namespace {

struct Walker {
  Store& store;
  PageCache* cache;
  const PageVisitor* pages;
  const SegmentVisitor* segments;
  bool read_leaves;
  const LeafVisitor* leaves = nullptr;

  Status VisitLeafSegments(const Leaf& leaf) {
    if (leaves != nullptr) RETURN_IF_ERROR((*leaves)(leaf));
    if (segments == nullptr) return Status::Ok();
    for (const LeafField& f : leaf.fields) {
      for (const ObjectId& id : f.segments) RETURN_IF_ERROR((*segments)(f.name, id));
    }
    return Status::Ok();
  }

  // `page` has been read and checked against its bounds.
  Status Below(const Page& page, std::optional<uint64_t> hi) {
    if (page.is_leaf()) return VisitLeafSegments(page.leaf());
    const Node& node = page.node();
    std::vector<size_t> index;
    std::vector<ObjectId> ids;
    for (size_t i = 0; i < node.size(); ++i) {
      bool descend = true;
      if (pages != nullptr) {
        ASSIGN_OR_RETURN(descend, (*pages)(node.children[i], node.level - 1));
      }
      if (!descend || (node.level == 1 && !read_leaves)) continue;
      index.push_back(i);
      ids.push_back(node.children[i]);
    }
    // Fetch a bounded batch of children at a time, so memory stays O(height * batch). A
    // child whose read failed stops the walk when its turn comes, not before the children
    // ahead of it in its batch are walked: what a walk visits before it meets an error does
    // not depend on the batch size.
    for (size_t k0 = 0; k0 < ids.size(); k0 += internal::kParallelReads) {
      const size_t k1 = std::min(ids.size(), k0 + internal::kParallelReads);
      std::vector<ObjectId> chunk(ids.begin() + k0, ids.begin() + k1);
      internal::FetchedPages children = internal::FetchEach(store, cache, chunk, nullptr);
      for (size_t k = k0; k < k1; ++k) {
        RETURN_IF_ERROR(children.errors[k - k0]);
        ChildBounds b = internal::ChildBoundsOf(node, index[k], hi);
        RETURN_IF_ERROR(CheckChild(*children.pages[k - k0], ids[k], b));
        RETURN_IF_ERROR(Below(*children.pages[k - k0], b.hi));
      }
    }
    return Status::Ok();
  }

  Status Run(const IndexRef& ref) {
    if (ref.empty()) return Status::Ok();
    if (ref.is_inline()) {
      RETURN_IF_ERROR(ValidateLeaf(*ref.inline_leaf, "btree inline leaf"));
      if (ref.inline_leaf->size() != ref.count || ref.count > kInlineMaxEntries ||
          ref.height != 1) {
        return Corrupt("btree inline leaf: count/height do not match the leaf");
      }
      return VisitLeafSegments(*ref.inline_leaf);
    }
    if (ref.height < 1 || ref.height > kMaxHeight) {
      return Corrupt("btree index: height " + std::to_string(ref.height) + " out of range");
    }
    bool descend = true;
    if (pages != nullptr) {
      ASSIGN_OR_RETURN(descend, (*pages)(ref.root, ref.height - 1));
    }
    if (!descend || (ref.height == 1 && !read_leaves)) return Status::Ok();
    ASSIGN_OR_RETURN(PagePtr root, internal::Fetch(store, cache, ref.root, nullptr));
    RETURN_IF_ERROR(internal::CheckRoot(*root, ref));
    return Below(*root, std::nullopt);
  }
};

}  // namespace

Status Tree::Verify() const {
  Walker w{*store_, cache_, nullptr, nullptr, /*read_leaves=*/true};
  return w.Run(ref_);
}

Status VisitPages(Store& store, PageCache* cache, const IndexRef& ref, const PageVisitor& visit) {
  Walker w{store, cache, &visit, nullptr, /*read_leaves=*/false};
  return w.Run(ref);
}

Status VisitSegments(Store& store, PageCache* cache, const IndexRef& ref,
                     const SegmentVisitor& visit, const PageVisitor* filter) {
  Walker w{store, cache, filter, &visit, /*read_leaves=*/true};
  return w.Run(ref);
}

Status VisitLeaves(Store& store, PageCache* cache, const IndexRef& ref, const LeafVisitor& visit,
                   const PageVisitor* filter) {
  Walker w{store, cache, filter, nullptr, /*read_leaves=*/true, &visit};
  return w.Run(ref);
}

Result<bool> Contains(Store& store, PageCache* cache, const IndexRef& set, uint64_t anchor) {
  return Tree(&store, cache, set).Contains(anchor);
}

}  // namespace dreamdb::btree
