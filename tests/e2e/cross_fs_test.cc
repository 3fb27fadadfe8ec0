// A success directory on another filesystem (rename gives EXDEV): the file is
// copied there under a temporary name, fsynced, linked into place without
// replacing anything, and only then removed from the inbox. /dev/shm (tmpfs)
// is the other filesystem; the inbox lives under $TMPDIR.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>

#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::seconds;

TEST(CrossFsTest, SuccessDirectoryOnAnotherFilesystem) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  struct stat shm, tmp;
  ASSERT_EQ(stat("/dev/shm", &shm), 0) << "this test needs /dev/shm";
  ASSERT_EQ(stat(env.inbox.c_str(), &tmp), 0);
  ASSERT_NE(shm.st_dev, tmp.st_dev) << "/dev/shm must be another filesystem than the inbox";
  char tmpl[] = "/dev/shm/dropq-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string other = tmpl;
  struct Cleanup {
    std::string dir;
    ~Cleanup() { std::filesystem::remove_all(dir); }
  } cleanup{other};

  QueueSpec q;
  q.handler = "builtin: sha256";
  q.on_success = "{ move_to: " + other + " }";
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  WriteFile(other + "/b.txt", "an earlier file of the same name");
  WriteFile(env.inbox + "/a.txt", "alpha");
  WriteFile(env.inbox + "/b.txt", "beta");
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "done") == 2; }, seconds(20)))
      << env.DaemonLog();
  EXPECT_EQ(ReadFile(other + "/a.txt"), "alpha");
  EXPECT_EQ(ReadFile(other + "/b.txt"), "an earlier file of the same name");  // not overwritten
  const std::string b_id = JobIdsByName(env.redis, "q").at("b.txt").at(0);
  const std::string b_to = JobRecord(env.redis, "q", b_id)["disposed_to"];
  EXPECT_EQ(b_to, other + "/b." + b_id + ".txt");
  EXPECT_EQ(ReadFile(b_to), "beta");
  EXPECT_TRUE(ListDir(env.inbox).empty());
  for (const std::string& n : ListDir(other)) {
    EXPECT_EQ(n.rfind(".dropq-tmp", 0), std::string::npos) << "temporary file left: " << n;
  }
  EXPECT_EQ(env.Stop(), 0);
}

}  // namespace
}  // namespace dropq::test
