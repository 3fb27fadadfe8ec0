// dropqd under a service manager: a unix datagram socket of the test's own
// stands in for systemd's NOTIFY_SOCKET. READY=1 comes once the inotify watch
// exists, even while Redis is still down (with a STATUS= that says so), then
// STATUS= lines, WATCHDOG=1 at half of WATCHDOG_USEC, and STOPPING=1 on
// SIGTERM. A loop blocked on purpose (DROPQD_TEST_BLOCK_ON_SIGUSR2) stops the
// pings, which is what makes systemd restart a stuck service.
#include <dirent.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

struct Message {
  Clock::time_point at;
  std::string text;
};

// The socket systemd would hold: messages are datagrams of "KEY=value" lines.
class FakeNotifySocket {
 public:
  explicit FakeNotifySocket(const std::string& path) : path_(path) {
    fd_ = UniqueFd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    path.copy(a.sun_path, sizeof a.sun_path - 1);
    ok_ = fd_.get() >= 0 && ::bind(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  bool ok() const { return ok_; }

  // The next message within `timeout`, or nullopt.
  std::optional<Message> Next(milliseconds timeout) {
    pollfd p{fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return std::nullopt;
    char buf[4096];
    const ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
    if (n < 0) return std::nullopt;
    return Message{Clock::now(), std::string(buf, static_cast<size_t>(n))};
  }

  // Messages until one contains `needle` (returned last), within `timeout`.
  std::vector<Message> Until(const std::string& needle, milliseconds timeout) {
    std::vector<Message> seen;
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      auto m = Next(std::chrono::duration_cast<milliseconds>(deadline - Clock::now()));
      if (!m) break;
      seen.push_back(*m);
      if (m->text.find(needle) != std::string::npos) break;
    }
    return seen;
  }

 private:
  std::string path_;
  UniqueFd fd_;
  bool ok_ = false;
};

bool Has(const std::vector<Message>& ms, const std::string& needle) {
  return std::any_of(ms.begin(), ms.end(),
                     [&](const Message& m) { return m.text.find(needle) != std::string::npos; });
}

// Inotify watches the process holds ("inotify wd:" lines in /proc/<pid>/fdinfo).
int InotifyWatches(pid_t pid) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/fdinfo";
  int n = 0;
  for (const std::string& fd : ListDir(dir)) {
    for (const std::string& line : ReadLines(dir + "/" + fd)) {
      if (line.rfind("inotify wd:", 0) == 0) ++n;
    }
  }
  return n;
}

// Sets the service manager's variables for the next child, and only for it.
class ServiceEnv {
 public:
  ServiceEnv(const std::string& socket, const std::string& watchdog_usec) {
    ::setenv("NOTIFY_SOCKET", socket.c_str(), 1);
    ::setenv("WATCHDOG_USEC", watchdog_usec.c_str(), 1);
  }
  ~ServiceEnv() { Clear(); }
  void Clear() {
    ::unsetenv("NOTIFY_SOCKET");
    ::unsetenv("WATCHDOG_USEC");
    ::unsetenv("DROPQD_TEST_BLOCK_ON_SIGUSR2");
  }
};

TEST(NotifyTest, ReadyWithWatchesInPlaceThenStatusWatchdogAndStopping) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  QueueSpec q;
  q.handler = "builtin: sha256";
  env.WriteConfig(q);
  env.redis.Stop(/*hard=*/true);  // READY must not wait for Redis
  FakeNotifySocket sock(env.tmp.Sub("notify.sock"));
  ASSERT_TRUE(sock.ok());

  ServiceEnv service(env.tmp.Sub("notify.sock"), "600000");  // WatchdogSec=600ms
  Process daemon({DROPQD_BIN, "--config", env.config}, env.tmp.Sub("dropqd.log"));
  service.Clear();  // redis-server, started below, must not see it

  std::vector<Message> first = sock.Until("READY=1", seconds(20));
  ASSERT_TRUE(Has(first, "READY=1")) << daemon.Log();
  // The watch on the inbox existed when READY=1 arrived.
  EXPECT_GE(InotifyWatches(daemon.pid()), 1);
  const std::string& ready = first.back().text;
  EXPECT_NE(ready.find("STATUS=1 queue watched"), std::string::npos) << ready;
  EXPECT_NE(ready.find("waiting for redis at"), std::string::npos) << ready;
  EXPECT_FALSE(Has(first, "STOPPING=1"));

  // A file dropped now, with Redis still down, is safe and done later.
  WriteFile(env.inbox + "/early.txt", "early");
  ASSERT_TRUE(env.redis.Restart());
  std::vector<Message> up = sock.Until("redis ok", seconds(20));
  ASSERT_TRUE(Has(up, "redis ok")) << daemon.Log();
  EXPECT_TRUE(WaitFor([&] { return ListDir(env.done).size() == 1; }, seconds(30))) << daemon.Log();

  // WATCHDOG=1 every 300 ms (half of 600 ms): gaps between pings within
  // a generous band around that.
  std::vector<Clock::time_point> pings;
  const auto until = Clock::now() + seconds(3);
  while (Clock::now() < until) {
    auto m = sock.Next(milliseconds(500));
    if (m && m->text.find("WATCHDOG=1") != std::string::npos) pings.push_back(m->at);
  }
  ASSERT_GE(pings.size(), 5U) << daemon.Log();
  std::vector<long> gaps;
  for (size_t i = 1; i < pings.size(); ++i) {
    gaps.push_back(std::chrono::duration_cast<milliseconds>(pings[i] - pings[i - 1]).count());
  }
  std::sort(gaps.begin(), gaps.end());
  const long median = gaps[gaps.size() / 2];
  std::printf("[ measure ] watchdog pings=%zu median_gap_ms=%ld max_gap_ms=%ld\n", pings.size(),
              median, gaps.back());
  EXPECT_GE(median, 200);
  EXPECT_LE(median, 450);
  EXPECT_LT(gaps.back(), 600) << "a gap as long as WatchdogSec would have cost a restart";

  // STATUS= lines keep coming (every few seconds) and say what is there.
  std::vector<Message> status = sock.Until("pending", seconds(10));
  EXPECT_TRUE(Has(status, "STATUS=1 queue, 0 pending, 0 active, redis ok")) << daemon.Log();

  daemon.Signal(SIGTERM);
  std::vector<Message> stop = sock.Until("STOPPING=1", seconds(10));
  EXPECT_TRUE(Has(stop, "STOPPING=1")) << daemon.Log();
  EXPECT_EQ(daemon.Wait(seconds(30)), 0);
}

TEST(NotifyTest, ABlockedLoopStopsTheWatchdogPings) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  QueueSpec q;
  q.handler = "builtin: noop";
  env.WriteConfig(q);
  FakeNotifySocket sock(env.tmp.Sub("notify.sock"));
  ASSERT_TRUE(sock.ok());
  ServiceEnv service(env.tmp.Sub("notify.sock"), "400000");
  ::setenv("DROPQD_TEST_BLOCK_ON_SIGUSR2", "1", 1);
  Process daemon({DROPQD_BIN, "--config", env.config}, env.tmp.Sub("dropqd.log"));
  service.Clear();

  ASSERT_TRUE(Has(sock.Until("READY=1", seconds(20)), "READY=1")) << daemon.Log();
  int before = 0;
  for (int i = 0; i < 20 && before < 3; ++i) {
    auto m = sock.Next(milliseconds(500));
    if (m && m->text.find("WATCHDOG=1") != std::string::npos) ++before;
  }
  ASSERT_EQ(before, 3) << "no pings before the block: " << daemon.Log();

  daemon.Signal(SIGUSR2);
  ASSERT_TRUE(WaitFor([&] { return daemon.Log().find("dropqd.test_block") != std::string::npos; },
                      seconds(10)));
  // Drain what was sent before the block, then: silence, for more than
  // three times the interval, while the process is still alive.
  while (sock.Next(milliseconds(250))) {
  }
  int after = 0;
  const auto until = Clock::now() + milliseconds(1500);
  while (Clock::now() < until) {
    auto m = sock.Next(milliseconds(100));
    if (m && m->text.find("WATCHDOG=1") != std::string::npos) ++after;
  }
  EXPECT_EQ(after, 0);
  EXPECT_TRUE(daemon.running());
  daemon.Signal(SIGKILL);
  daemon.Wait(seconds(10));
}

}  // namespace
}  // namespace dropq::test
