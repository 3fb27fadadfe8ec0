#include "tests/support/ctl_json.h"

namespace dropq::test {

nlohmann::json ParseJson(const std::string& text) {
  return nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
}

nlohmann::json CtlStatus(DropqEnv& env, const std::string& queue) {
  const CommandResult r = env.Ctl({"status", "--json"});
  if (r.status != 0) return nullptr;
  const nlohmann::json j = ParseJson(r.out);
  if (j.is_discarded() || !j.contains("queues") || !j["queues"].contains(queue)) return nullptr;
  return j["queues"][queue];
}

}  // namespace dropq::test
