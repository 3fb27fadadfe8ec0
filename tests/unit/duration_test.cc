// ParseDuration: "<integer><unit>" with unit ms, s, m, h or d, and nothing else.
#include <gtest/gtest.h>

#include <string>

#include "config/config.h"

namespace dropq {
namespace {

TEST(DurationTest, AcceptsEveryUnit) {
  EXPECT_EQ(ParseDuration("250ms").value(), Millis(250));
  EXPECT_EQ(ParseDuration("30s").value(), Millis(30 * 1000));
  EXPECT_EQ(ParseDuration("5m").value(), Millis(5 * 60 * 1000));
  EXPECT_EQ(ParseDuration("2h").value(), Millis(2 * 60 * 60 * 1000));
  EXPECT_EQ(ParseDuration("7d").value(), Millis(7LL * 24 * 60 * 60 * 1000));
}

TEST(DurationTest, AcceptsZeroAndLeadingZeros) {
  EXPECT_EQ(ParseDuration("0s").value(), Millis(0));
  EXPECT_EQ(ParseDuration("0ms").value(), Millis(0));
  EXPECT_EQ(ParseDuration("007s").value(), Millis(7000));
}

TEST(DurationTest, AcceptsUpToAHundredYears) {
  EXPECT_EQ(ParseDuration("36500d").value(), Millis(36500LL * 24 * 60 * 60 * 1000));
  EXPECT_FALSE(ParseDuration("36501d").ok());
  EXPECT_FALSE(ParseDuration("3153600000001ms").ok());
}

TEST(DurationTest, RejectsOverflow) {
  for (const char* text : {"99999999999999999999s", "9223372036854775807ms", "9223372036854775807d",
                           "106751991167301d"}) {
    SCOPED_TRACE(text);
    const auto d = ParseDuration(text);
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.error().code, Errc::kConfig);
  }
}

TEST(DurationTest, RejectsEverythingElseAndShowsTheAcceptedForms) {
  for (const char* text : {"",    "5",  "0",  "1.5s",  "-1s",   "+1s",    "5 m",   " 5m",
                           "5m ", "s",  "ms", "5S",    "5sec",  "5min",   "1h30m", "5us",
                           "5ns", "5w", "5y", "1e3ms", "0x10s", "five s", "5mss"}) {
    SCOPED_TRACE(text);
    const auto d = ParseDuration(text);
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.error().code, Errc::kConfig);
    EXPECT_NE(d.error().what.find("250ms, 30s, 5m, 2h or 7d"), std::string::npos) << d.error().what;
    EXPECT_NE(d.error().what.find("\"" + std::string(text) + "\""), std::string::npos)
        << d.error().what;
  }
}

}  // namespace
}  // namespace dropq
