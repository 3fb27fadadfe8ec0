// The console's access rules (web/access.h): which Host and Origin headers
// name the console, and the token check.
#include "web/access.h"

#include <gtest/gtest.h>

namespace dropq::web {
namespace {

using Auth = AccessPolicy::Auth;

TEST(AccessTest, LoopbackAllowsItsNamesOnAnyPort) {
  const AccessPolicy p("127.0.0.1", {}, "");
  for (const char* h :
       {"127.0.0.1:8080", "127.0.0.1", "localhost:8080", "LOCALHOST:1", "[::1]:8080", "[::1]"}) {
    EXPECT_TRUE(p.HostAllowed(h)) << h;
  }
  // DNS rebinding: another name for the same address is refused.
  for (const char* h : {"", "evil.example", "evil.example:8080", "127.0.0.1.evil.example",
                        "localhost.evil.example:8080", "::1", "[::1", "[::1]x", "10.0.0.1:8080"}) {
    EXPECT_FALSE(p.HostAllowed(h)) << h;
  }
}

TEST(AccessTest, ExtraHostsAndWildcardListens) {
  const AccessPolicy p("0.0.0.0", {"Console.Example.com", "192.0.2.7"}, "t");
  EXPECT_TRUE(p.HostAllowed("console.example.com"));
  EXPECT_TRUE(p.HostAllowed("console.example.com:443"));
  EXPECT_TRUE(p.HostAllowed("192.0.2.7:8080"));
  EXPECT_FALSE(p.HostAllowed("0.0.0.0:8080"));  // not a name anyone reaches it by
  // An --allow-host given with a port, or an IPv6 address: its name counts.
  const AccessPolicy ported("0.0.0.0", {"console.example.com:443", "2001:db8::7", "[::2]:8"}, "");
  EXPECT_TRUE(ported.HostAllowed("console.example.com"));
  EXPECT_TRUE(ported.HostAllowed("[2001:db8::7]:8080"));
  EXPECT_TRUE(ported.HostAllowed("[::2]"));
  EXPECT_FALSE(p.HostAllowed("localhost:8080"));
  const AccessPolicy v6("::1", {}, "");
  EXPECT_TRUE(v6.HostAllowed("[::1]:8080"));
  EXPECT_TRUE(v6.HostAllowed("localhost"));
}

TEST(AccessTest, OriginsNameAnAllowedHost) {
  const AccessPolicy p("127.0.0.1", {"console.example.com"}, "t");
  EXPECT_TRUE(p.OriginAllowed("http://127.0.0.1:8080"));
  EXPECT_TRUE(p.OriginAllowed("https://console.example.com"));
  for (const char* o : {"null", "", "http://evil.example", "https://console.example.com.evil",
                        "file://", "http://127.0.0.1:8080/path", "ftp://127.0.0.1"}) {
    EXPECT_FALSE(p.OriginAllowed(o)) << o;
  }
}

TEST(AccessTest, TheTokenMustMatchExactly) {
  const AccessPolicy p("127.0.0.1", {}, "0123456789abcdef");
  EXPECT_EQ(p.CheckAuthorization("Bearer 0123456789abcdef"), Auth::kOk);
  EXPECT_EQ(p.CheckAuthorization(""), Auth::kMissing);
  EXPECT_EQ(p.CheckAuthorization("Bearer "), Auth::kMissing);
  EXPECT_EQ(p.CheckAuthorization("Basic 0123456789abcdef"), Auth::kMissing);
  EXPECT_EQ(p.CheckAuthorization("bearer 0123456789abcdef"), Auth::kMissing);
  for (const char* h : {"Bearer 0123456789abcdeF", "Bearer 0123456789abcde",
                        "Bearer 0123456789abcdef ", "Bearer 0123456789abcdef0"}) {
    EXPECT_EQ(p.CheckAuthorization(h), Auth::kWrong) << h;
  }
  EXPECT_FALSE(p.read_only());
  const AccessPolicy ro("127.0.0.1", {}, "");
  EXPECT_TRUE(ro.read_only());
  EXPECT_EQ(ro.CheckAuthorization("Bearer anything-at-all-here"), Auth::kReadOnly);
}

}  // namespace
}  // namespace dropq::web
