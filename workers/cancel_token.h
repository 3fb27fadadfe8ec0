// CancelToken tells running handlers to stop: the pool fires it when the
// drain timeout passes. It is an eventfd, so an exec handler can wait on it in
// the same poll() as its child, and a builtin can check it between reads.
// Thread: any (Cancel() and cancelled() are safe from every thread).
#pragma once

#include <atomic>

#include "common/unique_fd.h"

namespace dropq {

class CancelToken {
 public:
  CancelToken();
  CancelToken(const CancelToken&) = delete;
  CancelToken& operator=(const CancelToken&) = delete;

  // Fires the token; idempotent.
  void Cancel();
  // Makes a fired token unfired again, for the next run. The owner makes sure
  // no Cancel() meant for the last run can arrive afterwards.
  void Reset();
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }
  // Becomes readable (POLLIN) once Cancel() ran. Never read it: it stays readable.
  int fd() const { return fd_.get(); }

 private:
  UniqueFd fd_;
  std::atomic<bool> cancelled_{false};
};

}  // namespace dropq
