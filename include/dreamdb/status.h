// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Status and Result<T>: errors are values in the DreamDB core.
//
// The set of codes is closed and small; each code implies a different action for the
// caller (spec/07-errors.md is the normative table: code -> meaning -> caller action ->
// Python exception -> CLI exit code -> HTTP status). Never add a code without adding its
// row to that table.
//
// Thread safety: Status and Result<T> are values; distinct objects may be used from
// distinct threads freely, a single object needs external synchronization like any
// standard value type.

#ifndef DREAMDB_STATUS_H_
#define DREAMDB_STATUS_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace dreamdb {

// Stable numeric values: they are printed by the CLI (--json "code") and mapped by the
// Python bindings. Never renumber.
enum class StatusCode : int {
  kOk = 0,
  // The request is malformed: bad name, bad URI, bad argument. Fix the input; retrying
  // the same request fails the same way.
  kInvalidArgument = 1,
  // The named object, ref or dataset does not exist.
  kNotFound = 2,
  // A create-if-absent target already exists (ref create, snapshot label).
  kAlreadyExists = 3,
  // A compare-and-swap lost: the ref moved since it was read. Re-read, rebase, retry.
  kConflict = 4,
  // Stored or supplied bytes are invalid: hash mismatch, malformed or non-canonical
  // CBOR, truncated object. Do not retry; restore from a replica or report.
  kCorrupt = 5,
  // A transient failure (timeout, connection reset, HTTP 5xx, lock contention). Retry
  // with backoff; the operation may or may not have been applied.
  kUnavailable = 6,
  // A permanent I/O failure of the backend (disk full, permission denied by the OS,
  // read-only file system). Needs an operator.
  kIoError = 7,
  // The data or request needs something this build does not support (newer format
  // version, unknown object kind, unsupported feature). Upgrade.
  kUnsupported = 8,
  // The caller is not allowed to do this (read-only store, missing token).
  kPermissionDenied = 9,
  // A bug in DreamDB: an invariant failed. Report it.
  kInternal = 10,
};

// Returns the stable snake_case name of a code, e.g. "not_found".
std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  // OK status. Cheap: no allocation.
  Status() noexcept = default;
  Status(StatusCode code, std::string message);

  static Status Ok() { return Status(); }

  bool ok() const { return state_ == nullptr; }
  StatusCode code() const { return state_ ? state_->code : StatusCode::kOk; }
  // The message names what was wrong; empty for OK.
  const std::string& message() const;

  // "not_found: ref 'main' does not exist"
  std::string ToString() const;

  // Returns a copy whose message is "<context>: <message>". OK stays OK.
  Status WithContext(std::string_view context) const;

  bool operator==(const Status& other) const {
    return code() == other.code() && message() == other.message();
  }

 private:
  struct State {
    StatusCode code;
    std::string message;
  };
  std::shared_ptr<const State> state_;  // null when OK; immutable so copies may share
};

Status InvalidArgument(std::string message);
Status NotFound(std::string message);
Status AlreadyExists(std::string message);
Status Conflict(std::string message);
Status Corrupt(std::string message);
Status Unavailable(std::string message);
Status IoError(std::string message);
Status Unsupported(std::string message);
Status PermissionDenied(std::string message);
Status Internal(std::string message);

// Result<T> holds either a T or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  // REQUIRES: !status.ok()
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (std::get<Status>(v_).ok()) v_ = Status(StatusCode::kInternal, "Result from OK status");
  }
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  template <typename U, typename = std::enable_if_t<std::is_convertible_v<U&&, T> &&
                                                    !std::is_same_v<std::decay_t<U>, T> &&
                                                    !std::is_same_v<std::decay_t<U>, Status>>>
  Result(U&& value) : v_(T(std::forward<U>(value))) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return std::holds_alternative<T>(v_); }
  // OK when a value is held.
  Status status() const { return ok() ? Status() : std::get<Status>(v_); }

  // REQUIRES: ok()
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  T value_or(T fallback) const& { return ok() ? std::get<T>(v_) : std::move(fallback); }

 private:
  std::variant<Status, T> v_;
};

}  // namespace dreamdb

#define DREAMDB_CONCAT_INNER_(a, b) a##b
#define DREAMDB_CONCAT_(a, b) DREAMDB_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` (a Status) is not OK.
#define RETURN_IF_ERROR(expr)                          \
  do {                                                 \
    ::dreamdb::Status dreamdb_status_ = (expr);        \
    if (!dreamdb_status_.ok()) return dreamdb_status_; \
  } while (0)

// ASSIGN_OR_RETURN(auto x, Foo()); evaluates a Result<T>, returns its Status on error,
// otherwise moves the value into `lhs`.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(DREAMDB_CONCAT_(dreamdb_result_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                           \
  if (!tmp.ok()) return tmp.status();          \
  lhs = std::move(tmp).value()

#endif  // DREAMDB_STATUS_H_
