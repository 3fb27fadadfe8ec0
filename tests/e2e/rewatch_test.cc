// A watched directory that is removed (or moved away) and comes back is
// watched again: the loss and the return are logged, files in it then are
// processed, and the daemon kept running meanwhile.
#include <gtest/gtest.h>
#include <stdio.h>

#include <filesystem>
#include <string>

#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::seconds;

TEST(RewatchTest, RemovedAndMovedAwayInboxIsWatchedAgainWhenItReturns) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  QueueSpec q;
  q.handler = "builtin: noop";
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();

  // Removed, then made again.
  std::filesystem::remove_all(env.inbox);
  ASSERT_TRUE(WaitFor([&] { return Count(env.DaemonLog(), "watch.lost") == 1; }, seconds(10)))
      << env.DaemonLog();
  std::filesystem::create_directory(env.inbox);
  ASSERT_TRUE(WaitFor([&] { return Count(env.DaemonLog(), "watch.restored") == 1; }, seconds(10)))
      << env.DaemonLog();
  WriteFile(env.inbox + "/one.txt", "1");
  ASSERT_TRUE(WaitFor([&] { return Exists(env.done + "/one.txt"); }, seconds(10)))
      << env.DaemonLog();

  // Moved away (its events would come from the wrong place), a new one put in its stead.
  const std::string old = env.tmp.Sub("old-inbox");
  ASSERT_EQ(::rename(env.inbox.c_str(), old.c_str()), 0);
  ASSERT_TRUE(WaitFor([&] { return Count(env.DaemonLog(), "watch.lost") == 2; }, seconds(10)))
      << env.DaemonLog();
  WriteFile(old + "/stray.txt", "not in the inbox any more");
  std::filesystem::create_directory(env.inbox);
  ASSERT_TRUE(WaitFor([&] { return Count(env.DaemonLog(), "watch.restored") == 2; }, seconds(10)))
      << env.DaemonLog();
  WriteFile(env.inbox + "/two.txt", "2");
  ASSERT_TRUE(WaitFor([&] { return Exists(env.done + "/two.txt"); }, seconds(10)))
      << env.DaemonLog();
  EXPECT_TRUE(Exists(old + "/stray.txt"));  // the old directory is not watched
  // The file moves before its job is acknowledged: the count follows.
  EXPECT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "done") == 2; }, seconds(10)))
      << "done=" << StatCounter(env.redis, "q", "done");
  EXPECT_EQ(env.Stop(), 0);
}

}  // namespace
}  // namespace dropq::test
