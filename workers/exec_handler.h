// ExecHandler runs a queue's `exec` argv template once per file, as a child
// process started with posix_spawn (workers/spawn.h): never through a shell,
// so whatever bytes a file name holds, each template element is exactly one
// argument. The child's environment is dropqd's own, less the variables the
// config's secrets were read from (config/secrets.h IsHiddenEnv()), plus
// DROPQ_PATH, DROPQ_RELPATH, DROPQ_JOB_ID, DROPQ_QUEUE, DROPQ_ATTEMPT and
// DROPQ_INSTANCE.
// Thread: any. Immutable after construction; Run() is called by several
// workers at once.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/job.h"
#include "config/config.h"
#include "workers/cancel_token.h"
#include "workers/handler.h"

namespace dropq {

class ExecHandler final : public Handler {
 public:
  // REQUIRES: q.handler.kind == kExec and q.handler.argv is not empty
  // (MakeHandler() checks both). Takes a snapshot of environ: variables set
  // later in dropqd do not reach handlers.
  ExecHandler(const QueueConfig& q, std::string instance);
  ExecHandler(const ExecHandler&) = delete;
  ExecHandler& operator=(const ExecHandler&) = delete;

  // See Handler::Run(). kTimeout and kInterrupted come with signal == SIGKILL;
  // stderr_tail holds the last 4096 bytes the child wrote to stderr.
  Outcome Run(const Job& job, const std::string& path, int fd,
              const CancelToken& cancel) noexcept override;

  // The argv a run of `job` on `path` gets: the template with every
  // placeholder expanded, one element per template element.
  std::vector<std::string> ExpandArgv(const Job& job, const std::string& path) const;

  // The environment a run of `job` on `path` gets ("NAME=value" entries).
  std::vector<std::string> BuildEnv(const Job& job, const std::string& path) const;

 private:
  const std::string queue_;                  // the queue's name, {queue}
  const std::string watch_;                  // the watched directory, {dir}
  const std::vector<std::string> argv_;      // the template
  const int64_t timeout_ms_;                 // handler.timeout
  const std::string instance_;               // DROPQ_INSTANCE
  const std::vector<std::string> base_env_;  // environ at construction, minus our DROPQ_* names
};

// The environment a serve handler's process starts with: dropqd's, without
// the variables dropqd sets itself or hides (secrets' sources), with
// DROPQ_QUEUE and DROPQ_INSTANCE (and DROPQ_NAMESPACE, inherited: dropqd
// sets it in its own), so that the orphan sweep finds it as it finds an exec
// handler. Thread: any.
std::vector<std::string> ServeEnvironment(const std::string& queue, const std::string& instance);

}  // namespace dropq
