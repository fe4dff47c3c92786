// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb stats [--prometheus]
#include <string>

#include "cli/cli.h"
#include "dreamdb/store_stats.h"

namespace dreamdb::cli {
namespace {

Status Run(Invocation& inv) {
  ASSIGN_OR_RETURN(Store * store, inv.store());
  // One ref listing: what a reader does first, so the counts show the store's round trip.
  uint64_t refs = 0;
  RETURN_IF_ERROR(store->ListRefs("", [&](const RefValue&) {
    ++refs;
    return true;
  }));
  const StoreStats stats = store->stats();
  ObjectCacheUsage usage;
  const bool cached = !inv.global().cache_dir.empty();
  if (cached) {
    ASSIGN_OR_RETURN(usage, ObjectCacheUsageOf(inv.global().cache_dir));
  }
  if (inv.HasFlag("--prometheus")) {
    std::string text = StoreStatsPrometheus(stats);
    if (cached) {
      text +=
          "# HELP dreamdb_cache_files Files in the local object cache.\n"
          "# TYPE dreamdb_cache_files gauge\ndreamdb_cache_files " +
          std::to_string(usage.files) +
          "\n# HELP dreamdb_cache_size_bytes Bytes in the local object cache.\n"
          "# TYPE dreamdb_cache_size_bytes gauge\ndreamdb_cache_size_bytes " +
          std::to_string(usage.bytes) + "\n";
    }
    return inv.WriteStdout(text);
  }
  if (inv.json()) {
    JsonObject o;
    o.Add("store", store->uri()).Add("refs", refs).AddRaw("storage", StoreStatsJson(stats));
    if (cached) {
      o.AddRaw("cache", JsonObject()
                            .Add("dir", inv.global().cache_dir)
                            .Add("files", usage.files)
                            .Add("bytes", usage.bytes)
                            .Add("max_bytes", inv.global().cache_size_bytes)
                            .Finish());
    }
    inv.PrintJson(o);
    return Status::Ok();
  }
  inv.PrintLine("store: " + store->uri());
  inv.PrintLine("refs: " + std::to_string(refs));
  std::string text = StoreStatsText(stats);
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    inv.PrintLine(text.substr(start, end - start));
    start = end + 1;
  }
  if (cached) {
    inv.PrintLine("cache: " + inv.global().cache_dir + ": " + std::to_string(usage.files) +
                  " files, " + std::to_string(usage.bytes) + " of " +
                  std::to_string(inv.global().cache_size_bytes) + " bytes");
  }
  return Status::Ok();
}

const Registrar kRegistrar({
    .path = "stats",
    .summary = "Show the storage requests of opening the store, and the cache's size",
    .description =
        "Opens the store, lists its refs once and reports the storage requests that took\n"
        "(by verb and status class, retries, bytes in and out, time in flight) and, with\n"
        "--cache, the files and bytes in the cache. Any command reports its own requests\n"
        "with --stats; 'dreamdb serve' exposes the live counters on /metrics.\n"
        "JSON: {\"store\", \"refs\", \"storage\": {\"requests\", \"by_verb\", \"retries\",\n"
        "\"bytes_in\", \"bytes_out\", \"in_flight_ms\", \"cache_*\"}, \"cache\"?}.",
    .flags = {{.name = "--prometheus", .help = "print Prometheus text (version 0.0.4)"}},
    .run = Run,
});

}  // namespace
}  // namespace dreamdb::cli
