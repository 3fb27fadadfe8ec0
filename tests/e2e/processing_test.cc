// The processing area, end to end: a handler works on the very file that was
// checked (a symlink swapped in before the run reaches neither the handler
// nor the disposition), a kill -9 between the recording of an outcome and its
// acknowledgement redoes only the disposition, and a file left in the area by
// a job that will not run again goes back to the inbox.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/process.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::seconds;

// An exec handler that logs "start <name>" and, for "gate.txt", waits until
// the file `release` exists: while it waits, the only worker is busy and the
// next job sits claimed in memory.
QueueSpec GatedQueue(DropqEnv& env, const std::string& log, const std::string& release) {
  const std::string script = WriteScript(env.tmp.Sub("handler.sh"),
                                         "name=$(basename \"$1\")\n"
                                         "echo \"start $name\" >> '" +
                                             log +
                                             "'\n"
                                             "if [ \"$name\" = gate.txt ]; then\n"
                                             "  while [ ! -e '" +
                                             release +
                                             "' ]; do sleep 0.02; done\n"
                                             "fi\n"
                                             "cat \"$1\" > /dev/null\n");
  QueueSpec q;
  q.handler = "exec: [\"" + script + "\", \"{path}\"]\ntimeout: 30s";
  q.workers = 1;
  return q;
}

TEST(ProcessingTest, SymlinkSwappedInBeforeTheRunReachesNeitherHandlerNorDisposition) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  const std::string log = env.tmp.Sub("handler.log");
  const std::string release = env.tmp.Sub("release");
  env.WriteConfig(GatedQueue(env, log, release));
  // What an uploader would like the daemon to process (or move) for them.
  const std::string secret = env.tmp.Sub("secret.txt");
  WriteFile(secret, "not for uploaders\n");
  ASSERT_TRUE(env.Start()) << env.DaemonLog();

  WriteFile(env.inbox + "/gate.txt", "g");
  ASSERT_TRUE(WaitFor([&] { return ReadLines(log).size() == 1; }, seconds(10))) << env.DaemonLog();
  WriteFile(env.inbox + "/victim.txt", "upload\n");
  // Wait until victim.txt is claimed (active) and held behind the gate.
  ASSERT_TRUE(WaitFor(
      [&] {
        auto ids = JobIdsByName(env.redis, "q");
        return ids.count("victim.txt") == 1 &&
               JobRecord(env.redis, "q", ids["victim.txt"][0])["state"] == "active";
      },
      seconds(10)))
      << env.DaemonLog();
  // The swap: the file is replaced by a symlink to the secret, by rename.
  const std::string staged = env.tmp.Sub("link");
  ASSERT_EQ(::symlink(secret.c_str(), staged.c_str()), 0);
  ASSERT_EQ(::rename(staged.c_str(), (env.inbox + "/victim.txt").c_str()), 0);
  WriteFile(release, "");

  const std::string id = JobIdsByName(env.redis, "q")["victim.txt"].at(0);
  ASSERT_TRUE(
      WaitFor([&] { return JobRecord(env.redis, "q", id)["state"] == "done"; }, seconds(15)))
      << env.DaemonLog();
  auto rec = JobRecord(env.redis, "q", id);
  EXPECT_EQ(rec["result"], "replaced");
  EXPECT_EQ(ReadLines(log), std::vector<std::string>{"start gate.txt"});  // never ran
  // The link is where the uploader put it; the secret where it was.
  struct stat st;
  ASSERT_EQ(::lstat((env.inbox + "/victim.txt").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(ReadFile(secret), "not for uploaders\n");
  EXPECT_FALSE(Exists(env.done + "/victim.txt"));
  EXPECT_FALSE(Exists(env.failed + "/victim.txt"));
  EXPECT_GE(StatCounter(env.redis, "q", "replaced"), 1);
  EXPECT_NE(env.DaemonLog().find("reason=symlink"), std::string::npos) << env.DaemonLog();
  EXPECT_EQ(env.Stop(), 0);
}

TEST(ProcessingTest, KillBetweenRecordAndAckRedoesOnlyTheDisposition) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  const std::string log = env.tmp.Sub("handler.log");
  const std::string release = env.tmp.Sub("release");
  WriteFile(release, "");
  env.WriteConfig(GatedQueue(env, log, release));
  ASSERT_TRUE(env.Start()) << env.DaemonLog();

  // The success directory is gone: the outcome is recorded, the move fails
  // and is retried, the job stays active. That holds it between RECORD and
  // ACK long enough to kill dropqd there.
  std::filesystem::remove_all(env.done);
  WriteFile(env.inbox + "/a.txt", "content\n");
  std::string id;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto ids = JobIdsByName(env.redis, "q");
        if (ids.count("a.txt") == 0) return false;
        id = ids["a.txt"][0];
        return !JobRecord(env.redis, "q", id)["dispose_error"].empty();
      },
      seconds(15)))
      << env.DaemonLog();
  auto rec = JobRecord(env.redis, "q", id);
  ASSERT_EQ(rec["phase"], "disposing");
  ASSERT_EQ(rec["state"], "active");
  env.daemon()->Signal(SIGKILL);
  ASSERT_TRUE(env.Stop(SIGKILL, seconds(10)).has_value());

  std::filesystem::create_directory(env.done);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  ASSERT_TRUE(
      WaitFor([&] { return JobRecord(env.redis, "q", id)["state"] == "done"; }, seconds(15)))
      << env.DaemonLog();
  rec = JobRecord(env.redis, "q", id);
  EXPECT_EQ(rec["result"], "ok");
  EXPECT_EQ(rec["attempt"], "1");
  EXPECT_EQ(rec.count("interrupted"), 0u) << "the run was complete: nothing was interrupted";
  EXPECT_EQ(rec["disposed_to"], env.done + "/a.txt");
  EXPECT_EQ(ReadFile(env.done + "/a.txt"), "content\n");
  EXPECT_EQ(ReadLines(log), std::vector<std::string>{"start a.txt"});  // the handler ran once
  EXPECT_NE(env.DaemonLog().find("job.redispose queue=q job=" + id), std::string::npos)
      << env.DaemonLog();
  EXPECT_TRUE(ListDir(env.inbox).empty());  // nothing left in the processing area
  EXPECT_EQ(StatCounter(env.redis, "q", "done"), 1);
  EXPECT_EQ(env.Stop(), 0);
}

TEST(ProcessingTest, FileOfAJobWithoutRecordGoesBackToTheInbox) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  QueueSpec q;
  q.handler = "builtin: sha256";
  env.WriteConfig(q);
  // What a crash leaves when Redis then lost the job (no persistence).
  const std::string left = env.Processing("01JZZZZZZZZZZZZZZZZZZZZZZZ", "orphan.txt");
  std::filesystem::create_directories(std::filesystem::path(left).parent_path());
  WriteFile(left, "still here\n");

  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  ASSERT_TRUE(WaitFor([&] { return Exists(env.done + "/orphan.txt"); }, seconds(15)))
      << env.DaemonLog();
  EXPECT_EQ(ReadFile(env.done + "/orphan.txt"), "still here\n");
  EXPECT_NE(env.DaemonLog().find("processing.put_back"), std::string::npos) << env.DaemonLog();
  EXPECT_TRUE(ListDir(env.inbox).empty());
  EXPECT_EQ(env.Stop(), 0);
}

TEST(ProcessingTest, AnAreaOfAnotherUserIsRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to give the area to another user";
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  env.WriteConfig(QueueSpec{});
  // Made by someone else before dropqd's first start (an uploader, say).
  const std::string area = env.inbox + "/.dropq-processing/q";
  std::filesystem::create_directories(area);
  ASSERT_EQ(::chown(area.c_str(), 65534, 65534), 0);
  Process daemon({DROPQD_BIN, "--config", env.config}, env.tmp.Sub("dropqd.log"));
  EXPECT_EQ(daemon.Wait(seconds(20)), 78) << daemon.Log();
  EXPECT_NE(daemon.Log().find("belongs\\x20to\\x20uid\\x2065534"), std::string::npos)
      << daemon.Log();
}

// A kept file goes into the area and back under its name. Its return is
// dropqd's own move, not an upload: it is not taken up again (the counts'
// `seen` counts each file once, no second ENQUEUE), and nothing runs twice.
TEST(ProcessingTest, AKeptFileMovedBackIsNotTakenUpAgain) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  QueueSpec q;
  q.handler = "builtin: sha256";
  q.on_success = "keep";
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  constexpr int kFiles = 200;
  const std::string staging = env.tmp.Mkdir("staging");
  for (int i = 0; i < kFiles; ++i) {
    const std::string name = "k-" + std::to_string(i) + ".txt";
    WriteAndRename(staging + "/" + name, env.inbox + "/" + name, name);
  }
  ASSERT_TRUE(WaitForOutcomes(env.redis, kFiles, 0)) << env.DaemonLog();
  EXPECT_EQ(ListDir(env.inbox).size(), static_cast<size_t>(kFiles));  // all back, kept
  // The watchers' counts reach the counts hash every few seconds.
  EXPECT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "seen") >= kFiles; }, seconds(15)));
  std::this_thread::sleep_for(std::chrono::seconds(6));  // one more push, if there were more
  EXPECT_EQ(StatCounter(env.redis, "q", "seen"), kFiles);
  EXPECT_EQ(StatCounter(env.redis, "q", "enqueued"), kFiles);
  EXPECT_EQ(StatCounter(env.redis, "q", "done"), kFiles);
  EXPECT_EQ(env.Stop(), 0);
}

}  // namespace
}  // namespace dropq::test
