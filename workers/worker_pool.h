// WorkerPool runs `workers` threads for one queue. Each pops a job from the
// JobQueue, makes its file ready (workers/processing.h Enter(): in place or
// moved into the processing area, and checked to be still the regular file
// the job was made for, by descriptor for a builtin), counts the attempt, runs the Handler on it
// there and reports the Outcome, then takes the next; a stop sentinel ends one thread. The pool
// never learns that a loop exists: it reports through the Hooks it was given.
//
// Thread: the owner (the loop thread) constructs, starts, cancels and joins;
// the hooks run on worker threads.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/job.h"
#include "workers/cancel_token.h"
#include "workers/handler.h"
#include "workers/job_queue.h"
#include "workers/processing.h"
#include "workers/spare_dirs.h"

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
  // directory job names are relative to; `area` the queue's processing area
  // ("" when off), used as `layout` says; job directories come from `spares`
  // (may be null; must outlive the pool).
  WorkerPool(std::string watch_dir, AreaLayout layout, std::string area, int workers,
             JobQueue* queue, Handler* handler, Hooks hooks, SpareDirs* spares = nullptr);
  // Joins the threads; the owner must have pushed one sentinel per worker.
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void Start();

  // Kills every running handler (their jobs report kInterrupted), and any
  // started later. Used when the drain timeout passes. Thread: any.
  void CancelRunning();

  // Kills the handlers running now (their jobs report kInterrupted); later
  // runs are not affected. Used when this instance may have lost its jobs to
  // another one (fenced off from Redis). Thread: any.
  void InterruptRunning();

  // Joins every thread. Call after all of them reported exited().
  void Join();

  int size() const { return workers_; }

 private:
  // One worker's cancellation: fired only while that worker runs a handler.
  struct Slot {
    std::mutex mu;
    bool running = false;  // guarded by mu
    CancelToken token;
  };
  void Run(Slot* slot) noexcept;
  Outcome RunOne(Job job, Slot* slot);

  const std::string watch_dir_;
  const AreaLayout layout_;
  const std::string area_;  // "" when off
  const int workers_;
  JobQueue* const queue_;
  Handler* const handler_;
  const Hooks hooks_;
  SpareDirs* const spares_;                   // may be null
  std::atomic<bool> stop_all_{false};         // draining: every run is cancelled
  std::vector<std::unique_ptr<Slot>> slots_;  // one per worker, made before the threads
  std::vector<std::thread> threads_;
};

}  // namespace dropq
