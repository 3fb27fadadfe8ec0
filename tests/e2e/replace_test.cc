// A file replaced under the same name while dropqd already has a job for it.
// A name is deduplicated by its file (inode), not its text: a file renamed
// over a pending one gets a job of its own and the old job ends as a
// `replaced` skip; a file replaced or rewritten while its handler runs is
// processed again once that run ends, and the disposition never moves a
// file that was not the one processed.
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

class ReplaceTest : public ::testing::Test {
 protected:
  // Reads the file when it starts, says so, waits for `go`, then logs
  // "<name>: <content it read>".
  void StartQueue(const std::string& on_success, int workers) {
    ASSERT_TRUE(env_.redis.ok());
    log_ = env_.tmp.Sub("handler.log");
    go_ = env_.tmp.Sub("go");
    started_ = env_.tmp.Mkdir("started");
    staging_ = env_.tmp.Mkdir("staging");
    const std::string script = WriteScript(env_.tmp.Sub("gate.sh"),
                                           "content=$(cat \"$4\")\n"
                                           "touch \"$3/$5\"\n"
                                           "while [ ! -e \"$2\" ]; do sleep 0.05; done\n"
                                           "printf '%s: %s\\n' \"$5\" \"$content\" >> \"$1\"\n");
    QueueSpec q;
    q.handler = "exec: [\"/bin/sh\", \"" + script + "\", \"" + log_ + "\", \"" + go_ + "\", \"" +
                started_ + "\", \"{path}\", \"{name}\"]";
    q.workers = workers;
    q.on_success = on_success;
    q.on_failure = on_success == "keep" ? "keep" : "failed";
    env_.WriteConfig(q);
    ASSERT_TRUE(env_.Start()) << env_.DaemonLog();
  }

  // Drops `name` the way a client replaces a file: written aside, renamed over.
  void Upload(const std::string& name, const std::string& content) {
    WriteAndRename(staging_ + "/" + name, env_.inbox + "/" + name, content);
  }

  // Drops a probe file and waits until it is a job: every event before it
  // has been through ENQUEUE by then (one connection, in order).
  void Probe(const std::string& name) {
    WriteFile(env_.inbox + "/" + name, "probe");
    ASSERT_TRUE(
        WaitFor([&] { return JobIdsByName(env_.redis, "q").count(name) == 1; }, seconds(20)))
        << env_.DaemonLog();
  }

  bool Logged(const std::string& line) { return Tally(ReadLines(log_)).count(line) != 0; }

  DropqEnv env_;
  std::string log_, go_, started_, staging_;
};

TEST_F(ReplaceTest, ReplacedWhilePendingRunsOnTheNewFileOnce) {
  StartQueue("done", /*workers=*/1);
  Upload("blocker.txt", "b");
  ASSERT_TRUE(WaitFor([&] { return Exists(started_ + "/blocker.txt"); }, seconds(20)));
  Upload("x.txt", "version 1");
  Probe("probe-1.txt");  // x.txt has a job now, not started: the worker is busy
  Upload("x.txt", "version 2");
  Probe("probe-2.txt");
  WriteFile(go_, "");

  ASSERT_TRUE(WaitFor([&] { return StatCounter(env_.redis, "q", "done") == 4; }, seconds(20)))
      << env_.DaemonLog();
  const auto runs = Tally(ReadLines(log_));
  EXPECT_EQ(runs, (std::map<std::string, int>{{"blocker.txt: b", 1},
                                              {"probe-1.txt: probe", 1},
                                              {"probe-2.txt: probe", 1},
                                              {"x.txt: version 2", 1}}));
  EXPECT_EQ(ReadFile(env_.done + "/x.txt"), "version 2");
  // version 2 is a file of its own: a fifth job; the job of version 1 found
  // another file under its name and ended as a counted skip.
  EXPECT_EQ(StatCounter(env_.redis, "q", "enqueued"), 5);
  EXPECT_EQ(StatCounter(env_.redis, "q", "replaced"), 1);
  EXPECT_EQ(env_.Stop(), 0);
}

// With move_to, a file renamed over one whose handler is running is processed
// too, and the first run's disposition leaves it alone.
TEST_F(ReplaceTest, ReplacedWhileRunningIsProcessedToo) {
  StartQueue("done", /*workers=*/2);
  Upload("x.txt", "version 1");
  ASSERT_TRUE(WaitFor([&] { return Exists(started_ + "/x.txt"); }, seconds(20)));
  Upload("x.txt", "version 2");
  Probe("probe.txt");
  WriteFile(go_, "");

  ASSERT_TRUE(WaitFor([&] { return Logged("x.txt: version 1") && Logged("probe.txt: probe"); },
                      seconds(20)));
  EXPECT_TRUE(WaitFor([&] { return Logged("x.txt: version 2"); }, seconds(10)))
      << "version 2 was never processed; handler log:\n"
      << ReadFile(log_) << "done/: " << ListDir(env_.done).size() << " files, x.txt holds \""
      << ReadFile(env_.done + "/x.txt") << "\"";
  EXPECT_EQ(env_.Stop(), 0);
}

// With on_success: keep, a file rewritten in place while its handler runs is
// processed again with its new content.
TEST_F(ReplaceTest, KeptFileRewrittenWhileRunningIsProcessedAgain) {
  StartQueue("keep", /*workers=*/2);
  WriteFile(env_.inbox + "/doc.txt", "version 1");
  ASSERT_TRUE(WaitFor([&] { return Exists(started_ + "/doc.txt"); }, seconds(20)));
  WriteFile(env_.inbox + "/doc.txt", "version 2, longer");  // saved in place
  Probe("probe.txt");
  WriteFile(go_, "");

  ASSERT_TRUE(WaitFor([&] { return Logged("doc.txt: version 1") && Logged("probe.txt: probe"); },
                      seconds(20)));
  const bool rerun = WaitFor([&] { return Logged("doc.txt: version 2, longer"); }, seconds(10));
  EXPECT_TRUE(rerun) << "the rewrite was never processed; handler log:\n" << ReadFile(log_);
  if (!rerun) {
    // Not after a restart either (once the file is old enough for the scan
    // to decide at once, so that the probe is enqueued after it).
    ASSERT_EQ(env_.Stop(), 0);
    ASSERT_TRUE(
        WaitFor([&] { return FileAge(env_.inbox + "/doc.txt") > seconds(3); }, seconds(10)));
    ASSERT_TRUE(env_.Start()) << env_.DaemonLog();
    Probe("probe-2.txt");
    ASSERT_TRUE(WaitFor([&] { return Logged("probe-2.txt: probe"); }, seconds(20)));
    EXPECT_TRUE(Logged("doc.txt: version 2, longer"))
        << "not processed after a restart either; handler log:\n"
        << ReadFile(log_);
  }
  EXPECT_EQ(env_.Stop(), 0);
}

}  // namespace
}  // namespace dropq::test
