// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// `dreamdb`: the command-line tool. Commands live in cli/commands/, one per file.
#include <cstdlib>

#include "cli/cli.h"

int main(int argc, char** argv) {
  return dreamdb::cli::Main(argc, argv, std::getenv("DREAMDB_STORE"));
}
