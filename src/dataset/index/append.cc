// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Spatial indexes: the stored defaults, assignment of appended and merged values
// (spec/21 §6.1, §6.6, §7.9).

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <queue>
#include <random>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "src/base/encoding.h"
#include "src/columnar/segment.h"
#include "src/dataset/dataset_impl.h"
#include "src/dataset/index/internal.h"
#include "src/dataset/index/parallel.h"
#include "src/index/graph/graph.h"
#include "src/index/ivf.h"
#include "src/index/kernels/distance.h"
#include "src/index/metric.h"

namespace dreamdb::vindex {

DefaultSetting DefaultSettingOf(const IndexObject& ix, double recall) {
  DefaultSetting d;
  if (ix.calibration) {
    d.calibrated = true;
    const uint32_t s = recall > 0 ? PickSetting(*ix.calibration, recall) : ix.calibration->setting;
    (ix.graph ? d.ef : d.nprobe) = s;
  } else if (ix.graph) {
    d.ef = vector::DefaultEf(10);
  } else {
    d.nprobe = ix.nprobe != 0 ? ix.nprobe : vector::DefaultNprobe(ix.cells);
  }
  d.nprobe = std::min(d.nprobe, ix.cells);
  return d;
}

// ---------------------------------------------------------------------------------------
// Append assignment (spec/21 §6.1)

Status IndexAppend(DatasetImpl& impl, const Version& base, const std::vector<uint64_t>& row_anchors,
                   const std::vector<AppendedVectors>& vecs, dataset::Manifest* m,
                   uint64_t* objects_written) {
  m->indexes = base.manifest.indexes;
  for (auto it = m->indexes.begin(); it != m->indexes.end();) {
    const FieldSpec* f = m->schema.Find(it->first);
    if (f == nullptr || f->type != FieldType::kEmbedding) {
      it = m->indexes.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& v : vecs) {
    auto found = m->indexes.find(v.field);
    if (found == m->indexes.end()) continue;
    ASSIGN_OR_RETURN(auto ix, LoadIndex(impl, found->second));
    ASSIGN_OR_RETURN(ModelPtr model, LoadModel(impl, ix->model));
    const size_t dim = ix->dim;
    const Column& col = *v.values;
    if (col.field().dim != dim) {
      return Internal("field " + Quote(v.field) + " has dim " + std::to_string(col.field().dim) +
                      " but its index has " + std::to_string(dim));
    }
    std::vector<uint64_t> rows;
    const bool cosine = model->params().metric == vector::Metric::kCosine;
    for (uint64_t r = 0; r < col.length(); ++r) {
      // A zero vector has no direction: cosine indexes leave it out (spec/21 §6.3).
      // Non-finite values (older versions' data met by a build's rebase; appends refuse
      // them) have no cell (spec/21 §6.4).
      if (col.IsValid(r) && AllFinite(col.FloatsAt(r).data(), dim) &&
          !(cosine && vector::NormSqr(col.FloatsAt(r).data(), dim) == 0)) {
        rows.push_back(r);
      }
    }
    if (rows.empty()) continue;
    std::vector<float> data(rows.size() * dim);
    for (size_t i = 0; i < rows.size(); ++i) {
      std::memcpy(data.data() + i * dim, col.FloatsAt(rows[i]).data(), dim * sizeof(float));
    }
    std::vector<uint32_t> cells(rows.size());
    {
      Status s = model->Assign(data.data(), rows.size(), cells.data());
      if (!s.ok()) return s.WithContext("field " + Quote(v.field));
    }
    std::map<uint32_t, std::vector<size_t>> by_cell;
    for (size_t i = 0; i < rows.size(); ++i) by_cell[cells[i]].push_back(i);
    IndexObject next = *ix;
    next.parents = {found->second};
    std::map<uint32_t, DirPage> touched;
    for (auto& [cell, members] : by_cell) {
      Bucket b;
      b.cell = cell;
      std::vector<float> cv(members.size() * dim);
      for (size_t j = 0; j < members.size(); ++j) {
        size_t i = members[j];
        uint64_t r = rows[i];
        b.anchors.push_back(row_anchors[r]);
        b.seg_tags.push_back(SegmentTag((*v.segments)[(*v.seg)[r]]));
        b.rows.push_back((*v.row)[r]);
        std::memcpy(cv.data() + j * dim, data.data() + i * dim, dim * sizeof(float));
      }
      ASSIGN_OR_RETURN(b.codes, model->EncodeCell(cell, cv.data(), members.size()));
      uint32_t p = cell / kCellsPerPage;
      auto t = touched.find(p);
      if (t == touched.end()) {
        ASSIGN_OR_RETURN(auto page, LoadPage(impl, ix->pages[p]));
        t = touched.emplace(p, *page).first;
      }
      std::vector<ObjectId>& list = t->second.buckets[cell - p * kCellsPerPage];
      next.entries += members.size();
      if (list.size() + 1 >= kMaxBucketsPerCell) {
        // Compaction (spec/21 §5.5): the cell's buckets and the new entries become one
        // bucket, so a query never fetches more than kMaxBucketsPerCell per cell.
        ASSIGN_OR_RETURN(auto olds, FetchBuckets(impl, list));
        Bucket merged;
        merged.cell = cell;
        for (size_t i = 0; i <= olds.size(); ++i) {
          const Bucket& part = i < olds.size() ? *olds[i] : b;
          merged.anchors.insert(merged.anchors.end(), part.anchors.begin(), part.anchors.end());
          merged.seg_tags.insert(merged.seg_tags.end(), part.seg_tags.begin(), part.seg_tags.end());
          merged.rows.insert(merged.rows.end(), part.rows.begin(), part.rows.end());
          if (i == 0) {
            merged.codes = part.codes;
          } else {
            RETURN_IF_ERROR(model->AppendCodes(&merged.codes, part.codes));
          }
        }
        next.buckets -= list.size();
        b = std::move(merged);
        list.clear();
      }
      ASSIGN_OR_RETURN(ObjectId bid, impl.store().Put(EncodeBucket(b)));
      ++*objects_written;
      list.push_back(bid);
      next.buckets += 1;
    }
    for (auto& [p, page] : touched) {
      ASSIGN_OR_RETURN(Bytes pb, EncodeDirPage(page));
      ASSIGN_OR_RETURN(next.pages[p], impl.store().Put(pb));
      ++*objects_written;
    }
    ASSIGN_OR_RETURN(Bytes ib, EncodeIndex(next));
    ASSIGN_OR_RETURN(ObjectId nid, impl.store().Put(ib));
    ++*objects_written;
    found->second = nid;
  }
  return Status::Ok();
}

Status IndexMerged(DatasetImpl& impl, const btree::IndexRef& merged,
                   const std::map<std::string, std::vector<uint64_t>>& changed,
                   dataset::Manifest* m, uint64_t* objects_written,
                   std::vector<std::string>* updated) {
  constexpr size_t kChunk = 65536;
  btree::Tree tree(&impl.store(), impl.pages(), merged);
  for (const auto& [field, anchors] : changed) {
    if (anchors.empty() || m->indexes.count(field) == 0) continue;
    const FieldSpec* spec = m->schema.Find(field);
    if (spec == nullptr || spec->type != FieldType::kEmbedding) continue;
    for (size_t first = 0; first < anchors.size(); first += kChunk) {
      const size_t n = std::min(kChunk, anchors.size() - first);
      std::vector<uint64_t> chunk(anchors.begin() + static_cast<ptrdiff_t>(first),
                                  anchors.begin() + static_cast<ptrdiff_t>(first + n));
      ASSIGN_OR_RETURN(auto entries, tree.LookupMany(chunk));
      ASSIGN_OR_RETURN(FieldValues fv, FetchField(impl, entries, *spec));
      Column values(*spec);
      std::vector<ObjectId> segments;
      std::unordered_map<ObjectId, uint32_t> seg_of;
      std::vector<uint64_t> row_anchors;
      std::vector<uint32_t> seg, row;
      for (size_t i = 0; i < n; ++i) {
        const btree::FieldLoc* loc = entries[i] ? entries[i]->Find(field) : nullptr;
        if (loc == nullptr || !fv.Has(i)) continue;  // the value was removed
        auto [it, fresh] = seg_of.emplace(loc->segment, static_cast<uint32_t>(segments.size()));
        if (fresh) segments.push_back(loc->segment);
        values.AppendRange(fv.ColumnOf(i), fv.row[i], fv.row[i] + 1);
        row_anchors.push_back(chunk[i]);
        seg.push_back(it->second);
        row.push_back(loc->row);
      }
      if (row_anchors.empty()) continue;
      AppendedVectors vecs{field, &values, &segments, &seg, &row};
      Version base;  // IndexAppend starts from base.manifest.indexes
      base.manifest.indexes = m->indexes;
      RETURN_IF_ERROR(IndexAppend(impl, base, row_anchors, {vecs}, m, objects_written)
                          .WithContext("assigning merged vectors of field " + Quote(field) +
                                       " to its spatial index"));
    }
    updated->push_back(field);
  }
  return Status::Ok();
}

Result<const FieldSpec*> EmbeddingField(const Schema& schema, std::string_view field,
                                        std::string_view op) {
  const FieldSpec* f = schema.Find(field);
  if (f == nullptr) {
    std::string known;
    for (const auto& k : schema.fields()) known += (known.empty() ? "" : ", ") + k.name;
    return InvalidArgument(std::string(op) + ": unknown field " + Quote(field) +
                           " (the schema has: " + known + ")");
  }
  if (f->type != FieldType::kEmbedding) {
    return InvalidArgument(std::string(op) + ": field " + Quote(field) + " is " +
                           std::string(FieldTypeName(f->type)) + ", not an embedding");
  }
  return f;
}

}  // namespace dreamdb::vindex
