// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Scalar filter predicates (spec/21-spatial-index.md §7.3): checked against a schema and
// evaluated on one cell. Used by vector search filters and by `dreamdb serve`'s record
// pages, so both filter with the same rules.
#include <algorithm>
#include <cmath>
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

// ---------------------------------------------------------------------------------------
// Parsing predicates from text (the CLI's --where, Python's where=)

std::string_view PredicateOpName(Predicate::Op op) {
  switch (op) {
    case Predicate::Op::kEq:
      return "==";
    case Predicate::Op::kNe:
      return "!=";
    case Predicate::Op::kLt:
      return "<";
    case Predicate::Op::kLe:
      return "<=";
    case Predicate::Op::kGt:
      return ">";
    case Predicate::Op::kGe:
      return ">=";
    case Predicate::Op::kIn:
      return "in";
  }
  return "?";
}

namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

Result<ScalarValue> ParseValue(std::string_view t, std::string_view whole) {
  t = Trim(t);
  if (t.empty()) return InvalidArgument("filter " + Quote(whole) + ": a value is missing");
  if (t.size() >= 2 && (t.front() == '\'' || t.front() == '"') && t.back() == t.front()) {
    return ScalarValue(std::string(t.substr(1, t.size() - 2)));
  }
  if (t == "true") return ScalarValue(true);
  if (t == "false") return ScalarValue(false);
  std::string s(t);
  char* end = nullptr;
  errno = 0;
  long long i = std::strtoll(s.c_str(), &end, 10);
  if (errno == 0 && end == s.c_str() + s.size()) return ScalarValue(static_cast<int64_t>(i));
  errno = 0;
  double d = std::strtod(s.c_str(), &end);
  if (errno == 0 && end == s.c_str() + s.size() && std::isfinite(d)) return ScalarValue(d);
  for (char c : t) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' ||
          c == '/' || c == ':')) {
      return InvalidArgument("filter " + Quote(whole) + ": cannot read value " + Quote(t) +
                             " (quote text values)");
    }
  }
  return ScalarValue(std::string(t));
}

}  // namespace

Result<Predicate> ParsePredicate(std::string_view text) {
  std::string_view t = Trim(text);
  size_t i = 0;
  while (i < t.size() && (std::isalnum(static_cast<unsigned char>(t[i])) || t[i] == '_')) ++i;
  Predicate p;
  p.field = std::string(t.substr(0, i));
  if (p.field.empty()) {
    return InvalidArgument("filter " + Quote(text) +
                           ": expected FIELD OP VALUE, e.g. \"label == 3\"");
  }
  std::string_view rest = Trim(t.substr(i));
  static const std::pair<std::string_view, Predicate::Op> kOps[] = {
      {"==", Predicate::Op::kEq}, {"!=", Predicate::Op::kNe}, {"<=", Predicate::Op::kLe},
      {">=", Predicate::Op::kGe}, {"<", Predicate::Op::kLt},  {">", Predicate::Op::kGt},
      {"=", Predicate::Op::kEq}};
  bool found = false;
  for (const auto& [name, op] : kOps) {
    if (rest.starts_with(name)) {
      p.op = op;
      rest.remove_prefix(name.size());
      found = true;
      break;
    }
  }
  if (!found && (rest.starts_with("in ") || rest.starts_with("in("))) {
    p.op = Predicate::Op::kIn;
    rest = Trim(rest.substr(2));
    if (rest.size() < 2 || rest.front() != '(' || rest.back() != ')') {
      return InvalidArgument("filter " + Quote(text) + ": 'in' needs a list like (1, 2, 3)");
    }
    rest = rest.substr(1, rest.size() - 2);
    // Split on commas outside quotes.
    size_t b = 0;
    char quote = 0;
    for (size_t k = 0; k <= rest.size(); ++k) {
      char c = k < rest.size() ? rest[k] : ',';
      if (quote != 0) {
        if (c == quote) quote = 0;
        continue;
      }
      if (c == '\'' || c == '"') {
        quote = c;
      } else if (c == ',') {
        ASSIGN_OR_RETURN(ScalarValue v, ParseValue(rest.substr(b, k - b), text));
        p.values.push_back(std::move(v));
        b = k + 1;
      }
    }
    return p;
  }
  if (!found) {
    return InvalidArgument("filter " + Quote(text) +
                           ": expected an operator (==, !=, <, <=, >, >=, in) after " +
                           Quote(p.field));
  }
  ASSIGN_OR_RETURN(ScalarValue v, ParseValue(rest, text));
  p.values.push_back(std::move(v));
  return p;
}

}  // namespace dreamdb
