// Stopping dropqd: SIGTERM in the middle of a burst lets running handlers
// finish, puts every job not started back in pending and exits 0; a restart
// then processes the rest, each file exactly once. A handler that outlives
// drain_timeout is killed, its job goes back to pending marked interrupted,
// and the next start runs it again (attempt 2). A second signal exits at
// once, and the next start takes back the jobs it left active.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::seconds;

TEST(ShutdownTest, SigtermDuringBurstReleasesQueuedJobsAndRestartFinishesThem) {
  constexpr int kFiles = 200;
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  const std::string log = env.tmp.Sub("handler.log");
  // The name is logged when the run is complete, so a line means "processed".
  const std::string script =
      WriteScript(env.tmp.Sub("slow.sh"), "sleep 0.05\nprintf '%s\\n' \"$2\" >> \"$1\"\n");
  QueueSpec q;
  q.handler = "exec: [\"/bin/sh\", \"" + script + "\", \"" + log + "\", \"{name}\"]";
  q.workers = 2;
  env.WriteConfig(q);  // drain_timeout: 10s
  ASSERT_TRUE(env.Start()) << env.DaemonLog();

  const std::string staging = env.tmp.Mkdir("staging");
  std::set<std::string> names;
  for (int i = 0; i < kFiles; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "s-%03d.dat", i);
    names.insert(name);
    WriteAndRename(staging + "/" + name, env.inbox + "/" + name, name);
  }
  ASSERT_TRUE(
      WaitFor([&] { return StatCounter(env.redis, "q", "enqueued") == kFiles; }, seconds(30)));
  ASSERT_TRUE(WaitFor([&] { return ReadLines(log).size() >= 10; }, seconds(30)));

  const std::optional<int> status = env.Stop(SIGTERM, seconds(30));
  ASSERT_TRUE(status.has_value()) << "dropqd did not exit";
  EXPECT_EQ(*status, 0) << env.DaemonLog();
  EXPECT_NE(env.DaemonLog().find("shutdown.done"), std::string::npos);
  EXPECT_EQ(env.DaemonLog().find("shutdown.drain_timeout"), std::string::npos);

  // Nothing is left active; what ran is done, the rest pending again.
  EXPECT_EQ(env.redis.CmdInt({"ZCARD", DropqEnv::Key("q", "active")}), 0);
  const long long done = StatCounter(env.redis, "q", "done");
  const long long pending = env.redis.CmdInt({"LLEN", DropqEnv::Key("q", "pending")});
  EXPECT_GT(pending, 0) << "the burst ended before the signal: the test proved nothing";
  EXPECT_EQ(done + pending, kFiles);
  EXPECT_EQ(static_cast<long long>(ReadLines(log).size()), done);
  EXPECT_EQ(env.redis.CmdInt({"ZCARD", DropqEnv::Key("q", "done")}), done);
  EXPECT_EQ(static_cast<long long>(ListDir(env.inbox).size()), pending);
  const std::vector<std::string> pending_ids =
      env.redis.CmdList({"LRANGE", DropqEnv::Key("q", "pending"), "0", "-1"});
  EXPECT_EQ(std::set<std::string>(pending_ids.begin(), pending_ids.end()).size(),
            pending_ids.size())
      << "an id is in pending twice";
  for (const std::string& entry : pending_ids) {
    // "<id> <name>": never claimed, no record; "<id>": given back by the
    // shutdown, with its record.
    const std::string id = entry.substr(0, entry.find(' '));
    if (entry.find(' ') != std::string::npos) {
      EXPECT_EQ(env.redis.CmdInt({"EXISTS", DropqEnv::Key("q", "job:" + id)}), 0) << entry;
      continue;
    }
    auto rec = JobRecord(env.redis, "q", id);
    EXPECT_EQ(rec["state"], "pending") << id;
    EXPECT_EQ(rec.count("owner"), 0u) << id;
    EXPECT_EQ(rec.count("result"), 0u) << id << " was not started, yet has a result";
  }

  // Restart: the rest is processed; each file exactly once overall.
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "done") == kFiles; }, seconds(60)))
      << env.DaemonLog();
  const auto runs = Tally(ReadLines(log));
  EXPECT_EQ(runs.size(), names.size());
  for (const std::string& n : names) {
    EXPECT_EQ(runs.count(n) ? runs.at(n) : 0, 1) << n;
  }
  for (const auto& [name, ids] : JobIdsByName(env.redis, "q")) {
    ASSERT_EQ(ids.size(), 1u) << name;
    auto rec = JobRecord(env.redis, "q", ids[0]);
    EXPECT_EQ(rec["state"], "done") << name;
    EXPECT_EQ(rec["attempt"], "1") << name;
  }
  EXPECT_EQ(StatCounter(env.redis, "q", "enqueued"), kFiles);
  EXPECT_EQ(StatCounter(env.redis, "q", "interrupted"), 0);
  EXPECT_TRUE(ListDir(env.inbox).empty());
  EXPECT_EQ(ListDir(env.done).size(), names.size());
  EXPECT_EQ(env.Stop(), 0);
}

// Sleeps 30 s unless `quick` exists; logs "start NAME" and "end NAME".
std::string WriteSleeper(DropqEnv& env, const std::string& quick) {
  return WriteScript(env.tmp.Sub("sleeper.sh"),
                     "printf 'start %s\\n' \"$2\" >> \"$1\"\n"
                     "echo $$ > \"$3.tmp\" && mv \"$3.tmp\" \"$3\"\n"
                     "[ -e \"" +
                         quick +
                         "\" ] || sleep 30\n"
                         "printf 'end %s\\n' \"$2\" >> \"$1\"\n");
}

TEST(ShutdownTest, HandlerOutlivingDrainTimeoutIsKilledAndRunsAgainAfterRestart) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  const std::string log = env.tmp.Sub("handler.log"), quick = env.tmp.Sub("quick");
  const std::string pidfile = env.tmp.Sub("handler.pid");
  const std::string script = WriteSleeper(env, quick);
  QueueSpec q;
  q.handler =
      "exec: [\"/bin/sh\", \"" + script + "\", \"" + log + "\", \"{name}\", \"" + pidfile + "\"]";
  q.workers = 1;
  env.WriteConfig(q);
  SetDrainTimeout(env, "1s");
  ASSERT_TRUE(env.Start()) << env.DaemonLog();

  WriteFile(env.inbox + "/long.txt", "x\n");
  ASSERT_TRUE(WaitFor([&] { return Exists(pidfile); }, seconds(20))) << env.DaemonLog();
  const pid_t handler = ReadPid(pidfile);
  const auto by_name = JobIdsByName(env.redis, "q");
  ASSERT_EQ(by_name.count("long.txt"), 1u);
  const std::string id = by_name.at("long.txt")[0];
  ASSERT_TRUE(WaitFor([&] { return JobRecord(env.redis, "q", id)["attempt"] == "1"; }));

  const std::optional<int> status = env.Stop(SIGTERM, seconds(20));
  ASSERT_TRUE(status.has_value()) << "dropqd did not exit\n" << env.DaemonLog();
  EXPECT_EQ(*status, 0) << env.DaemonLog();
  EXPECT_NE(env.DaemonLog().find("shutdown.drain_timeout killing=1"), std::string::npos)
      << env.DaemonLog();
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(handler); }, seconds(10)));

  auto rec = JobRecord(env.redis, "q", id);
  EXPECT_EQ(rec["state"], "pending");
  EXPECT_EQ(rec["result"], "interrupted");
  EXPECT_EQ(rec["interrupted"], "1");
  EXPECT_EQ(rec["attempt"], "1");
  EXPECT_EQ(rec.count("owner"), 0u);
  EXPECT_EQ(env.redis.CmdInt({"ZCARD", DropqEnv::Key("q", "active")}), 0);
  EXPECT_EQ(env.redis.CmdList({"LRANGE", DropqEnv::Key("q", "pending"), "0", "-1"}),
            std::vector<std::string>{id});
  EXPECT_EQ(StatCounter(env.redis, "q", "interrupted"), 1);
  EXPECT_TRUE(Exists(env.Processing(id, "long.txt")));  // where the next run finds it
  EXPECT_EQ(ReadLines(log), std::vector<std::string>{"start long.txt"});

  // Next start, handler now quick: the same job is done, on its second run.
  WriteFile(quick, "");
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  ASSERT_TRUE(
      WaitFor([&] { return JobRecord(env.redis, "q", id)["state"] == "done"; }, seconds(20)))
      << env.DaemonLog();
  rec = JobRecord(env.redis, "q", id);
  EXPECT_EQ(rec["attempt"], "2");
  EXPECT_EQ(rec["result"], "ok");
  EXPECT_EQ(rec["interrupted"], "1");
  EXPECT_EQ(JobIds(env.redis, "q"), std::vector<std::string>{id});
  EXPECT_EQ(StatCounter(env.redis, "q", "enqueued"), 1);
  EXPECT_EQ(ReadLines(log),
            (std::vector<std::string>{"start long.txt", "start long.txt", "end long.txt"}));
  EXPECT_TRUE(Exists(env.done + "/long.txt"));
  EXPECT_EQ(env.Stop(), 0);
}

TEST(ShutdownTest, SecondSignalExitsAtOnceAndNextStartRequeuesTheJob) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  const std::string log = env.tmp.Sub("handler.log"), quick = env.tmp.Sub("quick");
  const std::string pidfile = env.tmp.Sub("handler.pid");
  const std::string script = WriteSleeper(env, quick);
  QueueSpec q;
  q.handler =
      "exec: [\"/bin/sh\", \"" + script + "\", \"" + log + "\", \"{name}\", \"" + pidfile + "\"]";
  q.workers = 1;
  env.WriteConfig(q);  // drain_timeout: 10s
  ASSERT_TRUE(env.Start()) << env.DaemonLog();

  WriteFile(env.inbox + "/long.txt", "x\n");
  ASSERT_TRUE(WaitFor([&] { return Exists(pidfile); }, seconds(20))) << env.DaemonLog();
  const pid_t handler = ReadPid(pidfile);
  const std::string id = JobIdsByName(env.redis, "q")["long.txt"].at(0);
  ASSERT_TRUE(WaitFor([&] { return JobRecord(env.redis, "q", id)["attempt"] == "1"; }));

  env.daemon()->Signal(SIGTERM);
  ASSERT_TRUE(WaitFor([&] { return env.DaemonLog().find("shutdown.begin") != std::string::npos; }));
  const std::optional<int> status = env.Stop(SIGINT, seconds(5));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(*status, 128 + SIGINT) << env.DaemonLog();
  EXPECT_NE(env.DaemonLog().find("shutdown.forced"), std::string::npos);

  // The handler is left running (its own process group); the job stays
  // active under this instance. Stop the orphan, as an operator would.
  EXPECT_EQ(JobRecord(env.redis, "q", id)["state"], "active");
  if (!ProcessGone(handler)) ::kill(-handler, SIGKILL);
  ASSERT_TRUE(WaitFor([&] { return ProcessGone(handler); }, seconds(10)));

  WriteFile(quick, "");
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  ASSERT_TRUE(
      WaitFor([&] { return JobRecord(env.redis, "q", id)["state"] == "done"; }, seconds(20)))
      << env.DaemonLog();
  auto rec = JobRecord(env.redis, "q", id);
  EXPECT_EQ(rec["attempt"], "2");
  EXPECT_EQ(rec["interrupted"], "1");
  EXPECT_EQ(JobIds(env.redis, "q"), std::vector<std::string>{id});
  EXPECT_TRUE(Exists(env.done + "/long.txt"));
  EXPECT_EQ(env.Stop(), 0);
}

}  // namespace
}  // namespace dropq::test
