// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Implements spec/05-backend.md §8 and spec/06-refs.md §7.
#include "src/store/local/file_backend.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <utility>
#include <vector>

#include "src/base/buffer_recycler.h"
#include "src/base/encoding.h"
#include "src/base/io_pool.h"

namespace dreamdb {
namespace {

constexpr std::string_view kMarkerName = "dreamdb-store";
constexpr std::string_view kMarkerContent = "dreamdb-store 1\n";
constexpr std::string_view kMarkerInitPrefix = ".dreamdb-store.init.";
constexpr int kLayoutVersion = 1;
constexpr size_t kMaxRefFileBytes = 4096;
constexpr size_t kMaxIoChunk = size_t{1} << 30;  // fits the int the Sys* wrappers return
// Cached object read descriptors per handle: well under common RLIMIT_NOFILE soft limits
// (1024) even with several handles open.
constexpr uint64_t kObjectFdCacheSize = 128;

std::string StrError(int err) {
  char buf[256];
  return strerror_r(err, buf, sizeof(buf));  // GNU variant: returns the message
}

// Maps an errno to a Status naming the operation and path (spec/05-backend.md §6.4).
Status OsError(int err, std::string_view op, const std::string& path,
               bool enoent_is_not_found = true) {
  std::string msg = std::string(op) + " " + Quote(path, 4096) + ": " + StrError(err);
  switch (err) {
    case ENOENT:
      return enoent_is_not_found ? NotFound(msg) : IoError(msg);
    case EAGAIN:
    case EBUSY:
    case EMFILE:
    case ENFILE:
    case ENOMEM:
    case ETIMEDOUT:
    case EINTR:
      return Unavailable(msg);
    default:
      return IoError(msg);  // EACCES, EPERM, EROFS, ENOSPC, EDQUOT, EIO, ...
  }
}

Status ObjectNotFound(const ObjectId& id) {
  return NotFound("object " + id.ToString() + " not found");
}

Status RefNotFound(std::string_view name) {
  return NotFound("ref " + Quote(name) + " does not exist");
}

Status RefConflict(std::string_view name, const ObjectId& actual, const ObjectId& expected) {
  return Conflict("ref " + Quote(name) + " is at " + actual.ToString() + ", not at the expected " +
                  expected.ToString());
}

int64_t ModifiedUnixMs(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000;
}

bool IsLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

bool IsShardName(std::string_view s) {
  return s.size() == 2 && IsLowerHex(s[0]) && IsLowerHex(s[1]);
}

std::atomic<uint64_t> g_temp_counter{0};

// Reads a directory's entry names (without "." and ".."). ENOENT -> kNotFound.
class DirReader {
 public:
  ~DirReader() {
    if (dir_ != nullptr) closedir(dir_);
  }
  Status Open(const std::string& path) {
    dir_ = opendir(path.c_str());
    if (dir_ == nullptr) return OsError(errno, "open directory", path);
    path_ = path;
    return Status::Ok();
  }
  // Next name, or nullopt at the end; error status via `status`.
  std::optional<std::string_view> Next(Status* status) {
    while (true) {
      errno = 0;
      dirent* e = readdir(dir_);
      if (e == nullptr) {
        if (errno != 0) *status = OsError(errno, "read directory", path_);
        return std::nullopt;
      }
      std::string_view name(e->d_name);
      if (name == "." || name == "..") continue;
      return name;
    }
  }
  int fd() const { return dirfd(dir_); }

 private:
  DIR* dir_ = nullptr;
  std::string path_;
};

}  // namespace

// An exclusive flock on locks/<encoded-name>, released (by closing) on destruction.
class FileBackend::RefLock {
 public:
  RefLock() = default;
  RefLock(const RefLock&) = delete;
  RefLock& operator=(const RefLock&) = delete;
  ~RefLock() {
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  friend class FileBackend;
  int fd_ = -1;
  std::string path_;
};

// ---- Static helpers ----

std::string FileBackend::EncodeRefName(std::string_view name) {
  std::string out(name);
  std::replace(out.begin(), out.end(), '/', '~');
  return out;
}

std::optional<std::string> FileBackend::DecodeRefName(std::string_view encoded) {
  std::string name(encoded);
  std::replace(name.begin(), name.end(), '~', '/');
  if (!ValidateRefName(name).ok()) return std::nullopt;
  return name;
}

std::string FileBackend::FormatRefFile(const ObjectId& target, std::string_view writer) {
  std::string out = "dreamdb-ref 1\ntarget ";
  out += target.ToString();
  out += "\nwriter ";
  out += writer;
  out += '\n';
  return out;
}

Result<ObjectId> FileBackend::ParseRefFile(std::string_view name, const std::string& path,
                                           std::string_view content) {
  auto corrupt = [&](const std::string& why) {
    return Corrupt("ref " + Quote(name) + " is corrupt: " + why + " (file " + Quote(path, 4096) +
                   ")");
  };
  if (content.empty() || content.back() != '\n') {
    return corrupt("the ref file does not end with a newline");
  }
  std::vector<std::string_view> lines;
  for (size_t start = 0; start < content.size();) {
    size_t end = content.find('\n', start);
    lines.push_back(content.substr(start, end - start));
    start = end + 1;
  }
  constexpr std::string_view kMagic = "dreamdb-ref ";
  if (lines[0].substr(0, kMagic.size()) != kMagic) {
    return corrupt("the first line is not 'dreamdb-ref <version>'");
  }
  std::string_view version = lines[0].substr(kMagic.size());
  if (version != "1") {
    bool numeric =
        !version.empty() && version.size() <= 9 && version[0] != '0' &&
        std::all_of(version.begin(), version.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (numeric) {
      return Unsupported("ref " + Quote(name) + " has format version " + std::string(version) +
                         "; this build reads version 1 (file " + Quote(path, 4096) + ")");
    }
    return corrupt("bad format version " + Quote(version));
  }
  if (lines.size() != 3) {
    return corrupt("expected 3 lines, found " + std::to_string(lines.size()));
  }
  constexpr std::string_view kTarget = "target ";
  if (lines[1].substr(0, kTarget.size()) != kTarget) {
    return corrupt("the second line is not 'target <object id>'");
  }
  auto target = ObjectId::Parse(lines[1].substr(kTarget.size()));
  if (!target.ok()) return corrupt("bad target: " + target.status().message());
  constexpr std::string_view kWriter = "writer ";
  std::string_view writer = lines[2].substr(std::min(lines[2].size(), kWriter.size()));
  if (lines[2].substr(0, kWriter.size()) != kWriter || writer.size() != 32 ||
      !std::all_of(writer.begin(), writer.end(), IsLowerHex)) {
    return corrupt("the third line is not 'writer <32 lowercase hex digits>'");
  }
  return *target;
}

std::string FileBackend::WriterNonce() {
  // Regenerated when the pid changes so that a forked child never shares its parent's
  // nonce. (Forking while another thread is inside this function is not supported.)
  static std::mutex mu;
  static pid_t owner = 0;    // guarded by mu
  static std::string nonce;  // guarded by mu
  std::lock_guard lock(mu);
  pid_t pid = getpid();
  if (pid != owner || nonce.empty()) {
    unsigned char buf[16];
    size_t got = 0;
    while (got < sizeof(buf)) {
      ssize_t n = getrandom(buf + got, sizeof(buf) - got, 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        // No entropy source: fall back to something still unique per process.
        std::string fallback = std::to_string(pid) + "." + std::to_string(time(nullptr));
        std::memset(buf, 0, sizeof(buf));
        std::memcpy(buf, fallback.data(), std::min(fallback.size(), sizeof(buf)));
        break;
      }
      got += static_cast<size_t>(n);
    }
    nonce = HexEncode(std::string_view(reinterpret_cast<const char*>(buf), sizeof(buf)));
    owner = pid;
  }
  return nonce;
}

// ---- System calls (EINTR retried; fault hook consulted) ----

int FileBackend::Fault(const char* call, const std::string& path) const {
  if (!options_.fault_hook) return 0;
  int err = options_.fault_hook(call, path);
  if (err != 0) errno = err;
  return err;
}

// Runs `call` until it does not fail with EINTR. The fault hook is consulted before each
// attempt; an injected EINTR is retried like a real one.
template <typename F>
int FileBackend::Retry(const char* name, const std::string& path, F&& call) const {
  while (true) {
    if (int err = Fault(name, path)) {
      if (err == EINTR) continue;
      return -1;
    }
    int rc = call();
    if (rc < 0 && errno == EINTR) continue;
    return rc;
  }
}

int FileBackend::SysOpen(const std::string& path, int flags, mode_t mode) const {
  return Retry("open", path, [&] { return ::open(path.c_str(), flags | O_CLOEXEC, mode); });
}

int FileBackend::SysStat(const std::string& path, struct stat* st) const {
  return Retry("stat", path, [&] { return ::stat(path.c_str(), st); });
}

int FileBackend::SysFsync(int fd, const std::string& path) const {
  return Retry("fsync", path, [&] { return ::fsync(fd); });
}

int FileBackend::SysFdatasync(int fd, const std::string& path) const {
  return Retry("fsync", path, [&] { return ::fdatasync(fd); });
}

int FileBackend::SysClose(int fd, const std::string& path) const {
  if (int err = Fault("close", path)) {
    ::close(fd);
    if (err == EINTR) return 0;  // as below
    errno = err;
    return -1;
  }
  // Linux releases the fd even when close fails with EINTR: never retry.
  int rc = ::close(fd);
  if (rc < 0 && errno == EINTR) return 0;
  return rc;
}

int FileBackend::SysRename(const std::string& from, const std::string& to) const {
  return Retry("rename", to, [&] { return ::rename(from.c_str(), to.c_str()); });
}

int FileBackend::SysLink(const std::string& from, const std::string& to) const {
  return Retry("link", to, [&] { return ::link(from.c_str(), to.c_str()); });
}

int FileBackend::SysUnlink(const std::string& path) const {
  return Retry("unlink", path, [&] { return ::unlink(path.c_str()); });
}

int FileBackend::SysMkdir(const std::string& path) const {
  return Retry("mkdir", path, [&] { return ::mkdir(path.c_str(), 0755); });
}

int FileBackend::SysUtimeNow(const std::string& path) const {
  return Retry("utime", path, [&] { return ::utimensat(AT_FDCWD, path.c_str(), nullptr, 0); });
}

int FileBackend::SysFlock(int fd, const std::string& path) const {
  return Retry("flock", path, [&] { return ::flock(fd, LOCK_EX); });
}

int FileBackend::SysRead(int fd, const std::string& path, char* buf, size_t n,
                         uint64_t offset) const {
  ssize_t got = 0;
  int rc = Retry("read", path, [&] {
    got = ::pread(fd, buf, n, static_cast<off_t>(offset));
    return got < 0 ? -1 : 0;
  });
  return rc < 0 ? -1 : static_cast<int>(got);
}

int FileBackend::SysWrite(int fd, const std::string& path, const char* buf, size_t n) const {
  ssize_t put = 0;
  int rc = Retry("write", path, [&] {
    put = ::write(fd, buf, n);
    return put < 0 ? -1 : 0;
  });
  return rc < 0 ? -1 : static_cast<int>(put);
}

Status FileBackend::ReadAll(int fd, const std::string& path, uint64_t offset, uint64_t length,
                            Bytes* out) const {
  // A large read reuses a buffer a scan gave back: its pages are mapped already.
  if (length >= BufferRecycler::kMinBytes && out->capacity() < length) {
    *out = BufferRecycler::TakeSized(length);  // overwritten below: not zeroed
  }
  out->resize(length);
  uint64_t done = 0;
  while (done < length) {
    int n = SysRead(fd, path, out->data() + done, std::min<uint64_t>(length - done, kMaxIoChunk),
                    offset + done);
    if (n < 0) return OsError(errno, "read", path, false);
    if (n == 0) break;  // the file is shorter than its stat said
    done += static_cast<uint64_t>(n);
  }
  out->resize(done);
  return Status::Ok();
}

Status FileBackend::FsyncDir(int fd, const std::string& path) const {
  if (SysFsync(fd, path) != 0) return OsError(errno, "fsync directory", path, false);
  return Status::Ok();
}

Result<std::string> FileBackend::WriteTemp(std::string_view kind, ByteView data, bool sync) const {
  std::string path = root_ + "/tmp/" + std::string(kind) + "." + WriterNonce() + "." +
                     std::to_string(g_temp_counter.fetch_add(1, std::memory_order_relaxed));
  int fd = SysOpen(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0) return OsError(errno, "create", path, false);
  Status st;
  for (ByteView rest = data; !rest.empty();) {
    int n = SysWrite(fd, path, rest.data(), std::min(rest.size(), kMaxIoChunk));
    if (n < 0) {
      st = OsError(errno, "write", path, false);
      break;
    }
    rest.remove_prefix(static_cast<size_t>(n));
  }
  if (st.ok() && sync && SysFdatasync(fd, path) != 0) st = OsError(errno, "fsync", path, false);
  if (SysClose(fd, path) != 0 && st.ok()) st = OsError(errno, "close", path, false);
  if (!st.ok()) {
    ::unlink(path.c_str());
    return st;
  }
  return path;
}

// ---- Open ----

FileBackend::OpenObject::~OpenObject() { ::close(fd); }

FileBackend::FileBackend(std::string root, FileBackendOptions options)
    : root_(std::move(root)), options_(std::move(options)), object_fds_(kObjectFdCacheSize) {
  for (auto& fd : shard_fds_) fd.store(-1, std::memory_order_relaxed);
}

FileBackend::~FileBackend() {
  for (auto& fd : shard_fds_) {
    int f = fd.load(std::memory_order_relaxed);
    if (f >= 0) ::close(f);
  }
  for (int f : {root_fd_, objects_fd_, refs_fd_}) {
    if (f >= 0) ::close(f);
  }
}

Result<std::shared_ptr<FileBackend>> FileBackend::Open(const std::string& root,
                                                       FileBackendOptions options) {
  if (root.empty() || root.front() != '/') {
    return InvalidArgument("store root " + Quote(root, 4096) + " is not an absolute path");
  }
  std::string clean = root;
  while (clean.size() > 1 && clean.back() == '/') clean.pop_back();
  std::shared_ptr<FileBackend> backend(new FileBackend(clean, std::move(options)));
  RETURN_IF_ERROR(backend->Init());
  return backend;
}

Status FileBackend::Init() {
  if (options_.must_exist) {
    // Nothing may be created: the root and its marker must be there already.
    struct stat st;
    if (SysStat(root_, &st) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) {
        return NotFound("no DreamDB store at " + Quote(root_, 4096) +
                        " (the directory does not exist)");
      }
      return OsError(errno, "stat", root_, false);
    }
    if (!S_ISDIR(st.st_mode)) {
      return InvalidArgument("store root: " + Quote(root_, 4096) + " is not a directory");
    }
  }
  // Create the root and its missing ancestors.
  for (size_t pos = 1; pos <= root_.size(); ++pos) {
    if (pos != root_.size() && root_[pos] != '/') continue;
    std::string dir = root_.substr(0, pos);
    struct stat st;
    if (SysStat(dir, &st) == 0) {
      if (!S_ISDIR(st.st_mode)) {
        return InvalidArgument("store root: " + Quote(dir, 4096) + " is not a directory");
      }
      continue;
    }
    if (errno != ENOENT) return OsError(errno, "stat", dir, false);
    if (SysMkdir(dir) != 0 && errno != EEXIST) return OsError(errno, "mkdir", dir, false);
  }

  const std::string marker = root_ + "/" + std::string(kMarkerName);
  bool created = false;
  for (int attempt = 0;; ++attempt) {
    int fd = SysOpen(marker, O_RDONLY);
    if (fd >= 0) {
      Bytes content;
      Status st = ReadAll(fd, marker, 0, 64, &content);
      ::close(fd);
      RETURN_IF_ERROR(st);
      if (content == kMarkerContent) break;
      constexpr std::string_view kPrefix = "dreamdb-store ";
      std::string_view v(content);
      if (v.substr(0, kPrefix.size()) == kPrefix && v.back() == '\n') {
        std::string_view num = v.substr(kPrefix.size(), v.size() - kPrefix.size() - 1);
        bool numeric =
            !num.empty() && num.size() <= 9 && num[0] != '0' &&
            std::all_of(num.begin(), num.end(), [](char c) { return c >= '0' && c <= '9'; });
        if (numeric && std::stoi(std::string(num)) > kLayoutVersion) {
          return Unsupported("store at " + Quote(root_, 4096) + " has layout version " +
                             std::string(num) + "; this build supports version 1");
        }
      }
      return Corrupt("store marker " + Quote(marker, 4096) +
                     " is malformed: expected \"dreamdb-store 1\\n\", found " + Quote(content));
    }
    if (errno != ENOENT) return OsError(errno, "open", marker, false);
    if (attempt >= 3)
      return Unavailable("store marker " + Quote(marker, 4096) + " keeps vanishing");

    // No marker: the directory must be empty (apart from other openers' init files).
    DirReader dir;
    RETURN_IF_ERROR(dir.Open(root_));
    Status st;
    std::optional<std::string> stranger;
    while (auto name = dir.Next(&st)) {
      if (name->substr(0, kMarkerInitPrefix.size()) == kMarkerInitPrefix) continue;
      stranger = std::string(*name);
      break;
    }
    RETURN_IF_ERROR(st);
    if (stranger && *stranger == kMarkerName) continue;  // another process just created it
    if (!stranger && options_.must_exist) {
      return NotFound("no DreamDB store at " + Quote(root_, 4096) + " (the directory is empty)");
    }
    if (stranger) {
      // Maybe another process created the marker after our open(): look again.
      struct stat mst;
      if (SysStat(marker, &mst) == 0) continue;
      return InvalidArgument("directory " + Quote(root_, 4096) +
                             " is not empty and is not a DreamDB store (no '" +
                             std::string(kMarkerName) + "' file; found " + Quote(*stranger) +
                             "); refusing to write into it");
    }
    // Publish the marker atomically: write a unique init file, link() it into place.
    std::string init = root_ + "/" + std::string(kMarkerInitPrefix) + WriterNonce() + "." +
                       std::to_string(g_temp_counter.fetch_add(1));
    int ifd = SysOpen(init, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (ifd < 0) return OsError(errno, "create", init, false);
    ssize_t n = ::write(ifd, kMarkerContent.data(), kMarkerContent.size());
    int err = n == static_cast<ssize_t>(kMarkerContent.size()) ? 0 : (n < 0 ? errno : EIO);
    if (err == 0 && SysFsync(ifd, init) != 0) err = errno;
    ::close(ifd);
    if (err == 0 && SysLink(init, marker) != 0 && errno != EEXIST) err = errno;
    ::unlink(init.c_str());
    if (err != 0) return OsError(err, "create store marker", marker, false);
    created = true;
  }

  for (const char* sub : {"objects", "refs", "locks", "tmp"}) {
    std::string dir = root_ + "/" + sub;
    if (SysMkdir(dir) == 0) {
      created = true;
    } else if (errno != EEXIST) {
      return OsError(errno, "mkdir", dir, false);
    }
  }
  auto open_dir = [this](const std::string& path, int* fd) -> Status {
    *fd = SysOpen(path, O_RDONLY | O_DIRECTORY);
    if (*fd < 0) return OsError(errno, "open directory", path, false);
    return Status::Ok();
  };
  RETURN_IF_ERROR(open_dir(root_, &root_fd_));
  RETURN_IF_ERROR(open_dir(root_ + "/objects", &objects_fd_));
  RETURN_IF_ERROR(open_dir(root_ + "/refs", &refs_fd_));
  if (created) RETURN_IF_ERROR(FsyncDir(root_fd_, root_));
  return Status::Ok();
}

// ---- Objects ----

std::string FileBackend::ObjectPath(const ObjectId& id) const {
  return root_ + "/objects/" + id.ShardPrefix() + "/" + id.ToString();
}

Result<int> FileBackend::ShardDirFd(const std::string& shard, bool sync) {
  size_t index = static_cast<size_t>(std::stoi(shard, nullptr, 16));
  int fd = shard_fds_[index].load(std::memory_order_acquire);
  if (fd >= 0) return fd;
  std::string path = root_ + "/objects/" + shard;
  // A shard directory's entry in objects/ must be durable when the objects inside it are.
  // For an unsynced put the next Sync fsyncs objects/ in its parallel round; the flag is
  // set before the directory is looked at, so whichever thread or process made the
  // directory (maybe not durably yet), an object recorded after this is covered.
  if (!sync) objects_dir_dirty_.store(true, std::memory_order_release);
  fd = SysOpen(path, O_RDONLY | O_DIRECTORY);
  if (fd < 0 && errno == ENOENT) {
    if (SysMkdir(path) != 0 && errno != EEXIST) return OsError(errno, "mkdir", path, false);
    if (sync) RETURN_IF_ERROR(FsyncDir(objects_fd_, root_ + "/objects"));
    fd = SysOpen(path, O_RDONLY | O_DIRECTORY);
  }
  if (fd < 0) return OsError(errno, "open directory", path, false);
  int expected = -1;
  if (!shard_fds_[index].compare_exchange_strong(expected, fd, std::memory_order_acq_rel)) {
    ::close(fd);
    return expected;
  }
  return fd;
}

Status FileBackend::Put(const ObjectId& id, ByteView data) { return PutImpl(id, data, true); }

Status FileBackend::PutUnsynced(const ObjectId& id, ByteView data) {
  return PutImpl(id, data, false);
}

Status FileBackend::Sync() { return SyncWith(nullptr); }

Status FileBackend::SyncWith(const std::string* extra_file) {
  std::lock_guard<std::mutex> sync_lock(sync_mu_);
  std::vector<std::pair<size_t, std::string>> pending;
  {
    std::lock_guard<std::mutex> lock(pending_mu_);
    pending.swap(pending_);
  }
  // Taken after pending_: a put that made a shard directory set the flag before it
  // recorded its object, so an object taken here has its directory's flag taken too.
  const bool objects_dir = objects_dir_dirty_.exchange(false, std::memory_order_acq_rel);
  if (pending.empty() && extra_file == nullptr && !objects_dir) return Status::Ok();
  std::sort(pending.begin(), pending.end());
  pending.erase(std::unique(pending.begin(), pending.end()), pending.end());
  std::vector<std::pair<size_t, std::string>> failed;
  bool objects_dir_failed = false;
  Status st = SyncPending(pending, extra_file, objects_dir, &failed, &objects_dir_failed);
  if (!st.ok()) {
    // Not known durable: the next Sync tries them again (a ref must not move before).
    if (objects_dir_failed) objects_dir_dirty_.store(true, std::memory_order_release);
    std::lock_guard<std::mutex> lock(pending_mu_);
    pending_.insert(pending_.end(), failed.begin(), failed.end());
  }
  return st;
}

Status FileBackend::SyncPending(const std::vector<std::pair<size_t, std::string>>& pending,
                                const std::string* extra_file, bool objects_dir,
                                std::vector<std::pair<size_t, std::string>>* failed,
                                bool* objects_dir_failed) {
  // Tasks: each object file, the extra file, then each shard directory once (its entries
  // for the renames) and objects/ (for new shard directories). No order is needed among
  // them: nothing may depend on any of them until all are durable (the ref moves after).
  // fsync of one file flushes that file only, so a commit never waits for the dirty pages
  // of an unrelated writer, as syncfs(2) would make it.
  std::vector<size_t> dirs;
  for (const auto& p : pending) {
    if (dirs.empty() || dirs.back() != p.first) dirs.push_back(p.first);
  }
  const size_t files = pending.size() + (extra_file != nullptr ? 1 : 0);
  const size_t tasks = files + dirs.size() + (objects_dir ? 1 : 0);
  std::mutex mu;
  Status first;
  std::vector<char> ok(pending.size(), 0);  // char, not bool: written by several threads
  bool dirs_ok = true;
  auto run = [&](size_t t) {
    Status st;
    if (t < files) {
      const std::string& path = t < pending.size() ? pending[t].second : *extra_file;
      int fd = SysOpen(path, O_RDONLY);
      if (fd < 0 && errno == ENOENT && t < pending.size()) {
        // Deleted since the put (a failed commit's cleanup, or GC): nothing to make
        // durable, and no ref may reach it (the ref checks run after this Sync).
      } else if (fd < 0) {
        st = OsError(errno, "open for fsync", path, false);
      } else {
        // Bytes and size, not times: fdatasync (an object's time only matters to GC's
        // grace period for objects no ref reaches, and a crash ends every such writer).
        if (SysFdatasync(fd, path) != 0) st = OsError(errno, "fsync", path, false);
        ::close(fd);
      }
      if (st.ok() && t < pending.size()) ok[t] = 1;  // distinct elements: no lock needed
    } else if (t < files + dirs.size()) {
      size_t shard = dirs[t - files];
      static constexpr char kHex[] = "0123456789abcdef";
      std::string path = root_ + "/objects/" + kHex[shard >> 4] + kHex[shard & 15];
      st = FsyncDir(shard_fds_[shard].load(std::memory_order_acquire), path);
      if (!st.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        dirs_ok = false;
      }
    } else {
      st = FsyncDir(objects_fd_, root_ + "/objects");
      if (!st.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        *objects_dir_failed = true;
      }
    }
    if (!st.ok()) {
      std::lock_guard<std::mutex> lock(mu);
      if (first.ok()) first = st;
    }
  };
  // fsyncs wait on the device, not the CPU: all of one commit's in flight at once let the
  // file system commit them together. The pool's threads are made once per process.
  IoPool::ParallelFor(tasks, run);
  if (!first.ok()) {
    for (size_t i = 0; i < pending.size(); ++i) {
      if (!ok[i] || !dirs_ok || *objects_dir_failed) failed->push_back(pending[i]);
    }
  }
  return first;
}

Status FileBackend::PutImpl(const ObjectId& id, ByteView data, bool sync) {
  const std::string shard = id.ShardPrefix();
  const std::string path = ObjectPath(id);
  ASSIGN_OR_RETURN(int dir_fd, ShardDirFd(shard, sync));
  struct stat st;
  if (SysStat(path, &st) == 0 && static_cast<uint64_t>(st.st_size) == data.size()) {
    // Already stored (by invariant 1 it is complete). Refresh its modified time so GC's
    // grace period protects it again (spec/06-refs.md §6). Not permitted on another
    // user's file: then fall through and store our own copy.
    if (SysUtimeNow(path) == 0) {
      // Its writer may not have synced it yet: sync (now or at Sync) before acknowledging.
      if (!sync) return RecordUnsynced(shard, path);
      return FsyncDir(dir_fd, root_ + "/objects/" + shard);
    }
    if (errno == ENOENT) {
      // Deleted meanwhile: store it below.
    } else if (errno != EACCES && errno != EPERM) {
      return OsError(errno, "set modified time of", path, false);
    }
  }
  // Absent, or present with the wrong size (damaged): write it and rename over.
  ASSIGN_OR_RETURN(std::string tmp, WriteTemp("obj", data, sync));
  if (SysRename(tmp, path) != 0) {
    Status st2 = OsError(errno, "rename into", path, false);
    ::unlink(tmp.c_str());
    return st2;
  }
  if (!sync) return RecordUnsynced(shard, path);
  return FsyncDir(dir_fd, root_ + "/objects/" + shard);
}

Status FileBackend::RecordUnsynced(const std::string& shard, const std::string& path) {
  size_t index = static_cast<size_t>(std::stoi(shard, nullptr, 16));
  std::lock_guard<std::mutex> lock(pending_mu_);
  pending_.emplace_back(index, path);
  return Status::Ok();
}

// A whole-object read is the range [0, size): one open/fstat/pread path for both.
Result<Bytes> FileBackend::Get(const ObjectId& id) { return GetRange(id, 0, UINT64_MAX); }

Result<std::shared_ptr<const FileBackend::OpenObject>> FileBackend::OpenForRead(const ObjectId& id,
                                                                                struct stat* st) {
  if (auto cached = object_fds_.Get(id)) {
    // Deleted or replaced (a damaged copy renamed over) since it was opened: the cached
    // inode is no longer linked; read what is at the path now.
    if (fstat(cached->fd, st) == 0 && st->st_nlink > 0) return cached;
    object_fds_.Erase(id);
  }
  std::string path = ObjectPath(id);
  int fd = SysOpen(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? ObjectNotFound(id) : OsError(errno, "open", path);
  auto opened = std::make_shared<const OpenObject>(fd, std::move(path));
  if (fstat(fd, st) != 0) return OsError(errno, "stat", opened->path);
  object_fds_.Insert(id, opened, 1);
  return opened;
}

// A random take reads many small ranges of one object: a cached descriptor and path make
// each an fstat and a pread.
Result<Bytes> FileBackend::GetRange(const ObjectId& id, uint64_t offset, uint64_t length) {
  struct stat st;
  ASSIGN_OR_RETURN(auto file, OpenForRead(id, &st));
  auto size = static_cast<uint64_t>(st.st_size);
  if (offset > size) {
    return InvalidArgument("object " + id.ToString() + ": range offset " + std::to_string(offset) +
                           " is beyond its size " + std::to_string(size));
  }
  Bytes out;
  Status status = ReadAll(file->fd, file->path, offset, std::min(length, size - offset), &out);
  if (!status.ok()) {
    object_fds_.Erase(id);  // the next read opens the file afresh
    return status;
  }
  return out;
}

// A random take reads many ranges of each segment: the descriptor is looked up (or opened)
// and its size checked once per object, not once per range (spec/05-backend.md §8.3.2).
Result<std::vector<Bytes>> FileBackend::GetRanges(const ObjectId& id,
                                                  std::span<const ObjectRange> ranges) {
  struct stat st;
  ASSIGN_OR_RETURN(auto file, OpenForRead(id, &st));
  const auto size = static_cast<uint64_t>(st.st_size);
  for (size_t i = 0; i < ranges.size(); ++i) {
    if (ranges[i].offset > size) {
      return InvalidArgument("object " + id.ToString() + ": range " + std::to_string(i) +
                             " offset " + std::to_string(ranges[i].offset) +
                             " is beyond its size " + std::to_string(size));
    }
  }
  std::vector<Bytes> out(ranges.size());
  for (size_t i = 0; i < ranges.size(); ++i) {
    const ObjectRange& r = ranges[i];
    Status status =
        ReadAll(file->fd, file->path, r.offset, std::min(r.length, size - r.offset), &out[i]);
    if (!status.ok()) {
      object_fds_.Erase(id);  // the next read opens the file afresh
      return status;
    }
  }
  return out;
}

Result<ObjectInfo> FileBackend::Head(const ObjectId& id) {
  const std::string path = ObjectPath(id);
  struct stat st;
  if (SysStat(path, &st) != 0) {
    return errno == ENOENT ? ObjectNotFound(id) : OsError(errno, "stat", path);
  }
  return ObjectInfo{id, static_cast<uint64_t>(st.st_size), ModifiedUnixMs(st)};
}

Status FileBackend::List(std::string_view shard_prefix, const ObjectVisitor& visit) {
  const std::string objects = root_ + "/objects";
  if (Fault("opendir", objects)) return OsError(errno, "open directory", objects, false);
  std::vector<std::string> shards;
  {
    DirReader dir;
    RETURN_IF_ERROR(dir.Open(objects));
    Status st;
    while (auto name = dir.Next(&st)) {
      if (IsShardName(*name) && name->substr(0, shard_prefix.size()) == shard_prefix) {
        shards.emplace_back(*name);
      }
    }
    RETURN_IF_ERROR(st);
  }
  std::sort(shards.begin(), shards.end());
  for (const std::string& shard : shards) {
    // One shard's names at a time: memory is bounded by the largest shard, not the store.
    const std::string shard_path = objects + "/" + shard;
    DirReader dir;
    Status st = dir.Open(shard_path);
    if (st.code() == StatusCode::kNotFound) continue;
    RETURN_IF_ERROR(st);
    std::vector<ObjectId> ids;
    while (auto name = dir.Next(&st)) {
      if (name->size() != ObjectId::kTextSize) continue;  // stray file
      auto id = ObjectId::Parse(*name);
      if (id.ok() && id->ShardPrefix() == shard) ids.push_back(*id);
    }
    RETURN_IF_ERROR(st);
    // Text-id order; ids of one shard share their first characters, so sort by text.
    std::vector<std::pair<std::string, ObjectId>> sorted;
    sorted.reserve(ids.size());
    for (const ObjectId& id : ids) sorted.emplace_back(id.ToString(), id);
    ids.clear();
    ids.shrink_to_fit();
    std::sort(sorted.begin(), sorted.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& [text, id] : sorted) {
      struct stat fst;
      if (fstatat(dir.fd(), text.c_str(), &fst, 0) != 0) {
        if (errno == ENOENT) continue;  // deleted while listing
        return OsError(errno, "stat", shard_path + "/" + text);
      }
      if (!S_ISREG(fst.st_mode)) continue;
      if (!visit(ObjectInfo{id, static_cast<uint64_t>(fst.st_size), ModifiedUnixMs(fst)})) {
        return Status::Ok();
      }
    }
  }
  return Status::Ok();
}

Status FileBackend::Delete(const ObjectId& id) {
  const std::string path = ObjectPath(id);
  object_fds_.Erase(id);
  if (SysUnlink(path) != 0 && errno != ENOENT) return OsError(errno, "unlink", path);
  return Status::Ok();
}

// ---- Refs ----

std::string FileBackend::RefPath(std::string_view name) const {
  return root_ + "/refs/" + EncodeRefName(name);
}

Status FileBackend::LockRef(const std::string& encoded, RefLock* lock) const {
  lock->path_ = root_ + "/locks/" + encoded;
  while (true) {
    int fd = SysOpen(lock->path_, O_RDWR | O_CREAT, 0644);
    if (fd < 0) return OsError(errno, "open lock file", lock->path_, false);
    if (SysFlock(fd, lock->path_) != 0) {
      int err = errno;
      ::close(fd);
      return OsError(err, "lock", lock->path_, false);
    }
    // The lock file may have been unlinked (by a Delete) while we waited: only the inode
    // linked at the path counts.
    struct stat held, linked;
    if (fstat(fd, &held) == 0 && ::stat(lock->path_.c_str(), &linked) == 0 &&
        held.st_ino == linked.st_ino && held.st_dev == linked.st_dev) {
      lock->fd_ = fd;
      return Status::Ok();
    }
    ::close(fd);
  }
}

Result<RefValue> FileBackend::ReadRef(std::string_view name) const {
  const std::string path = RefPath(name);
  int fd = SysOpen(path, O_RDONLY);
  if (fd < 0) return errno == ENOENT ? RefNotFound(name) : OsError(errno, "open", path);
  Bytes content;
  Status st = ReadAll(fd, path, 0, kMaxRefFileBytes + 1, &content);
  ::close(fd);
  RETURN_IF_ERROR(st);
  if (content.size() > kMaxRefFileBytes) {
    return Corrupt("ref " + Quote(name) + " is corrupt: the ref file is larger than " +
                   std::to_string(kMaxRefFileBytes) + " bytes (file " + Quote(path, 4096) + ")");
  }
  ASSIGN_OR_RETURN(ObjectId target, ParseRefFile(name, path, content));
  return RefValue{std::string(name), target};
}

Result<RefValue> FileBackend::Read(std::string_view name) { return ReadRef(name); }

Status FileBackend::Create(std::string_view name, const ObjectId& target) {
  const std::string encoded = EncodeRefName(name);
  const std::string path = root_ + "/refs/" + encoded;
  RefLock lock;
  RETURN_IF_ERROR(LockRef(encoded, &lock));
  // Under the lock the answer is stable; it spares a losing creator the temp write.
  struct stat st;
  if (SysStat(path, &st) == 0) return AlreadyExists("ref " + Quote(name) + " already exists");
  if (errno != ENOENT) return OsError(errno, "stat", path, false);
  ASSIGN_OR_RETURN(std::string tmp, WriteTemp("ref", FormatRefFile(target, WriterNonce())));
  // link() never replaces an existing file: create-if-absent even without the lock.
  int rc = SysLink(tmp, path);
  int err = errno;
  ::unlink(tmp.c_str());
  if (rc != 0) {
    if (err == EEXIST) return AlreadyExists("ref " + Quote(name) + " already exists");
    return OsError(err, "link", path, false);
  }
  return FsyncRefsDir();
}

Status FileBackend::CompareAndSwap(std::string_view name, const ObjectId& expected,
                                   const ObjectId& desired) {
  const std::string encoded = EncodeRefName(name);
  const std::string path = root_ + "/refs/" + encoded;
  RefLock lock;
  RETURN_IF_ERROR(LockRef(encoded, &lock));
  ASSIGN_OR_RETURN(RefValue current, ReadRef(name));
  if (current.target != expected) return RefConflict(name, current.target, expected);
  ASSIGN_OR_RETURN(std::string tmp, WriteTemp("ref", FormatRefFile(desired, WriterNonce())));
  if (SysRename(tmp, path) != 0) {
    Status st = OsError(errno, "rename into", path, false);
    ::unlink(tmp.c_str());
    return st;
  }
  return FsyncRefsDir();
}

Status FileBackend::Delete(std::string_view name, const ObjectId& expected) {
  const std::string encoded = EncodeRefName(name);
  const std::string path = root_ + "/refs/" + encoded;
  RefLock lock;
  RETURN_IF_ERROR(LockRef(encoded, &lock));
  ASSIGN_OR_RETURN(RefValue current, ReadRef(name));
  if (current.target != expected) return RefConflict(name, current.target, expected);
  if (SysUnlink(path) != 0) return OsError(errno, "unlink", path, false);
  RETURN_IF_ERROR(FsyncRefsDir());
  // Drop the lock file while holding it; waiters notice the inode change (LockRef).
  ::unlink(lock.path_.c_str());
  return Status::Ok();
}

Status FileBackend::FsyncRefsDir() {
  std::unique_lock<std::mutex> lock(refs_sync_mu_);
  // Our change is in place; an fsync that starts from now on covers it.
  const uint64_t need = refs_sync_started_ + 1;
  while (refs_sync_done_ < need) {
    if (refs_sync_running_) {
      refs_sync_cv_.wait(lock);
      continue;
    }
    refs_sync_running_ = true;
    const uint64_t gen = ++refs_sync_started_;
    lock.unlock();
    Status st = FsyncDir(refs_fd_, root_ + "/refs");
    lock.lock();
    refs_sync_running_ = false;
    refs_sync_done_ = gen;
    if (!st.ok()) {
      refs_sync_failed_gen_ = gen;
      refs_sync_failure_ = st;
    }
    refs_sync_cv_.notify_all();
  }
  // Conservative: if the latest failed fsync could have been the one covering us, fail
  // (the caller reports the outcome as unknown; the ref may or may not have moved).
  if (refs_sync_failed_gen_ >= need) return refs_sync_failure_;
  return Status::Ok();
}

Status FileBackend::SyncThenCompareAndSwap(ObjectBackend& objects, std::string_view name,
                                           const ObjectId& expected, const ObjectId& desired) {
  if (&objects != static_cast<ObjectBackend*>(this)) {
    return RefBackend::SyncThenCompareAndSwap(objects, name, expected, desired);
  }
  // The new ref file does not depend on the ref's current value: write it before taking
  // the lock and make it durable in the same round as the objects (spec/05 §8.4.4).
  ASSIGN_OR_RETURN(std::string tmp,
                   WriteTemp("ref", FormatRefFile(desired, WriterNonce()), /*sync=*/false));
  auto drop_tmp = [&] { ::unlink(tmp.c_str()); };
  if (Status st = SyncWith(&tmp); !st.ok()) {
    drop_tmp();
    return st;
  }
  const std::string encoded = EncodeRefName(name);
  const std::string path = root_ + "/refs/" + encoded;
  RefLock lock;
  if (Status st = LockRef(encoded, &lock); !st.ok()) {
    drop_tmp();
    return st;
  }
  auto current = ReadRef(name);
  if (!current.ok() || current->target != expected) {
    drop_tmp();
    if (!current.ok()) return current.status();
    return RefConflict(name, current->target, expected);
  }
  if (SysRename(tmp, path) != 0) {
    Status st = OsError(errno, "rename into", path, false);
    drop_tmp();
    return st;
  }
  return FsyncRefsDir();
}

Status FileBackend::SyncThenCreate(ObjectBackend& objects, std::string_view name,
                                   const ObjectId& target) {
  if (&objects != static_cast<ObjectBackend*>(this)) {
    return RefBackend::SyncThenCreate(objects, name, target);
  }
  ASSIGN_OR_RETURN(std::string tmp,
                   WriteTemp("ref", FormatRefFile(target, WriterNonce()), /*sync=*/false));
  Status st = SyncWith(&tmp);
  const std::string encoded = EncodeRefName(name);
  const std::string path = root_ + "/refs/" + encoded;
  RefLock lock;
  if (st.ok()) st = LockRef(encoded, &lock);
  struct stat ref_st;
  if (st.ok() && SysStat(path, &ref_st) == 0) {
    st = AlreadyExists("ref " + Quote(name) + " already exists");
  } else if (st.ok() && errno != ENOENT) {
    st = OsError(errno, "stat", path, false);
  }
  // link() never replaces an existing file: create-if-absent even without the lock.
  if (st.ok() && SysLink(tmp, path) != 0) {
    st = errno == EEXIST ? AlreadyExists("ref " + Quote(name) + " already exists")
                         : OsError(errno, "link", path, false);
  }
  ::unlink(tmp.c_str());
  RETURN_IF_ERROR(st);
  return FsyncRefsDir();
}

Status FileBackend::List(std::string_view prefix, const RefVisitor& visit) {
  const std::string refs = root_ + "/refs";
  if (Fault("opendir", refs)) return OsError(errno, "open directory", refs, false);
  std::vector<std::string> names;
  {
    DirReader dir;
    RETURN_IF_ERROR(dir.Open(refs));
    Status st;
    while (auto encoded = dir.Next(&st)) {
      auto name = DecodeRefName(*encoded);
      if (name && name->compare(0, prefix.size(), prefix) == 0) names.push_back(*name);
    }
    RETURN_IF_ERROR(st);
  }
  // Encoded order differs from name order ('~' sorts after every name byte): sort names.
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    auto ref = ReadRef(name);
    if (ref.status().code() == StatusCode::kNotFound) continue;  // deleted while listing
    if (!ref.ok()) return ref.status();
    if (!visit(*ref)) return Status::Ok();
  }
  return Status::Ok();
}

}  // namespace dreamdb
