#include "daemon/instance_lock.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "common/escape.h"

namespace dropq {
namespace {

std::string LockDir() {
  if (mkdir("/run/dropq", 0755) == 0 || errno == EEXIST) {
    if (access("/run/dropq", W_OK) == 0) return "/run/dropq";
  }
  if (const char* x = std::getenv("XDG_RUNTIME_DIR"); x != nullptr && *x == '/') return x;
  return "/tmp";
}

}  // namespace

std::string InstanceLock::PathFor(const Config& cfg, const std::string& dir) {
  // The namespace an instance name lives in: the Redis identity (address and
  // database, or the Sentinel setup, or redis.namespace), and prefix.
  const std::string ns = cfg.redis.Identity() + "\n" + cfg.prefix + "\n" + cfg.instance;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(ns.data(), ns.size(), md, &len, EVP_sha256(), nullptr);
  const std::string hex = HexBytes(std::string_view(reinterpret_cast<const char*>(md), len));
  return dir + "/dropqd-" + cfg.instance + "-" + hex.substr(0, 16) + ".lock";
}

Result<std::unique_ptr<InstanceLock>> InstanceLock::Acquire(const Config& cfg) {
  const std::string path = PathFor(cfg, LockDir());
  UniqueFd fd(open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (!fd.valid()) return IoError("open lock file " + path, errno);
  if (flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return Error{Errc::kInvalid, "another dropqd runs as instance " + cfg.instance + " for " +
                                       cfg.redis.Display() + " prefix " + cfg.prefix +
                                       " on this host (lock file " + path +
                                       "); give this one another `instance:` name"};
    }
    return IoError("flock " + path, errno);
  }
  // The holder's pid, for an operator who wonders who holds it.
  const std::string pid = std::to_string(getpid()) + "\n";
  if (ftruncate(fd.get(), 0) == 0) {
    [[maybe_unused]] ssize_t n = pwrite(fd.get(), pid.data(), pid.size(), 0);
  }
  return std::unique_ptr<InstanceLock>(new InstanceLock(path, std::move(fd)));
}

}  // namespace dropq
