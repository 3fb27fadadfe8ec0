// Only regular files become jobs. A symlink, a FIFO, a directory and a
// socket in the watched directory, whether there at start-up, created in it
// or renamed into it, are skipped with a `file.skip ... reason=<kind>` log
// line; none becomes a job, none is touched, and the daemon keeps going.
// Rescans do not report an entry again while it stays.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "common/escape.h"
#include "tests/support/dropq_env.h"
#include "tests/support/e2e_helpers.h"
#include "tests/support/wait_for.h"

namespace dropq::test {
namespace {

using std::chrono::seconds;

struct Entry {
  std::string name;
  std::string kind;  // the reason= the log line must give
};

// Makes an entry of `kind` at `path`; returns false on error.
bool Make(const std::string& kind, const std::string& path, const std::string& target,
          std::vector<int>* sockets) {
  if (kind == "symlink") return ::symlink(target.c_str(), path.c_str()) == 0;
  if (kind == "fifo") return ::mkfifo(path.c_str(), 0644) == 0;
  if (kind == "directory") return ::mkdir(path.c_str(), 0755) == 0;
  if (kind == "socket") {
    const int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (s < 0 || path.size() >= sizeof a.sun_path) return false;
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    sockets->push_back(s);
    return ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  return false;
}

std::string KindOf(mode_t m) {
  if (S_ISLNK(m)) return "symlink";
  if (S_ISFIFO(m)) return "fifo";
  if (S_ISDIR(m)) return "directory";
  if (S_ISSOCK(m)) return "socket";
  return S_ISREG(m) ? "file" : "other";
}

std::string SkipLine(const DropqEnv& env, const Entry& e) {
  return "file.skip queue=q path=" + EscapeName(env.inbox + "/" + e.name) + " reason=" + e.kind +
         "\n";
}

TEST(SkipKindsTest, OnlyRegularFilesBecomeJobs) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  QueueSpec q;
  q.handler = "builtin: sha256";
  env.WriteConfig(q);
  const std::string target = env.tmp.Sub("target.txt");
  WriteFile(target, "the target of the symlinks: never hashed\n");
  const std::string staging = env.tmp.Mkdir("staging");
  std::vector<int> sockets;
  std::vector<Entry> entries;

  // There before the start: the start-up scan skips them.
  for (const std::string kind : {"symlink", "fifo", "directory", "socket"}) {
    const Entry e{"pre-" + kind, kind};
    ASSERT_TRUE(Make(kind, env.inbox + "/" + e.name, target, &sockets)) << e.name;
    entries.push_back(e);
  }
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  for (const Entry& e : entries) {
    EXPECT_TRUE(WaitFor([&] { return env.DaemonLog().find(SkipLine(env, e)) != std::string::npos; },
                        seconds(10)))
        << e.name << "\n"
        << env.DaemonLog();
  }

  // Created in the directory, and renamed into it.
  std::vector<Entry> live;
  for (const std::string kind : {"symlink", "fifo", "directory", "socket"}) {
    const Entry e{"new-" + kind, kind};
    ASSERT_TRUE(Make(kind, env.inbox + "/" + e.name, target, &sockets)) << e.name;
    live.push_back(e);
  }
  for (const std::string kind : {"symlink", "fifo", "directory"}) {
    const Entry e{"moved-" + kind, kind};
    ASSERT_TRUE(Make(kind, staging + "/" + e.name, target, &sockets)) << e.name;
    ASSERT_EQ(::rename((staging + "/" + e.name).c_str(), (env.inbox + "/" + e.name).c_str()), 0);
    live.push_back(e);
  }
  // A symlink with a name like any upload's, pointing at a regular file.
  live.push_back({"report.pdf", "symlink"});
  ASSERT_TRUE(Make("symlink", env.inbox + "/report.pdf", target, &sockets));

  for (const Entry& e : live) {
    EXPECT_TRUE(WaitFor([&] { return env.DaemonLog().find(SkipLine(env, e)) != std::string::npos; },
                        seconds(10)))
        << e.name << "\n"
        << env.DaemonLog();
    entries.push_back(e);
  }

  // The daemon is still at work: a regular file dropped now is processed.
  WriteFile(env.inbox + "/after.txt", "regular\n");
  ASSERT_TRUE(WaitFor([&] { return Exists(env.done + "/after.txt"); }, seconds(20)))
      << env.DaemonLog();
  ASSERT_TRUE(WaitFor([&] { return StatCounter(env.redis, "q", "done") == 1; }));
  EXPECT_TRUE(env.daemon()->running());

  const std::string log = env.DaemonLog();
  const auto jobs = JobIdsByName(env.redis, "q");
  EXPECT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs.count("after.txt"), 1u);
  for (const Entry& e : entries) {
    SCOPED_TRACE(e.name);
    EXPECT_EQ(Count(log, SkipLine(env, e)), 1u) << log;
    EXPECT_EQ(jobs.count(e.name), 0u);
    EXPECT_EQ(env.redis.CmdInt({"HEXISTS", DropqEnv::Key("q", "files"), e.name}), 0);
    struct stat st;
    ASSERT_EQ(::lstat((env.inbox + "/" + e.name).c_str(), &st), 0) << "it left the inbox";
    EXPECT_EQ(KindOf(st.st_mode), e.kind) << "it was replaced";
  }
  EXPECT_EQ(ReadFile(target), "the target of the symlinks: never hashed\n");
  EXPECT_EQ(ListDir(env.done), std::vector<std::string>{"after.txt"});
  EXPECT_TRUE(ListDir(env.failed).empty());
  EXPECT_EQ(StatCounter(env.redis, "q", "enqueued"), 1);
  EXPECT_EQ(env.Stop(), 0);
  for (int s : sockets) ::close(s);
}

// A rescan finds the entries it skipped before: each is reported (logged and
// counted in the counts hash) once while it stays, and again only if it is
// replaced by another entry under the same name.
TEST(SkipKindsTest, RescansReportASkippedEntryOnce) {
  DropqEnv env;
  ASSERT_TRUE(env.redis.ok());
  QueueSpec q;
  q.extra = "rescan_interval: 1s\nexclude: [\"*.log\"]";
  env.WriteConfig(q);
  const std::string target = env.tmp.Sub("target.txt");
  WriteFile(target, "x");
  std::vector<int> sockets;
  const std::vector<Entry> entries = {
      {"a-dir", "directory"}, {"a-fifo", "fifo"}, {"a-link", "symlink"}};
  for (const Entry& e : entries) {
    ASSERT_TRUE(Make(e.kind, env.inbox + "/" + e.name, target, &sockets)) << e.name;
  }
  WriteFile(env.inbox + "/debug.log", "excluded");
  ASSERT_TRUE(env.Start()) << env.DaemonLog();
  // The start-up scan and at least three rescans.
  ASSERT_TRUE(
      WaitFor([&] { return Count(env.DaemonLog(), "scan.done queue=q") >= 4; }, seconds(20)))
      << env.DaemonLog();
  std::string log = env.DaemonLog();
  for (const Entry& e : entries) EXPECT_EQ(Count(log, SkipLine(env, e)), 1u) << e.name << log;
  EXPECT_EQ(Count(log, "file.excluded queue=q path=" + env.inbox + "/debug.log\n"), 1u) << log;

  // Another FIFO under the same name is another entry: reported once more.
  ASSERT_EQ(::unlink((env.inbox + "/a-fifo").c_str()), 0);
  ASSERT_TRUE(Make("fifo", env.inbox + "/a-fifo", target, &sockets));
  const size_t scans = Count(env.DaemonLog(), "scan.done queue=q");
  ASSERT_TRUE(WaitFor([&] { return Count(env.DaemonLog(), "scan.done queue=q") >= scans + 2; },
                      seconds(20)));
  log = env.DaemonLog();
  EXPECT_EQ(Count(log, SkipLine(env, entries[1])), 2u) << log;
  EXPECT_EQ(Count(log, SkipLine(env, entries[0])), 1u) << log;

  // The counts hash counts reports, pushed every tick (5 s).
  EXPECT_TRUE(
      WaitFor([&] { return StatCounter(env.redis, "q", "skipped_fifo") == 2; }, seconds(15)));
  EXPECT_EQ(StatCounter(env.redis, "q", "skipped_directory"), 1);
  EXPECT_EQ(StatCounter(env.redis, "q", "skipped_symlink"), 1);
  EXPECT_EQ(StatCounter(env.redis, "q", "skipped_excluded"), 1);
  EXPECT_EQ(env.Stop(), 0);
  for (int s : sockets) ::close(s);
}

}  // namespace
}  // namespace dropq::test
