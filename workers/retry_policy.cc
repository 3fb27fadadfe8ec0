#include "workers/retry_policy.h"

#include <algorithm>

namespace dropq {
namespace {

bool Contains(const std::vector<int>& codes, int code) {
  return std::find(codes.begin(), codes.end(), code) != codes.end();
}

}  // namespace

RetryPolicy::RetryPolicy(const RetryConfig& cfg, uint64_t seed) : cfg_(cfg), rng_(seed) {}

int64_t RetryPolicy::MaxDelayMs(uint32_t n) const {
  const int64_t cap = cfg_.max_delay.count();
  int64_t d = cfg_.initial_delay.count();
  for (uint32_t i = 1; i < n && d < cap; ++i) d *= 2;  // doubling stops at the cap: no overflow
  return std::min(d, cap);
}

RetryDecision RetryPolicy::Decide(const Outcome& o) {
  RetryDecision d;
  d.failures = o.job.failures;
  d.tempfails = o.job.tempfails;
  const bool exited = o.result == RunResult::kExit;
  if (o.fail_class == FailClass::kPermanent ||
      (exited && Contains(cfg_.permanent_exit_codes, o.exit_code))) {
    d.failures += 1;
    return d;  // EX_DATAERR and friends: retrying cannot help
  }
  const bool tempfail = o.fail_class == FailClass::kTempfail ||
                        (exited && Contains(cfg_.tempfail_exit_codes, o.exit_code));
  if (tempfail && o.retry_after_ms > 0 && o.job.tempfails < kMaxTempfails) {
    // The server said when: no backoff of ours on top.
    d.retry = true;
    d.tempfail = true;
    d.tempfails += 1;
    d.delay_ms = o.retry_after_ms;
    return d;
  }
  uint32_t n;  // which retry this would be
  if (tempfail && o.job.tempfails < kMaxTempfails) {
    d.tempfail = true;
    d.tempfails += 1;
    n = d.tempfails;
  } else {
    d.failures += 1;
    if (d.failures >= static_cast<uint32_t>(cfg_.max_attempts)) return d;
    n = d.failures;
  }
  const int64_t hi = MaxDelayMs(n);
  d.retry = true;
  d.delay_ms = std::uniform_int_distribution<int64_t>(hi / 2, hi)(rng_);
  return d;
}

}  // namespace dropq
