// Redis behind Sentinel (redis.sentinels), with real redis-server and
// redis-sentinel processes on loopback: dropqctl finds the primary past a
// sentinel that is down and one that answers with a stale address, and
// follows a failover between two calls; dropqd follows a planned failover
// (SENTINEL FAILOVER: the old primary turns replica and answers READONLY)
// and an unplanned one (the primary SIGKILLed) in the middle of a burst:
// every file processed, no instance fenced, dropqd still running, the
// failover logged with the new primary. A restart after a failover finds
// the handlers its killed predecessor left; a heartbeat_ttl too short for
// the sentinels' timing is warned about.
#include <gtest/gtest.h>
#include <signal.h>

#include <string>

#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/process.h"
#include "tests/support/sentinels.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::seconds;

std::string Addr(const RedisServer& s) { return "127.0.0.1:" + std::to_string(s.port()); }

TEST(SentinelTest, DropqctlFindsThePrimaryAndFollowsAFailover) {
  Sentinels s;
  ASSERT_TRUE(s.ok());
  RedisServer* first = s.Primary();
  ASSERT_NE(first, nullptr);
  // Asked first: a port where nothing listens, then a sentinel that names
  // the replica (stale). Both cost a try; the third sentinel is right.
  const int dead = FreePort();
  const int stale = FreePort();
  DropqEnv env;
  Process fake(
      {"/usr/bin/python3", std::string(DROPQ_SOURCE_DIR) + "/tests/support/fake_sentinel.py",
       std::to_string(stale), "127.0.0.1", std::to_string(s.Replica()->port())},
      env.tmp.Sub("fake.log"));
  ASSERT_TRUE(WaitFor([&] { return fake.Log().find("ready") != std::string::npos; }, seconds(10)));
  env.redis_yaml = s.RedisYaml({dead, stale});
  env.WriteConfig(QueueSpec{});
  CommandResult r = env.Ctl({"pause", "q"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(first->CmdInt({"EXISTS", "dropq:{q}:paused"}), 1);

  // A planned failover between two calls: the next call finds the new
  // primary, reads what was written before and writes there.
  RedisServer* second = s.Replica();
  ASSERT_TRUE(s.Failover());
  r = env.Ctl({"status", "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(ParseJson(r.out)["queues"]["q"]["paused"], true) << r.out;
  r = env.Ctl({"resume", "q"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(second->CmdInt({"EXISTS", "dropq:{q}:paused"}), 0);

  // No sentinel at all: exit 69, saying what each one said.
  DropqEnv nowhere;
  nowhere.redis_yaml =
      "redis:\n  sentinels: [\"127.0.0.1:" + std::to_string(dead) + "\"]\n  master: dropq\n";
  nowhere.WriteConfig(QueueSpec{});
  r = nowhere.Ctl({"status"});
  EXPECT_EQ(r.status, 69);
  EXPECT_NE(r.err.find("no sentinel named a primary for dropq; sentinel 127.0.0.1:" +
                       std::to_string(dead)),
            std::string::npos)
      << r.err;
}

// One failover in the middle of a 400-file burst with a 50 ms handler.
void BurstThroughAFailover(bool kill_primary) {
  Sentinels s;
  ASSERT_TRUE(s.ok());
  RedisServer* first = s.Primary();
  ASSERT_NE(first, nullptr);
  RedisServer* second = s.Replica();
  DropqEnv env;
  env.redis_yaml = s.RedisYaml();
  QueueSpec q;
  q.handler = "exec: [\"/bin/sh\", \"-c\", \"sleep 0.05\"]";
  q.workers = 4;
  env.WriteConfig(q, "heartbeat_ttl: 15s\n");
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  EXPECT_NE(env.DaemonLog().find("redis.primary addr=" + Addr(*first) + " master=dropq"),
            std::string::npos)
      << env.DaemonLog();
  constexpr int kFiles = 400;
  for (int i = 0; i < kFiles; ++i) WriteFile(env.inbox + "/f" + std::to_string(i), "x");
  ASSERT_TRUE(WaitFor([&] { return StatCounter(*first, "q", "done") >= 50; }, seconds(60)))
      << env.DaemonLog();
  if (kill_primary) {
    first->Stop(/*hard=*/true);
    ASSERT_TRUE(s.WaitForPrimary(second, seconds(60)));
  } else {
    ASSERT_TRUE(s.Failover());
  }
  // Every file processed, on the new primary's count and on disk.
  ASSERT_TRUE(WaitFor([&] { return ListDir(env.done).size() == static_cast<size_t>(kFiles); },
                      seconds(120)))
      << ListDir(env.done).size() << "\n"
      << env.DaemonLog();
  EXPECT_TRUE(WaitFor(
      [&] {
        return second->CmdInt({"LLEN", "dropq:{q}:pending"}) == 0 &&
               second->CmdInt({"ZCARD", "dropq:{q}:active"}) == 0;
      },
      seconds(30)));
  EXPECT_EQ(second->CmdInt({"ZCARD", "dropq:{q}:failed"}), 0);
  const std::string log = env.DaemonLog();
  // What the connection went through, in the test's output.
  for (const std::string& line : SplitLines(log)) {
    if (line.find(" redis.") != std::string::npos) std::printf("[ log      ] %s\n", line.c_str());
  }
  EXPECT_NE(log.find("redis.failover from=" + Addr(*first) + " to=" + Addr(*second)),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find("instance.fenced"), std::string::npos) << log;
  EXPECT_EQ(log.find("redis.sentinel_timing"), std::string::npos) << log;  // 15 s > 1.5 x 4 s
  EXPECT_TRUE(env.daemon()->running());
  EXPECT_EQ(env.Stop(SIGTERM, seconds(60)), 0);
}

// A heartbeat_ttl too short for the sentinels' down-after-milliseconds
// would make every failover fence the instance: said at start.
TEST(SentinelTest, WarnsWhenHeartbeatTtlIsTooShortForTheSentinels) {
  Sentinels s(/*down_after_ms=*/4000);
  ASSERT_TRUE(s.ok());
  DropqEnv env;
  env.redis_yaml = s.RedisYaml();
  env.WriteConfig(QueueSpec{}, "heartbeat_ttl: 9s\n");
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  EXPECT_NE(env.DaemonLog().find(
                "redis.sentinel_timing sentinel=127.0.0.1:" + std::to_string(s.ports()[0]) +
                " down_after_ms=4000 heartbeat_ttl_ms=9000 "
                "want_heartbeat_ttl_ms_over=10500"),
            std::string::npos)
      << env.DaemonLog();
  EXPECT_EQ(env.Stop(), 0);
}

// A dropqd killed with its handlers running, a failover, a restart: the
// namespace that marks its handlers does not depend on which server is
// primary, so the restarted dropqd finds them and kills them before their
// jobs run again.
TEST(SentinelTest, ARestartAfterAFailoverFindsTheOrphans) {
  Sentinels s;
  ASSERT_TRUE(s.ok());
  DropqEnv env;
  env.redis_yaml = s.RedisYaml();
  const std::string go = env.tmp.Sub("go"), pids = env.tmp.Mkdir("pids");
  const std::string script = WriteScript(env.tmp.Sub("gate.sh"),
                                         "echo $$ > \"$2/$$\"\n"
                                         "while [ ! -e \"$1\" ]; do sleep 0.05; done\n");
  QueueSpec q;
  q.handler = "exec: [\"/bin/sh\", \"" + script + "\", \"" + go + "\", \"" + pids + "\"]";
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  WriteFile(env.inbox + "/a.txt", "a");
  ASSERT_TRUE(WaitFor([&] { return ListDir(pids).size() == 1; }, seconds(20))) << env.DaemonLog();
  pid_t orphan = -1;
  ASSERT_TRUE(WaitFor([&] { return (orphan = ReadPid(pids + "/" + ListDir(pids)[0])) > 0; }));
  ASSERT_EQ(env.Stop(SIGKILL, seconds(10)), 128 + SIGKILL);
  ASSERT_TRUE(s.Failover());
  EXPECT_FALSE(ProcessGone(orphan));
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(orphan); }, seconds(10))) << env.DaemonLog();
  EXPECT_NE(env.DaemonLog().find("orphans.found instance=test-1 count="), std::string::npos)
      << env.DaemonLog();
  WriteFile(go, "");
  ASSERT_TRUE(WaitFor(
      [&] {
        RedisServer* primary = s.Primary();
        return primary != nullptr && StatCounter(*primary, "q", "done") == 1;
      },
      seconds(30)))
      << env.DaemonLog();
  EXPECT_EQ(env.Stop(), 0);
}

TEST(SentinelTest, DropqdFollowsAPlannedFailoverMidBurst) { BurstThroughAFailover(false); }

TEST(SentinelTest, DropqdFollowsAKilledPrimaryMidBurst) { BurstThroughAFailover(true); }

}  // namespace
}  // namespace dropq::test
