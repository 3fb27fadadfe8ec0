// RetryPolicy decides what happens after a failed run, from the queue's
// `retry:` settings: retry later (and when), or give up (a dead letter).
//   * an exit code in permanent_exit_codes, or FailClass::kPermanent (an
//     HTTP status that retrying cannot fix): failed at once;
//   * an exit code in tempfail_exit_codes, or FailClass::kTempfail (a 429 or
//     503 with Retry-After): retried without using up an attempt, at most
//     kMaxTempfails times, after the delay the outcome asks for if any;
//   * any other failure (exit status, signal, timeout, spawn error) uses one
//     of max_attempts; the delay before retry n is drawn uniformly between
//     half and all of min(max_delay, initial_delay x 2^(n-1)).
// Thread: owner (it holds a random generator).
#pragma once

#include <cstdint>
#include <random>

#include "common/job.h"
#include "config/config.h"

namespace dropq {

constexpr uint32_t kMaxTempfails = 100;

struct RetryDecision {
  bool retry = false;      // false: the job is failed for good
  bool tempfail = false;   // the run does not count against max_attempts
  uint32_t failures = 0;   // failed runs after this one
  uint32_t tempfails = 0;  // tempfail runs after this one
  int64_t delay_ms = 0;    // when retry: how long to wait
};

class RetryPolicy {
 public:
  // `cfg` must outlive the policy. `seed` makes the delays reproducible in tests.
  explicit RetryPolicy(const RetryConfig& cfg, uint64_t seed = std::random_device{}());

  // For a run that failed (any RunResult but kOk, kVanished, kReplaced and
  // kInterrupted); `o.job` carries the counts from before this run.
  RetryDecision Decide(const Outcome& o);

  // The upper bound of the delay before retry `n` (1-based).
  int64_t MaxDelayMs(uint32_t n) const;

 private:
  const RetryConfig& cfg_;
  std::mt19937_64 rng_;
};

}  // namespace dropq
