// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Merges killed with SIGKILL at random points (spec/14-semantics.md §16.9, §13), on a
// file:// store, with real processes.
//
// MergeManyKilledAtRandomPoints: four branches of one dataset get new records (disjoint
// anchors per branch) from the parent; then a child process merges two of them into main
// with MergeMany, announcing "M" just before and "D <manifest>" after it returns. The
// parent kills it at a random instant of the merge (calibrated on a first, unkilled run)
// and checks (every 8th trial runs unkilled, to calibrate), in a fresh view of the store:
//   1. Verify(store, dataset) reports no problems;
//   2. old or new: main is at its previous head, or at a manifest whose parents are
//      [previous head, the two sources' heads]; an acknowledged merge is the head;
//   3. the records of main are exactly the model's (previous records, plus both sources'
//      records when the merge landed), each with its value.
// DREAMDB_CRASH_TRIALS=<n> sets the number of trials (default 40), DREAMDB_CRASH_SEED=<n>
// replays the random choices (not the timing).

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "dreamdb/dataset.h"
#include "dreamdb/store.h"

namespace dreamdb {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr int kBranches = 4;

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

Schema LabelSchema() {
  Schema s;
  (void)s.AddInt64("label");
  return s;
}

int64_t ValueOf(uint64_t anchor) { return static_cast<int64_t>(anchor * 7 + 3); }

Batch Records(const Schema& schema, uint64_t first, uint64_t n) {
  Batch b;
  Column label(*schema.Find("label"));
  for (uint64_t a = first; a < first + n; ++a) {
    b.anchors.push_back(a);
    label.AppendInt64(ValueOf(a));
  }
  b.columns.push_back(std::move(label));
  return b;
}

Result<std::map<uint64_t, int64_t>> ScanAll(const Dataset& ds) {
  std::map<uint64_t, int64_t> out;
  ASSIGN_OR_RETURN(auto reader, ds.Scan());
  while (true) {
    ASSIGN_OR_RETURN(auto batch, reader->Next());
    if (!batch) break;
    for (uint64_t r = 0; r < batch->num_rows(); ++r) {
      out[batch->anchors[r]] = batch->columns[0].Int64At(r);
    }
  }
  return out;
}

void Send(int fd, const std::string& line) {
  std::string l = line + "\n";
  if (write(fd, l.data(), l.size()) != static_cast<ssize_t>(l.size())) _exit(21);
}

// Reads one line (blocking); empty at EOF.
std::string ReadLine(int fd, std::string* buf) {
  while (true) {
    size_t nl = buf->find('\n');
    if (nl != std::string::npos) {
      std::string line = buf->substr(0, nl);
      buf->erase(0, nl + 1);
      return line;
    }
    char tmp[512];
    ssize_t r = read(fd, tmp, sizeof(tmp));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return "";
    buf->append(tmp, static_cast<size_t>(r));
  }
}

[[noreturn]] void Merger(const std::string& uri, const std::vector<std::string>& sources, int out) {
  auto store = Store::Open(uri);
  if (!store.ok()) _exit(22);
  auto ds = Dataset::Open(std::shared_ptr<Store>(std::move(*store)), "m");
  if (!ds.ok()) _exit(23);
  Send(out, "M");
  auto info = (*ds)->MergeMany(sources);
  if (!info.ok()) {
    Send(out, "E " + info.status().ToString().substr(0, 200));
    _exit(24);
  }
  Send(out, "D " + info->manifest.ToString());
  _exit(0);
}

TEST(MergeKillTest, MergeManyKilledAtRandomPoints) {
  std::string tmpl = (fs::temp_directory_path() / "dreamdb-mergekill-XXXXXX").string();
  ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
  const std::string dir = tmpl;
  const std::string uri = "file://" + dir + "/store";
  const uint64_t seed = EnvOr("DREAMDB_CRASH_SEED", std::random_device{}());
  const uint64_t trials = EnvOr("DREAMDB_CRASH_TRIALS", 40);
  std::mt19937_64 rng(seed);
  SCOPED_TRACE("DREAMDB_CRASH_SEED=" + std::to_string(seed));

  std::map<uint64_t, int64_t> model;  // main's records
  std::vector<std::map<uint64_t, int64_t>> branch_model(kBranches);
  std::vector<uint64_t> next(kBranches);
  {
    std::shared_ptr<Store> store(*Store::Open(uri));
    auto main = *Dataset::Create(store, "m", LabelSchema());
    ASSERT_TRUE(main->AppendMany(Records(main->schema(), 0, 100)).ok());
    for (uint64_t a = 0; a < 100; ++a) model[a] = ValueOf(a);
    for (int b = 0; b < kBranches; ++b) {
      ASSERT_TRUE(main->Branch("b" + std::to_string(b)).ok());
      branch_model[b] = model;
      next[b] = 1'000'000 * static_cast<uint64_t>(b + 1);
    }
  }
  double calibrated_us = 0;
  uint64_t landed = 0, killed = 0;
  for (uint64_t t = 0; t < trials; ++t) {
    // New records on two distinct branches.
    int b1 = static_cast<int>(rng() % kBranches);
    int b2 = static_cast<int>((b1 + 1 + rng() % (kBranches - 1)) % kBranches);
    std::shared_ptr<Store> store(*Store::Open(uri));
    std::vector<std::string> sources;
    std::vector<ObjectId> source_heads;
    for (int b : {b1, b2}) {
      sources.push_back("b" + std::to_string(b));
      auto ds = *Dataset::Open(store, "m", sources.back());
      const uint64_t n = 1 + rng() % 300;
      ASSERT_TRUE(ds->AppendMany(Records(ds->schema(), next[b], n)).ok());
      for (uint64_t a = next[b]; a < next[b] + n; ++a) branch_model[b][a] = ValueOf(a);
      next[b] += n;
      source_heads.push_back(ds->head());
    }
    const ObjectId before = (*Dataset::Open(store, "m"))->head();

    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      Merger(uri, sources, fds[1]);
    }
    close(fds[1]);
    std::string buf;
    ASSERT_EQ(ReadLine(fds[0], &buf), "M");
    const auto started = Clock::now();
    std::optional<std::string> acked;
    if (t % 8 == 0) {
      // Unkilled: (re)calibrates the kill window as the branches grow.
      std::string done = ReadLine(fds[0], &buf);
      ASSERT_EQ(done.substr(0, 2), "D ") << done;
      acked = done.substr(2);
      calibrated_us =
          std::chrono::duration<double, std::micro>(Clock::now() - started).count() * 1.5;
    } else {
      std::uniform_real_distribution<double> delay(0, calibrated_us);
      std::this_thread::sleep_for(std::chrono::microseconds(static_cast<int64_t>(delay(rng))));
      kill(pid, SIGKILL);
      ++killed;
      // Whatever the child said before it died.
      for (std::string line; !(line = ReadLine(fds[0], &buf)).empty();) {
        ASSERT_NE(line[0], 'E') << line;
        if (line.substr(0, 2) == "D ") acked = line.substr(2);
      }
    }
    close(fds[0]);
    int wstatus = 0;
    ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);

    // Checks, in a fresh view.
    std::shared_ptr<Store> view(*Store::Open(uri));
    auto report = Verify(*view, "m");
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    ASSERT_TRUE(report->problems.empty()) << "trial " << t << ": " << report->problems[0];
    auto main = *Dataset::Open(view, "m");
    if (acked) {
      ASSERT_EQ(main->head().ToString(), *acked) << "trial " << t;
    }
    if (main->head() != before) {
      std::vector<ObjectId> parents;
      ASSERT_TRUE(main->History([&](const CommitInfo& c) {
                        parents = c.parents;
                        return false;
                      })
                      .ok());
      ASSERT_EQ(parents, (std::vector<ObjectId>{before, source_heads[0], source_heads[1]}))
          << "trial " << t;
      for (int b : {b1, b2}) model.insert(branch_model[b].begin(), branch_model[b].end());
      ++landed;
    }
    auto records = ScanAll(*main);
    ASSERT_TRUE(records.ok()) << records.status().ToString();
    ASSERT_EQ(*records, model) << "trial " << t;
    ASSERT_EQ(main->Count(), model.size());
  }
  std::cerr << "merge kill test: " << trials << " trials, " << killed << " kills, " << landed
            << " merges landed (seed " << seed << ")\n";
  EXPECT_GT(landed, 0u);
  std::error_code ec;
  fs::remove_all(dir, ec);
}

}  // namespace
}  // namespace dreamdb
