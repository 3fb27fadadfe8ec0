// WaitingJobs holds a loop executor's jobs accepted and not yet started: a
// FIFO bounded by the executor's capacity (workers/executor.h: the runner
// claims only room() more, so the backlog waits in Redis, not here).
// Thread: loop (the executor's).
#pragma once

#include <cstddef>
#include <deque>
#include <iterator>
#include <utility>
#include <vector>

#include "common/check.h"
#include "common/job.h"

namespace dropq {

class WaitingJobs {
 public:
  explicit WaitingJobs(size_t capacity) : capacity_(capacity) {}

  size_t room() const { return jobs_.size() >= capacity_ ? 0 : capacity_ - jobs_.size(); }
  size_t size() const { return jobs_.size(); }
  bool empty() const { return jobs_.empty(); }

  // More than room() is a bug of the caller's.
  void Add(std::vector<Job> jobs) {
    DROPQ_CHECK(jobs.size() <= room());
    for (Job& j : jobs) jobs_.push_back(std::move(j));
  }
  // The oldest; not empty().
  Job Pop() {
    Job j = std::move(jobs_.front());
    jobs_.pop_front();
    return j;
  }
  // Every job, oldest first; leaves none.
  std::vector<Job> TakeAll() {
    std::vector<Job> out(std::make_move_iterator(jobs_.begin()),
                         std::make_move_iterator(jobs_.end()));
    jobs_.clear();
    return out;
  }

 private:
  const size_t capacity_;
  std::deque<Job> jobs_;
};

}  // namespace dropq
