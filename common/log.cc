#include "common/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <ctime>

#include "common/clock.h"
#include "common/escape.h"

namespace dropq {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};

bool StderrIsJournal() {
  static const bool journal = std::getenv("JOURNAL_STREAM") != nullptr;
  return journal;
}

}  // namespace

bool ParseLogLevel(std::string_view s, LogLevel* out) {
  if (s == "debug")
    *out = LogLevel::kDebug;
  else if (s == "info")
    *out = LogLevel::kInfo;
  else if (s == "warn")
    *out = LogLevel::kWarn;
  else if (s == "error")
    *out = LogLevel::kError;
  else
    return false;
  return true;
}

void SetLogLevel(LogLevel level) { g_level.store(static_cast<int>(level)); }

bool LogEnabled(LogLevel level) { return static_cast<int>(level) >= g_level.load(); }

void Log(LogLevel level, std::string_view event, std::initializer_list<LogField> fields) {
  if (!LogEnabled(level)) return;
  LogList(level, event, std::vector<LogField>(fields));
}

void LogList(LogLevel level, std::string_view event, const std::vector<LogField>& fields) {
  if (!LogEnabled(level)) return;
  static constexpr const char* kSyslog[] = {"<7>", "<6>", "<4>", "<3>"};
  static constexpr const char* kNames[] = {"debug", "info ", "warn ", "error"};
  const int li = static_cast<int>(level);
  std::string line;
  line.reserve(128);
  if (StderrIsJournal()) {
    line.append(kSyslog[li]);
  } else {
    const int64_t ms = NowUnixMs();
    const time_t secs = ms / 1000;
    struct tm tm;
    gmtime_r(&secs, &tm);
    char buf[40];
    const size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    line.append(buf, n);
    char frac[8];
    snprintf(frac, sizeof frac, ".%03dZ ", static_cast<int>(ms % 1000));
    line.append(frac);
    line.append(kNames[li]);
    line.push_back(' ');
  }
  line.append(event);
  for (const auto& f : fields) {
    line.push_back(' ');
    line.append(f.key);
    line.push_back('=');
    line.append(EscapeName(f.value));
  }
  line.push_back('\n');
  // One write per line so that threads never interleave; a short write to a
  // pipe this small does not happen, and a failed log write has nowhere to go.
  [[maybe_unused]] ssize_t w = ::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace dropq
