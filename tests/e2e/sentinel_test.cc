// Redis behind Sentinel (redis.sentinels), with real redis-server and
// redis-sentinel processes on loopback: dropqd and dropqctl find the primary
// past a sentinel that is down and one that answers with a stale address,
// and dropqctl's status, show and retry follow a failover between two calls.
// dropqd follows a planned failover (SENTINEL FAILOVER: the old primary
// turns replica and answers READONLY) and an unplanned one (the primary
// SIGKILLed) in the middle of a 2,000-file burst, and three in a row (ten
// with scripts/test --long): every file processed once, no two runs of a
// file overlapping, none re-run, no instance fenced, dropqd still running,
// each failover logged and counted with the new primary. A restart after a
// failover finds the handlers its killed predecessor left; a heartbeat_ttl
// too short for the sentinels' timing is warned about.
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "tests/support/ctl_json.h"
#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/process.h"
#include "tests/support/run_check.h"
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
  // dropqd past the same two sentinels: it connects to the true primary.
  QueueSpec q;
  q.handler = "exec: [\"/bin/sh\", \"-c\", \"exit 3\"]";
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  EXPECT_NE(env.DaemonLog().find("redis.primary addr=" + Addr(*first) + " master=dropq"),
            std::string::npos)
      << env.DaemonLog();
  EXPECT_EQ(Count(env.DaemonLog(), "redis.sentinel err="), 2U) << env.DaemonLog();
  WriteFile(env.inbox + "/bad.txt", "x");
  ASSERT_TRUE(WaitFor([&] {
    return first->CmdInt({"ZCARD", "dropq:{q}:failed"}) == 1;
  })) << env.DaemonLog();
  const std::string id = first->CmdList({"ZRANGE", "dropq:{q}:failed", "0", "-1"})[0];

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
  r = env.Ctl({"show", id});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("bad.txt"), std::string::npos) << r.out;
  r = env.Ctl({"resume", "q"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(second->CmdInt({"EXISTS", "dropq:{q}:paused"}), 0);
  // A retry through the sentinels: the file goes back, runs (and fails) again.
  r = env.Ctl({"retry", id});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(WaitFor([&] {
    return StatCounter(*second, "q", "failed") == 2 &&
           second->CmdInt({"ZCARD", "dropq:{q}:failed"}) == 1;
  })) << env.DaemonLog();
  EXPECT_EQ(env.Stop(), 0);

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

int EnvInt(const char* name, int def) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : def;
}

// A burst through failovers, and what it must leave behind.
struct Storm {
  int files = 2000;
  int rounds = 1;             // failovers, evenly spread over the burst
  bool first_kill = true;     // round 0 SIGKILLs the primary; then planned and killed alternate
  std::string run_s = "0.2";  // how long each handler run takes
  int workers = 32;
  int down_after_ms = 5000;  // the sentinels' down-after-milliseconds
  int failover_timeout_ms = 5000;
  std::string heartbeat_ttl = "20s";
};

void BurstThroughFailovers(const Storm& st) {
  Sentinels s(st.down_after_ms, st.failover_timeout_ms);
  ASSERT_TRUE(s.ok());
  RedisServer* first = s.Primary();
  ASSERT_NE(first, nullptr);
  DropqEnv env;
  env.redis_yaml = s.RedisYaml();
  const std::string log = env.tmp.Sub("handler.log");
  QueueSpec q;
  q.handler = RunLogHandler(env.tmp.Sub("handler.sh"), log, st.run_s);
  q.workers = st.workers;
  const int metrics_port = FreePort();
  env.WriteConfig(q, "heartbeat_ttl: " + st.heartbeat_ttl + "\nmetrics: { listen: \"127.0.0.1:" +
                         std::to_string(metrics_port) + "\" }\n");
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  EXPECT_NE(env.DaemonLog().find("redis.primary addr=" + Addr(*first) + " master=dropq"),
            std::string::npos)
      << env.DaemonLog();
  // A second instance runs the same queue's jobs (role consume): a claim a
  // failover lost would let it run a job that still runs in the first.
  std::string config2;
  for (const std::string& line :
       SplitLines(ReadFile(WriteInstanceConfig(env, "test-2", "consume")))) {
    if (line.rfind("metrics:", 0) != 0) config2 += line + "\n";  // the port is the first's
  }
  WriteFile(env.tmp.Sub("test-2.yaml"), config2);
  Process second({DROPQD_BIN, "--config", env.tmp.Sub("test-2.yaml")}, env.tmp.Sub("dropqd2.log"));
  ASSERT_TRUE(
      WaitFor([&] { return second.Log().find("queue.consuming queue=q") != std::string::npos; },
              seconds(30)))
      << second.Log();
  // The +switch-master subscriptions are in place before the first failover.
  ASSERT_TRUE(WaitFor(
      [&] {
        return env.DaemonLog().find("redis_sentinel_watch.up") != std::string::npos &&
               second.Log().find("redis_sentinel_watch.up") != std::string::npos;
      },
      seconds(20)))
      << env.DaemonLog();

  std::vector<std::string> names;
  for (int i = 0; i < st.files; ++i) names.push_back("f" + std::to_string(i));
  const std::string staging = env.tmp.Mkdir("staging");
  // The files come in rounds+1 slices: each failover starts once half of
  // the slice before it is done, and the next slice arrives as it starts.
  const auto slice_end = [&](int i) {
    return static_cast<size_t>(st.files) * (i + 1) / (st.rounds + 1);
  };
  size_t dropped = 0;
  const auto drop_until = [&](size_t until) {
    for (; dropped < until; ++dropped) {
      WriteAndRename(staging + "/" + names[dropped], env.inbox + "/" + names[dropped],
                     names[dropped]);
    }
  };
  drop_until(slice_end(0));

  std::vector<std::string> switches;  // "<from> to=<to>", one per failover
  for (int round = 0; round < st.rounds; ++round) {
    const size_t begin = round == 0 ? 0 : slice_end(round - 1);
    const size_t due = begin + (slice_end(round) - begin) / 2;
    ASSERT_TRUE(WaitFor([&] { return ListDir(env.done).size() >= due; }, seconds(120)))
        << "round " << round << ": " << ListDir(env.done).size() << " done\n"
        << env.DaemonLog();
    RedisServer* from = s.Primary();
    RedisServer* to = s.Replica();
    ASSERT_NE(from, nullptr);
    ASSERT_NE(to, nullptr);
    const bool kill = (round % 2 == 0) == st.first_kill;
    if (kill) {
      from->Stop(/*hard=*/true);
      drop_until(slice_end(round + 1));
      ASSERT_TRUE(s.WaitForPrimary(to, seconds(60))) << "round " << round;
      // Back as a replica of the new primary (the sentinels reconfigure
      // it), so that the next round has one to promote.
      ASSERT_TRUE(from->Restart());
    } else {
      drop_until(slice_end(round + 1));
      ASSERT_TRUE(s.Failover()) << "round " << round;
    }
    switches.push_back(Addr(*from) + " to=" + Addr(*to));
    if (round + 1 < st.rounds) {
      ASSERT_TRUE(s.WaitForReplica(from, seconds(60))) << "round " << round;
    }
  }
  RedisServer* last = s.Primary();
  ASSERT_NE(last, nullptr);
  // Every file processed, once, and nothing left in Redis but done jobs.
  const bool settled = WaitFor(
      [&] {
        return ListDir(env.done).size() >= static_cast<size_t>(st.files) &&
               last->CmdInt({"LLEN", "dropq:{q}:pending"}) == 0 &&
               last->CmdInt({"ZCARD", "dropq:{q}:active"}) == 0 &&
               last->CmdInt({"ZCARD", "dropq:{q}:scheduled"}) == 0;
      },
      seconds(120), std::chrono::milliseconds(200));
  EXPECT_TRUE(settled) << ListDir(env.done).size();
  const RunCheck c = CheckRuns(env, *last, log, names);
  std::printf("[ storm    ] failovers=%d %s\n", st.rounds, c.Summary().c_str());
  for (const std::string& d : c.details) ADD_FAILURE() << d;
  EXPECT_EQ(c.unprocessed, 0);
  EXPECT_EQ(c.lost, 0);
  EXPECT_EQ(c.unexplained, 0);  // a re-run only of a run marked interrupted
  EXPECT_EQ(c.overlaps, 0);     // never two runs of one file at once
  EXPECT_EQ(c.unfinished, 0);   // no handler was killed (no fence)
  EXPECT_EQ(c.not_done, 0);
  EXPECT_EQ(last->CmdInt({"ZCARD", "dropq:{q}:failed"}), 0);

  const std::string dlog = env.DaemonLog();
  const std::string dlog2 = second.Log();
  // What the connection went through, in the test's output.
  for (const std::string& line : SplitLines(dlog)) {
    if (line.find(" redis.") != std::string::npos) std::printf("[ log      ] %s\n", line.c_str());
  }
  for (const std::string& sw : switches) {
    EXPECT_NE(dlog.find("redis.failover from=" + sw), std::string::npos) << sw << "\n" << dlog;
  }
  // Each one announced by the sentinel listened to (+switch-master).
  EXPECT_GE(Count(dlog, "redis.switch_master to="), static_cast<size_t>(st.rounds)) << dlog;
  EXPECT_EQ(dlog.find("instance.fenced"), std::string::npos) << dlog;
  EXPECT_EQ(dlog2.find("instance.fenced"), std::string::npos) << dlog2;
  // No claim was lost: Redis never handed a job out again while it ran.
  EXPECT_EQ(dlog.find("job.duplicate_claim"), std::string::npos) << dlog;
  EXPECT_EQ(dlog2.find("job.duplicate_claim"), std::string::npos) << dlog2;
  EXPECT_EQ(dlog.find("jobs.reclaimed"), std::string::npos) << dlog;
  EXPECT_EQ(dlog2.find("jobs.reclaimed"), std::string::npos) << dlog2;
  EXPECT_GE(Count(dlog2, "redis.failover from="), static_cast<size_t>(st.rounds)) << dlog2;
  // The second instance ran its share (else the checks above prove little).
  long ran2 = 0;
  for (const std::string& line : SplitLines(dlog2)) {
    const size_t at = line.find("queue.summary queue=q done=");
    if (at != std::string::npos) ran2 = std::max(ran2, std::atol(line.c_str() + at + 27));
  }
  EXPECT_GT(ran2, 0) << dlog2;
  EXPECT_EQ(dlog.find("redis.sentinel_timing"), std::string::npos) << dlog;
  // Every failover counted (the metrics are synced every second), and
  // claims and renewals waited for the replica, while there was one.
  std::string metrics;
  EXPECT_TRUE(WaitFor(
      [&] {
        metrics = GetMetrics(metrics_port).second;
        return metrics.find("dropq_redis_failovers_total " + std::to_string(st.rounds) + "\n") !=
               std::string::npos;
      },
      seconds(10)))
      << metrics;
  EXPECT_NE(metrics.find("dropq_redis_primary{addr=\"" + Addr(*last) + "/0\"} 1"),
            std::string::npos)
      << metrics;
  const std::string acked = "dropq_redis_replica_waits_total{result=\"acked\"} ";
  const size_t at = metrics.find(acked);
  ASSERT_NE(at, std::string::npos) << metrics;
  EXPECT_GT(std::atof(metrics.c_str() + at + acked.size()), 0.0) << metrics;
  EXPECT_TRUE(env.daemon()->running());
  EXPECT_TRUE(second.running());
  second.Signal(SIGTERM);
  EXPECT_EQ(second.Wait(seconds(60)), 0) << dlog2;
  EXPECT_EQ(env.Stop(SIGTERM, seconds(60)), 0);
}

// The test 1: the primary SIGKILLed under 2,000 files with a 200 ms
// handler, at realistic timings (down-after-milliseconds 5000, heartbeat_ttl
// 20s): no run cut short, none run twice, none lost.
TEST(SentinelTest, DropqdFollowsAKilledPrimaryMidBurst) { BurstThroughFailovers(Storm{}); }

// SENTINEL FAILOVER: the old primary turns replica and refuses writes.
TEST(SentinelTest, DropqdFollowsAPlannedFailoverMidBurst) {
  Storm st;
  st.first_kill = false;
  BurstThroughFailovers(st);
}

// Failovers one after another, killed and planned in turn (Sentinel fails a
// primary over again only after twice failover-timeout, kept short here).
// DROPQ_FAILOVER_ROUNDS and DROPQ_FAILOVER_FILES make it longer
// (scripts/test --long: ten failovers under 10,000 files).
TEST(SentinelTest, FailoverStormLosesNothing) {
  Storm st;
  st.rounds = EnvInt("DROPQ_FAILOVER_ROUNDS", 3);
  st.files = EnvInt("DROPQ_FAILOVER_FILES", 1500);
  ASSERT_GT(st.rounds, 0);
  ASSERT_GT(st.files, 0);
  st.run_s = "0.05";
  st.workers = 16;
  st.down_after_ms = 1000;
  st.failover_timeout_ms = 2000;
  st.heartbeat_ttl = "10s";
  BurstThroughFailovers(st);
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

}  // namespace
}  // namespace dropq::test
