// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
#include "src/base/io_pool.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace dreamdb {
namespace {

TEST(IoPoolTest, RunsEveryIndexExactlyOnce) {
  for (size_t n : {0, 1, 2, 7, 100, 1000}) {
    std::vector<std::atomic<int>> seen(n);
    IoPool::ParallelFor(n, [&](size_t i) { seen[i].fetch_add(1); });
    for (size_t i = 0; i < n; ++i) EXPECT_EQ(seen[i].load(), 1) << "n=" << n << " i=" << i;
  }
}

TEST(IoPoolTest, OverlapsBlockingCalls) {
  // 8 calls that each block 50 ms finish well under 8 x 50 ms: they ran concurrently.
  ASSERT_GE(IoPool::Threads(), 2u);
  auto t0 = std::chrono::steady_clock::now();
  IoPool::ParallelFor(8,
                      [](size_t) { std::this_thread::sleep_for(std::chrono::milliseconds(50)); });
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  EXPECT_LT(ms, 300);
}

TEST(IoPoolTest, MaxParallelBoundsConcurrency) {
  std::atomic<int> running{0}, peak{0};
  IoPool::ParallelFor(
      40,
      [&](size_t) {
        int now = running.fetch_add(1) + 1;
        int p = peak.load();
        while (now > p && !peak.compare_exchange_weak(p, now)) {
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        running.fetch_sub(1);
      },
      3);
  EXPECT_LE(peak.load(), 3);
}

TEST(IoPoolTest, NestedCallsFromEveryThreadDoNotDeadlock) {
  // More outer tasks than pool threads, each running an inner ParallelFor: the callers
  // drain their own work, so a saturated pool cannot wedge.
  const size_t outer = IoPool::Threads() * 2;
  std::atomic<size_t> total{0};
  IoPool::ParallelFor(
      outer, [&](size_t) { IoPool::ParallelFor(16, [&](size_t) { total.fetch_add(1); }); });
  EXPECT_EQ(total.load(), outer * 16);
}

TEST(IoPoolTest, ConcurrentCallersEachSeeTheirOwnWork) {
  std::vector<std::thread> callers;
  std::atomic<size_t> bad{0};
  for (int c = 0; c < 6; ++c) {
    callers.emplace_back([&] {
      for (int rep = 0; rep < 50; ++rep) {
        std::vector<std::atomic<int>> seen(33);
        IoPool::ParallelFor(33, [&](size_t i) { seen[i].fetch_add(1); });
        for (auto& s : seen) bad += s.load() != 1;
      }
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(bad.load(), 0u);
}

TEST(IoPoolTest, WorksInAForkedChild) {
  // DataLoader workers fork a process whose pool threads do not survive the fork.
  IoPool::ParallelFor(4, [](size_t) {});  // the parent's pool exists
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::atomic<int> sum{0};
    IoPool::ParallelFor(64, [&](size_t i) { sum += static_cast<int>(i); });
    _exit(sum.load() == 64 * 63 / 2 ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  std::atomic<int> after{0};
  IoPool::ParallelFor(10, [&](size_t) { after += 1; });  // and the parent's still works
  EXPECT_EQ(after.load(), 10);
}

// A fork right after ParallelFor returns, while pool threads may still be freeing their
// tasks, must leave no lock held in the child: under a sanitizer's allocator (which has no
// fork handlers of its own) a thread inside free() at the fork left the child's first
// malloc waiting forever. The child allocates and exits; the parent waits at most 20 s.
TEST(IoPoolTest, ForkRightAfterParallelForLeavesTheChildNoHeldLock) {
  const int rounds = 100;
  for (int r = 0; r < rounds; ++r) {
    IoPool::ParallelFor(64, [](size_t i) {
      std::vector<std::string> churn;
      for (size_t k = 0; k < 8 + i % 8; ++k) churn.emplace_back(200, 'x');
    });
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      std::vector<std::string> v;
      for (int k = 0; k < 64; ++k) v.emplace_back(1000, 'y');
      IoPool::ParallelFor(8, [](size_t) { std::string s(100, 'z'); });
      _exit(v.size() == 64 ? 0 : 1);
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
      FAIL() << "round " << r << ": the child forked after ParallelFor hung";
    }
    ASSERT_EQ(got, pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "round " << r;
  }
}

// A lock held inside a BackgroundWork scope (a cache's mutex in a pool task, say) is
// never inherited held: fork() waits for the scope to end.
TEST(IoPoolTest, ForkWaitsForAnOpenBackgroundScope) {
  std::mutex mu;
  std::atomic<bool> holding{false};
  std::thread worker([&] {
    BackgroundWork scope;
    std::lock_guard<std::mutex> lock(mu);
    holding = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  });
  while (!holding) std::this_thread::yield();
  const auto t0 = std::chrono::steady_clock::now();
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) _exit(mu.try_lock() ? 0 : 1);  // held at the fork: 1
  const auto waited = std::chrono::steady_clock::now() - t0;
  worker.join();
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the child inherited the mutex held";
  EXPECT_GT(waited, std::chrono::milliseconds(50)) << "fork did not wait for the scope";
}

// A thread may fork from inside its own scope (it does not wait for itself), and scopes
// work as before in both processes afterwards.
TEST(IoPoolTest, ForkFromInsideAScopeDoesNotWaitForItself) {
  pid_t pid = 0;
  {
    BackgroundWork scope;
    pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      std::atomic<int> n{0};
      IoPool::ParallelFor(16, [&](size_t) { n += 1; });
      _exit(n.load() == 16 ? 0 : 1);
    }
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  std::atomic<int> n{0};
  IoPool::ParallelFor(16, [&](size_t) { n += 1; });
  EXPECT_EQ(n.load(), 16);
}

TEST(IoPoolTest, IoTaskRunsOnThePoolOrInTheWaiter) {
  std::atomic<int> runs{0};
  std::vector<std::shared_ptr<IoTask>> tasks;
  for (int i = 0; i < 100; ++i) tasks.push_back(IoTask::Start([&] { runs += 1; }));
  for (auto& t : tasks) t->Wait();
  EXPECT_EQ(runs.load(), 100);
  auto deferred = IoTask::Deferred([&] { runs += 1; });
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(runs.load(), 100);  // a deferred task runs only in Wait
  deferred->Wait();
  deferred->Wait();  // once
  EXPECT_EQ(runs.load(), 101);
}

// Every pool thread waits for a task queued behind it: the waits run those tasks
// themselves, so nothing wedges however few threads the pool has.
TEST(IoPoolTest, IoTaskWaitsFromEveryPoolThreadDoNotDeadlock) {
  const size_t outer = IoPool::Threads() * 2;
  std::atomic<size_t> inner_runs{0};
  IoPool::ParallelFor(outer, [&](size_t) {
    std::vector<std::shared_ptr<IoTask>> inner;
    for (int i = 0; i < 4; ++i) inner.push_back(IoTask::Start([&] { inner_runs += 1; }));
    for (auto& t : inner) t->Wait();
  });
  EXPECT_EQ(inner_runs.load(), outer * 4);
}

TEST(IoPoolTest, IoTaskCancelDropsATaskNotYetStarted) {
  std::atomic<int> runs{0};
  auto deferred = IoTask::Deferred([&] { runs += 1; });
  deferred->Cancel();
  deferred->Wait();  // already settled: does not run it
  EXPECT_EQ(runs.load(), 0);
  auto started = IoTask::Start([&] { runs += 1; });
  started->Wait();
  started->Cancel();  // already ran: nothing to drop
  EXPECT_EQ(runs.load(), 1);
}

// A scan reads its segments on a lane: one thread, in order, never the caller's unless the
// caller waits for a task the thread has not reached.
TEST(IoLaneTest, RunsTasksInOrderOnOneThreadOfItsOwn) {
  IoLane lane;
  std::mutex mu;
  std::vector<int> order;
  std::vector<std::thread::id> threads;
  std::vector<std::shared_ptr<IoTask>> tasks;
  for (int i = 0; i < 200; ++i) {
    tasks.push_back(lane.Start([&, i] {
      std::lock_guard<std::mutex> lock(mu);
      order.push_back(i);
      threads.push_back(std::this_thread::get_id());
    }));
  }
  // Waits without Wait() (which would run a task the lane has not reached on this thread).
  std::promise<void> all_ran;
  auto last = lane.Start([&] { all_ran.set_value(); });
  ASSERT_EQ(all_ran.get_future().wait_for(std::chrono::seconds(60)), std::future_status::ready);
  last->Wait();
  for (auto& t : tasks) t->Wait();  // all settled: runs nothing
  ASSERT_EQ(order.size(), 200u);
  for (size_t i = 0; i < order.size(); ++i) {
    EXPECT_EQ(order[i], static_cast<int>(i));
    EXPECT_EQ(threads[i], threads[0]);
  }
  EXPECT_NE(threads[0], std::this_thread::get_id());
  // A task the lane has not reached runs in its waiter.
  std::atomic<bool> go{false};
  auto blocker = lane.Start([&] {
    while (!go) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  std::thread::id ran_on;
  auto behind = lane.Start([&] { ran_on = std::this_thread::get_id(); });
  behind->Wait();
  EXPECT_EQ(ran_on, std::this_thread::get_id());
  go = true;
  blocker->Wait();
}

// A reader destroyed with reads still queued: the lane drops them, and a waiter on a
// dropped task returns instead of hanging.
TEST(IoLaneTest, DestroyingTheLaneDropsTasksNotStartedAndWakesTheirWaiters) {
  std::atomic<int> runs{0};
  std::atomic<bool> release{false};
  std::atomic<bool> first_started{false};
  std::shared_ptr<IoTask> blocked;
  std::vector<std::shared_ptr<IoTask>> queued;
  std::thread releaser;
  {
    IoLane lane;
    blocked = lane.Start([&] {
      first_started = true;
      while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      runs += 1;
    });
    for (int i = 0; i < 10; ++i) queued.push_back(lane.Start([&] { runs += 100; }));
    while (!first_started) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    releaser = std::thread([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      release = true;
    });
    // The lane is destroyed here, while its first task still runs: that one finishes,
    // the queued ones are dropped.
  }
  releaser.join();
  blocked->Wait();
  for (auto& t : queued) t->Wait();  // settled: returns at once, runs nothing
  EXPECT_EQ(runs.load(), 1);
}

// In a forked child the lane's thread is gone: a task started there runs in its Wait().
TEST(IoLaneTest, WorksInAForkedChild) {
  IoLane lane;
  lane.Start([] {})->Wait();  // the parent's thread exists
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int ran = 0;
    auto task = lane.Start([&] { ran = 1; });
    task->Wait();
    _exit(ran == 1 ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  int after = 0;
  lane.Start([&] { after = 1; })->Wait();  // and the parent's still works
  EXPECT_EQ(after, 1);
}

}  // namespace
}  // namespace dreamdb
