// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
#include "src/base/buffer_recycler.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace dreamdb {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

std::string Buffer(size_t bytes) {
  std::string s;
  s.reserve(bytes);
  s.assign(16, 'x');
  return s;
}

TEST(BufferRecyclerTest, KeepsBuffersOnlyWhileAScanIsActive) {
  BufferRecycler::Give(Buffer(4 * kMiB));
  EXPECT_EQ(BufferRecycler::KeptBuffers(), 0u);  // no scan: freed
  {
    BufferRecycler::Active scan;
    std::string given = Buffer(4 * kMiB);
    const char* pages = given.data();
    BufferRecycler::Give(std::move(given));
    EXPECT_EQ(BufferRecycler::KeptBuffers(), 1u);
    std::string again = BufferRecycler::Take(3 * kMiB);
    EXPECT_EQ(again.data(), pages);  // the same memory, handed back empty
    EXPECT_TRUE(again.empty());
    EXPECT_GE(again.capacity(), 3 * kMiB);
    EXPECT_EQ(BufferRecycler::KeptBuffers(), 0u);
    BufferRecycler::Give(std::move(again));
    EXPECT_EQ(BufferRecycler::KeptBuffers(), 1u);
  }
  EXPECT_EQ(BufferRecycler::KeptBuffers(), 0u);  // the last scan ended: all freed
  EXPECT_EQ(BufferRecycler::KeptBytes(), 0u);
}

// A read's destination is overwritten whole: a kept buffer comes back at the size asked
// without zeroing what it held (a fresh one is zeroed as std::string always is).
TEST(BufferRecyclerTest, TakeSizedReusesAKeptBufferAtTheSizeAsked) {
  BufferRecycler::Active scan;
  std::string fresh = BufferRecycler::TakeSized(2 * kMiB);
  EXPECT_EQ(fresh.size(), 2 * kMiB);
  EXPECT_EQ(fresh.find_first_not_of('\0'), std::string::npos);
  std::string full(4 * kMiB, 'x');
  const char* pages = full.data();
  BufferRecycler::Give(std::move(full));
  std::string again = BufferRecycler::TakeSized(3 * kMiB);
  EXPECT_EQ(again.data(), pages);
  EXPECT_EQ(again.size(), 3 * kMiB);
  EXPECT_EQ(BufferRecycler::KeptBuffers(), 0u);
}

TEST(BufferRecyclerTest, NeverKeepsSmallBuffersOrHandsOutOneTwiceTheSizeAsked) {
  BufferRecycler::Active scan;
  BufferRecycler::Give(Buffer(64 * 1024));
  EXPECT_EQ(BufferRecycler::KeptBuffers(), 0u);
  BufferRecycler::Give(Buffer(32 * kMiB));
  std::string small = BufferRecycler::Take(4 * kMiB);  // a new buffer: 32 MiB would waste
  EXPECT_GE(small.capacity(), 4 * kMiB);
  EXPECT_LT(small.capacity(), 32 * kMiB);
  EXPECT_EQ(BufferRecycler::KeptBuffers(), 1u);
  std::string fits = BufferRecycler::Take(20 * kMiB);
  EXPECT_GE(fits.capacity(), 32 * kMiB);
  EXPECT_EQ(BufferRecycler::KeptBuffers(), 0u);
}

TEST(BufferRecyclerTest, KeepsAtMostItsBoundInBuffersAndBytes) {
  BufferRecycler::Active scan;
  for (int i = 0; i < 3 * static_cast<int>(BufferRecycler::kMaxBuffers); ++i) {
    BufferRecycler::Give(Buffer((40 + static_cast<size_t>(i)) * kMiB));
    EXPECT_LE(BufferRecycler::KeptBuffers(), BufferRecycler::kMaxBuffers);
    EXPECT_LE(BufferRecycler::KeptBytes(), BufferRecycler::kMaxBytes);
  }
  // Larger buffers replace smaller ones: the largest given is kept.
  std::string largest = BufferRecycler::Take((40 + 3 * BufferRecycler::kMaxBuffers - 1) * kMiB);
  EXPECT_GE(largest.capacity(), (40 + 3 * BufferRecycler::kMaxBuffers - 1) * kMiB);
}

TEST(BufferRecyclerTest, ManyThreadsGiveAndTakeConcurrently) {
  BufferRecycler::Active scan;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([] {
      for (int i = 0; i < 50; ++i) {
        std::string b = BufferRecycler::Take(2 * kMiB);
        b.append(1000, 'y');
        BufferRecycler::Give(std::move(b));
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(BufferRecycler::KeptBuffers(), BufferRecycler::kMaxBuffers);
}

// A DataLoader forks its workers while other threads may be giving buffers back (a scan's
// read-ahead, a thread freeing batches): the child must not wait for a lock a vanished
// thread held. Forks while another thread gives and takes in a loop; each child gives,
// takes and exits; the parent waits at most 20 s per child.
TEST(BufferRecyclerTest, AForkedChildGivesAndTakesWhileTheParentsThreadsDid) {
  BufferRecycler::Active scan;
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    while (!stop) {
      std::string b = BufferRecycler::Take(2 * kMiB);
      b.push_back('z');
      BufferRecycler::Give(std::move(b));
    }
  });
  for (int round = 0; round < 50; ++round) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      BufferRecycler::Give(Buffer(3 * kMiB));
      std::string b = BufferRecycler::Take(3 * kMiB);
      _exit(b.capacity() >= 3 * kMiB && BufferRecycler::KeptBuffers() <= 1 ? 0 : 1);
    }
    int status = 0;
    pid_t got = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while ((got = waitpid(pid, &status, WNOHANG)) == 0 &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (got == 0) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      stop = true;
      churn.join();
      FAIL() << "round " << round << ": the forked child hung";
    }
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "round " << round;
  }
  stop = true;
  churn.join();
}

}  // namespace
}  // namespace dreamdb
