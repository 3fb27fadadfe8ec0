#include "common/job.h"

#include <charconv>

namespace dropq {

std::string FileIdentity::ToString() const {
  return std::to_string(ino) + ":" + std::to_string(size) + ":" + std::to_string(mtime_ns);
}

std::optional<FileIdentity> FileIdentity::Parse(std::string_view s) {
  FileIdentity id;
  const char* p = s.data();
  const char* end = s.data() + s.size();
  auto r = std::from_chars(p, end, id.ino);
  if (r.ec != std::errc() || r.ptr == end || *r.ptr != ':') return std::nullopt;
  r = std::from_chars(r.ptr + 1, end, id.size);
  if (r.ec != std::errc() || r.ptr == end || *r.ptr != ':') return std::nullopt;
  r = std::from_chars(r.ptr + 1, end, id.mtime_ns);
  if (r.ec != std::errc() || r.ptr != end) return std::nullopt;
  return id;
}

FileIdentity FileIdentity::FromStat(const struct stat& st) {
  FileIdentity id;
  id.ino = st.st_ino;
  id.size = static_cast<uint64_t>(st.st_size);
  id.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return id;
}

std::string_view RunResultName(RunResult r) {
  switch (r) {
    case RunResult::kOk:
      return "ok";
    case RunResult::kExit:
      return "exit";
    case RunResult::kSignal:
      return "signal";
    case RunResult::kTimeout:
      return "timeout";
    case RunResult::kError:
      return "error";
    case RunResult::kVanished:
      return "vanished";
    case RunResult::kReplaced:
      return "replaced";
    case RunResult::kInterrupted:
      return "interrupted";
    case RunResult::kHttp:
      return "http";
    case RunResult::kHandlerError:
      return "handler_error";
  }
  return "unknown";
}

}  // namespace dropq
