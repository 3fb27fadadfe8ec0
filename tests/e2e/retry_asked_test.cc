// A retry from where the file cannot be seen: dropqctl run as another user
// (as it would be on another host, or for a console running elsewhere)
// cannot reach the failure directory, so it asks, through Redis, the dropqd
// that moved the file; that dropqd puts it back and the job runs again. When
// it cannot (the file is gone), dropqctl says why; when that instance is not
// running, dropqctl says so at once.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/process.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::seconds;

// dropqctl as user nobody, who can read the config but not the failure directory.
CommandResult CtlAsNobody(DropqEnv& env, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"setpriv",        "--reuid=65534",   "--regid=65534",
                                   "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
                                   DROPQCTL_BIN,     "--config",        env.config};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, seconds(60));
}

TEST(RetryAskedTest, TheInstanceThatMovedTheFilePutsItBack) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  ASSERT_EQ(::chmod(env.tmp.path().c_str(), 0755), 0);
  const std::string flag = env.tmp.Sub("fail");
  WriteFile(flag, "");
  QueueSpec q;
  q.handler =
      "exec: [\"/bin/sh\", \"-c\", \"if test -e \\\"$1\\\"; then echo down >&2; exit 65; "
      "fi\", \"sh\", \"" +
      flag + "\"]";
  env.WriteConfig(q, "heartbeat_ttl: 2s\n");
  ASSERT_EQ(::chmod(env.config.c_str(), 0644), 0);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  WriteFile(env.inbox + "/gone.pdf", "g");
  WriteFile(env.inbox + "/scan.pdf", "s");
  ASSERT_TRUE(WaitForOutcomes(env.redis, 0, 2)) << env.DaemonLog();
  ASSERT_EQ(::chmod(env.failed.c_str(), 0700), 0);  // root's: nobody cannot look inside
  const std::string gone = OnlyJobId(env.redis, "q", "gone.pdf");
  const std::string scan = OnlyJobId(env.redis, "q", "scan.pdf");

  // The file vanished from where it was moved: dropqd says why, dropqctl
  // reports it, and the job stays failed.
  ASSERT_EQ(::unlink((env.failed + "/gone.pdf").c_str()), 0);
  CommandResult r = CtlAsNobody(env, {"retry", gone});
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("test-1 could not: file not found at " + env.failed + "/gone.pdf"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(env.redis.Cmd({"HGET", DropqEnv::Key("q", "job:" + gone), "state"}), "failed");
  EXPECT_NE(env.DaemonLog().find("retry.failed queue=q job=" + gone), std::string::npos);

  // The file is there: dropqd moves it back, the job runs again and ends done.
  ASSERT_EQ(::unlink(flag.c_str()), 0);
  r = CtlAsNobody(env, {"retry", scan});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_EQ(r.out, scan + ": requeued by test-1\n");
  ASSERT_TRUE(WaitFor([&] { return Exists(env.done + "/scan.pdf"); }, seconds(20)))
      << env.DaemonLog();
  EXPECT_EQ(env.redis.Cmd({"HGET", DropqEnv::Key("q", "job:" + scan), "retried"}), "1");
  EXPECT_EQ(env.redis.Cmd({"HEXISTS", DropqEnv::Key("q", "job:" + scan), "retry_error"}), "0");
  EXPECT_NE(env.DaemonLog().find("retry.done queue=q job=" + scan), std::string::npos);
  // Every request was taken.
  EXPECT_EQ(env.redis.CmdInt({"LLEN", DropqEnv::Key("q", "retry:test-1")}), 0);

  // The instance that holds the file is not running: said at once, nothing asked.
  EXPECT_EQ(env.Stop(), 0);
  ASSERT_TRUE(WaitFor(
      [&] {
        return env.redis.CmdInt({"EXISTS", "dropq:instance:test-1"}) == 0;
      },
      seconds(10)));
  WriteFile(env.failed + "/gone.pdf", "again");
  r = CtlAsNobody(env, {"retry", gone});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("test-1 (the instance that moved it) is not running"), std::string::npos)
      << r.err;
  EXPECT_EQ(env.redis.CmdInt({"LLEN", DropqEnv::Key("q", "retry:test-1")}), 0);
  // A record edited to point outside the failure directory moves nothing.
  const std::string outside = env.tmp.Sub("outside.pdf");
  WriteFile(outside, "not a failed upload");
  ASSERT_EQ(env.redis.Cmd({"HSET", DropqEnv::Key("q", "job:" + gone), "disposed_to", outside}),
            "0");
  r = env.Ctl({"retry", gone});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("is not below the queue's failure directory"), std::string::npos) << r.err;
  EXPECT_TRUE(Exists(outside));
  EXPECT_FALSE(Exists(env.inbox + "/gone.pdf"));
  ASSERT_EQ(env.redis.Cmd({"HSET", DropqEnv::Key("q", "job:" + gone), "disposed_to",
                           env.failed + "/gone.pdf"}),
            "0");
  // As root, who sees the file, dropqctl does it itself.
  r = env.Ctl({"retry", gone});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, gone + ": requeued\n");
  EXPECT_TRUE(Exists(env.inbox + "/gone.pdf"));
}

}  // namespace
}  // namespace dropq::test
