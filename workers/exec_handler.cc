#include "workers/exec_handler.h"

#include <unistd.h>

#include <exception>
#include <string_view>
#include <utility>

#include "common/clock.h"
#include "common/placeholders.h"
#include "config/secrets.h"
#include "workers/spawn.h"

namespace dropq {
namespace {

// The variables a handler gets from dropqd (inherited values are replaced),
// and systemd's messages to dropqd alone: a handler that saw NOTIFY_SOCKET
// or WATCHDOG_USEC could report readiness or liveness in dropqd's name.
constexpr std::string_view kOwnVars[] = {"DROPQ_PATH",    "DROPQ_JOB_ID",   "DROPQ_QUEUE",
                                         "DROPQ_ATTEMPT", "DROPQ_INSTANCE", "NOTIFY_SOCKET",
                                         "WATCHDOG_USEC", "WATCHDOG_PID",   "LISTEN_FDS",
                                         "LISTEN_PID",    "LISTEN_FDNAMES"};

bool IsOwnVar(std::string_view entry) {
  const std::string_view name = entry.substr(0, entry.find('='));
  for (std::string_view v : kOwnVars) {
    if (name == v) return true;
  }
  return false;
}

// Copies environ, leaving out the variables dropqd sets itself.
std::vector<std::string> SnapshotEnviron() {
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (!IsOwnVar(*e)) env.emplace_back(*e);
  }
  return env;
}

// `env` without the variables whose values are secrets' sources.
std::vector<std::string> WithoutHidden(const std::vector<std::string>& env) {
  std::vector<std::string> out;
  out.reserve(env.size() + 8);
  for (const std::string& e : env) {
    if (!IsHiddenEnv(std::string_view(e).substr(0, e.find('=')))) out.push_back(e);
  }
  return out;
}

}  // namespace

std::vector<std::string> ServeEnvironment(const std::string& queue, const std::string& instance) {
  std::vector<std::string> env = WithoutHidden(SnapshotEnviron());
  env.push_back("DROPQ_QUEUE=" + queue);
  env.push_back("DROPQ_INSTANCE=" + instance);
  return env;
}

ExecHandler::ExecHandler(const QueueConfig& q, std::string instance)
    : queue_(q.name),
      watch_(q.watch),
      argv_(q.handler.argv),
      timeout_ms_(q.handler.timeout.count()),
      instance_(std::move(instance)),
      base_env_(SnapshotEnviron()) {}

std::vector<std::string> ExecHandler::ExpandArgv(const Job& job, const std::string& path) const {
  std::string_view reldir, name, stem, ext;
  SplitRelPath(job.name, &reldir, &name);
  SplitName(name, &stem, &ext);
  const std::string attempt = std::to_string(job.attempt);
  const PlaceholderValues v{path,   name,   stem,    ext,      watch_,
                            queue_, job.id, attempt, job.name, reldir};
  std::vector<std::string> argv;
  argv.reserve(argv_.size());
  for (const std::string& a : argv_) argv.push_back(ExpandPlaceholders(a, v));
  return argv;
}

std::vector<std::string> ExecHandler::BuildEnv(const Job& job, const std::string& path) const {
  // A secret's source: read into the config, never handed on.
  std::vector<std::string> env = WithoutHidden(base_env_);
  env.push_back("DROPQ_PATH=" + path);
  env.push_back("DROPQ_RELPATH=" + job.name);
  env.push_back("DROPQ_JOB_ID=" + job.id);
  env.push_back("DROPQ_QUEUE=" + queue_);
  env.push_back("DROPQ_ATTEMPT=" + std::to_string(job.attempt));
  env.push_back("DROPQ_INSTANCE=" + instance_);
  return env;
}

Outcome ExecHandler::Run(const Job& job, const std::string& path, int /*fd*/,
                         const CancelToken& cancel) noexcept {
  Outcome o;
  o.started_ms = NowUnixMs();
  const int64_t t0 = MonoMs();
  try {
    SpawnRequest req{ExpandArgv(job, path), BuildEnv(job, path), timeout_ms_};
    ChildResult c = SpawnAndWait(req, cancel);
    o.result = c.result;
    o.exit_code = c.exit_code;
    o.signal = c.signal;
    o.stderr_tail = std::move(c.stderr_tail);
    o.error = std::move(c.error);
  } catch (const std::exception& e) {  // std::bad_alloc, in practice
    o.result = RunResult::kError;
    o.error = std::string("exec handler: ") + e.what();
  }
  o.duration_ms = MonoMs() - t0;
  return o;
}

}  // namespace dropq
