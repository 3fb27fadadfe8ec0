// An instance cut off from Redis for longer than heartbeat_ttl fences itself:
// it kills its running handler (another instance may be running that job by
// now) and, once Redis is back, the job goes back to pending, marked
// interrupted, and runs again. The daemon never exits meanwhile.
#include <gtest/gtest.h>

#include <string>

#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::seconds;

TEST(FenceTest, HandlersStopWhenTheHeartbeatCannotBeRenewed) {
  DropqEnv env;
  // Redis keeps everything it acknowledged across the restart below.
  RedisServer durable({"--appendonly", "yes", "--appendfsync", "always"});
  ASSERT_TRUE(durable.ok());
  const std::string log = env.tmp.Sub("handler.log"), go = env.tmp.Sub("go");
  const std::string pids = env.tmp.Mkdir("pids");
  const std::string script = WriteScript(env.tmp.Sub("gate.sh"),
                                         "echo $$ > \"$2/$$\"\n"
                                         "while [ ! -e \"$1\" ]; do sleep 0.05; done\n"
                                         "echo end >> \"$3\"\n");
  QueueSpec q;
  q.handler =
      "exec: [\"/bin/sh\", \"" + script + "\", \"" + go + "\", \"" + pids + "\", \"" + log + "\"]";
  q.workers = 1;
  std::string cfg = env.WriteConfig(q, "heartbeat_ttl: 1s\n");
  // Point the config at the durable server.
  std::string text = ReadFile(cfg);
  const std::string from = env.redis.url(), to = durable.url();
  text.replace(text.find(from), from.size(), to);
  WriteFile(cfg, text);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();

  WriteFile(env.inbox + "/a.txt", "a");
  ASSERT_TRUE(WaitFor([&] { return ListDir(pids).size() == 1; }, seconds(20))) << env.DaemonLog();
  pid_t handler = -1;
  ASSERT_TRUE(WaitFor([&] { return (handler = ReadPid(pids + "/" + ListDir(pids)[0])) > 0; }));
  const std::string id = JobIdsByName(durable, "q").at("a.txt").at(0);
  ASSERT_TRUE(WaitFor([&] { return JobRecord(durable, "q", id)["attempt"] == "1"; }));

  durable.Stop(true);
  ASSERT_TRUE(WaitFor([&] { return ProcessGone(handler); }, seconds(10))) << env.DaemonLog();
  EXPECT_NE(env.DaemonLog().find("instance.fenced instance=test-1"), std::string::npos)
      << env.DaemonLog();
  EXPECT_TRUE(env.daemon()->running());

  ASSERT_TRUE(durable.Restart());
  WriteFile(go, "");
  ASSERT_TRUE(WaitFor([&] { return JobRecord(durable, "q", id)["state"] == "done"; }, seconds(30)))
      << env.DaemonLog();
  auto rec = JobRecord(durable, "q", id);
  EXPECT_EQ(rec["attempt"], "2");
  EXPECT_EQ(rec["interrupted"], "1");
  EXPECT_EQ(ReadLines(log).size(), 1u);  // the fenced run never finished
  EXPECT_EQ(env.Stop(), 0);
}

}  // namespace
}  // namespace dropq::test
