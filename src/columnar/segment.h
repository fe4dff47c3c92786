// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Segment objects: one field's values for the rows of one commit (spec/12-segments.md).
//
//   magic "DDBSEG01" | header_len u32 LE | header_sum (16) | header (canonical CBOR) |
//   zero padding | buffers, each at an 8-byte aligned offset, separated by zero padding
//
// Every buffer is cut into checksum blocks (16-byte truncated BLAKE3 each, listed in the
// header), so a reader can fetch any byte range widened to block boundaries and verify
// every byte it uses without reading the whole object. The encoding is canonical: one
// column has exactly one segment encoding, and the decoder accepts only that encoding.
// Writers write format 3: blocks sized for random reads (spec §4.4: a wide value is its
// own block, narrow rows share 256-byte blocks, variable-width values are cut into blocks
// of whole values), values as they are or, for an embedding field declared raw = false,
// `encoding: "sq8"` (spec §9: per-row min/max plus 8-bit codes; readers return the
// reconstructed float32 values). Readers also read formats 1 and 2 (16-row blocks).
//
// Thread safety: EncodeSegment/DecodeSegment are reentrant. A SegmentReader is not
// thread-safe (it counts statistics); use one per thread. ReadRows may call the FetchRange
// callback from the process's I/O pool threads as well as the calling thread.

#ifndef DREAMDB_SRC_COLUMNAR_SEGMENT_H_
#define DREAMDB_SRC_COLUMNAR_SEGMENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dreamdb/column.h"
#include "dreamdb/object_id.h"
#include "dreamdb/schema.h"
#include "dreamdb/status.h"

namespace dreamdb::columnar {

inline constexpr std::string_view kSegmentMagic = "DDBSEG01";
// magic (8) + header_len (4) + header_sum (16).
inline constexpr uint64_t kSegmentPrefixBytes = 28;
inline constexpr uint64_t kSegmentMaxHeaderBytes = uint64_t{64} << 20;
inline constexpr uint64_t kSegmentMaxRows = UINT32_MAX;
inline constexpr uint64_t kSegmentSumBytes = 16;
// Bytes a SegmentReader asks for first: the header of a typical segment fits, so opening
// takes one request.
inline constexpr uint64_t kSegmentFirstFetchBytes = 4096;

// How many bytes to ask for first when opening a segment of `field` holding at least
// `min_rows` rows on an object store, where one more request costs a round trip and a few
// hundred KiB cost about nothing: the whole object when it is likely to be at most 1 MiB
// (header and every block in one request, so no further round), else the likely header
// plus a margin. Estimated from the block rules of format 3 and the field's width
// (variable-width values at 16 bytes); never below kSegmentFirstFetchBytes, at most 16 MiB.
// A short estimate costs one more request, as a 4 KiB first fetch would.
uint64_t SpeculativeFirstFetchBytes(const FieldSpec& field, uint64_t min_rows);

// Encodes `column` as a segment. kInvalidArgument if the column cannot be stored (more
// than kSegmentMaxRows rows, an invalid field spec, a header over the limit). The encoding
// follows the column's field spec: an embedding field whose declared index says raw =
// false (`index->keep_raw == false`) is stored as format 2, `encoding: "sq8"` (8-bit
// scalar quantization per row, spec/12-segments.md §9; lossy, about 4x smaller; a
// non-finite value is kInvalidArgument naming the row); every other field as format 1.
Result<Bytes> EncodeSegment(const Column& column);
// The same, with the type, shape and encoding taken from `field` (the schema's spec for
// the column), not from the column's own spec. kInvalidArgument when the column's type
// or shape differs from `field`'s.
Result<Bytes> EncodeSegment(const Column& column, const FieldSpec& field);

// True when segments of `field` are written with the lossy sq8 encoding.
bool UsesSq8(const FieldSpec& field);

// Decodes a whole segment object, verifying the magic, header sum, header, every block
// sum, every size and offset, the padding and the canonical form. kCorrupt naming what is
// wrong; kUnsupported for a newer segment format; kInvalidArgument when the segment's
// type (or dim, dtype, shape) does not match `field`. The column is shaped for `field`.
// Both encodings of an embedding (float32 and sq8) decode whatever `field` declares
// about raw: an sq8 segment yields its reconstructed float32 values.
Result<Column> DecodeSegment(ByteView whole_object, const FieldSpec& field);

// The buffers of a whole segment in Column's layout: a validity bitmap (empty when no row
// is null), fixed-width values, or uint64 offsets (rows + 1 entries from 0) and data for
// strings and blobs. Plain layouts are views into the object's bytes (valid while those
// live); layouts stored differently (sq8 embeddings, categorical) are decoded into
// `decoded`, which the views then point into.
struct SegmentBuffers {
  uint64_t rows = 0;
  ByteView validity;
  ByteView values;
  ByteView offsets;
  ByteView data;
  std::shared_ptr<const Column> decoded;
};

// Like DecodeSegment (same checks, same errors), but plain layouts are viewed in place, not
// copied. `id_verified`: the bytes were already verified against the object's id (as
// Store::Get does unless verify_reads is off); the id covers every byte, so the per-block
// sums are not computed again and each byte is hashed once.
Result<SegmentBuffers> ViewSegment(ByteView whole_object, const FieldSpec& field, bool id_verified);

// Returns bytes [offset, offset+length) of the segment object, clipped to the object's
// end (like ObjectBackend::GetRange); errors are passed through to the reader's caller.
// ReadRows may call it from several threads at once (independent ranges are fetched in
// parallel, one round trip on a remote store): it must be thread-safe.
using FetchRange = std::function<Result<Bytes>(uint64_t offset, uint64_t length)>;

struct SegmentReadStats {
  uint64_t requests = 0;       // FetchRange calls
  uint64_t bytes_fetched = 0;  // bytes those calls returned
};

// Reads rows of a segment through ranged fetches. Open fetches the header (one request of
// kSegmentFirstFetchBytes or as asked, a second one only for a longer header). ReadRows fetches
// only the checksum blocks holding the requested rows (offsets first, then data, for variable-width
// types; codes, then the dictionary entries they use, for categorical), coalescing ranges that
// touch (and, unless set_coalesce_gaps(false), ranges whose gap is at most max(4 KiB, 25% of the
// merged range)), and verifies every block it uses. Movable, not copyable.
class SegmentReader {
 public:
  struct Layout;  // parsed header (segment.cc)
  // What Open fetched and checked: the object's first bytes (the whole header, and
  // whatever followed it in the first request) and the parsed layout. Immutable, so a
  // handle may keep it (keyed by the segment's id) and reopen the segment without I/O.
  struct Header;

  // Fetches and verifies the header; see DecodeSegment for the error codes. The first
  // request asks for `first_fetch_bytes` (at least kSegmentPrefixBytes); what it returns
  // past the header is kept and serves later reads (verified block by block when used).
  static Result<SegmentReader> Open(FetchRange fetch, const FieldSpec& field,
                                    uint64_t first_fetch_bytes = kSegmentFirstFetchBytes);
  // A reader over a header an earlier Open of the same object returned (header()); no
  // request is made. The layout is parsed again (from the kept bytes) when `field`
  // differs from the one it was opened with, with Open's checks and error codes.
  static Result<SegmentReader> Reopen(FetchRange fetch, const FieldSpec& field,
                                      std::shared_ptr<const Header> header);
  std::shared_ptr<const Header> header() const { return header_; }
  // Memory a kept header holds, for byte-bounded caches.
  static uint64_t HeaderBytes(const Header& header);

  SegmentReader(SegmentReader&&) noexcept;
  SegmentReader& operator=(SegmentReader&&) noexcept;
  ~SegmentReader();

  uint64_t rows() const;
  // Bytes of the whole object, as the header describes it.
  uint64_t object_size() const;
  const FieldSpec& field() const { return field_; }

  // The values of `sorted_rows` (ascending; repeats allowed), in that order.
  // kInvalidArgument if a row is out of range or the list is not sorted. Ranges supplied
  // by Supply() since the last ReadRows are used first and not fetched again.
  Result<Column> ReadRows(const std::vector<uint32_t>& sorted_rows);

  // Object bytes [start, end).
  struct Range {
    uint64_t start = 0;
    uint64_t end = 0;
  };
  // The ranges the first round of ReadRows(sorted_rows) reads (validity, and the values,
  // offsets or codes of every row: for fixed-width fields and sq8 embeddings, all it
  // reads), computed from the header alone: whole checksum blocks, ascending, ranges that
  // touch merged, none already held by the header bytes. A caller planning many reads
  // at once (a take) fetches these, or any ranges covering them, and hands them to
  // Supply; ReadRows then makes no request for them. Same errors as ReadRows.
  Result<std::vector<Range>> PlanRows(const std::vector<uint32_t>& sorted_rows) const;
  // The caller's fetch of object bytes [start, start+length) (through the same kind of
  // FetchRange), for the next ReadRows: it verifies every checksum block it uses from
  // them exactly as from its own fetches (a covering range's gap bytes are never used,
  // so never need verifying). Counted in stats() as one request. Returns the error
  // ReadRows would have for that fetch: the fetch's own error, or kCorrupt when the
  // stored object is shorter than its header says.
  Status Supply(uint64_t start, uint64_t length, Result<Bytes> fetched);
  // Every row; fetches the rest of the object in one request and verifies it like
  // DecodeSegment (including padding).
  Result<Column> ReadAll();

  // Cumulative over Open and every read.
  const SegmentReadStats& stats() const { return stats_; }

  // Whether ReadRows also reads the gaps between nearby ranges to make fewer requests
  // (spec/12-segments.md §5.3 item 4: gaps up to max(4 KiB, 25% of the merged range);
  // right for object stores, where a request costs far more than its bytes). Off, only
  // ranges that touch or overlap are merged, and no byte is read that is not verified
  // (local files, where a request is a system call on cached pages). Default: on.
  void set_coalesce_gaps(bool on) { coalesce_ = on; }

 private:
  SegmentReader(FetchRange fetch, FieldSpec field);
  Result<Bytes> Fetch(uint64_t offset, uint64_t length);
  // Counts a fetch of [offset, offset+length) that returned `r` and checks its length.
  Result<Bytes> Checked(uint64_t offset, uint64_t length, Result<Bytes> r);
  // Ranges ReadRows fetches at once.
  static constexpr size_t kMaxRunsInFlight = 16;

  FetchRange fetch_;
  FieldSpec field_;
  std::shared_ptr<const Header> header_;
  SegmentReadStats stats_;
  bool coalesce_ = true;
  std::vector<std::pair<uint64_t, Bytes>> supplied_;  // for the next ReadRows
};

}  // namespace dreamdb::columnar

#endif  // DREAMDB_SRC_COLUMNAR_SEGMENT_H_
