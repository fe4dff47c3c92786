// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Compaction (spec/14-semantics.md §18): the head's records rewritten into few large
// segments and a fresh anchor index, in one commit with the head's content.
//
// Design notes
//
// Definitions. The *source* is the head the compaction read. A field is *rewritten* when
// its live values are copied, in anchor order, into new segments of about 64 MiB; a field
// stored as sq8 (raw: false, spec/12 §9) is *kept*: its index entries keep their
// locations, because re-encoding reconstructions is not guaranteed to give the same values.
//
// Invariants.
//  1. Content: the new index has the source's anchors; each anchor has a location for
//     exactly the schema fields it had one for in the source, and the value there is the
//     source's value (the same bytes for rewritten fields: rows are copied, never decoded
//     and re-encoded lossily). Tombstones, schema, dropped names, meta and counters are
//     the source's.
//  2. Determinism: a rewritten field's segments depend only on the field's values in anchor
//     order (a segment is cut after the row that brings it to 64 MiB), so compacting a
//     compacted head writes the same ids and lands nothing.
//  3. Spatial indexes: an entry that is live in the source (its anchor's source location
//     for the field equals the entry's) gets the anchor's new location. A bucket entry
//     that is stale in the source is dropped with its code (a bucket left empty leaves its
//     cell's list): it could never be live again, since the result and every version
//     after it locate values in the new segments, and the source's segments it names go
//     once GC no longer keeps the versions before (so do a deleted record's codes). Graph
//     nodes are kept, stale ones too (they route searches); live codes, models and graph
//     neighbour lists are copied unchanged.
//  4. Commit: segments are put first (journaled: a failed compaction removes the ones it
//     created); index pages, spatial objects and the manifest are built only on the source
//     itself. If the branch moved (a concurrent commit landed), the attempt fails and the
//     whole compaction starts again from the new head (bounded by max_attempts).
//
// Cost: each source segment is fetched once per field run of anchors that use it; the 16
// most recently used (at most 512 MiB decoded) are kept, so the interleaving that replaced
// records cause does not fetch a segment again per switch.
//
// Thread safety: Dataset::Compact may run concurrently with any other handle's commits
// (invariant 4); the handle's own commits are serialized with it by the commit lock.

#include <algorithm>
#include <array>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <unordered_map>

#include "dreamdb/dataset.h"
#include "src/base/encoding.h"
#include "src/btree/btree.h"
#include "src/columnar/segment.h"
#include "src/dataset/dataset_impl.h"
#include "src/dataset/index/internal.h"
#include "src/dataset/vector_index.h"

namespace dreamdb {
namespace {

constexpr uint64_t kTargetBytes = uint64_t{64} << 20;  // as appends (spec/14 §2.2)

// One field's locations for every anchor of the source, column-wise.
struct FieldLocs {
  std::string name;
  const FieldSpec* spec = nullptr;  // null: a dropped field (its locations are dropped)
  std::vector<ObjectId> segments;   // distinct
  std::unordered_map<ObjectId, uint32_t> seg_index;
  std::vector<uint32_t> seg;  // per anchor: into segments, or kNoSegment
  std::vector<uint32_t> row;
};

struct Source {
  std::vector<uint64_t> anchors;
  std::vector<FieldLocs> fields;
  uint64_t pages = 0;
  std::set<ObjectId> all_segments;  // every field's, dropped ones included
};

Result<Source> Gather(DatasetImpl& impl, const Version& v) {
  Source src;
  std::map<std::string, size_t> by_name;
  btree::PageVisitor count_pages = [&](const ObjectId&, uint32_t) -> Result<bool> {
    ++src.pages;
    return true;
  };
  RETURN_IF_ERROR(btree::VisitLeaves(
      impl.store(), impl.pages(), v.index,
      [&](const btree::Leaf& leaf) -> Status {
        const size_t before = src.anchors.size();
        src.anchors.insert(src.anchors.end(), leaf.anchors.begin(), leaf.anchors.end());
        for (const btree::LeafField& lf : leaf.fields) {
          auto [it, fresh] = by_name.try_emplace(lf.name, src.fields.size());
          if (fresh) {
            FieldLocs f;
            f.name = lf.name;
            f.spec = v.manifest.schema.Find(lf.name);
            src.fields.push_back(std::move(f));
          }
          FieldLocs& f = src.fields[it->second];
          f.seg.resize(before, btree::kNoSegment);
          f.row.resize(before, 0);
          for (size_t i = 0; i < leaf.size(); ++i) {
            if (lf.seg[i] == btree::kNoSegment) {
              f.seg.push_back(btree::kNoSegment);
              f.row.push_back(0);
              continue;
            }
            const ObjectId& id = lf.segments[lf.seg[i]];
            src.all_segments.insert(id);
            auto [s, added] = f.seg_index.try_emplace(id, static_cast<uint32_t>(f.segments.size()));
            if (added) f.segments.push_back(id);
            f.seg.push_back(s->second);
            f.row.push_back(lf.row[i]);
          }
        }
        return Status::Ok();
      },
      &count_pages));
  for (FieldLocs& f : src.fields) {
    f.seg.resize(src.anchors.size(), btree::kNoSegment);
    f.row.resize(src.anchors.size(), 0);
  }
  return src;
}

Result<uint64_t> SegmentBytes(Store& store, const std::set<ObjectId>& ids) {
  uint64_t total = 0;
  for (const ObjectId& id : ids) {
    ASSIGN_OR_RETURN(ObjectInfo info, store.Head(id));
    total += info.size_bytes;
  }
  return total;
}

// The rewritten field: its new segments and, per anchor, the new location.
struct Rewritten {
  std::vector<ObjectId> segments;
  std::vector<uint32_t> seg;
  std::vector<uint32_t> row;
};

class FieldWriter {
 public:
  FieldWriter(DatasetImpl& impl, const FieldLocs& f, const CompactOptions& options,
              uint64_t* written)
      : impl_(impl), f_(f), options_(options), written_(written), piece_(*f.spec) {}

  Result<Rewritten> Run() {
    const size_t n = f_.seg.size();
    out_.seg.assign(n, btree::kNoSegment);
    out_.row.assign(n, 0);
    for (size_t i = 0; i < n; ++i) {
      if (f_.seg[i] == btree::kNoSegment) continue;
      ASSIGN_OR_RETURN(const Column* col, Load(f_.segments[f_.seg[i]]));
      if (f_.row[i] >= col->length()) {
        return Corrupt("the index points at row " + std::to_string(f_.row[i]) + " of segment " +
                       f_.segments[f_.seg[i]].ToString() + " which has " +
                       std::to_string(col->length()) + " rows");
      }
      out_.seg[i] = static_cast<uint32_t>(out_.segments.size());
      out_.row[i] = static_cast<uint32_t>(piece_.length());
      piece_.AppendRange(*col, f_.row[i], f_.row[i] + 1);
      if (piece_.ByteSize() >= kTargetBytes || piece_.length() >= columnar::kSegmentMaxRows) {
        RETURN_IF_ERROR(Flush());
      }
    }
    if (piece_.length() > 0) RETURN_IF_ERROR(Flush());
    return std::move(out_);
  }

 private:
  // The decoded source segment `id`. Replaced records interleave their batch's segment
  // with the older ones in anchor order, so the last few segments are kept (bounded by
  // count and bytes) and each is fetched once, not once per switch.
  Result<const Column*> Load(const ObjectId& id) {
    for (auto it = recent_.begin(); it != recent_.end(); ++it) {
      if (it->first == id) {
        recent_.splice(recent_.begin(), recent_, it);
        return recent_.front().second.get();
      }
    }
    std::shared_ptr<const Column> col = impl_.segments()->Get(id);
    if (col == nullptr) {
      auto bytes = impl_.store().Get(id);
      if (!bytes.ok()) return bytes.status().WithContext("segment for field " + Quote(f_.name));
      auto decoded = columnar::DecodeSegment(*bytes, *f_.spec);
      if (!decoded.ok()) return SegmentReadError(decoded.status(), id);
      col = std::make_shared<const Column>(std::move(*decoded));
    }
    recent_bytes_ += col->ByteSize();
    recent_.emplace_front(id, std::move(col));
    while (recent_.size() > 1 &&
           (recent_.size() > kRecentSegments || recent_bytes_ > kRecentBytes)) {
      recent_bytes_ -= recent_.back().second->ByteSize();
      recent_.pop_back();
    }
    return recent_.front().second.get();
  }

  Status Flush() {
    ASSIGN_OR_RETURN(Bytes bytes, columnar::EncodeSegment(piece_, *f_.spec));
    ASSIGN_OR_RETURN(ObjectId id, impl_.store().Put(bytes));
    out_.segments.push_back(id);
    ++*written_;
    if (options_.progress) options_.progress("write", *written_);
    piece_ = Column(*f_.spec);
    return Status::Ok();
  }

  DatasetImpl& impl_;
  const FieldLocs& f_;
  const CompactOptions& options_;
  uint64_t* written_;
  Column piece_;
  Rewritten out_;
  static constexpr size_t kRecentSegments = 16;
  static constexpr uint64_t kRecentBytes = uint64_t{512} << 20;
  std::list<std::pair<ObjectId, std::shared_ptr<const Column>>> recent_;  // most recent first
  uint64_t recent_bytes_ = 0;
};

// Old and new location of one anchor's value of an indexed field (tags per spec/21 §5.2).
struct Moved {
  uint64_t old_tag;
  uint32_t old_row;
  uint64_t new_tag;
  uint32_t new_row;
};

// Spatial index `ix_id` with every live entry moved to its new location and the stale
// bucket entries dropped (invariant 3); `moved` holds, per anchor with a value of the field
// in the source, its old and new location. Returns the new index object's id.
Result<ObjectId> MoveIndex(const DatasetImpl& impl, const ObjectId& ix_id,
                           const std::unordered_map<uint64_t, Moved>& moved, uint64_t* written) {
  Store& store = impl.store();
  // The new location of the entry at (anchor, tag, row) when it is live in the source.
  auto live = [&](uint64_t anchor, uint64_t tag, uint32_t row) -> const Moved* {
    auto it = moved.find(anchor);
    if (it == moved.end() || it->second.old_tag != tag || it->second.old_row != row) {
      return nullptr;
    }
    return &it->second;
  };
  auto put = [&](const Bytes& bytes) -> Result<ObjectId> {
    ++*written;
    return store.Put(bytes);
  };
  ASSIGN_OR_RETURN(Bytes ix_bytes, store.Get(ix_id));
  ASSIGN_OR_RETURN(vindex::IndexObject ix, vindex::DecodeIndex(ix_bytes));
  ASSIGN_OR_RETURN(vindex::ModelPtr model, vindex::LoadModel(impl, ix.model));
  // Per source bucket: its rewrite (none when every entry was stale) and the entries dropped.
  struct Rewrite {
    std::optional<ObjectId> id;
    uint64_t dropped = 0;
  };
  std::unordered_map<ObjectId, Rewrite> buckets;
  for (ObjectId& page_id : ix.pages) {
    ASSIGN_OR_RETURN(Bytes page_bytes, store.Get(page_id));
    ASSIGN_OR_RETURN(vindex::DirPage page, vindex::DecodeDirPage(page_bytes));
    for (std::vector<ObjectId>& cell : page.buckets) {
      std::vector<ObjectId> kept;
      for (const ObjectId& bucket_id : cell) {
        auto done = buckets.find(bucket_id);
        if (done == buckets.end()) {
          ASSIGN_OR_RETURN(Bytes b_bytes, store.Get(bucket_id));
          ASSIGN_OR_RETURN(vindex::Bucket b, vindex::DecodeBucket(b_bytes));
          RETURN_IF_ERROR(vindex::CheckBucketCodes(*model, b, bucket_id));
          vindex::Bucket out;
          out.cell = b.cell;
          std::vector<uint32_t> positions;
          for (size_t i = 0; i < b.anchors.size(); ++i) {
            const Moved* m = live(b.anchors[i], b.seg_tags[i], b.rows[i]);
            if (m == nullptr) continue;
            out.anchors.push_back(b.anchors[i]);
            out.seg_tags.push_back(m->new_tag);
            out.rows.push_back(m->new_row);
            positions.push_back(static_cast<uint32_t>(i));
          }
          Rewrite w;
          w.dropped = b.anchors.size() - positions.size();
          if (!positions.empty()) {
            if (w.dropped == 0) {
              out.codes = std::move(b.codes);
            } else {
              ASSIGN_OR_RETURN(out.codes, model->SelectFromCell(b.codes, positions));
            }
            ASSIGN_OR_RETURN(w.id, put(vindex::EncodeBucket(out)));
          }
          done = buckets.emplace(bucket_id, w).first;
        }
        ix.entries -= done->second.dropped;
        if (done->second.id) {
          kept.push_back(*done->second.id);
        } else {
          --ix.buckets;
        }
      }
      cell = std::move(kept);
    }
    ASSIGN_OR_RETURN(Bytes encoded, vindex::EncodeDirPage(page));
    ASSIGN_OR_RETURN(page_id, put(encoded));
  }
  if (ix.graph) {
    for (ObjectId& page_id : ix.graph->pages) {
      ASSIGN_OR_RETURN(Bytes page_bytes, store.Get(page_id));
      ASSIGN_OR_RETURN(vindex::NodePage page, vindex::DecodeNodePage(page_bytes));
      for (size_t i = 0; i < page.anchors.size(); ++i) {
        if (const Moved* m = live(page.anchors[i], page.seg_tags[i], page.rows[i])) {
          page.seg_tags[i] = m->new_tag;
          page.rows[i] = m->new_row;
        }
      }
      ASSIGN_OR_RETURN(page_id, put(vindex::EncodeNodePage(page)));
    }
  }
  ix.parents = {ix_id};
  ASSIGN_OR_RETURN(Bytes encoded, vindex::EncodeIndex(ix));
  return put(encoded);
}

struct Prepared {
  btree::Batch batch;
  std::vector<size_t> rewritten;  // indexes into source.fields
  std::vector<Rewritten> moves;   // parallel to rewritten
  std::set<ObjectId> segments_after;
};

}  // namespace

Result<CommitInfo> Dataset::Compact(const CompactOptions& options, CompactReport* report) {
  if (read_only()) {
    return PermissionDenied("dataset " + Quote(name()) +
                            " is open read-only (at a snapshot or manifest); open a branch to "
                            "compact it");
  }
  if (options.max_attempts == 0) return InvalidArgument("compact: max_attempts is 0");
  CompactReport local;
  CompactReport& r = report != nullptr ? *report : local;
  r = CompactReport{};
  DatasetImpl& impl = *impl_;
  for (uint32_t attempt = 1;; ++attempt) {
    r.attempts = attempt;
    RETURN_IF_ERROR(Refresh());
    std::shared_ptr<const Version> source = impl.current();
    bool moved = false;
    auto result = impl.Mutation([&]() -> Result<CommitInfo> {
      ASSIGN_OR_RETURN(Source src, Gather(impl, *source));
      r.records = src.anchors.size();
      r.pages_before = src.pages;
      r.segments_before = src.all_segments.size();
      ASSIGN_OR_RETURN(r.segment_bytes_before, SegmentBytes(impl.store(), src.all_segments));
      if (options.progress) options.progress("read", src.anchors.size());
      // Segments first (journaled), one field at a time.
      Prepared prep;
      prep.batch.anchors = src.anchors;
      uint64_t written = 0;
      for (size_t fi = 0; fi < src.fields.size(); ++fi) {
        const FieldLocs& f = src.fields[fi];
        if (f.spec == nullptr) continue;  // dropped: its locations go
        btree::BatchField bf;
        bf.name = f.name;
        if (columnar::UsesSq8(*f.spec)) {
          bf.segments = f.segments;
          bf.seg = f.seg;
          bf.row = f.row;
          prep.segments_after.insert(f.segments.begin(), f.segments.end());
        } else {
          ASSIGN_OR_RETURN(Rewritten w, FieldWriter(impl, f, options, &written).Run());
          bf.segments = w.segments;
          bf.seg = w.seg;
          bf.row = w.row;
          prep.segments_after.insert(w.segments.begin(), w.segments.end());
          prep.rewritten.push_back(fi);
          prep.moves.push_back(std::move(w));
        }
        if (!bf.segments.empty()) prep.batch.fields.push_back(std::move(bf));
      }
      r.segments_after = prep.segments_after.size();
      ASSIGN_OR_RETURN(r.segment_bytes_after, SegmentBytes(impl.store(), prep.segments_after));
      if (options.progress) options.progress("commit", written);
      CommitOptions commit;
      commit.message = options.message.empty() ? "compact" : options.message;
      commit.writer = options.writer;
      return impl.Commit(
          [&](const Version& base, uint32_t) -> Result<DatasetImpl::Built> {
            if (base.id != source->id) {
              moved = true;
              return Conflict("compact: branch " + Quote(branch()) + " of dataset " +
                              Quote(name()) + " moved while it was compacted");
            }
            DatasetImpl::Built out;
            btree::WriteStats ws;
            btree::IndexRef index;
            if (!prep.batch.anchors.empty()) {
              ASSIGN_OR_RETURN(index, btree::Upsert(impl.store(), impl.pages(),
                                                    btree::IndexRef::Empty(), prep.batch, &ws));
            }
            out.objects_written = ws.pages_written;
            r.pages_after = 0;
            RETURN_IF_ERROR(btree::VisitPages(impl.store(), impl.pages(), index,
                                              [&](const ObjectId&, uint32_t) -> Result<bool> {
                                                ++r.pages_after;
                                                return true;
                                              }));
            if (options.progress) options.progress("index", r.pages_after);
            dataset::Manifest m = base.manifest;
            m.index = btree::IndexRefToCbor(index);
            m.delta = dataset::Delta{};
            if (index == base.index) {
              out.fast_forward = base.id;  // already compact: nothing lands
              return out;
            }
            // Every index: rewritten fields' entries move; every field's stale bucket
            // entries go (invariant 3). A field without a value in C (none in the source,
            // or a dropped name's) keeps none.
            for (auto& [field, ix_id] : m.indexes) {
              std::unordered_map<uint64_t, Moved> moved_locs;
              for (size_t fi = 0; fi < src.fields.size(); ++fi) {
                const FieldLocs& f = src.fields[fi];
                if (f.name != field || f.spec == nullptr) continue;
                auto k = std::find(prep.rewritten.begin(), prep.rewritten.end(), fi);
                const Rewritten* w =
                    k == prep.rewritten.end() ? nullptr : &prep.moves[k - prep.rewritten.begin()];
                moved_locs.reserve(src.anchors.size());
                for (size_t i = 0; i < src.anchors.size(); ++i) {
                  if (f.seg[i] == btree::kNoSegment) continue;
                  const uint64_t tag = vindex::SegmentTag(f.segments[f.seg[i]]);
                  moved_locs.emplace(
                      src.anchors[i],
                      w == nullptr  // kept (sq8): the location stays
                          ? Moved{tag, f.row[i], tag, f.row[i]}
                          : Moved{tag, f.row[i], vindex::SegmentTag(w->segments[w->seg[i]]),
                                  w->row[i]});
                }
              }
              ASSIGN_OR_RETURN(ix_id, MoveIndex(impl, ix_id, moved_locs, &out.objects_written));
              ++r.spatial_indexes;
            }
            out.manifest = std::move(m);
            return out;
          },
          commit);
    });
    if (result.ok()) {
      r.changed = result->attempts > 0 && result->manifest != source->id;
      if (!r.changed) {
        result->attempts = 0;
        r.spatial_indexes = 0;
      }
      return result;
    }
    if (!moved || attempt >= options.max_attempts) {
      if (moved) {
        return Conflict("compact: branch " + Quote(branch()) + " of dataset " + Quote(name()) +
                        " moved during each of " + std::to_string(attempt) +
                        " compactions (concurrent commits); nothing was changed, run it again");
      }
      return result.status();
    }
  }
}

}  // namespace dreamdb
