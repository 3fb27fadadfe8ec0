// A Handler does the work for one file: run a program (exec), hash it
// (builtin sha256) or nothing (builtin noop). One Handler serves every worker
// of its queue. Thread: any; Run() is called by several workers at once.
#pragma once

#include <memory>
#include <string>

#include "common/job.h"
#include "common/result.h"
#include "config/config.h"
#include "workers/cancel_token.h"

namespace dropq {

class Handler {
 public:
  virtual ~Handler() = default;

  // Runs the handler for `job` (job.attempt is already this run's number) on
  // the file at `path` (absolute). `fd`, when not -1, is that file opened
  // read-only and checked to be the job's (given only to a handler whose
  // ReadsDescriptor() is true): the handler reads it, never `path`. Blocks until the handler ends,
  // its timeout passes (result kTimeout, its whole process group killed) or `cancel` fires (result
  // kInterrupted, likewise killed). Fills every Outcome field except `job` and `ident`, which the
  // caller sets. Never throws.
  virtual Outcome Run(const Job& job, const std::string& path, int fd,
                      const CancelToken& cancel) = 0;

  // True for a handler that reads the file in the worker itself (a builtin):
  // the worker opens and checks it, and the handler works on that
  // descriptor. A program opens {path} itself, so it never gets one.
  virtual bool ReadsDescriptor() const { return false; }
};

// Builds the handler `q.handler` describes; nullptr for an HTTP handler,
// whose requests run on dropqd's loop (daemon/http_executor.h), not here. `instance` goes into an
// exec handler's environment as DROPQ_INSTANCE. Fails if a manifest cannot be opened.
Result<std::unique_ptr<Handler>> MakeHandler(const QueueConfig& q, const std::string& instance);

}  // namespace dropq
