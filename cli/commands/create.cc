// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb create NAME --schema FILE|- [--message M]
#include "cli/blob_files.h"
#include "cli/dataset_util.h"

namespace dreamdb::cli {
namespace {

Status Run(Invocation& inv) {
  const std::string& name = inv.Arg("NAME");
  std::string path(*inv.FlagValue("--schema"));
  ASSIGN_OR_RETURN(Bytes text, ReadCommandLineFile(path, "--schema", kMaxSchemaFileBytes));
  auto schema = Schema::FromJson(text);
  if (!schema.ok()) {
    return schema.status().WithContext(path == "-" ? "--schema (standard input)"
                                                   : "--schema " + path);
  }
  ASSIGN_OR_RETURN(std::shared_ptr<Store> store, SharedStore(inv));
  ASSIGN_OR_RETURN(auto ds, Dataset::Create(store, name, *schema, CommitOptionsFrom(inv)));
  std::string head = ds->head().ToString();
  if (inv.json()) {
    inv.PrintJson(JsonObject()
                      .Add("dataset", name)
                      .Add("branch", "main")
                      .Add("head", head)
                      .AddRaw("schema", ds->schema().ToJson()));
  } else {
    inv.PrintLine(name + " " + head);
  }
  return Status::Ok();
}

const Registrar kRegistrar({
    .path = "create",
    .summary = "Create a dataset from a JSON schema",
    .description =
        "The schema is JSON (spec/10-schema.md §5), e.g.\n"
        "  {\"fields\": [{\"name\": \"image\", \"type\": \"blob\", \"mime\": \"image/png\"},\n"
        "              {\"name\": \"emb\", \"type\": \"embedding\", \"dim\": 768},\n"
        "              {\"name\": \"label\", \"type\": \"categorical\", \"optional\": true}]}\n"
        "Creates branch main (and the store, if it does not exist). An existing dataset of\n"
        "that name is already_exists (exit 5).\n"
        "Text: '<name> <head manifest id>'. JSON: {\"dataset\", \"branch\", \"head\", \"schema\"}.",
    .positionals = {{.name = "NAME", .help = "the dataset name ([A-Za-z0-9._-], 1..100 chars)"}},
    .flags = {{.name = "--schema",
               .value_name = "FILE",
               .help = "the schema as JSON ('-' = standard input; a regular file, at most 16 MiB)",
               .required = true},
              kMessageFlag},
    .run = Run,
    .creates_store = true,
});

}  // namespace
}  // namespace dreamdb::cli
