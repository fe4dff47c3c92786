// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
#include "cli/blob_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>

#include "dreamdb/quote.h"

namespace dreamdb::cli {
namespace {

// realpath(3) into a std::string; nullopt with errno set on failure.
std::optional<std::string> RealPath(const std::string& path) {
  std::unique_ptr<char, decltype(&std::free)> resolved(::realpath(path.c_str(), nullptr),
                                                       &std::free);
  if (resolved == nullptr) return std::nullopt;
  return std::string(resolved.get());
}

std::string_view FileKind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISLNK(mode)) return "a symbolic link";
  return "not a regular file";
}

struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

// Reads at most max_bytes from `fd` (its size, from fstat, may lie: files in /proc say 0,
// and a file can grow while being read). `too_large` makes the error.
template <typename TooLarge>
Result<Bytes> ReadBounded(int fd, uint64_t size_hint, uint64_t max_bytes, std::string_view shown,
                          const TooLarge& too_large) {
  Bytes data;
  data.reserve(static_cast<size_t>(std::min(size_hint, max_bytes)));
  char buf[1 << 16];
  for (;;) {
    uint64_t room = max_bytes + 1 - data.size();
    ssize_t got = ::read(fd, buf, static_cast<size_t>(std::min<uint64_t>(sizeof(buf), room)));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return IoError("cannot read " + std::string(shown) + ": " + std::strerror(errno));
    if (got == 0) break;
    data.append(buf, static_cast<size_t>(got));
    if (data.size() > max_bytes) return too_large("more than " + std::to_string(max_bytes));
  }
  return data;
}

}  // namespace

Result<Bytes> ReadCommandLineFile(const std::string& path, std::string_view what,
                                  uint64_t max_bytes) {
  const bool stdin_input = path == "-";
  std::string shown =
      std::string(what) + " " + (stdin_input ? "(standard input)" : Quote(path, 200));
  auto too_large = [&](const std::string& size) {
    return InvalidArgument(shown + " is " + size + " bytes; the limit is " +
                           std::to_string(max_bytes));
  };
  if (stdin_input) return ReadBounded(0, 0, max_bytes, shown, too_large);
  if (path.find('\0') != std::string::npos) return InvalidArgument(shown + " contains a NUL byte");
  auto not_regular = [&](mode_t mode) {
    return InvalidArgument(shown + " is " + std::string(FileKind(mode)) +
                           "; only regular files are read ('-' reads standard input)");
  };
  auto open_error = [&](int err) -> Status {
    std::string message = "cannot open " + shown + ": " + std::strerror(err);
    if (err == ENOENT || err == ENOTDIR) return NotFound(std::move(message));
    if (err == ELOOP || err == ENAMETOOLONG) return InvalidArgument(std::move(message));
    return IoError(std::move(message));
  };
  // Refuse devices, FIFOs and sockets before opening them (opening some devices has
  // effects of its own); the fstat below re-checks what was opened.
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return open_error(errno);
  if (!S_ISREG(st.st_mode)) return not_regular(st.st_mode);
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) return open_error(errno);
  FdCloser closer{fd};
  if (::fstat(fd, &st) != 0) return IoError(shown + ": fstat: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return not_regular(st.st_mode);
  if (static_cast<uint64_t>(st.st_size) > max_bytes) return too_large(std::to_string(st.st_size));
  return ReadBounded(fd, static_cast<uint64_t>(st.st_size), max_bytes, shown, too_large);
}

Result<BlobFiles> BlobFiles::Open(const std::string& root, std::string_view what,
                                  uint64_t max_bytes) {
  auto resolved = RealPath(root.empty() ? "." : root);
  if (!resolved) {
    std::string message = std::string(what) + " " + Quote(root, 200) + ": " + std::strerror(errno);
    if (errno == ENOENT || errno == ENOTDIR) return NotFound(message);
    return IoError(message);
  }
  struct stat st;
  if (::stat(resolved->c_str(), &st) != 0) {
    return IoError(std::string(what) + " " + Quote(root, 200) + ": " + std::strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) {
    return InvalidArgument(std::string(what) + " " + Quote(root, 200) + " is not a directory");
  }
  BlobFiles files;
  files.root_ = std::move(*resolved);
  files.what_ = std::string(what);
  files.max_bytes_ = max_bytes;
  return files;
}

BlobFiles BlobFiles::Disabled(std::string reason) {
  BlobFiles files;
  files.disabled_ = std::move(reason);
  return files;
}

bool BlobFiles::Inside(std::string_view resolved) const {
  if (root_ == "/") return resolved.starts_with("/");
  return resolved == root_ || (resolved.starts_with(root_) && resolved.size() > root_.size() &&
                               resolved[root_.size()] == '/');
}

Result<Bytes> BlobFiles::Read(std::string_view path) const {
  if (path.empty()) return InvalidArgument("empty blob path");
  std::string shown = "blob path " + Quote(path, 200);
  if (path.find('\0') != std::string_view::npos) {
    return InvalidArgument(shown + " contains a NUL byte");
  }
  if (!disabled_.empty()) return PermissionDenied(shown + ": " + disabled_);
  std::string full = path.front() == '/' ? std::string(path) : root_ + "/" + std::string(path);

  // Resolve every link and "..", then check the result is inside the root.
  auto resolved = RealPath(full);
  if (!resolved) {
    int err = errno;
    std::string message = shown + ": " + std::strerror(err);
    if (err == ENOENT || err == ENOTDIR) return NotFound("cannot open " + message);
    if (err == ELOOP || err == ENAMETOOLONG) return InvalidArgument(message);
    return IoError("cannot open " + message);
  }
  auto outside = [&](const std::string& where) {
    return PermissionDenied(shown + " resolves to " + Quote(where, 200) +
                            ", outside the blob root " + Quote(root_, 200) + " (" + what_ +
                            "); blob files must lie inside it");
  };
  if (!Inside(*resolved)) return outside(*resolved);

  // Refuse devices, FIFOs and sockets before opening them: opening some devices has
  // effects of its own (a tape rewinds on close). The fstat below re-checks what opened.
  auto not_regular = [&](mode_t mode) {
    return InvalidArgument(shown + " is " + std::string(FileKind(mode)) +
                           "; blob paths must name regular files");
  };
  struct stat st;
  if (::stat(resolved->c_str(), &st) == 0 && !S_ISREG(st.st_mode)) return not_regular(st.st_mode);
  // Open without following a link that appeared since, and without blocking on a FIFO.
  int fd = ::open(resolved->c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    std::string message = shown + ": " + std::strerror(err);
    if (err == ENOENT || err == ENOTDIR) return NotFound("cannot open " + message);
    if (err == ELOOP) return InvalidArgument(message + " (it changed while being opened)");
    return IoError("cannot open " + message);
  }
  FdCloser closer{fd};
  if (::fstat(fd, &st) != 0) return IoError(shown + ": fstat: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return not_regular(st.st_mode);
  // What was opened, not what was checked: a parent directory swapped for a link between
  // realpath() and open() shows here. Without /proc the realpath() check stands alone.
  std::string fd_link = "/proc/self/fd/" + std::to_string(fd);
  char target[PATH_MAX + 1];
  ssize_t n = ::readlink(fd_link.c_str(), target, PATH_MAX);
  if (n > 0) {
    std::string opened(target, static_cast<size_t>(n));
    if (!Inside(opened)) return outside(opened);
  }
  auto too_large = [&](const std::string& size) {
    return InvalidArgument(shown + " is " + size + " bytes; the limit is " +
                           std::to_string(max_bytes_) + " (raise it with --max-blob-bytes)");
  };
  if (static_cast<uint64_t>(st.st_size) > max_bytes_) return too_large(std::to_string(st.st_size));

  return ReadBounded(fd, static_cast<uint64_t>(st.st_size), max_bytes_, shown, too_large);
}

}  // namespace dreamdb::cli
