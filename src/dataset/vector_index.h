// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Spatial indexes of embedding fields, stored as objects (spec/21-spatial-index.md):
// the spatial-index object, its paged cell directory, bucket objects, and the dataset
// operations built on them (BuildIndex, Search, IndexStatus, assignment during appends).
//
// Object model (spec/21 §3-§5):
//   manifest.indexes[field] -> dreamdb.spatial_index (CBOR)
//       model  -> IVF model object (IvfModel::Serialize bytes, spec/20), shared by every
//                 version until the field is retrained
//       pages  -> dreamdb.spatial_dir pages (CBOR): cell -> [bucket ids], 1024 cells a page
//                 -> bucket objects (binary "DDBSPB01"): one cell's entries of one chunk or
//                    one commit: anchors, location tags, the cell's codes block
//       graph  -> (algorithm "graph" only, spec/21 §4.5) node pages (binary "DDBSPG01"):
//                 nodes' anchors and locations + one spec/22 graph node block each; the
//                 model is the graph's one-cell model and cell 0's buckets hold the vectors
//                 appended since the build (the tail, scanned with FastScan)
// A commit that appends n vectors touching c cells puts c buckets, the touched directory
// pages and one index object: O(n + c) bytes, O(c + pages) objects (a graph: c = 1).
//
// Staleness (spec/21 §6): an entry carries the location (segment tag + row) its vector
// was written at. It is live in a version iff that version's anchor index maps the
// entry's anchor to the same location for the field. Deleted and replaced anchors are
// thereby skipped by every search of every version, with no rewrite of old buckets.
//
// Thread safety: the codecs are pure functions; ObjectCache is thread-safe; the
// operations take a Version (immutable) and may run concurrently.

#ifndef DREAMDB_SRC_DATASET_VECTOR_INDEX_H_
#define DREAMDB_SRC_DATASET_VECTOR_INDEX_H_

#include <any>
#include <cstdint>
#include <cstring>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "dreamdb/column.h"
#include "dreamdb/object_id.h"
#include "dreamdb/search.h"
#include "dreamdb/status.h"
#include "src/base/lru_cache.h"
#include "src/base/store_scope.h"
#include "src/index/ivf.h"

namespace dreamdb {
class DatasetImpl;
struct Version;
namespace dataset {
struct Manifest;
}
namespace btree {
struct IndexRef;
}
}  // namespace dreamdb

namespace dreamdb::vindex {

inline constexpr std::string_view kIndexKind = "dreamdb.spatial_index";
inline constexpr std::string_view kDirKind = "dreamdb.spatial_dir";
inline constexpr std::string_view kBucketMagic = "DDBSPB01";
inline constexpr std::string_view kNodePageMagic = "DDBSPG01";
inline constexpr uint64_t kIndexFormat = 1;
inline constexpr uint32_t kCellsPerPage = 1024;
// An append that would give a cell this many buckets merges them into one (spec/21 §5.5).
inline constexpr size_t kMaxBucketsPerCell = 16;

// One bucket: the entries of one cell added by one chunk (build) or one commit (append).
struct Bucket {
  uint32_t cell = 0;
  std::vector<uint64_t> anchors;
  std::vector<uint64_t> seg_tags;  // per entry: SegmentTag(segment of the vector)
  std::vector<uint32_t> rows;      // per entry: row of the vector in that segment
  Bytes codes;                     // IvfModel::EncodeCell of the entries' vectors, in order
  bool operator==(const Bucket&) const = default;
};

// True when none of x[0..n) is NaN or infinite. Embedding values must be finite
// (spec/10-schema.md §1.6): appends refuse the others, and search and index builds leave
// out the records that older versions stored with them (spec/21-spatial-index.md §6.4).
inline bool AllFinite(const float* x, size_t n) {
  uint32_t bad = 0;  // branch-free, so the compiler vectorizes the scan
  for (size_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, x + i, sizeof(bits));
    bad |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
  }
  return bad == 0;
}

// The first 8 digest bytes of a segment id, little-endian (spec/21 §5.2).
uint64_t SegmentTag(const ObjectId& segment);

Bytes EncodeBucket(const Bucket& b);
// kCorrupt for a bad magic, lengths or checksum; kUnsupported for a newer version.
Result<Bucket> DecodeBucket(ByteView bytes);

struct DirPage {
  uint32_t first = 0;                          // first cell of the page
  std::vector<std::vector<ObjectId>> buckets;  // per cell of the page: its buckets
  bool operator==(const DirPage&) const = default;
};
Result<Bytes> EncodeDirPage(const DirPage& p);
Result<DirPage> DecodeDirPage(ByteView bytes);

// One graph node page (spec/21 §5.6): nodes first .. first + n - 1 with their anchors
// and locations, and the spec/22 node block of those nodes (opaque here; decoded with the
// model by vector::GraphNodeBlock::Decode).
struct NodePage {
  uint32_t first = 0;
  std::vector<uint64_t> anchors;
  std::vector<uint64_t> seg_tags;
  std::vector<uint32_t> rows;
  Bytes block;
  bool operator==(const NodePage&) const = default;
};
Bytes EncodeNodePage(const NodePage& p);
// kCorrupt for a bad magic, lengths or checksum; kUnsupported for a newer version.
Result<NodePage> DecodeNodePage(ByteView bytes);

// The `graph` map of a graph index object (spec/21 §4.5).
struct GraphInfo {
  uint32_t entry = 0;
  uint64_t nodes = 0;
  uint32_t degree = 0;
  uint32_t block = 0;           // nodes per node page
  std::vector<ObjectId> pages;  // node pages
  bool operator==(const GraphInfo&) const = default;
};

// What an index build measured (spec/21 §4.6): recall@k of the index against brute force
// on a sample of the indexed vectors, per setting (ivf/imi/lsh: cells probed; graph: beam
// width), and the setting a search uses by default. Recalls are in units of 10^-4.
struct Calibration {
  uint32_t k = 10;
  uint32_t queries = 0;  // sample size
  uint32_t target = 0;   // the recall the stored setting was chosen for (9500)
  uint32_t setting = 0;  // nprobe or ef of a default search
  std::vector<std::pair<uint32_t, uint32_t>> curve;  // (setting, recall), settings ascending
  bool operator==(const Calibration&) const = default;
};

// The smallest setting of the curve whose measured recall is at least `target` plus a
// margin for the sample's error (min(0.01, (1 - target) / 2)); the largest setting when
// none is. `target` in 0..1.
uint32_t PickSetting(const Calibration& c, double target);

struct IndexObject {
  std::string field;
  std::string algorithm = "ivf";
  std::string metric;
  uint32_t bits = 0;
  uint32_t dim = 0;
  uint32_t cells = 0;
  uint32_t nprobe = 0;  // default cells probed per query
  ObjectId model;
  std::vector<ObjectId> parents;  // the index object this one derives from (0 or 1)
  std::vector<ObjectId> pages;    // directory pages, page i covers cells [1024 i, 1024 (i+1))
  uint64_t entries = 0;
  uint64_t buckets = 0;
  std::string quantizer = "rabitq";        // key present only for "pq4"
  std::optional<GraphInfo> graph;          // present iff algorithm == "graph"
  std::optional<Calibration> calibration;  // absent: written before calibration, or skipped
  bool operator==(const IndexObject&) const = default;
};
Result<Bytes> EncodeIndex(const IndexObject& ix);
Result<IndexObject> DecodeIndex(ByteView bytes);

// Where a stored vector is: its segment and row (the key of the handle's row cache).
struct RowKey {
  ObjectId segment;
  uint32_t row = 0;
  bool operator==(const RowKey&) const = default;
};
struct RowKeyHash {
  size_t operator()(const RowKey& k) const {
    const size_t a = std::hash<ObjectId>()(k.segment);
    return a ^ (uint64_t{k.row} + 0x9e3779b97f4a7c15ULL + (a << 6) + (a >> 2));
  }
};

// The entries of one bucket or graph node page as one version sees them (spec/21 §6):
// per entry, whether it is live in the version (its location is the anchor's current
// location for the field) and, for the live ones, where its stored vector is. Computed
// once per (version, object) from the anchor index alone (one batched lookup, no segment
// read), so a search scans and walks only live entries; re-ranking reads the vectors of
// its final candidates only, through the handle's row cache.
struct LiveEntries {
  std::vector<uint8_t> live;       // per entry: 1 when live
  std::vector<uint32_t> segment;   // per entry: index into segments (live entries only)
  std::vector<uint32_t> row;       // per entry: row in that segment (live entries only)
  std::vector<ObjectId> segments;  // the segments the live entries' vectors are in
  bool all_live = false;           // every entry is live
  RowKey RowOf(size_t entry) const { return RowKey{segments[segment[entry]], row[entry]}; }
  uint64_t MemoryBytes() const { return 64 + live.size() * 9 + segments.size() * sizeof(ObjectId); }
};
// (the version's anchor-index root, or its manifest id when the anchor index is inline;
// the id of the bucket or node page).
struct LiveKey {
  ObjectId version;
  ObjectId object;
  bool operator==(const LiveKey&) const = default;
};
struct LiveKeyHash {
  size_t operator()(const LiveKey& k) const {
    const size_t a = std::hash<ObjectId>()(k.version);
    return a ^ (std::hash<ObjectId>()(k.object) + 0x9e3779b97f4a7c15ULL + (a << 6) + (a >> 2));
  }
};

// Byte-bounded LRUs of decoded spatial objects (models, directory pages, buckets, node
// pages) and, with budgets of their own, the LiveEntries of the buckets and node pages
// searches touched and the stored vectors that re-ranks read, by (segment, row). Every
// key is content-addressed, so nothing cached goes stale. Entries are typed: an id cached
// as one kind is a miss when looked up as another (damaged data can name a model where a
// bucket belongs; the lookup then decodes the bytes as a bucket and reports corrupt).
//
// A cache made by ForStore is a view, scoped to one store identity (its canonical URI),
// of LRUs shared by every handle of every store in the process (spec/21 §7.10): a handle
// opened for one query finds what earlier handles of the same store decoded. A cache made
// by NewObjectCache is private to its handle (stores without a process-wide identity).
// Thread-safe.
class ObjectCache {
 public:
  ObjectCache(uint64_t capacity_bytes, uint64_t live_bytes, uint64_t row_bytes)
      : lrus_(std::make_shared<Lrus>(capacity_bytes, live_bytes, row_bytes)) {}
  // The view of the process-wide LRUs for the store whose identity is `store_identity`.
  static std::shared_ptr<ObjectCache> ForStore(std::string_view store_identity);
  // The byte bound of the decoded objects' LRU.
  uint64_t ObjectCapacity() const { return lrus_->objects.capacity_bytes(); }

  template <typename T>
  std::shared_ptr<const T> Get(const ObjectId& id) {
    std::shared_ptr<const Entry> entry = lrus_->objects.Get(ScopedId{scope_, id});
    if (entry == nullptr) return nullptr;
    // A checked lookup, not a cast: null when the entry holds another kind.
    const auto* held = std::any_cast<std::shared_ptr<const T>>(&entry->value);
    return held == nullptr ? nullptr : *held;
  }
  // An id already cached (in any role) stays as it is.
  template <typename T>
  void Insert(const ObjectId& id, std::shared_ptr<const T> value, uint64_t bytes) {
    lrus_->objects.Insert(ScopedId{scope_, id},
                          std::make_shared<const Entry>(Entry{std::any(std::move(value))}), bytes);
  }
  std::shared_ptr<const LiveEntries> GetLive(const LiveKey& key) {
    return lrus_->live.Get(Scoped<LiveKey>{scope_, key});
  }
  void InsertLive(const LiveKey& key, std::shared_ptr<const LiveEntries> value) {
    const uint64_t bytes = value->MemoryBytes();
    lrus_->live.Insert(Scoped<LiveKey>{scope_, key}, std::move(value), bytes);
  }
  // Whether a search touched `key` before (through any view of the same LRUs): the first
  // touch of a bucket checks only its candidates' liveness; the second computes and keeps
  // its LiveEntries (spec/21 §7.10). Remembers the key either way.
  bool TouchedBefore(const LiveKey& key) {
    const Scoped<LiveKey> k{scope_, key};
    if (lrus_->touched.Get(k) != nullptr) return true;
    static const auto kMark = std::make_shared<const uint8_t>(1);
    lrus_->touched.Insert(k, kMark, sizeof(Scoped<LiveKey>) + 48);
    return false;
  }
  std::shared_ptr<const std::vector<float>> GetRow(const RowKey& key) {
    return lrus_->rows.Get(Scoped<RowKey>{scope_, key});
  }
  void InsertRow(const RowKey& key, std::shared_ptr<const std::vector<float>> value) {
    const uint64_t bytes = 96 + value->size() * sizeof(float);
    lrus_->rows.Insert(Scoped<RowKey>{scope_, key}, std::move(value), bytes);
  }

 private:
  struct Entry {
    std::any value;  // a std::shared_ptr<const T> for the T it was inserted as
  };
  template <typename K>
  struct Scoped {
    uint64_t scope = 0;
    K key;
    bool operator==(const Scoped&) const = default;
  };
  template <typename K, typename H>
  struct ScopedHash {
    size_t operator()(const Scoped<K>& k) const {
      return H()(k.key) ^ (static_cast<size_t>(k.scope) * 0x9e3779b97f4a7c15ULL);
    }
  };
  struct Lrus {
    Lrus(uint64_t capacity_bytes, uint64_t live_bytes, uint64_t row_bytes)
        : objects(capacity_bytes, capacity_bytes / 2),
          live(live_bytes, live_bytes / 4),
          rows(row_bytes, row_bytes / 4),
          touched(live_bytes / 16) {}
    // Entries over half (objects) or a quarter (the others) of the capacity are not kept.
    ByteLruCache<ScopedId, Entry, ScopedIdHash> objects;
    ByteLruCache<Scoped<LiveKey>, LiveEntries, ScopedHash<LiveKey, LiveKeyHash>> live;
    ByteLruCache<Scoped<RowKey>, std::vector<float>, ScopedHash<RowKey, RowKeyHash>> rows;
    ByteLruCache<Scoped<LiveKey>, uint8_t, ScopedHash<LiveKey, LiveKeyHash>> touched;
  };
  ObjectCache(std::shared_ptr<Lrus> lrus, uint64_t scope) : lrus_(std::move(lrus)), scope_(scope) {}

  std::shared_ptr<Lrus> lrus_;
  uint64_t scope_ = 0;  // StoreScope() of the store; 0 for a private cache
};
// A cache private to one handle: 256 MiB of spatial objects, 64 MiB of LiveEntries (live
// flags and locations of the cells recently searched) and 256 MiB of re-rank vectors
// (spec/21 §7.10). ObjectCache::ForStore views LRUs of the same sizes shared by the
// process.
std::shared_ptr<ObjectCache> NewObjectCache();

// The default cells probed per query that BuildIndex stores in a new index object
// (IndexObject::nprobe, spec/21 §7.2). ivf: 0 (the model's DefaultNprobe, min(cells,
// max(8, round(0.6 sqrt(cells))))). imi and lsh: min(cells, max(16, round(1.25
// sqrt(cells)))) non-empty cells (search skips empty cells), e.g. 80 of 4096: the imi
// measurement on SYN-768 200k needed ~80 of 4096 for recall@10 ~0.95, twice DefaultNprobe.
uint32_t DefaultIndexNprobe(vector::IvfParams::Algorithm algorithm, uint32_t cells);

// What a search uses when the request gives no nprobe/ef (spec/21 §7.9): the
// calibration's stored setting, or its setting for `recall` when recall > 0; without a
// calibration, the index object's nprobe (else DefaultNprobe) or DefaultEf(10).
struct DefaultSetting {
  uint32_t nprobe = 0;  // ivf/imi/lsh
  uint32_t ef = 0;      // graph
  bool calibrated = false;
};
DefaultSetting DefaultSettingOf(const IndexObject& ix, double recall);

// The vectors a commit writes for one field: per batch row, its value and location.
struct AppendedVectors {
  std::string field;
  const Column* values = nullptr;
  const std::vector<ObjectId>* segments = nullptr;
  const std::vector<uint32_t>* seg = nullptr;  // per batch row
  const std::vector<uint32_t>* row = nullptr;  // per batch row
};

// Assignment during a commit (spec/21 §6.1): for each field of base.manifest.indexes
// that `vecs` writes, assigns the rows' vectors to cells, puts one bucket per touched
// cell, the touched directory pages and a new index object, and points m->indexes at
// it. `row_anchors[i]` is batch row i's anchor. Other indexed fields are carried over
// unchanged; indexes of fields no longer in m's schema are dropped.
Status IndexAppend(DatasetImpl& impl, const Version& base, const std::vector<uint64_t>& row_anchors,
                   const std::vector<AppendedVectors>& vecs, dataset::Manifest* m,
                   uint64_t* objects_written);

// Assignment during a merge (spec/14 §16.8, spec/21 §6.5): `m` is the merge manifest,
// whose indexes are still the target's; `changed[field]` lists (ascending) the anchors
// whose value of `field` the merge adds or replaces against the target. For each field
// with an index in m->indexes, those records' vectors (read at their locations in
// `merged`, the merged anchor index) are assigned to cells as an append's are, and
// m->indexes points at the new index object; the fields so updated are added to
// *updated. A chunk of 65,536 anchors at a time bounds the vectors held in memory.
Status IndexMerged(DatasetImpl& impl, const btree::IndexRef& merged,
                   const std::map<std::string, std::vector<uint64_t>>& changed,
                   dataset::Manifest* m, uint64_t* objects_written,
                   std::vector<std::string>* updated);

// What verify remembers about the spatial objects it has checked, so that it fetches each
// object once per run yet still checks every index object against every manifest that
// names it and every directory page against every index object that lists it.
// Not thread-safe: one verify run uses one.
struct VerifyMemo {
  struct IndexFacts {
    bool intact = false;  // fetched and decoded
    std::string field;
    uint32_t dim = 0;
  };
  struct DirFacts {
    bool intact = false;  // fetched and decoded (its buckets checked the first time)
    uint32_t first = 0;
    uint32_t cells = 0;
    uint64_t buckets = 0;
    uint64_t entries = 0;  // of the buckets that were intact
    bool complete = true;  // every bucket was intact
  };
  struct BucketFacts {
    bool intact = false;  // fetched and decoded as a bucket
    uint32_t cell = 0;
    uint64_t entries = 0;
  };
  struct NodePageFacts {
    bool intact = false;  // fetched and decoded as a node page
    uint64_t first = 0;
    uint64_t count = 0;
    uint64_t neighbours_below = 0;  // one more than the largest neighbour id (0: none)
  };
  std::unordered_map<ObjectId, IndexFacts> indexes;
  std::unordered_map<ObjectId, DirFacts> dir_pages;
  std::unordered_map<ObjectId, BucketFacts> buckets;
  std::unordered_map<ObjectId, NodePageFacts> node_pages;
  // Decoded models, the most recently used first (a few: one per indexed field).
  std::list<std::pair<ObjectId, std::shared_ptr<const vector::IvfModel>>> models;
  std::unordered_set<ObjectId> bad_models;  // missing or damaged (reported once)
};

// Verify's walk of one manifest's spatial indexes (spec/21 §9): every index object,
// model, directory page, bucket and node page is fetched, hash-checked and decoded, once
// per run, and checked against what refers to it: the index object against the manifest's
// schema (an embedding field of the same dim) and against its model (dim, cells, metric,
// bits, quantizer, algorithm), each directory page against its position and the index's
// cell count, each bucket against the cell that lists it and its codes against the model,
// each node page against its position and its neighbours against the graph's size, and
// the index's entry and bucket counts against what it reaches.
// `check(id, what, out)` returns 0 when the object was already checked (its subtree is
// skipped), 1 when fetched and intact (bytes in *out when out is non-null), -1 when
// missing or damaged (it records the problem); `load(id)` fetches an object already
// checked again (a model needed for new buckets); `problem` records other problems.
void VerifyIndexes(const dataset::Manifest& m, VerifyMemo* memo,
                   const std::function<int(const ObjectId&, const std::string&, Bytes*)>& check,
                   const std::function<Result<Bytes>(const ObjectId&)>& load,
                   const std::function<void(std::string)>& problem);

}  // namespace dreamdb::vindex

#endif  // DREAMDB_SRC_DATASET_VECTOR_INDEX_H_
