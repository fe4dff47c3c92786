// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb retention set NAME --field F --keep-since DURATION
// dreamdb retention clear NAME --field F
// dreamdb retention show [NAME]
//
// Per-field retention rules (spec/06-refs.md §6.12): GC keeps a field's values in versions
// older than the window only where a branch, snapshot or lease targets the version.
#include "cli/dataset_util.h"
#include "dreamdb/gc.h"
#include "dreamdb/quote.h"

namespace dreamdb::cli {
namespace {

// "30d" for a whole number of days, else hours, minutes or seconds.
std::string Duration(int64_t ms) {
  const int64_t s = ms / 1000;
  if (s % 86400 == 0) return std::to_string(s / 86400) + "d";
  if (s % 3600 == 0) return std::to_string(s / 3600) + "h";
  if (s % 60 == 0) return std::to_string(s / 60) + "m";
  return std::to_string(s) + "s";
}

Status Set(Invocation& inv) {
  const std::string name = inv.Arg("NAME");
  RETURN_IF_ERROR(ValidateDatasetNameArg(name));
  const std::string field(*inv.FlagValue("--field"));
  ASSIGN_OR_RETURN(int64_t keep_ms, ParseDurationMs(*inv.FlagValue("--keep-since")));
  ASSIGN_OR_RETURN(Store * store, inv.store());
  RETURN_IF_ERROR(SetFieldRetention(*store, name, field, keep_ms));
  if (inv.json()) {
    inv.PrintJson(JsonObject()
                      .Add("dataset", name)
                      .Add("field", field)
                      .Add("keep_since_s", static_cast<uint64_t>(keep_ms / 1000)));
  } else {
    inv.PrintLine("retention of field " + Quote(field) + " of dataset " + Quote(name) +
                  ": versions older than " + Duration(keep_ms) +
                  " keep it only where a branch, snapshot or lease targets them (applied by "
                  "the next gc)");
  }
  return Status::Ok();
}

Status Clear(Invocation& inv) {
  const std::string name = inv.Arg("NAME");
  RETURN_IF_ERROR(ValidateDatasetNameArg(name));
  const std::string field(*inv.FlagValue("--field"));
  ASSIGN_OR_RETURN(Store * store, inv.store());
  RETURN_IF_ERROR(ClearFieldRetention(*store, name, field));
  if (inv.json()) {
    inv.PrintJson(JsonObject().Add("dataset", name).Add("field", field).Add("cleared", true));
  } else {
    inv.PrintLine("retention of field " + Quote(field) + " of dataset " + Quote(name) +
                  " cleared (values gc already reclaimed stay reclaimed)");
  }
  return Status::Ok();
}

Status Show(Invocation& inv) {
  const std::vector<std::string> names = inv.Args("NAME");
  const std::string name = names.empty() ? std::string() : names[0];
  if (!name.empty()) RETURN_IF_ERROR(ValidateDatasetNameArg(name));
  ASSIGN_OR_RETURN(Store * store, inv.store());
  ASSIGN_OR_RETURN(auto rules, ListFieldRetention(*store, name));
  for (const FieldRetentionRule& r : rules) {
    if (inv.json()) {
      inv.PrintJson(JsonObject()
                        .Add("dataset", r.dataset)
                        .Add("field", r.field)
                        .Add("keep_since_s", static_cast<uint64_t>(r.keep_since_ms / 1000))
                        .Add("ref", r.ref));
    } else {
      inv.PrintLine(r.dataset + " " + r.field + " keep-since " + Duration(r.keep_since_ms));
    }
  }
  return Status::Ok();
}

constexpr Flag kFieldFlag{
    .name = "--field", .value_name = "F", .help = "the field", .required = true};

const Registrar kSet({
    .path = "retention set",
    .summary = "Keep a field's values in old versions only where a ref pins them",
    .description =
        "Sets the per-field retention rule of field F (spec/06-refs.md §6.12): from the next\n"
        "gc on, versions of dataset NAME made more than DURATION ago keep F's values (its\n"
        "segments and spatial index) only when a branch, snapshot or live lease targets the\n"
        "version, or a version that does shares them; the other fields stay. Reading F in\n"
        "such a version then fails not_found naming the field and the version, and verify\n"
        "lists it as retained without F. Replaces an earlier rule of F. Stored as the ref\n"
        "NAME/retention/F/<seconds>. JSON: {\"dataset\", \"field\", \"keep_since_s\"}.",
    .positionals = {{.name = "NAME", .help = "the dataset"}},
    .flags = {kFieldFlag,
              {.name = "--keep-since",
               .value_name = "DURATION",
               .help = "keep F in versions younger than this (e.g. 30d, 12h; at least 1s)",
               .required = true}},
    .run = Set,
});

const Registrar kClear({
    .path = "retention clear",
    .summary = "Remove a field's retention rule",
    .description = "Values gc already reclaimed stay reclaimed (their markers remain).\n"
                   "JSON: {\"dataset\", \"field\", \"cleared\"}.",
    .positionals = {{.name = "NAME", .help = "the dataset"}},
    .flags = {kFieldFlag},
    .run = Clear,
});

const Registrar kShow({
    .path = "retention show",
    .summary = "List the per-field retention rules",
    .description = "One line per rule: dataset, field, window. JSON: one object per rule,\n"
                   "{\"dataset\", \"field\", \"keep_since_s\", \"ref\"}.",
    .positionals = {{.name = "NAME",
                     .help = "the dataset (default: every dataset)",
                     .optional = true}},
    .run = Show,
});

}  // namespace
}  // namespace dreamdb::cli
