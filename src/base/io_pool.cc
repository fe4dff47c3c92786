// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
#include "src/base/io_pool.h"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace dreamdb {
namespace {

size_t ConfiguredThreads() {
  if (const char* env = std::getenv("DREAMDB_IO_THREADS"); env != nullptr && *env != '\0') {
    char* end = nullptr;
    long v = std::strtol(env, &end, 10);
    if (end != nullptr && *end == '\0' && v >= 1 && v <= 256) return static_cast<size_t>(v);
  }
  size_t hw = std::max(1u, std::thread::hardware_concurrency());
  return std::clamp<size_t>(4 * hw, 16, 64);  // waits on I/O, so more than the cores
}

// The worker threads and their queue. Never destroyed: threads may still be running
// tasks at exit, and an abandoned pool (after fork) must not be touched at all.
class Pool {
 public:
  explicit Pool(size_t threads) : size_(threads) {
    threads_.reserve(threads);
    for (size_t i = 0; i < threads; ++i) {
      threads_.emplace_back([this] { Work(); });
      threads_.back().detach();
    }
    // Returns once every thread runs Work(): a thread still starting (allocating its
    // runtime state) when the process forks could hold a lock the child needs.
    std::unique_lock<std::mutex> lock(mu_);
    started_cv_.wait(lock, [this] { return started_ == size_; });
  }
  size_t size() const { return size_; }
  void Submit(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(task));
    }
    cv_.notify_one();
  }
  Pool* abandoned_next = nullptr;  // the intrusive list of pools abandoned by fork

 private:
  void Work() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (++started_ == size_) started_cv_.notify_all();
    }
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return !queue_.empty(); });
      }
      // Everything a task does, its destruction included (which frees its captures), is
      // inside the scope a fork waits out; only the idle wait above is outside.
      BackgroundWork scope;
      std::function<void()> task;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (queue_.empty()) continue;  // another thread took it
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      task();
    }
  }

  const size_t size_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;  // guarded by mu_
  size_t started_ = 0;                       // threads in Work(), guarded by mu_
  std::condition_variable started_cv_;
  std::vector<std::thread> threads_;
};

std::mutex g_create_mu;  // held while the pool is made, and across fork()
std::atomic<Pool*> g_pool{nullptr};
Pool* g_abandoned = nullptr;  // kept reachable: abandoned, not leaked

// Open BackgroundWork scopes and the fork that waits for them. The fast path is two
// atomic operations; the mutex and condition variable serve only a fork and the scopes
// that start during one. seq_cst on both atomics: a scope that starts as a fork begins
// either is counted by the fork or sees it and waits.
std::atomic<int64_t> g_work{0};
std::atomic<bool> g_forking{false};
std::mutex g_work_mu;  // held from the fork's prepare handler until fork() returns
std::condition_variable g_work_cv;
thread_local int64_t t_work_depth = 0;  // this thread's open scopes

void AtForkPrepare() {
  g_create_mu.lock();
  g_work_mu.lock();
  g_forking.store(true);
  std::unique_lock<std::mutex> lock(g_work_mu, std::adopt_lock);
  // Bounded: a scope waiting on the forking thread (a callback into Python that needs the
  // GIL a forking interpreter holds, say) must not wedge the fork; past the bound the fork
  // goes ahead as it would without this wait.
  g_work_cv.wait_for(lock, std::chrono::seconds(10), [] { return g_work.load() == t_work_depth; });
  lock.release();  // g_work_mu stays held across the fork
}
void AtForkParent() {
  g_forking.store(false);
  g_work_mu.unlock();
  g_work_cv.notify_all();
  g_create_mu.unlock();
}
void AtForkChild() {
  // Only the forking thread exists here: the pool's threads are gone. Forget the pool;
  // the next call creates one. No allocation or locking of the old pool's state.
  Pool* old = g_pool.exchange(nullptr);
  if (old != nullptr) {
    old->abandoned_next = g_abandoned;
    g_abandoned = old;
  }
  g_work.store(t_work_depth);  // no other thread, so no other scope, exists here
  g_forking.store(false);
  g_work_mu.unlock();
  g_create_mu.unlock();
}

void RegisterForkHandlers() {
  static const bool registered = [] {
    pthread_atfork(AtForkPrepare, AtForkParent, AtForkChild);
    return true;
  }();
  (void)registered;
}

Pool& GetPool() {
  Pool* p = g_pool.load(std::memory_order_acquire);
  if (p != nullptr) return *p;
  std::lock_guard<std::mutex> lock(g_create_mu);
  p = g_pool.load(std::memory_order_acquire);
  if (p == nullptr) {
    RegisterForkHandlers();
    p = new Pool(ConfiguredThreads());
    g_pool.store(p, std::memory_order_release);
  }
  return *p;
}

// One ParallelFor call: shared with the helpers that may start after it returned.
struct Job {
  const std::function<void(size_t)>* fn = nullptr;  // valid while finished < n
  size_t n = 0;
  std::atomic<size_t> next{0};
  std::mutex mu;
  std::condition_variable cv;
  size_t finished = 0;  // guarded by mu

  void Drain() {
    size_t done = 0;
    for (size_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < n;) {
      (*fn)(i);
      ++done;
    }
    if (done == 0) return;
    std::lock_guard<std::mutex> lock(mu);
    finished += done;
    if (finished == n) cv.notify_all();
  }
};

}  // namespace

BackgroundWork::BackgroundWork() {
  RegisterForkHandlers();
  ++t_work_depth;
  if (t_work_depth > 1) {  // nested: the outer scope already holds a fork off
    g_work.fetch_add(1);
    return;
  }
  for (;;) {
    g_work.fetch_add(1);
    if (!g_forking.load()) return;
    // A fork is waiting for the open scopes to end: step back and wait for it.
    g_work.fetch_sub(1);
    std::unique_lock<std::mutex> lock(g_work_mu);
    g_work_cv.notify_all();
    g_work_cv.wait(lock, [] { return !g_forking.load(); });
  }
}

BackgroundWork::~BackgroundWork() {
  --t_work_depth;
  g_work.fetch_sub(1);
  if (g_forking.load()) {
    std::lock_guard<std::mutex> lock(g_work_mu);
    g_work_cv.notify_all();
  }
}

std::shared_ptr<IoTask> IoTask::Start(std::function<void()> fn) {
  auto task = std::make_shared<IoTask>(std::move(fn));
  GetPool().Submit([task] { task->Run(true); });
  return task;
}

std::shared_ptr<IoTask> IoTask::Deferred(std::function<void()> fn) {
  return std::make_shared<IoTask>(std::move(fn));
}

void IoTask::Run(bool execute) {
  if (claimed_.exchange(true)) return;  // another thread has it
  if (execute) fn_();
  fn_ = nullptr;  // its captures are released by the thread that ran it
  std::lock_guard<std::mutex> lock(mu_);
  done_ = true;
  cv_.notify_all();
}

void IoTask::Wait() {
  Run(true);
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return done_; });
}

void IoTask::Cancel() {
  Run(false);
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return done_; });
}

std::shared_ptr<IoTask> IoLane::Start(std::function<void()> fn) {
  auto task = std::make_shared<IoTask>(std::move(fn));
  const int pid = static_cast<int>(getpid());
  if (thread_.joinable() && pid != pid_) return task;  // a forked child: runs in Wait()
  std::unique_lock<std::mutex> lock(mu_);
  queue_.push_back(task);
  if (!thread_.joinable()) {
    pid_ = pid;
    thread_ = std::thread([this] { Loop(); });
    // Returns once the thread runs Loop(): a thread still starting when the process forks
    // could hold a lock the child needs (as for the pool's threads).
    cv_.wait(lock, [this] { return running_; });
  }
  lock.unlock();
  cv_.notify_all();
  return task;
}

void IoLane::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  running_ = true;
  cv_.notify_all();
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopped
    std::shared_ptr<IoTask> task = std::move(queue_.front());
    queue_.pop_front();
    const bool run = !stop_;
    lock.unlock();
    {
      BackgroundWork scope;  // a fork waits for it
      task->Run(run);
    }
    task.reset();
    lock.lock();
  }
}

IoLane::~IoLane() {
  if (!thread_.joinable()) return;
  if (static_cast<int>(getpid()) != pid_) {
    thread_.detach();  // a forked child: the thread exists only in the parent
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

size_t IoPool::Threads() { return GetPool().size(); }

void IoPool::ParallelFor(size_t n, const std::function<void(size_t)>& fn, size_t max_parallel) {
  if (n == 0) return;
  if (n == 1 || max_parallel == 1) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  Pool& pool = GetPool();
  size_t helpers = std::min(n - 1, pool.size());
  if (max_parallel != 0) helpers = std::min(helpers, max_parallel - 1);
  auto job = std::make_shared<Job>();
  job->fn = &fn;
  job->n = n;
  for (size_t h = 0; h < helpers; ++h) pool.Submit([job] { job->Drain(); });
  job->Drain();
  std::unique_lock<std::mutex> lock(job->mu);
  job->cv.wait(lock, [&] { return job->finished == n; });
}

}  // namespace dreamdb
