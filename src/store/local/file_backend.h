// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// The file:// backend (spec/05-backend.md §8): objects and refs in a local directory.
//
//   <root>/dreamdb-store            "dreamdb-store 1\n": the layout version
//   <root>/objects/<xx>/<id-text>   the object bytes; xx = ObjectId::ShardPrefix()
//   <root>/refs/<encoded-name>      a ref file; '/' in the name encoded as '~'
//   <root>/locks/<encoded-name>     the ref's lock file, flock(LOCK_EX)ed around changes
//   <root>/tmp/                     temp files, renamed or linked into place
//
// Design notes (ref changes; spec/06-refs.md §7):
//   Invariants:
//     1. A file under objects/ or refs/ is complete: it appears only by rename() or link()
//        of a temp file that was fully written and fsync()ed.
//     2. A ref file changes only while its writer holds flock(LOCK_EX) on the lock file
//        whose inode is currently linked at locks/<encoded-name>.
//     3. OK is returned only after the directory holding the new entry was fsync()ed.
//   Transitions (all under the lock of invariant 2):
//     absent  --Create (link)-------------> present(t)
//     present(e) --CompareAndSwap (rename)--> present(d)     kConflict if not at e
//     present(e) --Delete (unlink)---------> absent          kConflict if not at e
//   Readers take no lock: rename() replaces the file atomically, so a reader sees the old
//   or the new ref file, never a mix. flock locks die with their process, so a kill -9
//   never wedges a ref. A lock file is unlinked (while held) when its ref is deleted;
//   LockRef re-checks after locking that it holds the inode still linked at the path.
//
// Thread safety: every method may be called concurrently from any thread and from any
// number of processes sharing the directory (flock locks are per open file description,
// so threads of one process exclude each other too).

#ifndef DREAMDB_SRC_STORE_LOCAL_FILE_BACKEND_H_
#define DREAMDB_SRC_STORE_LOCAL_FILE_BACKEND_H_

#include <sys/stat.h>
#include <sys/types.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dreamdb/store.h"
#include "src/base/lru_cache.h"

namespace dreamdb {

struct FileBackendOptions {
  // Test hook for fault injection: called before each system call the backend makes with
  // the call's name ("open", "read", "write", "fsync", "close", "rename", "link",
  // "unlink", "mkdir", "stat", "utime", "flock", "opendir") and the path involved. A nonzero
  // return is taken as the call's errno and the call is not made; EINTR is retried
  // (the hook is asked again), as a real EINTR would be.
  std::function<int(std::string_view syscall, const std::string& path)> fault_hook;
  // Open an existing store only (StoreOpenMode::kMustExist): a missing root, or a root
  // without the marker that is empty, is kNotFound and nothing is created.
  bool must_exist = false;
};

class FileBackend final : public ObjectBackend, public RefBackend {
 public:
  // Opens the store rooted at `root` (absolute path), creating the directory and the
  // layout if absent or empty (unless options.must_exist: then kNotFound, "no DreamDB
  // store at ..."). kInvalidArgument if `root` is not a directory or is a
  // non-empty directory without the marker; kUnsupported for a newer layout version;
  // kCorrupt for a malformed marker; kIoError for OS failures.
  static Result<std::shared_ptr<FileBackend>> Open(const std::string& root,
                                                   FileBackendOptions options = {});
  ~FileBackend() override;
  FileBackend(const FileBackend&) = delete;
  FileBackend& operator=(const FileBackend&) = delete;

  // ObjectBackend.
  Status Put(const ObjectId& id, ByteView data) override;
  // Writes and renames without fsync and records the object; Sync() then fsyncs every
  // recorded object file and the shard directories holding them (spec/05-backend.md
  // §8.3.5), several at a time. Only this handle's objects are flushed, never the whole
  // file system, so a commit does not wait for another writer's dirty pages.
  Status PutUnsynced(const ObjectId& id, ByteView data) override;
  Status Sync() override;
  Result<Bytes> Get(const ObjectId& id) override;
  Result<Bytes> GetRange(const ObjectId& id, uint64_t offset, uint64_t length) override;
  // One (cached) descriptor and one fstat for all the ranges, then a pread per range.
  Result<std::vector<Bytes>> GetRanges(const ObjectId& id,
                                       std::span<const ObjectRange> ranges) override;
  Result<ObjectInfo> Head(const ObjectId& id) override;
  Status List(std::string_view shard_prefix, const ObjectVisitor& visit) override;
  Status Delete(const ObjectId& id) override;

  // RefBackend.
  Result<RefValue> Read(std::string_view name) override;
  Status Create(std::string_view name, const ObjectId& target) override;
  Status CompareAndSwap(std::string_view name, const ObjectId& expected,
                        const ObjectId& desired) override;
  Status Delete(std::string_view name, const ObjectId& expected) override;
  Status List(std::string_view prefix, const RefVisitor& visit) override;
  // When `objects` is this backend: the new ref file is written to tmp/ before the lock is
  // taken and fsynced in the same parallel round as the pending objects, so a commit
  // waits for two rounds of fsyncs (objects + ref file; then refs/) instead of three
  // (spec/05-backend.md §8.4.4). Otherwise the default: objects.Sync(), then the change.
  Status SyncThenCompareAndSwap(ObjectBackend& objects, std::string_view name,
                                const ObjectId& expected, const ObjectId& desired) override;
  Status SyncThenCreate(ObjectBackend& objects, std::string_view name,
                        const ObjectId& target) override;

  const std::string& root() const { return root_; }
  std::string ObjectPath(const ObjectId& id) const;
  std::string RefPath(std::string_view name) const;

  // '/' <-> '~' ('~' is not a legal ref-name character, so the mapping is reversible).
  static std::string EncodeRefName(std::string_view name);
  // nullopt unless `encoded` decodes to a valid ref name.
  static std::optional<std::string> DecodeRefName(std::string_view encoded);
  // The ref file format (spec/06-refs.md §7).
  static std::string FormatRefFile(const ObjectId& target, std::string_view writer);
  // Strict parse; kCorrupt naming the ref (and `path`) when malformed, kUnsupported for
  // a newer format version.
  static Result<ObjectId> ParseRefFile(std::string_view name, const std::string& path,
                                       std::string_view content);
  // 32 lowercase hex digits, random per process (regenerated in a forked child), written
  // into every ref file this process writes.
  static std::string WriterNonce();

 private:
  class RefLock;

  FileBackend(std::string root, FileBackendOptions options);
  Status Init();

  // Fault hook: nonzero (and errno set) when the call must fail.
  int Fault(const char* call, const std::string& path) const;
  int SysOpen(const std::string& path, int flags, mode_t mode = 0) const;
  int SysStat(const std::string& path, struct stat* st) const;
  int SysFsync(int fd, const std::string& path) const;
  // fdatasync: for a file whose bytes and size matter, not its times (objects, ref temp
  // files). The fault hook sees it as "fsync".
  int SysFdatasync(int fd, const std::string& path) const;
  int SysClose(int fd, const std::string& path) const;
  int SysRename(const std::string& from, const std::string& to) const;
  int SysLink(const std::string& from, const std::string& to) const;
  int SysUnlink(const std::string& path) const;
  int SysMkdir(const std::string& path) const;
  int SysFlock(int fd, const std::string& path) const;
  int SysUtimeNow(const std::string& path) const;
  // pread/write: the byte count, or -1 with errno set.
  int SysRead(int fd, const std::string& path, char* buf, size_t n, uint64_t offset) const;
  int SysWrite(int fd, const std::string& path, const char* buf, size_t n) const;
  template <typename F>
  int Retry(const char* name, const std::string& path, F&& call) const;
  Status ReadAll(int fd, const std::string& path, uint64_t offset, uint64_t length,
                 Bytes* out) const;

  // An open read-only descriptor of an object file, closed when the last holder lets go.
  struct OpenObject {
    OpenObject(int f, std::string p) : fd(f), path(std::move(p)) {}
    ~OpenObject();
    OpenObject(const OpenObject&) = delete;
    OpenObject& operator=(const OpenObject&) = delete;
    const int fd;
    const std::string path;  // ObjectPath(id), kept so a cached read builds no path
  };
  // The object's descriptor, path and stat: from the cache when the cached file is still
  // the one linked at its path (st_nlink > 0: not deleted or replaced), else opened (and
  // cached). kNotFound if absent.
  Result<std::shared_ptr<const OpenObject>> OpenForRead(const ObjectId& id, struct stat* st);

  // Writes `data` to a fresh file under tmp/ and fsyncs it; returns its path.
  // Writes a temp file; fsyncs it when `sync`.
  Result<std::string> WriteTemp(std::string_view kind, ByteView data, bool sync = true) const;
  Status PutImpl(const ObjectId& id, ByteView data, bool sync);
  // Adds an object put unsynced (shard "xx", its path) to pending_.
  Status RecordUnsynced(const std::string& shard, const std::string& path);
  // Sync(), also fsyncing `extra_file` (a ref temp file) in the same round when given.
  Status SyncWith(const std::string* extra_file);
  // fsyncs the files and directories of `pending` (sorted, unique), `extra_file` and, when
  // `objects_dir`, objects/, in parallel on the process's IoPool. On failure returns the
  // first error; `failed` gets the entries not known durable, *objects_dir_failed whether
  // objects/ is.
  Status SyncPending(const std::vector<std::pair<size_t, std::string>>& pending,
                     const std::string* extra_file, bool objects_dir,
                     std::vector<std::pair<size_t, std::string>>* failed, bool* objects_dir_failed);
  // An fd of objects/<xx>, creating the directory if needed. Cached; never closed early.
  // A directory it creates is made durable at once when `sync`, else by the next Sync.
  Result<int> ShardDirFd(const std::string& shard, bool sync = true);
  Status FsyncDir(int fd, const std::string& path) const;
  // fsync of refs/ shared by concurrent ref changes: one that starts after a caller's
  // rename covers it, so threads moving different refs at once share fsyncs (group
  // commit). Returns OK only after an fsync of refs/ that began after the call did.
  Status FsyncRefsDir();

  Status LockRef(const std::string& encoded, RefLock* lock) const;
  Result<RefValue> ReadRef(std::string_view name) const;

  const std::string root_;
  const FileBackendOptions options_;
  int root_fd_ = -1;
  // Objects put unsynced since the last Sync took them (shard index, object path).
  std::mutex pending_mu_;
  std::vector<std::pair<size_t, std::string>> pending_;  // guarded by pending_mu_
  // Held for a whole Sync, so a Sync returns only after every earlier one finished: an
  // object another Sync took from pending_ is durable before a later Sync returns OK.
  std::mutex sync_mu_;
  // objects/ has an entry (a shard directory made by an unsynced put) not yet fsynced.
  std::atomic<bool> objects_dir_dirty_{false};
  int objects_fd_ = -1;
  int refs_fd_ = -1;
  // FsyncRefsDir's state: fsyncs of refs/ numbered from 1; one runs at a time.
  std::mutex refs_sync_mu_;
  std::condition_variable refs_sync_cv_;
  uint64_t refs_sync_started_ = 0;     // guarded by refs_sync_mu_
  uint64_t refs_sync_done_ = 0;        // guarded by refs_sync_mu_
  bool refs_sync_running_ = false;     // guarded by refs_sync_mu_
  uint64_t refs_sync_failed_gen_ = 0;  // the latest failed fsync; guarded by refs_sync_mu_
  Status refs_sync_failure_;           // its error; guarded by refs_sync_mu_
  // objects/<xx> directory fds, -1 until first used; set once with compare-exchange.
  std::array<std::atomic<int>, 256> shard_fds_;
  // Read descriptors of recently read objects (bounded: kObjectFdCacheSize entries), so a
  // read of a hot segment is fstat + pread instead of open + fstat + pread + close.
  ByteLruCache<ObjectId, OpenObject> object_fds_;
};

}  // namespace dreamdb

#endif  // DREAMDB_SRC_STORE_LOCAL_FILE_BACKEND_H_
