// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// The anchor index (spec/11-anchor-index.md): a copy-on-write B-tree of pages stored as
// objects, mapping each anchor (u64) to the location (segment, row) of each of its fields.
// The same structure with no fields is the tombstone set.
//
// A version of the tree is an IndexRef (empty, a leaf embedded inline, or a root page id
// with height and count). Trees are immutable: Upsert/Remove write new pages for what
// changed and return a new IndexRef; untouched pages are shared between versions, which
// is what makes Diff cheap (equal page ids = equal subtrees).
//
// Cost model (spec §5): a batch of b anchors touches at most min(b, leaves) leaves and
// their ancestors, so it reads and writes O(b/512 + height) pages; it never reads or
// writes a page it does not touch.
//
// Thread safety: IndexRef and Batch are values. PageCache is thread-safe. Tree is
// immutable after construction and may be used from many threads at once; a Cursor is
// used by one thread at a time (it runs its own prefetch threads internally). Every
// function here borrows `Store&`/`PageCache*`; they must outlive the call (and, for
// Tree and Cursor, the object).

#ifndef DREAMDB_SRC_BTREE_BTREE_H_
#define DREAMDB_SRC_BTREE_BTREE_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "dreamdb/object_id.h"
#include "dreamdb/status.h"
#include "dreamdb/store.h"
#include "src/base/io_pool.h"
#include "src/base/lru_cache.h"
#include "src/base/store_scope.h"
#include "src/btree/page.h"
#include "src/cbor/cbor.h"

namespace dreamdb::btree {

// ---- IndexRef: one version of a tree (spec §4) ----

struct IndexRef {
  // Set iff the tree is one leaf with 1..kInlineMaxEntries entries embedded in the manifest.
  std::shared_ptr<const Leaf> inline_leaf;
  // Paged trees only (non-null iff paged).
  ObjectId root;
  // Levels including the leaves: 0 empty, 1 for an inline leaf or a root leaf.
  uint32_t height = 0;
  // Entries in the tree.
  uint64_t count = 0;

  static IndexRef Empty() { return IndexRef(); }
  // REQUIRES: `leaf` valid with 1..kInlineMaxEntries entries.
  static IndexRef Inline(Leaf leaf);
  static IndexRef Paged(const ObjectId& root, uint32_t height, uint64_t count);

  bool empty() const { return count == 0; }
  bool is_inline() const { return inline_leaf != nullptr; }
  bool is_paged() const { return !root.is_null(); }
  // Same tree: equal root ids, or equal inline leaves (by value), or both empty.
  bool operator==(const IndexRef& other) const;
};

// null (empty) | {"inline": leaf-map} | {"root": id, "height": h, "count": n}.
cbor::Value IndexRefToCbor(const IndexRef& ref);
// Strict: kCorrupt (prefixed with `context`) for anything IndexRefToCbor would not write,
// including an inline leaf with more than kInlineMaxEntries entries and a paged root
// leaf (height 1) that would fit inline.
Result<IndexRef> IndexRefFromCbor(const cbor::Value& value, std::string_view context);

// ---- PageCache ----

// A byte-bounded LRU cache (ByteLruCache) of decoded pages keyed by page id, used by the
// trees of one dataset handle. Pages are immutable, so a cached page never goes stale.
// A cache made by ForStore also shares, process-wide, the pages it read from its store
// (and verified): every handle of that store then finds the pages any of them read, so a
// handle opened for one random take does not re-read the index leaves another handle
// already read. Pages a writer inserts (InsertWritten) stay in the handle's own cache:
// the shared cache holds only what was read back and verified from the store.
// Thread safety: all methods may be called concurrently (one mutex per cache).
class PageCache {
 public:
  explicit PageCache(size_t capacity_bytes = size_t{64} << 20);
  PageCache(const PageCache&) = delete;
  PageCache& operator=(const PageCache&) = delete;

  // A handle's cache (capacity_bytes) backed by the process-wide page cache
  // (kSharedPageCacheBytes in all) for the store whose identity (canonical URI) is
  // `store_identity`.
  static constexpr size_t kSharedPageCacheBytes = size_t{64} << 20;
  static std::shared_ptr<PageCache> ForStore(std::string_view store_identity,
                                             size_t capacity_bytes);

  // The page, or null if not cached. Marks it most recently used.
  std::shared_ptr<const Page> Get(const ObjectId& id);
  // Inserts (or refreshes) a page read from the store, and evicts least recently used
  // pages beyond capacity. A page larger than the whole capacity is not kept.
  void Insert(const ObjectId& id, std::shared_ptr<const Page> page);
  // Inserts a page this process built and wrote: into this handle's cache only.
  void InsertWritten(const ObjectId& id, std::shared_ptr<const Page> page);
  void Clear();

  struct Stats {
    uint64_t hits = 0;
    uint64_t misses = 0;
    size_t entries = 0;
    size_t size_bytes = 0;
  };
  // This handle's cache (a page found in the shared cache counts as a miss here).
  Stats stats() const;

 private:
  using Shared = ByteLruCache<ScopedId, Page, ScopedIdHash>;
  ByteLruCache<ObjectId, Page> lru_;  // charged page->memory_bytes per page
  std::shared_ptr<Shared> shared_;    // null unless made by ForStore
  uint64_t scope_ = 0;                // StoreScope() of the store, with shared_
};

// Reads one page: from `cache` if present, else from the store (hash-verified by Store),
// decoded strictly and inserted into the cache. `cache` may be null. Errors name the
// page id. Counts a store read in *pages_read (if given).
Result<std::shared_ptr<const Page>> FetchPage(Store& store, PageCache* cache, const ObjectId& id,
                                              uint64_t* pages_read = nullptr);

// What a parent (or the IndexRef, for the root) says about a page (spec §3 T1-T4).
struct ChildBounds {
  std::optional<uint64_t> lo;  // the page's smallest anchor must equal this (root: unknown)
  std::optional<uint64_t> hi;  // every anchor under the page must be below this
  uint64_t count = 0;          // entries under the page
  uint32_t level = 0;          // 0 = leaf
};
// kCorrupt naming `id` unless `page` agrees with `bounds`.
Status CheckChild(const Page& page, const ObjectId& id, const ChildBounds& bounds);

// ---- Reading ----

// A run of entries [begin, end) of one leaf, as yielded by Cursor.
struct LeafSpan {
  std::shared_ptr<const Leaf> leaf;
  size_t begin = 0;
  size_t end = 0;
};

struct ScanOptions {
  // Leaf pages fetched ahead in parallel (and held at most). 1 = no parallelism.
  size_t prefetch = 8;
};

// Iterates the entries with anchors in [start, end) in ascending order. Memory is bounded
// by `prefetch` leaves plus one node per level. Node pages are read on the calling thread;
// leaf pages up to `prefetch` ahead on the process's I/O pool. Every page read is checked against
// its parent (T1-T3). After an error the cursor stays failed.
// Thread safety: one thread at a time. Destroying a cursor waits for its prefetches.
class Cursor {
 public:
  Cursor(Cursor&&) = default;
  Cursor& operator=(Cursor&&) = default;
  ~Cursor();

  // The next leaf holding entries in range (begin < end), or nullopt at the end.
  Result<std::optional<LeafSpan>> NextLeaf();
  // The next entry, or nullopt at the end.
  Result<std::optional<Entry>> Next();

 private:
  friend class Tree;
  struct Frame {
    std::shared_ptr<const Page> page;  // a node
    size_t next = 0;                   // next child to schedule
    size_t last = 0;                   // last child overlapping the range
    std::optional<uint64_t> hi;        // upper bound of the node's key range
  };
  // A leaf read started on the I/O pool (or deferred): Get() waits for it or runs it on
  // the calling thread if no pool thread has started it. Dropping a read not yet taken
  // cancels it if it has not started and otherwise waits for it, so no read outlives the
  // cursor's store and cache.
  class Pending {
   public:
    Pending(ObjectId id, ChildBounds bounds,
            std::function<Result<std::shared_ptr<const Page>>()> read, bool on_pool);
    Pending(Pending&&) = default;
    Pending& operator=(Pending&& other) noexcept;
    ~Pending();
    Result<std::shared_ptr<const Page>> Get();

    ObjectId id;
    ChildBounds bounds;

   private:
    std::shared_ptr<std::optional<Result<std::shared_ptr<const Page>>>> result_;
    std::shared_ptr<IoTask> task_;
  };
  Cursor(Store* store, PageCache* cache, IndexRef ref, uint64_t start, uint64_t end,
         ScanOptions options);
  Status Fill();
  Result<bool> PushNextLeaf();

  Store* store_;
  PageCache* cache_;
  IndexRef ref_;
  uint64_t start_;
  uint64_t end_;
  ScanOptions options_;
  bool started_ = false;
  bool exhausted_ = false;  // every leaf in range has been scheduled
  bool done_ = false;
  Status error_;
  std::vector<Frame> stack_;         // node path to the next leaf to schedule
  std::deque<Pending> pending_;      // leaves being fetched, in order
  std::optional<LeafSpan> current_;  // for Next()
};

// A read-only view of one version of a tree.
// Thread safety: const methods may be called concurrently.
class Tree {
 public:
  // Borrows `store` and `cache` (cache may be null).
  Tree(Store* store, PageCache* cache, IndexRef ref);

  const IndexRef& ref() const { return ref_; }
  uint64_t Count() const { return ref_.count; }

  // The entry for `anchor`, or nullopt. Reads at most `height` pages.
  Result<std::optional<Entry>> Lookup(uint64_t anchor) const;
  Result<bool> Contains(uint64_t anchor) const;
  // One result per anchor, in order. REQUIRES: `anchors` strictly ascending
  // (kInvalidArgument otherwise). Each page is read once, however many anchors it holds.
  Result<std::vector<std::optional<Entry>>> LookupMany(std::span<const uint64_t> anchors) const;
  // As LookupMany, without building an Entry per anchor (a random take's lookups): per
  // anchor the leaf holding it (sharing the page's ownership, so it stays valid while
  // held) and its index there; leaf null when absent.
  struct LeafHit {
    std::shared_ptr<const Leaf> leaf;
    uint32_t index = 0;
  };
  Result<std::vector<LeafHit>> LookupLeaves(std::span<const uint64_t> anchors) const;
  // What LookupMany and LookupLeaves share: visit(j, leaf, i) for each anchors[j] found,
  // at entry i of leaf. Same REQUIRES.
  using LeafVisit =
      std::function<void(size_t j, const std::shared_ptr<const Leaf>& leaf, size_t i)>;
  Status LookupEach(std::span<const uint64_t> anchors, const LeafVisit& visit) const;
  // As LookupMany, only the location of `field` per anchor (nullopt when the anchor is
  // absent or has no value in the field), without building entries: for many anchors.
  Result<std::vector<std::optional<FieldLoc>>> LookupFieldMany(std::span<const uint64_t> anchors,
                                                               std::string_view field) const;
  // Entries with start <= anchor < end.
  Cursor Scan(uint64_t start = 0, uint64_t end = UINT64_MAX, const ScanOptions& options = {}) const;
  // The highest run of at least `n` consecutive anchors below `end` that holds no anchor
  // of the tree: [first, limit) where first - 1 is an anchor of the tree (or first is 0),
  // limit is `end` or the tree's next anchor, and limit - first >= n. nullopt when there
  // is none. Subtrees too full to hold such a run (by their counts) are skipped unread,
  // and at most `max_pages` pages are read: kInvalidArgument (the anchor space is too
  // fragmented to search) beyond that.
  // REQUIRES: n >= 1.
  struct Gap {
    uint64_t first = 0;
    uint64_t limit = 0;
  };
  Result<std::optional<Gap>> HighestGapBelow(uint64_t end, uint64_t n,
                                             uint64_t max_pages = 4096) const;
  // Checks every invariant of every page (P1-P9, T1-T4) and that count/height match.
  // Reads the whole tree. kCorrupt naming the first page that fails.
  Status Verify() const;

 private:
  Store* store_;
  PageCache* cache_;
  IndexRef ref_;
};

// ---- Writing (spec §5) ----

// One field of a batch, column-wise like a leaf field.
struct BatchField {
  std::string name;
  std::vector<ObjectId> segments;  // any order; duplicates allowed
  std::vector<uint32_t> seg;       // per batch anchor: index into segments, or kNoSegment
                                   // (= leave this field of this anchor as it is)
  std::vector<uint32_t> row;       // per batch anchor (ignored where seg is kNoSegment)
};

struct Batch {
  std::vector<uint64_t> anchors;   // strictly ascending
  std::vector<BatchField> fields;  // distinct names (any order)
  // Empty, or one flag per anchor: non-zero = drop every old field value of the anchor
  // before applying this batch (a resurrected record starts from nothing).
  std::vector<uint8_t> replace;

  // Appends an entry. REQUIRES: ascending anchors (checked by Upsert). A field seen for
  // the first time gets a column (absent for earlier entries).
  void Add(const Entry& entry, bool replace_all = false);
  size_t size() const { return anchors.size(); }
};

struct WriteStats {
  uint64_t pages_read = 0;     // fetched from the store (cache misses)
  uint64_t pages_written = 0;  // new page objects put (the inline leaf is not a page)
  uint64_t bytes_written = 0;
};

struct WriteOptions {
  // Page puts in flight at once.
  size_t parallel_puts = 4;
};

// Applies `batch` to `base`: anchors not in the tree are inserted with the batch's
// fields; existing anchors get the batch's fields (kNoSegment keeps the old value; see
// Batch::replace). Writes only touched leaves and their ancestors; splits pages above
// capacity into near-equal parts, except when a batch only appends beyond the last anchor
// of the rightmost page, which fills pages completely. Returns the new version; inline
// when the result is one leaf of at most kInlineMaxEntries entries. kInvalidArgument for a
// malformed batch (unsorted/duplicate anchors, bad indices, duplicate or invalid field
// names, column lengths). Nothing is referenced by `base` changes.
Result<IndexRef> Upsert(Store& store, PageCache* cache, const IndexRef& base, const Batch& batch,
                        WriteStats* stats = nullptr, const WriteOptions& options = {});

// Removes `anchors` (strictly ascending; absent ones ignored). Rewrites touched leaves,
// drops empty pages, collapses single-child roots, and inlines a result of at most
// kInlineMaxEntries entries. `*removed` (if given) = number of anchors actually removed.
Result<IndexRef> Remove(Store& store, PageCache* cache, const IndexRef& base,
                        std::span<const uint64_t> anchors, uint64_t* removed = nullptr,
                        WriteStats* stats = nullptr, const WriteOptions& options = {});

// ---- Tombstone set: the same tree with no fields (spec §6) ----

// Adds `anchors` (strictly ascending; present ones are no-ops).
Result<IndexRef> InsertAnchors(Store& store, PageCache* cache, const IndexRef& base,
                               std::span<const uint64_t> anchors, WriteStats* stats = nullptr);
// Same as Remove.
Result<IndexRef> RemoveAnchors(Store& store, PageCache* cache, const IndexRef& base,
                               std::span<const uint64_t> anchors, uint64_t* removed = nullptr,
                               WriteStats* stats = nullptr);
Result<bool> Contains(Store& store, PageCache* cache, const IndexRef& set, uint64_t anchor);

// ---- Diff (spec §7) ----

enum class ChangeKind : uint8_t { kAdded, kRemoved, kChanged };

struct Change {
  uint64_t anchor = 0;
  ChangeKind kind = ChangeKind::kAdded;
  // kChanged: fields whose location differs (present on one side only included).
  // kAdded/kRemoved: the fields of the entry on the side where it exists.
  // Canonical key order.
  std::vector<std::string> fields;
  bool operator==(const Change&) const = default;
};

// Return false to stop the diff early (Diff then returns OK).
using DiffVisitor = std::function<bool(const Change&)>;

// Visits every anchor whose entry differs between `from` and `to`, in ascending order.
// Walks both trees together and skips subtrees whose page ids are equal, so two versions
// that share most pages cost O(changes * height) page reads. *pages_read counts store reads.
Status Diff(Store& store, PageCache* cache, const IndexRef& from, const IndexRef& to,
            const DiffVisitor& visit, uint64_t* pages_read = nullptr);

// ---- Reachability (verify, GC; spec §8) ----

// Called for each page id before its page is read, parents before children. Return true
// to descend into the page, false to skip it and everything under it (e.g. already
// marked by a garbage collector); an error stops the walk and is returned.
using PageVisitor = std::function<Result<bool>(const ObjectId& page, uint32_t level)>;
// Called once per distinct (field, segment) of each leaf read; an error stops the walk.
using SegmentVisitor = std::function<Status(std::string_view field, const ObjectId& segment)>;

// Visits the ids of all pages (an inline tree has none). Reads node pages only.
Status VisitPages(Store& store, PageCache* cache, const IndexRef& ref, const PageVisitor& visit);
// Visits the segments referenced by every leaf (including an inline leaf). `filter` (may
// be null) is consulted for every page like VisitPages' visitor.
Status VisitSegments(Store& store, PageCache* cache, const IndexRef& ref,
                     const SegmentVisitor& visit, const PageVisitor* filter = nullptr);
// Called once per leaf read (an inline leaf included), after the leaf has been checked
// against its parent (T1-T3); an error stops the walk.
using LeafVisitor = std::function<Status(const Leaf& leaf)>;
// Visits every leaf of the tree like VisitSegments, reading (and checking) every page.
Status VisitLeaves(Store& store, PageCache* cache, const IndexRef& ref, const LeafVisitor& visit,
                   const PageVisitor* filter = nullptr);

}  // namespace dreamdb::btree

#endif  // DREAMDB_SRC_BTREE_BTREE_H_
