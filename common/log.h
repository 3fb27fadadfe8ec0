// One line per event that matters: the event name, then key=value fields.
// Values are escaped as the manifest escapes names (common/escape.h), so a
// line never needs quotes and one line is always one event.
//
//   <4>file.skip queue=uploads path=/srv/inbox/pipe reason=fifo
//
// When stderr is the journal (JOURNAL_STREAM names stderr's device and inode,
// as systemd sets it) each event goes to journald as a structured entry:
// MESSAGE= holds the line, PRIORITY= its level, and every field becomes its
// own DROPQ_<KEY>= field (`job` becomes DROPQ_JOB_ID=), so that
// `journalctl DROPQ_QUEUE=images` works. If journald's socket is not there
// at start-up, or journald refuses an entry, the line goes to stderr with a syslog
// priority prefix (<3>, <6>...), which the journal's stream reads. On a
// terminal or a file a line carries a UTC timestamp and level instead. Each
// line is one write(2) or one datagram, so concurrent threads never
// interleave. Thread: any.
#pragma once

#include <sys/stat.h>

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

// True if `journal_stream` (the value of $JOURNAL_STREAM, "<dev>:<ino>") names
// the file `st` describes. Pure; exposed for tests.
bool JournalStreamIsFd(std::string_view journal_stream, const struct stat& st);

// The journal field name for a log field's key: DROPQ_ and the key in upper
// case, bytes other than letters and digits as '_'; `job` is DROPQ_JOB_ID.
std::string JournalFieldName(std::string_view key);

// The fields of one journal entry, each "NAME=value": MESSAGE, PRIORITY,
// SYSLOG_IDENTIFIER, DROPQ_EVENT, then one per field with its raw value.
std::vector<std::string> JournalEntry(LogLevel level, std::string_view event,
                                      const std::vector<LogField>& fields);

// Writes one line if `level` is enabled.
void Log(LogLevel level, std::string_view event, std::initializer_list<LogField> fields = {});
// The same, for a line whose fields depend on the event.
void LogList(LogLevel level, std::string_view event, const std::vector<LogField>& fields);

// The fields are built before the level is checked: on a per-job path, test
// LogEnabled(LogLevel::kDebug) first.
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
