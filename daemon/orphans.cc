#include "daemon/orphans.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "common/log.h"
#include "common/unique_fd.h"

namespace dropq {
namespace {

// Reads a whole /proc file (they report size 0, so read until EOF).
bool ReadProcFile(const std::string& path, std::string* out) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return false;
  char buf[4096];
  out->clear();
  while (true) {
    const ssize_t n = read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n == 0;
    out->append(buf, static_cast<size_t>(n));
    if (out->size() > (1u << 20)) return true;  // an environment this large is not ours
  }
}

}  // namespace

std::string NamespaceOf(const std::string& redis_display, const std::string& prefix) {
  return redis_display + "/" + prefix;
}

std::vector<Orphan> FindOrphans(const std::string& instance, const std::string& ns) {
  std::vector<Orphan> out;
  const std::string want = "DROPQ_INSTANCE=" + instance;
  const std::string want_ns = "DROPQ_NAMESPACE=" + ns;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return out;
  const pid_t self = getpid();
  std::string env;
  while (struct dirent* e = readdir(proc)) {
    char* end = nullptr;
    const long pid = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || pid == self) continue;
    if (!ReadProcFile(std::string("/proc/") + e->d_name + "/environ", &env)) continue;
    bool mine = false, same_ns = false;
    std::string job;
    for (size_t i = 0; i < env.size();) {
      size_t z = env.find('\0', i);
      if (z == std::string::npos) z = env.size();
      const std::string_view var(env.data() + i, z - i);
      if (var == want) mine = true;
      if (var == want_ns) same_ns = true;
      if (var.rfind("DROPQ_JOB_ID=", 0) == 0) job = std::string(var.substr(13));
      i = z + 1;
    }
    if (mine && same_ns) out.push_back(Orphan{static_cast<pid_t>(pid), job});
  }
  closedir(proc);
  return out;
}

size_t KillOrphans(const std::vector<Orphan>& orphans, int wait_ms) {
  size_t killed = 0;
  for (const Orphan& o : orphans) {
    // The handler leads its process group: take its children with it. A child
    // found on its own (its leader already gone) is killed alone.
    const pid_t pgid = getpgid(o.pid);
    const int rc = pgid == o.pid ? kill(-pgid, SIGKILL) : kill(o.pid, SIGKILL);
    if (rc == 0) {
      ++killed;
      LogWarn("orphan.killed", {{"pid", static_cast<int64_t>(o.pid)}, {"job", o.job_id}});
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  for (const Orphan& o : orphans) {
    // Not our children: they are gone once /proc/<pid> is gone or a zombie
    // of their (new) parent; kill(pid, 0) succeeds on a zombie, so look at it.
    while (std::chrono::steady_clock::now() < deadline) {
      std::string stat;
      if (!ReadProcFile("/proc/" + std::to_string(o.pid) + "/stat", &stat)) break;
      const size_t paren = stat.rfind(')');
      if (paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z') break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  return killed;
}

}  // namespace dropq
