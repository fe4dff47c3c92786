// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// IoPool: the one bounded pool of I/O threads in a process. Blocking storage calls that
// should overlap (fsyncs of one commit, segment fetches of one read) run on it instead of
// on threads made per call: a thread costs ~50-150 us to create and join, more than a
// small fsync or a cached read, and per-call threads are unbounded when calls nest or
// run concurrently.
//
// Size: DREAMDB_IO_THREADS if set (1..256), else 4 x the hardware threads, clamped to
// [16, 64]: the threads mostly wait on the device or the network, not the CPU.
//
// ParallelFor(n, fn) runs fn(0..n-1) and returns when all have returned. The calling
// thread runs tasks too, so a call never waits on a pool that is busy with other work and
// a task may itself call ParallelFor (no deadlock; nested calls just run more inline).
//
// Fork: the pool's threads do not exist in a forked child (DataLoader workers fork). A
// pthread_atfork handler abandons the parent's pool in the child (its memory is leaked on
// purpose: its mutex may have been held by a thread that is gone) and the next call makes
// a fresh one, so a child uses the pool as its parent did. Before the fork, the handler
// waits for every BackgroundWork scope (below) to end and holds new ones off until fork()
// returns: a lock that a vanished thread held (a cache's, or the allocator's under a
// sanitizer, which has no fork handlers of its own) would otherwise stay locked in the
// child forever, and the child's first use of it would hang.
//
// Thread safety: every function may be called from any thread, concurrently.

#ifndef DREAMDB_SRC_BASE_IO_POOL_H_
#define DREAMDB_SRC_BASE_IO_POOL_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

namespace dreamdb {

// A scope of work on a thread the library started (the pool's, a scan's read-ahead, a
// fetch's helper): fork() waits until no such scope is open, and a scope that starts
// while a fork runs waits until it is done. A thread that forks from inside a scope of its
// own does not wait for itself. A fork waits at most 10 s for the open scopes.
// Thread safety: used on any thread.
class BackgroundWork {
 public:
  BackgroundWork();
  ~BackgroundWork();
  BackgroundWork(const BackgroundWork&) = delete;
  BackgroundWork& operator=(const BackgroundWork&) = delete;
};

class IoPool {
 public:
  // The pool's thread count (creating the pool if needed).
  static size_t Threads();
  // Runs fn(i) for every i in [0, n), up to `max_parallel` at once (0: no limit beyond
  // the pool's size + the caller), and returns when every call has returned. Indices are
  // claimed in increasing order. n <= 1 or max_parallel == 1 runs inline.
  static void ParallelFor(size_t n, const std::function<void(size_t)>& fn, size_t max_parallel = 0);
};

// One task started on the I/O pool whose starter waits for it later (a cursor's leaf
// read ahead, say). Wait() runs the task on the calling thread if no pool thread has
// started it yet, so a wait never depends on a free pool thread (no deadlock when every
// pool thread is itself waiting); Cancel() drops a task not yet started and waits for
// one that is. Made with Start (on the pool) or Deferred (runs only in Wait).
// Thread safety: Wait and Cancel may be called from any thread, concurrently.
class IoTask {
 public:
  static std::shared_ptr<IoTask> Start(std::function<void()> fn);
  static std::shared_ptr<IoTask> Deferred(std::function<void()> fn);
  void Wait();
  void Cancel();

  explicit IoTask(std::function<void()> fn) : fn_(std::move(fn)) {}

 private:
  friend class IoLane;
  void Run(bool execute);

  std::function<void()> fn_;  // used (then cleared) by the one thread that claims the task
  std::atomic<bool> claimed_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;  // guarded by mu_
};

// One thread of its own that runs IoTasks one at a time, in the order started: for
// background reads whose large buffers should come from one allocator arena (a scan's
// 30 MB segments read on the pool's many threads grow one arena per thread, and the
// process keeps them all). The thread starts with the first task and stops with the lane;
// tasks not started by then are cancelled. A Wait() on a task the thread has not reached
// runs it on the waiter, as for the pool. In a forked child (no thread) every task runs
// in its Wait().
// Thread safety: Start may be called from any thread, concurrently; the destructor once.
class IoLane {
 public:
  IoLane() = default;
  ~IoLane();
  IoLane(const IoLane&) = delete;
  IoLane& operator=(const IoLane&) = delete;
  std::shared_ptr<IoTask> Start(std::function<void()> fn);

 private:
  void Loop();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<IoTask>> queue_;  // guarded by mu_
  bool stop_ = false;                          // guarded by mu_
  bool running_ = false;                       // guarded by mu_: Loop() has started
  std::thread thread_;
  int pid_ = 0;  // the process thread_ runs in
};

}  // namespace dreamdb

#endif  // DREAMDB_SRC_BASE_IO_POOL_H_
