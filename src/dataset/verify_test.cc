// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// What "verify ok" promises (spec/14-semantics.md §12): every read of every version
// succeeds. Each test here builds a small dataset (paged index, tombstones, an IVF index
// and a graph index), then writes objects that are validly encoded and hashed but hold a
// wrong cross-reference (a row past a segment's end, a field the schema lacks, a bucket
// listed under the wrong cell, a model of another dim, ...) through the library's own
// encoders, points the branch at a manifest that reaches them, and checks: if verify says
// ok, a full read of every version (scan of every field, take of every anchor, search)
// succeeds.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dreamdb/dataset.h"
#include "dreamdb/search.h"
#include "src/btree/btree.h"
#include "src/btree/page.h"
#include "src/columnar/segment.h"
#include "src/dataset/manifest.h"
#include "src/dataset/vector_index.h"
#include "src/index/graph/graph.h"

namespace dreamdb {
namespace {

constexpr uint32_t kDim = 8;
constexpr std::string_view kName = "d";
constexpr std::string_view kRef = "d/branches/main";

Schema TestSchema() {
  Schema s;
  EXPECT_TRUE(s.AddEmbedding("emb", kDim).ok());
  EXPECT_TRUE(s.AddInt64("label").ok());
  EXPECT_TRUE(s.AddString("name", true).ok());
  EXPECT_TRUE(s.AddEmbedding("gemb", kDim, true).ok());
  return s;
}

Batch Rows(const Schema& s, size_t first, size_t n) {
  std::mt19937_64 rng(first + 1);
  std::normal_distribution<float> g(0, 1);
  Batch b;
  Column emb(*s.Find("emb")), label(*s.Find("label")), name(*s.Find("name")), gemb(*s.Find("gemb"));
  for (size_t i = 0; i < n; ++i) {
    std::vector<float> v(kDim);
    for (auto& x : v) x = g(rng) + static_cast<float>((first + i) % 4) * 3;
    emb.AppendFloats(v);
    gemb.AppendFloats(v);
    label.AppendInt64(static_cast<int64_t>(first + i));
    if (i % 5 == 0) {
      name.AppendNull();
    } else {
      name.AppendBytes("r" + std::to_string(first + i));
    }
  }
  b.columns.push_back(std::move(emb));
  b.columns.push_back(std::move(label));
  b.columns.push_back(std::move(name));
  b.columns.push_back(std::move(gemb));
  return b;
}

// The dataset every mutation starts from: 600 records (a two-level index), 40 more, 70
// deletions (a paged tombstone set), an IVF index on "emb", a graph index on "gemb",
// then 30 more records (appended buckets).
struct Base {
  std::shared_ptr<Store> store;
  ObjectId head;
};

const Base& TheBase() {
  static const Base* base = [] {
    auto* b = new Base;
    b->store = std::shared_ptr<Store>(*Store::Open("memory://"));
    Schema s = TestSchema();
    auto ds = std::move(*Dataset::Create(b->store, kName, s));
    EXPECT_TRUE(ds->AppendMany(Rows(s, 0, 600)).ok());
    EXPECT_TRUE(ds->AppendMany(Rows(s, 600, 40)).ok());
    std::vector<uint64_t> gone;
    for (uint64_t a = 100; a < 240; a += 2) gone.push_back(a);
    EXPECT_TRUE(ds->Delete(gone).ok());
    BuildIndexOptions ivf;
    ivf.cells = 4;
    ivf.threads = 1;
    auto built = ds->BuildIndex("emb", ivf);
    EXPECT_TRUE(built.ok()) << built.status().ToString();
    BuildIndexOptions graph;
    graph.algorithm = "graph";
    graph.degree = 8;
    graph.threads = 1;
    built = ds->BuildIndex("gemb", graph);
    EXPECT_TRUE(built.ok()) << built.status().ToString();
    EXPECT_TRUE(ds->AppendMany(Rows(s, 640, 30)).ok());
    b->head = ds->head();
    return b;
  }();
  return *base;
}

// The store every mutation runs in: the base's, with the branch put back at the base
// head. Mutations only add objects (new content, new ids) and move the branch, so one
// does not see another's changes, and no store is copied.
std::shared_ptr<Store> StoreAtBase() {
  const Base& base = TheBase();
  auto ref = base.store->ReadRef(kRef);
  EXPECT_TRUE(ref.ok());
  if (ref.ok() && ref->target != base.head) {
    EXPECT_TRUE(base.store->UpdateRef(kRef, ref->target, base.head).ok());
  }
  return base.store;
}

// Reads every version of the dataset in full: each manifest reached from the branch
// (history), every field scanned, every anchor taken, both embedding fields searched
// through their indexes and by brute force. Versions in `skip` (the base's, read whole
// once: a mutation cannot change an existing object) are left out. The first error, or OK.
Status ReadEverything(const std::shared_ptr<Store>& store, const std::set<ObjectId>& skip = {}) {
  auto head = Dataset::Open(store, kName);
  if (!head.ok()) return head.status();
  std::vector<ObjectId> versions;
  RETURN_IF_ERROR((*head)->History([&](const CommitInfo& c) {
    versions.push_back(c.manifest);
    return true;
  }));
  for (const ObjectId& v : versions) {
    if (skip.count(v) != 0) continue;
    ASSIGN_OR_RETURN(auto ds, Dataset::OpenAt(store, kName, v.ToString()));
    ASSIGN_OR_RETURN(auto reader, ds->Scan());
    std::vector<uint64_t> anchors;
    std::vector<float> query;
    for (;;) {
      ASSIGN_OR_RETURN(auto batch, reader->Next());
      if (!batch) break;
      anchors.insert(anchors.end(), batch->anchors.begin(), batch->anchors.end());
      const Column* emb = batch->Find("emb");
      if (query.empty() && emb != nullptr && batch->num_rows() > 0 && emb->IsValid(0)) {
        auto f = emb->FloatsAt(0);
        query.assign(f.begin(), f.end());
      }
    }
    const Schema schema = ds->schema();
    std::vector<std::string> fields;
    for (const auto& f : schema.fields()) fields.push_back(f.name);
    RETURN_IF_ERROR(ds->Take(anchors, fields).status());
    if (query.empty()) query.assign(kDim, 1.0f);
    for (const auto& f : schema.fields()) {
      if (f.type != FieldType::kEmbedding || f.dim != query.size()) continue;
      // Through the index (every cell probed) with a filter and every field projected;
      // then brute force.
      SearchOptions o;
      o.k = 20;
      o.nprobe = UINT32_MAX;
      o.fields = fields;
      o.threads = 1;
      const FieldSpec* label = schema.Find("label");
      if (label != nullptr && label->type == FieldType::kInt64) {
        o.where = {Predicate{"label", Predicate::Op::kGe, {int64_t{300}}}};
      }
      RETURN_IF_ERROR(ds->Search(f.name, query.data(), 1, query.size(), o).status());
      SearchOptions exact;
      exact.k = 20;
      exact.exact = true;
      exact.threads = 1;
      RETURN_IF_ERROR(ds->Search(f.name, query.data(), 1, query.size(), exact).status());
    }
  }
  return Status::Ok();
}

// ---- Rewriting objects through the library's encoders ----

dataset::Manifest HeadManifest(Store& store) {
  return *dataset::DecodeManifest(*store.Get(TheBase().head));
}

// Points the branch at a manifest like the head one, changed by `edit`.
Status Commit(Store& store, const dataset::Manifest& m) {
  ASSIGN_OR_RETURN(Bytes bytes, dataset::EncodeManifest(m));
  ASSIGN_OR_RETURN(ObjectId id, store.Put(bytes));
  return store.UpdateRef(kRef, TheBase().head, id);
}

// A page of the tree with every node on the path to it (root first).
struct PagePath {
  std::vector<ObjectId> ids;  // root .. page
  std::vector<btree::Page> pages;
};

// Every page of a paged tree, each with its path (nodes before their children).
std::vector<PagePath> AllPages(Store& store, const btree::IndexRef& ref) {
  std::vector<PagePath> out;
  if (!ref.is_paged()) return out;
  std::vector<PagePath> stack{{{ref.root}, {}}};
  while (!stack.empty()) {
    PagePath p = std::move(stack.back());
    stack.pop_back();
    auto page = btree::DecodePage(*store.Get(p.ids.back()), "test");
    EXPECT_TRUE(page.ok());
    p.pages.push_back(*page);
    if (!page->is_leaf()) {
      for (auto it = page->node().children.rbegin(); it != page->node().children.rend(); ++it) {
        PagePath child = p;
        child.ids.push_back(*it);
        stack.push_back(std::move(child));
      }
    }
    out.push_back(std::move(p));
  }
  return out;
}

// The tree `ref` with the page at the end of `path` replaced by `page` (its ancestors
// re-encoded to point at it, nothing else changed). Not OK when the encoder refuses
// the page (it breaks a page invariant, which decoders refuse anyway).
Result<btree::IndexRef> ReplacePage(Store& store, const btree::IndexRef& ref, const PagePath& path,
                                    const btree::Page& page) {
  auto encode = [](const btree::Page& p) {
    return p.is_leaf() ? btree::EncodeLeaf(p.leaf()) : btree::EncodeNode(p.node());
  };
  ASSIGN_OR_RETURN(Bytes bytes, encode(page));
  ASSIGN_OR_RETURN(ObjectId id, store.Put(bytes));
  for (size_t level = path.ids.size() - 1; level > 0; --level) {
    btree::Node parent = path.pages[level - 1].node();
    for (auto& c : parent.children) {
      if (c == path.ids[level]) c = id;
    }
    ASSIGN_OR_RETURN(bytes, btree::EncodeNode(parent));
    ASSIGN_OR_RETURN(id, store.Put(bytes));
  }
  return btree::IndexRef::Paged(id, ref.height, ref.count);
}

struct Mutation {
  std::string name;
  // Applies the mutation to a copy of the base store; not OK = could not be encoded
  // validly (skipped).
  std::function<Status(Store&)> apply;
};

btree::IndexRef IndexOf(const dataset::Manifest& m) {
  return *btree::IndexRefFromCbor(m.index, "test");
}
btree::IndexRef TombstonesOf(const dataset::Manifest& m) {
  return *btree::IndexRefFromCbor(m.tombstones, "test");
}

// Rows of a segment decoded as `spec`.
uint64_t SegmentRows(Store& store, const ObjectId& id, const FieldSpec& spec) {
  auto col = columnar::DecodeSegment(*store.Get(id), spec);
  EXPECT_TRUE(col.ok()) << col.status().ToString();
  return col.ok() ? col->length() : 0;
}

// Leaf mutations: for each leaf of the head index (index `leaf_no` in AllPages order).
void AddLeafMutations(std::vector<Mutation>* out) {
  const Base& base = TheBase();
  dataset::Manifest m = *dataset::DecodeManifest(*base.store->Get(base.head));
  auto pages = AllPages(*base.store, IndexOf(m));
  const ObjectId missing = ObjectId::Of("no such object");
  for (size_t p = 0; p < pages.size(); ++p) {
    if (!pages[p].pages.back().is_leaf()) continue;
    const btree::Leaf& leaf = pages[p].pages.back().leaf();
    auto leaf_mutation = [out, p](const std::string& name,
                                  const std::function<bool(btree::Leaf*)>& edit) {
      out->push_back({"leaf " + std::to_string(p) + ": " + name, [p, edit](Store& store) {
                        dataset::Manifest m = HeadManifest(store);
                        auto path = AllPages(store, IndexOf(m))[p];
                        btree::Leaf leaf = path.pages.back().leaf();
                        if (!edit(&leaf)) return Unsupported("not applicable");
                        ASSIGN_OR_RETURN(auto ref, ReplacePage(store, IndexOf(m), path,
                                                               btree::MakePage(std::move(leaf))));
                        m.index = btree::IndexRefToCbor(ref);
                        return Commit(store, m);
                      }});
    };
    for (size_t f = 0; f < leaf.fields.size(); ++f) {
      const std::string fname = leaf.fields[f].name;
      const FieldSpec* spec = m.schema.Find(fname);
      const uint64_t rows0 = SegmentRows(*base.store, leaf.fields[f].segments[0], *spec);
      for (size_t i : {size_t{0}, leaf.size() - 1}) {
        for (uint64_t past : {uint64_t{0}, uint64_t{1000}}) {
          leaf_mutation(fname + " entry " + std::to_string(i) + " row past its segment's end +" +
                            std::to_string(past),
                        [f, i, past, rows0](btree::Leaf* l) {
                          auto& lf = l->fields[f];
                          if (lf.seg[i] == btree::kNoSegment) return false;
                          lf.seg[i] = 0;
                          lf.row[i] = static_cast<uint32_t>(rows0 + past);
                          return true;
                        });
        }
        leaf_mutation(fname + " entry " + std::to_string(i) + " row 0", [f, i](btree::Leaf* l) {
          auto& lf = l->fields[f];
          if (lf.seg[i] == btree::kNoSegment) return false;
          lf.row[i] = 0;
          return true;
        });
        leaf_mutation(fname + " entry " + std::to_string(i) + " without a value",
                      [f, i](btree::Leaf* l) {
                        l->fields[f].seg[i] = btree::kNoSegment;
                        l->fields[f].row[i] = 0;
                        *l = btree::SliceLeaf(*l, 0, l->size());
                        return true;
                      });
      }
      leaf_mutation(fname + " segment missing", [f, missing](btree::Leaf* l) {
        l->fields[f].segments[0] = missing;
        return true;
      });
      leaf_mutation(fname + " segment is the manifest", [f](btree::Leaf* l) {
        l->fields[f].segments[0] = TheBase().head;
        return true;
      });
      {
        // Another field of another type (fields: emb, gemb, name, label in leaf order).
        const size_t g = (f + 2) % leaf.fields.size();
        const ObjectId other = leaf.fields[g].segments[0];
        leaf_mutation(fname + " segment of field " + leaf.fields[g].name,
                      [f, other](btree::Leaf* l) {
                        for (auto& s : l->fields[f].segments) {
                          if (s == other) return false;
                        }
                        l->fields[f].segments[0] = other;
                        return true;
                      });
      }
      leaf_mutation(fname + " renamed to a field the schema lacks", [f](btree::Leaf* l) {
        l->fields[f].name = "zz_not_in_schema";
        std::sort(l->fields.begin(), l->fields.end(), [](const auto& a, const auto& b) {
          return a.name.size() != b.name.size() ? a.name.size() < b.name.size() : a.name < b.name;
        });
        return true;
      });
      leaf_mutation(fname + " removed", [f](btree::Leaf* l) {
        l->fields.erase(l->fields.begin() + static_cast<std::ptrdiff_t>(f));
        return true;
      });
    }
    for (size_t i : {size_t{0}, leaf.size() - 1}) {
      for (int64_t delta : {-1, 1000}) {
        leaf_mutation("anchor " + std::to_string(i) + " moved by " + std::to_string(delta),
                      [i, delta](btree::Leaf* l) {
                        l->anchors[i] =
                            static_cast<uint64_t>(static_cast<int64_t>(l->anchors[i]) + delta);
                        return true;
                      });
      }
    }
    leaf_mutation("last entry removed", [](btree::Leaf* l) {
      *l = btree::SliceLeaf(*l, 0, l->size() - 1);
      return true;
    });
  }
}

// Node mutations (the root of the head index).
void AddNodeMutations(std::vector<Mutation>* out) {
  auto node_mutation = [out](const std::string& name,
                             const std::function<bool(btree::Node*)>& edit) {
    out->push_back({"root node: " + name, [edit](Store& store) {
                      dataset::Manifest m = HeadManifest(store);
                      auto path = AllPages(store, IndexOf(m))[0];
                      btree::Node node = path.pages.back().node();
                      if (!edit(&node)) return Unsupported("not applicable");
                      ASSIGN_OR_RETURN(auto ref, ReplacePage(store, IndexOf(m), path,
                                                             btree::MakePage(std::move(node))));
                      m.index = btree::IndexRefToCbor(ref);
                      return Commit(store, m);
                    }});
  };
  for (size_t c : {size_t{0}, size_t{1}}) {
    for (int64_t d : {-1, 1}) {
      node_mutation("count " + std::to_string(c) + " + " + std::to_string(d),
                    [c, d](btree::Node* n) {
                      n->counts[c] = static_cast<uint64_t>(static_cast<int64_t>(n->counts[c]) + d);
                      return true;
                    });
      node_mutation("key " + std::to_string(c) + " + " + std::to_string(d), [c, d](btree::Node* n) {
        n->keys[c] = static_cast<uint64_t>(static_cast<int64_t>(n->keys[c]) + d);
        return true;
      });
    }
  }
  node_mutation("children swapped", [](btree::Node* n) {
    std::swap(n->children[0], n->children[1]);
    return true;
  });
  node_mutation("child is a tombstone page", [](btree::Node* n) {
    auto t = TombstonesOf(HeadManifest(*TheBase().store));
    if (!t.is_paged()) return false;
    n->children[0] = t.root;
    return true;
  });
}

dataset::Manifest Without(dataset::Manifest m, std::string_view field, bool dropped) {
  Schema s;
  for (const auto& f : m.schema.fields()) {
    if (f.name != field) {
      EXPECT_TRUE(s.Add(f).ok());
    }
  }
  s.set_version(m.schema.version());
  m.schema = s;
  if (dropped) {
    m.dropped.push_back(std::string(field));
    std::sort(m.dropped.begin(), m.dropped.end());
  }
  return m;
}

dataset::Manifest WithField(dataset::Manifest m, const FieldSpec& field) {
  Schema s;
  for (const auto& f : m.schema.fields()) EXPECT_TRUE(s.Add(f.name == field.name ? field : f).ok());
  s.set_version(m.schema.version());
  m.schema = s;
  return m;
}

void AddManifestMutations(std::vector<Mutation>* out) {
  auto manifest_mutation = [out](const std::string& name,
                                 const std::function<bool(Store&, dataset::Manifest*)>& edit) {
    out->push_back({"manifest: " + name, [edit](Store& store) {
                      dataset::Manifest m = HeadManifest(store);
                      if (!edit(store, &m)) return Unsupported("not applicable");
                      return Commit(store, m);
                    }});
  };
  for (int64_t d : {-1, 1}) {
    manifest_mutation("count + " + std::to_string(d), [d](Store&, dataset::Manifest* m) {
      m->count = static_cast<uint64_t>(static_cast<int64_t>(m->count) + d);
      return true;
    });
    manifest_mutation("index count + " + std::to_string(d), [d](Store&, dataset::Manifest* m) {
      auto r = IndexOf(*m);
      r.count = static_cast<uint64_t>(static_cast<int64_t>(r.count) + d);
      m->index = btree::IndexRefToCbor(r);
      m->count = r.count;
      return true;
    });
    manifest_mutation("index height + " + std::to_string(d), [d](Store&, dataset::Manifest* m) {
      auto r = IndexOf(*m);
      r.height = static_cast<uint32_t>(static_cast<int64_t>(r.height) + d);
      m->index = btree::IndexRefToCbor(r);
      return true;
    });
  }
  manifest_mutation("index is the tombstone set", [](Store&, dataset::Manifest* m) {
    m->index = m->tombstones;
    m->count = TombstonesOf(*m).count;
    return true;
  });
  manifest_mutation("tombstones are the index", [](Store&, dataset::Manifest* m) {
    m->tombstones = m->index;
    return true;
  });
  manifest_mutation("index root is a leaf of the index", [](Store& store, dataset::Manifest* m) {
    auto pages = AllPages(store, IndexOf(*m));
    auto r = IndexOf(*m);
    r.root = pages.back().ids.back();
    r.height = 1;
    r.count = pages.back().pages.back().count();
    m->index = btree::IndexRefToCbor(r);
    m->count = r.count;
    return true;
  });
  for (const char* f : {"emb", "label", "name", "gemb"}) {
    for (bool dropped : {false, true}) {
      manifest_mutation(std::string("field ") + f + (dropped ? " dropped" : " left out"),
                        [f, dropped](Store&, dataset::Manifest* m) {
                          *m = Without(*m, f, dropped);
                          return true;
                        });
    }
  }
  manifest_mutation("emb has dim 4", [](Store&, dataset::Manifest* m) {
    FieldSpec f = *m->schema.Find("emb");
    f.dim = 4;
    *m = WithField(*m, f);
    return true;
  });
  manifest_mutation("gemb has dim 16", [](Store&, dataset::Manifest* m) {
    FieldSpec f = *m->schema.Find("gemb");
    f.dim = 16;
    *m = WithField(*m, f);
    return true;
  });
  manifest_mutation("label is a float64", [](Store&, dataset::Manifest* m) {
    FieldSpec f = *m->schema.Find("label");
    f.type = FieldType::kFloat64;
    *m = WithField(*m, f);
    return true;
  });
  manifest_mutation("name is a blob", [](Store&, dataset::Manifest* m) {
    FieldSpec f = *m->schema.Find("name");
    f.type = FieldType::kBlob;
    f.mime = "application/octet-stream";
    *m = WithField(*m, f);
    return true;
  });
  manifest_mutation("label is an embedding of dim 2", [](Store&, dataset::Manifest* m) {
    FieldSpec f = *m->schema.Find("label");
    f.type = FieldType::kEmbedding;
    f.dim = 2;
    *m = WithField(*m, f);
    return true;
  });
  manifest_mutation("indexes swapped", [](Store&, dataset::Manifest* m) {
    std::swap(m->indexes["emb"], m->indexes["gemb"]);
    return true;
  });
  manifest_mutation("index of label", [](Store&, dataset::Manifest* m) {
    m->indexes["label"] = m->indexes["emb"];
    return true;
  });
  manifest_mutation("index of a field the schema lacks", [](Store&, dataset::Manifest* m) {
    m->indexes["zz"] = m->indexes["emb"];
    return true;
  });
  manifest_mutation("index is its model", [](Store& store, dataset::Manifest* m) {
    m->indexes["emb"] = vindex::DecodeIndex(*store.Get(m->indexes["emb"]))->model;
    return true;
  });
  manifest_mutation("index is missing", [](Store&, dataset::Manifest* m) {
    m->indexes["emb"] = ObjectId::Of("no such index");
    return true;
  });
  manifest_mutation("index is a manifest", [](Store&, dataset::Manifest* m) {
    m->indexes["emb"] = TheBase().head;
    return true;
  });
  manifest_mutation("parent is the genesis", [](Store&, dataset::Manifest* m) {
    m->parents = {m->genesis};
    return true;
  });
  manifest_mutation("genesis is the parent", [](Store&, dataset::Manifest* m) {
    m->genesis = m->parents[0];
    return true;
  });
}

// Segment mutations: a leaf entry's segment replaced by a validly encoded segment of the
// same field with fewer or more rows, or of another type.
void AddSegmentMutations(std::vector<Mutation>* out) {
  for (const char* field : {"emb", "label", "name", "gemb"}) {
    for (int kind = 0; kind < 3; ++kind) {
      static const char* kKinds[] = {"half its rows", "twice its rows", "another type"};
      out->push_back(
          {std::string("segment of ") + field + ": " + kKinds[kind], [field, kind](Store& store) {
             dataset::Manifest m = HeadManifest(store);
             auto pages = AllPages(store, IndexOf(m));
             const PagePath& path = pages.back();  // the last leaf: entries of every commit
             btree::Leaf leaf = path.pages.back().leaf();
             const btree::LeafField* lf = leaf.FindField(field);
             if (lf == nullptr) return Unsupported("no such field in the leaf");
             const FieldSpec spec = *m.schema.Find(field);
             const ObjectId old = lf->segments.back();
             ASSIGN_OR_RETURN(Column col, columnar::DecodeSegment(*store.Get(old), spec));
             Column next(spec);
             if (kind == 0) next.AppendRange(col, 0, col.length() / 2);
             if (kind == 1) {
               next.AppendRange(col, 0, col.length());
               next.AppendRange(col, 0, col.length());
             }
             Result<Bytes> bytes = Bytes();
             if (kind == 2) {
               Schema s;
               RETURN_IF_ERROR(s.AddFloat64(field));
               Column other(*s.Find(field));
               for (uint64_t r = 0; r < col.length(); ++r) other.AppendFloat64(1.5);
               bytes = columnar::EncodeSegment(other);
             } else {
               bytes = columnar::EncodeSegment(next, spec);
             }
             if (!bytes.ok()) return bytes.status();
             ASSIGN_OR_RETURN(ObjectId seg, store.Put(*bytes));
             for (auto& f : leaf.fields) {
               for (auto& s : f.segments) {
                 if (s == old) s = seg;
               }
             }
             ASSIGN_OR_RETURN(
                 auto ref, ReplacePage(store, IndexOf(m), path, btree::MakePage(std::move(leaf))));
             m.index = btree::IndexRefToCbor(ref);
             return Commit(store, m);
           }});
    }
  }
}

void AddTombstoneMutations(std::vector<Mutation>* out) {
  auto tomb_mutation = [out](const std::string& name,
                             const std::function<bool(btree::Leaf*)>& edit) {
    out->push_back({"tombstone leaf: " + name, [edit](Store& store) {
                      dataset::Manifest m = HeadManifest(store);
                      auto t = TombstonesOf(m);
                      auto pages = AllPages(store, t);
                      if (pages.empty() || !pages[0].pages[0].is_leaf()) {
                        return Unsupported("tombstones are not one paged leaf");
                      }
                      btree::Leaf leaf = pages[0].pages[0].leaf();
                      if (!edit(&leaf)) return Unsupported("not applicable");
                      ASSIGN_OR_RETURN(auto ref,
                                       ReplacePage(store, t, pages[0], btree::MakePage(leaf)));
                      ref.count = leaf.size();
                      m.tombstones = btree::IndexRefToCbor(ref);
                      return Commit(store, m);
                    }});
  };
  tomb_mutation("names a field", [](btree::Leaf* l) {
    btree::LeafField f;
    f.name = "label";
    f.segments = {ObjectId::Of("no such segment")};
    f.seg.assign(l->size(), 0);
    f.row.assign(l->size(), 0);
    l->fields.push_back(f);
    return true;
  });
  tomb_mutation("one anchor fewer", [](btree::Leaf* l) {
    *l = btree::SliceLeaf(*l, 1, l->size());
    return true;
  });
  tomb_mutation("an anchor moved", [](btree::Leaf* l) {
    l->anchors.back() += 7;
    return true;
  });
}

// Spatial mutations: the index object, its directory pages, buckets, model, node pages.
void AddSpatialMutations(std::vector<Mutation>* out) {
  auto index_mutation = [out](const std::string& field, const std::string& name,
                              const std::function<bool(Store&, vindex::IndexObject*)>& edit) {
    out->push_back({"index of " + field + ": " + name, [field, edit](Store& store) {
                      dataset::Manifest m = HeadManifest(store);
                      ASSIGN_OR_RETURN(auto ix, vindex::DecodeIndex(*store.Get(m.indexes[field])));
                      if (!edit(store, &ix)) return Unsupported("not applicable");
                      ASSIGN_OR_RETURN(Bytes bytes, vindex::EncodeIndex(ix));
                      ASSIGN_OR_RETURN(m.indexes[field], store.Put(bytes));
                      return Commit(store, m);
                    }});
  };
  for (const std::string field : {"emb", "gemb"}) {
    for (int64_t d : {-1, 1}) {
      index_mutation(field, "dim + " + std::to_string(d), [d](Store&, vindex::IndexObject* ix) {
        ix->dim = static_cast<uint32_t>(static_cast<int64_t>(ix->dim) + d);
        return true;
      });
      index_mutation(field, "cells + " + std::to_string(d), [d](Store&, vindex::IndexObject* ix) {
        ix->cells = static_cast<uint32_t>(static_cast<int64_t>(ix->cells) + d);
        return true;
      });
      index_mutation(field, "entries + " + std::to_string(d), [d](Store&, vindex::IndexObject* ix) {
        ix->entries = static_cast<uint64_t>(static_cast<int64_t>(ix->entries) + d);
        return true;
      });
      index_mutation(field, "buckets + " + std::to_string(d), [d](Store&, vindex::IndexObject* ix) {
        ix->buckets = static_cast<uint64_t>(static_cast<int64_t>(ix->buckets) + d);
        return true;
      });
    }
    index_mutation(field, "names field label", [](Store&, vindex::IndexObject* ix) {
      ix->field = "label";
      return true;
    });
    index_mutation(field, "metric l2", [](Store&, vindex::IndexObject* ix) {
      ix->metric = ix->metric == "l2" ? "ip" : "l2";
      return true;
    });
    index_mutation(field, "bits 2", [](Store&, vindex::IndexObject* ix) {
      ix->bits = ix->bits == 2 ? 3 : 2;
      return true;
    });
    index_mutation(
        field, "the other index's model", [field](Store& store, vindex::IndexObject* ix) {
          dataset::Manifest m = HeadManifest(store);
          ix->model =
              vindex::DecodeIndex(*store.Get(m.indexes[field == "emb" ? "gemb" : "emb"]))->model;
          return true;
        });
    index_mutation(
        field, "the other index's directory page", [field](Store& store, vindex::IndexObject* ix) {
          dataset::Manifest m = HeadManifest(store);
          ix->pages[0] =
              vindex::DecodeIndex(*store.Get(m.indexes[field == "emb" ? "gemb" : "emb"]))->pages[0];
          return true;
        });
    index_mutation(field, "model missing", [](Store&, vindex::IndexObject* ix) {
      ix->model = ObjectId::Of("no such model");
      return true;
    });
    index_mutation(field, "model is the directory page", [](Store&, vindex::IndexObject* ix) {
      ix->model = ix->pages[0];
      return true;
    });
    index_mutation(field, "model of dim 4", [](Store& store, vindex::IndexObject* ix) {
      auto model = *vector::IvfModel::Deserialize(*store.Get(ix->model));
      vector::IvfParams p = model->params();
      p.dim = 4;
      std::vector<float> centroids(size_t{model->num_cells()} * 4, 0.5f);
      auto other = vector::IvfModel::FromCentroids(p, std::move(centroids));
      if (!other.ok()) return false;
      auto id = store.Put((*other)->Serialize());
      ix->model = *id;
      return true;
    });
    index_mutation(field, "model of 2 more cells", [](Store& store, vindex::IndexObject* ix) {
      auto model = *vector::IvfModel::Deserialize(*store.Get(ix->model));
      vector::IvfParams p = model->params();
      const uint32_t cells = model->num_cells() + 2;
      std::vector<float> centroids;
      for (uint32_t c = 0; c < cells; ++c) {
        const float* src = model->centroid(c % model->num_cells());
        for (uint32_t d = 0; d < model->dim(); ++d) centroids.push_back(src[d] + float(c) * 0.01f);
      }
      p.num_cells = cells;
      auto other = vector::IvfModel::FromCentroids(p, std::move(centroids));
      if (!other.ok()) return false;
      ix->model = *store.Put((*other)->Serialize());
      return true;
    });
  }
  // Graph: the node pages and the graph map.
  auto graph_mutation = [&](const std::string& name,
                            const std::function<bool(Store&, vindex::IndexObject*)>& e) {
    index_mutation("gemb", "graph " + name, e);
  };
  graph_mutation("entry 0 -> last", [](Store&, vindex::IndexObject* ix) {
    ix->graph->entry = static_cast<uint32_t>(ix->graph->nodes - 1);
    return true;
  });
  graph_mutation("one node fewer", [](Store&, vindex::IndexObject* ix) {
    ix->graph->nodes -= 1;
    return true;
  });
  graph_mutation("degree 4", [](Store&, vindex::IndexObject* ix) {
    ix->graph->degree = 4;
    return true;
  });
  graph_mutation("node pages swapped", [](Store&, vindex::IndexObject* ix) {
    if (ix->graph->pages.size() < 2) return false;
    std::swap(ix->graph->pages[0], ix->graph->pages[1]);
    return true;
  });
  for (int kind = 0; kind < 4; ++kind) {
    static const char* kKinds[] = {"first + 1", "an anchor fewer", "a neighbour past the end",
                                   "anchors changed"};
    graph_mutation(std::string("node page 0: ") + kKinds[kind],
                   [kind](Store& store, vindex::IndexObject* ix) {
                     auto page = *vindex::DecodeNodePage(*store.Get(ix->graph->pages[0]));
                     auto model = *vector::IvfModel::Deserialize(*store.Get(ix->model));
                     if (kind == 0) page.first += 1;
                     if (kind == 1) {
                       page.anchors.pop_back();
                       page.seg_tags.pop_back();
                       page.rows.pop_back();
                     }
                     if (kind == 2) {
                       auto block = *vector::GraphNodeBlock::Decode(*model, page.block);
                       // Find the first neighbour id in the bytes and point it past the end.
                       Bytes b = page.block;
                       const uint32_t n0 = block->neighbors(0).empty() ? 0 : block->neighbors(0)[0];
                       const uint32_t bad = static_cast<uint32_t>(ix->graph->nodes + 5);
                       bool done = false;
                       for (size_t at = 0; at + 4 <= b.size() && !done; ++at) {
                         uint32_t v;
                         std::memcpy(&v, b.data() + at, 4);
                         if (v != n0) continue;
                         Bytes t = b;
                         std::memcpy(t.data() + at, &bad, 4);
                         auto decoded = vector::GraphNodeBlock::Decode(*model, t);
                         if (decoded.ok() && !(*decoded)->neighbors(0).empty() &&
                             (*decoded)->neighbors(0)[0] == bad) {
                           page.block = t;
                           done = true;
                         }
                       }
                       if (!done) return false;
                     }
                     if (kind == 3) {
                       for (auto& a : page.anchors) a += 100000;
                     }
                     ix->graph->pages[0] = *store.Put(vindex::EncodeNodePage(page));
                     return true;
                   });
  }
  // Directory pages and buckets of the IVF index.
  auto dir_mutation = [&](const std::string& name,
                          const std::function<bool(Store&, vindex::DirPage*)>& edit) {
    index_mutation("emb", "directory page: " + name, [edit](Store& store, vindex::IndexObject* ix) {
      auto page = *vindex::DecodeDirPage(*store.Get(ix->pages[0]));
      if (!edit(store, &page)) return false;
      auto bytes = vindex::EncodeDirPage(page);
      if (!bytes.ok()) return false;
      ix->pages[0] = *store.Put(*bytes);
      return true;
    });
  };
  dir_mutation("cells 0 and 1 swapped", [](Store&, vindex::DirPage* p) {
    std::swap(p->buckets[0], p->buckets[1]);
    return true;
  });
  dir_mutation("a bucket left out", [](Store&, vindex::DirPage* p) {
    p->buckets[0].pop_back();
    return true;
  });
  dir_mutation("a bucket listed twice", [](Store&, vindex::DirPage* p) {
    p->buckets[1].push_back(p->buckets[1][0]);
    return true;
  });
  dir_mutation("a cell fewer", [](Store&, vindex::DirPage* p) {
    p->buckets.pop_back();
    return true;
  });
  dir_mutation("a cell more", [](Store&, vindex::DirPage* p) {
    p->buckets.emplace_back();
    return true;
  });
  dir_mutation("starts at 1024", [](Store&, vindex::DirPage* p) {
    p->first = 1024;
    return true;
  });
  dir_mutation("a bucket is missing", [](Store&, vindex::DirPage* p) {
    p->buckets[0][0] = ObjectId::Of("no such bucket");
    return true;
  });
  dir_mutation("a bucket is the model", [](Store& store, vindex::DirPage* p) {
    dataset::Manifest m = HeadManifest(store);
    p->buckets[0][0] = vindex::DecodeIndex(*store.Get(m.indexes["emb"]))->model;
    return true;
  });
  for (int kind = 0; kind < 6; ++kind) {
    static const char* kKinds[] = {"cell + 1",        "an entry more", "an entry fewer",
                                   "another's codes", "rows past end", "anchors changed"};
    dir_mutation(std::string("bucket of cell 0: ") + kKinds[kind],
                 [kind](Store& store, vindex::DirPage* p) {
                   auto b = *vindex::DecodeBucket(*store.Get(p->buckets[0][0]));
                   if (kind == 0) b.cell += 1;
                   if (kind == 1) {
                     b.anchors.push_back(b.anchors.back());
                     b.seg_tags.push_back(b.seg_tags.back());
                     b.rows.push_back(b.rows.back());
                   }
                   if (kind == 2) {
                     b.anchors.pop_back();
                     b.seg_tags.pop_back();
                     b.rows.pop_back();
                   }
                   if (kind == 3)
                     b.codes = vindex::DecodeBucket(*store.Get(p->buckets[1][0]))->codes;
                   if (kind == 4) {
                     for (auto& r : b.rows) r += 100000;
                   }
                   if (kind == 5) {
                     for (auto& a : b.anchors) a += 100000;
                   }
                   p->buckets[0][0] = *store.Put(vindex::EncodeBucket(b));
                   return true;
                 });
  }
}

std::vector<Mutation> AllMutations() {
  std::vector<Mutation> out;
  AddLeafMutations(&out);
  AddNodeMutations(&out);
  AddManifestMutations(&out);
  AddSegmentMutations(&out);
  AddTombstoneMutations(&out);
  AddSpatialMutations(&out);
  return out;
}

struct Outcome {
  bool applied = false;
  bool verify_ok = false;
  std::string verify_problem;  // the first
  Status read;
};

// The manifests of the base dataset (all of them read in full by the first test).
const std::set<ObjectId>& BaseVersions() {
  static const std::set<ObjectId>* versions = [] {
    auto* out = new std::set<ObjectId>;
    auto ds = *Dataset::Open(StoreAtBase(), kName);
    EXPECT_TRUE(ds->History([&](const CommitInfo& c) {
                    out->insert(c.manifest);
                    return true;
                  }).ok());
    return out;
  }();
  return *versions;
}

// Applies `mutation` and runs verify; reads every changed version when verify passes
// (what the promise is about) or when `always_read`.
Outcome RunMutation(const Mutation& mutation, bool always_read = false) {
  Outcome o;
  const std::set<ObjectId>& base_versions = BaseVersions();
  auto store = StoreAtBase();
  Status s = mutation.apply(*store);
  if (!s.ok()) return o;
  o.applied = true;
  auto report = Verify(*store, kName);
  EXPECT_TRUE(report.ok()) << report.status().ToString();
  o.verify_ok = report.ok() && report->problems.empty();
  if (report.ok() && !report->problems.empty()) o.verify_problem = report->problems[0];
  if (o.verify_ok || always_read) o.read = ReadEverything(store, base_versions);
  return o;
}

TEST(VerifyMutations, TheBaseDatasetIsIntactAndReadable) {
  auto store = StoreAtBase();
  auto report = Verify(*store, kName);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->problems.empty()) << report->problems[0];
  Status read = ReadEverything(store);
  EXPECT_TRUE(read.ok()) << read.ToString();
  EXPECT_EQ(BaseVersions().size(), 7u);
  // The base has what the mutations need: a two-level index, a paged tombstone leaf and
  // both spatial indexes.
  dataset::Manifest m = HeadManifest(*store);
  EXPECT_EQ(IndexOf(m).height, 2u);
  EXPECT_TRUE(TombstonesOf(m).is_paged());
  EXPECT_EQ(m.indexes.size(), 2u);
}

// Runs the mutations whose name contains one of `names`: verify must flag each, and a
// read of the changed version must fail as corrupt. Returns how many were applied.
int ExpectFlaggedAndCorruptOnRead(std::initializer_list<std::string_view> names) {
  int tried = 0;
  for (const Mutation& mutation : AllMutations()) {
    if (std::none_of(names.begin(), names.end(), [&](std::string_view n) {
          return mutation.name.find(n) != std::string::npos;
        })) {
      continue;
    }
    Outcome o = RunMutation(mutation, /*always_read=*/true);
    if (!o.applied) continue;
    ++tried;
    EXPECT_FALSE(o.verify_ok) << mutation.name;
    EXPECT_EQ(o.read.code(), StatusCode::kCorrupt) << mutation.name << ": " << o.read.ToString();
  }
  return tried;
}

// The audit's finding: a leaf entry pointing past the end of its segment passed verify
// while reads refused it.
TEST(VerifyMutations, VerifyCatchesLeafEntryPastSegmentEnd) {
  EXPECT_GE(ExpectFlaggedAndCorruptOnRead({"past its segment's end", "half its rows"}), 20);
}

// A segment that does not decode as the schema declares its field (an index entry naming
// another field's segment, a segment of another type) is damage: verify finds it and
// reads report corrupt, not invalid_argument.
TEST(VerifyMutations, SegmentOfAnotherTypeIsCorruptOnRead) {
  EXPECT_GE(ExpectFlaggedAndCorruptOnRead({"segment of field", "another type"}), 8);
}

// An id of one spatial kind listed where another belongs (a model as a bucket) must be
// decoded as what the listing says, not served from the handle's cache as the object it
// really is: search then reports the bytes as a malformed bucket.
TEST(VerifyMutations, SpatialObjectInAnotherRoleIsNotServedFromTheCacheAsIt) {
  for (const Mutation& mutation : AllMutations()) {
    if (mutation.name.find("a bucket is the model") == std::string::npos) continue;
    Outcome o = RunMutation(mutation, /*always_read=*/true);
    ASSERT_TRUE(o.applied);
    EXPECT_FALSE(o.verify_ok);
    EXPECT_EQ(o.read.code(), StatusCode::kCorrupt) << o.read.ToString();
    EXPECT_EQ(o.read.message().find("holds cell"), std::string::npos) << o.read.ToString();
    EXPECT_NE(o.read.message().find("spatial bucket"), std::string::npos) << o.read.ToString();
  }
}

// "verify ok" means every read of every version succeeds, for every mutation of every
// object kind; and verify finds what reads refuse.
TEST(VerifyMutations, VerifyOkMeansEveryReadOfEveryVersionSucceeds) {
  int applied = 0, flagged = 0;
  std::map<std::string, int> kinds;
  for (const Mutation& mutation : AllMutations()) {
    Outcome o = RunMutation(mutation);
    if (!o.applied) continue;
    ++applied;
    ++kinds[mutation.name.substr(0, mutation.name.find(':'))];
    if (!o.verify_ok) ++flagged;
    if (o.verify_ok) {
      EXPECT_TRUE(o.read.ok()) << mutation.name
                               << ": verify passed but a read failed: " << o.read.ToString();
    }
  }
  std::printf(
      "%d mutations applied (%zu object kinds), %d flagged by verify; every version "
      "of the other %d read in full\n",
      applied, kinds.size(), flagged, applied - flagged);
  EXPECT_GE(applied, 200);
  EXPECT_GE(applied - flagged, 50);
  EXPECT_GE(kinds.size(), 8u);
}

}  // namespace
}  // namespace dreamdb
