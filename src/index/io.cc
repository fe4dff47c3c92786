// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0

#include "src/index/io.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <string>

#include "src/base/encoding.h"

namespace dreamdb::vector {
namespace {

struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<FILE, FileCloser>;

std::string ErrnoText(int err) { return std::strerror(err); }  // NOLINT(concurrency-mt-unsafe)

template <typename T>
Result<Matrix<T>> ReadVecs(const std::string& path, size_t max_rows, const char* kind) {
  File f(std::fopen(path.c_str(), "rb"));
  if (!f) {
    const int err = errno;
    if (err == ENOENT) return NotFound(std::string(kind) + " file " + Quote(path) + " not found");
    return IoError("cannot open " + std::string(kind) + " file " + Quote(path) + ": " +
                   ErrnoText(err));
  }
  if (std::fseek(f.get(), 0, SEEK_END) != 0) return IoError("cannot seek " + Quote(path));
  const long size = std::ftell(f.get());
  if (size < 0) return IoError("cannot size " + Quote(path));
  std::rewind(f.get());
  Matrix<T> m;
  if (size == 0) return m;
  int32_t d = 0;
  if (std::fread(&d, sizeof(d), 1, f.get()) != 1) {
    return Corrupt(std::string(kind) + " file " + Quote(path) + " is truncated in row 0");
  }
  if (d <= 0 || d > (1 << 24)) {
    return Corrupt(std::string(kind) + " file " + Quote(path) + " row 0 has dimension " +
                   std::to_string(d) + " (expected 1..16777216)");
  }
  const size_t row_bytes = sizeof(int32_t) + sizeof(T) * static_cast<size_t>(d);
  const auto total = static_cast<size_t>(size);
  if (total % row_bytes != 0) {
    return Corrupt(std::string(kind) + " file " + Quote(path) + " is truncated: " +
                   std::to_string(total) + " bytes is not a multiple of the row size " +
                   std::to_string(row_bytes) + " (dimension " + std::to_string(d) + ")");
  }
  size_t rows = total / row_bytes;
  if (max_rows != 0 && rows > max_rows) rows = max_rows;
  m.rows = rows;
  m.dim = static_cast<size_t>(d);
  m.data.resize(rows * m.dim);
  std::rewind(f.get());
  for (size_t i = 0; i < rows; ++i) {
    int32_t di = 0;
    if (std::fread(&di, sizeof(di), 1, f.get()) != 1 ||
        std::fread(m.data.data() + i * m.dim, sizeof(T), m.dim, f.get()) != m.dim) {
      return Corrupt(std::string(kind) + " file " + Quote(path) + " is truncated in row " +
                     std::to_string(i));
    }
    if (di != d) {
      return Corrupt(std::string(kind) + " file " + Quote(path) + " row " + std::to_string(i) +
                     " has dimension " + std::to_string(di) + ", row 0 has " + std::to_string(d));
    }
  }
  return m;
}

template <typename T>
Status WriteVecs(const std::string& path, const T* data, size_t rows, size_t dim,
                 const char* kind) {
  if (dim == 0 || dim > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return InvalidArgument(std::string(kind) + ": dimension " + std::to_string(dim) +
                           " out of range for " + Quote(path));
  }
  if (rows != 0 && data == nullptr) return InvalidArgument(std::string(kind) + ": null data");
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    File f(std::fopen(tmp.c_str(), "wb"));
    if (!f) {
      return IoError("cannot create " + Quote(tmp) + ": " + ErrnoText(errno));
    }
    const auto d = static_cast<int32_t>(dim);
    for (size_t i = 0; i < rows; ++i) {
      if (std::fwrite(&d, sizeof(d), 1, f.get()) != 1 ||
          std::fwrite(data + i * dim, sizeof(T), dim, f.get()) != dim) {
        const int err = errno;
        std::remove(tmp.c_str());
        return IoError("write to " + Quote(tmp) + " failed: " + ErrnoText(err));
      }
    }
    if (std::fflush(f.get()) != 0) {
      const int err = errno;
      std::remove(tmp.c_str());
      return IoError("write to " + Quote(tmp) + " failed: " + ErrnoText(err));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    return IoError("cannot rename " + Quote(tmp) + " to " + Quote(path) + ": " + ErrnoText(err));
  }
  return Status::Ok();
}

}  // namespace

Result<FloatMatrix> ReadFvecs(const std::string& path, size_t max_rows) {
  return ReadVecs<float>(path, max_rows, "fvecs");
}
Result<IntMatrix> ReadIvecs(const std::string& path, size_t max_rows) {
  return ReadVecs<int32_t>(path, max_rows, "ivecs");
}
Status WriteFvecs(const std::string& path, const float* data, size_t rows, size_t dim) {
  return WriteVecs(path, data, rows, dim, "fvecs");
}
Status WriteIvecs(const std::string& path, const int32_t* data, size_t rows, size_t dim) {
  return WriteVecs(path, data, rows, dim, "ivecs");
}

}  // namespace dreamdb::vector
