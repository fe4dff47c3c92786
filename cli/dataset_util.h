// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Helpers shared by the dataset commands of `dreamdb` (create, ingest, cat, log, ...):
// opening datasets from the command line, parsing command-line values, rendering records
// as JSON Lines or a text table, times in ISO 8601, and progress lines on stderr.
//
// Rendering contract (cli/README.md "Dataset commands"): a record is one JSON object,
// {"anchor": N, "<field>": value, ...} with fields in the requested order; null is null;
// int64 and timestamp are integers (timestamps in ns since the epoch); float64 is a
// number, or the string "nan", "inf" or "-inf"; bool true/false; string and categorical
// strings; blob {"size": n, "mime": ...} (+ "base64" with --blobs-base64); embedding a
// list of numbers; array nested lists following the field's shape.
//
// Thread safety: the CLI is single-threaded; none of this is thread-safe.

#ifndef DREAMDB_CLI_DATASET_UTIL_H_
#define DREAMDB_CLI_DATASET_UTIL_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cli/cli.h"
#include "dreamdb/column.h"
#include "dreamdb/compare.h"
#include "dreamdb/dataset.h"
#include "dreamdb/schema.h"

namespace dreamdb::cli {

// ---- Flags shared by several dataset commands ----

inline constexpr Flag kAtFlag{
    .name = "--at",
    .value_name = "REF",
    .help =
        "read this version: a snapshot label, a branch, 'branch:NAME' or a manifest id "
        "(default: branch main)"};
inline constexpr Flag kBranchFlag{
    .name = "--branch", .value_name = "B", .help = "the branch to write (default: main)"};
inline constexpr Flag kMessageFlag{
    .name = "--message", .short_name = "-m", .value_name = "M", .help = "the commit message"};
inline constexpr Flag kFieldsFlag{
    .name = "--fields",
    .value_name = "A,B",
    .help = "only these fields, in this order (default: every field of the schema)"};
inline constexpr Flag kBlobsBase64Flag{
    .name = "--blobs-base64", .help = "include blob bytes as \"base64\" (default: size and mime)"};
inline constexpr Flag kProgressFlag{
    .name = "--progress", .help = "report progress on stderr even when it is not a terminal"};

// ---- Opening datasets ----

// The invocation's store as a shared_ptr (the Dataset API takes one). The Invocation
// keeps ownership and outlives every handle a command opens.
Result<std::shared_ptr<Store>> SharedStore(Invocation& inv);

// Opens `name` read-only at --at when the command was given one, else branch main.
Result<std::unique_ptr<Dataset>> OpenForRead(Invocation& inv, const std::string& name);

// Opens branch --branch (default main) of `name` for writing.
Result<std::unique_ptr<Dataset>> OpenForWrite(Invocation& inv, const std::string& name);

// The commit options of a write: --message, if the command has it.
CommitOptions CommitOptionsFrom(const Invocation& inv, std::string default_message = {});

// The branch a write goes to: --branch, else "main".
std::string BranchFlag(const Invocation& inv);

// Checks a dataset name the way spec/13-manifests.md §2.1 does (the SDK checks it inside
// Dataset::Open; `refs` lists refs itself and needs the same messages).
Status ValidateDatasetNameArg(std::string_view name);

// ---- Command-line values (kInvalidArgument naming `what` when malformed) ----

Result<uint64_t> ParseU64(std::string_view what, std::string_view text);
// "a,b,c" -> {"a", "b", "c"}; empty entries are refused.
Result<std::vector<std::string>> ParseFieldList(std::string_view what, std::string_view text);
// --fields, if given.
Result<std::vector<std::string>> FieldsFlag(const Invocation& inv);
// Anchors given as arguments.
Result<std::vector<uint64_t>> ParseAnchors(const std::vector<std::string>& args);

// ---- JSON ----

void AppendJsonInt(int64_t v, std::string* out);
void AppendJsonUint(uint64_t v, std::string* out);
// Shortest text that reads back to the same value; non-finite values become the strings
// "nan", "inf", "-inf" (JSON has no literal for them).
void AppendJsonDouble(double v, std::string* out);

// One field's statistics of a compare-refs summary as a JSON object (the "stats" entries
// of `dreamdb compare-refs --json` and of the HTTP API's compare endpoint, spec/30).
std::string CompareFieldStatsJson(const CompareSummary& s, const CompareFieldStats& st);
void AppendJsonFloat(float v, std::string* out);
std::string JsonStringList(const std::vector<std::string>& items);
// A flat map of strings as a JSON object (keys in the map's order).
std::string JsonStringMap(const std::vector<std::pair<std::string, std::string>>& items);

// ---- Time ----

// ns since the Unix epoch -> "2026-11-21T12:51:48.123456789Z" (UTC, nanoseconds).
std::string IsoTime(int64_t ns);
// RFC 3339 ("2024-05-01T12:00:00Z", "...T12:00:00.5+02:00"; 'T', 't' or ' ' between date
// and time) -> ns since the epoch. kInvalidArgument when malformed or out of int64 range.
Result<int64_t> ParseRfc3339(std::string_view text);

// ---- Base64 (RFC 4648, padded) ----

std::string Base64Encode(std::string_view bytes);
Result<std::string> Base64Decode(std::string_view text);

// ---- Records ----

struct RenderOptions {
  bool blobs_base64 = false;
};

// The JSON value of one cell (row `row` of `col`), as described at the top.
void AppendValueJson(const Column& col, uint64_t row, const RenderOptions& options,
                     std::string* out);

// Row `row` of `batch` as one JSON object (no newline).
std::string RecordJson(const Batch& batch, uint64_t row, const RenderOptions& options);

// Prints records as an aligned text table: the header and the column widths come from the
// first batch (widths capped), later batches reuse them; long cells are cut with "...".
class TablePrinter {
 public:
  explicit TablePrinter(Invocation& inv) : inv_(inv) {}
  void Print(const Batch& batch);

 private:
  Invocation& inv_;
  std::vector<size_t> widths_;
};

// Writes one batch of records in the --format the command was given ("jsonl" or
// "table"; `table` null = JSON Lines).
void PrintRecords(Invocation& inv, const Batch& batch, const RenderOptions& options,
                  TablePrinter* table);

// ---- Progress on stderr ----

// Reports progress on stderr when stderr is a terminal (one line rewritten in place and
// erased at the end) or when `forced` (--progress: one full line per report).
class Progress {
 public:
  explicit Progress(bool forced);
  ~Progress();
  bool enabled() const { return enabled_; }
  // Shows `text` (rate-limited: 4 updates a second on a terminal, else 1, unless `force`).
  void Report(const std::string& text, bool force = false);
  // Erases the in-place line (terminal mode).
  void Done();
  double ElapsedSeconds() const;

 private:
  bool enabled_ = false;
  bool tty_ = false;
  bool shown_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_;
};

}  // namespace dreamdb::cli

#endif  // DREAMDB_CLI_DATASET_UTIL_H_
