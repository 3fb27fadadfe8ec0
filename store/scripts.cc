#include "store/scripts.h"

#include <openssl/evp.h>

#include <algorithm>

#include "common/check.h"
#include "common/escape.h"
#include "store/lua_sources.h"

namespace dropq {
namespace {

std::string Sha1Hex(std::string_view s) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(s.data(), s.size(), md, &len, EVP_sha1(), nullptr);
  return HexBytes(std::string_view(reinterpret_cast<const char*>(md), len));
}

std::string_view Source(std::string_view name) {
  for (size_t i = 0; i < kLuaSourceCount; ++i) {
    if (kLuaSources[i].name == name) return kLuaSources[i].text;
  }
  // The build embeds every file of store/lua/: a missing one is a build bug.
  DROPQ_CHECK(false && "no such store/lua script");
  return {};
}

Script Make(std::string_view name) {
  std::string_view lib = Source("lib");
  Script s;
  s.name = name;
  s.body.reserve(lib.size() + 1 + Source(name).size());
  s.body.append(lib);
  if (!lib.empty() && lib.back() != '\n') s.body.push_back('\n');
  s.lib_lines = static_cast<int>(std::count(s.body.begin(), s.body.end(), '\n'));
  s.body.append(Source(name));
  s.sha1 = Sha1Hex(s.body);
  return s;
}

}  // namespace

std::string DescribeScriptError(const Script& script, std::string_view message) {
  constexpr std::string_view kTag = "user_script:";
  std::string out;
  size_t at = 0;
  while (true) {
    const size_t hit = message.find(kTag, at);
    if (hit == std::string_view::npos) break;
    size_t end = hit + kTag.size();
    int line = 0;
    while (end < message.size() && message[end] >= '0' && message[end] <= '9' && line < 1000000) {
      line = line * 10 + (message[end] - '0');
      ++end;
    }
    out.append(message.substr(at, hit - at));
    if (end == hit + kTag.size()) {  // no line number follows
      out.append(kTag);
    } else if (line <= script.lib_lines) {
      out.append("store/lua/lib.lua:" + std::to_string(line));
    } else {
      out.append("store/lua/" + std::string(script.name) +
                 ".lua:" + std::to_string(line - script.lib_lines));
    }
    at = end;
  }
  out.append(message.substr(at));
  return out;
}

#define DROPQ_SCRIPT(fn, name)          \
  const Script& fn() {                  \
    static const Script s = Make(name); \
    return s;                           \
  }
DROPQ_SCRIPT(EnqueueScript, "enqueue")
DROPQ_SCRIPT(ClaimScript, "claim")
DROPQ_SCRIPT(ThrottleScript, "throttle")
DROPQ_SCRIPT(StartedScript, "started")
DROPQ_SCRIPT(RecordScript, "record")
DROPQ_SCRIPT(AckScript, "ack")
DROPQ_SCRIPT(ReleaseScript, "release")
DROPQ_SCRIPT(RequeueScript, "requeue")
DROPQ_SCRIPT(ForgetScript, "forget")
DROPQ_SCRIPT(StatesScript, "states")
DROPQ_SCRIPT(PromoteScript, "promote")
DROPQ_SCRIPT(RetryPrepareScript, "retry_prepare")
DROPQ_SCRIPT(RetryCommitScript, "retry_commit")
DROPQ_SCRIPT(RetryAbortScript, "retry_abort")
DROPQ_SCRIPT(PurgeScript, "purge")
DROPQ_SCRIPT(DisposeFailedScript, "dispose_failed")
DROPQ_SCRIPT(UpgradeScript, "upgrade")
DROPQ_SCRIPT(RatesScript, "rates")
#undef DROPQ_SCRIPT

}  // namespace dropq
