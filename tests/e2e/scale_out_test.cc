// More instances share one Redis: a queue's `role` says what each does with
// it. A `consume` instance watches nothing and runs the jobs another instance
// enqueued (the files on storage both see at the same path); a `produce`
// instance watches and enqueues and runs nothing. Every file is processed
// exactly once, and each job stays attributed to the instance that ran it.
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdio>
#include <map>
#include <set>
#include <string>

#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Each run appends "<instance> <name>" to `log`, after `sleep_s` seconds.
QueueSpec LoggingQueue(DropqEnv& env, const std::string& log, const std::string& sleep_s) {
  const std::string script =
      WriteScript(env.tmp.Sub("log.sh"), "sleep " + sleep_s +
                                             "\n"
                                             "printf '%s %s\\n' \"$DROPQ_INSTANCE\" \"$2\" >> "
                                             "\"$1\"\n");
  QueueSpec q;
  q.handler = "exec: [\"/bin/sh\", \"" + script + "\", \"" + log + "\", \"{name}\"]";
  q.workers = 4;
  return q;
}

// Renames `n` small files named f-00000.dat... into the inbox.
void Drop(DropqEnv& env, int n) {
  const std::string staging = env.tmp.Mkdir("staging");
  for (int i = 0; i < n; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "f-%05d.dat", i);
    WriteAndRename(staging + "/" + name, env.inbox + "/" + name, name);
  }
}

// Checks that every one of `n` files ran exactly once and is done, and
// returns how many runs each instance made (from the handler's own log).
std::map<std::string, int> ExpectEachOnce(DropqEnv& env, const std::string& log, int n) {
  std::map<std::string, int> by_instance;
  std::map<std::string, int> by_name;
  for (const std::string& line : ReadLines(log)) {
    const size_t sp = line.find(' ');
    ++by_instance[line.substr(0, sp)];
    ++by_name[line.substr(sp + 1)];
  }
  EXPECT_EQ(static_cast<int>(by_name.size()), n);
  for (const auto& [name, runs] : by_name) EXPECT_EQ(runs, 1) << name;
  EXPECT_EQ(static_cast<int>(ListDir(env.done).size()), n);
  EXPECT_EQ(ListDir(env.inbox), std::vector<std::string>{});
  EXPECT_EQ(env.redis.CmdInt({"ZCARD", DropqEnv::Key("q", "active")}), 0);
  EXPECT_EQ(env.redis.CmdInt({"LLEN", DropqEnv::Key("q", "pending")}), 0);
  // The job records say who ran each job, and agree with the handler's log.
  std::map<std::string, int> owners;
  for (const std::string& id : JobIds(env.redis, "q")) {
    auto rec = JobRecord(env.redis, "q", id);
    EXPECT_EQ(rec["state"], "done") << id;
    EXPECT_EQ(rec["attempt"], "1") << id;
    ++owners[rec["owner"]];
  }
  EXPECT_EQ(owners, by_instance);
  return by_instance;
}

TEST(ScaleOutTest, BothAndConsumeShareABurstEachFileOnce) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  const std::string log = env.tmp.Sub("handler.log");
  QueueSpec q = LoggingQueue(env, log, "0.02");
  q.extra = "keep_done: 100000";
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  const std::string config2 = WriteInstanceConfig(env, "test-2", "consume");
  Process second({DROPQD_BIN, "--config", config2}, env.tmp.Sub("dropqd2.log"));
  ASSERT_TRUE(
      WaitFor([&] { return second.Log().find("queue.consuming queue=q") != std::string::npos; },
              seconds(30)))
      << second.Log();

  constexpr int kFiles = 2000;
  Drop(env, kFiles);
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "done") == kFiles; }, seconds(120),
                      milliseconds(50)))
      << "done=" << StatCounter(env.redis, "q", "done") << "\n"
      << second.Log().substr(0, 4000);
  // The consumer never watched: it logged no scan.
  EXPECT_EQ(second.Log().find("scan.start"), std::string::npos);

  second.Signal(SIGTERM);
  EXPECT_EQ(second.Wait(seconds(30)), 0) << second.Log();
  EXPECT_EQ(env.Stop(), 0) << env.DaemonLog();
  const auto by_instance = ExpectEachOnce(env, log, kFiles);
  auto runs = [&](const std::string& instance) {
    const auto it = by_instance.find(instance);
    return it == by_instance.end() ? 0 : it->second;
  };
  // Both took a share: with a sleeping handler, neither can keep up alone.
  EXPECT_GE(runs("test-1"), kFiles / 10);
  EXPECT_GE(runs("test-2"), kFiles / 10);
  RecordProperty("runs_test_1", runs("test-1"));
  RecordProperty("runs_test_2", runs("test-2"));
}

TEST(ScaleOutTest, ProduceOnlyAndConsumeOnlyLoseNothing) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  const std::string log = env.tmp.Sub("handler.log");
  QueueSpec q = LoggingQueue(env, log, "0");
  q.extra = "role: produce\nkeep_done: 100000";
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();

  // Files arrive before any consumer exists: they wait, pending.
  constexpr int kFiles = 500;
  Drop(env, kFiles);
  ASSERT_TRUE(
      WaitFor([&] { return StatCounter(env.redis, "q", "enqueued") == kFiles; }, seconds(60)))
      << env.DaemonLog().substr(0, 4000);
  EXPECT_EQ(env.redis.CmdInt({"LLEN", DropqEnv::Key("q", "pending")}), kFiles);
  EXPECT_EQ(ReadLines(log).size(), 0u);  // the producer ran nothing

  const std::string config2 = WriteInstanceConfig(env, "test-2", "consume");
  Process consumer({DROPQD_BIN, "--config", config2}, env.tmp.Sub("dropqd2.log"));
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "done") == kFiles; }, seconds(120),
                      milliseconds(50)))
      << "done=" << StatCounter(env.redis, "q", "done") << "\n"
      << consumer.Log().substr(0, 4000);

  // And files dropped while both run flow through the consumer too.
  WriteFile(env.inbox + "/late.dat", "late");
  ASSERT_TRUE(
      WaitFor([&] { return StatCounter(env.redis, "q", "done") == kFiles + 1; }, seconds(30)))
      << consumer.Log().substr(0, 4000);

  consumer.Signal(SIGTERM);
  EXPECT_EQ(consumer.Wait(seconds(30)), 0) << consumer.Log();
  EXPECT_EQ(env.Stop(), 0) << env.DaemonLog();
  const auto by_instance = ExpectEachOnce(env, log, kFiles + 1);
  EXPECT_EQ(by_instance, (std::map<std::string, int>{{"test-2", kFiles + 1}}));
}

}  // namespace
}  // namespace dropq::test
