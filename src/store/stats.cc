// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Implements spec/05-backend.md §11.
#include "src/store/stats.h"

#include <cstdio>
#include <limits>

#include "src/base/encoding.h"

namespace dreamdb {

uint64_t StoreStats::TotalRequests() const {
  uint64_t n = 0;
  for (const auto& by_class : requests) {
    for (uint64_t c : by_class) n += c;
  }
  return n;
}

const char* StoreStats::VerbName(int verb) {
  static constexpr const char* kNames[] = {"GET", "HEAD", "PUT", "POST", "DELETE", "LIST"};
  return verb >= 0 && verb < kVerbCount ? kNames[verb] : "?";
}

const char* StoreStats::ClassName(int klass) {
  static constexpr const char* kNames[] = {"2xx", "3xx", "4xx", "5xx", "none"};
  return klass >= 0 && klass < kClassCount ? kNames[klass] : "?";
}

void RequestCounters::Record(int verb, int klass, uint64_t bytes_in, uint64_t bytes_out,
                             std::chrono::nanoseconds elapsed) {
  requests_[verb][klass].fetch_add(1, std::memory_order_relaxed);
  bytes_in_.fetch_add(bytes_in, std::memory_order_relaxed);
  bytes_out_.fetch_add(bytes_out, std::memory_order_relaxed);
  in_flight_ns_.fetch_add(static_cast<uint64_t>(std::max<int64_t>(0, elapsed.count())),
                          std::memory_order_relaxed);
}

void RequestCounters::AddCacheHit(uint64_t bytes) {
  cache_hits_.fetch_add(1, std::memory_order_relaxed);
  cache_bytes_read_.fetch_add(bytes, std::memory_order_relaxed);
}

StoreStats RequestCounters::Snapshot() const {
  StoreStats s;
  for (int v = 0; v < StoreStats::kVerbCount; ++v) {
    for (int c = 0; c < StoreStats::kClassCount; ++c) {
      s.requests[v][c] = requests_[v][c].load(std::memory_order_relaxed);
    }
  }
  s.retries = retries_.load(std::memory_order_relaxed);
  s.bytes_in = bytes_in_.load(std::memory_order_relaxed);
  s.bytes_out = bytes_out_.load(std::memory_order_relaxed);
  s.in_flight_ns = in_flight_ns_.load(std::memory_order_relaxed);
  s.cache_hits = cache_hits_.load(std::memory_order_relaxed);
  s.cache_misses = cache_misses_.load(std::memory_order_relaxed);
  s.cache_bytes_read = cache_bytes_read_.load(std::memory_order_relaxed);
  s.cache_bytes_written = cache_bytes_written_.load(std::memory_order_relaxed);
  s.cache_corrupt = cache_corrupt_.load(std::memory_order_relaxed);
  s.cache_evictions = cache_evictions_.load(std::memory_order_relaxed);
  return s;
}

int ClassOfHttpStatus(long status) {  // NOLINT(google-runtime-int)
  if (status >= 200 && status < 300) return StoreStats::k2xx;
  if (status >= 300 && status < 400) return StoreStats::k3xx;
  if (status >= 400 && status < 500) return StoreStats::k4xx;
  if (status >= 500 && status < 600) return StoreStats::k5xx;
  return StoreStats::kNoAnswer;
}

int ClassOfStatus(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk:
      return StoreStats::k2xx;
    case StatusCode::kInvalidArgument:
    case StatusCode::kNotFound:
    case StatusCode::kAlreadyExists:
    case StatusCode::kConflict:
    case StatusCode::kPermissionDenied:
      return StoreStats::k4xx;
    case StatusCode::kUnavailable:
      return StoreStats::kNoAnswer;
    default:
      return StoreStats::k5xx;
  }
}

namespace {

// The scalar fields in output order (JSON keys and Prometheus names share them).
struct Field {
  const char* json;
  const char* metric;
  const char* help;
  uint64_t value;
};

std::vector<Field> Fields(const StoreStats& s) {
  return {
      {"retries", "dreamdb_storage_retries_total", "Requests sent again after a failure.",
       s.retries},
      {"bytes_in", "dreamdb_storage_bytes_in_total", "Body bytes received from storage.",
       s.bytes_in},
      {"bytes_out", "dreamdb_storage_bytes_out_total", "Body bytes sent to storage.", s.bytes_out},
      {"cache_hits", "dreamdb_cache_hits_total", "Object reads answered by the local cache.",
       s.cache_hits},
      {"cache_misses", "dreamdb_cache_misses_total", "Object reads the local cache sent on.",
       s.cache_misses},
      {"cache_bytes_read", "dreamdb_cache_read_bytes_total", "Bytes read from the local cache.",
       s.cache_bytes_read},
      {"cache_bytes_written", "dreamdb_cache_written_bytes_total",
       "Bytes added to the local cache.", s.cache_bytes_written},
      {"cache_corrupt", "dreamdb_cache_corrupt_total",
       "Cache files that failed verification and were fetched again.", s.cache_corrupt},
      {"cache_evictions", "dreamdb_cache_evictions_total", "Cache files evicted.",
       s.cache_evictions},
  };
}

}  // namespace

std::string StoreStatsJson(const StoreStats& s) {
  std::string out = "{\"requests\":" + std::to_string(s.TotalRequests()) + ",\"by_verb\":{";
  bool first_verb = true;
  for (int v = 0; v < StoreStats::kVerbCount; ++v) {
    std::string inner;
    for (int c = 0; c < StoreStats::kClassCount; ++c) {
      if (s.requests[v][c] == 0) continue;
      if (!inner.empty()) inner += ',';
      inner +=
          std::string("\"") + StoreStats::ClassName(c) + "\":" + std::to_string(s.requests[v][c]);
    }
    if (inner.empty()) continue;
    if (!first_verb) out += ',';
    first_verb = false;
    out += std::string("\"") + StoreStats::VerbName(v) + "\":{" + inner + "}";
  }
  out += "}";
  for (const Field& f : Fields(s)) {
    out += std::string(",\"") + f.json + "\":" + std::to_string(f.value);
  }
  out += ",\"in_flight_ms\":" + std::to_string(s.in_flight_ns / 1000000) + "}";
  return out;
}

std::string StoreStatsPrometheus(const StoreStats& s) {
  std::string out =
      "# HELP dreamdb_storage_requests_total Requests made to storage, by verb and status "
      "class.\n# TYPE dreamdb_storage_requests_total counter\n";
  for (int v = 0; v < StoreStats::kVerbCount; ++v) {
    for (int c = 0; c < StoreStats::kClassCount; ++c) {
      out += std::string("dreamdb_storage_requests_total{verb=\"") + StoreStats::VerbName(v) +
             "\",class=\"" + StoreStats::ClassName(c) + "\"} " + std::to_string(s.requests[v][c]) +
             "\n";
    }
  }
  for (const Field& f : Fields(s)) {
    out += std::string("# HELP ") + f.metric + " " + f.help + "\n# TYPE " + f.metric +
           " counter\n" + f.metric + " " + std::to_string(f.value) + "\n";
  }
  char seconds[64];
  std::snprintf(seconds, sizeof(seconds), "%.6f", static_cast<double>(s.in_flight_ns) / 1e9);
  out +=
      "# HELP dreamdb_storage_request_seconds_total Summed wall time of storage requests.\n"
      "# TYPE dreamdb_storage_request_seconds_total counter\n"
      "dreamdb_storage_request_seconds_total " +
      std::string(seconds) + "\n";
  return out;
}

std::string StoreStatsText(const StoreStats& s) {
  std::string by;
  for (int v = 0; v < StoreStats::kVerbCount; ++v) {
    for (int c = 0; c < StoreStats::kClassCount; ++c) {
      if (s.requests[v][c] == 0) continue;
      if (!by.empty()) by += ", ";
      by += std::string(StoreStats::VerbName(v)) + " " + StoreStats::ClassName(c) + " " +
            std::to_string(s.requests[v][c]);
    }
  }
  std::string out =
      "storage requests: " + std::to_string(s.TotalRequests()) +
      (by.empty() ? "" : " (" + by + ")") + "\n" + "storage retries: " + std::to_string(s.retries) +
      ", bytes in: " + std::to_string(s.bytes_in) + ", bytes out: " + std::to_string(s.bytes_out) +
      ", time in flight: " + std::to_string(s.in_flight_ns / 1000000) + " ms\n";
  if (s.cache_hits + s.cache_misses + s.cache_bytes_written > 0) {
    out += "cache: " + std::to_string(s.cache_hits) + " hits (" +
           std::to_string(s.cache_bytes_read) + " bytes), " + std::to_string(s.cache_misses) +
           " misses, " + std::to_string(s.cache_bytes_written) + " bytes written, " +
           std::to_string(s.cache_corrupt) + " corrupt, " + std::to_string(s.cache_evictions) +
           " evicted\n";
  }
  return out;
}

Result<uint64_t> ParseByteSize(std::string_view what, std::string_view text) {
  auto bad = [&] {
    return InvalidArgument(std::string(what) + " " + Quote(text, 40) +
                           " is not a byte count (digits with an optional K, M, G or T suffix, "
                           "e.g. 512M)");
  };
  size_t i = 0;
  uint64_t n = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    uint64_t d = static_cast<uint64_t>(text[i] - '0');
    if (n > (std::numeric_limits<uint64_t>::max() - d) / 10) return bad();
    n = n * 10 + d;
    ++i;
  }
  if (i == 0) return bad();
  std::string_view suffix = text.substr(i);
  int shift = 0;
  if (!suffix.empty()) {
    switch (suffix.front() | 0x20) {
      case 'k':
        shift = 10;
        break;
      case 'm':
        shift = 20;
        break;
      case 'g':
        shift = 30;
        break;
      case 't':
        shift = 40;
        break;
      case 'b':
        shift = -1;
        break;
      default:
        return bad();
    }
    if (shift == -1) {
      if (suffix.size() != 1) return bad();
      shift = 0;
    } else {
      std::string_view rest = suffix.substr(1);
      if (!(rest.empty() || rest == "B" || rest == "b" || rest == "iB" || rest == "ib")) {
        return bad();
      }
    }
  }
  if (shift > 0 && n > (std::numeric_limits<uint64_t>::max() >> shift)) return bad();
  return n << shift;
}

}  // namespace dreamdb
