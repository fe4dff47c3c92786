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
// Files named on the command line (a schema, an anchor list, an object to put) are the
// user's own choice, so no root applies, but the same rules keep a mistyped or hostile
// name from hanging or exhausting memory: ReadCommandLineFile reads only regular files
// (or standard input for "-"), and at most a limit (cli/README.md "Input files").
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

// The limits of ReadCommandLineFile's callers.
inline constexpr uint64_t kMaxSchemaFileBytes = uint64_t{16} << 20;   // create --schema
inline constexpr uint64_t kMaxAnchorFileBytes = uint64_t{256} << 20;  // delete --from-file
inline constexpr uint64_t kMaxObjectPutBytes = uint64_t{4} << 30;     // object put

// The bytes of the file `path` names ("-": standard input, which may be a pipe). `what`
// names the input in messages ("--schema"). kNotFound when it does not exist;
// kInvalidArgument when it is not a regular file (a directory, device, FIFO or socket)
// or holds more than `max_bytes`; kIoError for other OS failures. Standard input is read
// up to the same limit, whatever it is.
Result<Bytes> ReadCommandLineFile(const std::string& path, std::string_view what,
                                  uint64_t max_bytes);

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
