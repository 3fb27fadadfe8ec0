// Where a processed file goes: deleted, moved without ever overwriting
// (a taken name gets the job id in it), moved into directories inside the
// watched one (never taken again, never logged as skipped), or kept in place
// after a failure (not retried by a restart, but by dropqctl retry).
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::seconds;

std::string OnlyJob(DropqEnv& env, const std::string& name) {
  return OnlyJobId(env.redis, "q", name);
}

TEST(DispositionsTest, DeleteRemovesTheFile) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  QueueSpec q;
  q.handler = "builtin: sha256";
  q.on_success = "delete";
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();

  WriteFile(env.inbox + "/gone.txt", "delete me\n");
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "done") == 1; }, seconds(20)))
      << env.DaemonLog();
  const std::string id = OnlyJob(env, "gone.txt");
  ASSERT_FALSE(id.empty());
  auto rec = JobRecord(env.redis, "q", id);
  EXPECT_EQ(rec["state"], "done");
  EXPECT_EQ(rec["disposed_to"], "(deleted)");
  EXPECT_EQ(rec["sha256"], Sha256Hex("delete me\n"));
  EXPECT_TRUE(ListDir(env.inbox).empty());
  EXPECT_TRUE(ListDir(env.done).empty());
  EXPECT_EQ(env.redis.CmdInt({"HEXISTS", DropqEnv::Key("q", "files"), "gone.txt"}), 0);
  EXPECT_EQ(env.Stop(), 0);
}

TEST(DispositionsTest, MoveNeverOverwritesATakenName) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  QueueSpec q;
  q.handler = "builtin: noop";
  env.WriteConfig(q);
  WriteFile(env.done + "/report.pdf", "an older report\n");
  WriteFile(env.done + "/README", "an older readme\n");
  ASSERT_TRUE(env.Start()) << env.DaemonLog();

  WriteFile(env.inbox + "/report.pdf", "the new report\n");
  WriteFile(env.inbox + "/README", "the new readme\n");
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "done") == 2; }, seconds(20)))
      << env.DaemonLog();
  const std::string report = OnlyJob(env, "report.pdf"), readme = OnlyJob(env, "README");
  ASSERT_FALSE(report.empty());
  ASSERT_FALSE(readme.empty());

  EXPECT_EQ(ReadFile(env.done + "/report.pdf"), "an older report\n");
  EXPECT_EQ(ReadFile(env.done + "/README"), "an older readme\n");
  const std::string report_to = env.done + "/report." + report + ".pdf";
  const std::string readme_to = env.done + "/README." + readme;
  EXPECT_EQ(ReadFile(report_to), "the new report\n");
  EXPECT_EQ(ReadFile(readme_to), "the new readme\n");
  EXPECT_EQ(JobRecord(env.redis, "q", report)["disposed_to"], report_to);
  EXPECT_EQ(JobRecord(env.redis, "q", readme)["disposed_to"], readme_to);
  EXPECT_EQ(ListDir(env.done).size(), 4u);
  EXPECT_TRUE(ListDir(env.inbox).empty());
  EXPECT_EQ(env.Stop(), 0);
}

TEST(DispositionsTest, DirectoriesInsideTheWatchedOneAreLeftAlone) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  const std::string log = env.tmp.Sub("handler.log");
  const std::string script = WriteScript(env.tmp.Sub("handler.sh"),
                                         "printf '%s\\n' \"$2\" >> \"$1\"\n"
                                         "case \"$2\" in bad*) exit 1;; esac\n");
  const std::string ok_dir = env.tmp.Mkdir("inbox/ok"), bad_dir = env.tmp.Mkdir("inbox/bad");
  QueueSpec q;
  q.handler = "exec: [\"/bin/sh\", \"" + script + "\", \"" + log + "\", \"{name}\"]";
  q.on_success = "{ move_to: " + ok_dir + " }";
  q.on_failure = "{ move_to: " + bad_dir + " }";
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();

  WriteFile(env.inbox + "/good-1.txt", "1");
  WriteFile(env.inbox + "/bad-1.txt", "1");
  WriteFile(env.inbox + "/good-2.txt", "2");
  ASSERT_TRUE(WaitForOutcomes(env.redis, 2, 1, seconds(20))) << env.DaemonLog();
  EXPECT_EQ(ListDir(ok_dir), (std::vector<std::string>{"good-1.txt", "good-2.txt"}));
  EXPECT_EQ(ListDir(bad_dir), std::vector<std::string>{"bad-1.txt"});
  EXPECT_EQ(ListDir(env.inbox), (std::vector<std::string>{"bad", "ok"}));

  // A restart scans the directory: its own subdirectories are neither jobs
  // nor "skipped", and nothing is taken again. The probe file proves the
  // scan's verdict is in (it is enqueued after the scan's files).
  ASSERT_EQ(env.Stop(), 0);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  WriteFile(env.inbox + "/good-3.txt", "3");
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "done") == 3; }, seconds(20)))
      << env.DaemonLog();
  EXPECT_EQ(Count(env.DaemonLog(), "file.skip"), 0u) << env.DaemonLog();
  EXPECT_EQ(Tally(ReadLines(log)),
            (std::map<std::string, int>{
                {"bad-1.txt", 1}, {"good-1.txt", 1}, {"good-2.txt", 1}, {"good-3.txt", 1}}));
  EXPECT_EQ(StatCounter(env.redis, "q", "enqueued"), 4);
  EXPECT_EQ(env.Stop(), 0);
}

TEST(DispositionsTest, FailureKeptInPlaceIsRetriedOnlyOnRequest) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  const std::string log = env.tmp.Sub("handler.log"), marker = env.tmp.Sub("fail");
  const std::string script = WriteScript(env.tmp.Sub("handler.sh"),
                                         "printf '%s\\n' \"$3\" >> \"$1\"\n"
                                         "[ -e \"$2\" ] && exit 2\n"
                                         "exit 0\n");
  WriteFile(marker, "");
  QueueSpec q;
  q.handler =
      "exec: [\"/bin/sh\", \"" + script + "\", \"" + log + "\", \"" + marker + "\", \"{name}\"]";
  q.on_failure = "keep";
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();

  WriteFile(env.inbox + "/stays.txt", "x");
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "failed") == 1; }, seconds(20)))
      << env.DaemonLog();
  const std::string id = OnlyJob(env, "stays.txt");
  ASSERT_FALSE(id.empty());
  EXPECT_TRUE(Exists(env.inbox + "/stays.txt"));
  EXPECT_EQ(env.redis.Cmd({"HGET", DropqEnv::Key("q", "files"), "stays.txt"}).substr(0, 1), "~");

  // A restart does not run it again.
  ASSERT_EQ(env.Stop(), 0);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  WriteFile(env.inbox + "/probe.txt", "p");
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "failed") == 2; }, seconds(20)))
      << env.DaemonLog();  // the probe fails too: the marker is still there
  EXPECT_EQ(Tally(ReadLines(log)),
            (std::map<std::string, int>{{"probe.txt", 1}, {"stays.txt", 1}}));

  // dropqctl retry runs it again, in place, under the same id.
  ASSERT_EQ(::unlink(marker.c_str()), 0);
  const CommandResult r = env.Ctl({"retry", id});
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_TRUE(
      WaitFor([&] { return JobRecord(env.redis, "q", id)["state"] == "done"; }, seconds(20)))
      << env.DaemonLog();
  EXPECT_EQ(Tally(ReadLines(log)),
            (std::map<std::string, int>{{"probe.txt", 1}, {"stays.txt", 2}}));
  EXPECT_TRUE(Exists(env.done + "/stays.txt"));
  EXPECT_EQ(OnlyJob(env, "stays.txt"), id);
  EXPECT_EQ(StatCounter(env.redis, "q", "enqueued"), 2);
  EXPECT_EQ(env.Stop(), 0);
}

}  // namespace
}  // namespace dropq::test
