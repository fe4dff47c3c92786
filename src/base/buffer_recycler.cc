// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
#include "src/base/buffer_recycler.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <new>
#include <optional>
#include <utility>
#include <vector>

namespace dreamdb {
namespace {

struct Kept {
  std::mutex mu;
  std::atomic<size_t> active{0};  // Active scopes alive (changed under mu)
  size_t bytes = 0;               // capacity of `buffers`
  std::vector<std::string> buffers;
};

std::atomic<Kept*> g_kept{nullptr};

// In a forked child the state is abandoned and a fresh one made: its mutex may have been
// held, at the fork, by a thread that does not exist in the child (a thread freeing a
// batch), and the child's first Give would wait for it forever. The child's copies of the
// parent's kept buffers are leaked (shared pages until written); its Active scopes, copied
// from the parent, still count.
// The fresh state is built in static storage, not with malloc: the allocator's own lock
// may be in the same state (under a sanitizer, whose allocator has no fork handlers).
void AbandonInChild() {
  constexpr int kSlots = 8;  // forks of forks; beyond that, the heap
  alignas(Kept) static unsigned char slots[kSlots][sizeof(Kept)];
  static int used = 0;
  Kept* old = g_kept.load();
  Kept* fresh = used < kSlots ? new (slots[used++]) Kept() : new Kept();
  fresh->active = old->active.load();
  g_kept = fresh;
}

// Never destroyed: buffers may be given back by threads still running at exit.
Kept& State() {
  static std::once_flag once;
  std::call_once(once, [] {
    g_kept = new Kept();
    pthread_atfork(nullptr, nullptr, &AbandonInChild);
  });
  return *g_kept.load();
}

}  // namespace

BufferRecycler::Active::Active() {
  Kept& k = State();
  std::lock_guard<std::mutex> lock(k.mu);
  ++k.active;
}

BufferRecycler::Active::~Active() {
  Kept& k = State();
  std::vector<std::string> drop;
  {
    std::lock_guard<std::mutex> lock(k.mu);
    if (--k.active != 0) return;
    drop.swap(k.buffers);
    k.bytes = 0;
  }
  // freed outside the lock
}

namespace {

// A kept buffer of capacity in [capacity, 2 x capacity] (the smallest), if any.
std::optional<std::string> TakeKept(size_t capacity) {
  if (capacity < BufferRecycler::kMinBytes) return std::nullopt;
  Kept& k = State();
  std::lock_guard<std::mutex> lock(k.mu);
  size_t best = k.buffers.size();
  for (size_t i = 0; i < k.buffers.size(); ++i) {
    const size_t c = k.buffers[i].capacity();
    if (c >= capacity && c / 2 <= capacity &&
        (best == k.buffers.size() || c < k.buffers[best].capacity())) {
      best = i;
    }
  }
  if (best == k.buffers.size()) return std::nullopt;
  std::string out = std::move(k.buffers[best]);
  k.buffers.erase(k.buffers.begin() + static_cast<std::ptrdiff_t>(best));
  k.bytes -= out.capacity();
  return out;
}

}  // namespace

std::string BufferRecycler::TakeSized(size_t size) {
  std::optional<std::string> kept = TakeKept(size);
  std::string out;
  if (kept) {
    out = std::move(*kept);
  } else {
    out.reserve(size);
  }
  out.resize(size);  // zero-fills only past the kept buffer's old size
  return out;
}

std::string BufferRecycler::Take(size_t capacity) {
  if (auto kept = TakeKept(capacity)) {
    kept->clear();
    return std::move(*kept);
  }
  std::string out;
  out.reserve(capacity);
  return out;
}

void BufferRecycler::Give(std::string&& buffer) {
  const size_t c = buffer.capacity();
  if (c < kMinBytes || c > kMaxBytes) return;
  Kept& k = State();
  std::vector<std::string> drop;  // freed outside the lock
  {
    std::lock_guard<std::mutex> lock(k.mu);
    if (k.active == 0) return;
    // Room is made by dropping the smallest kept buffers, if they are smaller than this.
    while (!k.buffers.empty() && (k.buffers.size() >= kMaxBuffers || k.bytes + c > kMaxBytes)) {
      auto smallest = std::min_element(
          k.buffers.begin(), k.buffers.end(),
          [](const std::string& a, const std::string& b) { return a.capacity() < b.capacity(); });
      if (smallest->capacity() >= c) return;
      k.bytes -= smallest->capacity();
      drop.push_back(std::move(*smallest));
      k.buffers.erase(smallest);
    }
    k.bytes += c;
    k.buffers.push_back(std::move(buffer));
  }
}

size_t BufferRecycler::KeptBuffers() {
  Kept& k = State();
  std::lock_guard<std::mutex> lock(k.mu);
  return k.buffers.size();
}

size_t BufferRecycler::KeptBytes() {
  Kept& k = State();
  std::lock_guard<std::mutex> lock(k.mu);
  return k.bytes;
}

}  // namespace dreamdb
