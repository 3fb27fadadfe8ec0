// dropqd started while Redis is down does not exit: it watches, logs that
// Redis is down, retries with backoff, and once Redis comes up (5 s later)
// processes the files that were dropped meanwhile.
#include <gtest/gtest.h>
#include <signal.h>

#include <string>
#include <thread>

#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::seconds;

TEST(StartWithoutRedisTest, WaitsForRedisAndThenProcessesWhatArrived) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  QueueSpec q;
  q.handler = "builtin: sha256";
  env.WriteConfig(q);
  env.redis.Stop(/*hard=*/true);

  Process daemon({DROPQD_BIN, "--config", env.config}, env.tmp.Sub("dropqd.log"));
  ASSERT_TRUE(
      WaitFor([&] { return daemon.Log().find("redis.down") != std::string::npos; }, seconds(10)))
      << daemon.Log();
  for (int i = 0; i < 5; ++i) WriteFile(env.inbox + "/f" + std::to_string(i), "x");
  // The scenario: Redis comes up 5 s later. The daemon must still be there.
  std::this_thread::sleep_for(seconds(5));
  ASSERT_TRUE(daemon.running()) << daemon.Log();
  EXPECT_TRUE(ListDir(env.done).empty());

  ASSERT_TRUE(env.redis.Restart());
  ASSERT_TRUE(WaitFor([&] { return ListDir(env.done).size() == 5; }, seconds(30))) << daemon.Log();
  EXPECT_NE(daemon.Log().find("redis.up"), std::string::npos);
  // Files move before their acknowledgement: wait for the count too.
  EXPECT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "done") == 5; })) << daemon.Log();
  daemon.Signal(SIGTERM);
  EXPECT_EQ(daemon.Wait(seconds(30)), 0);
}

}  // namespace
}  // namespace dropq::test
