// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// fvecs / ivecs files (the TEXMEX / ann-benchmarks exchange format): each row is a
// little-endian int32 dimension d followed by d float32 (fvecs) or int32 (ivecs) values.
// All rows of a file must have the same dimension.
//
// Errors: kNotFound (no such file), kIoError (OS failure, with errno text), kCorrupt
// (truncated row, bad or inconsistent dimension; the message names the row and the file).
// Writes go to a temp file in the same directory and are renamed into place, so readers
// never see a partial file.
//
// Thread safety: free functions, reentrant.

#ifndef DREAMDB_SRC_INDEX_IO_H_
#define DREAMDB_SRC_INDEX_IO_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "dreamdb/status.h"

namespace dreamdb::vector {

template <typename T>
struct Matrix {
  size_t rows = 0;
  size_t dim = 0;
  std::vector<T> data;  // rows x dim, row-major
  const T* row(size_t i) const { return data.data() + i * dim; }
};
using FloatMatrix = Matrix<float>;
using IntMatrix = Matrix<int32_t>;

// Reads at most max_rows rows (0 = all).
Result<FloatMatrix> ReadFvecs(const std::string& path, size_t max_rows = 0);
Result<IntMatrix> ReadIvecs(const std::string& path, size_t max_rows = 0);
// kInvalidArgument for dim == 0 or dim > INT32_MAX.
Status WriteFvecs(const std::string& path, const float* data, size_t rows, size_t dim);
Status WriteIvecs(const std::string& path, const int32_t* data, size_t rows, size_t dim);

}  // namespace dreamdb::vector

#endif  // DREAMDB_SRC_INDEX_IO_H_
