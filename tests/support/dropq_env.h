// DropqEnv is the world of one end-to-end test: a private redis-server, a
// temporary directory with inbox/, done/ and failed/, a config file, and the
// real dropqd binary started as a child process. Tests drive it only through
// files, signals, redis-cli-like commands and dropqctl.
// Thread: owner (the test).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/process.h"
#include "tests/support/redis_server.h"
#include "tests/support/temp_dir.h"

namespace dropq::test {

struct QueueSpec {
  std::string name = "q";
  // The YAML of the handler map's entries, e.g. "builtin: noop" or
  // "exec: [\"/bin/sh\", \"-c\", \"...\", \"sh\", \"{path}\"]\ntimeout: 5s".
  std::string handler = "builtin: noop";
  std::string on_success = "done";    // "done" | "failed" (move_to that dir), "keep", "delete"
  std::string on_failure = "failed";  // "failed" (move_to failed/), "keep"
  int workers = 2;
  int capacity = 0;  // 0: the default
  std::string settle = "0s";
  std::string extra;  // more queue keys, one per line, e.g. "exclude: [\"*.log\"]"
  // The queue's retry map; most tests want a failed run to be final. "" leaves
  // the key out (the defaults: 5 attempts from 1 s).
  std::string retry = "{ max_attempts: 1 }";
};

class DropqEnv {
 public:
  DropqEnv();
  ~DropqEnv();

  // Writes the config for one queue and returns its path.
  std::string WriteConfig(const QueueSpec& q, const std::string& top_extra = "");

  // Starts dropqd with the written config; waits until its start-up scan
  // finished (log line scan.done). Returns false if it did not get there.
  bool Start();
  // Starts `launcher` with dropqd's command line appended (e.g. a shell that
  // sets up a namespace, then execs "$@"), and returns at once: for a dropqd
  // whose log does not go to its log file.
  void StartWrapped(const std::vector<std::string>& launcher);
  // Sends `sig` and waits for the exit status (nullopt on timeout).
  std::optional<int> Stop(int sig = 15,
                          std::chrono::milliseconds timeout = std::chrono::seconds(60));
  Process* daemon() { return daemon_.get(); }
  std::string DaemonLog() const;

  // Runs build/dropqctl --config <config> args...
  CommandResult Ctl(std::vector<std::string> args);

  // Key of queue `queue` in Redis: "dropq:{<queue>}:<suffix>".
  static std::string Key(const std::string& queue, const std::string& suffix) {
    return "dropq:{" + queue + "}:" + suffix;
  }

  // Where the file `name` of job `id` sits while its exec handler runs (the
  // default processing area).
  std::string Processing(const std::string& id, const std::string& name,
                         const std::string& queue = "q") const {
    return inbox + "/.dropq-processing/" + queue + "/" + id + "/" + name;
  }
  // The same for a builtin handler that moves or deletes files (the flat
  // layout of workers/processing.h).
  std::string FlatProcessing(const std::string& id, const std::string& name,
                             const std::string& queue = "q") const {
    return inbox + "/.dropq-processing/" + queue + "/" + id + "." + name;
  }

  RedisServer redis;
  TempDir tmp;
  std::string inbox, done, failed, config;
  // The config's redis: block, when not env.redis by url (e.g. Sentinel's
  // keys, tests/support/sentinels.h); "prefix: dropq" is added to it.
  std::string redis_yaml;

 private:
  std::unique_ptr<Process> daemon_;
  int starts_ = 0;
};

// The names (not paths) of the entries of `dir`, sorted; an empty
// ".dropq-processing" (the default processing areas, holding no file) is left out.
std::vector<std::string> ListDir(const std::string& dir);

// dropqd's resident set size in KiB (VmRSS), or -1.
long RssKiB(pid_t pid);

}  // namespace dropq::test
