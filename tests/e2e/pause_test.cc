// `dropqctl pause QUEUE` stops new jobs on every instance within a second
// (running ones finish, jobs claimed but not started go back to pending),
// while files keep being watched and enqueued; `dropqctl resume` starts them
// again on every instance. Two instances (both + consume) on one Redis.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <thread>

#include "tests/support/ctl_json.h"
#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

// Runs by instance, from the handler's start log ("<instance> <name>").
std::map<std::string, int> StartsByInstance(const std::string& log) {
  std::map<std::string, int> n;
  for (const std::string& line : ReadLines(log)) ++n[line.substr(0, line.find(' '))];
  return n;
}

TEST(PauseTest, PauseStopsNewJobsOnEveryInstanceAndResumeRestartsThem) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  const std::string log = env.tmp.Sub("starts.log");
  // Each run logs its start, then takes 100 ms.
  const std::string script = WriteScript(
      env.tmp.Sub("h.sh"), "printf '%s %s\\n' \"$DROPQ_INSTANCE\" \"$2\" >> \"$1\"\nsleep 0.1\n");
  QueueSpec q;
  q.handler = "exec: [\"/bin/sh\", \"" + script + "\", \"" + log + "\", \"{name}\"]";
  q.workers = 2;
  env.WriteConfig(q);
  const std::string consumer = WriteInstanceConfig(env, "test-2", "consume");
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  Process second({DROPQD_BIN, "--config", consumer}, env.tmp.Sub("test-2.log"));

  const std::string staging = env.tmp.Mkdir("staging");
  int dropped = 0;
  const auto drop = [&](int n) {
    for (int i = 0; i < n; ++i, ++dropped) {
      char name[32];
      std::snprintf(name, sizeof name, "f-%05d.dat", dropped);
      WriteAndRename(staging + "/" + name, env.inbox + "/" + name, name);
    }
  };
  drop(400);
  // Both instances are taking jobs.
  ASSERT_TRUE(WaitFor(
      [&] {
        auto s = StartsByInstance(log);
        return s["test-1"] >= 3 && s["test-2"] >= 3;
      },
      seconds(30)))
      << env.DaemonLog() << second.Log();

  CommandResult p = env.Ctl({"pause", "q", "--json"});
  ASSERT_EQ(p.status, 0) << p.err;
  EXPECT_EQ(ParseJson(p.out)["paused"], true);
  const auto paused_at = Clock::now();
  // Within a second every instance has stopped starting jobs.
  std::this_thread::sleep_for(seconds(1));
  const size_t starts_after_1s = ReadLines(log).size();
  drop(50);  // still watched and enqueued while paused
  std::this_thread::sleep_for(seconds(2));
  const size_t starts_after_3s = ReadLines(log).size();
  std::printf("[ measure ] starts: at pause+1s=%zu at pause+3s=%zu of %d\n", starts_after_1s,
              starts_after_3s, dropped);
  EXPECT_EQ(starts_after_3s, starts_after_1s) << "jobs started 1-3 s after the pause";
  EXPECT_LT(starts_after_1s, static_cast<size_t>(dropped));
  EXPECT_EQ(env.redis.CmdInt({"ZCARD", DropqEnv::Key("q", "active")}), 0);
  EXPECT_TRUE(
      WaitFor([&] { return StatCounter(env.redis, "q", "enqueued") == dropped; }, seconds(20)));
  nlohmann::json st = CtlStatus(env, "q");
  EXPECT_EQ(st["paused"], true) << st.dump();
  EXPECT_GT(st["pending"].get<long long>(), 0);
  EXPECT_NE(env.DaemonLog().find("queue.paused"), std::string::npos);
  EXPECT_NE(second.Log().find("queue.paused"), std::string::npos);
  (void)paused_at;

  const auto before = StartsByInstance(log);
  CommandResult r = env.Ctl({"resume", "q"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("q: resumed"), std::string::npos) << r.out;
  // Both instances start jobs again, and every file is done once.
  EXPECT_TRUE(WaitFor(
      [&] {
        auto s = StartsByInstance(log);
        return s["test-1"] > before.at("test-1") && s["test-2"] > before.at("test-2");
      },
      seconds(30)))
      << env.DaemonLog() << second.Log();
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "done") == dropped; }, seconds(120)))
      << env.DaemonLog();
  EXPECT_EQ(ReadLines(log).size(), static_cast<size_t>(dropped));
  EXPECT_EQ(CtlStatus(env, "q")["paused"], false);

  second.Signal(SIGTERM);
  EXPECT_EQ(second.Wait(seconds(30)), 0);
  EXPECT_EQ(env.Stop(SIGTERM, seconds(30)), 0);
}

}  // namespace
}  // namespace dropq::test
