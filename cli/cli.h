// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// The core of the `dreamdb` command-line tool: a registry of commands, a small argument
// parser driven by each command's declaration, output helpers for text and --json, and
// the mapping from Status codes to exit codes (spec/07-errors.md). Each command lives in
// one file under cli/commands/ and registers itself with a file-scope `Registrar`; the
// core never names a command.
//
// Output contract (cli/README.md): on success a command writes its result to stdout (text,
// or with --json exactly one JSON object per line: one line for single results, one line
// per entry for listings); on failure stdout holds nothing more, stderr gets the error and
// the exit code says what kind of error it was.
//
// Thread safety: the CLI is single-threaded; none of these types is thread-safe.

#ifndef DREAMDB_CLI_CLI_H_
#define DREAMDB_CLI_CLI_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dreamdb/object_id.h"
#include "dreamdb/status.h"
#include "dreamdb/store.h"

namespace dreamdb::cli {

// ---- Exit codes (spec/07-errors.md) ----

inline constexpr int kExitOk = 0;
// Bad flags, missing or extra arguments: the command line itself is wrong.
inline constexpr int kExitUsage = 2;

// The exit code for a non-OK status code: invalid_argument 3, not_found 4,
// already_exists 5, conflict 6, corrupt 7, unavailable 8, io_error 9, unsupported 10,
// permission_denied 11, internal 1.
int ExitCodeFor(StatusCode code);

// ---- JSON output ----

// Builds one flat JSON object, keys in insertion order. Strings are escaped; bytes that
// are not valid UTF-8 become U+FFFD so the output is always valid JSON.
class JsonObject {
 public:
  JsonObject& Add(std::string_view key, std::string_view value);
  JsonObject& Add(std::string_view key, const char* value) {
    return Add(key, std::string_view(value));
  }
  JsonObject& Add(std::string_view key, uint64_t value);
  JsonObject& Add(std::string_view key, int value);
  JsonObject& Add(std::string_view key, bool value);
  // `json` must already be a valid JSON value (e.g. another JsonObject's Finish()).
  JsonObject& AddRaw(std::string_view key, std::string_view json);
  // The object as one line of JSON without a trailing newline.
  std::string Finish() const { return body_ + "}"; }

 private:
  void Key(std::string_view key);
  std::string body_ = "{";
};

// Appends `s` as a quoted JSON string to `out`. Control characters (C0, DEL and C1,
// U+0080..U+009F) become \uXXXX escapes and bytes that are not valid UTF-8 U+FFFD, so
// the output is valid JSON that a terminal shows as plain text.
void AppendJsonString(std::string_view s, std::string* out);

// ---- Terminal safety ----

// `s` made safe to show on a terminal (cli/README.md "Output safety"): C0 controls, DEL
// and C1 controls (U+0080..U+009F) become \n, \r or \u00XX, bytes that are not valid
// UTF-8 become \xNN, TAB and every other character (printable UTF-8 included) are kept.
// ESC becomes \u001b, so no escape sequence (CSI, OSC, ...) reaches the terminal.
// Valid JSON stays the same JSON (its strings never hold raw controls). The one escaping
// function of the CLI: Invocation::PrintLine and the error printer apply it to every
// line, so stored data (commit messages, metadata, names, field values) is shown, never
// obeyed.
std::string Printable(std::string_view s);

// ---- Commands ----

// A flag of one command, e.g. {"--expect", "", "OLD", "..."}.
struct Flag {
  std::string_view name = {};        // "--expect"
  std::string_view short_name = {};  // "-o", or empty
  std::string_view value_name = {};  // "OLD"; empty for a boolean switch
  std::string_view help = {};
  bool required = false;
};

// A positional argument. Only the last one may be `optional` or `repeated`.
struct Positional {
  std::string_view name = {};  // "NAME"
  std::string_view help = {};
  bool optional = false;
  bool repeated = false;  // one or more (zero or more if also optional)
};

class Invocation;

struct Command {
  // Space-separated words: "object put". The first word may be shared by a group.
  std::string_view path = {};
  std::string_view summary = {};      // one line for the command list
  std::string_view description = {};  // paragraph(s) for --help; may be empty
  std::vector<Positional> positionals = {};
  std::vector<Flag> flags = {};
  // Runs the command. Usage errors found while running go through Invocation::Usage().
  Status (*run)(Invocation& inv) = nullptr;
  // Whether Invocation::store() may create a missing store. Only commands that write and
  // can succeed on an empty store set it (init, create, object put); every other command
  // reports a missing store as not_found instead of creating an empty one at a mistyped
  // path.
  bool creates_store = false;
};

// All commands, keyed by path. Commands register themselves before main() runs.
class Registry {
 public:
  static Registry& Get();
  // REQUIRES: no command with the same path is registered.
  void Add(Command command);
  const Command* Find(std::string_view path) const;
  // True when some command's path starts with "`group` ".
  bool IsGroup(std::string_view group) const;
  const std::map<std::string, Command, std::less<>>& commands() const { return commands_; }

 private:
  std::map<std::string, Command, std::less<>> commands_;
};

// Put one at file scope in each command file: `const Registrar kRegistrar({...});`
struct Registrar {
  explicit Registrar(Command command) { Registry::Get().Add(std::move(command)); }
};

// Options that apply to every command.
struct GlobalOptions {
  std::string store_uri;  // --store, else $DREAMDB_STORE, else "./.dreamdb"
  bool json = false;      // --json
  bool stats = false;     // --stats: storage requests on stderr after the command
  // --cache DIR / --cache-size BYTES, else $DREAMDB_CACHE / $DREAMDB_CACHE_SIZE: the local
  // object cache for remote (s3://) stores; empty: none.
  std::string cache_dir;
  uint64_t cache_size_bytes = uint64_t{1} << 30;
};

// One run of one command: its parsed arguments, the store (opened on first use) and the
// output helpers.
class Invocation {
 public:
  Invocation(const Command& command, GlobalOptions global,
             std::map<std::string, std::vector<std::string>, std::less<>> positionals,
             std::map<std::string, std::string, std::less<>> flags);

  const Command& command() const { return command_; }
  bool json() const { return global_.json; }
  const GlobalOptions& global() const { return global_; }

  // The value of a (non-repeated) positional; empty if an optional one was not given.
  const std::string& Arg(std::string_view name) const;
  bool HasArg(std::string_view name) const;
  // All values of a repeated positional.
  const std::vector<std::string>& Args(std::string_view name) const;
  // The value of a flag by long name ("--expect"); nullopt if absent. Boolean switches
  // have the value "".
  std::optional<std::string_view> FlagValue(std::string_view name) const;
  bool HasFlag(std::string_view name) const { return FlagValue(name).has_value(); }

  // Opens the store named by --store / $DREAMDB_STORE / ./.dreamdb on first call,
  // creating it only when the command declares `creates_store` (else a missing store is
  // kNotFound naming it). Messages show the URI redacted (RedactStoreUri).
  Result<Store*> store();

  // Opens another store (clone's source and destination) with the global cache options;
  // --stats reports it under `role`. The Invocation keeps it alive.
  Result<std::shared_ptr<Store>> OpenStore(std::string_view role, std::string_view uri,
                                           StoreOpenMode mode);
  // The stores this run opened, by role ("store" for store()), for --stats.
  const std::vector<std::pair<std::string, std::shared_ptr<Store>>>& opened_stores() const {
    return opened_;
  }

  // Marks this run as a usage error (exit 2) and returns a status carrying `message`.
  Status Usage(std::string message);
  bool usage_error() const { return usage_error_; }

  // Output. Each Print* writes one line to stdout, through Printable().
  void PrintLine(std::string_view line);
  void PrintJson(const JsonObject& object);
  // Raw bytes to stdout (object get).
  Status WriteStdout(ByteView bytes);

 private:
  const Command& command_;
  GlobalOptions global_;
  std::map<std::string, std::vector<std::string>, std::less<>> positionals_;
  std::map<std::string, std::string, std::less<>> flags_;
  std::shared_ptr<Store> store_;
  std::vector<std::pair<std::string, std::shared_ptr<Store>>> opened_;
  bool usage_error_ = false;
};

// ---- Helpers shared by commands ----

// Parses an object id given on the command line; on error the message starts with
// "`what`: " unless `what` is empty.
Result<ObjectId> ParseIdArg(std::string_view what, std::string_view text);

// A Status for a failed system call on a local (non-store) file: ENOENT/ENOTDIR ->
// not_found, EISDIR -> invalid_argument, everything else -> io_error.
Status ErrnoStatus(int err, std::string_view what, std::string_view path);

// Writes `bytes` to a local file (created or truncated); "-" writes stdout.
Status WriteOutput(const std::string& path, ByteView bytes);

// ---- Entry point ----

// Parses argv, runs the command and returns the process exit code. `env_store` is the
// value of $DREAMDB_STORE (nullptr if unset).
int Main(int argc, char** argv, const char* env_store);

// The version printed by `dreamdb --version`.
std::string_view Version();

// Help for a command or group ("object put", "object"), or for the whole tool ("").
// kNotFound for an unknown path.
Result<std::string> HelpText(std::string_view path);

}  // namespace dreamdb::cli

#endif  // DREAMDB_CLI_CLI_H_
