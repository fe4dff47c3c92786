// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb serve: the read-only HTTP API and the dashboard (spec/30-http-api.md; the
// server is cli/serve/).
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "cli/dataset_util.h"
#include "cli/serve/server.h"
#include "dreamdb/quote.h"

namespace dreamdb::cli {
namespace {

// The dashboard to serve when --web-root is not given: the installed one, else the
// source tree's build (spec/30 §1.1); empty when neither holds an index.html.
std::string DefaultWebRoot() {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  std::vector<fs::path> candidates;
  if (!ec) candidates.push_back(exe.parent_path().parent_path() / "share" / "dreamdb" / "web");
#ifdef DREAMDB_SOURCE_DIR
  candidates.push_back(fs::path(DREAMDB_SOURCE_DIR) / "web" / "dist");
#endif
  for (const auto& c : candidates) {
    if (fs::is_regular_file(c / "index.html", ec)) return c.string();
  }
  return {};
}

Result<std::string> ReadToken(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrnoStatus(errno, "--token-file", path);
  std::string token(4097, '\0');
  in.read(token.data(), static_cast<std::streamsize>(token.size()));
  token.resize(static_cast<size_t>(in.gcount()));
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!token.empty() && space(token.back())) token.pop_back();
  size_t first = 0;
  while (first < token.size() && space(token[first])) ++first;
  token.erase(0, first);
  Status valid = serve::ValidateToken(token);
  if (!valid.ok()) return valid.WithContext("--token-file " + Quote(path, 200));
  return token;
}

Result<int> IntFlag(Invocation& inv, std::string_view name, int fallback, int lo, int hi) {
  auto v = inv.FlagValue(name);
  if (!v) return fallback;
  auto n = ParseU64(name, *v);
  if (!n.ok() || *n < static_cast<uint64_t>(lo) || *n > static_cast<uint64_t>(hi)) {
    return inv.Usage(std::string(name) + " must be an integer in " + std::to_string(lo) + ".." +
                     std::to_string(hi));
  }
  return static_cast<int>(*n);
}

Status Run(Invocation& inv) {
  serve::ServeOptions o;
  o.version = std::string(Version());
  if (auto b = inv.FlagValue("--bind")) o.bind = std::string(*b);
  ASSIGN_OR_RETURN(o.port, IntFlag(inv, "--port", 8470, 0, 65535));
  ASSIGN_OR_RETURN(o.threads, IntFlag(inv, "--threads", 16, 1, 64));
  ASSIGN_OR_RETURN(int max_page, IntFlag(inv, "--max-page", 1000, 1, 100000));
  o.max_page = static_cast<uint64_t>(max_page);
  if (auto c = inv.FlagValue("--cost-max-objects")) {
    ASSIGN_OR_RETURN(o.cost_max_objects, ParseU64("--cost-max-objects", *c));
  }
  if (auto t = inv.FlagValue("--token-file")) {
    ASSIGN_OR_RETURN(o.token, ReadToken(std::string(*t)));
  }
  if (o.token.empty() && !serve::IsLoopbackAddress(o.bind)) {
    return inv.Usage("--bind " + o.bind +
                     " is not a loopback address: give --token-file (spec/30 §4)");
  }
  o.web_root =
      inv.FlagValue("--web-root") ? std::string(*inv.FlagValue("--web-root")) : DefaultWebRoot();
  ASSIGN_OR_RETURN(std::shared_ptr<Store> store, SharedStore(inv));

  // SIGINT/SIGTERM stop the server from a thread of our own (blocked in every other
  // thread, which inherit this mask), so no handler runs in signal context.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  ASSIGN_OR_RETURN(std::unique_ptr<serve::Server> server, serve::Server::Create(store, o));
  ASSIGN_OR_RETURN(int port, server->Bind());
  const std::string host = o.bind.find(':') != std::string::npos ? "[" + o.bind + "]" : o.bind;
  const std::string url = "http://" + host + ":" + std::to_string(port) + "/";
  if (inv.json()) {
    inv.PrintJson(JsonObject()
                      .Add("listening", url)
                      .Add("host", o.bind)
                      .Add("port", port)
                      .Add("web_root", o.web_root));
  } else {
    inv.PrintLine("dreamdb serve: listening on " + url);
  }
  std::fflush(stdout);

  std::atomic<bool> done{false};
  std::thread waiter([&] {
    const timespec tick{0, 200'000'000};
    while (!done.load()) {
      if (sigtimedwait(&signals, nullptr, &tick) > 0) {
        server->Stop();
        return;
      }
    }
  });
  Status s = server->Run();
  done.store(true);
  waiter.join();
  return s;
}

const Registrar kRegistrar({
    .path = "serve",
    .summary = "Serve the read-only JSON API and the web dashboard over HTTP",
    .description =
        "Answers the JSON API of spec/30-http-api.md (datasets, refs, history, records,\n"
        "blobs, compare-refs, sweeps, vector search, storage cost, /metrics) and serves the\n"
        "dashboard from --web-root. Read-only: nothing is written to the store. Binds\n"
        "127.0.0.1 unless --bind names another address, which needs --token-file (clients\n"
        "then send 'Authorization: Bearer <token>'). Prints 'dreamdb serve: listening on\n"
        "http://HOST:PORT/' once bound (JSON: {\"listening\", \"host\", \"port\",\n"
        "\"web_root\"}); stops on SIGINT or SIGTERM.",
    .flags =
        {
            {.name = "--port",
             .value_name = "P",
             .help = "TCP port (default 8470; 0 = any free port)"},
            {.name = "--bind",
             .value_name = "ADDR",
             .help = "address to listen on (default 127.0.0.1; others need --token-file)"},
            {.name = "--token-file",
             .value_name = "F",
             .help = "require 'Authorization: Bearer <token>', the token being F's content"},
            {.name = "--web-root",
             .value_name = "DIR",
             .help = "the built dashboard (default: the installed one, else web/dist)"},
            {.name = "--threads",
             .value_name = "N",
             .help = "request threads (default 16; a browser keeps up to 6 connections open)"},
            {.name = "--max-page",
             .value_name = "N",
             .help = "largest page size a request may ask for (default 1000)"},
            {.name = "--cost-max-objects",
             .value_name = "N",
             .help = "storage cost refuses datasets reaching more objects (default 2000000)"},
        },
    .run = Run,
});

}  // namespace
}  // namespace dreamdb::cli
