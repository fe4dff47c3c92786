// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Diff of two versions of the anchor index (spec/11-anchor-index.md §7).
//
// Design notes. Each side is a stack of pending items in ascending anchor order: either a
// subtree (a page id with the bounds its parent gave it) or one entry of a leaf already
// read. Let x and y be the heads. The loop keeps this invariant:
//   D1  every anchor below min(start(x), start(y)) has been reported (or is equal on
//       both sides), and the items on each stack cover exactly the anchors of that side
//       not yet considered.
// Steps: equal page ids -> pop both (identical bytes, identical subtrees: never read);
// two entries -> compare and pop the smaller (or both); an entry below the other head's
// start -> it exists on one side only; otherwise expand (read) the subtree that starts
// first, or the higher one, or both when they start together at the same level. Pages
// are only read on the paths to differences, so two versions differing in c anchors
// cost O(c * height) reads (plus one leaf per side per difference).

#include <algorithm>
#include <utility>

#include "src/btree/btree.h"
#include "src/btree/internal.h"

namespace dreamdb::btree {

using internal::PagePtr;

namespace {

struct Item {
  bool is_entry = false;
  uint64_t start = 0;  // smallest anchor (the entry's anchor)
  // Subtree:
  ObjectId id;
  PagePtr page;  // set once read (or for an inline leaf)
  ChildBounds bounds;
  // Entry:
  std::shared_ptr<const Leaf> leaf;
  size_t index = 0;
};

class Differ {
 public:
  Differ(Store& store, PageCache* cache, const DiffVisitor& visit)
      : store_(store), cache_(cache), visit_(visit) {}

  Status Init(const IndexRef& ref, std::vector<Item>* stack) {
    if (ref.empty()) return Status::Ok();
    Item item;
    if (ref.is_inline()) {
      // An inline leaf gets the id its page would have, so it matches an equal page.
      ASSIGN_OR_RETURN(Bytes bytes, EncodeLeaf(*ref.inline_leaf));
      item.id = ObjectId::Of(bytes);
      item.page = std::make_shared<const Page>(MakePage(*ref.inline_leaf));
    } else {
      item.id = ref.root;
      ASSIGN_OR_RETURN(item.page, internal::Fetch(store_, cache_, ref.root, &reads_));
      RETURN_IF_ERROR(CheckChild(*item.page, ref.root, internal::RootBounds(ref)));
    }
    item.start = item.page->first_key();
    stack->push_back(std::move(item));
    return Status::Ok();
  }

  // Replaces the subtree at the top of `stack` by its children or entries.
  Status Expand(std::vector<Item>* stack) {
    Item item = std::move(stack->back());
    stack->pop_back();
    if (item.page == nullptr) {
      ASSIGN_OR_RETURN(item.page, internal::Fetch(store_, cache_, item.id, &reads_));
      RETURN_IF_ERROR(CheckChild(*item.page, item.id, item.bounds));
    }
    if (item.page->is_leaf()) {
      std::shared_ptr<const Leaf> leaf(item.page, &item.page->leaf());
      for (size_t i = leaf->size(); i-- > 0;) {
        Item e;
        e.is_entry = true;
        e.start = leaf->anchors[i];
        e.leaf = leaf;
        e.index = i;
        stack->push_back(std::move(e));
      }
      return Status::Ok();
    }
    const Node& node = item.page->node();
    for (size_t i = node.size(); i-- > 0;) {
      Item c;
      c.start = node.keys[i];
      c.id = node.children[i];
      c.bounds = internal::ChildBoundsOf(node, i, item.bounds.hi);
      stack->push_back(std::move(c));
    }
    return Status::Ok();
  }

  static std::vector<std::string> FieldNames(const Item& e) {
    std::vector<std::string> names;
    for (const LeafField& f : e.leaf->fields) {
      if (f.seg[e.index] != kNoSegment) names.push_back(f.name);
    }
    return names;
  }

  // Emits an entry present on one side only. Returns false to stop.
  bool OneSided(const Item& e, ChangeKind kind) {
    return visit_(Change{e.start, kind, FieldNames(e)});
  }

  // Compares two entries with the same anchor. Returns false to stop.
  bool Compare(const Item& a, const Item& b) {
    const Entry ea = a.leaf->EntryAt(a.index);
    const Entry eb = b.leaf->EntryAt(b.index);
    if (ea == eb) return true;
    Change c{ea.anchor, ChangeKind::kChanged, {}};
    size_t i = 0, j = 0;
    while (i < ea.fields.size() || j < eb.fields.size()) {
      if (j >= eb.fields.size() ||
          (i < ea.fields.size() && cbor::KeyLess(ea.fields[i].first, eb.fields[j].first))) {
        c.fields.push_back(ea.fields[i++].first);
      } else if (i >= ea.fields.size() || cbor::KeyLess(eb.fields[j].first, ea.fields[i].first)) {
        c.fields.push_back(eb.fields[j++].first);
      } else {
        if (!(ea.fields[i].second == eb.fields[j].second)) c.fields.push_back(ea.fields[i].first);
        ++i;
        ++j;
      }
    }
    return visit_(c);
  }

  Status Run(const IndexRef& from, const IndexRef& to) {
    if (from == to) return Status::Ok();
    std::vector<Item> a, b;
    RETURN_IF_ERROR(Init(from, &a));
    RETURN_IF_ERROR(Init(to, &b));
    while (!a.empty() || !b.empty()) {
      if (b.empty() || a.empty()) {
        std::vector<Item>* side = a.empty() ? &b : &a;
        if (!side->back().is_entry) {
          RETURN_IF_ERROR(Expand(side));
          continue;
        }
        if (!OneSided(side->back(), a.empty() ? ChangeKind::kAdded : ChangeKind::kRemoved)) {
          return Status::Ok();
        }
        side->pop_back();
        continue;
      }
      Item& x = a.back();
      Item& y = b.back();
      if (!x.is_entry && !y.is_entry && x.id == y.id) {
        a.pop_back();
        b.pop_back();
      } else if (x.is_entry && y.is_entry) {
        if (x.start < y.start) {
          if (!OneSided(x, ChangeKind::kRemoved)) return Status::Ok();
          a.pop_back();
        } else if (y.start < x.start) {
          if (!OneSided(y, ChangeKind::kAdded)) return Status::Ok();
          b.pop_back();
        } else {
          if (!Compare(x, y)) return Status::Ok();
          a.pop_back();
          b.pop_back();
        }
      } else if (x.is_entry) {
        if (x.start < y.start) {
          if (!OneSided(x, ChangeKind::kRemoved)) return Status::Ok();
          a.pop_back();
        } else {
          RETURN_IF_ERROR(Expand(&b));
        }
      } else if (y.is_entry) {
        if (y.start < x.start) {
          if (!OneSided(y, ChangeKind::kAdded)) return Status::Ok();
          b.pop_back();
        } else {
          RETURN_IF_ERROR(Expand(&a));
        }
      } else if (x.start != y.start) {
        RETURN_IF_ERROR(Expand(x.start < y.start ? &a : &b));
      } else {
        const uint32_t la = x.page != nullptr ? x.page->level() : x.bounds.level;
        const uint32_t lb = y.page != nullptr ? y.page->level() : y.bounds.level;
        if (la > lb) {
          RETURN_IF_ERROR(Expand(&a));
        } else if (lb > la) {
          RETURN_IF_ERROR(Expand(&b));
        } else {
          RETURN_IF_ERROR(Expand(&a));
          RETURN_IF_ERROR(Expand(&b));
        }
      }
    }
    return Status::Ok();
  }

  uint64_t reads() const { return reads_.load(); }

 private:
  Store& store_;
  PageCache* cache_;
  const DiffVisitor& visit_;
  std::atomic<uint64_t> reads_{0};
};

}  // namespace

Status Diff(Store& store, PageCache* cache, const IndexRef& from, const IndexRef& to,
            const DiffVisitor& visit, uint64_t* pages_read) {
  Differ differ(store, cache, visit);
  Status s = differ.Run(from, to);
  if (pages_read != nullptr) *pages_read += differ.reads();
  return s;
}

}  // namespace dreamdb::btree
