// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb ingest NAME FILE|--files-from LIST [--format jsonl|csv] [--batch-size N] [--branch B]
//                [--message M] [--anchor-field FIELD] [--progress] [--job J [--shard N --of M]]
//
// Reads records from JSON Lines or CSV and appends them, one commit per batch. Input is
// streamed: memory holds one batch. A bad record ends the run naming its line and field;
// its batch is not committed, earlier batches stay committed (the message says how many).
// With --job, one shard of a sharded job (spec/14-semantics.md §19): the shard's byte
// range of the file, on the job's work branch, with anchors reserved through the store;
// `dreamdb commit` publishes the job. With --files-from, the files a list names, each whole
// (sharded: shard N of M takes its contiguous run of the list).
#include <sys/stat.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <unordered_map>
#include <unordered_set>

#include "cli/blob_files.h"
#include "cli/dataset_util.h"
#include "dreamdb/jobs.h"
#include "dreamdb/quote.h"

namespace dreamdb::cli {
namespace {

using Json = nlohmann::json;

constexpr uint64_t kDefaultBatchSize = 10000;
constexpr uint64_t kMaxMaxBlobBytes = uint64_t{1} << 40;
// --max-line-bytes: at most 2^42 (room for an inline base64 blob of 2^40 bytes).
constexpr uint64_t kMaxMaxLineBytes = uint64_t{1} << 42;
// The default line limit beyond one inline base64 blob of --max-blob-bytes: 1 MiB for the
// other fields of the record.
constexpr uint64_t kLineSlackBytes = uint64_t{1} << 20;

// The default of --max-line-bytes: one inline {"base64": ...} blob of `max_blob_bytes`
// (4 characters per 3 bytes) plus kLineSlackBytes. 90527064 for the default 64 MiB.
constexpr uint64_t DefaultMaxLineBytes(uint64_t max_blob_bytes) {
  return (max_blob_bytes + 2) / 3 * 4 + kLineSlackBytes;
}
static_assert(DefaultMaxLineBytes(uint64_t{64} << 20) == 90527064);

// The message of a line (or CSV record) longer than the limit; `what` names the input.
std::string LineTooLong(std::string_view what, uint64_t line, uint64_t max_bytes) {
  return "line " + std::to_string(line) + " of " + std::string(what) + " is longer than " +
         std::to_string(max_bytes) + " bytes, the limit (raise it with --max-line-bytes)";
}

// Reads the lines of a file, each at most `max_bytes` long (without its newline): the
// input is untrusted, and a line with no end (/dev/zero, a corrupt file) must be refused
// after reading little more than the limit, not grow memory until the process dies. Not
// thread-safe (one reader per FILE).
class LineReader {
 public:
  LineReader(FILE* f, uint64_t max_bytes) : f_(f), max_bytes_(max_bytes) {}

  // The next line into *line, without its '\n'. False at the end of the input;
  // kInvalidArgument (with `too_long` set) when the line is longer than the limit;
  // kIoError when reading fails.
  Result<bool> Next(std::string* line, bool* too_long) {
    line->clear();
    *too_long = false;
    bool any = false;
    for (;;) {
      if (pos_ == end_) {
        errno = 0;
        end_ = std::fread(buf_, 1, sizeof buf_, f_);
        pos_ = 0;
        if (end_ == 0) {
          if (std::ferror(f_)) return IoError(std::strerror(errno));
          return any;
        }
      }
      any = true;
      const char* start = buf_ + pos_;
      const auto* nl = static_cast<const char*>(std::memchr(start, '\n', end_ - pos_));
      size_t take = nl != nullptr ? static_cast<size_t>(nl - start) : end_ - pos_;
      if (line->size() + take > max_bytes_) {
        *too_long = true;
        return InvalidArgument("line too long");
      }
      line->append(start, take);
      pos_ += take;
      consumed_ += take;
      if (nl != nullptr) {
        ++pos_;
        ++consumed_;
        return true;
      }
    }
  }

  // The bytes of the input consumed by the lines read so far, newlines included.
  uint64_t consumed() const { return consumed_; }

 private:
  FILE* f_;
  const uint64_t max_bytes_;
  uint64_t consumed_ = 0;
  char buf_[1 << 16];
  size_t pos_ = 0;
  size_t end_ = 0;
};

// Input JSON nested deeper than this is refused while it is parsed, before anything walks
// it recursively (a record nested 100,000 deep would overflow the stack). An array field
// nests one level per dimension, so this leaves plenty of room (cli/README.md).
constexpr int kMaxJsonDepth = 64;

// For a parse callback: true when `event` opens a container deeper than kMaxJsonDepth.
// The callback then returns false, so the parser discards what is inside (it keeps no
// stack of its own beyond a few bytes a level) and the caller refuses the input.
bool TooDeep(int depth, Json::parse_event_t event) {
  return (event == Json::parse_event_t::object_start ||
          event == Json::parse_event_t::array_start) &&
         depth >= kMaxJsonDepth;
}

std::string TooDeepMessage() {
  return "JSON nested more than " + std::to_string(kMaxJsonDepth) + " levels deep";
}

// A JSON value for an error message, cut to a readable length.
std::string Describe(const Json& v) {
  std::string s = v.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return s;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// "nan", "inf", "-inf", "infinity", "-infinity" (any case).
std::optional<double> SpecialFloat(std::string_view s) {
  std::string l = Lower(s);
  if (l == "nan") return std::numeric_limits<double>::quiet_NaN();
  if (l == "inf" || l == "+inf" || l == "infinity" || l == "+infinity") {
    return std::numeric_limits<double>::infinity();
  }
  if (l == "-inf" || l == "-infinity") return -std::numeric_limits<double>::infinity();
  return std::nullopt;
}

bool AsI64(const Json& v, int64_t* out) {
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
    *out = static_cast<int64_t>(u);
    return true;
  }
  if (v.is_number_integer()) {
    *out = v.get<int64_t>();
    return true;
  }
  return false;
}

bool AsU64(const Json& v, uint64_t* out) {
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
    return true;
  }
  if (v.is_number_integer() && v.get<int64_t>() >= 0) {
    *out = static_cast<uint64_t>(v.get<int64_t>());
    return true;
  }
  return false;
}

Result<double> AsDouble(const Json& v) {
  if (v.is_number()) return v.get<double>();
  if (v.is_string()) {
    if (auto special = SpecialFloat(v.get_ref<const std::string&>())) return *special;
  }
  return InvalidArgument("expected a number, got " + Describe(v));
}

Result<float> AsFloat32(const Json& v) {
  ASSIGN_OR_RETURN(double d, AsDouble(v));
  if (std::isfinite(d) && std::fabs(d) > std::numeric_limits<float>::max()) {
    return InvalidArgument(Describe(v) + " is out of the float32 range");
  }
  return static_cast<float>(d);
}

template <typename T>
void AppendRaw(T v, std::string* out) {
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));
  out->append(buf, sizeof(T));
}

// One array element of `dtype`, appended little-endian (the host order; DreamDB builds on
// little-endian hosts only).
Status AppendElement(DType dtype, const Json& e, std::string* out) {
  auto integer = [&](int64_t lo, int64_t hi) -> Result<int64_t> {
    int64_t i = 0;
    if (!AsI64(e, &i)) {
      if (e.is_number_unsigned()) {
        return InvalidArgument(Describe(e) + " is out of range for " +
                               std::string(DTypeName(dtype)));
      }
      return InvalidArgument("expected an integer, got " + Describe(e));
    }
    if (i < lo || i > hi) {
      return InvalidArgument(Describe(e) + " is out of range for " + std::string(DTypeName(dtype)));
    }
    return i;
  };
  switch (dtype) {
    case DType::kU8: {
      ASSIGN_OR_RETURN(int64_t i, integer(0, UINT8_MAX));
      AppendRaw(static_cast<uint8_t>(i), out);
      break;
    }
    case DType::kI8: {
      ASSIGN_OR_RETURN(int64_t i, integer(INT8_MIN, INT8_MAX));
      AppendRaw(static_cast<int8_t>(i), out);
      break;
    }
    case DType::kU16: {
      ASSIGN_OR_RETURN(int64_t i, integer(0, UINT16_MAX));
      AppendRaw(static_cast<uint16_t>(i), out);
      break;
    }
    case DType::kI16: {
      ASSIGN_OR_RETURN(int64_t i, integer(INT16_MIN, INT16_MAX));
      AppendRaw(static_cast<int16_t>(i), out);
      break;
    }
    case DType::kU32: {
      ASSIGN_OR_RETURN(int64_t i, integer(0, UINT32_MAX));
      AppendRaw(static_cast<uint32_t>(i), out);
      break;
    }
    case DType::kI32: {
      ASSIGN_OR_RETURN(int64_t i, integer(INT32_MIN, INT32_MAX));
      AppendRaw(static_cast<int32_t>(i), out);
      break;
    }
    case DType::kU64: {
      uint64_t u = 0;
      if (!AsU64(e, &u)) {
        if (e.is_number_integer()) {
          return InvalidArgument(Describe(e) + " is out of range for u64");
        }
        return InvalidArgument("expected an integer, got " + Describe(e));
      }
      AppendRaw(u, out);
      break;
    }
    case DType::kI64: {
      ASSIGN_OR_RETURN(int64_t i, integer(std::numeric_limits<int64_t>::min(),
                                          std::numeric_limits<int64_t>::max()));
      AppendRaw(i, out);
      break;
    }
    case DType::kF32: {
      ASSIGN_OR_RETURN(float f, AsFloat32(e));
      AppendRaw(f, out);
      break;
    }
    case DType::kF64: {
      ASSIGN_OR_RETURN(double d, AsDouble(e));
      AppendRaw(d, out);
      break;
    }
  }
  return Status::Ok();
}

void Flatten(const Json& v, std::vector<const Json*>* out) {
  if (v.is_array()) {
    for (const Json& e : v) Flatten(e, out);
  } else {
    out->push_back(&v);
  }
}

std::string ShapeText(const std::vector<uint32_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// The reader of one input file and the batch being built.
class Ingester {
 public:
  Ingester(Invocation& inv, Dataset& ds, std::string input, uint64_t batch_size,
           std::string anchor_key, BlobFiles blob_files, uint64_t max_line_bytes)
      : inv_(inv),
        ds_(ds),
        schema_(ds.schema()),
        input_(std::move(input)),
        batch_size_(batch_size),
        anchor_key_(std::move(anchor_key)),
        blob_files_(std::move(blob_files)),
        max_line_bytes_(max_line_bytes),
        progress_(inv.HasFlag("--progress")) {
    size_t slash = input_.rfind('/');
    input_label_ = input_ == "-" ? "standard input" : input_.substr(slash + 1);
    head_ = ds.head();
  }

  Status RunJsonl(FILE* f);
  Status RunCsv(FILE* f);

  // One shard of a job: reads the lines starting in [offset, end) of the file (already
  // positioned at `offset`) and appends with anchors reserved through `run`.
  void SetShard(ShardRun* run, uint64_t offset, uint64_t end, std::string label) {
    shard_ = run;
    offset_ = offset;
    slice_end_ = end;
    shard_label_ = std::move(label);
    from_file_start_ = offset == 0;
  }

  uint64_t records() const { return committed_; }
  uint64_t commits() const { return commits_; }
  const ObjectId& head() const { return head_; }

 private:
  // How messages name the input: 'path' as given, or standard input.
  std::string InputName() const { return input_ == "-" ? input_label_ : Quote(input_); }
  // The error of line `line` (0: no line), with what was committed so far.
  Status Fail(uint64_t line, const Status& s) const;
  std::string CommittedNote() const;
  std::string FieldContext(const FieldSpec& f) const { return "field " + Quote(f.name); }

  // Sets the fields a record writes (one column each) and resets the batch.
  void SetWritten(std::vector<const FieldSpec*> fields);
  void ResetBatch();
  Status BeginRecord(uint64_t line, std::optional<uint64_t> anchor);
  Status EndRecord();
  Status Flush();

  Status AppendJsonValue(Column& col, const FieldSpec& f, const Json& v);
  Status AppendCell(Column& col, const FieldSpec& f, const std::string& cell);
  Status AppendBlobPath(Column& col, const std::string& path);
  Result<uint64_t> AnchorFromJson(const Json& v) const;

  Invocation& inv_;
  Dataset& ds_;
  const Schema schema_;
  std::string input_;
  std::string input_label_;
  const uint64_t batch_size_;
  const std::string anchor_key_;
  const BlobFiles blob_files_;     // the files blob paths may name (--blob-root)
  const uint64_t max_line_bytes_;  // --max-line-bytes
  Progress progress_;

  std::vector<const FieldSpec*> written_;
  std::vector<Column> columns_;
  std::vector<uint64_t> anchors_;
  std::unordered_map<uint64_t, uint64_t> anchor_lines_;  // anchor -> line, this batch
  std::optional<bool> with_anchors_;                     // decided by the first record
  std::optional<uint64_t> record_anchor_;                // of the record being read
  uint64_t rows_ = 0;
  uint64_t first_line_ = 0;
  uint64_t last_line_ = 0;
  uint64_t line_ = 0;  // line of the record being read

  ShardRun* shard_ = nullptr;
  uint64_t offset_ = 0;              // byte offset in the file where reading started
  uint64_t slice_end_ = UINT64_MAX;  // lines starting here or later are not ours
  std::string shard_label_;          // "shard N of M, bytes [B, E)" when sharded
  bool from_file_start_ = true;      // line 1 is the file's first line (may have a BOM)

  uint64_t read_ = 0;
  uint64_t committed_ = 0;
  uint64_t commits_ = 0;
  ObjectId head_;
};

std::string Ingester::CommittedNote() const {
  if (commits_ == 0) return "nothing was committed";
  return std::to_string(committed_) + (committed_ == 1 ? " record was" : " records were") +
         " committed before the error (" + std::to_string(commits_) +
         (commits_ == 1 ? " commit" : " commits") + ", head " + head_.ToString() +
         "); the batch from line " + std::to_string(rows_ > 0 ? first_line_ : line_) +
         " on was not";
}

Status Ingester::Fail(uint64_t line, const Status& s) const {
  std::string message =
      line != 0 ? "line " + std::to_string(line) + ": " + s.message() : s.message();
  if (shard_ != nullptr) message = shard_label_ + ", " + message + " (lines count from the slice)";
  return Status(s.code(), message + " (" + CommittedNote() + ")");
}

void Ingester::SetWritten(std::vector<const FieldSpec*> fields) {
  written_ = std::move(fields);
  ResetBatch();
}

void Ingester::ResetBatch() {
  columns_.clear();
  for (const FieldSpec* f : written_) columns_.emplace_back(*f);
  anchors_.clear();
  anchor_lines_.clear();
  rows_ = 0;
  first_line_ = 0;
}

Status Ingester::BeginRecord(uint64_t line, std::optional<uint64_t> anchor) {
  record_anchor_ = anchor;
  if (!with_anchors_) with_anchors_ = anchor.has_value();
  if (*with_anchors_ && !anchor) {
    return InvalidArgument("no " + Quote(anchor_key_) +
                           " (earlier records have anchors: give them for every record or none)");
  }
  if (!*with_anchors_ && anchor) {
    return InvalidArgument(Quote(anchor_key_) +
                           " given, but the first record had none: give anchors for every "
                           "record or none");
  }
  if (anchor) {
    auto [it, inserted] = anchor_lines_.emplace(*anchor, line);
    if (!inserted) {
      return InvalidArgument("anchor " + std::to_string(*anchor) +
                             " appears twice in one batch (also on line " +
                             std::to_string(it->second) + ")");
    }
    anchors_.push_back(*anchor);
  }
  if (rows_ == 0) first_line_ = line;
  last_line_ = line;
  return Status::Ok();
}

Status Ingester::EndRecord() {
  ++rows_;
  ++read_;
  if (progress_.enabled()) {
    double s = progress_.ElapsedSeconds();
    progress_.Report("ingest: " + std::to_string(read_) + " records read, " +
                     std::to_string(committed_) + " committed, " +
                     std::to_string(static_cast<uint64_t>(s > 0 ? read_ / s : 0)) + " records/s");
  }
  if (rows_ >= batch_size_) return Flush();
  return Status::Ok();
}

Status Ingester::Flush() {
  if (rows_ == 0) return Status::Ok();
  std::string lines = first_line_ == last_line_ ? "line " + std::to_string(first_line_)
                                                : "lines " + std::to_string(first_line_) + "-" +
                                                      std::to_string(last_line_);
  Batch batch;
  if (*with_anchors_) {
    batch.anchors = std::move(anchors_);
  } else if (shard_ != nullptr) {
    // Sharded: anchors come from a range reserved through the store (spec/14 §19.4).
    auto first = shard_->Reserve(rows_);
    if (!first.ok()) {
      return Status(first.status().code(),
                    lines + ": " + first.status().message() + " (" + CommittedNote() + ")");
    }
    batch.anchors.resize(rows_);
    std::iota(batch.anchors.begin(), batch.anchors.end(), *first);
  }
  batch.columns = std::move(columns_);
  auto info =
      ds_.AppendMany(batch, CommitOptionsFrom(inv_, "ingest " + input_label_ + " " + lines));
  if (!info.ok()) {
    return Status(info.status().code(),
                  lines + ": " + info.status().message() + " (" + CommittedNote() + ")");
  }
  committed_ += rows_;
  ++commits_;
  head_ = info->manifest;
  ResetBatch();
  if (progress_.enabled()) {
    double s = progress_.ElapsedSeconds();
    progress_.Report("ingest: " + std::to_string(committed_) + " records committed in " +
                         std::to_string(commits_) + (commits_ == 1 ? " commit, " : " commits, ") +
                         std::to_string(static_cast<uint64_t>(s > 0 ? committed_ / s : 0)) +
                         " records/s",
                     true);
  }
  return Status::Ok();
}

Result<uint64_t> Ingester::AnchorFromJson(const Json& v) const {
  uint64_t a = 0;
  if (!AsU64(v, &a)) {
    return InvalidArgument(Quote(anchor_key_) + ": expected a non-negative integer, got " +
                           Describe(v));
  }
  return a;
}

Status Ingester::AppendBlobPath(Column& col, const std::string& path) {
  ASSIGN_OR_RETURN(Bytes bytes, blob_files_.Read(path));
  col.AppendBytes(bytes);
  return Status::Ok();
}

Status Ingester::AppendJsonValue(Column& col, const FieldSpec& f, const Json& v) {
  switch (f.type) {
    case FieldType::kInt64: {
      int64_t i = 0;
      if (!AsI64(v, &i)) {
        return InvalidArgument(v.is_number_integer() ? Describe(v) + " is out of the int64 range"
                                                     : "expected an integer, got " + Describe(v));
      }
      col.AppendInt64(i);
      return Status::Ok();
    }
    case FieldType::kFloat64: {
      ASSIGN_OR_RETURN(double d, AsDouble(v));
      col.AppendFloat64(d);
      return Status::Ok();
    }
    case FieldType::kBool:
      if (!v.is_boolean()) return InvalidArgument("expected true or false, got " + Describe(v));
      col.AppendBool(v.get<bool>());
      return Status::Ok();
    case FieldType::kString:
    case FieldType::kCategorical:
      if (!v.is_string()) return InvalidArgument("expected a string, got " + Describe(v));
      col.AppendBytes(v.get_ref<const std::string&>());
      return Status::Ok();
    case FieldType::kTimestamp: {
      int64_t i = 0;
      if (AsI64(v, &i)) {
        col.AppendInt64(i);
        return Status::Ok();
      }
      if (!v.is_string()) {
        return InvalidArgument(
            "expected integer nanoseconds since the epoch or an RFC 3339 string, got " +
            Describe(v));
      }
      ASSIGN_OR_RETURN(int64_t ns, ParseRfc3339(v.get_ref<const std::string&>()));
      col.AppendInt64(ns);
      return Status::Ok();
    }
    case FieldType::kBlob:
      if (v.is_string()) return AppendBlobPath(col, v.get_ref<const std::string&>());
      if (v.is_object() && v.size() >= 1 && v.contains("base64") && v["base64"].is_string()) {
        for (const auto& [key, value] : v.items()) {
          if (key != "base64" && key != "size" && key != "mime") {
            return InvalidArgument("unknown key " + Quote(key) +
                                   " in a blob object (expected \"base64\")");
          }
        }
        auto bytes = Base64Decode(v["base64"].get_ref<const std::string&>());
        if (!bytes.ok()) return bytes.status();
        col.AppendBytes(*bytes);
        return Status::Ok();
      }
      return InvalidArgument("expected a file path or {\"base64\": ...}, got " + Describe(v));
    case FieldType::kEmbedding: {
      if (!v.is_array()) {
        return InvalidArgument("expected a list of " + std::to_string(f.dim) + " floats, got " +
                               Describe(v));
      }
      if (v.size() != f.dim) {
        return InvalidArgument("expected " + std::to_string(f.dim) + " floats, got " +
                               std::to_string(v.size()));
      }
      std::vector<float> floats;
      floats.reserve(f.dim);
      for (size_t i = 0; i < v.size(); ++i) {
        auto x = AsFloat32(v[i]);
        if (!x.ok()) return x.status().WithContext("element " + std::to_string(i));
        if (!std::isfinite(*x)) {
          // Embeddings must be finite (spec/10-schema.md §1.6); float64 fields and arrays
          // may hold NaN and infinities.
          return InvalidArgument(
              "element " + std::to_string(i) + " is " +
              (std::isnan(*x) ? "NaN" : (*x > 0 ? "+inf" : "-inf")) +
              (record_anchor_ ? " in the record at anchor " + std::to_string(*record_anchor_)
                              : std::string()) +
              "; embedding values must be finite");
        }
        floats.push_back(*x);
      }
      col.AppendFloats(floats);
      return Status::Ok();
    }
    case FieldType::kArray: {
      size_t want = 1;
      for (uint32_t d : f.shape) want *= d;
      if (!v.is_array()) {
        return InvalidArgument("expected nested lists of " + std::to_string(want) + " " +
                               std::string(DTypeName(f.dtype)) + " values (shape " +
                               ShapeText(f.shape) + "), got " + Describe(v));
      }
      std::vector<const Json*> flat;
      flat.reserve(want);
      Flatten(v, &flat);
      if (flat.size() != want) {
        return InvalidArgument("expected " + std::to_string(want) + " values (shape " +
                               ShapeText(f.shape) + "), got " + std::to_string(flat.size()));
      }
      std::string raw;
      raw.reserve(want * DTypeSize(f.dtype));
      for (size_t i = 0; i < flat.size(); ++i) {
        Status s = AppendElement(f.dtype, *flat[i], &raw);
        if (!s.ok()) return s.WithContext("element " + std::to_string(i));
      }
      col.AppendFixedBytes(raw);
      return Status::Ok();
    }
  }
  return Internal("unknown field type");
}

Status Ingester::AppendCell(Column& col, const FieldSpec& f, const std::string& cell) {
  auto integer = [&](int64_t* out) {
    auto [end, ec] = std::from_chars(cell.data(), cell.data() + cell.size(), *out);
    return ec == std::errc() && end == cell.data() + cell.size();
  };
  switch (f.type) {
    case FieldType::kInt64: {
      int64_t i = 0;
      if (!integer(&i)) return InvalidArgument("expected an integer, got " + Quote(cell));
      col.AppendInt64(i);
      return Status::Ok();
    }
    case FieldType::kFloat64: {
      if (auto special = SpecialFloat(cell)) {
        col.AppendFloat64(*special);
        return Status::Ok();
      }
      double d = 0;
      auto [end, ec] = std::from_chars(cell.data(), cell.data() + cell.size(), d);
      if (ec != std::errc() || end != cell.data() + cell.size()) {
        return InvalidArgument("expected a number, got " + Quote(cell));
      }
      col.AppendFloat64(d);
      return Status::Ok();
    }
    case FieldType::kBool: {
      std::string l = Lower(cell);
      if (l != "true" && l != "false") {
        return InvalidArgument("expected true or false, got " + Quote(cell));
      }
      col.AppendBool(l == "true");
      return Status::Ok();
    }
    case FieldType::kString:
    case FieldType::kCategorical:
      col.AppendBytes(cell);
      return Status::Ok();
    case FieldType::kTimestamp: {
      int64_t i = 0;
      if (integer(&i)) {
        col.AppendInt64(i);
        return Status::Ok();
      }
      ASSIGN_OR_RETURN(int64_t ns, ParseRfc3339(cell));
      col.AppendInt64(ns);
      return Status::Ok();
    }
    case FieldType::kBlob:
      return AppendBlobPath(col, cell);
    case FieldType::kEmbedding:
    case FieldType::kArray: {
      Json v;
      bool too_deep = false;
      try {
        v = Json::parse(cell, [&](int depth, Json::parse_event_t event, Json& /*parsed*/) {
          if (TooDeep(depth, event)) too_deep = true;
          return !too_deep;
        });
      } catch (const Json::exception&) {
        if (!too_deep) {
          return InvalidArgument("expected a JSON list such as [0.5, 1.0], got " + Quote(cell, 40));
        }
      }
      if (too_deep) return InvalidArgument(TooDeepMessage());
      return AppendJsonValue(col, f, v);
    }
  }
  return Internal("unknown field type");
}

// nlohmann's message without its "[json.exception.parse_error.101] parse error at line 1, "
// prefix (the line is ours).
std::string JsonParseMessage(const std::string& what) {
  std::string m = what;
  size_t bracket = m.find("] ");
  if (m.starts_with("[json.exception") && bracket != std::string::npos) m = m.substr(bracket + 2);
  if (m.starts_with("parse error at line 1, ")) m = m.substr(23);
  return m;
}

Status Ingester::RunJsonl(FILE* f) {
  std::vector<const FieldSpec*> fields;
  std::unordered_map<std::string, size_t> index;
  for (const FieldSpec& spec : schema_.fields()) {
    index.emplace(spec.name, fields.size());
    fields.push_back(&spec);
  }
  SetWritten(fields);
  std::string known;
  for (const FieldSpec& spec : schema_.fields()) known += (known.empty() ? "" : ", ") + spec.name;

  LineReader reader(f, max_line_bytes_);
  std::string buf;
  std::vector<const Json*> values(fields.size());
  std::unordered_set<std::string> keys;
  for (;;) {
    if (offset_ + reader.consumed() >= slice_end_) break;  // the next line is the next shard's
    bool too_long = false;
    auto more = reader.Next(&buf, &too_long);
    if (too_long) {
      return Fail(0, InvalidArgument(LineTooLong(InputName(), line_ + 1, max_line_bytes_)));
    }
    if (!more.ok())
      return Fail(0, IoError("cannot read " + InputName() + ": " + more.status().message()));
    if (!*more) break;
    ++line_;
    std::string_view text(buf);
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
    if (text.find_first_not_of(" \t") == std::string_view::npos) continue;
    if (line_ == 1 && from_file_start_ && text.starts_with("\xef\xbb\xbf")) {
      text.remove_prefix(3);  // UTF-8 BOM
    }

    keys.clear();
    std::string duplicate;
    Json record;
    bool too_deep = false;
    try {
      record = Json::parse(
          text.begin(), text.end(), [&](int depth, Json::parse_event_t event, Json& parsed) {
            if (TooDeep(depth, event)) too_deep = true;
            if (too_deep) return false;
            if (event == Json::parse_event_t::key && depth == 1 &&
                !keys.insert(parsed.get<std::string>()).second && duplicate.empty()) {
              duplicate = parsed.get<std::string>();
            }
            return true;
          });
    } catch (const Json::exception& e) {
      if (!too_deep) {
        return Fail(line_, InvalidArgument("invalid JSON: " + JsonParseMessage(e.what())));
      }
    }
    if (too_deep) return Fail(line_, InvalidArgument("invalid JSON: " + TooDeepMessage()));
    if (!record.is_object()) {
      return Fail(line_, InvalidArgument("expected a JSON object, got " + Describe(record)));
    }
    if (!duplicate.empty())
      return Fail(line_, InvalidArgument("key " + Quote(duplicate) + " appears twice"));

    std::fill(values.begin(), values.end(), nullptr);
    std::optional<uint64_t> anchor;
    for (const auto& [key, value] : record.items()) {
      bool is_anchor = key == anchor_key_;
      if (is_anchor) {
        auto a = AnchorFromJson(value);
        if (!a.ok()) return Fail(line_, a.status());
        anchor = *a;
      }
      auto it = index.find(key);
      if (it != index.end()) {
        values[it->second] = &value;
      } else if (!is_anchor) {
        return Fail(line_, InvalidArgument("unknown field " + Quote(key) +
                                           " (the schema has: " + known + ")"));
      }
    }
    if (Status s = BeginRecord(line_, anchor); !s.ok()) return Fail(line_, s);
    for (size_t i = 0; i < fields.size(); ++i) {
      const FieldSpec& spec = *fields[i];
      const Json* v = values[i];
      if (v == nullptr || v->is_null()) {
        if (!spec.optional) {
          return Fail(line_, InvalidArgument(FieldContext(spec) + " is required but " +
                                             (v == nullptr ? "missing" : "null")));
        }
        columns_[i].AppendNull();
        continue;
      }
      Status s = AppendJsonValue(columns_[i], spec, *v);
      if (!s.ok()) return Fail(line_, s.WithContext(FieldContext(spec)));
    }
    if (Status s = EndRecord(); !s.ok()) return s;
  }
  return Flush();
}

// A streaming RFC 4180 reader: quoted cells may hold commas, doubled quotes and newlines.
// A record (its cells, separators and the newlines inside quoted cells) is at most
// `max_bytes` long, like a JSON Lines line. Not thread-safe (one reader per FILE).
class CsvReader {
 public:
  struct Cell {
    std::string text;
    bool quoted = false;
  };

  CsvReader(FILE* f, uint64_t max_bytes, std::string what)
      : f_(f), max_bytes_(max_bytes), what_(std::move(what)) {}

  // Reads the next record into *cells and the line it starts on into *line. False at the
  // end of the input.
  Result<bool> Next(std::vector<Cell>* cells, uint64_t* line) {
    cells->clear();
    bytes_ = 0;
    too_long_ = false;
    int c = Get();
    if (c == EOF) {
      RETURN_IF_ERROR(ReadError());
      return false;
    }
    *line = line_;
    Cell cell;
    bool at_start = true;
    for (;;) {
      if (at_start && c == '"') {
        cell.quoted = true;
        uint64_t opened = line_;
        for (;;) {
          c = Get();
          if (c == EOF) {
            RETURN_IF_ERROR(ReadError());
            if (too_long_) return InvalidArgument(LineTooLong(what_, *line, max_bytes_));
            return InvalidArgument("line " + std::to_string(opened) + ": unterminated quoted cell");
          }
          if (c == '"') {
            c = Get();
            if (c != '"') break;  // the closing quote; c is the character after it
          }
          if (c == '\n') ++line_;
          cell.text.push_back(static_cast<char>(c));
        }
        if (c != ',' && c != '\n' && c != '\r' && c != EOF) {
          return InvalidArgument("line " + std::to_string(line_) +
                                 ": unexpected character after a closing quote (a quote inside "
                                 "a quoted cell is written \"\")");
        }
      }
      at_start = false;
      if (c == ',' || c == '\n' || c == '\r' || c == EOF) {
        cells->push_back(std::move(cell));
        cell = Cell{};
        if (c == ',') {
          at_start = true;
          c = Get();
          continue;
        }
        if (c == '\r') {
          int next = getc_unlocked(f_);
          if (next != '\n' && next != EOF) ungetc(next, f_);
        }
        if (c != EOF) ++line_;
        if (c == EOF) {
          if (too_long_) return InvalidArgument(LineTooLong(what_, *line, max_bytes_));
          RETURN_IF_ERROR(ReadError());
        }
        return true;
      }
      cell.text.push_back(static_cast<char>(c));
      c = Get();
    }
  }

 private:
  // The next byte of the record, or EOF at the end of the input or past the limit
  // (too_long_ then says which).
  int Get() {
    if (bytes_ >= max_bytes_ + 2) {  // the limit, and a CRLF
      too_long_ = true;
      return EOF;
    }
    ++bytes_;
    return getc_unlocked(f_);
  }

  Status ReadError() {
    if (std::ferror(f_)) return IoError(std::string("reading input: ") + std::strerror(errno));
    return Status::Ok();
  }

  FILE* f_;
  const uint64_t max_bytes_;
  const std::string what_;  // the input, for messages
  uint64_t line_ = 1;
  uint64_t bytes_ = 0;  // read of the current record
  bool too_long_ = false;
};

Status Ingester::RunCsv(FILE* f) {
  CsvReader reader(f, max_line_bytes_, InputName());
  std::vector<CsvReader::Cell> cells;
  uint64_t line = 0;
  // The header: each column is a field, the anchor column, or both.
  for (;;) {
    auto more = reader.Next(&cells, &line);
    if (!more.ok()) return Fail(0, more.status());
    if (!*more) return Status::Ok();  // empty input: nothing to ingest
    if (!(cells.size() == 1 && cells[0].text.empty())) break;
  }
  if (line == 1 && cells[0].text.starts_with("\xef\xbb\xbf")) cells[0].text.erase(0, 3);
  std::string known;
  for (const FieldSpec& spec : schema_.fields()) known += (known.empty() ? "" : ", ") + spec.name;
  std::vector<const FieldSpec*> fields;
  std::vector<int> column_field;  // header column -> index into fields, or -1
  int anchor_column = -1;
  std::unordered_set<std::string> seen;
  for (size_t i = 0; i < cells.size(); ++i) {
    const std::string& name = cells[i].text;
    if (!seen.insert(name).second) {
      return Fail(line, InvalidArgument("column " + Quote(name) + " appears twice in the header"));
    }
    if (name == anchor_key_) anchor_column = static_cast<int>(i);
    const FieldSpec* spec = schema_.Find(name);
    if (spec == nullptr && name != anchor_key_) {
      return Fail(line, InvalidArgument("unknown column " + Quote(name) +
                                        " (the schema has: " + known + ")"));
    }
    column_field.push_back(spec == nullptr ? -1 : static_cast<int>(fields.size()));
    if (spec != nullptr) fields.push_back(spec);
  }
  if (anchor_column < 0) {
    // Without anchors every record is new, so every required field needs a column.
    for (const FieldSpec& spec : schema_.fields()) {
      if (!spec.optional && !seen.contains(spec.name)) {
        return Fail(line, InvalidArgument("the header has no column for required field " +
                                          Quote(spec.name)));
      }
    }
  }
  SetWritten(fields);
  for (;;) {
    auto more = reader.Next(&cells, &line);
    if (!more.ok()) return Fail(0, more.status());
    if (!*more) break;
    if (cells.size() == 1 && cells[0].text.empty() && !cells[0].quoted) continue;  // blank line
    line_ = line;
    if (cells.size() != column_field.size()) {
      return Fail(line, InvalidArgument("expected " + std::to_string(column_field.size()) +
                                        " cells (one per header column), got " +
                                        std::to_string(cells.size())));
    }
    std::optional<uint64_t> anchor;
    if (anchor_column >= 0) {
      const CsvReader::Cell& cell = cells[static_cast<size_t>(anchor_column)];
      if (!cell.text.empty() || cell.quoted) {
        auto a = ParseU64(Quote(anchor_key_), cell.text);
        if (!a.ok()) return Fail(line, a.status());
        anchor = *a;
      }
    }
    if (Status s = BeginRecord(line, anchor); !s.ok()) return Fail(line, s);
    for (size_t i = 0; i < cells.size(); ++i) {
      if (column_field[i] < 0) continue;
      auto k = static_cast<size_t>(column_field[i]);
      const FieldSpec& spec = *fields[k];
      // An empty cell is null, but "" is the empty string for string fields.
      bool null = cells[i].text.empty() &&
                  !(cells[i].quoted &&
                    (spec.type == FieldType::kString || spec.type == FieldType::kCategorical));
      if (null) {
        if (!spec.optional) {
          return Fail(line, InvalidArgument(FieldContext(spec) + " is required but empty"));
        }
        columns_[k].AppendNull();
        continue;
      }
      Status s = AppendCell(columns_[k], spec, cells[i].text);
      if (!s.ok()) return Fail(line, s.WithContext(FieldContext(spec)));
    }
    if (Status s = EndRecord(); !s.ok()) return s;
  }
  return Flush();
}

// The value of the byte-count flag `name`, `fallback` without it; at most `max` (named
// `max_text` in the message).
Result<uint64_t> ByteLimitFlag(const Invocation& inv, std::string_view name, uint64_t fallback,
                               uint64_t max, std::string_view max_text) {
  auto flag = inv.FlagValue(name);
  if (!flag) return fallback;
  ASSIGN_OR_RETURN(uint64_t value, ParseU64(name, *flag));
  if (value > max) {
    return InvalidArgument(std::string(name) + " " + std::string(*flag) + " is above " +
                           std::string(max_text));
  }
  return value;
}

// The blob files this run may read: under --blob-root, else the input file's directory;
// none for standard input without --blob-root (piped input is the least trusted).
Result<BlobFiles> BlobFilesFor(const Invocation& inv, const std::string& input,
                               uint64_t max_bytes) {
  if (auto root = inv.FlagValue("--blob-root")) {
    if (root->empty()) return InvalidArgument("--blob-root: empty path");
    return BlobFiles::Open(std::string(*root), "--blob-root", max_bytes);
  }
  if (input == "-") {
    return BlobFiles::Disabled(
        "blob files are not read from standard input without --blob-root DIR (give "
        "--blob-root, or the bytes inline as {\"base64\": ...})");
  }
  size_t slash = input.rfind('/');
  std::string dir = slash == std::string::npos ? "." : input.substr(0, slash + 1);
  return BlobFiles::Open(dir, "the input file's directory (the default --blob-root)", max_bytes);
}

Status CheckAnchorField(const Dataset& ds, const std::string& anchor_key) {
  const Schema schema = ds.schema();
  if (const FieldSpec* spec = schema.Find(anchor_key);
      spec != nullptr && spec->type != FieldType::kInt64) {
    return InvalidArgument("--anchor-field " + Quote(anchor_key) + " is a " +
                           std::string(FieldTypeName(spec->type)) +
                           " field; anchors come from integers");
  }
  return Status::Ok();
}

// Positions `f` at the first line that starts in [range.begin, range.end) and returns its
// offset: the byte after the first newline at or after begin - 1 (spec/14 §19.7).
Result<uint64_t> SeekToSlice(FILE* f, const std::string& input, ByteRange range) {
  if (range.begin == 0) return uint64_t{0};
  if (::fseeko(f, static_cast<off_t>(range.begin - 1), SEEK_SET) != 0) {
    return ErrnoStatus(errno, "cannot seek in", input);
  }
  uint64_t offset = range.begin - 1;
  for (;;) {
    int c = std::fgetc(f);
    if (c == EOF) {
      if (std::ferror(f)) return ErrnoStatus(errno, "cannot read", input);
      return offset;
    }
    ++offset;
    if (c == '\n') return offset;
    if (offset >= range.end) return offset;  // no line starts in the slice
  }
}

// One shard of a sharded ingest (spec/14-semantics.md §19.5).
Status RunShard(Invocation& inv, const std::string& name, const std::string& input, FILE* f,
                uint64_t batch_size, const std::string& anchor_key, BlobFiles blob_files,
                const std::string& job, const std::optional<std::string>& shard_flag,
                const std::optional<std::string>& of_flag, uint64_t max_line_bytes) {
  ASSIGN_OR_RETURN(ShardIndex index, ResolveShardIndex(shard_flag, of_flag));
  struct stat st;
  if (::fstat(fileno(f), &st) != 0) return ErrnoStatus(errno, "cannot stat", input);
  if (!S_ISREG(st.st_mode)) {
    return InvalidArgument("a sharded ingest (--job) needs a regular file: " + Quote(input) +
                           " is not one");
  }
  const ByteRange range = ShardByteRange(static_cast<uint64_t>(st.st_size), index.shard, index.of);
  ASSIGN_OR_RETURN(std::shared_ptr<Store> store, SharedStore(inv));
  ASSIGN_OR_RETURN(auto run, ShardRun::Begin(store, name, job, BranchFlag(inv), index));
  const std::string who = "shard " + std::to_string(index.shard) + " of " +
                          std::to_string(index.of) + " of job " + Quote(job);
  const bool already = run->done();
  uint64_t records = 0;
  uint64_t commits = 0;
  if (!already) {
    RETURN_IF_ERROR(CheckAnchorField(*run->dataset(), anchor_key));
    ASSIGN_OR_RETURN(uint64_t offset, SeekToSlice(f, input, range));
    Ingester ingester(inv, *run->dataset(), input, batch_size, anchor_key, std::move(blob_files),
                      max_line_bytes);
    ingester.SetShard(
        run.get(), offset, range.end,
        who + ", bytes [" + std::to_string(range.begin) + ", " + std::to_string(range.end) + ")");
    RETURN_IF_ERROR(ingester.RunJsonl(f));
    RETURN_IF_ERROR(run->Finish());
    records = ingester.records();
    commits = ingester.commits();
  }
  if (inv.json()) {
    inv.PrintJson(JsonObject()
                      .Add("dataset", name)
                      .Add("job", job)
                      .Add("shard", uint64_t{index.shard})
                      .Add("of", uint64_t{index.of})
                      .Add("already_done", already)
                      .Add("records", records)
                      .Add("commits", commits)
                      .Add("bytes_begin", range.begin)
                      .Add("bytes_end", range.end)
                      .Add("result", run->result().ToString()));
  } else if (already) {
    inv.PrintLine(who + " was already done (result " + run->result().ToString() +
                  "); nothing written");
  } else {
    inv.PrintLine("ingested " + std::to_string(records) + " records as " + who + " (bytes " +
                  std::to_string(range.begin) + ".." + std::to_string(range.end) + ", " +
                  std::to_string(commits) + (commits == 1 ? " commit" : " commits") + "); result " +
                  run->result().ToString() + "; publish with `dreamdb commit " + name + " --job " +
                  job + "`");
  }
  return Status::Ok();
}

// The paths of a --files-from list: one per line; blank lines and lines starting with '#'
// are skipped; a relative path resolves against the list's directory.
Result<std::vector<std::string>> ReadFileList(const std::string& list) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(list.c_str(), "rb"), &std::fclose);
  if (!f) return ErrnoStatus(errno, "cannot open", list);
  size_t slash = list.rfind('/');
  const std::string dir = slash == std::string::npos ? "" : list.substr(0, slash + 1);
  std::vector<std::string> files;
  std::string line;
  for (int c = 0; c != EOF;) {
    c = std::fgetc(f.get());
    if (c != '\n' && c != EOF) {
      line.push_back(static_cast<char>(c));
      continue;
    }
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty() && line[0] != '#') files.push_back(line[0] == '/' ? line : dir + line);
    line.clear();
  }
  if (std::ferror(f.get())) return ErrnoStatus(errno, "cannot read", list);
  if (files.empty()) return InvalidArgument("--files-from " + Quote(list) + " names no file");
  return files;
}

// What ingesting whole files adds up to.
struct FilesRun {
  uint64_t records = 0;
  uint64_t commits = 0;
  ObjectId head;
};

// Ingests `files` whole, one after another, into `ds`; with `run`, with anchors reserved
// through it. A bad record stops the run naming its file and line; the files before it
// stay committed.
Status IngestFiles(Invocation& inv, Dataset& ds, const std::vector<std::string>& files,
                   ShardRun* run, const std::string& who, uint64_t batch_size,
                   const std::string& anchor_key, uint64_t max_blob_bytes, uint64_t max_line_bytes,
                   FilesRun* out) {
  RETURN_IF_ERROR(CheckAnchorField(ds, anchor_key));
  out->head = ds.head();
  for (const std::string& input : files) {
    std::string format(inv.FlagValue("--format").value_or(""));
    if (format.empty()) format = Lower(input).ends_with(".csv") ? "csv" : "jsonl";
    std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(input.c_str(), "rb"), &std::fclose);
    if (!f) return ErrnoStatus(errno, "cannot open", input);
    struct stat st;
    if (::fstat(fileno(f.get()), &st) == 0 && S_ISDIR(st.st_mode)) {
      return ErrnoStatus(EISDIR, "cannot read", input);
    }
    ASSIGN_OR_RETURN(BlobFiles blob_files, BlobFilesFor(inv, input, max_blob_bytes));
    Ingester ingester(inv, ds, input, batch_size, anchor_key, std::move(blob_files),
                      max_line_bytes);
    if (run != nullptr) ingester.SetShard(run, 0, UINT64_MAX, who + ", file " + Quote(input));
    Status s = format == "csv" ? ingester.RunCsv(f.get()) : ingester.RunJsonl(f.get());
    out->records += ingester.records();
    out->commits += ingester.commits();
    if (ingester.commits() > 0) out->head = ingester.head();
    RETURN_IF_ERROR(s);
  }
  return Status::Ok();
}

// `ingest --files-from LIST`: every file of the list, or with --job the shard's files
// [⌊N·F/M⌋, ⌊(N+1)·F/M⌋) of the F files (spec/14 §19.7), each whole.
Status RunFileList(Invocation& inv, const std::string& name, const std::string& list,
                   uint64_t batch_size, const std::string& anchor_key, uint64_t max_blob_bytes,
                   uint64_t max_line_bytes, const std::optional<std::string>& job,
                   const std::optional<std::string>& shard_flag,
                   const std::optional<std::string>& of_flag) {
  ASSIGN_OR_RETURN(std::vector<std::string> files, ReadFileList(list));
  FilesRun total;
  if (!job) {
    ASSIGN_OR_RETURN(auto ds, OpenForWrite(inv, name));
    RETURN_IF_ERROR(IngestFiles(inv, *ds, files, nullptr, "", batch_size, anchor_key,
                                max_blob_bytes, max_line_bytes, &total));
    if (inv.json()) {
      inv.PrintJson(JsonObject()
                        .Add("dataset", name)
                        .Add("branch", ds->branch())
                        .Add("files", static_cast<uint64_t>(files.size()))
                        .Add("records", total.records)
                        .Add("commits", total.commits)
                        .Add("head", ds->head().ToString()));
    } else {
      inv.PrintLine("ingested " + std::to_string(total.records) + " records from " +
                    std::to_string(files.size()) + " files into " + Quote(name) + " (branch " +
                    ds->branch() + ") in " + std::to_string(total.commits) +
                    (total.commits == 1 ? " commit" : " commits") + "; head " +
                    ds->head().ToString());
    }
    return Status::Ok();
  }
  ASSIGN_OR_RETURN(ShardIndex index, ResolveShardIndex(shard_flag, of_flag));
  const uint64_t n = files.size();
  const uint64_t begin = n * index.shard / index.of;
  const uint64_t end = n * (uint64_t{index.shard} + 1) / index.of;
  const std::vector<std::string> mine(files.begin() + static_cast<ptrdiff_t>(begin),
                                      files.begin() + static_cast<ptrdiff_t>(end));
  ASSIGN_OR_RETURN(std::shared_ptr<Store> store, SharedStore(inv));
  ASSIGN_OR_RETURN(auto run, ShardRun::Begin(store, name, *job, BranchFlag(inv), index));
  const std::string who = "shard " + std::to_string(index.shard) + " of " +
                          std::to_string(index.of) + " of job " + Quote(*job);
  const bool already = run->done();
  if (!already) {
    RETURN_IF_ERROR(IngestFiles(inv, *run->dataset(), mine, run.get(), who, batch_size, anchor_key,
                                max_blob_bytes, max_line_bytes, &total));
    RETURN_IF_ERROR(run->Finish());
  }
  if (inv.json()) {
    inv.PrintJson(JsonObject()
                      .Add("dataset", name)
                      .Add("job", *job)
                      .Add("shard", uint64_t{index.shard})
                      .Add("of", uint64_t{index.of})
                      .Add("already_done", already)
                      .Add("records", total.records)
                      .Add("commits", total.commits)
                      .Add("files_begin", begin)
                      .Add("files_end", end)
                      .Add("result", run->result().ToString()));
  } else if (already) {
    inv.PrintLine(who + " was already done (result " + run->result().ToString() +
                  "); nothing written");
  } else {
    inv.PrintLine("ingested " + std::to_string(total.records) + " records as " + who + " (files " +
                  std::to_string(begin) + ".." + std::to_string(end) + " of " + std::to_string(n) +
                  ", " + std::to_string(total.commits) +
                  (total.commits == 1 ? " commit" : " commits") + "); result " +
                  run->result().ToString() + "; publish with `dreamdb commit " + name + " --job " +
                  *job + "`");
  }
  return Status::Ok();
}

Status Run(Invocation& inv) {
  const std::string& name = inv.Arg("NAME");
  std::string input = inv.Arg("FILE");
  std::string format;
  if (auto flag = inv.FlagValue("--format")) {
    format = *flag;
    if (format != "jsonl" && format != "csv") {
      return inv.Usage("--format " + Quote(format) + ": expected jsonl or csv");
    }
  } else {
    format = Lower(input).ends_with(".csv") ? "csv" : "jsonl";
  }
  uint64_t batch_size = kDefaultBatchSize;
  if (auto flag = inv.FlagValue("--batch-size")) {
    ASSIGN_OR_RETURN(batch_size, ParseU64("--batch-size", *flag));
    if (batch_size == 0) return InvalidArgument("--batch-size must be at least 1");
  }
  std::string anchor_key(inv.FlagValue("--anchor-field").value_or("anchor"));
  if (anchor_key.empty()) return InvalidArgument("--anchor-field: empty name");
  ASSIGN_OR_RETURN(
      uint64_t max_blob_bytes,
      ByteLimitFlag(inv, "--max-blob-bytes", kDefaultMaxBlobBytes, kMaxMaxBlobBytes, "2^40"));
  ASSIGN_OR_RETURN(uint64_t max_line_bytes,
                   ByteLimitFlag(inv, "--max-line-bytes", DefaultMaxLineBytes(max_blob_bytes),
                                 kMaxMaxLineBytes, "2^42"));
  std::optional<std::string> job(inv.FlagValue("--job"));
  std::optional<std::string> shard_flag(inv.FlagValue("--shard"));
  std::optional<std::string> of_flag(inv.FlagValue("--of"));
  if (!job && (shard_flag || of_flag)) {
    return inv.Usage("--shard/--of need --job J (the job the shards belong to)");
  }
  if (job) RETURN_IF_ERROR(ValidateJobId(*job));
  if (auto list = inv.FlagValue("--files-from")) {
    if (inv.HasArg("FILE")) return inv.Usage("give FILE or --files-from LIST, not both");
    return RunFileList(inv, name, std::string(*list), batch_size, anchor_key, max_blob_bytes,
                       max_line_bytes, job, shard_flag, of_flag);
  }
  if (!inv.HasArg("FILE")) return inv.Usage("FILE (or --files-from LIST) is required");
  ASSIGN_OR_RETURN(BlobFiles blob_files, BlobFilesFor(inv, input, max_blob_bytes));

  // Open the input before the dataset so a missing file costs no store access.
  FILE* f = stdin;
  if (input != "-") {
    f = std::fopen(input.c_str(), "rb");
    if (f == nullptr) return ErrnoStatus(errno, "cannot open", input);
    struct stat st;
    if (::fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
      std::fclose(f);
      return ErrnoStatus(EISDIR, "cannot read", input);
    }
  }
  std::unique_ptr<FILE, int (*)(FILE*)> closer(f == stdin ? nullptr : f, &std::fclose);

  if (job) {
    if (input == "-") {
      return InvalidArgument(
          "a sharded ingest (--job) reads byte ranges of a file; standard input cannot be split");
    }
    if (format == "csv") {
      return InvalidArgument(
          "a sharded ingest (--job) reads JSON Lines; a CSV record may span lines, so byte "
          "ranges cannot split it (convert to JSON Lines)");
    }
  }
  if (job)
    return RunShard(inv, name, input, f, batch_size, anchor_key, std::move(blob_files), *job,
                    shard_flag, of_flag, max_line_bytes);

  ASSIGN_OR_RETURN(auto ds, OpenForWrite(inv, name));
  RETURN_IF_ERROR(CheckAnchorField(*ds, anchor_key));
  Ingester ingester(inv, *ds, input, batch_size, anchor_key, std::move(blob_files), max_line_bytes);
  RETURN_IF_ERROR(format == "csv" ? ingester.RunCsv(f) : ingester.RunJsonl(f));
  std::string head = ingester.head().ToString();
  if (inv.json()) {
    inv.PrintJson(JsonObject()
                      .Add("dataset", name)
                      .Add("branch", ds->branch())
                      .Add("records", ingester.records())
                      .Add("commits", ingester.commits())
                      .Add("head", head));
  } else {
    inv.PrintLine("ingested " + std::to_string(ingester.records()) + " records into " +
                  Quote(name) + " (branch " + ds->branch() + ") in " +
                  std::to_string(ingester.commits()) +
                  (ingester.commits() == 1 ? " commit" : " commits") + "; head " + head);
  }
  return Status::Ok();
}

const Registrar kRegistrar({
    .path = "ingest",
    .summary = "Append records from a JSON Lines or CSV file",
    .description =
        "One commit per batch. JSON Lines: one object per line, keys = field names, plus an\n"
        "optional \"anchor\" (a non-negative integer; give it for every record or none). A\n"
        "missing key or null is null. CSV: a header row names the columns (fields and the\n"
        "optional anchor column); an empty cell is null (a quoted \"\" is the empty string in\n"
        "string fields). Values by type:\n"
        "  int64 integers; float64 numbers (or \"nan\", \"inf\", \"-inf\"); bool true/false;\n"
        "  string, categorical strings; timestamp integer ns since the epoch or RFC 3339\n"
        "  ('2024-05-01T12:00:00.5Z'); blob a file path or, in JSON, {\"base64\": ...};\n"
        "  embedding a list of dim numbers; array nested lists (flattened, prod(shape)\n"
        "  values). In CSV, embeddings and arrays are JSON lists in one cell: \"[0.5, 1.0]\".\n"
        "Blob files: the input is untrusted, so a blob path may only name a regular file\n"
        "inside the blob root: --blob-root DIR, by default the input file's directory. Paths\n"
        "resolve against it; '..', absolute paths and symbolic links that lead outside it\n"
        "are refused (exit 11), and so are devices, FIFOs and sockets (exit 3) and files\n"
        "larger than --max-blob-bytes (default 64 MiB; exit 3). With standard input ('-')\n"
        "blob paths are refused unless --blob-root is given; inline base64 always works.\n"
        "A JSON Lines line (a CSV record) may be at most --max-line-bytes long: by default\n"
        "room for one inline base64 blob of --max-blob-bytes plus 1 MiB (90527064 bytes\n"
        "with the default 64 MiB); a longer one stops the run before it is read further,\n"
        "naming the file and the line (exit 3).\n"
        "A bad record stops the run naming its line and field (exit 3, or 4 for a missing\n"
        "blob file); its batch is not committed, earlier batches are (the message says how\n"
        "many records). Progress goes to stderr when it is a terminal, or with --progress.\n"
        "Text: a summary line. JSON: {\"dataset\", \"branch\", \"records\", \"commits\", "
        "\"head\"}.\n"
        "Sharded (--job J): shard N of M reads the lines that start in bytes\n"
        "[N*S/M, (N+1)*S/M) of FILE (S its size; JSON Lines only), commits them on branch\n"
        "jobs/J/shard-N with anchors reserved through the store, and records its result in\n"
        "ref NAME/jobs/J/shards/N. Run again, a finished shard writes nothing. N and M come\n"
        "from --shard/--of, a Slurm array (SLURM_ARRAY_TASK_ID/_MIN/_STEP/_COUNT) or a\n"
        "Kubernetes Indexed Job (JOB_COMPLETION_INDEX, with --of or DREAMDB_SHARD_COUNT).\n"
        "`dreamdb commit NAME --job J` publishes every shard in one commit. JSON: {\"dataset\",\n"
        "\"job\", \"shard\", \"of\", \"already_done\", \"records\", \"commits\",\n"
        "\"bytes_begin\", \"bytes_end\", \"result\"}.\n"
        "--files-from LIST instead of FILE ingests every file LIST names, whole, in order\n"
        "(CSV or JSON Lines by extension); with --job, shard N of M takes files\n"
        "[N*F/M, (N+1)*F/M) of the F listed (JSON: \"files_begin\", \"files_end\" in place\n"
        "of the bytes). Without --job, JSON adds \"files\".",
    .positionals = {{.name = "NAME", .help = "the dataset"},
                    {.name = "FILE",
                     .help = "the input ('-' = standard input); or --files-from",
                     .optional = true}},
    .flags = {{.name = "--format",
               .value_name = "F",
               .help = "jsonl or csv (default: csv for *.csv, else jsonl)"},
              {.name = "--batch-size",
               .value_name = "N",
               .help = "records per commit (default 10000)"},
              kBranchFlag,
              kMessageFlag,
              {.name = "--blob-root",
               .value_name = "DIR",
               .help = "blob paths resolve under DIR and may not leave it (default: the input "
                       "file's directory; none for standard input)"},
              {.name = "--max-blob-bytes",
               .value_name = "N",
               .help = "the largest blob file read, in bytes (default 67108864 = 64 MiB)"},
              {.name = "--max-line-bytes",
               .value_name = "N",
               .help = "the longest line (CSV record) read, in bytes (default: base64 of "
                       "--max-blob-bytes + 1 MiB = 90527064)"},
              {.name = "--anchor-field",
               .value_name = "FIELD",
               .help = "the key/column holding anchors (default \"anchor\"); may be an int64 "
                       "field, which is then also stored"},
              kProgressFlag,
              {.name = "--files-from",
               .value_name = "LIST",
               .help = "ingest the files LIST names (one path a line; '#' comments; "
                       "relative to LIST's directory), each whole, in order"},
              {.name = "--job",
               .value_name = "J",
               .help = "run as one shard of sharded job J (spec/14 §19): the shard's byte "
                       "range of FILE (JSON Lines), anchors reserved through the store; "
                       "publish with `dreamdb commit NAME --job J`"},
              {.name = "--shard",
               .value_name = "N",
               .help = "this shard's index, 0..M-1 (default: from SLURM_ARRAY_TASK_ID or "
                       "JOB_COMPLETION_INDEX)"},
              {.name = "--of",
               .value_name = "M",
               .help = "the number of shards (default: SLURM_ARRAY_TASK_COUNT or "
                       "DREAMDB_SHARD_COUNT)"}},
    .run = Run,
});

}  // namespace
}  // namespace dreamdb::cli
