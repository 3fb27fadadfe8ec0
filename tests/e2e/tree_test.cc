// Upload trees: a recursive queue takes every file of a tree dropped into its
// inbox exactly once, however the tree arrives (tar -x, mkdir -p racing the
// writes, a populated tree renamed in), and a file hard-linked into an inbox
// (flat or recursive) is taken live, with no close event to announce it.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/process.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::seconds;

// Every regular file below `root`, as paths relative to it.
std::multiset<std::string> FilesBelow(const std::string& root) {
  std::multiset<std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec) && !it->is_symlink(ec)) {
      out.insert(std::filesystem::relative(it->path(), root).string());
    }
  }
  return out;
}

QueueSpec TreeQueue(const std::string& extra = "") {
  QueueSpec q;
  q.workers = 4;
  q.extra = "recursive: true\nmax_depth: 8" + (extra.empty() ? "" : "\n" + extra);
  return q;
}

// Waits until `n` jobs are done, then a little longer for any that would
// come twice, and checks that the done directory holds exactly `want`.
void ExpectDoneOnce(DropqEnv& env, const std::multiset<std::string>& want) {
  const long long n = static_cast<long long>(want.size());
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "done") >= n; }, seconds(120)))
      << "done=" << StatCounter(env.redis, "q", "done") << " of " << n << "\n"
      << env.DaemonLog().substr(0, 20000);
  // A file enqueued twice (by its event and by its directory's scan) would
  // show up within the scan margin (2 s) as a second job.
  ::sleep(3);
  EXPECT_EQ(StatCounter(env.redis, "q", "done"), n);
  EXPECT_EQ(StatCounter(env.redis, "q", "failed"), 0);
  const std::multiset<std::string> got = FilesBelow(env.done);
  EXPECT_EQ(got.size(), want.size());
  EXPECT_TRUE(got == want) << "the done directory does not mirror the tree";
  EXPECT_TRUE(FilesBelow(env.inbox).empty());
}

TEST(TreeTest, TarOfFiveThousandFilesInFiveHundredDirectories) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  // The archive: 500 directories, up to depth 6, 10 files each.
  const std::string src = env.tmp.Mkdir("src");
  std::multiset<std::string> want;
  for (int d = 0; d < 500; ++d) {
    std::string rel = "u" + std::to_string(d % 10);
    for (int level = 2; level <= 1 + d % 5 + 1 && level <= 5; ++level) {
      rel += "/l" + std::to_string(level) + "-" + std::to_string(d);
    }
    std::filesystem::create_directories(src + "/" + rel);
    for (int f = 0; f < 10; ++f) {
      const std::string file = rel + "/f" + std::to_string(f) + ".dat";
      WriteFile(src + "/" + file, file);
      want.insert(file);
    }
  }
  ASSERT_EQ(want.size(), 5000u);
  const std::string tar = env.tmp.Sub("tree.tar");
  ASSERT_EQ(RunCommand({"tar", "-C", src, "-cf", tar, "."}).status, 0);

  env.WriteConfig(TreeQueue());
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  const CommandResult x = RunCommand({"tar", "-C", env.inbox, "-xf", tar}, seconds(120));
  ASSERT_EQ(x.status, 0) << x.err;
  ExpectDoneOnce(env, want);
  // Directories keep their place in the tree under move_to.
  struct stat st;
  EXPECT_EQ(::stat((env.done + "/u3/l2-3/l3-3").c_str(), &st), 0);
  EXPECT_EQ(env.Stop(), 0);
}

TEST(TreeTest, MkdirPRacingWritesLosesNothing) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  env.WriteConfig(TreeQueue());
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  // No pause between a directory's creation and the writes into it: the
  // writes land before, during and after its watch is added.
  const std::string script =
      "cd \"$1\" && i=0; while [ $i -lt 1000 ]; do "
      "mkdir -p d$i/x/y && echo a > d$i/a && echo b > d$i/x/b && echo c > d$i/x/y/c; "
      "i=$((i+1)); done";
  const CommandResult r = RunCommand({"/bin/sh", "-c", script, "sh", env.inbox}, seconds(120));
  ASSERT_EQ(r.status, 0) << r.err;
  std::multiset<std::string> want;
  for (int i = 0; i < 1000; ++i) {
    const std::string d = "d" + std::to_string(i);
    want.insert(d + "/a");
    want.insert(d + "/x/b");
    want.insert(d + "/x/y/c");
  }
  ExpectDoneOnce(env, want);
  EXPECT_EQ(env.Stop(), 0);
}

TEST(TreeTest, PopulatedTreeRenamedInWhole) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  env.WriteConfig(TreeQueue());
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  // Built beside the inbox (same filesystem), then one rename(2).
  const std::string staging = env.tmp.Mkdir("staging");
  std::multiset<std::string> want;
  for (int d = 0; d < 40; ++d) {
    const std::string rel = "batch/p" + std::to_string(d) + "/q" + std::to_string(d % 3);
    std::filesystem::create_directories(staging + "/" + rel);
    for (int f = 0; f < 50; ++f) {
      const std::string file = rel + "/n" + std::to_string(f);
      WriteFile(staging + "/" + file, file);
      want.insert(file);
    }
  }
  ASSERT_EQ(want.size(), 2000u);
  ASSERT_EQ(::rename((staging + "/batch").c_str(), (env.inbox + "/batch").c_str()), 0);
  ExpectDoneOnce(env, want);
  EXPECT_EQ(env.Stop(), 0);
}

// link(2) makes IN_CREATE alone: no open, no close, no rename.
void ExpectHardLinkTakenLive(bool recursive) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  QueueSpec q = recursive ? TreeQueue() : QueueSpec();
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  const std::string dir = recursive ? env.inbox + "/alice/2026" : env.inbox;
  if (recursive) {
    std::filesystem::create_directories(dir);
    ::sleep(1);  // watched by now: the link below is a live event, not a scan find
  }
  const std::string tmp = env.tmp.Sub("upload.tmp");
  WriteFile(tmp, "written elsewhere, then linked into place");
  ASSERT_EQ(::link(tmp.c_str(), (dir + "/linked.pdf").c_str()), 0);
  ASSERT_EQ(::unlink(tmp.c_str()), 0);
  const std::string rel = recursive ? "alice/2026/linked.pdf" : "linked.pdf";
  // The periodic rescan is 5 minutes away: only the event can find it.
  ASSERT_TRUE(WaitFor([&] { return Exists(env.done + "/" + rel); }, seconds(3))) << env.DaemonLog();
  EXPECT_EQ(StatCounter(env.redis, "q", "done"), 1);
  EXPECT_EQ(Count(env.DaemonLog(), "scan.start"), 1);  // the start-up scan alone
  EXPECT_EQ(env.Stop(), 0);
}

TEST(TreeTest, HardLinkIntoAFlatInboxIsTakenLive) { ExpectHardLinkTakenLive(false); }
TEST(TreeTest, HardLinkIntoATreeIsTakenLive) { ExpectHardLinkTakenLive(true); }

// The names, placeholders and the tree under move_to.
TEST(TreeTest, HandlerSeesRelpathAndDoneKeepsDirectoryModes) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  const std::string out = env.tmp.Sub("seen.txt");
  QueueSpec q = TreeQueue();
  q.handler =
      "exec: [\"/bin/sh\", \"-c\", \"printf '%s|%s|%s|%s\\\\n' \\\"$1\\\" \\\"$2\\\" \\\"$3\\\" "
      "\\\"$DROPQ_RELPATH\\\" >> " +
      out + "\", \"sh\", \"{relpath}\", \"{reldir}\", \"{name}\"]";
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  ASSERT_EQ(::mkdir((env.inbox + "/alice").c_str(), 0700), 0);
  ASSERT_EQ(::chmod((env.inbox + "/alice").c_str(), 0700), 0);
  ASSERT_EQ(::mkdir((env.inbox + "/alice/2026").c_str(), 0750), 0);
  ASSERT_EQ(::chmod((env.inbox + "/alice/2026").c_str(), 0750), 0);
  WriteFile(env.inbox + "/alice/2026/scan 01.pdf", "x");
  WriteFile(env.inbox + "/top.pdf", "y");
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "done") == 2; }, seconds(20)))
      << env.DaemonLog();
  const std::vector<std::string> lines = ReadLines(out);
  const std::set<std::string> got(lines.begin(), lines.end());
  EXPECT_EQ(got, (std::set<std::string>{
                     "alice/2026/scan 01.pdf|alice/2026|scan 01.pdf|alice/2026/scan 01.pdf",
                     "top.pdf||top.pdf|top.pdf"}));
  EXPECT_TRUE(Exists(env.done + "/alice/2026/scan 01.pdf"));
  EXPECT_TRUE(Exists(env.done + "/top.pdf"));
  struct stat st;
  ASSERT_EQ(::stat((env.done + "/alice").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  ASSERT_EQ(::stat((env.done + "/alice/2026").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  // dropqctl shows the relative path as the job's name, escaped as names are.
  const std::string id = OnlyJobId(env.redis, "q", "alice/2026/scan 01.pdf");
  const CommandResult show = env.Ctl({"show", id});
  EXPECT_EQ(show.status, 0) << show.err;
  EXPECT_NE(show.out.find("name:        alice/2026/scan\\x2001.pdf\n"), std::string::npos)
      << show.out;
  EXPECT_EQ(env.Stop(), 0);
}

}  // namespace
}  // namespace dropq::test
