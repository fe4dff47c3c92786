// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Multi-process guarantees of the file:// backend (spec/05-backend.md §6,
// spec/06-refs.md §4 and §7.6):
//   - processes racing compare-and-swap on one ref: exactly one winner per round;
//   - a writer killed with SIGKILL at a random point never leaves a ref that fails to
//     parse, points at a missing or damaged object, or loses an acknowledged swap.
//
// Children talk to the parent over pipes with messages shorter than PIPE_BUF, so each
// write is atomic. Children leave with _exit so no test-framework state runs twice.
// Kill points are chosen relative to the writer's progress messages, so every trial gets
// as far as intended however loaded the machine is. DREAMDB_CRASH_SEED=<n> replays the
// random choices (not the exact timing).

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "dreamdb/store.h"
#include "src/store/testing/ref_race.h"

namespace dreamdb {
namespace {

namespace fs = std::filesystem;

constexpr size_t kIdText = ObjectId::kTextSize;

std::string MakeTempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl =
      std::string(base != nullptr && *base ? base : "/tmp") + "/dreamdb-crash-XXXXXX";
  return mkdtemp(tmpl.data()) != nullptr ? tmpl : "";
}

std::string ReadToEof(int fd) {
  std::string out;
  char buf[65536];
  while (true) {
    ssize_t r = read(fd, buf, sizeof(buf));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return out;
    out.append(buf, static_cast<size_t>(r));
  }
}

class StoreCrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    ASSERT_FALSE(dir_.empty());
    uri_ = "file://" + dir_ + "/store";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string dir_;
  std::string uri_;
};

// ---- 16 processes x 1,000 rounds of compare-and-swap on one ref ----

TEST_F(StoreCrashTest, SixteenProcessesRaceCompareAndSwap) { RaceOnOneRef(uri_, 1000); }

// ---- kill -9 at random points ----

// Announces "R" once the store is open, then loops forever: read the ref, put a new
// object, announce "I<id>", swap, announce "D<id>". Every message is 1 + 56 bytes.
[[noreturn]] void KilledWriter(const std::string& uri, const std::string& ref, uint64_t seed,
                               int out) {
  auto opened = Store::Open(uri);
  if (!opened.ok()) _exit(10);
  Store& store = **opened;
  if (!WriteAll(out, "R" + std::string(kIdText, ' '))) _exit(16);
  std::mt19937_64 rng(seed);
  for (uint64_t i = 0;; ++i) {
    auto current = store.ReadRef(ref);
    if (!current.ok()) _exit(11);
    std::string data = "writer " + std::to_string(seed) + " step " + std::to_string(i) + " ";
    data.append(rng() % 4096, static_cast<char>('a' + rng() % 26));
    auto id = store.Put(data);
    if (!id.ok()) _exit(12);
    if (!WriteAll(out, "I" + id->ToString())) _exit(13);
    Status st = store.UpdateRef(ref, current->target, *id);
    if (!st.ok()) _exit(14);  // the only writer: a swap never conflicts
    if (!WriteAll(out, "D" + id->ToString())) _exit(15);
  }
}

TEST_F(StoreCrashTest, KillNineLeavesRefsAndObjectsIntact) {
  constexpr int kTrials = 200;
  const std::string ref = "kill/branches/main";
  uint64_t seed = std::random_device{}();
  if (const char* s = std::getenv("DREAMDB_CRASH_SEED")) seed = std::strtoull(s, nullptr, 10);
  SCOPED_TRACE("DREAMDB_CRASH_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);

  ObjectId acknowledged;  // the last swap a writer reported done
  {
    auto opened = Store::Open(uri_);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    auto start = (*opened)->Put("kill start");
    ASSERT_TRUE(start.ok());
    ASSERT_TRUE((*opened)->CreateRef(ref, *start).ok());
    acknowledged = *start;
  }
  int total_swaps = 0;
  int landed_in_flight = 0;  // kills after a swap was applied but before it was reported
  // Mean time between a writer's messages, measured as we go: kill delays scale with it,
  // so the schedule covers every point of a step however loaded the machine is.
  double step_us = 2000;
  for (int trial = 0; trial < kTrials; ++trial) {
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(p[0]);
      KilledWriter(uri_, ref, seed + static_cast<uint64_t>(trial), p[1]);
    }
    close(p[1]);
    // Kill point: after the ready message and 0-5 step messages, plus a random fraction
    // of a step (up to 1.5 steps, so kills also land just after a message).
    std::string log, msg;
    const int wait_messages = 1 + static_cast<int>(rng() % 6);
    auto last = std::chrono::steady_clock::now();
    for (int m = 0; m < wait_messages; ++m) {
      ASSERT_TRUE(ReadExactly(p[0], 1 + kIdText, &msg)) << "trial " << trial << ": writer died";
      auto now = std::chrono::steady_clock::now();
      if (m > 0) {
        double us = std::chrono::duration<double, std::micro>(now - last).count();
        step_us = 0.9 * step_us + 0.1 * us;
      }
      last = now;
      log += msg;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(
        static_cast<int64_t>(static_cast<double>(rng() % 1000) / 1000.0 * 1.5 * step_us)));
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "trial " << trial << ": the writer stopped by itself, status " << status;
    log += ReadToEof(p[0]);
    close(p[0]);
    ASSERT_EQ(log.size() % (1 + kIdText), 0u) << "pipe messages are atomic";
    ObjectId intent;  // announced but not acknowledged
    bool pending = false;
    for (size_t at = 0; at < log.size(); at += 1 + kIdText) {
      if (log[at] == 'R') continue;
      ObjectId id = *ObjectId::Parse(log.substr(at + 1, kIdText));
      if (log[at] == 'D') {
        acknowledged = id, pending = false, ++total_swaps;
      } else {
        intent = id, pending = true;
      }
    }

    // A fresh process view: the ref parses and points at the acknowledged swap or at the
    // one in flight when the writer died, and that object is intact.
    auto opened = Store::Open(uri_);
    ASSERT_TRUE(opened.ok()) << "trial " << trial << ": " << opened.status().ToString();
    Store& store = **opened;
    auto now = store.ReadRef(ref);
    ASSERT_TRUE(now.ok()) << "trial " << trial << ": " << now.status().ToString();
    ASSERT_TRUE(now->target == acknowledged || (pending && now->target == intent))
        << "trial " << trial << ": the ref lost an acknowledged swap";
    auto data = store.Get(now->target);
    ASSERT_TRUE(data.ok()) << "trial " << trial << ": " << data.status().ToString();
    if (pending && now->target == intent && intent != acknowledged) ++landed_in_flight;
    acknowledged = now->target;  // the next writer starts from here
    size_t objects = 0;
    ASSERT_TRUE(store
                    .ListObjects("",
                                 [&](const ObjectInfo&) {
                                   ++objects;
                                   return true;
                                 })
                    .ok());
    ASSERT_GE(objects, 1u);
  }
  // Every object that made it into objects/ is complete (renamed in only when whole).
  auto opened = Store::Open(uri_);
  ASSERT_TRUE(opened.ok());
  size_t objects = 0, damaged = 0;
  ASSERT_TRUE((*opened)
                  ->ListObjects("",
                                [&](const ObjectInfo& info) {
                                  ++objects;
                                  if (!(*opened)->Get(info.id).ok()) ++damaged;
                                  return true;
                                })
                  .ok());
  EXPECT_EQ(damaged, 0u);
  size_t stale_tmp = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_ + "/store/tmp")) ++stale_tmp;
  RecordProperty("swaps", total_swaps);
  RecordProperty("objects", static_cast<int>(objects));
  RecordProperty("stale_tmp_files", static_cast<int>(stale_tmp));
  RecordProperty("landed_in_flight", landed_in_flight);
  std::cout << kTrials << " kills: " << total_swaps << " acknowledged swaps, " << objects
            << " objects, " << landed_in_flight << " swaps applied but unreported, " << stale_tmp
            << " stale temp files (tolerated), mean step " << static_cast<int>(step_us) << " us\n";
  EXPECT_GT(total_swaps, 0);
}

}  // namespace
}  // namespace dreamdb
