#include "tests/support/proc_stats.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

namespace dropq::test {

long ProcStatusKiB(pid_t pid, const std::string& field) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  const std::string prefix = field + ":";
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(prefix, 0) == 0) return std::atol(line.c_str() + prefix.size());
  }
  return -1;
}

long long CpuTimeMs(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  // The command name (field 2) may hold spaces and parentheses: count the
  // fields from the last ')'.
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return -1;
  std::istringstream in(stat.substr(paren + 2));
  std::string field;
  long long utime = -1, stime = -1;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::atoll(field.c_str());
    if (i == 15) stime = std::atoll(field.c_str());
  }
  if (utime < 0 || stime < 0) return -1;
  const long ticks = ::sysconf(_SC_CLK_TCK);
  return (utime + stime) * 1000 / (ticks > 0 ? ticks : 100);
}

long long CpuMsOver(pid_t pid, std::chrono::milliseconds window) {
  const long long before = CpuTimeMs(pid);
  std::this_thread::sleep_for(window);  // measuring over a window, not waiting for a condition
  const long long after = CpuTimeMs(pid);
  if (before < 0 || after < 0) return -1;
  return after - before;
}

}  // namespace dropq::test
