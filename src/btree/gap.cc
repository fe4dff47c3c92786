// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Free runs of anchors below a bound (spec/14-semantics.md §2.3: where automatic anchors
// go when `next_anchor` leaves no room for a batch).
#include <optional>

#include "src/btree/internal.h"

namespace dreamdb::btree {

namespace {

// The right-to-left walk of one tree. `upper` is the smallest anchor of the tree seen so far
// at or above the walk's position (initially `end`): a free run ends there.
class GapWalk {
 public:
  GapWalk(Store& store, PageCache* cache, uint64_t end, uint64_t n, uint64_t max_pages)
      : store_(store), cache_(cache), upper_(end), end_(end), n_(n), max_pages_(max_pages) {}

  Result<std::optional<Tree::Gap>> Leaf(const std::vector<uint64_t>& anchors) {
    for (size_t i = anchors.size(); i-- > 0;) {
      const uint64_t a = anchors[i];
      if (a >= end_) continue;
      if (upper_ - a - 1 >= n_) return Tree::Gap{a + 1, upper_};
      upper_ = a;
    }
    return std::optional<Tree::Gap>();
  }

  Result<std::optional<Tree::Gap>> Under(const ObjectId& id, const ChildBounds& bounds) {
    if (++pages_ > max_pages_) {
      return InvalidArgument("no free run of " + std::to_string(n_) + " anchors found within " +
                             std::to_string(max_pages_) + " index pages");
    }
    ASSIGN_OR_RETURN(internal::PagePtr page, internal::Fetch(store_, cache_, id, nullptr));
    RETURN_IF_ERROR(CheckChild(*page, id, bounds));
    if (page->is_leaf()) return Leaf(page->leaf().anchors);
    const Node& node = page->node();
    for (size_t i = node.size(); i-- > 0;) {
      const uint64_t lo = node.keys[i];
      if (lo >= end_) continue;
      const ChildBounds child = internal::ChildBoundsOf(node, i, bounds.hi);
      // Every anchor of the child lies in [lo, upper_) when the child ends at or below
      // upper_; then the free anchors there number (upper_ - lo) - count, and fewer than n
      // cannot hold a run of n: the child is skipped unread.
      if (child.hi && *child.hi <= upper_ && (upper_ - lo) - node.counts[i] < n_) {
        upper_ = lo;
        continue;
      }
      ASSIGN_OR_RETURN(auto gap, Under(node.children[i], child));
      if (gap) return gap;
    }
    return std::optional<Tree::Gap>();
  }

  // Below every anchor of the tree: [0, upper_) is free.
  std::optional<Tree::Gap> Bottom() const {
    if (upper_ >= n_) return Tree::Gap{0, upper_};
    return std::nullopt;
  }

 private:
  Store& store_;
  PageCache* cache_;
  uint64_t upper_;
  const uint64_t end_;
  const uint64_t n_;
  const uint64_t max_pages_;
  uint64_t pages_ = 0;
};

}  // namespace

Result<std::optional<Tree::Gap>> Tree::HighestGapBelow(uint64_t end, uint64_t n,
                                                       uint64_t max_pages) const {
  if (n == 0) return InvalidArgument("btree HighestGapBelow: n must be at least 1");
  GapWalk walk(*store_, cache_, end, n, max_pages);
  if (ref_.is_inline()) {
    ASSIGN_OR_RETURN(auto gap, walk.Leaf(ref_.inline_leaf->anchors));
    if (gap) return gap;
  } else if (ref_.is_paged()) {
    ASSIGN_OR_RETURN(auto gap, walk.Under(ref_.root, internal::RootBounds(ref_)));
    if (gap) return gap;
  }
  return walk.Bottom();
}

}  // namespace dreamdb::btree
