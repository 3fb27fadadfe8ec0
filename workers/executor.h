// An Executor runs one queue's jobs: what a QueueRunner hands claimed jobs
// to, whatever runs them. It has a fixed number of slots (a slot runs one
// job at a time) and a bounded room for jobs accepted but not started; the
// runner claims only as many jobs as there is room for, so the backlog waits
// in Redis and on disk, not in RAM.
//
// Jobs go in as batches (Accept()) and what happens to them comes back as
// batches (Sink::report): one wake-up of the loop per batch, not per file.
// Two shapes fit behind it:
//   * threads: ThreadExecutor (workers/thread_executor.h), a pool of worker
//     threads that pop from a bounded queue and stop on a sentinel; a slot
//     is a thread. Builtins run there, and exec handlers (a process creation
//     costs milliseconds on some machines, so never on the loop).
//   * the loop: an executor whose slots are a count, as in an asyncio
//     consumer pool (a request driven by libcurl's multi interface, a job
//     written to a long-lived process over a pipe); it starts a job in
//     Accept() and reports from the loop's own callbacks.
//
// Thread: every method is called on the loop thread, and the Sink is called
// there. Ownership: the runner owns its executor; the executor owns the jobs
// it accepted until it reports them finished or gives them back.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/job.h"

namespace dropq {

// What an executor reports about one job.
struct RunReport {
  enum class Kind {
    kStarted,   // its handler is about to run: outcome.job.attempt is this run's number
    kFinished,  // it ended (ran, vanished, or could not run): the whole outcome
  };
  Kind kind = Kind::kFinished;
  Outcome outcome;  // kStarted: only outcome.job is set
};

class Executor {
 public:
  struct Sink {
    // Reports about accepted jobs, in the order they happened; a job's
    // kStarted comes before its kFinished. Called on the loop thread.
    std::function<void(std::vector<RunReport>&& reports)> report;
    // Every slot has stopped after Stop(): nothing more will be reported.
    // Called on the loop thread, once, on a later turn than Stop()'s.
    std::function<void()> stopped;
  };

  virtual ~Executor() = default;

  // Starts the slots. Reports go to the sink given at construction.
  virtual void Start() = 0;
  // Jobs it runs at once.
  virtual int slots() const = 0;
  // How many more jobs Accept() takes now: its bound minus the jobs
  // accepted and not yet started.
  virtual size_t room() const = 0;
  // Jobs accepted and not yet started.
  virtual size_t waiting() const = 0;
  // Takes `jobs` (at most room() of them: more is a bug of the caller's)
  // to run in order as slots free up.
  virtual void Accept(std::vector<Job> jobs) = 0;
  // Gives back every job accepted and not yet started (a pause, a drain, a
  // fence); they will not be reported.
  virtual std::vector<Job> TakeBack() = 0;
  // No more jobs: each slot ends after its current job. Sink::stopped
  // follows once every slot has. Accept() is not called afterwards.
  virtual void Stop() = 0;
  // True once every slot has stopped (at once for an executor of no slots).
  virtual bool stopped() const = 0;
  // Ends the running jobs now (they report RunResult::kInterrupted); with
  // `also_later`, every job started from now on too (past the drain timeout).
  virtual void Interrupt(bool also_later) = 0;

  // Long-lived handler processes (a serve handler's): how many run now, and
  // how many were replaced since the start, by reason. Empty for the others.
  struct ProcessStats {
    int alive = 0;
    std::map<std::string, uint64_t> replaced;
  };
  virtual ProcessStats processes() const { return {}; }
};

}  // namespace dropq
