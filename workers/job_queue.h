// JobQueue is the bounded hand-off between the loop thread, which pushes jobs
// it claimed from Redis, and the workers, which pop them. The loop claims only
// as many jobs as there are free slots, so the backlog waits in Redis and on
// disk, not in RAM. Shutdown pushes one stop sentinel per worker.
// Thread: any. Every method is internally locked.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <vector>

#include "common/job.h"

namespace dropq {

class JobQueue {
 public:
  explicit JobQueue(std::size_t capacity);
  JobQueue(const JobQueue&) = delete;
  JobQueue& operator=(const JobQueue&) = delete;

  // Moves `job` in and returns true if there is room; otherwise returns false
  // and leaves `job` untouched. Never blocks: the loop thread calls it.
  [[nodiscard]] bool TryPush(Job& job);

  // Blocks until a job or a stop sentinel arrives. Jobs are taken before
  // sentinels. nullopt is the sentinel: the worker exits. The caller owns the Job.
  std::optional<Job> Pop();

  // Adds `n` stop sentinels (beyond the capacity: they always fit).
  void PushStops(std::size_t n);

  // Removes and returns every job not yet taken (shutdown returns them to pending).
  std::vector<Job> DrainJobs();

  std::size_t size() const;
  std::size_t capacity() const { return capacity_; }

 private:
  const std::size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable cv_;  // signalled when a job or a sentinel arrives
  std::deque<Job> jobs_;        // guarded by mu_; never longer than capacity_
  std::size_t stops_ = 0;       // guarded by mu_; sentinels not yet taken
};

}  // namespace dropq
