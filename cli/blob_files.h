// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Reading the blob files that ingest input names. The input is untrusted (a JSON Lines or
// CSV file from anywhere), so a blob path may name only a regular file inside one
// directory the user chose, the blob root, and only up to a size limit (cli/README.md
// "Blob files"):
//
//   - relative paths resolve against the root; absolute paths must lie inside it;
//   - the path is resolved with every symbolic link and ".." (realpath), and the result
//     must be the root or below it, so "../../etc/shadow" and a link inside the root that
//     points outside are refused;
//   - only regular files: devices (/dev/zero), FIFOs, sockets and directories are refused
//     before they are opened (opening some devices has effects of its own);
//   - the file is opened with O_NOFOLLOW | O_NONBLOCK (a FIFO swapped in cannot hang the
//     open), and the opened descriptor is checked again: fstat says it is a regular
//     file, and its path in /proc/self/fd, when /proc is there, still lies inside the
//     root (a directory swapped for a link after the check is caught);
//   - at most `max_bytes` are read, whatever the file's size claims (files in /proc say
//     0), so no file can grow memory without bound.
//
// Thread safety: immutable after Open; Read may be called from any thread.

#ifndef DREAMDB_CLI_BLOB_FILES_H_
#define DREAMDB_CLI_BLOB_FILES_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "dreamdb/object_id.h"
#include "dreamdb/status.h"

namespace dreamdb::cli {

// The default of --max-blob-bytes: 64 MiB.
inline constexpr uint64_t kDefaultMaxBlobBytes = uint64_t{64} << 20;

class BlobFiles {
 public:
  // Blob files under directory `root` (resolved now: kNotFound if it does not exist,
  // kInvalidArgument if it is not a directory). `what` names the root in messages
  // ("--blob-root", "the input file's directory").
  static Result<BlobFiles> Open(const std::string& root, std::string_view what, uint64_t max_bytes);
  // Reading blob files is off: every Read is kPermissionDenied with `reason`.
  static BlobFiles Disabled(std::string reason);

  // The bytes of the file `path` names. kPermissionDenied when it resolves outside the
  // root (or reading is off); kNotFound when it does not exist; kInvalidArgument when it
  // is not a regular file or is larger than the limit; kIoError for other OS failures.
  Result<Bytes> Read(std::string_view path) const;

  const std::string& root() const { return root_; }

 private:
  BlobFiles() = default;
  bool Inside(std::string_view resolved) const;

  std::string root_;      // resolved, absolute, no trailing '/' except for "/" itself
  std::string what_;      // how messages name the root
  std::string disabled_;  // non-empty: reading is off, and why
  uint64_t max_bytes_ = kDefaultMaxBlobBytes;
};

}  // namespace dreamdb::cli

#endif  // DREAMDB_CLI_BLOB_FILES_H_
