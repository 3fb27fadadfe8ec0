#include "common/log.h"

#include <errno.h>
#include <sys/stat.h>
#include <sys/uio.h>
// Without it every entry would carry CODE_FILE/CODE_LINE of this file.
#define SD_JOURNAL_SUPPRESS_LOCATION 1
#include <systemd/sd-journal.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "common/clock.h"
#include "common/escape.h"

namespace dropq {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};

constexpr int kSyslogPriority[] = {7, 6, 4, 3};  // debug, info, warning, err

// Where lines go: text with timestamps on stderr, text with syslog priority
// prefixes on stderr (the journal's stream), or structured journal entries.
enum class LogSink { kText = 0, kPrefixed = 1, kJournal = 2 };

// journald's socket for structured entries (sd_journal_sendv(3) uses no other).
constexpr const char* kJournalSocket = "/run/systemd/journal/socket";

LogSink DetectSink() {
  const char* env = std::getenv("JOURNAL_STREAM");
  if (env == nullptr) return LogSink::kText;
  struct stat st;
  if (::fstat(STDERR_FILENO, &st) != 0 || !JournalStreamIsFd(env, st)) return LogSink::kText;
  // sd_journal_sendv() reports success when the socket is missing (it drops
  // the entry), so its absence is checked here: then the stream gets the lines.
  struct stat sock;
  if (::stat(kJournalSocket, &sock) != 0 || !S_ISSOCK(sock.st_mode)) return LogSink::kPrefixed;
  return LogSink::kJournal;
}

std::atomic<int> g_sink{-1};  // -1: not detected yet

LogSink CurrentSink() {
  int s = g_sink.load(std::memory_order_relaxed);
  if (s < 0) {
    s = static_cast<int>(DetectSink());
    g_sink.store(s, std::memory_order_relaxed);
  }
  return static_cast<LogSink>(s);
}

// The text of a line after its prefix: the event, then key=value with values escaped.
std::string LineText(std::string_view event, const std::vector<LogField>& fields) {
  std::string text(event);
  for (const auto& f : fields) {
    text.push_back(' ');
    text.append(f.key);
    text.push_back('=');
    text.append(EscapeName(f.value));
  }
  return text;
}

// Sends one entry over journald's native protocol. Returns false if it was
// refused (too large, out of memory...): the caller writes the line to stderr
// instead. A socket that vanishes after start-up (journald gone for good)
// counts as success in libsystemd: such entries are lost, as they would be
// on the stream.
bool SendToJournal(LogLevel level, std::string_view event, const std::vector<LogField>& fields) {
  const std::vector<std::string> entry = JournalEntry(level, event, fields);
  std::vector<iovec> iov(entry.size());
  for (size_t i = 0; i < entry.size(); ++i) {
    iov[i].iov_base = const_cast<char*>(entry[i].data());
    iov[i].iov_len = entry[i].size();
  }
  return sd_journal_sendv(iov.data(), static_cast<int>(iov.size())) >= 0;
}

void WriteStderr(LogLevel level, std::string_view event, const std::vector<LogField>& fields,
                 bool priority_prefix) {
  static constexpr const char* kNames[] = {"debug", "info ", "warn ", "error"};
  const int li = static_cast<int>(level);
  std::string line;
  line.reserve(128);
  if (priority_prefix) {
    line.push_back('<');
    line.push_back(static_cast<char>('0' + kSyslogPriority[li]));
    line.push_back('>');
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
  line.append(LineText(event, fields));
  line.push_back('\n');
  // One write per line so that threads never interleave; a short write to a
  // pipe this small does not happen, and a failed log write has nowhere to go.
  [[maybe_unused]] ssize_t w = ::write(STDERR_FILENO, line.data(), line.size());
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

bool JournalStreamIsFd(std::string_view journal_stream, const struct stat& st) {
  // systemd writes "<st_dev>:<st_ino>" in decimal (sd_journal_stream_fd(3)).
  // Digits only: no sign, no blanks.
  const size_t colon = journal_stream.find(':');
  if (colon == std::string_view::npos) return false;
  auto number = [](std::string_view d, uintmax_t* out) {
    const char* end = d.data() + d.size();
    auto [p, ec] = std::from_chars(d.data(), end, *out);
    return !d.empty() && ec == std::errc() && p == end;
  };
  uintmax_t dev = 0, ino = 0;
  if (!number(journal_stream.substr(0, colon), &dev) ||
      !number(journal_stream.substr(colon + 1), &ino)) {
    return false;
  }
  return dev == static_cast<uintmax_t>(st.st_dev) && ino == static_cast<uintmax_t>(st.st_ino);
}

std::string JournalFieldName(std::string_view key) {
  if (key == "job") return "DROPQ_JOB_ID";
  std::string name = "DROPQ_";
  for (char c : key) {
    const auto u = static_cast<unsigned char>(c);
    name.push_back(std::isalnum(u) != 0 && u < 0x80 ? static_cast<char>(std::toupper(u)) : '_');
  }
  return name;
}

std::vector<std::string> JournalEntry(LogLevel level, std::string_view event,
                                      const std::vector<LogField>& fields) {
  std::vector<std::string> entry;
  entry.reserve(fields.size() + 4);
  entry.push_back("MESSAGE=" + LineText(event, fields));
  entry.push_back("PRIORITY=" + std::to_string(kSyslogPriority[static_cast<int>(level)]));
  entry.push_back("SYSLOG_IDENTIFIER=" + std::string(program_invocation_short_name));
  entry.push_back("DROPQ_EVENT=" + std::string(event));
  // Values go in raw: the journal keeps any bytes, newlines included, so
  // `journalctl DROPQ_PATH=...` matches the path as it is on disk.
  for (const auto& f : fields) entry.push_back(JournalFieldName(f.key) + "=" + f.value);
  return entry;
}

void Log(LogLevel level, std::string_view event, std::initializer_list<LogField> fields) {
  if (!LogEnabled(level)) return;
  LogList(level, event, std::vector<LogField>(fields));
}

void LogList(LogLevel level, std::string_view event, const std::vector<LogField>& fields) {
  if (!LogEnabled(level)) return;
  switch (CurrentSink()) {
    case LogSink::kJournal:
      if (SendToJournal(level, event, fields)) return;
      [[fallthrough]];  // refused (too large, out of memory...): the stream takes it
    case LogSink::kPrefixed:
      WriteStderr(level, event, fields, /*priority_prefix=*/true);
      return;
    case LogSink::kText:
      WriteStderr(level, event, fields, /*priority_prefix=*/false);
      return;
  }
}

}  // namespace dropq
