// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Implements spec/05-backend.md §12.
#include "src/store/object_cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <vector>

#include "src/base/encoding.h"

namespace dreamdb {
namespace {

constexpr const char* kLayout = "dreamdb-cache-1";

// Reads the whole of `fd` (of `size` bytes) into a string; false on a short read.
bool ReadAll(int fd, uint64_t size, Bytes* out) {
  out->resize(size);
  uint64_t done = 0;
  while (done < size) {
    ssize_t n = ::pread(fd, out->data() + done, size - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<uint64_t>(n);
  }
  return true;
}

bool WriteAll(int fd, ByteView data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// Closes a descriptor on scope exit.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct Entry {
  std::string path;
  uint64_t size;
  int64_t mtime_ns;
};

// Every file under root/objects (and stale temp files under root/tmp, removed).
std::vector<Entry> Scan(const std::string& root, uint64_t* total) {
  std::vector<Entry> entries;
  *total = 0;
  std::error_code ec;
  for (std::filesystem::recursive_directory_iterator it(root + "/objects", ec), end;
       !ec && it != end; it.increment(ec)) {
    struct stat st {};
    if (::stat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    entries.push_back({it->path().string(), static_cast<uint64_t>(st.st_size),
                       int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec});
    *total += static_cast<uint64_t>(st.st_size);
  }
  // A temp file older than an hour belongs to a writer that died.
  const int64_t stale = NowSeconds() - 3600;
  for (std::filesystem::directory_iterator it(root + "/tmp", ec), end; !ec && it != end;
       it.increment(ec)) {
    struct stat st {};
    if (::stat(it->path().c_str(), &st) == 0 && st.st_mtim.tv_sec < stale) {
      ::unlink(it->path().c_str());
    }
  }
  return entries;
}

}  // namespace

CachingObjectBackend::CachingObjectBackend(std::shared_ptr<ObjectBackend> inner,
                                           ObjectCacheOptions options,
                                           std::shared_ptr<RequestCounters> counters,
                                           std::string root)
    : inner_(std::move(inner)),
      options_(std::move(options)),
      counters_(std::move(counters)),
      root_(std::move(root)) {}

Result<std::shared_ptr<CachingObjectBackend>> CachingObjectBackend::Open(
    std::shared_ptr<ObjectBackend> inner, ObjectCacheOptions options,
    std::shared_ptr<RequestCounters> counters) {
  if (options.max_bytes == 0) return InvalidArgument("the cache size must be at least 1 byte");
  if (options.dir.empty()) return InvalidArgument("the cache directory is empty");
  std::string root = options.dir + "/" + kLayout;
  for (const char* sub : {"/objects", "/tmp"}) {
    std::error_code ec;
    std::filesystem::create_directories(root + sub, ec);
    if (ec) {
      return IoError("cache directory " + Quote(options.dir, 200) +
                     ": cannot create it: " + ec.message());
    }
  }
  return std::shared_ptr<CachingObjectBackend>(new CachingObjectBackend(
      std::move(inner), std::move(options), std::move(counters), std::move(root)));
}

Result<ObjectCacheUsage> CachingObjectBackend::Usage(const std::string& dir) {
  ObjectCacheUsage usage;
  std::vector<Entry> entries = Scan(dir + "/" + kLayout, &usage.bytes);
  usage.files = entries.size();
  return usage;
}

std::string CachingObjectBackend::PathOf(const ObjectId& id) const {
  return root_ + "/objects/" + id.ShardPrefix() + "/" + id.ToString();
}

std::optional<Bytes> CachingObjectBackend::ReadCached(const ObjectId& id) {
  const std::string path = PathOf(id);
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) return std::nullopt;
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) return std::nullopt;
  Bytes data;
  bool intact = ReadAll(f.fd, static_cast<uint64_t>(st.st_size), &data) && ObjectId::Of(data) == id;
  if (!intact) {
    counters_->AddCacheCorrupt();
    ::unlink(path.c_str());  // a later reader refetches; a concurrent rename may win, fine
    std::lock_guard lock(mu_);
    verified_.erase(id);
    return std::nullopt;
  }
  if (st.st_mtim.tv_sec < NowSeconds() - 60) ::futimens(f.fd, nullptr);  // recently used
  {
    std::lock_guard lock(mu_);
    verified_[id] = FileIdentity{st.st_dev, st.st_ino, static_cast<uint64_t>(st.st_size)};
  }
  counters_->AddCacheHit(data.size());
  return data;
}

void CachingObjectBackend::Insert(const ObjectId& id, ByteView data) {
  const std::string tmp = root_ + "/tmp/" + id.ToString() + "." + std::to_string(::getpid()) + "." +
                          std::to_string(temp_counter_.fetch_add(1));
  {
    Fd f{::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)};
    if (f.fd < 0) return;  // the cache is best effort: the read already succeeded
    if (!WriteAll(f.fd, data)) {
      ::unlink(tmp.c_str());
      return;
    }
  }
  const std::string path = PathOf(id);
  std::error_code ec;
  std::filesystem::create_directories(root_ + "/objects/" + id.ShardPrefix(), ec);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return;
  }
  counters_->AddCacheWrite(data.size());
  const uint64_t added = added_since_scan_.fetch_add(data.size()) + data.size();
  // Past 1/8 of the bound since this process's last scan, evict unless another process
  // is evicting (its scan may predate these files: they stay counted here); past 1/4,
  // wait for that process and scan again, so no process leaves more than about 1/4 of
  // the bound unaccounted, however the evictions of several processes interleave.
  if (!scanned_.load() || added > options_.max_bytes / 8) {
    (void)Evict(added > options_.max_bytes / 4);
  }
}

Result<ObjectCacheUsage> CachingObjectBackend::Evict(bool wait) {
  const std::string lock_path = root_ + "/evict.lock";
  Fd lock{::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644)};
  if (lock.fd < 0) return IoError("cache " + Quote(lock_path, 200) + ": " + std::strerror(errno));
  if (::flock(lock.fd, LOCK_EX | (wait ? 0 : LOCK_NB)) != 0) {
    return ObjectCacheUsage{};  // another evicts (or, waiting, the lock failed: next time)
  }
  scanned_.store(true);
  added_since_scan_.store(0);
  ObjectCacheUsage usage;
  std::vector<Entry> entries = Scan(root_, &usage.bytes);
  usage.files = entries.size();
  if (usage.bytes <= options_.max_bytes) return usage;
  const uint64_t target = options_.max_bytes - options_.max_bytes / 8;
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.mtime_ns < b.mtime_ns; });
  for (const Entry& e : entries) {
    if (usage.bytes <= target) break;
    if (::unlink(e.path.c_str()) == 0) counters_->AddCacheEviction();
    usage.bytes -= e.size;
    --usage.files;
  }
  return usage;
}

Result<Bytes> CachingObjectBackend::Fetch(const ObjectId& id) {
  counters_->AddCacheMiss();
  ASSIGN_OR_RETURN(Bytes data, inner_->Get(id));
  // Nothing unverified enters the cache; a corrupt answer goes to the caller (Store
  // reports it) uncached.
  if (ObjectId::Of(data) == id && data.size() <= options_.max_bytes / 4) Insert(id, data);
  return data;
}

Result<Bytes> CachingObjectBackend::Get(const ObjectId& id) {
  if (auto cached = ReadCached(id)) return *std::move(cached);
  return Fetch(id);
}

Result<Bytes> CachingObjectBackend::GetRange(const ObjectId& id, uint64_t offset, uint64_t length) {
  const std::string path = PathOf(id);
  {
    Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
    struct stat st {};
    if (f.fd >= 0 && ::fstat(f.fd, &st) == 0) {
      bool verified = false;
      {
        std::lock_guard lock(mu_);
        auto it = verified_.find(id);
        verified = it != verified_.end() && it->second.dev == st.st_dev &&
                   it->second.ino == st.st_ino &&
                   it->second.size == static_cast<uint64_t>(st.st_size);
      }
      const uint64_t size = static_cast<uint64_t>(st.st_size);
      auto slice = [&](ByteView whole) -> Result<Bytes> {
        if (offset > whole.size()) {
          return InvalidArgument("object " + id.ToString() + ": range offset " +
                                 std::to_string(offset) + " is beyond its size " +
                                 std::to_string(size));
        }
        return Bytes(whole.substr(offset, std::min<uint64_t>(length, whole.size() - offset)));
      };
      if (!verified) {
        if (auto whole = ReadCached(id)) return slice(*whole);
      } else if (offset > size) {
        return slice(ByteView());  // the range error, as the store gives it
      } else {
        Bytes out;
        const uint64_t n = std::min<uint64_t>(length, size - offset);
        out.resize(n);
        uint64_t done = 0;
        while (done < n) {
          ssize_t r = ::pread(f.fd, out.data() + done, n - done, static_cast<off_t>(offset + done));
          if (r < 0 && errno == EINTR) continue;
          if (r <= 0) break;
          done += static_cast<uint64_t>(r);
        }
        if (done == n) {
          counters_->AddCacheHit(n);
          return out;
        }
        // Shorter than when verified: damaged since. Refetch below.
        counters_->AddCacheCorrupt();
        ::unlink(path.c_str());
      }
    }
  }
  // A miss: cache the whole object when it fits, else pass the range through.
  {
    std::lock_guard lock(mu_);
    if (too_big_.count(id) != 0) {
      counters_->AddCacheMiss();
      return inner_->GetRange(id, offset, length);
    }
  }
  ASSIGN_OR_RETURN(ObjectInfo info, inner_->Head(id));
  if (info.size_bytes > options_.max_bytes / 4) {
    {
      std::lock_guard lock(mu_);
      too_big_[id] = info.size_bytes;
    }
    counters_->AddCacheMiss();
    return inner_->GetRange(id, offset, length);
  }
  ASSIGN_OR_RETURN(Bytes whole, Fetch(id));
  if (offset > whole.size()) {
    return InvalidArgument("object " + id.ToString() + ": range offset " + std::to_string(offset) +
                           " is beyond its size " + std::to_string(whole.size()));
  }
  return Bytes(ByteView(whole).substr(offset, std::min<uint64_t>(length, whole.size() - offset)));
}

Result<std::vector<Bytes>> CachingObjectBackend::GetRanges(const ObjectId& id,
                                                           std::span<const ObjectRange> ranges) {
  auto too_big = [&] {
    std::lock_guard lock(mu_);
    return too_big_.count(id) != 0;
  };
  std::vector<Bytes> out;
  out.reserve(ranges.size());
  // The first range caches the object or finds it too big to cache (then the store
  // serves the rest in one multi-range read); the others then read the cache.
  for (size_t i = 0; i < ranges.size(); ++i) {
    if (too_big()) {
      for (size_t k = i; k < ranges.size(); ++k) counters_->AddCacheMiss();
      ASSIGN_OR_RETURN(std::vector<Bytes> rest, inner_->GetRanges(id, ranges.subspan(i)));
      for (Bytes& b : rest) out.push_back(std::move(b));
      return out;
    }
    ASSIGN_OR_RETURN(Bytes bytes, GetRange(id, ranges[i].offset, ranges[i].length));
    out.push_back(std::move(bytes));
  }
  return out;
}

Status CachingObjectBackend::Delete(const ObjectId& id) {
  RETURN_IF_ERROR(inner_->Delete(id));
  ::unlink(PathOf(id).c_str());
  std::lock_guard lock(mu_);
  verified_.erase(id);
  return Status::Ok();
}

Result<ObjectCacheUsage> ObjectCacheUsageOf(const std::string& dir) {
  return CachingObjectBackend::Usage(dir);
}

}  // namespace dreamdb
