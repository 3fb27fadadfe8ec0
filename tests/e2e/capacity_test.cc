// The backlog waits in Redis, not in dropqd: with 5,000 files, `capacity: 16`
// and two workers blocked in their handlers, dropqd claims no more than
// capacity + workers jobs (the active zset), leaves the rest pending, and its
// memory does not grow with the backlog. Once the handlers are released the
// jobs flow, still within the bound, and a SIGTERM returns the rest intact.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "tests/support/ctl_json.h"
#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int kCapacity = 16;
constexpr int kWorkers = 2;

TEST(CapacityTest, BacklogStaysInRedisAndMemoryStaysFlat) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  const std::string go = env.tmp.Sub("go"), log = env.tmp.Sub("handler.log");
  // Blocks until `go` exists, so the backlog stays put while it is measured.
  const std::string script = WriteScript(env.tmp.Sub("gate.sh"),
                                         "while [ ! -e \"$1\" ]; do sleep 0.05; done\n"
                                         "printf '%s\\n' \"$3\" >> \"$2\"\n");
  QueueSpec q;
  q.handler =
      "exec: [\"/bin/sh\", \"" + script + "\", \"" + go + "\", \"" + log + "\", \"{name}\"]";
  q.workers = kWorkers;
  q.capacity = kCapacity;
  env.WriteConfig(q);
  DisableAsanQuarantine();  // memory is measured below
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  const pid_t pid = env.daemon()->pid();

  const std::string active_key = DropqEnv::Key("q", "active");
  const std::string pending_key = DropqEnv::Key("q", "pending");
  long long max_active = 0;
  auto sample = [&] {
    const long long a = env.redis.CmdInt({"ZCARD", active_key});
    max_active = std::max(max_active, a);
    return a;
  };

  const std::string staging = env.tmp.Mkdir("staging");
  int dropped = 0;
  auto drop = [&](int n) {
    for (int i = 0; i < n; ++i, ++dropped) {
      char name[32];
      std::snprintf(name, sizeof name, "c-%05d.dat", dropped);
      WriteAndRename(staging + "/" + name, env.inbox + "/" + name, name);
      if (i % 100 == 0) sample();
    }
  };
  // Everything enqueued, and the claims settled at the bound.
  auto settled = [&](int total) {
    return WaitFor(
        [&] {
          const long long a = sample();
          return StatCounter(env.redis, "q", "enqueued") == total && a == kCapacity + kWorkers &&
                 env.redis.CmdInt({"LLEN", pending_key}) == total - a;
        },
        seconds(60), milliseconds(20));
  };

  drop(1000);
  ASSERT_TRUE(settled(1000)) << "active=" << sample()
                             << " pending=" << env.redis.CmdInt({"LLEN", pending_key})
                             << " enqueued=" << StatCounter(env.redis, "q", "enqueued");
  for (int i = 0; i < 20; ++i) sample();
  const long rss_1000 = RssKiB(pid);

  drop(4000);
  ASSERT_TRUE(settled(5000)) << "active=" << sample()
                             << " pending=" << env.redis.CmdInt({"LLEN", pending_key});
  for (int i = 0; i < 20; ++i) sample();
  const long rss_5000 = RssKiB(pid);

  EXPECT_LE(max_active, kCapacity + kWorkers);
  EXPECT_EQ(env.redis.CmdInt({"LLEN", pending_key}), 5000 - (kCapacity + kWorkers));
  EXPECT_EQ(StatCounter(env.redis, "q", "done"), 0);
  ASSERT_GT(rss_1000, 0);
  ASSERT_GT(rss_5000, 0);
  RecordProperty("rss_kib_1000", std::to_string(rss_1000));
  RecordProperty("rss_kib_5000", std::to_string(rss_5000));
  EXPECT_LT(rss_5000 - rss_1000, 4 * 1024)
      << "RSS grew from " << rss_1000 << " KiB to " << rss_5000 << " KiB with the backlog";
  const nlohmann::json st = CtlStatus(env, "q");
  EXPECT_EQ(st["active"], kCapacity + kWorkers);
  EXPECT_EQ(st["pending"], 5000 - (kCapacity + kWorkers));
  EXPECT_GT(st["oldest_pending_age_s"].get<double>(), 0.0);

  // Release the handlers: jobs flow. Held jobs include ones whose outcome
  // Redis has not taken yet, which the runner bounds at capacity + 2 x workers.
  WriteFile(go, "");
  ASSERT_TRUE(WaitFor(
      [&] {
        const long long a = sample();
        EXPECT_LE(a, kCapacity + 2 * kWorkers);
        return StatCounter(env.redis, "q", "done") >= 200;
      },
      seconds(60), milliseconds(5)))
      << env.DaemonLog().substr(0, 4000);

  // Stop: whatever did not run yet is pending again, nothing is lost.
  const std::optional<int> status = env.Stop(SIGTERM, seconds(30));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(*status, 0);
  EXPECT_EQ(env.redis.CmdInt({"ZCARD", active_key}), 0);
  const long long done = StatCounter(env.redis, "q", "done");
  EXPECT_EQ(done + env.redis.CmdInt({"LLEN", pending_key}), 5000);
  EXPECT_EQ(static_cast<long long>(ReadLines(log).size()), done);
  EXPECT_EQ(static_cast<long long>(ListDir(env.done).size()), done);
  EXPECT_EQ(static_cast<long long>(ListDir(env.inbox).size()), 5000 - done);
  const auto runs = Tally(ReadLines(log));
  for (const auto& [name, n] : runs) EXPECT_EQ(n, 1) << name;
}

}  // namespace
}  // namespace dropq::test
