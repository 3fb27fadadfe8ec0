// One line per event that matters: the event name, then key=value fields.
// Values are escaped as the manifest escapes names (common/escape.h), so a
// line never needs quotes and one line is always one event.
//
//   <4>file.skip queue=uploads path=/srv/inbox/pipe reason=fifo
//
// When stderr is the journal (JOURNAL_STREAM is set) each line carries a
// syslog priority prefix; on a terminal it carries a UTC timestamp and level
// instead. Each line is written with a single write(2) so concurrent threads
// never interleave. Thread: any.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace dropq {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Parses "debug" | "info" | "warn" | "error". Returns false otherwise.
bool ParseLogLevel(std::string_view s, LogLevel* out);

void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);

// One key=value pair of a log line; the value is escaped when the line is built.
struct LogField {
  LogField(std::string_view k, std::string_view v) : key(k), value(v) {}
  LogField(std::string_view k, const std::string& v) : key(k), value(v) {}
  LogField(std::string_view k, const char* v) : key(k), value(v) {}
  template <typename T, typename = std::enable_if_t<std::is_arithmetic_v<T>>>
  LogField(std::string_view k, T v) : key(k), value(std::to_string(v)) {}
  std::string_view key;
  std::string value;
};

// Writes one line if `level` is enabled.
void Log(LogLevel level, std::string_view event, std::initializer_list<LogField> fields = {});
// The same, for a line whose fields depend on the event.
void LogList(LogLevel level, std::string_view event, const std::vector<LogField>& fields);

inline void LogDebug(std::string_view e, std::initializer_list<LogField> f = {}) {
  if (LogEnabled(LogLevel::kDebug)) Log(LogLevel::kDebug, e, f);
}
inline void LogInfo(std::string_view e, std::initializer_list<LogField> f = {}) {
  Log(LogLevel::kInfo, e, f);
}
inline void LogWarn(std::string_view e, std::initializer_list<LogField> f = {}) {
  Log(LogLevel::kWarn, e, f);
}
inline void LogError(std::string_view e, std::initializer_list<LogField> f = {}) {
  Log(LogLevel::kError, e, f);
}

}  // namespace dropq
