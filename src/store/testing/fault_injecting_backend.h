// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// FaultInjectingBackend: wraps an ObjectBackend and a RefBackend and makes chosen calls
// fail, the way storage fails in production (spec/05-backend.md §6, §10.3):
//   - fail the N-th call (of one kind or of any kind) with a chosen code, not applied;
//   - lose the response of the N-th call: the call is applied, then kUnavailable is
//     returned (a timeout after a conditional write succeeded on the server);
//   - crash after N mutating calls: later calls fail with kUnavailable, not applied,
//     until Restart();
//   - DropUnacknowledgedWrites(): delete every object whose Put did not return OK to the
//     caller, modelling writes that may or may not have persisted.
//
// Usage:
//   auto inner = NewMemoryBackends();
//   auto faults = std::make_shared<FaultInjectingBackend>(inner.objects, inner.refs);
//   auto store = Store::FromBackends("faulty://", faults, faults);
//   faults->FailNthCall(2, StatusCode::kUnavailable, FaultOp::kPut);
//
// Thread safety: every method may be called concurrently. Fault bookkeeping is guarded by
// one mutex; inner calls run outside it, so concurrency reaches the inner backends.

#ifndef DREAMDB_SRC_STORE_TESTING_FAULT_INJECTING_BACKEND_H_
#define DREAMDB_SRC_STORE_TESTING_FAULT_INJECTING_BACKEND_H_

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string_view>
#include <vector>

#include "dreamdb/store.h"

namespace dreamdb {

enum class FaultOp : int {
  kPut = 0,
  kGet,
  kGetRange,
  kHead,
  kListObjects,
  kDeleteObject,
  kReadRef,
  kCreateRef,
  kCompareAndSwap,
  kDeleteRef,
  kListRefs,
  kAny,  // matches every kind in fault rules; never the kind of a call
};
inline constexpr int kFaultOpCount = static_cast<int>(FaultOp::kAny);

// True for kPut, kDeleteObject, kCreateRef, kCompareAndSwap, kDeleteRef.
bool IsMutating(FaultOp op);
std::string_view FaultOpName(FaultOp op);

class FaultInjectingBackend final : public ObjectBackend, public RefBackend {
 public:
  enum class Action {
    kFail,          // return `code`, do not apply
    kLoseResponse,  // apply, then return kUnavailable
  };
  struct Fault {
    FaultOp op = FaultOp::kAny;  // which calls count towards `nth`
    uint64_t nth = 1;            // fire on the nth matching call from now (1-based)
    uint64_t times = 1;          // and on the following times-1 matching calls; 0 = forever
    Action action = Action::kFail;
    StatusCode code = StatusCode::kUnavailable;  // for kFail
  };

  FaultInjectingBackend(std::shared_ptr<ObjectBackend> objects, std::shared_ptr<RefBackend> refs);

  // Adds a rule. Rules are independent; the first rule (in insertion order) that fires on
  // a call decides it, and every matching rule counts the call.
  void Inject(const Fault& fault);
  void FailNthCall(uint64_t nth, StatusCode code, FaultOp op = FaultOp::kAny);
  void LoseResponseOfNthCall(uint64_t nth, FaultOp op = FaultOp::kAny);
  // After `n` more mutating calls have been let through, every call fails with
  // kUnavailable and is not applied, until Restart().
  void CrashAfterMutations(uint64_t n);
  // Ends a crash (the "process" restarted). Rules stay.
  void Restart();
  // Removes every rule and any pending or active crash.
  void ClearFaults();
  bool crashed() const;

  // Deletes (from the inner backend, bypassing faults) every object that some Put call
  // did not acknowledge with OK, unless another Put acknowledged it or it was stored
  // before its first Put through this wrapper. Returns the first error.
  Status DropUnacknowledgedWrites();

  // Calls made of `op` (kAny: of every kind), counted whether or not they failed.
  uint64_t calls(FaultOp op) const;
  // Faults fired so far (failures, lost responses and calls refused by a crash).
  uint64_t injected() const;

  // ObjectBackend.
  Status Put(const ObjectId& id, ByteView data) override;
  Result<Bytes> Get(const ObjectId& id) override;
  Result<Bytes> GetRange(const ObjectId& id, uint64_t offset, uint64_t length) override;
  Result<ObjectInfo> Head(const ObjectId& id) override;
  Status List(std::string_view shard_prefix, const ObjectVisitor& visit) override;
  Status Delete(const ObjectId& id) override;

  // RefBackend.
  Result<RefValue> Read(std::string_view name) override;
  Status Create(std::string_view name, const ObjectId& target) override;
  Status CompareAndSwap(std::string_view name, const ObjectId& expected,
                        const ObjectId& desired) override;
  Status Delete(std::string_view name, const ObjectId& expected) override;
  Status List(std::string_view prefix, const RefVisitor& visit) override;

 private:
  struct Rule {
    Fault fault;
    uint64_t seen = 0;  // matching calls so far
  };
  // What to do with one call, decided under mu_.
  struct Decision {
    bool apply = true;
    Status injected;  // non-OK: return this (after applying when apply is true)
  };
  Decision Decide(FaultOp op);
  // Applies `d` around `call`.
  template <typename R, typename F>
  R Run(FaultOp op, F&& call);

  const std::shared_ptr<ObjectBackend> objects_;
  const std::shared_ptr<RefBackend> refs_;

  mutable std::mutex mu_;
  std::vector<Rule> rules_;                      // guarded by mu_
  std::array<uint64_t, kFaultOpCount> calls_{};  // guarded by mu_
  uint64_t injected_ = 0;                        // guarded by mu_
  bool crash_armed_ = false;                     // guarded by mu_
  uint64_t mutations_left_ = 0;                  // guarded by mu_
  bool crashed_ = false;                         // guarded by mu_
  std::set<ObjectId> acknowledged_;              // guarded by mu_
  std::set<ObjectId> unacknowledged_;            // guarded by mu_
};

}  // namespace dreamdb

#endif  // DREAMDB_SRC_STORE_TESTING_FAULT_INJECTING_BACKEND_H_
