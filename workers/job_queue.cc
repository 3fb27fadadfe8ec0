#include "workers/job_queue.h"

namespace dropq {

JobQueue::JobQueue(std::size_t capacity) : capacity_(capacity) {}

bool JobQueue::TryPush(Job& job) {
  {
    std::lock_guard lock(mu_);
    if (jobs_.size() >= capacity_) return false;
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
  return true;
}

std::optional<Job> JobQueue::Pop() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return !jobs_.empty() || stops_ > 0; });
  if (!jobs_.empty()) {
    Job job = std::move(jobs_.front());
    jobs_.pop_front();
    return job;
  }
  --stops_;
  return std::nullopt;
}

void JobQueue::PushStops(std::size_t n) {
  {
    std::lock_guard lock(mu_);
    stops_ += n;
  }
  cv_.notify_all();
}

std::vector<Job> JobQueue::DrainJobs() {
  std::lock_guard lock(mu_);
  std::vector<Job> out(std::make_move_iterator(jobs_.begin()),
                       std::make_move_iterator(jobs_.end()));
  jobs_.clear();
  return out;
}

std::size_t JobQueue::size() const {
  std::lock_guard lock(mu_);
  return jobs_.size();
}

}  // namespace dropq
