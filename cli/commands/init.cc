// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb init
//
// Creates an empty store at --store (the explicit way to make one: every command that
// only reads refuses a missing store instead of creating it).
#include "cli/cli.h"
#include "dreamdb/quote.h"

namespace dreamdb::cli {
namespace {

Status Run(Invocation& inv) {
  // Ask first without creating, so the answer can say whether this run made the store.
  StoreOptions probe;
  probe.open_mode = StoreOpenMode::kMustExist;
  auto existing = Store::Open(inv.global().store_uri, probe);
  bool created = false;
  if (!existing.ok()) {
    if (existing.status().code() != StatusCode::kNotFound) {
      return existing.status().WithContext("opening store " +
                                           Quote(RedactStoreUri(inv.global().store_uri), 200));
    }
    created = true;
  }
  ASSIGN_OR_RETURN(Store * store, inv.store());
  if (inv.json()) {
    inv.PrintJson(JsonObject().Add("store", store->uri()).Add("created", created));
  } else {
    inv.PrintLine((created ? "created an empty store at " : "a store already exists at ") +
                  store->uri());
  }
  return Status::Ok();
}

const Registrar kRegistrar({
    .path = "init",
    .summary = "Create an empty store (a no-op if one exists)",
    .description =
        "Creates the store named by --store ($DREAMDB_STORE, else ./.dreamdb) if it does not\n"
        "exist. Commands that only read never create a store: they report a missing one as\n"
        "not_found (exit 4). A directory that is not empty and holds no store is refused\n"
        "(exit 3).\n"
        "Text: one line naming the store. JSON: {\"store\", \"created\"}.",
    .run = Run,
    .creates_store = true,
});

}  // namespace
}  // namespace dreamdb::cli
