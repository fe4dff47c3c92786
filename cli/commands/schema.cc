// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb schema NAME [--at REF]
// dreamdb schema NAME add-field --name N --type T [--dim D] [--mime M] [--dtype DT --shape 2,3]
// dreamdb schema NAME drop-field FIELD
#include "cli/dataset_util.h"
#include "dreamdb/quote.h"

namespace dreamdb::cli {
namespace {

constexpr std::string_view kAddFlags[] = {"--name", "--type",  "--dim",
                                          "--mime", "--dtype", "--shape"};

Result<uint32_t> ParseU32(std::string_view what, std::string_view text) {
  ASSIGN_OR_RETURN(uint64_t v, ParseU64(what, text));
  if (v > UINT32_MAX)
    return InvalidArgument(std::string(what) + ": " + Quote(text) + " is too large");
  return static_cast<uint32_t>(v);
}

// The field --name/--type/... describe; always optional (existing records have no value).
Result<FieldSpec> FieldFromFlags(Invocation& inv) {
  auto name = inv.FlagValue("--name");
  auto type = inv.FlagValue("--type");
  if (!name || !type) return inv.Usage("add-field needs --name N and --type T");
  FieldSpec f;
  f.name = std::string(*name);
  f.optional = true;
  ASSIGN_OR_RETURN(f.type, ParseFieldType(*type));
  auto only_for = [&](std::string_view flag, FieldType t) -> Status {
    if (inv.HasFlag(flag) && f.type != t) {
      return InvalidArgument(std::string(flag) + " applies to " + std::string(FieldTypeName(t)) +
                             " fields only, not " + std::string(FieldTypeName(f.type)));
    }
    return Status::Ok();
  };
  RETURN_IF_ERROR(only_for("--dim", FieldType::kEmbedding));
  RETURN_IF_ERROR(only_for("--mime", FieldType::kBlob));
  RETURN_IF_ERROR(only_for("--dtype", FieldType::kArray));
  RETURN_IF_ERROR(only_for("--shape", FieldType::kArray));
  switch (f.type) {
    case FieldType::kBlob:
      f.mime = std::string(inv.FlagValue("--mime").value_or("application/octet-stream"));
      break;
    case FieldType::kEmbedding: {
      if (!inv.HasFlag("--dim")) return InvalidArgument("an embedding field needs --dim D");
      ASSIGN_OR_RETURN(f.dim, ParseU32("--dim", *inv.FlagValue("--dim")));
      break;
    }
    case FieldType::kArray: {
      if (!inv.HasFlag("--dtype") || !inv.HasFlag("--shape")) {
        return InvalidArgument("an array field needs --dtype DT and --shape D1,D2,...");
      }
      ASSIGN_OR_RETURN(f.dtype, ParseDType(*inv.FlagValue("--dtype")));
      ASSIGN_OR_RETURN(std::vector<std::string> dims,
                       ParseFieldList("--shape", *inv.FlagValue("--shape")));
      for (const std::string& d : dims) {
        ASSIGN_OR_RETURN(uint32_t n, ParseU32("--shape", d));
        f.shape.push_back(n);
      }
      break;
    }
    default:
      break;
  }
  return f;
}

void PrintSchema(Invocation& inv, const std::string& name, const Dataset& ds, bool changed) {
  if (!changed) {
    inv.PrintLine(ds.schema().ToJson());  // the JSON is the answer, with or without --json
    return;
  }
  if (inv.json()) {
    inv.PrintJson(JsonObject()
                      .Add("dataset", name)
                      .Add("branch", ds.branch())
                      .Add("head", ds.head().ToString())
                      .AddRaw("schema", ds.schema().ToJson()));
  } else {
    inv.PrintLine("schema of " + Quote(name) + " is now version " +
                  std::to_string(ds.schema().version()) + "; head " + ds.head().ToString());
  }
}

Status Run(Invocation& inv) {
  const std::string& name = inv.Arg("NAME");
  const std::vector<std::string>& words = inv.Args("ACTION");
  std::string action = words.empty() ? "" : words[0];
  if (action != "add-field") {
    for (std::string_view flag : kAddFlags) {
      if (inv.HasFlag(flag))
        return inv.Usage(std::string(flag) + " is for 'schema NAME add-field'");
    }
  }
  if (action.empty()) {
    if (inv.HasFlag("--branch") || inv.HasFlag("--message")) {
      return inv.Usage("--branch and --message are for add-field and drop-field");
    }
    ASSIGN_OR_RETURN(auto ds, OpenForRead(inv, name));
    PrintSchema(inv, name, *ds, false);
    return Status::Ok();
  }
  if (inv.HasFlag("--at")) return inv.Usage("--at is for showing a schema; changes go to --branch");
  Result<Schema> next = InvalidArgument("");
  std::unique_ptr<Dataset> ds;
  if (action == "add-field") {
    if (words.size() != 1) return inv.Usage("unexpected argument " + Quote(words[1]));
    ASSIGN_OR_RETURN(FieldSpec field, FieldFromFlags(inv));
    ASSIGN_OR_RETURN(ds, OpenForWrite(inv, name));
    next = ds->schema().WithAddedField(field);
  } else if (action == "drop-field") {
    if (words.size() != 2) {
      return inv.Usage(words.size() < 2 ? "drop-field needs the field name"
                                        : "unexpected argument " + Quote(words[2]));
    }
    ASSIGN_OR_RETURN(ds, OpenForWrite(inv, name));
    next = ds->schema().WithDroppedField(words[1]);
  } else {
    return inv.Usage("unknown schema action " + Quote(action) +
                     " (expected add-field or drop-field)");
  }
  if (!next.ok()) return next.status();
  std::string message =
      action + " " + (action == "add-field" ? std::string(*inv.FlagValue("--name")) : words[1]);
  RETURN_IF_ERROR(ds->EvolveSchema(*next, CommitOptionsFrom(inv, message)).status());
  PrintSchema(inv, name, *ds, true);
  return Status::Ok();
}

const Registrar kRegistrar({
    .path = "schema",
    .summary = "Show or evolve a dataset's schema",
    .description =
        "'schema NAME' prints the schema as JSON (spec/10-schema.md §5), with or without\n"
        "--json. 'schema NAME add-field --name N --type T ...' adds an optional field\n"
        "(existing records read it as null); 'schema NAME drop-field N' drops one (its name\n"
        "can never be reused). Each change is one commit on --branch; text: a line with the\n"
        "new version, JSON: {\"dataset\", \"branch\", \"head\", \"schema\"}.\n"
        "Types: int64 float64 bool string categorical timestamp blob (--mime) embedding\n"
        "(--dim) array (--dtype u8|i8|u16|i16|u32|i32|u64|i64|f32|f64 --shape 2,3).",
    .positionals = {{.name = "NAME", .help = "the dataset"},
                    {.name = "ACTION",
                     .help = "add-field, or drop-field FIELD (none: show the schema)",
                     .optional = true,
                     .repeated = true}},
    .flags = {kAtFlag,
              {.name = "--name", .value_name = "N", .help = "add-field: the field name"},
              {.name = "--type", .value_name = "T", .help = "add-field: the field type"},
              {.name = "--dim", .value_name = "D", .help = "add-field: embedding dimension"},
              {.name = "--mime", .value_name = "M", .help = "add-field: blob MIME type"},
              {.name = "--dtype", .value_name = "DT", .help = "add-field: array element type"},
              {.name = "--shape", .value_name = "D1,D2", .help = "add-field: array shape"},
              kBranchFlag,
              kMessageFlag},
    .run = Run,
});

}  // namespace
}  // namespace dreamdb::cli
