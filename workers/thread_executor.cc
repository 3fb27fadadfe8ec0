#include "workers/thread_executor.h"

#include "common/check.h"

namespace dropq {

ThreadExecutor::ThreadExecutor(Post post, Sink sink, std::string watch_dir, AreaLayout layout,
                               std::string area, int workers, size_t capacity, Handler* handler,
                               SpareDirs* spares)
    : post_(std::move(post)), sink_(std::move(sink)), workers_(workers), queue_(capacity) {
  batch_->owner = this;
  WorkerPool::Hooks hooks;
  hooks.started = [this](const Job& job) {
    RunReport r{RunReport::Kind::kStarted, {}};
    r.outcome.job = job;
    Add(&r, false);
  };
  hooks.finished = [this](Outcome&& o) {
    RunReport r{RunReport::Kind::kFinished, std::move(o)};
    Add(&r, false);
  };
  hooks.exited = [this] { Add(nullptr, true); };
  pool_ = std::make_unique<WorkerPool>(std::move(watch_dir), layout, std::move(area), workers,
                                       &queue_, handler, std::move(hooks), spares);
}

ThreadExecutor::~ThreadExecutor() {
  {
    std::lock_guard lock(batch_->mu);
    batch_->owner = nullptr;  // hand-overs still posted find it gone
  }
  // Workers exit only on sentinels: send them if Stop() did not.
  if (!stopping_) queue_.PushStops(static_cast<size_t>(workers_));
  pool_.reset();  // joins
}

void ThreadExecutor::Start() { pool_->Start(); }

size_t ThreadExecutor::room() const {
  const size_t waiting = queue_.size();
  return waiting >= queue_.capacity() ? 0 : queue_.capacity() - waiting;
}

void ThreadExecutor::Accept(std::vector<Job> jobs) {
  DROPQ_CHECK(!stopping_);
  for (Job& job : jobs) {
    // The runner claims only as many as room() allowed.
    DROPQ_CHECK(queue_.TryPush(job));
  }
}

void ThreadExecutor::Stop() {
  if (stopping_) return;
  stopping_ = true;
  queue_.PushStops(static_cast<size_t>(workers_));
  if (workers_ > 0) return;
  // No worker to wait for: stopped() holds already, and the sink hears it on
  // a later turn, as always (never from inside Stop()).
  post_([batch = batch_] {
    ThreadExecutor* self = nullptr;
    {
      std::lock_guard lock(batch->mu);
      self = batch->owner;
    }
    if (self != nullptr && self->sink_.stopped) self->sink_.stopped();
  });
}

void ThreadExecutor::Interrupt(bool also_later) {
  if (also_later) {
    pool_->CancelRunning();
  } else {
    pool_->InterruptRunning();
  }
}

void ThreadExecutor::Add(RunReport* report, bool exited) {
  bool post = false;
  {
    std::lock_guard lock(batch_->mu);
    if (report != nullptr) batch_->reports.push_back(std::move(*report));
    if (exited) ++batch_->exited;
    post = !std::exchange(batch_->posted, true);
  }
  if (post) post_([batch = batch_] { HandOver(batch); });
}

void ThreadExecutor::HandOver(const std::shared_ptr<Batch>& batch) {
  std::vector<RunReport> reports;
  int exited = 0;
  ThreadExecutor* self = nullptr;
  {
    std::lock_guard lock(batch->mu);
    batch->posted = false;
    reports.swap(batch->reports);
    exited = std::exchange(batch->exited, 0);
    self = batch->owner;
  }
  if (self == nullptr) return;  // the executor is gone, and its runner with it
  if (!reports.empty()) {
    self->sink_.report(std::move(reports));
    std::lock_guard lock(batch->mu);
    self = batch->owner;  // read again: nothing after the report may assume it lives
  }
  if (self != nullptr && exited > 0) {
    self->exited_ += exited;
    if (self->stopped() && self->sink_.stopped) self->sink_.stopped();
  }
}

}  // namespace dropq
