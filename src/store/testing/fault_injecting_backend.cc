// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
#include "src/store/testing/fault_injecting_backend.h"

#include <string>
#include <utility>

namespace dreamdb {

bool IsMutating(FaultOp op) {
  switch (op) {
    case FaultOp::kPut:
    case FaultOp::kDeleteObject:
    case FaultOp::kCreateRef:
    case FaultOp::kCompareAndSwap:
    case FaultOp::kDeleteRef:
      return true;
    default:
      return false;
  }
}

std::string_view FaultOpName(FaultOp op) {
  switch (op) {
    case FaultOp::kPut:
      return "put";
    case FaultOp::kGet:
      return "get";
    case FaultOp::kGetRange:
      return "get_range";
    case FaultOp::kHead:
      return "head";
    case FaultOp::kListObjects:
      return "list_objects";
    case FaultOp::kDeleteObject:
      return "delete_object";
    case FaultOp::kReadRef:
      return "read_ref";
    case FaultOp::kCreateRef:
      return "create_ref";
    case FaultOp::kCompareAndSwap:
      return "compare_and_swap";
    case FaultOp::kDeleteRef:
      return "delete_ref";
    case FaultOp::kListRefs:
      return "list_refs";
    case FaultOp::kAny:
      return "any";
  }
  return "?";
}

FaultInjectingBackend::FaultInjectingBackend(std::shared_ptr<ObjectBackend> objects,
                                             std::shared_ptr<RefBackend> refs)
    : objects_(std::move(objects)), refs_(std::move(refs)) {}

void FaultInjectingBackend::Inject(const Fault& fault) {
  std::lock_guard lock(mu_);
  rules_.push_back(Rule{fault});
}

void FaultInjectingBackend::FailNthCall(uint64_t nth, StatusCode code, FaultOp op) {
  Inject(Fault{op, nth, 1, Action::kFail, code});
}

void FaultInjectingBackend::LoseResponseOfNthCall(uint64_t nth, FaultOp op) {
  Inject(Fault{op, nth, 1, Action::kLoseResponse, StatusCode::kUnavailable});
}

void FaultInjectingBackend::CrashAfterMutations(uint64_t n) {
  std::lock_guard lock(mu_);
  crash_armed_ = true;
  mutations_left_ = n;
  crashed_ = false;
}

void FaultInjectingBackend::Restart() {
  std::lock_guard lock(mu_);
  crash_armed_ = false;
  crashed_ = false;
}

void FaultInjectingBackend::ClearFaults() {
  std::lock_guard lock(mu_);
  rules_.clear();
  crash_armed_ = false;
  crashed_ = false;
}

bool FaultInjectingBackend::crashed() const {
  std::lock_guard lock(mu_);
  return crashed_;
}

uint64_t FaultInjectingBackend::calls(FaultOp op) const {
  std::lock_guard lock(mu_);
  if (op != FaultOp::kAny) return calls_[static_cast<int>(op)];
  uint64_t total = 0;
  for (uint64_t n : calls_) total += n;
  return total;
}

uint64_t FaultInjectingBackend::injected() const {
  std::lock_guard lock(mu_);
  return injected_;
}

FaultInjectingBackend::Decision FaultInjectingBackend::Decide(FaultOp op) {
  std::lock_guard lock(mu_);
  ++calls_[static_cast<int>(op)];
  const std::string what = "injected fault: " + std::string(FaultOpName(op)) + " call " +
                           std::to_string(calls_[static_cast<int>(op)]);
  if (crashed_) {
    ++injected_;
    return {false, Unavailable(what + " refused: the backend has crashed")};
  }
  Decision decision;
  bool decided = false;
  for (Rule& rule : rules_) {
    if (rule.fault.op != FaultOp::kAny && rule.fault.op != op) continue;
    uint64_t n = ++rule.seen;
    bool fires =
        n >= rule.fault.nth && (rule.fault.times == 0 || n < rule.fault.nth + rule.fault.times);
    if (!fires || decided) continue;
    decided = true;
    ++injected_;
    if (rule.fault.action == Action::kFail) {
      decision = {false, Status(rule.fault.code, what + " failed")};
    } else {
      decision = {true, Unavailable(what + ": response lost after the call was applied")};
    }
  }
  if (decision.apply && IsMutating(op) && crash_armed_) {
    if (mutations_left_ == 0) {
      crashed_ = true;
      ++injected_;
      return {false, Unavailable(what + " refused: the backend has crashed")};
    }
    --mutations_left_;
  }
  return decision;
}

template <typename R, typename F>
R FaultInjectingBackend::Run(FaultOp op, F&& call) {
  Decision d = Decide(op);
  if (!d.apply) return d.injected;
  R result = call();
  if (!d.injected.ok()) return d.injected;
  return result;
}

Status FaultInjectingBackend::Put(const ObjectId& id, ByteView data) {
  bool known;
  {
    std::lock_guard lock(mu_);
    known = acknowledged_.count(id) > 0;
  }
  // An object stored before this call counts as acknowledged: a failed Put of it must not
  // make DropUnacknowledgedWrites delete it.
  bool existed = !known && objects_->Head(id).ok();
  Status st = Run<Status>(FaultOp::kPut, [&] { return objects_->Put(id, data); });
  std::lock_guard lock(mu_);
  if (existed) acknowledged_.insert(id);
  if (st.ok()) {
    acknowledged_.insert(id);
    unacknowledged_.erase(id);
  } else if (!acknowledged_.count(id)) {
    unacknowledged_.insert(id);
  }
  return st;
}

Result<Bytes> FaultInjectingBackend::Get(const ObjectId& id) {
  return Run<Result<Bytes>>(FaultOp::kGet, [&] { return objects_->Get(id); });
}

Result<Bytes> FaultInjectingBackend::GetRange(const ObjectId& id, uint64_t offset,
                                              uint64_t length) {
  return Run<Result<Bytes>>(FaultOp::kGetRange,
                            [&] { return objects_->GetRange(id, offset, length); });
}

Result<ObjectInfo> FaultInjectingBackend::Head(const ObjectId& id) {
  return Run<Result<ObjectInfo>>(FaultOp::kHead, [&] { return objects_->Head(id); });
}

Status FaultInjectingBackend::List(std::string_view shard_prefix, const ObjectVisitor& visit) {
  return Run<Status>(FaultOp::kListObjects, [&] { return objects_->List(shard_prefix, visit); });
}

Status FaultInjectingBackend::Delete(const ObjectId& id) {
  return Run<Status>(FaultOp::kDeleteObject, [&] { return objects_->Delete(id); });
}

Result<RefValue> FaultInjectingBackend::Read(std::string_view name) {
  return Run<Result<RefValue>>(FaultOp::kReadRef, [&] { return refs_->Read(name); });
}

Status FaultInjectingBackend::Create(std::string_view name, const ObjectId& target) {
  return Run<Status>(FaultOp::kCreateRef, [&] { return refs_->Create(name, target); });
}

Status FaultInjectingBackend::CompareAndSwap(std::string_view name, const ObjectId& expected,
                                             const ObjectId& desired) {
  return Run<Status>(FaultOp::kCompareAndSwap,
                     [&] { return refs_->CompareAndSwap(name, expected, desired); });
}

Status FaultInjectingBackend::Delete(std::string_view name, const ObjectId& expected) {
  return Run<Status>(FaultOp::kDeleteRef, [&] { return refs_->Delete(name, expected); });
}

Status FaultInjectingBackend::List(std::string_view prefix, const RefVisitor& visit) {
  return Run<Status>(FaultOp::kListRefs, [&] { return refs_->List(prefix, visit); });
}

Status FaultInjectingBackend::DropUnacknowledgedWrites() {
  std::set<ObjectId> drop;
  {
    std::lock_guard lock(mu_);
    drop.swap(unacknowledged_);
  }
  Status first;
  for (const ObjectId& id : drop) {
    Status st = objects_->Delete(id);
    if (!st.ok() && first.ok()) first = st;
  }
  return first;
}

}  // namespace dreamdb
