#include "workers/retry_policy.h"

#include <gtest/gtest.h>

namespace dropq {
namespace {

Outcome Failed(RunResult r, int exit_code, uint32_t failures, uint32_t tempfails = 0) {
  Outcome o;
  o.result = r;
  o.exit_code = exit_code;
  o.job.failures = failures;
  o.job.tempfails = tempfails;
  return o;
}

TEST(RetryPolicyTest, DelaysDoubleWithinHalfAndAllOfTheCap) {
  RetryConfig cfg;
  cfg.max_attempts = 10;
  cfg.initial_delay = Millis(1000);
  cfg.max_delay = Millis(6000);
  RetryPolicy p(cfg, 42);
  EXPECT_EQ(p.MaxDelayMs(1), 1000);
  EXPECT_EQ(p.MaxDelayMs(2), 2000);
  EXPECT_EQ(p.MaxDelayMs(3), 4000);
  EXPECT_EQ(p.MaxDelayMs(4), 6000);
  EXPECT_EQ(p.MaxDelayMs(60), 6000);  // no overflow however many retries
  for (uint32_t failures = 0; failures < 6; ++failures) {
    for (int i = 0; i < 200; ++i) {
      RetryDecision d = p.Decide(Failed(RunResult::kExit, 3, failures));
      ASSERT_TRUE(d.retry);
      EXPECT_EQ(d.failures, failures + 1);
      const int64_t hi = p.MaxDelayMs(failures + 1);
      EXPECT_GE(d.delay_ms, hi / 2);
      EXPECT_LE(d.delay_ms, hi);
    }
  }
}

TEST(RetryPolicyTest, GivesUpAfterMaxAttempts) {
  RetryConfig cfg;
  cfg.max_attempts = 3;
  RetryPolicy p(cfg, 1);
  EXPECT_TRUE(p.Decide(Failed(RunResult::kExit, 1, 0)).retry);
  EXPECT_TRUE(p.Decide(Failed(RunResult::kTimeout, 0, 1)).retry);
  RetryDecision last = p.Decide(Failed(RunResult::kSignal, 0, 2));
  EXPECT_FALSE(last.retry);
  EXPECT_EQ(last.failures, 3u);
}

TEST(RetryPolicyTest, PermanentCodesFailAtOnce) {
  RetryConfig cfg;  // permanent [65]
  RetryPolicy p(cfg, 1);
  RetryDecision d = p.Decide(Failed(RunResult::kExit, 65, 0));
  EXPECT_FALSE(d.retry);
  EXPECT_EQ(d.failures, 1u);
}

TEST(RetryPolicyTest, TempfailRetriesWithoutUsingAnAttemptUpToALimit) {
  RetryConfig cfg;  // tempfail [75], max_attempts 5
  RetryPolicy p(cfg, 1);
  RetryDecision d = p.Decide(Failed(RunResult::kExit, 75, 4, 7));
  EXPECT_TRUE(d.retry);
  EXPECT_TRUE(d.tempfail);
  EXPECT_EQ(d.failures, 4u);
  EXPECT_EQ(d.tempfails, 8u);
  // Past the limit a tempfail counts like any failure: the 5th failure ends it.
  RetryDecision over = p.Decide(Failed(RunResult::kExit, 75, 4, kMaxTempfails));
  EXPECT_FALSE(over.retry);
  EXPECT_FALSE(over.tempfail);
}

}  // namespace
}  // namespace dropq
