// ServeExecutor runs a queue's serve handler: `workers` long-lived handler
// processes, each fed one job at a time over a pipe in the protocol of
// workers/serve_protocol.h (docs/serve-protocol.md), all driven from the
// loop: a uv_poll_t on each process's pipes and pidfd, no thread per
// process. What blocks runs on the threadpool: spawning a process, and
// making a job's file ready (Enter(), as for an exec handler).
//
//   Start -> spawn (pool) -> loading --{"ready":true}--> idle
//   a job: Enter (pool) ahead, one per process at most -> ready
//   idle --ready job--> its line on fd 3 -> busy --answer--> idle
//   busy --timeout, exit, protocol error--> the job's run fails, and the
//        process (its whole group) is killed and started again: at once
//        after a timeout or a protocol error, after a backoff after a crash
//   idle after max_jobs jobs or past max_rss --> recycled: fd 3 closed
//        (EOF, the sentinel), a new process started once it is gone
//   Stop --> each process, once idle, gets EOF on fd 3 and has kExitGraceMs
//        to exit before it is killed; Sink::stopped once all are gone
//
// Its stdout and stderr are logged line by line with the job id
// (serve.stdout, serve.stderr; at most kMaxLoggedLines per job and stream,
// the rest counted), and the last 4 KiB of stderr during a job go into the
// job's record, as for exec. dropqd's memory stays bounded whatever a
// process writes: an answer line past kServeMaxLine is a protocol error.
//
// Thread: loop (every method, and the Sink is called there). Ownership: the
// runner owns the executor, the executor its processes: one still running
// when it is destroyed is killed.
#pragma once

#include <sys/stat.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/job.h"
#include "config/config.h"
#include "daemon/loop.h"
#include "daemon/report_queue.h"
#include "daemon/waiting_jobs.h"
#include "workers/executor.h"
#include "workers/processing.h"
#include "workers/spare_dirs.h"

namespace dropq {

class ServeExecutor final : public Executor {
 public:
  // `q` (kind kServe) and `loop` must outlive the executor. Files are found
  // in `q.watch` and, per `layout`, in processing area `area`; at most
  // `capacity` jobs wait for a process. `instance` is dropqd's.
  // Job directories come from `spares` (may be null), which must outlive
  // the work the executor queues (it shares ownership).
  ServeExecutor(Loop* loop, Sink sink, const QueueConfig& q, AreaLayout layout, std::string area,
                size_t capacity, std::string instance, std::shared_ptr<SpareDirs> spares);
  // Kills the processes still running, without reporting their jobs.
  ~ServeExecutor() override;
  ServeExecutor(const ServeExecutor&) = delete;
  ServeExecutor& operator=(const ServeExecutor&) = delete;

  // Starts the processes.
  void Start() override;
  int slots() const override { return workers_; }
  size_t room() const override { return waiting_.room(); }
  size_t waiting() const override { return waiting_.size(); }
  void Accept(std::vector<Job> jobs) override;
  // The jobs not yet made ready; those made ready for a process (one per
  // process at most) still run.
  std::vector<Job> TakeBack() override;
  void Stop() override;
  bool stopped() const override;
  // Kills the processes with a job (kInterrupted; they start again unless
  // stopping); with `also_later`, every job started from now on ends so too.
  void Interrupt(bool also_later) override;
  ProcessStats processes() const override;

 private:
  struct Proc;
  struct SpawnResult;
  // A job whose file was made ready (Enter()) ahead of a free process.
  struct Prepared {
    Job job;
    Entered in;
  };

  // Gives idle processes the next waiting jobs.
  void Pump();
  // Starts process `p` (again) now, or after `delay_ms`.
  void Spawn(Proc* p, int64_t delay_ms);
  void OnSpawned(Proc* p, SpawnResult&& r);
  // A trip of Enter() is back; `gen`: interrupts_ when it was sent.
  void OnEntered(std::vector<Prepared>&& trip, uint64_t gen);
  // Reports a job that was not sent to a process.
  void NotRun(Prepared&& e, bool interrupted);
  // Gives idle process `p` its job.
  void Send(Proc* p, Prepared&& e);
  // Stopping, with no job left to give: EOF to every idle process.
  void CloseIdleIfStopping();
  // Readable pipe `which` (0 answers, 1 stdout, 2 stderr) of p.
  void OnReadable(Proc* p, int which);
  void OnLine(Proc* p, std::string_view line);
  void OnOutput(Proc* p, int which, std::string_view bytes, bool flush);
  // Reaps p's process if it exited (its pidfd is readable, or a look).
  void Reap(Proc* p);
  // Stopping with jobs made ready and no process left that could take
  // them (none is restarted now): they go back, not started.
  void AbandonReadyIfStuck();
  // p's process exited (reaped, `status` from waitpid).
  void OnExit(Proc* p, int status);
  // Ends p's job with `o` (its duration, identity and stderr tail added).
  void FinishJob(Proc* p, Outcome o);
  // Kills p's process group; `why` (a restart reason) is counted when it exits.
  void Kill(Proc* p, const char* why);
  // Closes p's fd 3: EOF tells it to exit; killed after kExitGraceMs.
  void Close(Proc* p, const char* why);
  void ProtocolError(Proc* p, const std::string& what);
  // After an answer: past max_jobs or max_rss, the process is replaced.
  void MaybeRecycle(Proc* p);

  Loop* const loop_;
  ReportQueue reports_;
  const QueueConfig& q_;
  const AreaLayout layout_;
  const std::string area_;
  const int workers_;
  WaitingJobs waiting_;  // accepted, not yet made ready
  const std::string instance_;
  const std::shared_ptr<SpareDirs> spares_;
  std::vector<std::string> argv_;  // expanded once: {queue} and {dir}
  std::vector<std::unique_ptr<Proc>> procs_;
  std::deque<Prepared> ready_;  // made ready, not yet sent (at most one per process)
  size_t entering_ = 0;         // jobs being made ready on the threadpool
  uint64_t interrupts_ = 0;     // Interrupt() calls so far
  bool stopping_ = false;
  bool interrupt_all_ = false;
  std::map<std::string, uint64_t> replaced_;  // processes replaced, by reason
  std::unique_ptr<char[]> read_buf_;          // what one read(2) of a pipe takes
  // Cleared by the destructor: threadpool work and posts that come back
  // later must not touch the executor.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace dropq
