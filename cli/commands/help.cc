// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb help [COMMAND...]
#include <cstdio>

#include "cli/cli.h"

namespace dreamdb::cli {
namespace {

Status Run(Invocation& inv) {
  std::string path;
  for (const std::string& word : inv.Args("COMMAND")) {
    if (!path.empty()) path += " ";
    path += word;
  }
  auto text = HelpText(path);
  if (!text.ok()) return inv.Usage(text.status().message());
  std::fputs(text->c_str(), stdout);
  return Status::Ok();
}

const Registrar kRegistrar({
    .path = "help",
    .summary = "Show help for a command",
    .description = "Help is text even with --json.",
    .positionals = {{.name = "COMMAND",
                     .help = "command words, e.g. 'object put'",
                     .optional = true,
                     .repeated = true}},
    .run = Run,
});

}  // namespace
}  // namespace dreamdb::cli
