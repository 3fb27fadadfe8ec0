// Files that are not complete yet, and names that are never taken:
//  * a file held open for writing (longer than `settle`) is not processed
//    until its writer closes it, and then with its full content;
//  * an upload written as "x.part" and renamed to its final name is processed
//    once, under the final name;
//  * dotfiles, partial-upload names and the user's excludes never become
//    jobs, whether present at start-up or dropped later, while a normal file
//    dropped after them is processed (so the daemon did look).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

bool WriteAll(int fd, const std::string& s) {
  return ::write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size());
}

TEST(PartialWriteTest, OpenFileWaitsForItsCloseAndIsHashedWhole) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  QueueSpec q;
  q.handler = "builtin: sha256";
  q.settle = "500ms";
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();

  const std::string first(100000, 'a');
  const std::string second = "and the rest, written after a long pause\n" + std::string(5000, 'z');
  const std::string path = env.inbox + "/slow.bin";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(WriteAll(fd, first));

  // While the writer holds the file open, a complete file dropped beside it is
  // processed: the daemon is looking, and still leaves the open one alone.
  WriteFile(env.inbox + "/probe.txt", "probe\n");
  EXPECT_TRUE(WaitFor([&] { return Exists(env.done + "/probe.txt"); }, seconds(20)))
      << env.DaemonLog();

  // The writer pauses three times the settle time, the fd still open. The
  // pause is the scenario, not a synchronisation: all along, no job.
  const auto pause_end = std::chrono::steady_clock::now() + milliseconds(1500);
  while (std::chrono::steady_clock::now() < pause_end) {
    const auto jobs = JobIdsByName(env.redis, "q");
    ASSERT_EQ(jobs.count("slow.bin"), 0u) << "a job exists for a file still open for writing";
    ASSERT_TRUE(Exists(path));
    std::this_thread::sleep_for(milliseconds(50));
  }
  EXPECT_FALSE(Exists(env.done + "/slow.bin"));
  EXPECT_EQ(env.redis.Cmd({"HGET", DropqEnv::Key("q", "files"), "slow.bin"}), "");

  ASSERT_TRUE(WriteAll(fd, second));
  ASSERT_EQ(::close(fd), 0);

  ASSERT_TRUE(WaitFor([&] { return Exists(env.done + "/slow.bin"); }, seconds(20)))
      << env.DaemonLog();
  const auto jobs = JobIdsByName(env.redis, "q");
  ASSERT_EQ(jobs.count("slow.bin"), 1u);
  ASSERT_EQ(jobs.at("slow.bin").size(), 1u) << "processed more than once";
  ASSERT_TRUE(WaitFor(
      [&] { return JobRecord(env.redis, "q", jobs.at("slow.bin")[0])["state"] == "done"; }));
  auto rec = JobRecord(env.redis, "q", jobs.at("slow.bin")[0]);
  EXPECT_EQ(rec["sha256"], Sha256Hex(first + second));
  // The identity (inode:size:mtime_ns) of the file that was processed: all of it.
  EXPECT_EQ(rec["ident"].substr(rec["ident"].find(':') + 1,
                                std::to_string(first.size() + second.size()).size() + 1),
            std::to_string(first.size() + second.size()) + ":");
  EXPECT_EQ(ReadFile(env.done + "/slow.bin"), first + second);
  EXPECT_EQ(StatCounter(env.redis, "q", "enqueued"), 2);
  EXPECT_EQ(env.Stop(), 0);
}

TEST(PartialWriteTest, PartNameRenamedToFinalNameIsProcessedOnce) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  QueueSpec q;
  q.handler = "builtin: sha256";
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();

  // The usual upload pattern: written in the directory under a partial name,
  // renamed once complete.
  const std::string content = "uploaded in one piece\n";
  WriteFile(env.inbox + "/upload.dat.part", content);
  ASSERT_EQ(::rename((env.inbox + "/upload.dat.part").c_str(), (env.inbox + "/upload.dat").c_str()),
            0);
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "done") == 1; }, seconds(20)))
      << env.DaemonLog();
  const auto jobs = JobIdsByName(env.redis, "q");
  ASSERT_EQ(jobs.size(), 1u);
  ASSERT_EQ(jobs.count("upload.dat"), 1u);
  EXPECT_EQ(JobRecord(env.redis, "q", jobs.at("upload.dat")[0])["sha256"], Sha256Hex(content));
  EXPECT_EQ(ListDir(env.done), std::vector<std::string>{"upload.dat"});
  EXPECT_EQ(env.Stop(), 0);
}

TEST(PartialWriteTest, ExcludedNamesAreNeverTaken) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  QueueSpec q;
  q.handler = "builtin: noop";
  q.extra = "exclude: [\"*.log\"]";
  env.WriteConfig(q);

  const std::vector<std::string> excluded = {".hidden",      "a.part", "b.tmp", "c.filepart",
                                             "d.crdownload", "e~",     "f.log"};
  // Some present before the start (old enough for the start-up scan to take
  // them, were they selected)...
  for (const std::string& n : excluded) {
    WriteFile(env.inbox + "/old" + n, "excluded\n");
    SetAge(env.inbox + "/old" + n, seconds(60));
  }
  WriteFile(env.inbox + "/old-normal.txt", "taken\n");
  SetAge(env.inbox + "/old-normal.txt", seconds(60));
  ASSERT_TRUE(env.Start()) << env.DaemonLog();

  // ...and the same names dropped live, written in place and renamed in.
  const std::string staging = env.tmp.Mkdir("staging");
  for (const std::string& n : excluded) {
    WriteFile(env.inbox + "/" + n, "excluded\n");
    WriteAndRename(staging + "/" + n, env.inbox + "/mv" + n, "excluded\n");
  }
  // ".hidden" prefixed with "old"/"mv" is no dotfile any more: those two are
  // ordinary names, and must be taken.
  WriteFile(env.inbox + "/normal.txt", "taken\n");

  ASSERT_TRUE(WaitFor([&] { return Exists(env.done + "/normal.txt"); }, seconds(20)))
      << env.DaemonLog();
  ASSERT_TRUE(WaitFor([&] { return Exists(env.done + "/old-normal.txt"); }, seconds(20)))
      << env.DaemonLog();
  ASSERT_TRUE(WaitFor([&] { return Exists(env.done + "/mv.hidden"); }, seconds(20)));
  ASSERT_TRUE(WaitFor([&] { return Exists(env.done + "/old.hidden"); }, seconds(20)));

  std::vector<std::string> still;  // every excluded entry that must stay untouched
  for (const std::string& n : excluded) {
    still.push_back(n);
    if (n != ".hidden") {
      still.push_back("old" + n);
      still.push_back("mv" + n);
    }
  }
  for (const std::string& n : still) {
    EXPECT_TRUE(Exists(env.inbox + "/" + n)) << n << " left the inbox";
    EXPECT_FALSE(Exists(env.done + "/" + n)) << n << " was processed";
    EXPECT_EQ(env.redis.CmdInt({"HEXISTS", DropqEnv::Key("q", "files"), n}), 0) << n;
  }
  const auto jobs = JobIdsByName(env.redis, "q");
  for (const std::string& n : still) EXPECT_EQ(jobs.count(n), 0u) << n << " became a job";
  std::set<std::string> job_names;
  for (const auto& [n, ids] : jobs) job_names.insert(n);
  EXPECT_EQ(job_names,
            (std::set<std::string>{"normal.txt", "old-normal.txt", "mv.hidden", "old.hidden"}));
  EXPECT_EQ(StatCounter(env.redis, "q", "enqueued"), 4);
  EXPECT_EQ(env.Stop(), 0);
}

TEST(PartialWriteTest, IncludeGlobsSelectNames) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  QueueSpec q;
  q.handler = "builtin: noop";
  q.extra = "include: [\"*.jpg\", \"*.png\"]\nexclude: [\"thumb_*\"]";
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();

  for (const char* n : {"a.jpg", "b.txt", "C.JPG", "thumb_d.jpg", "e.png", "f.jpg.txt"}) {
    WriteFile(env.inbox + "/" + std::string(n), n);
  }
  WriteFile(env.inbox + "/z.png", "last");
  ASSERT_TRUE(WaitFor([&] { return Exists(env.done + "/z.png"); }, seconds(20))) << env.DaemonLog();
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "done") == 3; }));
  EXPECT_EQ(ListDir(env.done), (std::vector<std::string>{"a.jpg", "e.png", "z.png"}));
  EXPECT_EQ(ListDir(env.inbox),
            (std::vector<std::string>{"C.JPG", "b.txt", "f.jpg.txt", "thumb_d.jpg"}));
  EXPECT_EQ(JobIds(env.redis, "q").size(), 3u);
  EXPECT_EQ(env.Stop(), 0);
}

}  // namespace
}  // namespace dropq::test
