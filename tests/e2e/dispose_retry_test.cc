// A disposition that fails (here: the success directory is gone, replaced by
// a file) keeps the job out of done and its file safe where it is; the error
// is recorded and the move tried again until it works.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::seconds;

TEST(DisposeRetryTest, FailedMoveIsRetriedAndTheJobIsNotDoneBefore) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  QueueSpec q;
  q.handler = "builtin: sha256";
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();

  // The success directory disappears; a file takes its name.
  ASSERT_EQ(::rmdir(env.done.c_str()), 0);
  WriteFile(env.done, "not a directory");
  WriteFile(env.inbox + "/a.txt", "content");
  std::string id;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto ids = JobIdsByName(env.redis, "q");
        if (ids.count("a.txt") == 0) return false;
        id = ids["a.txt"].at(0);
        return JobRecord(env.redis, "q", id)["dispose_failures"] == "2";
      },
      seconds(20)))
      << env.DaemonLog();
  auto rec = JobRecord(env.redis, "q", id);
  EXPECT_EQ(rec["state"], "active");  // not done: its file did not reach its place
  EXPECT_EQ(rec["phase"], "disposing");
  EXPECT_EQ(rec["result"], "ok");
  EXPECT_NE(rec["dispose_error"].find("Not a directory"), std::string::npos)
      << rec["dispose_error"];
  EXPECT_EQ(ReadFile(env.FlatProcessing(id, "a.txt")), "content");  // safe, where it was processed
  EXPECT_EQ(StatCounter(env.redis, "q", "done"), 0);

  // Space (here: the directory) comes back: the job completes.
  ASSERT_EQ(::unlink(env.done.c_str()), 0);
  std::filesystem::create_directory(env.done);
  ASSERT_TRUE(
      WaitFor([&] { return JobRecord(env.redis, "q", id)["state"] == "done"; }, seconds(20)))
      << env.DaemonLog();
  EXPECT_EQ(ReadFile(env.done + "/a.txt"), "content");
  EXPECT_FALSE(Exists(env.inbox + "/a.txt"));
  EXPECT_EQ(JobRecord(env.redis, "q", id)["disposed_to"], env.done + "/a.txt");
  EXPECT_EQ(StatCounter(env.redis, "q", "done"), 1);
  EXPECT_EQ(env.Stop(), 0);
}

}  // namespace
}  // namespace dropq::test
