// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Dataset lifecycle and writes (spec/13-manifests.md, spec/14-semantics.md).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <future>
#include <map>
#include <mutex>
#include <numeric>
#include <queue>
#include <random>
#include <set>
#include <thread>
#include <unordered_set>

#include "dreamdb/jobs.h"
#include "src/base/encoding.h"
#include "src/base/io_pool.h"
#include "src/columnar/segment.h"
#include "src/dataset/dataset_impl.h"
#include "src/dataset/index/internal.h"
#include "src/dataset/reach.h"
#include "src/dataset/vector_index.h"
#include "src/store/put_journal.h"

namespace dreamdb {

using dataset::Manifest;

namespace {

// A commit keeps retrying a lost compare-and-swap (rebasing each time) for at least this
// many attempts and until this much time has passed.
constexpr uint32_t kMinCommitAttempts = 64;
constexpr auto kCommitRetryBudget = std::chrono::seconds(120);
// Target size of one segment object; larger columns are cut into several.
constexpr uint64_t kSegmentTargetBytes = uint64_t{64} << 20;
constexpr uint64_t kDefaultSegmentCacheBytes = uint64_t{128} << 20;
constexpr size_t kPrivatePageCacheBytes = size_t{32} << 20;
constexpr uint64_t kPrivateHeaderCacheBytes = uint64_t{16} << 20;

// Index pages and segment headers are immutable and content-addressed, so the handles of
// one store share them process-wide, keyed by the store's canonical URI: file://, s3://
// and named memory:// stores, which every Store::Open of that URI reaches. An anonymous
// "memory://" store, or backends wrapped under a caller's URI (Store::FromBackends), has
// no identity beyond its Store object: its handles keep their own caches.
bool SharesCaches(const Store& store) {
  const std::string& uri = store.uri();
  auto starts = [&](std::string_view p) { return uri.rfind(p, 0) == 0; };
  return starts("file://") || starts("s3://") || (starts("memory://") && uri != "memory://");
}

std::shared_ptr<btree::PageCache> PagesFor(const Store& store) {
  if (!SharesCaches(store)) return std::make_shared<btree::PageCache>(kPrivatePageCacheBytes);
  return btree::PageCache::ForStore(store.uri(), kPrivatePageCacheBytes);
}

std::shared_ptr<dataset::SegmentHeaderCache> HeadersFor(const Store& store) {
  if (!SharesCaches(store)) {
    return std::make_shared<dataset::SegmentHeaderCache>(
        std::make_shared<dataset::SegmentHeaderCache::Lru>(kPrivateHeaderCacheBytes), 0);
  }
  return dataset::SegmentHeaderCache::ForStore(store.uri());
}

std::shared_ptr<VersionCache> VersionsFor(const Store& store) {
  if (!SharesCaches(store)) return VersionCache::Private();
  return VersionCache::ForStore(store.uri());
}

std::mt19937_64& Rng() {
  thread_local std::mt19937_64 rng(std::random_device{}() ^
                                   (static_cast<uint64_t>(getpid()) << 32) ^
                                   std::hash<std::thread::id>{}(std::this_thread::get_id()));
  return rng;
}

// Unpredictable bytes from the OS (getrandom via std::random_device).
Bytes RandomBytes(size_t n) {
  std::random_device rd;
  Bytes out(n, '\0');
  for (size_t i = 0; i < n; i += 4) {
    uint32_t r = rd();
    std::memcpy(out.data() + i, &r, std::min<size_t>(4, n - i));
  }
  return out;
}

// Full jitter exponential backoff: uniform in [0, min(cap, base * 2^attempt)].
void Backoff(uint32_t attempt) {
  const uint64_t base_us = 500, cap_us = 200000;
  uint64_t ceiling = std::min<uint64_t>(cap_us, base_us << std::min<uint32_t>(attempt, 16));
  std::uniform_int_distribution<uint64_t> dist(0, ceiling);
  std::this_thread::sleep_for(std::chrono::microseconds(dist(Rng())));
}

Status CheckColumnMatches(const FieldSpec& want, const Column& col) {
  const FieldSpec& got = col.field();
  if (got.type != want.type) {
    return InvalidArgument("field " + Quote(want.name) + " is " +
                           std::string(FieldTypeName(want.type)) + " but the column is " +
                           std::string(FieldTypeName(got.type)));
  }
  if (want.type == FieldType::kEmbedding && got.dim != want.dim) {
    return InvalidArgument("field " + Quote(want.name) + " has dim " + std::to_string(want.dim) +
                           " but the column has dim " + std::to_string(got.dim));
  }
  if (want.type == FieldType::kArray && (got.dtype != want.dtype || got.shape != want.shape)) {
    return InvalidArgument("field " + Quote(want.name) +
                           ": the column's array dtype or shape differs from the schema's");
  }
  return Status::Ok();
}

// Embedding values must be finite (spec/10-schema.md §1.6): a NaN or infinite component
// has no distance to anything, so search could not rank the record. Checked before
// anything is written. Names the record by its anchor when the batch gives anchors, else
// by its row. The whole buffer is scanned at once; rows are looked at only on a find
// (null rows may hold any bytes).
Status CheckFiniteEmbeddings(std::string_view what, const Column& col,
                             const std::vector<uint64_t>& anchors) {
  if (col.type() != FieldType::kEmbedding) return Status::Ok();
  const uint64_t dim = col.field().dim;
  const float* all = reinterpret_cast<const float*>(col.values().data());
  if (vindex::AllFinite(all, col.length() * dim)) return Status::Ok();
  for (uint64_t r = 0; r < col.length(); ++r) {
    if (!col.IsValid(r) || vindex::AllFinite(all + r * dim, dim)) continue;
    uint64_t d = 0;
    while (std::isfinite(all[r * dim + d])) ++d;
    const float x = all[r * dim + d];
    std::string record = anchors.empty() ? "row " + std::to_string(r) + " of the batch"
                                         : "the record at anchor " + std::to_string(anchors[r]);
    return InvalidArgument(std::string(what) + ": field " + Quote(col.field().name) + " of " +
                           record + " has " + (std::isnan(x) ? "NaN" : (x > 0 ? "+inf" : "-inf")) +
                           " at element " + std::to_string(d) +
                           "; embedding values must be finite (nothing was committed)");
  }
  return Status::Ok();
}

// The rows of one written column: where each batch row landed.
struct WrittenColumn {
  std::string name;
  FieldSpec spec;
  std::vector<ObjectId> segments;
  std::vector<uint32_t> seg;  // per batch row
  std::vector<uint32_t> row;  // per batch row
  std::vector<bool> valid;    // per batch row: the value is not null
};

// Cuts `col` into segments of about kSegmentTargetBytes, puts them in parallel.
Result<WrittenColumn> WriteColumn(Store& store, const FieldSpec& spec, const Column& col,
                                  uint64_t* objects_written) {
  WrittenColumn out;
  out.name = spec.name;
  out.spec = spec;
  const uint64_t n = col.length();
  uint64_t bytes_per_row = std::max<uint64_t>(1, col.ByteSize() / std::max<uint64_t>(1, n));
  // An sq8 embedding stores dim + 8 bytes per row, not 4 dim (spec/14 §2.2).
  if (columnar::UsesSq8(spec)) bytes_per_row = uint64_t{spec.dim} + 8;
  uint64_t rows_per_segment =
      std::clamp<uint64_t>(kSegmentTargetBytes / bytes_per_row, 1, columnar::kSegmentMaxRows);
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (uint64_t b = 0; b < n; b += rows_per_segment) {
    ranges.emplace_back(b, std::min(n, b + rows_per_segment));
  }
  constexpr size_t kMaxInFlight = 4;  // segments encoded + put at once (memory bound)
  std::vector<std::future<Result<ObjectId>>> puts;
  for (auto [b, e] : ranges) {
    if (puts.size() >= kMaxInFlight) puts[puts.size() - kMaxInFlight].wait();
    auto work = [&store, &spec, &col, b = b, e = e,
                 journal = PutJournal::Current()]() -> Result<ObjectId> {
      PutJournal::Scope journaled(journal);
      Column piece(spec);
      const Column* src = &col;
      if (b != 0 || e != col.length()) {
        piece.AppendRange(col, b, e);
        src = &piece;
      }
      ASSIGN_OR_RETURN(Bytes bytes, columnar::EncodeSegment(*src, spec));
      return store.Put(bytes);
    };
    puts.push_back(std::async(ranges.size() > 1 ? std::launch::async : std::launch::deferred,
                              std::move(work)));
  }
  out.seg.resize(n);
  out.row.resize(n);
  out.valid.resize(n);
  for (size_t i = 0; i < puts.size(); ++i) {
    ASSIGN_OR_RETURN(ObjectId id, puts[i].get());
    out.segments.push_back(id);
    ++*objects_written;
    for (uint64_t r = ranges[i].first; r < ranges[i].second; ++r) {
      out.seg[r] = static_cast<uint32_t>(i);
      out.row[r] = static_cast<uint32_t>(r - ranges[i].first);
      out.valid[r] = col.IsValid(r);
    }
  }
  return out;
}

Result<std::vector<uint64_t>> SortedUnique(std::vector<uint64_t> anchors, bool allow_dups) {
  std::sort(anchors.begin(), anchors.end());
  auto dup = std::adjacent_find(anchors.begin(), anchors.end());
  if (dup != anchors.end()) {
    if (!allow_dups) {
      return InvalidArgument("anchor " + std::to_string(*dup) + " appears twice in the batch");
    }
    anchors.erase(std::unique(anchors.begin(), anchors.end()), anchors.end());
  }
  return anchors;
}

// True for stores whose reads are system calls on local files or memory.
bool IsLocal(const Store& store) {
  const std::string& uri = store.uri();
  return uri.rfind("file://", 0) == 0 || uri.rfind("memory://", 0) == 0;
}

// A manifest must belong to the dataset it is opened as: its genesis names it (read once
// per store and process: the name a genesis gives never changes). On an object store what
// the first read or search of the version starts from is fetched at the same time: the
// root page of the anchor index and the spatial index objects (a few hundred bytes each),
// so those requests share the genesis's round trip instead of costing one each later. A
// failed prefetch is left for that read to report.
Status CheckGenesisName(const DatasetImpl& impl, const Version& v, std::string_view name) {
  constexpr size_t kMaxIndexPrefetches = 4;
  std::vector<std::function<void()>> prefetch;
  if (!IsLocal(impl.store())) {
    if (!v.index.empty() && !v.index.is_inline() && impl.pages()->Get(v.index.root) == nullptr) {
      prefetch.emplace_back(
          [&impl, &v] { (void)btree::FetchPage(impl.store(), impl.pages(), v.index.root); });
    }
    for (const auto& [field, id] : v.manifest.indexes) {
      if (prefetch.size() > kMaxIndexPrefetches) break;
      prefetch.emplace_back([&impl, id = id] { (void)vindex::LoadIndex(impl, id); });
    }
  }
  std::shared_ptr<const std::string> known = impl.versions().GenesisName(v.manifest.genesis);
  Status genesis;
  auto read_genesis = [&]() -> Status {
    auto gbytes = impl.store().Get(v.manifest.genesis);
    if (!gbytes.ok()) return gbytes.status().WithContext("genesis of manifest " + v.id.ToString());
    ASSIGN_OR_RETURN(dataset::Genesis g, dataset::DecodeGenesis(*gbytes));
    impl.versions().InsertGenesisName(v.manifest.genesis, g.name);
    known = std::make_shared<const std::string>(std::move(g.name));
    return Status::Ok();
  };
  IoPool::ParallelFor(prefetch.size() + 1, [&](size_t i) {
    if (i < prefetch.size()) {
      prefetch[i]();
    } else if (known == nullptr) {
      genesis = read_genesis();
    }
  });
  RETURN_IF_ERROR(genesis);
  if (*known != name) {
    return InvalidArgument("manifest " + v.id.ToString() + " belongs to dataset " + Quote(*known) +
                           ", not " + Quote(name));
  }
  return Status::Ok();
}

bool SameType(const FieldSpec& a, const FieldSpec& b) {
  return a.type == b.type && a.dim == b.dim && a.dtype == b.dtype && a.shape == b.shape;
}

bool IsDropped(const Manifest& m, std::string_view name) {
  return std::binary_search(m.dropped.begin(), m.dropped.end(), name);
}

Status RefuseDropped(const Manifest& m, std::string_view name) {
  if (!IsDropped(m, name)) return Status::Ok();
  return InvalidArgument("field " + Quote(name) +
                         " was dropped in an earlier schema version and its name cannot be "
                         "reused; choose a new name");
}

}  // namespace

// ---------------------------------------------------------------------------------------

uint64_t NowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

std::string DefaultWriter() {
  // "<user>@<host>:<pid>", computed once per process (a forked child recomputes it).
  static std::mutex mu;
  static pid_t pid = 0;
  static std::string writer;
  std::lock_guard<std::mutex> lock(mu);
  if (pid != getpid()) {
    pid = getpid();
    const char* user = getenv("USER");
    char host[256] = {0};
    if (gethostname(host, sizeof(host) - 1) != 0) std::strcpy(host, "localhost");
    writer = std::string(user ? user : "user") + "@" + host + ":" + std::to_string(pid);
  }
  return writer;
}

CommitInfo InfoFromManifest(const ObjectId& id, const Manifest& m) {
  CommitInfo info;
  info.manifest = id;
  info.parents = m.parents;
  info.writer = m.writer;
  info.message = m.message;
  info.time_ns = m.time_ns;
  info.count = m.count;
  info.added = m.delta.added;
  info.replaced = m.delta.replaced;
  info.deleted = m.delta.deleted;
  info.fields = m.delta.fields;
  info.schema_version = m.schema.version();
  return info;
}

DatasetImpl::DatasetImpl(std::shared_ptr<Store> store, std::string name, std::string branch)
    : store_(std::move(store)),
      name_(std::move(name)),
      branch_(std::move(branch)),
      // Index pages and segment headers are shared by every handle of this store in the
      // process (immutable, content-addressed: always coherent).
      pages_(PagesFor(*store_)),
      segments_(std::make_shared<dataset::SegmentCache>(kDefaultSegmentCacheBytes)),
      headers_(HeadersFor(*store_)),
      vectors_(SharesCaches(*store_) ? vindex::ObjectCache::ForStore(store_->uri())
                                     : vindex::NewObjectCache()),
      versions_(VersionsFor(*store_)) {}

std::shared_ptr<VersionCache> VersionCache::ForStore(std::string_view store_identity) {
  static const auto versions = std::make_shared<Versions>(kSharedBytes, kSharedBytes / 4);
  static const auto names = std::make_shared<Names>(uint64_t{1} << 20);
  return std::make_shared<VersionCache>(versions, names, StoreScope(store_identity));
}

std::shared_ptr<VersionCache> VersionCache::Private() {
  return std::make_shared<VersionCache>(std::make_shared<Versions>(kPrivateBytes),
                                        std::make_shared<Names>(uint64_t{64} << 10), 0);
}

Result<std::shared_ptr<const Version>> DatasetImpl::LoadVersion(const ObjectId& id) const {
  if (auto hit = own_versions_.Get(id)) return hit;
  auto bytes = store_->Get(id);
  if (!bytes.ok()) {
    std::string what = "manifest " + id.ToString() + " of dataset " + Quote(name_);
    if (bytes.status().code() == StatusCode::kNotFound) {
      // Say so when GC's retention has cut this dataset's history (spec/06-refs.md §6.10):
      // an old version or a merge base that is gone is pruned history, not damage.
      std::unordered_set<ObjectId> pruned;
      if (ListPruned(*store_, name_, &pruned).ok() && !pruned.empty()) {
        what += " (gc retention pruned older history of this dataset; spec/06 §6.10)";
      }
    }
    return bytes.status().WithContext(what);
  }
  auto m = dataset::DecodeManifest(*bytes);
  if (!m.ok()) return m.status().WithContext("manifest " + id.ToString());
  auto v = std::make_shared<Version>();
  v->id = id;
  v->manifest = std::move(*m);
  ASSIGN_OR_RETURN(
      v->index, btree::IndexRefFromCbor(v->manifest.index, "manifest " + id.ToString() + " index"));
  ASSIGN_OR_RETURN(
      v->tombstones,
      btree::IndexRefFromCbor(v->manifest.tombstones, "manifest " + id.ToString() + " tombstones"));
  std::shared_ptr<const Version> shared = std::move(v);
  own_versions_.Insert(id, shared, bytes->size());
  versions_->Insert(id, shared, bytes->size());
  return shared;
}

Result<std::shared_ptr<const Version>> DatasetImpl::LoadVersionNamedByRef(
    const ObjectId& id) const {
  if (auto hit = own_versions_.Get(id)) return hit;
  if (auto hit = versions_->Get(id)) {
    own_versions_.Insert(id, hit, sizeof(Version));
    return hit;
  }
  return LoadVersion(id);
}

Result<bool> DatasetImpl::IsAncestor(const ObjectId& id, uint64_t time_ns,
                                     const ObjectId& head) const {
  // Every descendant of `id` is newer than it (a child's time exceeds its parents'), so
  // the walk stops at manifests older than `id`: it costs the commits made since.
  std::vector<ObjectId> stack{head};
  std::unordered_set<ObjectId> seen{head};
  while (!stack.empty()) {
    ObjectId cur = stack.back();
    stack.pop_back();
    if (cur == id) return true;
    ASSIGN_OR_RETURN(auto v, LoadVersion(cur));
    if (v->manifest.time_ns <= time_ns) continue;
    for (const auto& p : v->manifest.parents) {
      if (seen.insert(p).second) stack.push_back(p);
    }
  }
  return false;
}

Result<std::shared_ptr<const Version>> DatasetImpl::ReadHead() const {
  auto ref = store_->ReadRef(dataset::BranchRef(name_, branch_));
  if (!ref.ok()) {
    if (ref.status().code() == StatusCode::kNotFound) {
      return NotFound("branch " + Quote(branch_) + " of dataset " + Quote(name_) +
                      " does not exist");
    }
    return ref.status();
  }
  return LoadVersionNamedByRef(ref->target);
}

std::shared_ptr<const Version> DatasetImpl::current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_;
}

void DatasetImpl::set_current(std::shared_ptr<const Version> v) {
  std::lock_guard<std::mutex> lock(mu_);
  current_ = std::move(v);
}

namespace {

// Writers in one process that commit to the same branch of the same backend take turns
// (a per-branch mutex shared by every handle): they never make each other lose a
// compare-and-swap, so only writers in other processes can, and those are bounded by
// backoff (spec/14-semantics.md §7.4).
std::shared_ptr<std::mutex> BranchMutex(const void* backend, const std::string& ref) {
  static std::mutex registry_mu;
  static std::map<std::pair<const void*, std::string>, std::weak_ptr<std::mutex>> registry;
  std::lock_guard<std::mutex> lock(registry_mu);
  auto& slot = registry[{backend, ref}];
  auto m = slot.lock();
  if (!m) {
    m = std::make_shared<std::mutex>();
    slot = m;
  }
  return m;
}

}  // namespace

// Mutations in flight on this thread, and whether one may have published (a swap whose
// outcome is unknown): the outermost Mutation decides about cleanup.
static thread_local bool mutation_maybe_published = false;

Result<CommitInfo> DatasetImpl::Mutation(const std::function<Result<CommitInfo>()>& work) {
  if (PutJournal::Current() != nullptr) return work();
  PutJournal journal;
  mutation_maybe_published = false;
  Result<CommitInfo> result = [&] {
    PutJournal::Scope scope(&journal);
    return work();
  }();
  const bool maybe_published = mutation_maybe_published;
  mutation_maybe_published = false;
  if (!result.ok() && !maybe_published) RemoveCreated(journal, result.status());
  return result;
}

void DatasetImpl::RemoveCreated(const PutJournal& journal, const Status& failure) {
  (void)failure;  // every unpublished failure (design notes)
  if (branch_.empty()) return;
  std::vector<PutJournal::Created> created = journal.created();
  if (created.empty()) return;
  // Unpublished: the branch does not point at anything this mutation created.
  auto head = store_->ReadRef(dataset::BranchRef(name_, branch_));
  if (!head.ok()) return;
  for (const auto& c : created) {
    if (c.id == head->target) return;
  }
  std::unordered_set<ObjectId> keep;
  for (const ObjectId& id : journal.existing()) keep.insert(id);
  DeleteIfUnchanged(created, keep);
}

void DatasetImpl::DeleteIfUnchanged(const std::vector<PutJournal::Created>& created,
                                    const std::unordered_set<ObjectId>& keep) {
  for (auto it = created.rbegin(); it != created.rend(); ++it) {
    if (keep.count(it->id) != 0 || it->modified_unix_ms == 0) continue;
    auto now = store_->Head(it->id);
    if (!now.ok() || now->modified_unix_ms != it->modified_unix_ms) continue;  // re-put since
    (void)store_->DeleteObject(it->id);  // best effort: what stays is GC's
  }
}

Result<CommitInfo> DatasetImpl::Commit(const BuildFn& build, const CommitOptions& options) {
  return Mutation([&]() -> Result<CommitInfo> {
    bool maybe_published = false;
    auto result = CommitLoop(build, options, &maybe_published);
    if (maybe_published) mutation_maybe_published = true;
    return result;
  });
}

Result<CommitInfo> DatasetImpl::CommitLoop(const BuildFn& build, const CommitOptions& options,
                                           bool* maybe_published) {
  if (branch_.empty()) {
    return PermissionDenied(
        "dataset " + Quote(name_) +
        " is open read-only (at a snapshot or manifest); open a branch to write");
  }
  const std::string ref = dataset::BranchRef(name_, branch_);
  std::shared_ptr<std::mutex> branch_mu = BranchMutex(&store_->ref_backend(), ref);
  std::lock_guard<std::mutex> commit_lock(*branch_mu);
  // Start from the branch's head: another handle may have moved it since this one last
  // looked (reading the ref is cheap; a stale base would cost a lost swap and a rebuild).
  std::shared_ptr<const Version> base = current();
  ASSIGN_OR_RETURN(RefValue head_now, store_->ReadRef(ref));
  if (head_now.target != base->id) {
    ASSIGN_OR_RETURN(base, LoadVersion(head_now.target));
    set_current(base);
  }
  const auto started = std::chrono::steady_clock::now();
  uint32_t attempt = 0;
  for (;;) {
    ++attempt;
    if (attempt > kMinCommitAttempts &&
        std::chrono::steady_clock::now() - started > kCommitRetryBudget) {
      break;
    }
    // Index pages are not journaled: another writer may build byte-identical pages (both
    // splitting one leaf of the same base), so "created by this commit" does not make them
    // its own (design notes). The manifest put below is journaled.
    Result<Built> attempt_built = [&] {
      PutJournal::Scope pages_unjournaled(nullptr);
      return build(*base, attempt);
    }();
    ASSIGN_OR_RETURN(Built built, std::move(attempt_built));
    Manifest& m = built.manifest;
    ObjectId id;
    if (built.fast_forward) {
      // A fast-forward lands an existing manifest: nothing to write (spec/14-semantics.md §16.3).
      id = *built.fast_forward;
      ASSIGN_OR_RETURN(auto ff, LoadVersion(id));
      if (id == base->id) {  // nothing to land: the branch already has it
        CommitInfo info = InfoFromManifest(id, ff->manifest);
        info.attempts = attempt;
        return info;
      }
      m = ff->manifest;
    } else {
      m.genesis = base->manifest.genesis;
      m.parents = {base->id};
      m.parents.insert(m.parents.end(), built.extra_parents.begin(), built.extra_parents.end());
      m.writer = options.writer.empty() ? DefaultWriter() : options.writer;
      m.message = options.message;
      m.time_ns = std::max({NowNs(), base->manifest.time_ns + 1, built.min_time_ns});
      ASSIGN_OR_RETURN(Bytes bytes, dataset::EncodeManifest(m));
      ASSIGN_OR_RETURN(id, store_->Put(bytes));
    }
    Status s = store_->UpdateRef(ref, base->id, id);
    // Refused before writing anything: the ref did not move. Anything else but success
    // leaves the swap's outcome unknown to a caller that must not delete what it wrote.
    if (!s.ok() && s.code() != StatusCode::kConflict && s.code() != StatusCode::kNotFound &&
        s.code() != StatusCode::kInvalidArgument) {
      *maybe_published = true;
    }
    if (s.ok()) {
      auto v = std::make_shared<Version>();
      v->id = id;
      v->manifest = m;
      ASSIGN_OR_RETURN(v->index, btree::IndexRefFromCbor(m.index, "new manifest index"));
      ASSIGN_OR_RETURN(v->tombstones, btree::IndexRefFromCbor(m.tombstones, "new tombstones"));
      set_current(v);
      CommitInfo info = InfoFromManifest(id, m);
      info.attempts = attempt;
      info.objects_written = built.objects_written + (built.fast_forward ? 0 : 1);
      return info;
    }
    if (s.code() != StatusCode::kConflict && s.code() != StatusCode::kUnavailable) return s;
    // Another writer moved the branch (or the swap's outcome is unknown): re-read the head.
    // If our manifest is the head or an ancestor of it, the swap did land and only its
    // response was lost (invariant 3): rebuilding would apply the mutation twice.
    Backoff(attempt);
    auto head_ref = store_->ReadRef(ref);
    if (!head_ref.ok()) return head_ref.status();
    bool landed = head_ref->target == id;
    if (!landed && s.code() == StatusCode::kUnavailable) {
      ASSIGN_OR_RETURN(landed, IsAncestor(id, m.time_ns, head_ref->target));
    }
    if (landed) {
      auto v = LoadVersion(id);
      if (!v.ok()) return v.status();
      set_current(*v);
      CommitInfo info = InfoFromManifest(id, m);
      info.attempts = attempt;
      info.objects_written = built.objects_written + (built.fast_forward ? 0 : 1);
      return info;
    }
    ASSIGN_OR_RETURN(base, LoadVersion(head_ref->target));
    set_current(base);
  }
  return Unavailable("commit to branch " + Quote(branch_) + " of dataset " + Quote(name_) +
                     " gave up after " + std::to_string(attempt - 1) +
                     " compare-and-swap attempts in " + std::to_string(kCommitRetryBudget.count()) +
                     " s; retry later");
}

// ---------------------------------------------------------------------------------------

Dataset::Dataset(std::unique_ptr<DatasetImpl> impl) : impl_(std::move(impl)) {}
Dataset::~Dataset() = default;

Result<std::unique_ptr<Dataset>> Dataset::Create(std::shared_ptr<Store> store,
                                                 std::string_view name, const Schema& schema,
                                                 const CommitOptions& options) {
  RETURN_IF_ERROR(dataset::ValidateDatasetName(name));
  if (schema.fields().empty()) {
    return InvalidArgument("dataset " + Quote(name) + ": the schema has no fields");
  }
  // Any ref under the name means the dataset exists (even if "main" was deleted).
  bool exists = false;
  RETURN_IF_ERROR(store->ListRefs(std::string(name) + "/", [&](const RefValue&) {
    exists = true;
    return false;
  }));
  if (exists) return AlreadyExists("dataset " + Quote(name) + " already exists in " + store->uri());
  Schema first = schema;
  first.set_version(1);
  dataset::Genesis g;
  g.name = std::string(name);
  g.nonce = RandomBytes(16);
  g.time_ns = NowNs();
  g.schema = first;
  ASSIGN_OR_RETURN(Bytes gbytes, dataset::EncodeGenesis(g));
  ASSIGN_OR_RETURN(ObjectId gid, store->Put(gbytes));
  Manifest m;
  m.genesis = gid;
  m.schema = first;
  m.index = btree::IndexRefToCbor(btree::IndexRef::Empty());
  m.tombstones = btree::IndexRefToCbor(btree::IndexRef::Empty());
  m.writer = options.writer.empty() ? DefaultWriter() : options.writer;
  m.message = options.message.empty() ? "create" : options.message;
  m.time_ns = g.time_ns;
  for (const auto& f : schema.fields()) m.delta.fields.push_back(f.name);
  ASSIGN_OR_RETURN(Bytes mbytes, dataset::EncodeManifest(m));
  ASSIGN_OR_RETURN(ObjectId mid, store->Put(mbytes));
  Status s = store->CreateRef(dataset::BranchRef(name, "main"), mid);
  if (s.code() == StatusCode::kAlreadyExists) {
    return AlreadyExists("dataset " + Quote(name) + " already exists in " + store->uri());
  }
  RETURN_IF_ERROR(s);
  auto impl = std::make_unique<DatasetImpl>(std::move(store), std::string(name), "main");
  ASSIGN_OR_RETURN(auto v, impl->LoadVersion(mid));
  impl->set_current(std::move(v));
  return std::unique_ptr<Dataset>(new Dataset(std::move(impl)));
}

Result<std::unique_ptr<Dataset>> Dataset::Open(std::shared_ptr<Store> store, std::string_view name,
                                               std::string_view branch) {
  RETURN_IF_ERROR(dataset::ValidateDatasetName(name));
  RETURN_IF_ERROR(dataset::ValidateBranchName(branch));
  auto impl = std::make_unique<DatasetImpl>(store, std::string(name), std::string(branch));
  auto v = impl->ReadHead();
  if (!v.ok()) {
    if (v.status().code() == StatusCode::kNotFound && branch == "main") {
      bool any = false;
      Status ls = store->ListRefs(std::string(name) + "/", [&](const RefValue&) {
        any = true;
        return false;
      });
      RETURN_IF_ERROR(ls);
      if (!any) {
        return NotFound("dataset " + Quote(name) + " does not exist in " + store->uri());
      }
    }
    return v.status();
  }
  RETURN_IF_ERROR(CheckGenesisName(*impl, **v, name));
  impl->set_current(std::move(*v));
  return std::unique_ptr<Dataset>(new Dataset(std::move(impl)));
}

Result<std::unique_ptr<Dataset>> Dataset::OpenAt(std::shared_ptr<Store> store,
                                                 std::string_view name, std::string_view at) {
  RETURN_IF_ERROR(dataset::ValidateDatasetName(name));
  if (at.empty()) return InvalidArgument("open-at: empty snapshot, branch or manifest id");
  auto impl = std::make_unique<DatasetImpl>(store, std::string(name), "");
  std::optional<ObjectId> target;
  bool named_by_ref = false;  // read from a ref (so stored), not given as an id
  if (at.size() == ObjectId::kTextSize && at[0] == 'b') {
    auto id = ObjectId::Parse(at);
    if (id.ok()) target = *id;
  }
  std::string_view label = at;
  bool branch_only = false;
  if (at.starts_with("branch:")) {
    label = at.substr(7);
    branch_only = true;
  }
  if (!target && !branch_only && ValidateRefName(dataset::SnapshotRef(name, label)).ok()) {
    auto ref = store->ReadRef(dataset::SnapshotRef(name, label));
    if (ref.ok()) {
      target = ref->target;
      named_by_ref = true;
    } else if (ref.status().code() != StatusCode::kNotFound) {
      return ref.status();
    }
  }
  if (!target && ValidateRefName(dataset::BranchRef(name, label)).ok()) {
    auto ref = store->ReadRef(dataset::BranchRef(name, label));
    if (ref.ok()) {
      target = ref->target;
      named_by_ref = true;
    } else if (ref.status().code() != StatusCode::kNotFound) {
      return ref.status();
    }
  }
  if (!target) {
    return NotFound("dataset " + Quote(name) + " has no snapshot, branch or manifest " + Quote(at));
  }
  ASSIGN_OR_RETURN(
      auto v, named_by_ref ? impl->LoadVersionNamedByRef(*target) : impl->LoadVersion(*target));
  RETURN_IF_ERROR(CheckGenesisName(*impl, *v, name));
  impl->set_current(std::move(v));
  return std::unique_ptr<Dataset>(new Dataset(std::move(impl)));
}

const std::string& Dataset::name() const { return impl_->name_; }
const std::string& Dataset::branch() const { return impl_->branch_; }
bool Dataset::read_only() const { return impl_->branch_.empty(); }
ObjectId Dataset::head() const { return impl_->current()->id; }
Schema Dataset::schema() const { return impl_->current()->manifest.schema; }
uint64_t Dataset::Count() const { return impl_->current()->manifest.count; }
std::map<std::string, std::string> Dataset::Meta() const { return impl_->current()->manifest.meta; }
ReadStats Dataset::read_stats() const { return impl_->stats(); }

Status Dataset::Refresh() {
  if (read_only()) return Status::Ok();
  ASSIGN_OR_RETURN(auto v, impl_->ReadHead());
  impl_->set_current(std::move(v));
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------
// Writes

namespace {

// The first of `n` automatic anchors when `next_anchor` leaves no room for them (an
// explicit anchor near 2^64 - 1 raised it there; spec/14-semantics.md §2.3): the start
// of the highest run of n consecutive anchors below 2^64 - 1 that holds no live and no
// deleted anchor of `base`, so one record at the top of the anchor space does not stop
// automatic anchors, and no anchor is ever assigned twice.
//
// The highest run free in both the index I and the tombstone set T: take the highest
// run of n free in I below h, [s1, e1), then the highest free in T below e1, [s2, e2).
// Their overlap [max(s1, s2), e2) is free in both; if it is shorter than n, every run
// free in both lies below max(s1, s2) (a run inside [s1, e1) would lie inside a
// T-run below e1, which is [s2, e2), too short there, or one below s2), so h = that.
Result<uint64_t> AnchorsBelowTop(DatasetImpl& impl, const Version& base, uint64_t n) {
  constexpr int kMaxRounds = 64;
  const btree::Tree index(&impl.store(), impl.pages(), base.index);
  const btree::Tree tombs(&impl.store(), impl.pages(), base.tombstones);
  uint64_t h = UINT64_MAX;  // automatic anchors stay below 2^64 - 1 (spec/14 §2.3)
  auto exhausted = [&](const std::string& why) {
    return InvalidArgument("cannot assign " + std::to_string(n) +
                           " anchors: the anchor space is exhausted (" + why +
                           "); give the records anchors explicitly");
  };
  for (int round = 0; round < kMaxRounds; ++round) {
    auto g1 = index.HighestGapBelow(h, n);
    if (!g1.ok()) return exhausted(g1.status().message());
    if (!*g1) break;
    auto g2 = tombs.HighestGapBelow((*g1)->limit, n);
    if (!g2.ok()) return exhausted(g2.status().message());
    if (!*g2) break;
    const uint64_t s = std::max((*g1)->first, (*g2)->first);
    if (s < (*g2)->limit && (*g2)->limit - s >= n) return s;
    h = s;
  }
  return exhausted("no run of " + std::to_string(n) +
                   " consecutive anchors is free of live and deleted records");
}

// Applies rows to `base`: the core of AppendMany and AddLayer.
// `require_existing`: every anchor must already be live (layers).
Result<DatasetImpl::Built> BuildAppend(DatasetImpl& impl, const Version& base, const Schema& schema,
                                       const std::vector<uint64_t>* given, uint64_t num_rows,
                                       const std::vector<WrittenColumn>& written,
                                       bool require_existing,
                                       const std::vector<const Column*>& columns) {
  DatasetImpl::Built out;
  const Manifest& bm = base.manifest;
  for (const auto& w : written) {
    const FieldSpec* f = schema.Find(w.name);
    if (f == nullptr) {
      return Conflict("field " + Quote(w.name) +
                      " is no longer in the dataset's schema (dropped by a concurrent commit)");
    }
    if (!SameType(*f, w.spec)) {
      return Conflict("field " + Quote(w.name) + " changed type in a concurrent commit");
    }
  }
  // Anchors: given, or assigned from next_anchor.
  std::vector<uint64_t> anchors;
  if (given != nullptr && !given->empty()) {
    anchors = *given;
  } else {
    uint64_t first = bm.next_anchor;
    if (bm.next_anchor > UINT64_MAX - num_rows) {
      ASSIGN_OR_RETURN(first, AnchorsBelowTop(impl, base, num_rows));
    }
    anchors.resize(num_rows);
    std::iota(anchors.begin(), anchors.end(), first);
  }
  std::vector<uint32_t> order(num_rows);
  std::iota(order.begin(), order.end(), 0u);
  std::sort(order.begin(), order.end(),
            [&](uint32_t a, uint32_t b) { return anchors[a] < anchors[b]; });
  std::vector<uint64_t> sorted(num_rows);
  for (uint64_t i = 0; i < num_rows; ++i) sorted[i] = anchors[order[i]];
  for (uint64_t i = 1; i < num_rows; ++i) {
    if (sorted[i] == sorted[i - 1]) {
      return InvalidArgument("anchor " + std::to_string(sorted[i]) + " appears twice in the batch");
    }
  }
  btree::Tree tree(&impl.store(), impl.pages(), base.index);
  ASSIGN_OR_RETURN(auto existing, tree.LookupMany(sorted));
  uint64_t added = 0;
  for (uint64_t i = 0; i < num_rows; ++i) {
    if (existing[i]) continue;
    if (require_existing) {
      return NotFound("anchor " + std::to_string(sorted[i]) + " is not in dataset " +
                      Quote(impl.name_) + " (a layer only adds fields to existing records)");
    }
    ++added;
  }
  if (added > 0) {
    for (const auto& f : schema.fields()) {
      if (f.optional) continue;
      bool present = std::any_of(written.begin(), written.end(),
                                 [&](const WrittenColumn& w) { return w.name == f.name; });
      if (!present) {
        return InvalidArgument("required field " + Quote(f.name) +
                               " is missing from the batch (it adds " + std::to_string(added) +
                               " new records)");
      }
    }
  }
  btree::Batch batch;
  batch.anchors = sorted;
  for (const auto& w : written) {
    btree::BatchField bf;
    bf.name = w.name;
    bf.segments = w.segments;
    bf.seg.resize(num_rows);
    bf.row.resize(num_rows);
    for (uint64_t i = 0; i < num_rows; ++i) {
      bf.seg[i] = w.seg[order[i]];
      bf.row[i] = w.row[order[i]];
    }
    batch.fields.push_back(std::move(bf));
  }
  // Re-appended anchors that were deleted start from nothing: their rows carry only the
  // new fields (deleted data never comes back).
  btree::IndexRef tombs = base.tombstones;
  btree::WriteStats ws;
  if (!tombs.empty() && added > 0) {
    std::vector<uint64_t> fresh;
    for (uint64_t i = 0; i < num_rows; ++i) {
      if (!existing[i]) fresh.push_back(sorted[i]);
    }
    uint64_t removed = 0;
    ASSIGN_OR_RETURN(tombs,
                     btree::RemoveAnchors(impl.store(), impl.pages(), tombs, fresh, &removed, &ws));
  }
  ASSIGN_OR_RETURN(btree::IndexRef index,
                   btree::Upsert(impl.store(), impl.pages(), base.index, batch, &ws));
  Manifest m;
  m.schema = schema;
  m.index = btree::IndexRefToCbor(index);
  m.tombstones = btree::IndexRefToCbor(tombs);
  m.count = bm.count + added;
  uint64_t max_anchor = sorted.empty() ? 0 : sorted.back();
  m.next_anchor = std::max(bm.next_anchor, max_anchor == UINT64_MAX ? UINT64_MAX : max_anchor + 1);
  m.meta = bm.meta;
  m.dropped = bm.dropped;
  m.delta.added = added;
  m.delta.replaced = num_rows - added;
  for (const auto& w : written) m.delta.fields.push_back(w.name);
  std::sort(m.delta.fields.begin(), m.delta.fields.end());
  out.objects_written = ws.pages_written;
  if (!bm.indexes.empty()) {
    // Spatial indexes: assign the written vectors (spec/21-spatial-index.md §6.1).
    std::vector<vindex::AppendedVectors> vecs;
    for (size_t i = 0; i < written.size() && i < columns.size(); ++i) {
      if (written[i].spec.type != FieldType::kEmbedding) continue;
      vecs.push_back(
          {written[i].name, columns[i], &written[i].segments, &written[i].seg, &written[i].row});
    }
    RETURN_IF_ERROR(vindex::IndexAppend(impl, base, anchors, vecs, &m, &out.objects_written));
  }
  out.manifest = std::move(m);
  return out;
}

}  // namespace

Result<CommitInfo> Dataset::AppendMany(const Batch& batch, const CommitOptions& options) {
  if (read_only()) {
    return PermissionDenied("dataset " + Quote(name()) + " is open read-only");
  }
  const uint64_t n = batch.columns.empty() ? batch.anchors.size() : batch.columns[0].length();
  if (n == 0) return InvalidArgument("append: the batch has no rows");
  if (batch.columns.empty()) return InvalidArgument("append: the batch has no fields");
  if (!batch.anchors.empty() && batch.anchors.size() != n) {
    return InvalidArgument("append: " + std::to_string(batch.anchors.size()) + " anchors for " +
                           std::to_string(n) + " rows");
  }
  Schema schema = impl_->current()->manifest.schema;
  std::set<std::string> seen;
  for (const auto& col : batch.columns) {
    const std::string& fname = col.field().name;
    const FieldSpec* spec = schema.Find(fname);
    if (spec == nullptr) {
      std::string known;
      for (const auto& f : schema.fields()) known += (known.empty() ? "" : ", ") + f.name;
      return InvalidArgument("append: unknown field " + Quote(fname) +
                             " (the schema has: " + known + ")");
    }
    if (!seen.insert(fname).second) {
      return InvalidArgument("append: field " + Quote(fname) + " appears twice in the batch");
    }
    if (col.length() != n) {
      return InvalidArgument("append: column " + Quote(fname) + " has " +
                             std::to_string(col.length()) + " rows, expected " + std::to_string(n));
    }
    RETURN_IF_ERROR(CheckColumnMatches(*spec, col));
    if (!spec->optional && col.NullCount() > 0) {
      return InvalidArgument("append: required field " + Quote(fname) + " has " +
                             std::to_string(col.NullCount()) + " null values");
    }
    RETURN_IF_ERROR(CheckFiniteEmbeddings("append", col, batch.anchors));
  }
  if (!batch.anchors.empty()) {
    ASSIGN_OR_RETURN(auto check, SortedUnique(batch.anchors, false));
    (void)check;
  } else {
    // Every row is a new record: required fields must be there before anything is written.
    for (const auto& f : schema.fields()) {
      if (!f.optional && seen.count(f.name) == 0) {
        return InvalidArgument("required field " + Quote(f.name) + " is missing from the batch");
      }
    }
  }
  // A dataset with an anchor allocator (a sharded job reserved anchors) takes automatic
  // anchors from it too, so no writer's anchors collide with another's (spec/14 §19.4).
  // Outside the mutation: the allocator object must survive a failed commit.
  std::vector<uint64_t> reserved;
  if (batch.anchors.empty()) {
    ASSIGN_OR_RETURN(std::optional<uint64_t> first,
                     ReserveAnchorsIfAllocated(impl_->store(), name(), n,
                                               impl_->current()->manifest.next_anchor));
    if (first) {
      reserved.resize(n);
      std::iota(reserved.begin(), reserved.end(), *first);
    }
  }
  // Segments once (invariant 2), in the same mutation as the commit (a failure removes them).
  return impl_->Mutation([&]() -> Result<CommitInfo> {
    uint64_t objects = 0;
    std::vector<WrittenColumn> written;
    for (const auto& col : batch.columns) {
      ASSIGN_OR_RETURN(WrittenColumn w,
                       WriteColumn(impl_->store(), *schema.Find(col.field().name), col, &objects));
      written.push_back(std::move(w));
    }
    const std::vector<uint64_t>* given = batch.anchors.empty() ? nullptr : &batch.anchors;
    if (given == nullptr && !reserved.empty()) given = &reserved;
    std::vector<const Column*> columns;
    for (const auto& col : batch.columns) columns.push_back(&col);
    auto result = impl_->Commit(
        [&](const Version& base, uint32_t) -> Result<DatasetImpl::Built> {
          return BuildAppend(*impl_, base, base.manifest.schema, given, n, written, false, columns);
        },
        options);
    if (result.ok()) result->objects_written += objects;
    return result;
  });
}

Result<CommitInfo> Dataset::Delete(const std::vector<uint64_t>& anchors,
                                   const CommitOptions& options) {
  if (anchors.empty()) return InvalidArgument("delete: no anchors given");
  if (read_only()) return PermissionDenied("dataset " + Quote(name()) + " is open read-only");
  ASSIGN_OR_RETURN(std::vector<uint64_t> sorted, SortedUnique(anchors, true));
  {
    // Nothing to delete: no commit (the result names the unchanged head). Checked
    // against the branch's head, not this handle's cached one: another handle may have
    // appended the anchors since.
    ASSIGN_OR_RETURN(auto cur, impl_->ReadHead());
    impl_->set_current(cur);
    btree::Tree tree(&impl_->store(), impl_->pages(), cur->index);
    ASSIGN_OR_RETURN(auto found, tree.LookupMany(sorted));
    if (std::none_of(found.begin(), found.end(), [](const auto& e) { return e.has_value(); })) {
      CommitInfo info = InfoFromManifest(cur->id, cur->manifest);
      info.added = info.replaced = info.deleted = 0;
      info.fields.clear();
      info.attempts = 0;
      return info;
    }
  }
  return impl_->Commit(
      [&](const Version& base, uint32_t) -> Result<DatasetImpl::Built> {
        DatasetImpl::Built out;
        btree::Tree tree(&impl_->store(), impl_->pages(), base.index);
        ASSIGN_OR_RETURN(auto found, tree.LookupMany(sorted));
        std::vector<uint64_t> live;
        for (size_t i = 0; i < sorted.size(); ++i) {
          if (found[i]) live.push_back(sorted[i]);
        }
        btree::WriteStats ws;
        btree::IndexRef index = base.index, tombs = base.tombstones;
        if (!live.empty()) {
          uint64_t removed = 0;
          ASSIGN_OR_RETURN(index, btree::Remove(impl_->store(), impl_->pages(), base.index, live,
                                                &removed, &ws));
          ASSIGN_OR_RETURN(tombs, btree::InsertAnchors(impl_->store(), impl_->pages(),
                                                       base.tombstones, live, &ws));
        }
        Manifest m = base.manifest;
        m.index = btree::IndexRefToCbor(index);
        m.tombstones = btree::IndexRefToCbor(tombs);
        m.count = base.manifest.count - live.size();
        m.delta = {};
        m.delta.deleted = live.size();
        out.manifest = std::move(m);
        out.objects_written = ws.pages_written;
        return out;
      },
      options);
}

Result<CommitInfo> Dataset::AddLayer(const FieldSpec& field, const std::vector<uint64_t>& anchors,
                                     const Column& values, const CommitOptions& options) {
  if (read_only()) return PermissionDenied("dataset " + Quote(name()) + " is open read-only");
  if (anchors.size() != values.length()) {
    return InvalidArgument("layer " + Quote(field.name) + ": " + std::to_string(anchors.size()) +
                           " anchors for " + std::to_string(values.length()) + " values");
  }
  if (anchors.empty()) return InvalidArgument("layer " + Quote(field.name) + ": no anchors");
  ASSIGN_OR_RETURN(auto check, SortedUnique(anchors, false));
  (void)check;
  FieldSpec spec = field;
  spec.optional = true;  // existing records lack it
  const Schema start = impl_->current()->manifest.schema;
  RETURN_IF_ERROR(RefuseDropped(impl_->current()->manifest, spec.name));
  if (const FieldSpec* existing = start.Find(spec.name)) {
    if (existing->type != spec.type || existing->dim != spec.dim || existing->dtype != spec.dtype ||
        existing->shape != spec.shape) {
      return InvalidArgument("layer " + Quote(spec.name) +
                             " exists with a different type; choose another name");
    }
    spec = *existing;
    if (!spec.optional && values.NullCount() > 0) {
      return InvalidArgument("layer " + Quote(spec.name) + " is a required field but " +
                             std::to_string(values.NullCount()) + " values are null");
    }
  } else {
    RETURN_IF_ERROR(start.WithAddedField(spec).status());
  }
  RETURN_IF_ERROR(CheckColumnMatches(spec, values));
  RETURN_IF_ERROR(CheckFiniteEmbeddings("layer", values, anchors));
  return impl_->Mutation([&]() -> Result<CommitInfo> {
    uint64_t objects = 0;
    ASSIGN_OR_RETURN(WrittenColumn w, WriteColumn(impl_->store(), spec, values, &objects));
    std::vector<WrittenColumn> written{std::move(w)};
    auto result = impl_->Commit(
        [&](const Version& base, uint32_t) -> Result<DatasetImpl::Built> {
          Schema schema = base.manifest.schema;
          RETURN_IF_ERROR(RefuseDropped(base.manifest, spec.name));
          if (const FieldSpec* f = schema.Find(spec.name)) {
            if (!SameType(*f, spec)) {
              return Conflict("field " + Quote(spec.name) +
                              " was added concurrently with another type");
            }
          } else {
            ASSIGN_OR_RETURN(schema, schema.WithAddedField(spec));
          }
          return BuildAppend(*impl_, base, schema, &anchors, anchors.size(), written, true,
                             {&values});
        },
        options);
    if (result.ok()) result->objects_written += objects;
    return result;
  });
}

Result<CommitInfo> Dataset::EvolveSchema(const Schema& next, const CommitOptions& options) {
  const Schema from = impl_->current()->manifest.schema;
  RETURN_IF_ERROR(from.CheckEvolution(next));
  if (next.fields() == from.fields()) {
    return InvalidArgument("schema evolution: the new schema has the same fields");
  }
  for (const auto& f : next.fields()) {
    if (from.Find(f.name) == nullptr)
      RETURN_IF_ERROR(RefuseDropped(impl_->current()->manifest, f.name));
  }
  Schema evolved = next;
  evolved.set_version(from.version() + 1);  // the version is the store's, not the caller's
  return impl_->Commit(
      [&](const Version& base, uint32_t) -> Result<DatasetImpl::Built> {
        if (!(base.manifest.schema == from)) {
          return Conflict("the schema of dataset " + Quote(name()) +
                          " changed concurrently (now version " +
                          std::to_string(base.manifest.schema.version()) + "); re-read and retry");
        }
        DatasetImpl::Built out;
        out.manifest = base.manifest;
        out.manifest.schema = evolved;
        out.manifest.delta = {};
        for (const auto& f : evolved.fields()) {
          if (from.Find(f.name) == nullptr) out.manifest.delta.fields.push_back(f.name);
        }
        for (const auto& f : from.fields()) {
          if (evolved.Find(f.name) == nullptr) {
            out.manifest.dropped.push_back(f.name);
            out.manifest.indexes.erase(f.name);  // its spatial index goes with it (spec/21)
          }
        }
        std::sort(out.manifest.dropped.begin(), out.manifest.dropped.end());
        return out;
      },
      options);
}

Result<CommitInfo> Dataset::SetMeta(const std::map<std::string, std::string>& meta,
                                    const CommitOptions& options) {
  if (meta.empty()) return InvalidArgument("set-meta: no keys given");
  for (const auto& [k, v] : meta) {
    if (k.empty() || k.size() > 256) {
      return InvalidArgument("metadata key " + Quote(k) + " must be 1..256 bytes");
    }
    if (v.size() > 65536) {
      return InvalidArgument("metadata value for " + Quote(k) + " is over 64 KiB");
    }
  }
  return impl_->Commit(
      [&](const Version& base, uint32_t) -> Result<DatasetImpl::Built> {
        DatasetImpl::Built out;
        out.manifest = base.manifest;
        out.manifest.delta = {};
        for (const auto& [k, v] : meta) {
          if (v.empty()) {
            out.manifest.meta.erase(k);
          } else {
            out.manifest.meta[k] = v;
          }
        }
        return out;
      },
      options);
}

Status Dataset::Snapshot(std::string_view label) {
  std::string ref = dataset::SnapshotRef(name(), label);
  Status valid = ValidateRefName(ref);
  if (!valid.ok() || label.empty()) {
    return InvalidArgument("snapshot label " + Quote(label) + " is not valid: " +
                           (label.empty() ? std::string("empty") : valid.message()));
  }
  Status s = impl_->store().CreateRef(ref, head());
  if (s.code() == StatusCode::kAlreadyExists) {
    auto existing = impl_->store().ReadRef(ref);
    return AlreadyExists("snapshot " + Quote(label) + " of dataset " + Quote(name()) +
                         " already exists" +
                         (existing.ok() ? " (at " + existing->target.ToString() + ")" : ""));
  }
  return s;
}

Status Dataset::Branch(std::string_view new_branch) {
  RETURN_IF_ERROR(dataset::ValidateBranchName(new_branch));
  Status s = impl_->store().CreateRef(dataset::BranchRef(name(), new_branch), head());
  if (s.code() == StatusCode::kAlreadyExists) {
    return AlreadyExists("branch " + Quote(new_branch) + " of dataset " + Quote(name()) +
                         " already exists");
  }
  return s;
}

Status Dataset::History(const std::function<bool(const CommitInfo&)>& visit, uint64_t limit) const {
  // Newest first across the DAG: a max-heap on (time, id) with a visited set of manifests.
  using Item = std::pair<uint64_t, ObjectId>;
  std::priority_queue<Item> heap;
  std::unordered_set<ObjectId> seen;
  auto cur = impl_->current();
  heap.emplace(cur->manifest.time_ns, cur->id);
  seen.insert(cur->id);
  // Versions whose older history GC's retention cut (spec/06-refs.md §6.10).
  std::unordered_set<ObjectId> pruned;
  RETURN_IF_ERROR(ListPruned(impl_->store(), impl_->name_, &pruned));
  uint64_t emitted = 0;
  while (!heap.empty()) {
    ObjectId id = heap.top().second;
    heap.pop();
    ASSIGN_OR_RETURN(auto v, impl_->LoadVersion(id));
    CommitInfo info = InfoFromManifest(id, v->manifest);
    info.history_pruned = pruned.count(id) != 0;
    if (!visit(info)) return Status::Ok();
    if (limit != 0 && ++emitted >= limit) return Status::Ok();
    if (info.history_pruned) continue;
    for (const auto& p : v->manifest.parents) {
      if (!seen.insert(p).second) continue;
      auto pv = impl_->LoadVersion(p);
      if (!pv.ok()) return pv.status();
      heap.emplace((*pv)->manifest.time_ns, p);
    }
  }
  return Status::Ok();
}

Status Dataset::Diff(const ObjectId& other,
                     const std::function<bool(const DiffEntry&)>& visit) const {
  ASSIGN_OR_RETURN(auto ov, impl_->LoadVersion(other));
  auto cur = impl_->current();
  if (ov->manifest.genesis != cur->manifest.genesis) {
    return InvalidArgument("manifest " + other.ToString() + " belongs to another dataset");
  }
  return btree::Diff(impl_->store(), impl_->pages(), cur->index, ov->index,
                     [&](const btree::Change& c) {
                       DiffEntry e;
                       e.anchor = c.anchor;
                       e.kind = c.kind == btree::ChangeKind::kAdded     ? DiffEntry::Kind::kAdded
                                : c.kind == btree::ChangeKind::kRemoved ? DiffEntry::Kind::kRemoved
                                                                        : DiffEntry::Kind::kChanged;
                       e.fields = c.fields;
                       return visit(e);
                     });
}

Status ListDatasets(Store& store, const std::function<bool(std::string_view)>& visit) {
  std::string last;
  bool stop = false;
  Status s = store.ListRefs("", [&](const RefValue& r) {
    size_t pos = r.name.find("/branches/");
    if (pos == std::string::npos) return true;
    std::string name = r.name.substr(0, pos);
    if (name == last || dataset::ValidateDatasetName(name).code() != StatusCode::kOk) return true;
    last = name;
    if (!visit(name)) {
      stop = true;
      return false;
    }
    return true;
  });
  (void)stop;
  return s;
}

}  // namespace dreamdb
