// RedisServer starts a private redis-server for one test fixture on a free
// loopback port (found by binding port 0; retried if Redis then loses the
// race for it), in a temporary directory, and shuts it down when destroyed.
// Thread: owner.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/support/temp_dir.h"

struct redisContext;

namespace dropq::test {

class RedisServer {
 public:
  // Starts the server; aborts the test (ADD_FAILURE + ok() false) if it cannot.
  explicit RedisServer(std::vector<std::string> extra_args = {});
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  bool ok() const { return pid_ > 0; }
  int port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_) + "/0"; }

  // Runs one command on a short-lived connection; returns the reply as text
  // (integers in decimal, arrays joined by '\n', nil as ""). For assertions.
  std::string Cmd(const std::vector<std::string>& argv) const;
  // Same, for array replies: one element per entry.
  std::vector<std::string> CmdList(const std::vector<std::string>& argv) const;
  long long CmdInt(const std::vector<std::string>& argv) const;

  // Stops the server now (SIGKILL when `hard`, else SHUTDOWN NOSAVE).
  void Stop(bool hard = false);
  // Starts it again on the same port and directory.
  bool Restart();
  // Stops it (SIGKILL) and starts it again on the same port and directory
  // with `extra_args` in place of the constructor's, kept for later
  // Restart()s too: e.g. {"--appendonly", "yes", "--appendfsync", "always"},
  // so that what it acknowledged survives the next kill.
  bool RestartWith(std::vector<std::string> extra_args);
  // The server's process id, or -1 while it is stopped.
  pid_t pid() const { return pid_; }
  // The directory it runs in (its AOF and redis.log are there).
  const std::string& dir() const { return dir_.path(); }

 private:
  bool Launch();
  TempDir dir_;
  std::vector<std::string> extra_args_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace dropq::test
