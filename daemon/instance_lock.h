// InstanceLock makes sure that one host runs at most one live dropqd per
// instance name and Redis namespace (address, database, prefix): two of them
// would take each other's active jobs for their own leftovers. It holds an
// flock(2) on a lock file for the life of the process; the kernel drops it
// when the process dies, however it dies, so a restart after kill -9 proves
// that its predecessor is gone. The descriptor is O_CLOEXEC: a handler never
// inherits it (an orphaned handler must not keep the lock).
// Thread: owner (made once at start-up, released at exit).
#pragma once

#include <memory>
#include <string>

#include "common/result.h"
#include "common/unique_fd.h"
#include "config/config.h"

namespace dropq {

class InstanceLock {
 public:
  // Takes the lock for `cfg`'s instance, in /run/dropq (if it can be made),
  // else $XDG_RUNTIME_DIR, else /tmp. Fails with a message that names the
  // instance and the lock file if another live dropqd holds it.
  static Result<std::unique_ptr<InstanceLock>> Acquire(const Config& cfg);

  // The lock file's path for `cfg` in directory `dir` (exposed for tests).
  static std::string PathFor(const Config& cfg, const std::string& dir);

  const std::string& path() const { return path_; }

 private:
  InstanceLock(std::string path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  std::string path_;
  UniqueFd fd_;
};

}  // namespace dropq
