// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Helpers shared by the btree translation units (not part of the module's API).

#ifndef DREAMDB_SRC_BTREE_INTERNAL_H_
#define DREAMDB_SRC_BTREE_INTERNAL_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "src/btree/btree.h"

namespace dreamdb::btree::internal {

using PagePtr = std::shared_ptr<const Page>;

// Children a full traversal (VisitLeaves) fetches per batch, bounding its memory.
inline constexpr size_t kParallelReads = 8;
// Page reads FetchMany keeps in flight: a lookup of many anchors (a random take) reads all
// the leaves it needs in one round trip on an object store, not a window of 8 at a time.
inline constexpr size_t kParallelFetches = 64;

// FetchPage with a thread-safe read counter (may be null).
Result<PagePtr> Fetch(Store& store, PageCache* cache, const ObjectId& id,
                      std::atomic<uint64_t>* pages_read);

// Fetches `ids` with up to kParallelFetches reads in flight; results in order. Cached pages
// are taken synchronously; a single miss is read on the calling thread.
Result<std::vector<PagePtr>> FetchMany(Store& store, PageCache* cache,
                                       const std::vector<ObjectId>& ids,
                                       std::atomic<uint64_t>* pages_read);

// What FetchEach read: pages[i] is the page of ids[i], or null and errors[i] says why.
// Every id before the first failed one has its page; ids after it may be left unread
// (null page, OK error).
struct FetchedPages {
  std::vector<PagePtr> pages;
  std::vector<Status> errors;
};
// Like FetchMany (reads are issued in order and stop after the first that fails), but each
// read's outcome is kept on its own, so a walk can meet a failed read exactly where reading
// the pages one at a time would: after walking everything before it.
FetchedPages FetchEach(Store& store, PageCache* cache, const std::vector<ObjectId>& ids,
                       std::atomic<uint64_t>* pages_read);

// What the IndexRef says about its root page. REQUIRES: ref.is_paged().
ChildBounds RootBounds(const IndexRef& ref);
// What `node` (whose own range ends below `hi`) says about child i.
ChildBounds ChildBoundsOf(const Node& node, size_t i, std::optional<uint64_t> hi);
// CheckChild for the root plus the root rules of T4 (a root node has at least two
// children; a root leaf has more than kInlineMaxEntries entries).
Status CheckRoot(const Page& page, const IndexRef& ref);

}  // namespace dreamdb::btree::internal

#endif  // DREAMDB_SRC_BTREE_INTERNAL_H_
