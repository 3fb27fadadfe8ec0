// libFuzzer target: any bytes as a config file. ParseConfig() must return a
// Config or an Errc::kConfig error whose message is one line naming the file;
// never crash, hang, leak or let an exception out (yaml-cpp throws by design).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto cfg = dropq::ParseConfig(text, "fuzz.yaml");
  if (cfg.ok()) {
    if (cfg->queues.empty()) std::abort();  // a Config that exists is valid
    return 0;
  }
  const dropq::Error& e = cfg.error();
  if (e.code != dropq::Errc::kConfig) std::abort();
  if (e.what.rfind("fuzz.yaml", 0) != 0) std::abort();       // names the file
  if (e.what.find('\n') != std::string::npos) std::abort();  // one line
  if (e.what.find('\0') != std::string::npos) std::abort();  // printable with %s
  return 0;
}
