// ParseRedisUrl, RedisUrl::Display and RedactRedisUrl.
#include "config/redis_url.h"

#include <gtest/gtest.h>

#include <string>

namespace dropq {
namespace {

RedisUrl MustParse(const std::string& text) {
  auto u = ParseRedisUrl(text);
  EXPECT_TRUE(u.ok()) << text << ": " << (u.ok() ? "" : u.error().what);
  return u.ok() ? *u : RedisUrl{};
}

TEST(RedisUrlTest, DefaultValueIsLocalDbZero) {
  const RedisUrl u;
  EXPECT_EQ(u.Display(), "127.0.0.1:6379/0");
}

TEST(RedisUrlTest, TcpFull) {
  const RedisUrl u = MustParse("redis://127.0.0.1:6379/0");
  EXPECT_FALSE(u.unix_socket);
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.port, 6379);
  EXPECT_EQ(u.db, 0);
  EXPECT_EQ(u.user, "");
  EXPECT_EQ(u.password, "");
  EXPECT_EQ(u.Display(), "127.0.0.1:6379/0");
}

TEST(RedisUrlTest, TcpDefaultsPortAndDb) {
  const RedisUrl u = MustParse("redis://cache.internal");
  EXPECT_EQ(u.host, "cache.internal");
  EXPECT_EQ(u.port, 6379);
  EXPECT_EQ(u.db, 0);
  EXPECT_EQ(u.Display(), "cache.internal:6379/0");
  EXPECT_EQ(MustParse("redis://h/").db, 0);
  EXPECT_EQ(MustParse("redis://h:7000").port, 7000);
  EXPECT_EQ(MustParse("redis://h/15").db, 15);
  EXPECT_EQ(MustParse("redis://my_host-1:1/2147483647").Display(), "my_host-1:1/2147483647");
  EXPECT_EQ(MustParse("redis://h:65535/0").port, 65535);
}

TEST(RedisUrlTest, TcpCredentials) {
  RedisUrl u = MustParse("redis://:s3cret@db.example:6380/2");
  EXPECT_EQ(u.user, "");
  EXPECT_EQ(u.password, "s3cret");
  EXPECT_EQ(u.host, "db.example");
  EXPECT_EQ(u.port, 6380);
  EXPECT_EQ(u.db, 2);
  EXPECT_EQ(u.Display(), "db.example:6380/2");  // never the password

  u = MustParse("redis://app:pw@h");
  EXPECT_EQ(u.user, "app");
  EXPECT_EQ(u.password, "pw");
}

TEST(RedisUrlTest, CredentialsArePercentDecoded) {
  const RedisUrl u = MustParse("redis://us%65r:p%40ss%3Aw%2fd@h:1/0");
  EXPECT_EQ(u.user, "user");
  EXPECT_EQ(u.password, "p@ss:w/d");
}

TEST(RedisUrlTest, UnencodedAtInPasswordStillWorks) {
  const RedisUrl u = MustParse("redis://:p@ss@h:1/3");
  EXPECT_EQ(u.password, "p@ss");
  EXPECT_EQ(u.host, "h");
  EXPECT_EQ(u.db, 3);
}

TEST(RedisUrlTest, Ipv6) {
  RedisUrl u = MustParse("redis://[::1]:6380/1");
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, 6380);
  EXPECT_EQ(u.db, 1);
  EXPECT_EQ(u.Display(), "[::1]:6380/1");
  u = MustParse("redis://:pw@[fe80::1:2]");
  EXPECT_EQ(u.host, "fe80::1:2");
  EXPECT_EQ(u.port, 6379);
  EXPECT_EQ(u.password, "pw");
}

TEST(RedisUrlTest, UnixSocket) {
  RedisUrl u = MustParse("unix:///run/dropq/redis.sock");
  EXPECT_TRUE(u.unix_socket);
  EXPECT_EQ(u.path, "/run/dropq/redis.sock");
  EXPECT_EQ(u.db, 0);
  EXPECT_EQ(u.Display(), "unix:/run/dropq/redis.sock/0");

  u = MustParse("unix:///run/redis.sock?db=4");
  EXPECT_EQ(u.path, "/run/redis.sock");
  EXPECT_EQ(u.db, 4);
  EXPECT_EQ(u.Display(), "unix:/run/redis.sock/4");

  u = MustParse("unix://:pw@/run/redis.sock");
  EXPECT_EQ(u.password, "pw");
  EXPECT_EQ(u.path, "/run/redis.sock");

  u = MustParse("unix://app:p%40w@/run/redis.sock?db=1");
  EXPECT_EQ(u.user, "app");
  EXPECT_EQ(u.password, "p@w");
  EXPECT_EQ(u.db, 1);
  EXPECT_EQ(u.Display(), "unix:/run/redis.sock/1");
}

TEST(RedisUrlTest, RejectsBadUrls) {
  for (const char* text : {
           "",
           "127.0.0.1:6379",
           "http://h",
           "rediss://h",
           "redis://",
           "redis://:6379",
           "redis://h:0",
           "redis://h:65536",
           "redis://h:99999999999999999999",
           "redis://h:",
           "redis://h:abc",
           "redis://h:-1",
           "redis://h/x",
           "redis://h/-1",
           "redis://h/+1",
           "redis://h/1/2",
           "redis://h/2147483648",
           "redis://h?db=1",
           "redis://h#x",
           "redis://h h",
           "redis://::1:6379",
           "redis://[::1",
           "redis://[]:1",
           "redis://[::1]x",
           "redis://[zz::1]",
           "redis://user@h",
           "redis://:@h",
           "redis://u:%zz@h",
           "redis://u:%4@h",
           "unix://",
           "unix://run/redis.sock",
           "unix:///",
           "unix:///run/",
           "unix:///run/x.sock?db=x",
           "unix:///run/x.sock?db=",
           "unix:///run/x.sock?foo=1",
           "unix://pw@/run/x.sock",
       }) {
    SCOPED_TRACE(text);
    const auto u = ParseRedisUrl(text);
    ASSERT_FALSE(u.ok()) << u->Display();
    EXPECT_EQ(u.error().code, Errc::kConfig);
    EXPECT_FALSE(u.error().what.empty());
  }
}

TEST(RedisUrlTest, MessagesSayWhatIsWrong) {
  EXPECT_NE(ParseRedisUrl("redis://h:70000").error().what.find("port"), std::string::npos);
  EXPECT_NE(ParseRedisUrl("redis://h/x").error().what.find("database"), std::string::npos);
  EXPECT_NE(ParseRedisUrl("rediss://h").error().what.find("TLS"), std::string::npos);
  EXPECT_NE(ParseRedisUrl("redis://::1").error().what.find("brackets"), std::string::npos);
}

TEST(RedactRedisUrlTest, HidesOnlyThePassword) {
  EXPECT_EQ(RedactRedisUrl("redis://127.0.0.1:6379/0"), "redis://127.0.0.1:6379/0");
  EXPECT_EQ(RedactRedisUrl("redis://:s3cret@h:6379/0"), "redis://:***@h:6379/0");
  EXPECT_EQ(RedactRedisUrl("redis://app:s3cret@h/2"), "redis://app:***@h/2");
  EXPECT_EQ(RedactRedisUrl("redis://:p@ss@h"), "redis://:***@h");
  EXPECT_EQ(RedactRedisUrl("unix:///run/redis.sock?db=1"), "unix:///run/redis.sock?db=1");
  EXPECT_EQ(RedactRedisUrl("unix://app:pw@/run/redis.sock?db=1"),
            "unix://app:***@/run/redis.sock?db=1");
  EXPECT_EQ(RedactRedisUrl("redis://justapassword@h"), "redis://***@h");
}

}  // namespace
}  // namespace dropq
