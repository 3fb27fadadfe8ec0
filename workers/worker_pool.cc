#include "workers/worker_pool.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "common/clock.h"
#include "common/file_kind.h"
#include "common/log.h"
#include "workers/processing.h"

namespace dropq {

WorkerPool::WorkerPool(std::string watch_dir, AreaLayout layout, std::string area, int workers,
                       JobQueue* queue, Handler* handler, Hooks hooks, SpareDirs* spares)
    : watch_dir_(std::move(watch_dir)),
      layout_(layout),
      area_(std::move(area)),
      workers_(workers),
      queue_(queue),
      handler_(handler),
      hooks_(std::move(hooks)),
      spares_(spares) {}

WorkerPool::~WorkerPool() { Join(); }

void WorkerPool::Start() {
  threads_.reserve(static_cast<size_t>(workers_));
  for (int i = 0; i < workers_; ++i) slots_.push_back(std::make_unique<Slot>());
  for (int i = 0; i < workers_; ++i) {
    threads_.emplace_back([this, s = slots_[static_cast<size_t>(i)].get()] { Run(s); });
  }
}

void WorkerPool::CancelRunning() {
  stop_all_.store(true);
  InterruptRunning();
}

void WorkerPool::InterruptRunning() {
  for (auto& s : slots_) {
    std::lock_guard lock(s->mu);
    if (s->running) s->token.Cancel();
  }
}

void WorkerPool::Join() {
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

void WorkerPool::Run(Slot* slot) noexcept {
  try {
    while (std::optional<Job> job = queue_->Pop()) hooks_.finished(RunOne(std::move(*job), slot));
  } catch (const std::exception& e) {
    // Only allocation failures can get here; Redis still holds every job.
    LogError("worker.crash", {{"err", e.what()}});
    std::abort();
  }
  hooks_.exited();
}

Outcome WorkerPool::RunOne(Job job, Slot* slot) {
  Entered in = Enter(layout_, watch_dir_, area_, job, handler_->ReadsDescriptor(), spares_);
  Outcome out;
  if (in.result != RunResult::kOk) {
    out.result = in.result;
    out.error = std::move(in.error);
    out.started_ms = NowUnixMs();
    if (in.result == RunResult::kError && S_ISREG(in.st.st_mode)) {
      out.ident = FileIdentity::FromStat(in.st);
    }
  } else {
    // Count the attempt before the handler starts: `attempt` is the number of
    // runs started, and a run that dropqd loses mid-way still counts.
    job.attempt += 1;
    hooks_.started(job);
    if (LogEnabled(LogLevel::kDebug)) {  // spares the fields' strings on every job
      LogDebug("job.start", {{"queue", job.queue},
                             {"job", job.id},
                             {"path", watch_dir_ + "/" + job.name},
                             {"attempt", job.attempt}});
    }
    {
      std::lock_guard lock(slot->mu);
      slot->running = true;
      if (stop_all_.load()) slot->token.Cancel();
    }
    out = handler_->Run(job, in.path, in.fd.get(), slot->token);
    in.fd.Reset();  // before the outcome is reported: the disposition may move the file
    {
      // A Cancel() meant for this run cannot reach the next one.
      std::lock_guard lock(slot->mu);
      slot->running = false;
      slot->token.Reset();
    }
    // The identity recorded is the one that was processed: if the file was
    // rewritten during the run it no longer matches, and is processed again.
    out.ident = FileIdentity::FromStat(in.st);
    out.work_path = std::move(in.path);
  }
  out.job = std::move(job);
  return out;
}

}  // namespace dropq
