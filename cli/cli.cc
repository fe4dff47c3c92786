// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
#include "cli/cli.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "dreamdb/quote.h"
#include "dreamdb/store_stats.h"

#ifndef DREAMDB_VERSION
#define DREAMDB_VERSION "unknown"
#endif

namespace dreamdb::cli {
namespace {

constexpr std::string_view kProgram = "dreamdb";
constexpr std::string_view kDefaultStore = "./.dreamdb";

// ---- stdout / stderr ----

void WriteAll(FILE* f, std::string_view s) { std::fwrite(s.data(), 1, s.size(), f); }

void PrintError(bool json, std::string_view code, int exit_code, std::string_view message) {
  std::fflush(stdout);  // keep whatever a listing already printed ahead of the error
  if (json) {
    JsonObject inner;
    inner.Add("code", code).Add("exit_code", exit_code).Add("message", message);
    JsonObject outer;
    outer.AddRaw("error", inner.Finish());
    WriteAll(stderr, outer.Finish() + "\n");
  } else {
    std::string line = std::string(kProgram) + ": error: ";
    line += Printable(message.empty() ? code : message);
    line += "\n";
    WriteAll(stderr, line);
  }
}

// ---- help text ----

bool IsFlagToken(std::string_view arg) { return arg.size() > 1 && arg[0] == '-'; }

std::string Synopsis(const Command& c) {
  std::string s = std::string(kProgram) + " " + std::string(c.path);
  for (const Positional& p : c.positionals) {
    std::string name(p.name);
    if (p.repeated) name += "...";
    s += p.optional ? " [" + name + "]" : " " + name;
  }
  for (const Flag& f : c.flags) {
    std::string flag(f.short_name.empty() ? f.name : f.short_name);
    if (!f.value_name.empty()) flag += " " + std::string(f.value_name);
    s += f.required ? " " + flag : " [" + flag + "]";
  }
  return s;
}

void AppendRow(std::string* out, std::string_view left, std::string_view right) {
  constexpr size_t kColumn = 24;  // matches kGlobalFlagsHelp
  std::string row = "  " + std::string(left);
  if (row.size() < kColumn) {
    row.resize(kColumn, ' ');
  } else {
    row += "\n" + std::string(kColumn, ' ');
  }
  *out += row + std::string(right) + "\n";
}

constexpr std::string_view kGlobalFlagsHelp =
    "global flags:\n"
    "  --store URI           the store: file:///abs/path, a local path, memory://, s3://...\n"
    "                        (default: $DREAMDB_STORE, else ./.dreamdb)\n"
    "  --json                print results as JSON (one object per line) and errors as\n"
    "                        a JSON object on stderr\n"
    "  --stats               after the command, print the storage requests it made\n"
    "                        (by verb and status, retries, bytes, time) to stderr\n"
    "  --cache DIR           cache immutable objects of a remote (s3://) store in DIR,\n"
    "                        shared by processes (default: $DREAMDB_CACHE)\n"
    "  --cache-size BYTES    bound of the cache, e.g. 2G (default: $DREAMDB_CACHE_SIZE,\n"
    "                        else 1G)\n"
    "  -h, --help            show help\n";

constexpr std::string_view kExitCodesHelp =
    "exit codes: 0 ok, 1 internal, 2 usage, 3 invalid_argument, 4 not_found,\n"
    "  5 already_exists, 6 conflict, 7 corrupt, 8 unavailable, 9 io_error,\n"
    "  10 unsupported, 11 permission_denied\n";

std::string CommandList(std::string_view group) {
  std::string out;
  for (const auto& [path, command] : Registry::Get().commands()) {
    if (!group.empty() &&
        !(path.size() > group.size() && path.starts_with(group) && path[group.size()] == ' ')) {
      continue;
    }
    AppendRow(&out, path, command.summary);
  }
  return out;
}

std::string CommandHelp(const Command& c) {
  std::string out = "usage: " + Synopsis(c) + "\n\n" + std::string(c.summary) + "\n";
  if (!c.description.empty()) out += "\n" + std::string(c.description) + "\n";
  if (!c.positionals.empty()) {
    out += "\narguments:\n";
    for (const Positional& p : c.positionals) AppendRow(&out, p.name, p.help);
  }
  if (!c.flags.empty()) {
    out += "\nflags:\n";
    for (const Flag& f : c.flags) {
      std::string left;
      if (!f.short_name.empty()) left = std::string(f.short_name) + ", ";
      left += f.name;
      if (!f.value_name.empty()) left += " " + std::string(f.value_name);
      AppendRow(&out, left, f.help);
    }
  }
  out += "\n" + std::string(kGlobalFlagsHelp);
  return out;
}

std::string TopHelp() {
  return "usage: dreamdb [--store URI] [--json] <command> [<args>]\n\n"
         "DreamDB: a versioned, content-addressed dataset store.\n\n"
         "commands:\n" +
         CommandList("") + "\n" + std::string(kGlobalFlagsHelp) +
         "  --version             print the version\n\n" + std::string(kExitCodesHelp) +
         "\nRun 'dreamdb help <command>' or 'dreamdb <command> --help' for details.\n";
}

std::string GroupHelp(std::string_view group) {
  return "usage: dreamdb [--store URI] [--json] " + std::string(group) +
         " <command> [<args>]\n\ncommands:\n" + CommandList(group) + "\nRun 'dreamdb " +
         std::string(group) + " <command> --help' for details.\n";
}

// ---- parsing ----

// A usage error before or during parsing: prints the message and a pointer to help.
int UsageExit(bool json, std::string_view message, const Command* command,
              std::string_view group = "") {
  PrintError(json, "usage", kExitUsage, message);
  if (!json) {
    std::string hint;
    if (command != nullptr) {
      hint = "usage: " + Synopsis(*command) + "\nRun 'dreamdb " + std::string(command->path) +
             " --help' for details.\n";
    } else if (!group.empty()) {
      hint = GroupHelp(group);
    } else {
      hint =
          "usage: dreamdb [--store URI] [--json] <command> [<args>]\n"
          "Run 'dreamdb help' for the list of commands.\n";
    }
    WriteAll(stderr, hint);
  }
  return kExitUsage;
}

const Flag* FindFlag(const Command& c, std::string_view name) {
  for (const Flag& f : c.flags) {
    if (f.name == name || (!f.short_name.empty() && f.short_name == name)) return &f;
  }
  return nullptr;
}

// Applies --cache DIR or --cache-size BYTES; a usage message on error.
std::optional<std::string> SetCacheFlag(std::string_view name, const std::string& value,
                                        GlobalOptions* global) {
  if (name == "--cache") {
    if (value.empty()) return std::string("flag '--cache' needs a directory");
    global->cache_dir = value;
    return std::nullopt;
  }
  auto size = ParseByteSize("--cache-size", value);
  if (!size.ok()) return size.status().message();
  if (*size == 0) return std::string("--cache-size must be at least 1 byte");
  global->cache_size_bytes = *size;
  return std::nullopt;
}

// --stats: each store the run opened, on stderr (one JSON object per line with --json).
void PrintStats(const Invocation& inv) {
  for (const auto& [role, store] : inv.opened_stores()) {
    StoreStats s = store->stats();
    if (inv.json()) {
      JsonObject o;
      o.Add("stats", role).AddRaw("storage", StoreStatsJson(s));
      WriteAll(stderr, o.Finish() + "\n");
    } else {
      WriteAll(stderr, "stats (" + role + ", " + store->uri() + "):\n" + StoreStatsText(s));
    }
  }
}

struct ParsedCommand {
  std::map<std::string, std::vector<std::string>, std::less<>> positionals;
  std::map<std::string, std::string, std::less<>> flags;
};

// Parses the arguments after the command path. Returns a usage message on error.
std::optional<std::string> ParseCommandArgs(const Command& c, const std::vector<std::string>& args,
                                            size_t begin, GlobalOptions* global,
                                            ParsedCommand* parsed) {
  std::vector<std::string> words;
  bool options_done = false;
  for (size_t k = begin; k < args.size(); ++k) {
    const std::string& arg = args[k];
    if (options_done || !IsFlagToken(arg)) {
      words.push_back(arg);
      continue;
    }
    if (arg == "--") {
      options_done = true;
      continue;
    }
    std::string name = arg;
    std::optional<std::string> inline_value;
    if (arg.starts_with("--")) {
      size_t eq = arg.find('=');
      if (eq != std::string::npos) {
        name = arg.substr(0, eq);
        inline_value = arg.substr(eq + 1);
      }
    } else if (arg.size() > 2) {  // -oVALUE
      name = arg.substr(0, 2);
      inline_value = arg.substr(2);
    }
    auto take_value = [&]() -> std::optional<std::string> {
      if (inline_value) return inline_value;
      if (k + 1 >= args.size()) return std::nullopt;
      return args[++k];
    };
    if (name == "--json" || name == "--help" || name == "-h") {
      if (inline_value) return "flag " + Quote(name) + " takes no value";
      if (name == "--json") global->json = true;
      continue;
    }
    if (name == "--store") {
      auto value = take_value();
      if (!value) return "flag '--store' needs a value (URI)";
      global->store_uri = *value;
      continue;
    }
    if (name == "--stats") {
      if (inline_value) return "flag '--stats' takes no value";
      global->stats = true;
      continue;
    }
    if (name == "--cache" || name == "--cache-size") {
      auto value = take_value();
      if (!value) return "flag " + Quote(name) + " needs a value";
      if (auto error = SetCacheFlag(name, *value, global)) return error;
      continue;
    }
    const Flag* flag = FindFlag(c, name);
    if (flag == nullptr) {
      return "unknown flag " + Quote(name) + " for 'dreamdb " + std::string(c.path) + "'";
    }
    std::string key(flag->name);
    if (flag->value_name.empty()) {
      if (inline_value) return "flag " + Quote(key) + " takes no value";
      parsed->flags[key] = "";
      continue;
    }
    auto value = take_value();
    if (!value) {
      return "flag " + Quote(key) + " needs a value (" + std::string(flag->value_name) + ")";
    }
    if (parsed->flags.contains(key)) return "flag " + Quote(key) + " given twice";
    parsed->flags[key] = *value;
  }

  size_t next = 0;
  for (const Positional& p : c.positionals) {
    std::vector<std::string>& slot = parsed->positionals[std::string(p.name)];
    if (p.repeated) {
      while (next < words.size()) slot.push_back(words[next++]);
    } else if (next < words.size()) {
      slot.push_back(words[next++]);
    }
    if (slot.empty() && !p.optional) return "missing argument " + std::string(p.name);
  }
  if (next < words.size()) return "unexpected argument " + Quote(words[next]);
  for (const Flag& f : c.flags) {
    if (f.required && !parsed->flags.contains(f.name)) {
      return "missing required flag " + std::string(f.name) + " " + std::string(f.value_name);
    }
  }
  return std::nullopt;
}

bool WantsHelp(const std::vector<std::string>& args, size_t begin) {
  for (size_t k = begin; k < args.size(); ++k) {
    if (args[k] == "--") return false;
    if (args[k] == "--help" || args[k] == "-h") return true;
  }
  return false;
}

// Decides the error format before parsing, so even the first usage error honours --json.
bool WantsJson(const std::vector<std::string>& args) {
  for (const std::string& a : args) {
    if (a == "--") return false;
    if (a == "--json") return true;
  }
  return false;
}

int RunCommand(const Command& command, const std::vector<std::string>& args, size_t begin,
               GlobalOptions global) {
  if (WantsHelp(args, begin)) {
    WriteAll(stdout, CommandHelp(command));
    return kExitOk;
  }
  ParsedCommand parsed;
  if (auto error = ParseCommandArgs(command, args, begin, &global, &parsed)) {
    return UsageExit(global.json, *error, &command);
  }
  Invocation inv(command, global, std::move(parsed.positionals), std::move(parsed.flags));
  Status status = command.run(inv);
  if (status.ok() && (std::fflush(stdout) != 0 || std::ferror(stdout))) {
    status = IoError(std::string("writing standard output: ") + std::strerror(errno));
  }
  if (global.stats) PrintStats(inv);
  if (status.ok()) return kExitOk;
  if (inv.usage_error()) return UsageExit(global.json, status.message(), &command);
  int exit_code = ExitCodeFor(status.code());
  PrintError(global.json, StatusCodeName(status.code()), exit_code, status.message());
  return exit_code;
}

// The length of the UTF-8 sequence starting at s[i] (1..4), or 0 when it is not valid
// UTF-8 (overlong, surrogate, above U+10FFFF, truncated).
size_t Utf8Length(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(i);
  if (c < 0x80) return 1;
  size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
  if (c >= 0xf5) len = 0;
  bool valid = len != 0 && i + len <= s.size();
  for (size_t k = 1; valid && k < len; ++k) valid = (byte(i + k) & 0xc0) == 0x80;
  if (valid && len == 3) {
    unsigned char c1 = byte(i + 1);
    valid = !(c == 0xe0 && c1 < 0xa0) && !(c == 0xed && c1 >= 0xa0);  // overlong, surrogate
  }
  if (valid && len == 4) {
    unsigned char c1 = byte(i + 1);
    valid = !(c == 0xf0 && c1 < 0x90) && !(c == 0xf4 && c1 >= 0x90);  // overlong, > U+10FFFF
  }
  return valid ? len : 0;
}

// The code point at s[i] (a sequence `len` bytes long) that must never reach a terminal
// raw, or -1: C0 controls, DEL, C1 controls (U+0080..U+009F), and the invisible format
// characters that reorder or split what is shown: ARABIC LETTER MARK U+061C, LRM/RLM
// U+200E/U+200F, LINE/PARAGRAPH SEPARATOR U+2028/U+2029, the bidi embeddings and
// overrides U+202A..U+202E and the bidi isolates U+2066..U+2069 ("Trojan Source").
int ControlAt(std::string_view s, size_t i, size_t len) {
  auto c = static_cast<unsigned char>(s[i]);
  if (len == 1) return c < 0x20 || c == 0x7f ? c : -1;
  auto c1 = static_cast<unsigned char>(s[i + 1]);
  if (len == 2 && c == 0xc2 && c1 < 0xa0) return c1;       // U+0080..U+009F
  if (len == 2 && c == 0xd8 && c1 == 0x9c) return 0x061c;  // ARABIC LETTER MARK
  if (len != 3 || c != 0xe2) return -1;
  int cp = 0x2000 | ((c1 & 0x3f) << 6) | (static_cast<unsigned char>(s[i + 2]) & 0x3f);
  bool format = cp == 0x200e || cp == 0x200f || cp == 0x2028 || cp == 0x2029 ||
                (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
  return format ? cp : -1;
}

// The index of the first byte Printable() changes, or npos: one pass, no copy, for the
// common line that needs no escaping.
size_t FirstUnprintable(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if ((c >= 0x20 && c < 0x7f) || c == '\t') {
      ++i;
      continue;
    }
    if (c < 0x80) return i;  // C0 or DEL
    size_t len = Utf8Length(s, i);
    if (len == 0 || ControlAt(s, i, len) >= 0) return i;
    i += len;
  }
  return std::string_view::npos;
}

// `c` (at most U+FFFF) as \uXXXX, lower-case hex.
void AppendU(int c, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  *out += "\\u";
  for (int shift = 12; shift >= 0; shift -= 4) out->push_back(kHex[(c >> shift) & 15]);
}

}  // namespace

// ---- exit codes ----

int ExitCodeFor(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return 0;
    case StatusCode::kInvalidArgument:
      return 3;
    case StatusCode::kNotFound:
      return 4;
    case StatusCode::kAlreadyExists:
      return 5;
    case StatusCode::kConflict:
      return 6;
    case StatusCode::kCorrupt:
      return 7;
    case StatusCode::kUnavailable:
      return 8;
    case StatusCode::kIoError:
      return 9;
    case StatusCode::kUnsupported:
      return 10;
    case StatusCode::kPermissionDenied:
      return 11;
    case StatusCode::kInternal:
      return 1;
  }
  return 1;
}

// ---- JSON ----

void AppendJsonString(std::string_view s, std::string* out) {
  out->push_back('"');
  for (size_t i = 0; i < s.size();) {
    // Runs of printable ASCII other than '"' and '\\' are copied as they are.
    size_t run = i;
    while (run < s.size() && s[run] >= 0x20 && s[run] < 0x7f && s[run] != '"' && s[run] != '\\') {
      ++run;
    }
    if (run > i) {
      out->append(s.substr(i, run - i));
      i = run;
      continue;
    }
    size_t len = Utf8Length(s, i);
    if (len == 0) {
      *out += "\\ufffd";
      ++i;
      continue;
    }
    int control = ControlAt(s, i, len);
    char c = s[i];
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(c);
    } else if (c == '\n') {
      *out += "\\n";
    } else if (c == '\r') {
      *out += "\\r";
    } else if (c == '\t') {
      *out += "\\t";
    } else if (control >= 0) {
      AppendU(control, out);
    } else {
      out->append(s.substr(i, len));
    }
    i += len;
  }
  out->push_back('"');
}

std::string Printable(std::string_view s) {
  size_t i = FirstUnprintable(s);
  if (i == std::string_view::npos) return std::string(s);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(s.substr(0, i));
  out.reserve(s.size() + 16);
  while (i < s.size()) {
    size_t len = Utf8Length(s, i);
    if (len == 0) {
      auto c = static_cast<unsigned char>(s[i]);
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
      ++i;
      continue;
    }
    int control = ControlAt(s, i, len);
    if (control == '\n') {
      out += "\\n";
    } else if (control == '\r') {
      out += "\\r";
    } else if (control >= 0 && control != '\t') {
      AppendU(control, &out);
    } else {
      out.append(s.substr(i, len));
    }
    i += len;
  }
  return out;
}

void JsonObject::Key(std::string_view key) {
  if (body_.size() > 1) body_ += ", ";
  AppendJsonString(key, &body_);
  body_ += ": ";
}

JsonObject& JsonObject::Add(std::string_view key, std::string_view value) {
  Key(key);
  AppendJsonString(value, &body_);
  return *this;
}

JsonObject& JsonObject::Add(std::string_view key, uint64_t value) {
  Key(key);
  body_ += std::to_string(value);
  return *this;
}

JsonObject& JsonObject::Add(std::string_view key, int value) {
  Key(key);
  body_ += std::to_string(value);
  return *this;
}

JsonObject& JsonObject::Add(std::string_view key, bool value) {
  Key(key);
  body_ += value ? "true" : "false";
  return *this;
}

JsonObject& JsonObject::AddRaw(std::string_view key, std::string_view json) {
  Key(key);
  body_ += json;
  return *this;
}

// ---- registry ----

Registry& Registry::Get() {
  static Registry* registry = new Registry();  // never destroyed: used by static initializers
  return *registry;
}

void Registry::Add(Command command) {
  std::string path(command.path);
  if (commands_.contains(path)) {
    std::fprintf(stderr, "dreamdb: internal error: command '%s' registered twice\n", path.c_str());
    std::abort();
  }
  commands_.emplace(std::move(path), std::move(command));
}

const Command* Registry::Find(std::string_view path) const {
  auto it = commands_.find(path);
  return it == commands_.end() ? nullptr : &it->second;
}

bool Registry::IsGroup(std::string_view group) const {
  std::string prefix = std::string(group) + " ";
  auto it = commands_.lower_bound(prefix);
  return it != commands_.end() && it->first.starts_with(prefix);
}

// ---- Invocation ----

Invocation::Invocation(const Command& command, GlobalOptions global,
                       std::map<std::string, std::vector<std::string>, std::less<>> positionals,
                       std::map<std::string, std::string, std::less<>> flags)
    : command_(command),
      global_(std::move(global)),
      positionals_(std::move(positionals)),
      flags_(std::move(flags)) {}

const std::string& Invocation::Arg(std::string_view name) const {
  static const std::string kEmpty;
  auto it = positionals_.find(name);
  return it == positionals_.end() || it->second.empty() ? kEmpty : it->second.front();
}

bool Invocation::HasArg(std::string_view name) const {
  auto it = positionals_.find(name);
  return it != positionals_.end() && !it->second.empty();
}

const std::vector<std::string>& Invocation::Args(std::string_view name) const {
  static const std::vector<std::string> kEmpty;
  auto it = positionals_.find(name);
  return it == positionals_.end() ? kEmpty : it->second;
}

std::optional<std::string_view> Invocation::FlagValue(std::string_view name) const {
  auto it = flags_.find(name);
  if (it == flags_.end()) return std::nullopt;
  return std::string_view(it->second);
}

Result<std::shared_ptr<Store>> Invocation::OpenStore(std::string_view role, std::string_view uri,
                                                     StoreOpenMode mode) {
  StoreOptions options;
  options.open_mode = mode;
  options.cache_dir = global_.cache_dir;
  options.cache_size_bytes = global_.cache_size_bytes;
  ASSIGN_OR_RETURN(std::unique_ptr<Store> opened, Store::Open(uri, options));
  std::shared_ptr<Store> shared = std::move(opened);
  opened_.emplace_back(std::string(role), shared);
  return shared;
}

Result<Store*> Invocation::store() {
  if (store_ == nullptr) {
    StoreOptions options;
    options.open_mode =
        command_.creates_store ? StoreOpenMode::kCreateIfMissing : StoreOpenMode::kMustExist;
    options.cache_dir = global_.cache_dir;
    options.cache_size_bytes = global_.cache_size_bytes;
    auto opened = Store::Open(global_.store_uri, options);
    if (!opened.ok()) {
      Status st = opened.status().WithContext("opening store " +
                                              Quote(RedactStoreUri(global_.store_uri), 200));
      if (st.code() == StatusCode::kNotFound) {
        st = Status(st.code(), st.message() +
                                   "; only commands that write create a store ('dreamdb init', "
                                   "'create', 'object put')");
      }
      return st;
    }
    store_ = std::move(opened).value();
    opened_.emplace(opened_.begin(), "store", store_);
  }
  return store_.get();
}

Status Invocation::Usage(std::string message) {
  usage_error_ = true;
  return InvalidArgument(std::move(message));
}

void Invocation::PrintLine(std::string_view line) {
  if (FirstUnprintable(line) == std::string_view::npos) {
    WriteAll(stdout, line);
  } else {
    WriteAll(stdout, Printable(line));
  }
  std::fputc('\n', stdout);
}

void Invocation::PrintJson(const JsonObject& object) { PrintLine(object.Finish()); }

Status Invocation::WriteStdout(ByteView bytes) {
  if (std::fwrite(bytes.data(), 1, bytes.size(), stdout) != bytes.size() ||
      std::fflush(stdout) != 0) {
    return IoError(std::string("writing standard output: ") + std::strerror(errno));
  }
  return Status::Ok();
}

// ---- helpers ----

Result<ObjectId> ParseIdArg(std::string_view what, std::string_view text) {
  auto id = ObjectId::Parse(text);
  if (!id.ok() && !what.empty()) return id.status().WithContext(what);
  return id;
}

Status ErrnoStatus(int err, std::string_view what, std::string_view path) {
  std::string message = std::string(what) + " " + Quote(path, 200) + ": " + std::strerror(err);
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return NotFound(std::move(message));
    case EISDIR:
      return InvalidArgument(std::move(message));
    default:
      return IoError(std::move(message));
  }
}

Status WriteOutput(const std::string& path, ByteView bytes) {
  if (path == "-") {
    if (std::fwrite(bytes.data(), 1, bytes.size(), stdout) != bytes.size() ||
        std::fflush(stdout) != 0) {
      return IoError(std::string("writing standard output: ") + std::strerror(errno));
    }
    return Status::Ok();
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) return ErrnoStatus(errno, "cannot open", path);
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return ErrnoStatus(err, "cannot write", path);
    }
    done += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) return ErrnoStatus(errno, "cannot write", path);
  return Status::Ok();
}

std::string_view Version() { return DREAMDB_VERSION; }

Result<std::string> HelpText(std::string_view path) {
  const Registry& registry = Registry::Get();
  if (path.empty()) return TopHelp();
  if (const Command* c = registry.Find(path)) return CommandHelp(*c);
  if (registry.IsGroup(path)) return GroupHelp(path);
  return NotFound("unknown command " + Quote(path));
}

// ---- entry point ----

int Main(int argc, char** argv, const char* env_store) {
  std::vector<std::string> args(argv + 1, argv + argc);
  GlobalOptions global;
  global.store_uri = env_store != nullptr && *env_store != '\0' ? env_store : kDefaultStore;
  global.json = WantsJson(args);
  if (const char* dir = std::getenv("DREAMDB_CACHE"); dir != nullptr && *dir != '\0') {
    global.cache_dir = dir;
  }
  if (const char* size = std::getenv("DREAMDB_CACHE_SIZE"); size != nullptr && *size != '\0') {
    if (auto error = SetCacheFlag("--cache-size", size, &global)) {
      return UsageExit(global.json, "$DREAMDB_CACHE_SIZE: " + *error, nullptr);
    }
  }

  // Global flags before the command.
  bool help = false;
  bool version = false;
  size_t i = 0;
  for (; i < args.size() && IsFlagToken(args[i]); ++i) {
    const std::string& a = args[i];
    if (a == "--json") continue;
    if (a == "--help" || a == "-h") {
      help = true;
    } else if (a == "--version") {
      version = true;
    } else if (a == "--store") {
      if (i + 1 >= args.size()) {
        return UsageExit(global.json, "flag '--store' needs a value (URI)", nullptr);
      }
      global.store_uri = args[++i];
    } else if (a.starts_with("--store=")) {
      global.store_uri = a.substr(8);
    } else if (a == "--stats") {
      global.stats = true;
    } else if (a == "--cache" || a == "--cache-size" || a.starts_with("--cache=") ||
               a.starts_with("--cache-size=")) {
      size_t eq = a.find('=');
      std::string name = a.substr(0, eq);
      std::string value;
      if (eq != std::string::npos) {
        value = a.substr(eq + 1);
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        return UsageExit(global.json, "flag " + Quote(name) + " needs a value", nullptr);
      }
      if (auto error = SetCacheFlag(name, value, &global)) {
        return UsageExit(global.json, *error, nullptr);
      }
    } else {
      return UsageExit(global.json, "unknown flag " + Quote(a), nullptr);
    }
  }

  // The command: the longest sequence of words naming a command or group.
  const Registry& registry = Registry::Get();
  std::string path;
  const Command* command = nullptr;
  size_t j = i;
  while (j < args.size() && !IsFlagToken(args[j])) {
    std::string candidate = path.empty() ? args[j] : path + " " + args[j];
    if (registry.Find(candidate) == nullptr && !registry.IsGroup(candidate)) break;
    path = std::move(candidate);
    command = registry.Find(path);
    ++j;
    if (command != nullptr && !registry.IsGroup(path)) break;
  }

  if (command != nullptr) {
    if (help) {
      WriteAll(stdout, CommandHelp(*command));
      return kExitOk;
    }
    return RunCommand(*command, args, j, std::move(global));
  }

  if (path.empty()) {
    if (j < args.size() && !IsFlagToken(args[j])) {
      return UsageExit(global.json, "unknown command " + Quote(args[j]), nullptr);
    }
    if (version && !help) {
      if (const Command* v = registry.Find("version")) return RunCommand(*v, args, j, global);
    }
    if (help || WantsHelp(args, j)) {
      WriteAll(stdout, TopHelp());
      return kExitOk;
    }
    if (j < args.size()) {
      return UsageExit(global.json, "unknown flag " + Quote(args[j]), nullptr);
    }
    if (global.json) return UsageExit(true, "missing command", nullptr);
    WriteAll(stderr, TopHelp());
    return kExitUsage;
  }

  // A group such as "object" without a valid subcommand.
  if (help || WantsHelp(args, j)) {
    WriteAll(stdout, GroupHelp(path));
    return kExitOk;
  }
  if (j < args.size() && !IsFlagToken(args[j])) {
    return UsageExit(global.json, "unknown command " + Quote(path + " " + args[j]), nullptr, path);
  }
  return UsageExit(global.json, "'dreamdb " + path + "' needs a subcommand", nullptr, path);
}

}  // namespace dreamdb::cli
