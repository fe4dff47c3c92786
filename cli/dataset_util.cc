// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
#include "cli/dataset_util.h"

#include <unistd.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <limits>
#include <span>

#include "dreamdb/quote.h"

namespace dreamdb::cli {

// ---- Opening datasets ----

Result<std::shared_ptr<Store>> SharedStore(Invocation& inv) {
  ASSIGN_OR_RETURN(Store * store, inv.store());
  return std::shared_ptr<Store>(store, [](Store*) {});  // borrowed: the Invocation owns it
}

Result<std::unique_ptr<Dataset>> OpenForRead(Invocation& inv, const std::string& name) {
  ASSIGN_OR_RETURN(std::shared_ptr<Store> store, SharedStore(inv));
  std::optional<std::string_view> at = inv.FlagValue("--at");
  if (at) return Dataset::OpenAt(std::move(store), name, *at);
  return Dataset::Open(std::move(store), name, "main");
}

Result<std::unique_ptr<Dataset>> OpenForWrite(Invocation& inv, const std::string& name) {
  ASSIGN_OR_RETURN(std::shared_ptr<Store> store, SharedStore(inv));
  return Dataset::Open(std::move(store), name, BranchFlag(inv));
}

CommitOptions CommitOptionsFrom(const Invocation& inv, std::string default_message) {
  CommitOptions options;
  std::optional<std::string_view> message = inv.FlagValue("--message");
  options.message = message ? std::string(*message) : std::move(default_message);
  return options;
}

std::string BranchFlag(const Invocation& inv) {
  return std::string(inv.FlagValue("--branch").value_or("main"));
}

Status ValidateDatasetNameArg(std::string_view name) {
  if (name.empty()) return InvalidArgument("dataset name is empty");
  if (name.size() > 100) {
    return InvalidArgument("dataset name " + Quote(name) + " is longer than 100 characters");
  }
  if (name[0] == '.') return InvalidArgument("dataset name " + Quote(name) + " starts with '.'");
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) {
      return InvalidArgument("dataset name " + Quote(name) +
                             " may only contain letters, digits, '.', '_' and '-'");
    }
  }
  return Status::Ok();
}

// ---- Command-line values ----

Result<uint64_t> ParseU64(std::string_view what, std::string_view text) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
    std::string why = ec == std::errc::result_out_of_range ? " (above 2^64-1)" : "";
    return InvalidArgument(std::string(what) + ": expected a non-negative integer, got " +
                           Quote(text) + why);
  }
  return v;
}

Result<std::vector<std::string>> ParseFieldList(std::string_view what, std::string_view text) {
  std::vector<std::string> out;
  size_t begin = 0;
  for (;;) {
    size_t comma = text.find(',', begin);
    std::string_view item = text.substr(
        begin, comma == std::string_view::npos ? std::string_view::npos : comma - begin);
    if (item.empty()) {
      return InvalidArgument(std::string(what) + " " + Quote(text) +
                             ": expected comma-separated field names, got an empty one");
    }
    out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    begin = comma + 1;
  }
  return out;
}

Result<std::vector<std::string>> FieldsFlag(const Invocation& inv) {
  std::optional<std::string_view> fields = inv.FlagValue("--fields");
  if (!fields) return std::vector<std::string>{};
  return ParseFieldList("--fields", *fields);
}

Result<std::vector<uint64_t>> ParseAnchors(const std::vector<std::string>& args) {
  std::vector<uint64_t> anchors;
  anchors.reserve(args.size());
  for (const std::string& a : args) {
    ASSIGN_OR_RETURN(uint64_t v, ParseU64("anchor", a));
    anchors.push_back(v);
  }
  return anchors;
}

// ---- JSON ----

void AppendJsonInt(int64_t v, std::string* out) { *out += std::to_string(v); }
void AppendJsonUint(uint64_t v, std::string* out) { *out += std::to_string(v); }

namespace {

template <typename T>
void AppendJsonReal(T v, std::string* out) {
  if (std::isnan(v)) {
    *out += "\"nan\"";
  } else if (std::isinf(v)) {
    *out += v > 0 ? "\"inf\"" : "\"-inf\"";
  } else {
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
    out->append(buf, end);
  }
}

}  // namespace

void AppendJsonDouble(double v, std::string* out) { AppendJsonReal(v, out); }

std::string CompareFieldStatsJson(const CompareSummary& s, const CompareFieldStats& st) {
  auto num = [](const std::optional<double>& v) {
    std::string out = "null";
    if (v) {
      out.clear();
      AppendJsonDouble(*v, &out);
    }
    return out;
  };
  JsonObject o;
  o.Add("field", st.field)
      .Add("type", FieldTypeName(st.type))
      .Add("baseline", s.refs[st.a])
      .Add("ref", s.refs[st.b])
      .Add("both", st.both)
      .Add("only_baseline", st.only_a)
      .Add("only_ref", st.only_b)
      .Add("differing", st.differing)
      .AddRaw("agreement", num(st.agreement));
  if (st.type == FieldType::kInt64 || st.type == FieldType::kFloat64 ||
      st.type == FieldType::kTimestamp) {
    o.Add("numeric_count", st.numeric_count)
        .AddRaw("mean_diff", num(st.mean_diff))
        .AddRaw("median_diff", num(st.median_diff))
        .Add("median_approximate", st.median_approximate)
        .AddRaw("mean_abs_diff", num(st.mean_abs_diff));
  }
  if (st.type == FieldType::kEmbedding) {
    o.AddRaw("mean_cosine", num(st.mean_cosine)).AddRaw("min_cosine", num(st.min_cosine));
  }
  return o.Finish();
}
void AppendJsonFloat(float v, std::string* out) { AppendJsonReal(v, out); }

std::string JsonStringList(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i != 0) out += ", ";
    AppendJsonString(items[i], &out);
  }
  return out + "]";
}

std::string JsonStringMap(const std::vector<std::pair<std::string, std::string>>& items) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i != 0) out += ", ";
    AppendJsonString(items[i].first, &out);
    out += ": ";
    AppendJsonString(items[i].second, &out);
  }
  return out + "}";
}

// ---- Time ----

namespace {

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool Digits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

}  // namespace

std::string IsoTime(int64_t ns) {
  int64_t secs = ns / 1'000'000'000;
  int64_t frac = ns % 1'000'000'000;
  if (frac < 0) {
    frac += 1'000'000'000;
    --secs;
  }
  std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(frac));
  return buf;
}

Result<int64_t> ParseRfc3339(std::string_view s) {
  auto bad = [&](std::string_view why) {
    return InvalidArgument("expected an RFC 3339 time such as '2024-05-01T12:00:00Z', got " +
                           Quote(s) + " (" + std::string(why) + ")");
  };
  int year, month, day, hour, minute, second;
  if (!Digits(s, 0, 4, &year) || s.size() < 19 || s[4] != '-' || !Digits(s, 5, 2, &month) ||
      s[7] != '-' || !Digits(s, 8, 2, &day) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      !Digits(s, 11, 2, &hour) || s[13] != ':' || !Digits(s, 14, 2, &minute) || s[16] != ':' ||
      !Digits(s, 17, 2, &second)) {
    return bad("malformed");
  }
  static constexpr int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  if (month < 1 || month > 12 || day < 1 || day > kDays[month - 1] ||
      (month == 2 && day == 29 && !leap)) {
    return bad("no such date");
  }
  if (hour > 23 || minute > 59 || second > 60) return bad("no such time of day");
  size_t pos = 19;
  int64_t frac_ns = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    size_t digits = 0;
    int64_t scale = 100'000'000;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (digits < 9) frac_ns += (s[pos] - '0') * scale;
      scale /= 10;
      ++digits;
      ++pos;
    }
    if (digits == 0) return bad("no digits after '.'");
  }
  int64_t offset_s = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh, om;
    if (!Digits(s, pos + 1, 2, &oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !Digits(s, pos + 4, 2, &om) || oh > 23 || om > 59) {
      return bad("malformed UTC offset");
    }
    offset_s = (oh * 3600 + om * 60) * (s[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return bad("no UTC offset: end with 'Z' or '+HH:MM'");
  }
  if (pos != s.size()) return bad("trailing characters");
  int64_t secs =
      DaysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day)) * 86400 +
      hour * 3600 + minute * 60 + second - offset_s;
  // |secs| < 2^38 for 4-digit years, so secs * 1e9 can overflow only near the int64 limits.
  constexpr int64_t kMaxSecs = std::numeric_limits<int64_t>::max() / 1'000'000'000 - 1;
  if (secs > kMaxSecs || secs < -kMaxSecs) return bad("outside the int64 nanosecond range");
  return secs * 1'000'000'000 + frac_ns;
}

// ---- Base64 ----

namespace {
constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
}

std::string Base64Encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  auto b = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(bytes[k])); };
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t v = b(i) << 16 | b(i + 1) << 8 | b(i + 2);
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += kB64[v & 63];
  }
  if (bytes.size() - i == 1) {
    uint32_t v = b(i) << 16;
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += "==";
  } else if (bytes.size() - i == 2) {
    uint32_t v = b(i) << 16 | b(i + 1) << 8;
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

Result<std::string> Base64Decode(std::string_view text) {
  auto value = [](char c) -> int {
    const char* p = std::strchr(kB64, c);
    return c != '\0' && p != nullptr ? static_cast<int>(p - kB64) : -1;
  };
  if (text.size() % 4 != 0) {
    return InvalidArgument("base64: length " + std::to_string(text.size()) +
                           " is not a multiple of 4");
  }
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    bool last = i + 4 == text.size();
    int pad = 0;
    if (last && text[i + 3] == '=') pad = text[i + 2] == '=' ? 2 : 1;
    uint32_t v = 0;
    for (size_t k = 0; k < 4; ++k) {
      int d = k >= 4 - static_cast<size_t>(pad) ? 0 : value(text[i + k]);
      if (d < 0) {
        return InvalidArgument("base64: invalid character at offset " + std::to_string(i + k));
      }
      v = v << 6 | static_cast<uint32_t>(d);
    }
    out += static_cast<char>(v >> 16);
    if (pad < 2) out += static_cast<char>((v >> 8) & 255);
    if (pad < 1) out += static_cast<char>(v & 255);
  }
  return out;
}

// ---- Records ----

namespace {

template <typename T>
T Load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

void AppendArrayElement(DType dtype, const char* p, std::string* out) {
  switch (dtype) {
    case DType::kU8:
      AppendJsonUint(Load<uint8_t>(p), out);
      break;
    case DType::kI8:
      AppendJsonInt(Load<int8_t>(p), out);
      break;
    case DType::kU16:
      AppendJsonUint(Load<uint16_t>(p), out);
      break;
    case DType::kI16:
      AppendJsonInt(Load<int16_t>(p), out);
      break;
    case DType::kU32:
      AppendJsonUint(Load<uint32_t>(p), out);
      break;
    case DType::kI32:
      AppendJsonInt(Load<int32_t>(p), out);
      break;
    case DType::kU64:
      AppendJsonUint(Load<uint64_t>(p), out);
      break;
    case DType::kI64:
      AppendJsonInt(Load<int64_t>(p), out);
      break;
    case DType::kF32:
      AppendJsonFloat(Load<float>(p), out);
      break;
    case DType::kF64:
      AppendJsonDouble(Load<double>(p), out);
      break;
  }
}

// Nested lists following `shape` from dimension `dim` on; advances *p.
void AppendArrayNested(const FieldSpec& f, size_t dim, const char** p, std::string* out) {
  *out += '[';
  for (uint32_t i = 0; i < f.shape[dim]; ++i) {
    if (i != 0) *out += ", ";
    if (dim + 1 < f.shape.size()) {
      AppendArrayNested(f, dim + 1, p, out);
    } else {
      AppendArrayElement(f.dtype, *p, out);
      *p += DTypeSize(f.dtype);
    }
  }
  *out += ']';
}

}  // namespace

void AppendValueJson(const Column& col, uint64_t row, const RenderOptions& options,
                     std::string* out) {
  if (!col.IsValid(row)) {
    *out += "null";
    return;
  }
  const FieldSpec& f = col.field();
  switch (f.type) {
    case FieldType::kInt64:
    case FieldType::kTimestamp:
      AppendJsonInt(col.Int64At(row), out);
      break;
    case FieldType::kFloat64:
      AppendJsonDouble(col.Float64At(row), out);
      break;
    case FieldType::kBool:
      *out += col.BoolAt(row) ? "true" : "false";
      break;
    case FieldType::kString:
    case FieldType::kCategorical:
      AppendJsonString(col.BytesAt(row), out);
      break;
    case FieldType::kBlob: {
      std::string_view bytes = col.BytesAt(row);
      *out += "{\"size\": " + std::to_string(bytes.size()) + ", \"mime\": ";
      AppendJsonString(f.mime, out);
      if (options.blobs_base64) {
        *out += ", \"base64\": \"" + Base64Encode(bytes) + "\"";
      }
      *out += '}';
      break;
    }
    case FieldType::kEmbedding: {
      std::span<const float> v = col.FloatsAt(row);
      *out += '[';
      for (size_t i = 0; i < v.size(); ++i) {
        if (i != 0) *out += ", ";
        AppendJsonFloat(v[i], out);
      }
      *out += ']';
      break;
    }
    case FieldType::kArray: {
      std::string_view raw = col.FixedAt(row);
      const char* p = raw.data();
      AppendArrayNested(f, 0, &p, out);
      break;
    }
  }
}

namespace {

// The text of one cell in a table.
std::string CellText(const Column& col, uint64_t row) {
  if (!col.IsValid(row)) return "null";
  const FieldSpec& f = col.field();
  switch (f.type) {
    case FieldType::kTimestamp:
      return IsoTime(col.Int64At(row));
    case FieldType::kString:
    case FieldType::kCategorical: {
      std::string out;
      AppendJsonString(col.BytesAt(row), &out);
      return out.substr(1, out.size() - 2);  // escaped, without the quotes
    }
    case FieldType::kBlob: {
      // Appended piecewise: GCC 12 warns (-Wrestrict, a false positive) on "<" + string&&.
      std::string out = "<";
      out += std::to_string(col.BytesAt(row).size());
      out += " bytes " + f.mime + ">";
      return out;
    }
    case FieldType::kFloat64: {
      std::string out;
      AppendJsonDouble(col.Float64At(row), &out);
      if (out.front() == '"') out = out.substr(1, out.size() - 2);  // nan, inf, -inf
      return out;
    }
    default: {
      std::string out;
      AppendValueJson(col, row, RenderOptions{}, &out);
      return out;
    }
  }
}

}  // namespace

std::string RecordJson(const Batch& batch, uint64_t row, const RenderOptions& options) {
  std::string out = "{\"anchor\": " + std::to_string(batch.anchors[row]);
  for (const Column& col : batch.columns) {
    out += ", ";
    AppendJsonString(col.field().name, &out);
    out += ": ";
    AppendValueJson(col, row, options, &out);
  }
  out += '}';
  return out;
}

void TablePrinter::Print(const Batch& batch) {
  constexpr size_t kMaxWidth = 40;
  auto fit = [](std::string s, size_t width) {
    if (s.size() > width) s = s.substr(0, width - 3) + "...";
    s.resize(width, ' ');
    return s;
  };
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t i = 0; i < cells.size(); ++i) {
      if (i != 0) out += "  ";
      out += i + 1 == cells.size() && cells[i].size() <= widths_[i] ? cells[i]
                                                                    : fit(cells[i], widths_[i]);
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    inv_.PrintLine(out);
  };
  std::vector<std::vector<std::string>> rows;
  rows.reserve(batch.num_rows());
  for (uint64_t r = 0; r < batch.num_rows(); ++r) {
    std::vector<std::string> cells{std::to_string(batch.anchors[r])};
    for (const Column& col : batch.columns) cells.push_back(CellText(col, r));
    rows.push_back(std::move(cells));
  }
  if (widths_.empty()) {
    std::vector<std::string> header{"anchor"};
    for (const Column& col : batch.columns) header.push_back(col.field().name);
    widths_.resize(header.size());
    for (size_t i = 0; i < header.size(); ++i) widths_[i] = header[i].size();
    for (const auto& cells : rows) {
      for (size_t i = 0; i < cells.size(); ++i) {
        widths_[i] = std::max(widths_[i], std::min(cells[i].size(), kMaxWidth));
      }
    }
    line(header);
    std::vector<std::string> rule;
    for (size_t w : widths_) rule.emplace_back(w, '-');
    line(rule);
  }
  for (const auto& cells : rows) line(cells);
}

void PrintRecords(Invocation& inv, const Batch& batch, const RenderOptions& options,
                  TablePrinter* table) {
  if (table != nullptr) {
    table->Print(batch);
    return;
  }
  for (uint64_t r = 0; r < batch.num_rows(); ++r) inv.PrintLine(RecordJson(batch, r, options));
}

// ---- Progress ----

Progress::Progress(bool forced)
    : enabled_(forced || ::isatty(STDERR_FILENO) == 1),
      tty_(!forced && ::isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()),
      last_(start_) {}

Progress::~Progress() { Done(); }

double Progress::ElapsedSeconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::Report(const std::string& text, bool force) {
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  // A terminal line is rewritten in place, so it can change often; full lines (--progress
  // into a file or pipe) come at most once a second.
  auto interval = std::chrono::milliseconds(tty_ ? 250 : 1000);
  if (!force && shown_ && now - last_ < interval) return;
  last_ = now;
  shown_ = true;
  std::string out = tty_ ? "\r" + text + "\x1b[K" : text + "\n";
  std::fwrite(out.data(), 1, out.size(), stderr);
  std::fflush(stderr);
}

void Progress::Done() {
  if (enabled_ && tty_ && shown_) {
    std::fputs("\r\x1b[K", stderr);
    std::fflush(stderr);
  }
  shown_ = false;
}

}  // namespace dreamdb::cli
