// ThreadExecutor is the Executor of worker threads: a WorkerPool whose
// threads pop jobs from a bounded JobQueue and stop on a sentinel. Builtins
// and exec handlers run here. The workers' hooks do not post one function
// per event to the loop: they append to one batch under a lock, and only the
// event that finds the batch empty posts its hand-over, so a burst of
// outcomes costs one wake-up and one allocation per batch.
//
// Thread: the Executor methods on the loop thread (construction and
// destruction too); the workers' hooks on worker threads; `post` from any.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "workers/executor.h"
#include "workers/handler.h"
#include "workers/job_queue.h"
#include "workers/processing.h"
#include "workers/spare_dirs.h"
#include "workers/worker_pool.h"

namespace dropq {

class ThreadExecutor final : public Executor {
 public:
  // Runs a function on the loop thread on a later turn (Loop::Post). Thread: any.
  using Post = std::function<void(std::function<void()>)>;

  // `workers` threads (0: none; then stopped() is true once Stop() ran);
  // room for `capacity` jobs accepted and not started. `handler` and
  // `spares` (may be null) must outlive the executor; the rest is as
  // WorkerPool's.
  ThreadExecutor(Post post, Sink sink, std::string watch_dir, AreaLayout layout, std::string area,
                 int workers, size_t capacity, Handler* handler, SpareDirs* spares);
  // Stops the workers if Stop() was not called, and joins them. Batches
  // posted and not yet handed over are dropped.
  ~ThreadExecutor() override;

  void Start() override;
  int slots() const override { return workers_; }
  size_t room() const override;
  size_t waiting() const override { return queue_.size(); }
  void Accept(std::vector<Job> jobs) override;
  std::vector<Job> TakeBack() override { return queue_.DrainJobs(); }
  void Stop() override;
  bool stopped() const override { return stopping_ && exited_ == workers_; }
  void Interrupt(bool also_later) override;

 private:
  // What the workers hand over, and whether its hand-over is posted. Shared
  // with the posted functions, which may run after the executor is gone.
  struct Batch {
    std::mutex mu;
    std::vector<RunReport> reports;   // guarded by mu
    int exited = 0;                   // guarded by mu: workers that took a sentinel
    bool posted = false;              // guarded by mu
    ThreadExecutor* owner = nullptr;  // loop thread only: null once destroyed
  };
  // Worker thread: adds to the batch, posting its hand-over if none is.
  void Add(RunReport* report, bool exited);
  // Loop thread: hands the batch to the sink.
  static void HandOver(const std::shared_ptr<Batch>& batch);

  const Post post_;
  const Sink sink_;
  const int workers_;
  JobQueue queue_;
  const std::shared_ptr<Batch> batch_ = std::make_shared<Batch>();
  std::unique_ptr<WorkerPool> pool_;
  bool stopping_ = false;
  int exited_ = 0;  // workers whose exit was handed over
};

}  // namespace dropq
