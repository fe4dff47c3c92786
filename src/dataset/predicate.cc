// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Scalar filter predicates (spec/21-spatial-index.md §7.3): checked against a schema and
// evaluated on one cell. Used by vector search filters and by `dreamdb serve`'s record
// pages, so both filter with the same rules.
#include <algorithm>
#include <string>
#include <variant>

#include "dreamdb/search.h"
#include "src/base/encoding.h"

namespace dreamdb {

Status CheckPredicate(const Schema& schema, const Predicate& p) {
  const FieldSpec* f = schema.Find(p.field);
  if (f == nullptr) {
    std::string known;
    for (const auto& k : schema.fields()) known += (known.empty() ? "" : ", ") + k.name;
    return InvalidArgument("filter: unknown field " + Quote(p.field) +
                           " (the schema has: " + known + ")");
  }
  if (p.values.empty() || (p.op != Predicate::Op::kIn && p.values.size() != 1)) {
    return InvalidArgument("filter on " + Quote(p.field) + ": " +
                           std::string(PredicateOpName(p.op)) + " needs " +
                           (p.op == Predicate::Op::kIn ? "one or more values" : "one value"));
  }
  for (const auto& v : p.values) {
    bool ok = false;
    switch (f->type) {
      case FieldType::kInt64:
      case FieldType::kTimestamp:
      case FieldType::kFloat64:
        ok = std::holds_alternative<int64_t>(v) || std::holds_alternative<double>(v);
        break;
      case FieldType::kBool:
        ok = std::holds_alternative<bool>(v) &&
             (p.op == Predicate::Op::kEq || p.op == Predicate::Op::kNe ||
              p.op == Predicate::Op::kIn);
        break;
      case FieldType::kString:
      case FieldType::kCategorical:
        ok = std::holds_alternative<std::string>(v);
        break;
      default:
        return InvalidArgument("filter on " + Quote(p.field) + ": " +
                               std::string(FieldTypeName(f->type)) +
                               " fields cannot be filtered (only int64, float64, bool, string, "
                               "categorical and timestamp)");
    }
    if (!ok) {
      return InvalidArgument("filter on " + Quote(p.field) + ": a " +
                             std::string(FieldTypeName(f->type)) +
                             " field cannot be compared with " +
                             std::string(PredicateOpName(p.op)) + " to that value");
    }
  }
  return Status::Ok();
}

namespace {

template <typename T>
bool Compare(Predicate::Op op, const T& a, const T& b) {
  switch (op) {
    case Predicate::Op::kEq:
    case Predicate::Op::kIn:
      return a == b;
    case Predicate::Op::kNe:
      return a != b;
    case Predicate::Op::kLt:
      return a < b;
    case Predicate::Op::kLe:
      return a <= b;
    case Predicate::Op::kGt:
      return a > b;
    case Predicate::Op::kGe:
      return a >= b;
  }
  return false;
}

bool MatchOne(const Predicate& p, const Column& col, uint64_t row, const ScalarValue& v) {
  switch (col.type()) {
    case FieldType::kInt64:
    case FieldType::kTimestamp: {
      int64_t x = col.Int64At(row);
      if (std::holds_alternative<int64_t>(v)) return Compare(p.op, x, std::get<int64_t>(v));
      return Compare(p.op, static_cast<double>(x), std::get<double>(v));
    }
    case FieldType::kFloat64: {
      double x = col.Float64At(row);
      double y = std::holds_alternative<int64_t>(v) ? static_cast<double>(std::get<int64_t>(v))
                                                    : std::get<double>(v);
      return Compare(p.op, x, y);
    }
    case FieldType::kBool:
      return Compare(p.op, col.BoolAt(row), std::get<bool>(v));
    case FieldType::kString:
    case FieldType::kCategorical:
      return Compare(p.op, col.BytesAt(row), std::string_view(std::get<std::string>(v)));
    default:
      return false;
  }
}

}  // namespace

bool PredicateMatches(const Predicate& p, const Column& col, uint64_t row) {
  if (!col.IsValid(row)) return false;
  if (p.op == Predicate::Op::kIn) {
    return std::any_of(p.values.begin(), p.values.end(),
                       [&](const ScalarValue& v) { return MatchOne(p, col, row, v); });
  }
  return MatchOne(p, col, row, p.values[0]);
}

}  // namespace dreamdb
