// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// The JSON of sweeps (dreamdb/sweep.h), shared by `dreamdb sweep --json` and the
// `dreamdb serve` sweep endpoints (spec/30-http-api.md §3.11), so both print one shape.
//
// Thread safety: pure functions.

#ifndef DREAMDB_CLI_SWEEP_JSON_H_
#define DREAMDB_CLI_SWEEP_JSON_H_

#include <functional>
#include <map>
#include <string>

#include "cli/cli.h"
#include "dreamdb/sweep.h"

namespace dreamdb::cli {

// A number as JSON (non-finite values as the strings "nan", "inf", "-inf").
std::string JsonNumber(double v);
// Run parameters as a JSON object of strings.
std::string SweepParamsJson(const std::map<std::string, std::string>& params);
// {"sweep", "record_branch", "from", "source_branch", "source_manifest", "prefix",
//  "metric", "goal", "created", "runs": [{"run", "branch", "params"}]}
std::string SweepInfoJson(const SweepInfo& info);
// {"sweep", "metric", "goal", "runs": [{"run", "branch", "value", "rank", "source",
//  "values", "nulls", "nans", "note", ...extend}], "best", "worst"}; `extend` (optional)
// adds keys to each run's object.
std::string SweepSummaryJson(
    const SweepSummary& s,
    const std::function<void(const SweepRunResult&, JsonObject&)>& extend = {});

}  // namespace dreamdb::cli

#endif  // DREAMDB_CLI_SWEEP_JSON_H_
