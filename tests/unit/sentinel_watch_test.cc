// SentinelWatch::ParseSwitch: the sentinels' +switch-master message,
// "<name> <old-ip> <old-port> <new-ip> <new-port>", is taken only for this
// primary's name and only when whole.
#include "daemon/sentinel_watch.h"

#include <gtest/gtest.h>

namespace dropq {
namespace {

TEST(SentinelWatchTest, ParsesTheNewPrimaryOfThisMaster) {
  auto p = SentinelWatch::ParseSwitch("dropq 10.0.0.1 6379 10.0.0.2 6380", "dropq");
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->host, "10.0.0.2");
  EXPECT_EQ(p->port, 6380);
  auto v6 = SentinelWatch::ParseSwitch("dropq ::1 6379 fd00::2 6380", "dropq");
  ASSERT_TRUE(v6.has_value());
  EXPECT_EQ(v6->host, "fd00::2");
  EXPECT_EQ(v6->Display(), "[fd00::2]:6380");
}

TEST(SentinelWatchTest, IgnoresOtherMastersAndBrokenMessages) {
  EXPECT_FALSE(SentinelWatch::ParseSwitch("other 10.0.0.1 6379 10.0.0.2 6380", "dropq"));
  EXPECT_FALSE(SentinelWatch::ParseSwitch("dropqx 10.0.0.1 6379 10.0.0.2 6380", "dropq"));
  EXPECT_FALSE(SentinelWatch::ParseSwitch("dropq 10.0.0.1 6379 10.0.0.2", "dropq"));
  EXPECT_FALSE(SentinelWatch::ParseSwitch("dropq 10.0.0.1 6379 10.0.0.2 6380 x", "dropq"));
  EXPECT_FALSE(SentinelWatch::ParseSwitch("dropq 10.0.0.1 6379 10.0.0.2 port", "dropq"));
  EXPECT_FALSE(SentinelWatch::ParseSwitch("dropq 10.0.0.1 6379 10.0.0.2 70000", "dropq"));
  EXPECT_FALSE(SentinelWatch::ParseSwitch("", "dropq"));
}

}  // namespace
}  // namespace dropq
