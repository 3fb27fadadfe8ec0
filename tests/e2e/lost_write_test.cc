// Redis can lose acknowledged writes (a crash under appendfsync everysec, a
// failover to a replica that was behind). When it loses a claim, the job is
// pending again while this instance runs it, and the next CLAIM hands it
// over a second time. dropqd keeps the run it has, drops the copy (logged as
// job.duplicate_claim and counted), and the job finishes once.
#include <gtest/gtest.h>

#include <string>

#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::seconds;

TEST(LostWriteTest, AJobClaimedAgainWhileItRunsRunsOnce) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  const std::string log = env.tmp.Sub("handler.log"), go = env.tmp.Sub("go");
  const std::string script = WriteScript(env.tmp.Sub("gate.sh"),
                                         "printf 'start %s\\n' \"$3\" >> \"$2\"\n"
                                         "while [ ! -e \"$1\" ]; do sleep 0.05; done\n"
                                         "printf 'end %s\\n' \"$3\" >> \"$2\"\n");
  QueueSpec q;
  q.handler =
      "exec: [\"/bin/sh\", \"" + script + "\", \"" + go + "\", \"" + log + "\", \"{name}\"]";
  q.workers = 2;
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();

  WriteFile(env.inbox + "/a.txt", "a");
  ASSERT_TRUE(WaitFor([&] { return ReadLines(log).size() == 1; }, seconds(20))) << env.DaemonLog();
  const std::string id = OnlyJobId(env.redis, "q", "a.txt");
  ASSERT_FALSE(id.empty());
  const std::string job = "dropq:{q}:job:" + id;
  ASSERT_EQ(env.redis.Cmd({"HGET", job, "state"}), "active");

  // What Redis looks like after losing the claim: the job pending, unowned.
  env.redis.Cmd({"HSET", job, "state", "pending"});
  env.redis.Cmd({"HDEL", job, "owner", "claimed"});
  env.redis.Cmd({"ZREM", "dropq:{q}:active", id});
  env.redis.Cmd({"RPUSH", "dropq:{q}:pending", id});
  ASSERT_TRUE(
      WaitFor([&] { return Count(env.DaemonLog(), "job.duplicate_claim") > 0; }, seconds(20)))
      << env.DaemonLog();
  EXPECT_NE(env.DaemonLog().find("job.duplicate_claim queue=q job=" + id), std::string::npos);

  WriteFile(go, "");
  ASSERT_TRUE(WaitForOutcomes(env.redis, 1, 0)) << env.DaemonLog();
  EXPECT_EQ(ReadLines(log), (std::vector<std::string>{"start a.txt", "end a.txt"}));
  EXPECT_EQ(env.redis.Cmd({"HGET", job, "state"}), "done");
  EXPECT_EQ(env.redis.CmdInt({"LLEN", "dropq:{q}:pending"}), 0);
  EXPECT_EQ(env.redis.CmdInt({"ZCARD", "dropq:{q}:active"}), 0);
  EXPECT_EQ(Count(env.DaemonLog(), "check.failed"), 0u);
  EXPECT_EQ(env.Stop(), 0);
}

}  // namespace
}  // namespace dropq::test
