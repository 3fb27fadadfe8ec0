// WorkerPool runs `workers` threads for one queue. Each pops a job from the
// JobQueue, checks that its file is still a regular file, counts the attempt,
// runs the Handler and reports the Outcome, then takes the next; a stop
// sentinel ends one thread. The pool never learns that a loop exists: it
// reports through the Hooks it was given.
//
// Thread: the owner (the loop thread) constructs, starts, cancels and joins;
// the hooks run on worker threads.
#pragma once

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "common/job.h"
#include "workers/cancel_token.h"
#include "workers/handler.h"
#include "workers/job_queue.h"

namespace dropq {

class WorkerPool {
 public:
  struct Hooks {
    // A handler is about to run `job` (job.attempt is this run's number).
    std::function<void(const Job& job)> started;
    // A job ended: ran, vanished, or could not run. Takes ownership.
    std::function<void(Outcome&& outcome)> finished;
    // This worker took a stop sentinel and is about to exit.
    std::function<void()> exited;
  };

  // `queue` and `handler` must outlive the pool. `watch_dir` is the absolute
  // directory job names are relative to.
  WorkerPool(std::string watch_dir, int workers, JobQueue* queue, Handler* handler, Hooks hooks);
  // Joins the threads; the owner must have pushed one sentinel per worker.
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void Start();

  // Kills every running handler (their jobs report kInterrupted), and any
  // started later. Used when the drain timeout passes. Thread: any.
  void CancelRunning() { cancel_.Cancel(); }

  // Joins every thread. Call after all of them reported exited().
  void Join();

  int size() const { return workers_; }

 private:
  void Run() noexcept;
  Outcome RunOne(Job job);

  const std::string watch_dir_;
  const int workers_;
  JobQueue* const queue_;
  Handler* const handler_;
  const Hooks hooks_;
  CancelToken cancel_;
  std::vector<std::thread> threads_;
};

}  // namespace dropq
