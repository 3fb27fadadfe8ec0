// dropqctl's --json output, read by the end-to-end tests. Kept apart from
// e2e_helpers.h so that the tests that never read JSON do not compile
// nlohmann/json.hpp.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "tests/support/dropq_env.h"

namespace dropq::test {

// Parses dropqctl's stdout as JSON; a discarded value (is_discarded()) if it
// is not JSON.
nlohmann::json ParseJson(const std::string& text);

// The per-queue object of `dropqctl status --json` for `queue`, or null.
nlohmann::json CtlStatus(DropqEnv& env, const std::string& queue);

}  // namespace dropq::test
