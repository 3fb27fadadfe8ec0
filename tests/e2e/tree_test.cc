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
  // The file moves before its job is acknowledged: the count follows.
  EXPECT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "done") == 1; }, seconds(5)));
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

// The value of `name{queue="q"...}` on the /metrics page, or -1.
double MetricValue(const std::string& page, const std::string& series) {
  const size_t at = page.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(page.substr(at + series.size() + 2));
}

// fs.inotify.max_user_watches, set inside a user namespace (never on the
// host): only part of the tree can be watched. The rest is polled, nothing
// is lost, the limit is logged once, and raising it brings back live watches.
TEST(TreeTest, WatchLimitFallsBackToPollingAndRecovers) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  std::multiset<std::string> want;
  for (int d = 0; d < 1000; ++d) {
    const std::string rel = "t" + std::to_string(d / 100) + "/d" + std::to_string(d);
    std::filesystem::create_directories(env.inbox + "/" + rel);
    const std::string file = rel + "/f";
    WriteFile(env.inbox + "/" + file, file);
    want.insert(file);
  }
  const int port = FreePort();
  ASSERT_GT(port, 0);
  env.WriteConfig(TreeQueue("poll_interval: 1s"),
                  "metrics:\n  listen: 127.0.0.1:" + std::to_string(port) + "\n");
  // 200 watches for the whole user namespace: the inbox, the 10 t*/ and a
  // part of the 1,000 leaves.
  env.StartWrapped({"unshare", "--user", "--map-root-user", "/bin/sh", "-c",
                    "echo 200 > /proc/sys/user/max_inotify_watches && exec \"$@\"", "sh"});
  ASSERT_TRUE(WaitFor([&] { return Count(env.DaemonLog(), "scan.done") >= 1; }, seconds(60)))
      << env.DaemonLog();
  ExpectDoneOnce(env, want);
  const std::string log = env.DaemonLog();
  EXPECT_EQ(Count(log, "watch.limit "), 1u) << log.substr(0, 20000);
  EXPECT_NE(log.find("sysctl=fs.inotify.max_user_watches"), std::string::npos);
  // The stats hash is written at the next push, a moment later.
  EXPECT_TRUE(
      WaitFor([&] { return StatCounter(env.redis, "q", "watch_errors_limit") > 700; }, seconds(10)))
      << StatCounter(env.redis, "q", "watch_errors_limit");
  const auto [status, page] = GetMetrics(port);
  ASSERT_NE(status.find("200"), std::string::npos) << status;
  EXPECT_GT(MetricValue(page, "dropq_polled_dirs{queue=\"q\"}"), 700) << page;
  EXPECT_LT(MetricValue(page, "dropq_watched_dirs{queue=\"q\"}"), 201) << page;
  EXPECT_GT(MetricValue(page, "dropq_watch_errors_total{queue=\"q\",reason=\"limit\"}"), 700);

  // Raised again, inside the same namespace: every directory is watched live.
  const pid_t pid = env.daemon()->pid();
  const CommandResult raise =
      RunCommand({"nsenter", "-t", std::to_string(pid), "-U", "--preserve-credentials", "/bin/sh",
                  "-c", "echo 100000 > /proc/sys/user/max_inotify_watches"});
  ASSERT_EQ(raise.status, 0) << raise.err;
  ASSERT_TRUE(
      WaitFor([&] { return Count(env.DaemonLog(), "watch.limit_cleared") == 1; }, seconds(30)))
      << env.DaemonLog().substr(0, 20000);
  // The page follows within a sync interval.
  std::string page2;
  EXPECT_TRUE(WaitFor(
      [&] {
        page2 = GetMetrics(port).second;
        return MetricValue(page2, "dropq_polled_dirs{queue=\"q\"}") == 0 &&
               MetricValue(page2, "dropq_watched_dirs{queue=\"q\"}") == 1011;
      },
      seconds(10)))
      << page2;
  WriteFile(env.inbox + "/t9/d999/late", "late");
  ASSERT_TRUE(WaitFor([&] { return Exists(env.done + "/t9/d999/late"); }, seconds(10)))
      << env.DaemonLog().substr(0, 20000);
  EXPECT_EQ(env.Stop(), 0);
}

// Directories that move while their files wait: one renamed inside the tree
// (its files are enqueued again under their new paths; the old jobs end as
// vanished skips), one moved out (its jobs end vanished, its files stay
// where they went). Each file is processed at most once.
TEST(TreeTest, DirectoriesMovedWhileTheirFilesArePending) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  env.WriteConfig(TreeQueue());
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  ASSERT_EQ(env.Ctl({"pause", "q"}).status, 0);
  std::filesystem::create_directories(env.inbox + "/a/sub");
  std::filesystem::create_directories(env.inbox + "/b");
  for (int i = 0; i < 5; ++i) {
    WriteFile(env.inbox + "/a/sub/x" + std::to_string(i), "x");
    WriteFile(env.inbox + "/b/y" + std::to_string(i), "y");
  }
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "enqueued") == 10; }, seconds(10)))
      << env.DaemonLog();
  const std::string outside = env.tmp.Sub("outside-b");
  ASSERT_EQ(::rename((env.inbox + "/a").c_str(), (env.inbox + "/a2").c_str()), 0);
  ASSERT_EQ(::rename((env.inbox + "/b").c_str(), outside.c_str()), 0);
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "enqueued") == 15; }, seconds(10)))
      << env.DaemonLog();
  ASSERT_EQ(env.Ctl({"resume", "q"}).status, 0);
  ASSERT_TRUE(WaitFor(
      [&] {
        return StatCounter(env.redis, "q", "done") == 5 &&
               StatCounter(env.redis, "q", "vanished") == 10;
      },
      seconds(20)))
      << "done=" << StatCounter(env.redis, "q", "done")
      << " vanished=" << StatCounter(env.redis, "q", "vanished") << "\n"
      << env.DaemonLog();
  std::multiset<std::string> want;
  for (int i = 0; i < 5; ++i) want.insert("a2/sub/x" + std::to_string(i));
  EXPECT_TRUE(FilesBelow(env.done) == want);
  EXPECT_EQ(FilesBelow(outside).size(), 5u) << "moved out: left alone";
  // Nothing further comes of the moved-out directory.
  WriteFile(outside + "/late", "z");
  ::sleep(1);
  EXPECT_EQ(StatCounter(env.redis, "q", "enqueued"), 15);
  EXPECT_EQ(env.Stop(), 0);
}

// An uploader swaps a directory of the tree for a symlink (to somewhere dropq
// must not touch) at each step: found by a scan, between enqueue and the move
// into the processing area, and under move_to where parents are made.
TEST(TreeTest, ASymlinkSwappedForADirectoryLeadsNowhere) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  const std::string outside = env.tmp.Mkdir("outside");
  WriteFile(outside + "/f", "not dropq's");
  WriteFile(outside + "/g", "not dropq's either");
  const std::string outside2 = env.tmp.Mkdir("outside2");
  // The scan step: a symlink to a directory is skipped, not descended.
  ASSERT_EQ(::symlink(outside.c_str(), (env.inbox + "/linked").c_str()), 0);
  // The parent under move_to is a symlink too: nothing may be made through it.
  ASSERT_EQ(::symlink(outside2.c_str(), (env.done + "/bob").c_str()), 0);
  env.WriteConfig(TreeQueue());
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  EXPECT_TRUE(WaitFor([&] { return Count(env.DaemonLog(), "reason=symlink") == 1; }, seconds(5)))
      << env.DaemonLog();

  // Between the enqueue and the move in.
  ASSERT_EQ(env.Ctl({"pause", "q"}).status, 0);
  std::filesystem::create_directories(env.inbox + "/alice");
  WriteFile(env.inbox + "/alice/f", "alice's");
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "enqueued") == 1; }, seconds(10)));
  ASSERT_EQ(::rename((env.inbox + "/alice").c_str(), (env.tmp.Sub("alice-away")).c_str()), 0);
  ASSERT_EQ(::symlink(outside.c_str(), (env.inbox + "/alice").c_str()), 0);
  // Parent creation under move_to.
  std::filesystem::create_directories(env.inbox + "/bob");
  WriteFile(env.inbox + "/bob/g", "bob's");
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "enqueued") == 2; }, seconds(10)));
  ASSERT_EQ(env.Ctl({"resume", "q"}).status, 0);
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "replaced") == 1; }, seconds(10)))
      << env.DaemonLog();
  ASSERT_TRUE(
      WaitFor([&] { return Count(env.DaemonLog(), "(never\\x20followed)") >= 1; }, seconds(10)))
      << env.DaemonLog();
  EXPECT_EQ(ReadFile(outside + "/f"), "not dropq's");
  EXPECT_EQ(ReadFile(outside + "/g"), "not dropq's either");
  EXPECT_EQ(FilesBelow(outside).size(), 2u);
  EXPECT_TRUE(FilesBelow(outside2).empty()) << "made through the symlink under move_to";
  // The disposition waits (retried with backoff) until the operator fixes
  // the target; then the file lands in a real directory.
  ASSERT_EQ(::unlink((env.done + "/bob").c_str()), 0);
  ASSERT_TRUE(WaitFor([&] { return Exists(env.done + "/bob/g"); }, seconds(30))) << env.DaemonLog();
  EXPECT_TRUE(FilesBelow(outside2).empty());
  EXPECT_EQ(env.Stop(), 0) << env.DaemonLog();
}

// dropqctl retry puts a failed file back at its place in the tree, making
// the directories that went meanwhile (with the modes of the failed tree's).
TEST(TreeTest, RetryPutsTheFileBackIntoTheTree) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  const std::string marker = env.tmp.Sub("fail-while-here");
  WriteFile(marker, "");
  QueueSpec q = TreeQueue();
  q.handler = "exec: [\"/bin/sh\", \"-c\", \"test ! -e " + marker + "\"]";
  env.WriteConfig(q);
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  std::filesystem::create_directories(env.inbox + "/carol/in");
  ASSERT_EQ(::chmod((env.inbox + "/carol").c_str(), 0710), 0);
  WriteFile(env.inbox + "/carol/in/r.pdf", "r");
  ASSERT_TRUE(WaitFor([&] { return Exists(env.failed + "/carol/in/r.pdf"); }, seconds(10)))
      << env.DaemonLog();
  struct stat st;
  ASSERT_EQ(::stat((env.failed + "/carol").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0710u);
  std::filesystem::remove_all(env.inbox + "/carol");
  ::unlink(marker.c_str());
  const std::string id = OnlyJobId(env.redis, "q", "carol/in/r.pdf");
  const CommandResult r = env.Ctl({"retry", id});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  ASSERT_TRUE(WaitFor([&] { return Exists(env.done + "/carol/in/r.pdf"); }, seconds(10)))
      << env.DaemonLog();
  EXPECT_EQ(StatCounter(env.redis, "q", "done"), 1);
  EXPECT_EQ(env.Stop(), 0);
}

// A directory made by another user with mode 0755: dropq (unprivileged here,
// as under its unit) can read it but cannot rename files out of it. It is
// logged and counted once, its files wait (no job fails, none is retried
// forever), and they are processed once a default ACL gives dropq rwx.
TEST(TreeTest, ADirectoryDropqCannotUseWaitsForItsAcl) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  constexpr uid_t kDropq = 65534;     // nobody: dropqd runs as this user
  constexpr uid_t kUploader = 54321;  // any other user
  ASSERT_EQ(::chmod(env.tmp.path().c_str(), 0755), 0);
  for (const std::string& d : {env.inbox, env.done, env.failed}) {
    ASSERT_EQ(::chown(d.c_str(), kDropq, kDropq), 0);
  }
  const std::string dir = env.inbox + "/uploader";
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  WriteFile(dir + "/a.pdf", "a");
  WriteFile(dir + "/b.pdf", "b");
  for (const std::string& p : {dir + "/a.pdf", dir + "/b.pdf", dir}) {
    ASSERT_EQ(::chown(p.c_str(), kUploader, kUploader), 0);
  }
  ASSERT_EQ(::chmod(dir.c_str(), 0755), 0);
  env.WriteConfig(TreeQueue("poll_interval: 1s"));
  ASSERT_EQ(::chmod(env.config.c_str(), 0644), 0);
  env.StartWrapped({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                    "--inh-caps=-all", "--bounding-set=-all"});
  ASSERT_TRUE(WaitFor([&] { return Count(env.DaemonLog(), "scan.done") >= 1; }, seconds(20)))
      << env.DaemonLog();
  ASSERT_TRUE(WaitFor([&] { return Count(env.DaemonLog(), "dir.unusable") == 1; }, seconds(5)))
      << env.DaemonLog();
  ::sleep(3);  // three polls: still logged once, nothing enqueued, nothing failed
  EXPECT_EQ(Count(env.DaemonLog(), "dir.unusable"), 1u) << env.DaemonLog();
  EXPECT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "watch_errors_permission") == 1; },
                      seconds(10)));
  EXPECT_EQ(StatCounter(env.redis, "q", "enqueued"), 0);
  EXPECT_EQ(StatCounter(env.redis, "q", "failed"), 0);

  const CommandResult acl =
      RunCommand({"setfacl", "-m", "u:65534:rwx", "-m", "d:u:65534:rwx", dir});
  ASSERT_EQ(acl.status, 0) << acl.err;
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "done") == 2; }, seconds(10)))
      << env.DaemonLog();
  EXPECT_TRUE(Exists(env.done + "/uploader/a.pdf"));
  EXPECT_TRUE(Exists(env.done + "/uploader/b.pdf"));
  EXPECT_EQ(StatCounter(env.redis, "q", "failed"), 0);
  // Watched live from then on.
  WriteFile(dir + "/c.pdf", "c");
  ASSERT_TRUE(WaitFor([&] { return Exists(env.done + "/uploader/c.pdf"); }, seconds(5)))
      << env.DaemonLog();
  EXPECT_EQ(env.Stop(), 0);
}

}  // namespace
}  // namespace dropq::test
